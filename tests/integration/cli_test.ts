/**
 * The command line as a person uses it: the server in a child process, accounts managed with
 * adduser/passwd/deluser while it runs, and SIGTERM closing every stream with system-shutdown.
 */
import assert from "node:assert/strict";
import { clientHeader } from "./_server.ts";
import { testClient } from "./_xmpp_client.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

async function run(args: string[], stdin?: string): Promise<{ code: number; out: string }> {
  const cmd = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, ...args],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  });
  const child = cmd.spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const { code, stdout, stderr } = await child.output();
  const dec = new TextDecoder();
  return { code, out: dec.decode(stdout) + dec.decode(stderr) };
}

async function login(port: number, username: string, password: string): Promise<boolean> {
  const xmpp = testClient({ port, username, password });
  try {
    await xmpp.start();
    await xmpp.stop();
    return true;
  } catch {
    await xmpp.stop().catch(() => {});
    return false;
  }
}

/** Starts `main.ts serve` and waits for the port it logs. */
async function serve(config: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", MAIN, "--config", config],
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  let port = 0;
  while (port === 0) {
    const { value, done } = await reader.read();
    if (done) throw new Error("server exited: " + seen);
    seen += value;
    const m = /Listening for clients on 127\.0\.0\.1:(\d+)\n/.exec(seen);
    if (m) port = Number(m[1]);
  }
  // Keep draining so the child never blocks on a full pipe.
  const rest = (async () => {
    while (!(await reader.read()).done) { /* drain */ }
  })();
  child.stderr.pipeTo(new WritableStream()).catch(() => {});
  return { child, port, rest };
}

Deno.test("accounts are managed from the command line while the server runs", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-cli-" });
  const config = `${dir}/xmpp.toml`;
  await Deno.writeTextFile(
    config,
    `data_dir = "${dir}/data"\ninterfaces = ["127.0.0.1"]\nc2s_port = 0\n` +
      `c2s_direct_tls_port = false\ncomponent_port = false\ns2s_port = false\nhttp = { http_port = false, https_port = false }\nlog_level = "info"\n`,
  );
  const { child, port, rest } = await serve(config);
  try {
    let r = await run(["adduser", "--config", config, "carol@localhost", "first"]);
    assert.equal(r.code, 0, r.out);
    assert.ok(await login(port, "carol", "first"));

    r = await run(["adduser", "--config", config, "carol@localhost", "again"]);
    assert.equal(r.code, 2);
    assert.match(r.out, /already exists/);

    // The password from standard input, as when it is omitted on a terminal.
    r = await run(["passwd", "--config", config, "carol@localhost"], "second\n");
    assert.equal(r.code, 0, r.out);
    assert.equal(await login(port, "carol", "first"), false);
    assert.ok(await login(port, "carol", "second"));

    const stored = await Deno.readTextFile(`${dir}/data/localhost/accounts/carol.json`);
    assert.ok(!stored.includes("second"), "the password is never stored");

    // Carol's data beyond the account: a roster and an archive.
    await Deno.mkdir(`${dir}/data/localhost/roster`, { recursive: true });
    await Deno.writeTextFile(
      `${dir}/data/localhost/roster/carol.json`,
      '{"version":"1","items":{},"pendingIn":{}}',
    );
    await openListStore<unknown>(`${dir}/data`, "archive").append("localhost", "carol", [
      { id: "x", ts: 1, peer: "a@localhost", stanza: {} },
    ]);
    r = await run(["deluser", "--config", config, "carol@localhost"]);
    assert.equal(r.code, 0, r.out);
    assert.equal(await login(port, "carol", "second"), false);
    // Deleting an account deletes everything stored for it.
    await assert.rejects(Deno.stat(`${dir}/data/localhost/roster/carol.json`));
    await assert.rejects(Deno.stat(`${dir}/data/localhost/archive/carol.list`));
    // ... but leaves a tombstone, so that the name is not given out again too soon.
    const tombstone = JSON.parse(
      await Deno.readTextFile(`${dir}/data/localhost/tombstones/carol.json`),
    );
    assert.ok(Math.abs(tombstone.removed - Date.now()) < 60_000, JSON.stringify(tombstone));

    r = await run(["adduser", "--config", config, "dave@example.org", "x"]);
    assert.equal(r.code, 2);
    assert.match(r.out, /not one of the configured hosts/);

    r = await run(["check", "--config", config]);
    assert.equal(r.code, 0);
  } finally {
    child.kill("SIGTERM");
    await child.status;
    await rest;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a bad configuration is reported with the key and a non-zero exit", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-cli-" });
  try {
    await Deno.writeTextFile(`${dir}/bad.toml`, `c2s_port = "high"\n`);
    const r = await run(["--config", `${dir}/bad.toml`]);
    assert.equal(r.code, 2);
    assert.match(r.out, /c2s_port/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM closes every stream with system-shutdown and exits 0", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-cli-" });
  const config = `${dir}/xmpp.toml`;
  await Deno.writeTextFile(
    config,
    `data_dir = "${dir}/data"\ninterfaces = ["127.0.0.1"]\nc2s_port = 0\n` +
      `c2s_direct_tls_port = false\ncomponent_port = false\ns2s_port = false\nhttp = { http_port = false, https_port = false }\nlog_level = "info"\n`,
  );
  const { child, port, rest } = await serve(config);
  try {
    const conns = await Promise.all(
      [1, 2].map(() => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    const texts = conns.map(async (c) => {
      await c.write(new TextEncoder().encode(clientHeader()));
      let text = "";
      const buf = new Uint8Array(8192);
      const dec = new TextDecoder();
      // Wait for the features, then signal; then read to the end of the stream.
      while (!text.includes("</stream:features>")) {
        const n = await c.read(buf);
        if (n === null) break;
        text += dec.decode(buf.subarray(0, n));
      }
      return { c, text };
    });
    const opened = await Promise.all(texts);
    child.kill("SIGTERM");
    for (const { c, text: start } of opened) {
      let text = start;
      const buf = new Uint8Array(8192);
      while (true) {
        const n = await c.read(buf).catch(() => null);
        if (n === null) break;
        text += new TextDecoder().decode(buf.subarray(0, n));
      }
      c.close();
      assert.match(
        text,
        /<stream:error><system-shutdown xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/,
      );
      assert.ok(text.endsWith("</stream:stream>"));
    }
    const status = await child.status;
    assert.equal(status.code, 0);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch {
      // exited
    }
    await rest;
    await Deno.remove(dir, { recursive: true });
  }
});
