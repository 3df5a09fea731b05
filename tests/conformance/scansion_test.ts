import assert from "node:assert/strict";
import { configFromObject } from "../../lib/config.ts";
import { startServer } from "../../lib/shell/server.ts";
import { AccountExistsError } from "../../lib/storage/accounts.ts";
import { EXPECTED_FAILURES } from "./expected_failures.ts";
import { listScripts, type RunResult, runScript } from "./scansion.ts";
import { parseScript } from "./script.ts";

// A local server answers at once; a shorter wait keeps expected failures cheap.
const STEP_TIMEOUT_MS = Number(Deno.env.get("SCANSION_STEP_TIMEOUT_MS") ?? "2000");
// Each script has its own server and storage, so several can run at once.
const CONCURRENCY = Number(Deno.env.get("SCANSION_CONCURRENCY") ?? "8");

/**
 * A clock that starts on a whole second and runs a thousand times slower than the real one: a
 * script's stamps all fall in one second, as under the frozen clock Prosody runs these scripts
 * with (mam_extended.scs expects its two messages to share one stamp), while time still moves
 * forward for what orders by it.
 */
function slowClock(): () => number {
  const realStart = Date.now();
  const start = Math.floor(realStart / 1000) * 1000;
  return () => start + Math.floor((Date.now() - realStart) / 1000);
}

function baseName(path: string): string {
  return path.slice(path.lastIndexOf("/") + 1);
}

/** Runs one script against a fresh server with the script's accounts created. */
async function runAgainstFreshServer(file: string): Promise<RunResult> {
  const text = await Deno.readTextFile(file);
  const dataDir = await Deno.makeTempDir({ prefix: "scansion_" });
  const server = await startServer(
    configFromObject({
      hosts: ["localhost"],
      data_dir: dataDir,
      interfaces: ["127.0.0.1"],
      c2s_port: 0,
      c2s_direct_tls_port: false,
      component_port: false,
      s2s_port: false,
      // On an ephemeral port: the upload service (http_upload.scs) serves its slots over HTTP.
      http: { http_port: 0, https_port: false },
      require_encryption: false,
      log_level: "warning",
      // The settings the scripts assume (../shared/conformance/README.md).
      archive_policy: "always",
      pubsub: { domain: "pubsub.localhost", admins: ["admin@localhost"] },
      // muc_create_destroy.scs destroys a room through the service's admin command.
      muc: { admins: ["admin@localhost"] },
      // upload.localhost (XEP-0363, 10 MB limit, text/plain and image/* allowed).
      upload: { max_file_size: 10000000, allowed_types: ["text/plain", "image/*"] },
      external_services: [
        { type: "stun", transport: "udp", host: "default.example", port: 9876 },
        // One with the server's shared secret, one with a secret of its own (as Prosody's setup).
        { type: "turn", transport: "udp", host: "default.example", port: 9876, secret: "s3cr3t" },
        { type: "turn", transport: "udp", host: "default.example", port: 9876, secret: "foo" },
        {
          type: "ftp",
          transport: "tcp",
          host: "default.example",
          port: 2121,
          username: "john",
          password: "password",
        },
        {
          type: "ftp",
          transport: "tcp",
          host: "ftp.example.com",
          port: 21,
          username: "john",
          password: "password",
        },
      ],
      contact_info: {
        abuse: ["mailto:abuse@localhost", "xmpp:abuse@localhost"],
        admin: ["mailto:admin@localhost", "xmpp:admin@localhost"],
        feedback: [
          "http://localhost/feedback.html",
          "mailto:feedback@localhost",
          "xmpp:feedback@localhost",
        ],
        sales: ["xmpp:sales@localhost"],
        security: ["xmpp:security@localhost"],
        status: ["gopher://status.localhost"],
        support: ["https://localhost/support.html", "xmpp:support@localhost"],
      },
    }, "scansion test"),
    { clock: slowClock() },
  );
  try {
    for (const client of parseScript(text).clients) {
      const bare = client.jid.split("/")[0];
      const [username, host] = bare.split("@");
      try {
        await server.accounts.create(host, username, client.password);
      } catch (e) {
        // Two clients may share one account.
        if (!(e instanceof AccountExistsError)) throw e;
      }
    }
    return await runScript(text, {
      host: "127.0.0.1",
      port: server.c2sPort,
      stepTimeoutMs: STEP_TIMEOUT_MS,
    });
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test({
  name: "scansion conformance scripts",
  // The node:net sockets of the test client close asynchronously after each script.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const files = listScripts();
    const names = files.map(baseName);
    await t.step("every expected failure names a script", () => {
      for (const name of Object.keys(EXPECTED_FAILURES)) {
        assert.ok(names.includes(name), `expected_failures lists ${name}, which does not exist`);
      }
    });

    // Scripts run ahead in a pool; each step then reports one script's outcome.
    const results = new Map(names.map((n) => [n, Promise.withResolvers<RunResult>()]));
    let next = 0;
    const worker = async () => {
      while (next < files.length) {
        const file = files[next++];
        const result = await runAgainstFreshServer(file).catch((e): RunResult => ({
          ok: false,
          step: "setup",
          message: String(e),
        }));
        results.get(baseName(file))!.resolve(result);
      }
    };
    const all = Promise.all(Array.from({ length: Math.max(1, CONCURRENCY) }, worker));

    for (const name of names) {
      await t.step(name, async () => {
        const result = await results.get(name)!.promise;
        const reason = EXPECTED_FAILURES[name];
        if (reason === undefined) {
          assert.ok(
            result.ok,
            result.ok ? "" : `${name} failed at ${result.step}\n${result.message}`,
          );
        } else {
          assert.ok(
            !result.ok,
            `${name} passes now: remove it from expected_failures (it says: ${reason})`,
          );
        }
      });
    }
    await all;
  },
});
