/**
 * bench/floor_server.ts's login floor, run for a few logins with its Node client: the canned
 * replies still reach the client byte for byte, and with `xml=1` our parser, serializer and
 * SCRAM check really run (a refused proof or a reply our serializer no longer reproduces ends
 * the connection or the start, and the client then fails).
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { ensureSelfSigned } from "../../lib/transport/certs.ts";
import { opensslAvailable } from "../../lib/transport/openssl.ts";

const here = (p: string) => fileURLToPath(new URL(p, import.meta.url));
const SERVER = here("../../bench/floor_server.ts");
const CLIENT = here("../../bench/floor_client.mjs");
const SCRIPT = here("../../bench/fixtures/floor_login.json");

async function hasNode(): Promise<boolean> {
  try {
    return (await new Deno.Command("node", { args: ["--version"], stdout: "null" }).output())
      .success;
  } catch {
    return false;
  }
}

/** Runs the login floor with `args` for `logins` logins; the client's JSON result. */
async function runLoginFloor(
  args: readonly string[],
  starttls: boolean,
  logins: number,
): Promise<Record<string, unknown>> {
  const server = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", SERVER, "login", ...args, `script=${SCRIPT}`],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr = new Response(server.stderr).text();
  try {
    const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let seen = "";
    while (!seen.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`the floor server did not start: ${await stderr}`);
      seen += value;
    }
    lines.releaseLock();
    const port = /listening (\d+)/.exec(seen)?.[1];
    assert.ok(port, seen);
    const client = await new Deno.Command("node", {
      args: [
        CLIENT,
        "login",
        `port=${port}`,
        `pid=${server.pid}`,
        `starttls=${starttls ? 1 : 0}`,
        `script=${SCRIPT}`,
        `logins=${logins}`,
        "concurrency=2",
        "warmup=2",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const out = new TextDecoder().decode(client.stdout).trim().split("\n").at(-1) ?? "";
    assert.ok(client.success, new TextDecoder().decode(client.stderr) + out);
    return JSON.parse(out);
  } finally {
    server.kill();
    await server.status;
    await server.stdout.cancel().catch(() => {});
    await stderr;
  }
}

Deno.test({
  name: "floor login: with xml=1 the plain login is parsed, answered and SCRAM-checked",
  ignore: !await hasNode(),
  fn: async () => {
    const r = await runLoginFloor(["engine=tcp", "xml=1"], false, 5);
    assert.equal(r.logins, 5);
    assert.equal(r.starttls, false);
    assert.equal(typeof r.us_per_login, "number");
  },
});

Deno.test({
  name: "floor login: with xml=1 the STARTTLS login goes through OpenSSL the same way",
  ignore: !opensslAvailable() || !await hasNode(),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "floor_login_test_" });
    try {
      await ensureSelfSigned(dir, "localhost");
      const cert = [`cert=${dir}/certs/localhost.crt`, `key=${dir}/certs/localhost.key`];
      const r = await runLoginFloor(["engine=openssl", "xml=1", ...cert], true, 5);
      assert.equal(r.logins, 5);
      assert.equal(r.starttls, true);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("floor login: a reply the serializer cannot reproduce stops the start", async () => {
  const dir = await Deno.makeTempDir({ prefix: "floor_login_test_" });
  try {
    const script = JSON.parse(await Deno.readTextFile(SCRIPT));
    // Single quotes: our serializer writes double quotes, so the bytes would differ.
    script.tcp[2].s = script.tcp[2].s.replaceAll('"', "'");
    const bad = `${dir}/script.json`;
    await Deno.writeTextFile(bad, JSON.stringify(script));
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-all", SERVER, "login", "engine=tcp", "xml=1", `script=${bad}`],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.success, false);
    assert.match(new TextDecoder().decode(out.stderr), /reply not reproduced/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
