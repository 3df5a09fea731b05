/**
 * SCRAM-SHA-256-PLUS with channel binding, computed by a client that is not ours: Node's TLS
 * client (OpenSSL) in tests/integration/fixtures/scram_plus_login.mjs. Under our OpenSSL engine a
 * TLS 1.3 session offers RFC 9266 `tls-exporter` beside `tls-server-end-point` (XEP-0440), and a
 * binding that does not match this TLS session is refused.
 * @module
 */
import assert from "node:assert/strict";
import { opensslAvailable } from "../../lib/transport/openssl.ts";
import { withServer } from "./_server.ts";

const SCRIPT = new URL("./fixtures/scram_plus_login.mjs", import.meta.url).pathname;

interface Outcome {
  readonly bindings: readonly string[];
  readonly mechanisms: readonly string[];
  readonly outcome: string;
  readonly protocol: string;
}

async function login(port: number, binding: string): Promise<Outcome> {
  const out = await new Deno.Command("node", {
    args: [SCRIPT, String(port), "alice", "pw", binding],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(text) as Outcome;
}

function nodeInstalled(): boolean {
  try {
    return new Deno.Command("node", { args: ["--version"], stdout: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

Deno.test({
  name: "channel binding: SCRAM-SHA-256-PLUS with tls-exporter and tls-server-end-point",
  // The CI machine has Node.js (it installs Deno with npm) and Debian's libssl3.
  ignore: !nodeInstalled() || !opensslAvailable(),
  async fn() {
    await withServer(["alice"], async (server) => {
      const exporter = await login(server.c2sPort, "tls-exporter");
      assert.equal(exporter.protocol, "TLSv1.3");
      assert.deepEqual([...exporter.bindings].sort(), ["tls-exporter", "tls-server-end-point"]);
      assert.ok(exporter.mechanisms.includes("SCRAM-SHA-256-PLUS"), exporter.mechanisms.join());
      assert.equal(exporter.outcome, "success");

      const endPoint = await login(server.c2sPort, "tls-server-end-point");
      assert.equal(endPoint.outcome, "success");

      // Binding data from another session (here: random) fails the proof.
      const wrong = await login(server.c2sPort, "wrong");
      assert.equal(wrong.outcome, "failure not-authorized");
    });
  },
});
