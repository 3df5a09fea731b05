/**
 * A server in a child process, for tests that must change the process (a low `ulimit -n`):
 * starts from the settings in the first argument (JSON, TOML key names) on ephemeral loopback
 * ports, prints `{"c2sPort": ...}` on one line, and shuts down when its stdin closes.
 * @module
 */
import { configFromObject } from "../../lib/config.ts";
import { startServer } from "../../lib/shell/server.ts";
import { setupLogging } from "../../lib/log.ts";

// Deno sets up its signal handling (a socket pair) on the first signal listener, and panics
// when it cannot because descriptors ran out: set it up while there are some.
Deno.addSignalListener("SIGTERM", () => Deno.exit(1));

const settings = JSON.parse(Deno.args[0] ?? "{}");
const dataDir = await Deno.makeTempDir({ prefix: "xmpp-child-" });
const config = configFromObject({
  hosts: ["localhost"],
  data_dir: dataDir,
  interfaces: ["127.0.0.1"],
  c2s_port: 0,
  c2s_direct_tls_port: false,
  component_port: false,
  s2s_port: false,
  http: { http_port: false, https_port: false },
  log_level: "error",
  ...settings,
}, "child");
// Errors go to stderr, where the test looks for them.
await setupLogging(config.logLevel);
const server = await startServer(config);
console.log(JSON.stringify({ c2sPort: server.c2sPort }));
// Until the parent closes our stdin.
for await (const _ of Deno.stdin.readable) { /* nothing to read */ }
await server.shutdown();
await Deno.remove(dataDir, { recursive: true });
