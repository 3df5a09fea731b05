/**
 * The server under the exact permissions of `deno task start` (read from deno.json), not the
 * tests' `--allow-all`: every subsystem that starts by default must live within them (s2s reads
 * the system's root certificates, TLS opens libssl through FFI). Here with a configuration file
 * in the working directory that moves the ports to free ones and turns everything on.
 * @module
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url).pathname;

/** `deno task start`'s arguments after `deno`, with main.ts made absolute. */
async function startArgs(): Promise<string[]> {
  const json = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  const words = String(json.tasks.start).split(/\s+/);
  assert.equal(words[0], "deno");
  return words.slice(1).map((w) => w === "main.ts" ? `${ROOT}main.ts` : w);
}

async function readUntil(conn: Deno.Conn, re: RegExp): Promise<string> {
  const buf = new Uint8Array(8192);
  let text = "";
  while (!re.test(text)) {
    const n = await conn.read(buf);
    if (n === null) throw new Error(`closed before ${re}: ${text}`);
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  return text;
}

const HEADER = "<?xml version='1.0'?><stream:stream to='localhost' version='1.0' " +
  "xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

Deno.test("deno task start's permissions serve STARTTLS with s2s, HTTP and TLS on", async () => {
  const cwd = await Deno.makeTempDir({ prefix: "xmpp-start-" });
  await Deno.writeTextFile(
    `${cwd}/xmpp.toml`,
    [
      `hosts = ["localhost"]`,
      `interfaces = ["127.0.0.1"]`,
      `c2s_port = 0`,
      `c2s_direct_tls_port = 0`,
      `component_port = 0`,
      `s2s_port = 0`,
      `s2s_direct_tls_port = 0`,
      `http = { http_port = 0, https_port = 0 }`,
    ].join("\n") + "\n",
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: [...await startArgs(), "--config", "xmpp.toml"],
    cwd,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const errors = new Response(child.stderr).text();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let seen = "";
    let port = 0;
    while (!/Serving localhost/.test(seen)) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`server exited: ${seen}\n${await errors}`);
      seen += value;
      const m = /Listening for clients on 127\.0\.0\.1:(\d+)\n/.exec(seen);
      if (m) port = Number(m[1]);
    }
    assert.match(seen, /Listening for servers on/);
    assert.match(seen, /Listening for HTTPS/);
    const drained = (async () => {
      while (!(await reader.read()).done) { /* keep the pipe flowing */ }
    })();

    // The self-signed certificate the server made on first start, in ./data.
    const ca = await Deno.readTextFile(`${cwd}/data/certs/localhost.crt`);
    const raw = await Deno.connect({ hostname: "127.0.0.1", port });
    await raw.write(new TextEncoder().encode(HEADER));
    assert.match(await readUntil(raw, /<\/stream:features>/), /urn:ietf:params:xml:ns:xmpp-tls/);
    await raw.write(
      new TextEncoder().encode("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"),
    );
    await readUntil(raw, /<proceed/);
    const secure = await Deno.startTls(raw, { hostname: "localhost", caCerts: [ca] });
    await secure.write(new TextEncoder().encode(HEADER));
    const features = await readUntil(secure, /<\/stream:features>/);
    assert.match(features, /<mechanism>SCRAM-SHA-256<\/mechanism>/);
    // On Linux with libssl 3 the FFI engine serves, and TLS 1.3 offers tls-exporter.
    if (Deno.build.os === "linux") assert.match(features, /channel-binding type="tls-exporter"/);
    secure.close();
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0, await errors);
    await drained;
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await Deno.remove(cwd, { recursive: true });
  }
});
