/**
 * What an idle authenticated connection costs, split into V8 heap, external memory and RSS.
 * `bench/load.ts` sees only the server's RSS; this runs the server in this process so that
 * `Deno.memoryUsage()` can be read before and after a forced collection, which tells live
 * objects from garbage not yet collected and from memory V8 holds but does not use.
 *
 * `deno run -A --v8-flags=--expose-gc bench/conn_memory.ts [--users N] [--hold S] [--tls]`
 * (more `--v8-flags` may be added to try them on the server). The connections are made by
 * ../shared/bench/xmppbench.mjs (`idle` scenario: SCRAM-SHA-1, roster get, initial presence;
 * with `--tls`, over STARTTLS with the server's self-signed certificate, as deployed).
 *
 * @module
 */

import { parseArgs } from "node:util";
import v8 from "node:v8";
import { configFromObject } from "../lib/config.ts";
import { startServer } from "../lib/shell/server.ts";
import { NOFILE } from "./_servers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    users: { type: "string", default: "1000" },
    hold: { type: "string", default: "4" },
    tls: { type: "boolean", default: false },
    // Heap snapshots (node:v8) before and while held, for a diff by constructor.
    snapshot: { type: "string" },
    xmppbench: {
      type: "string",
      default: new URL("../../shared/bench/xmppbench.mjs", import.meta.url).pathname,
    },
  },
});
const users = Number(values.users);
const hold = Number(values.hold);
const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) console.error("no gc(): run with --v8-flags=--expose-gc for live figures");

const dataDir = await Deno.makeTempDir({ prefix: "bench_conn_memory_" });
const config = configFromObject({
  hosts: ["localhost"],
  data_dir: dataDir,
  interfaces: ["127.0.0.1"],
  c2s_port: 0,
  c2s_direct_tls_port: false,
  component_port: false,
  s2s_port: false,
  http: { http_port: false, https_port: false },
  require_encryption: values.tls,
  log_level: "error",
}, "bench");
const server = await startServer(config);
const names = Array.from({ length: users }, (_, i) => `bench${i + 1}`);
for (let i = 0; i < names.length; i += 8) {
  await Promise.all(
    names.slice(i, i + 8).map((n) => server.accounts.create("localhost", n, "benchpass")),
  );
}

/** Runs xmppbench; calls `onLine` for each of its progress lines. */
async function xmppbench(args: readonly string[], onLine?: (line: string) => void) {
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n ${NOFILE} 2>/dev/null; exec node "$0" "$@"`,
      values.xmppbench,
      "--port",
      String(server.c2sPort),
      "--mech",
      "SCRAM-SHA-1",
      ...(values.tls ? ["--starttls"] : []),
      ...args,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines = child.stderr.pipeThrough(new TextDecoderStream());
  let rest = "";
  for await (const part of lines) {
    rest += part;
    const all = rest.split("\n");
    rest = all.pop()!;
    for (const l of all) onLine?.(l);
  }
  await child.status;
}

type Usage = ReturnType<typeof Deno.memoryUsage>;
function sample(): Usage {
  return Deno.memoryUsage();
}
function collect(): Usage {
  // Twice: the first pass may only schedule finalizers whose objects the second frees.
  gc?.();
  gc?.();
  return sample();
}
function perConn(label: string, a: Usage, b: Usage) {
  const f = (k: keyof Usage) => ((b[k] - a[k]) / users / 1024).toFixed(1).padStart(7);
  console.log(
    `${label.padEnd(26)} rss ${f("rss")}  heapTotal ${f("heapTotal")}  heapUsed ${
      f("heapUsed")
    }  external ${f("external")}  KB/conn`,
  );
}

// Warm-up, so that compiled code and caches are not counted per connection.
await xmppbench(["--scenario", "login", "--users", "20", "--concurrency", "5"]);
const base = collect();
if (values.snapshot) v8.writeHeapSnapshot(`${values.snapshot}-base.heapsnapshot`);
let held: Usage | undefined;
let heldGc: Usage | undefined;
await xmppbench(
  ["--scenario", "idle", "--users", String(users), "--concurrency", "50", "--hold", String(hold)],
  (line) => {
    if (!line.includes(" connected (")) return;
    // Sample mid-hold, as bench/load.ts does at the end of its hold.
    setTimeout(() => {
      held = sample();
      heldGc = collect();
      if (values.snapshot) v8.writeHeapSnapshot(`${values.snapshot}-held.heapsnapshot`);
    }, (hold * 1000) / 2);
  },
);
const closed = collect();
if (held === undefined || heldGc === undefined) throw new Error("no sample taken while held");
console.log(
  `${users} idle ${values.tls ? "TLS " : ""}connections; base rss ${
    (base.rss / 1048576).toFixed(0)
  } MB`,
);
perConn("held, as found", base, held);
perConn("held, after gc", base, heldGc);
perConn("closed, after gc", base, closed);
await server.shutdown();
await Deno.remove(dataDir, { recursive: true });
Deno.exit(0);
