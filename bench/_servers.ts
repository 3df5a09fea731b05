/**
 * Server control for `bench/load.ts`: provision accounts once into a snapshot, then start a
 * fresh server process from that snapshot for every measured run, so that runs do not inherit
 * each other's heaps, caches or stored data (the procedure of ../shared/bench/run-suite.sh).
 *
 * Two kinds: this project's server (accounts created through the account store, since it has
 * no in-band registration yet) and Prosody (the shared start/stop scripts, accounts through
 * in-band registration with xmppbench). For both, the fanout subscriptions are established once
 * by xmppbench's fanout setup phase (normal presence subscription flows) and kept in the snapshot.
 *
 * @module
 */

import { openAccountStore } from "../lib/storage/accounts.ts";
import { ensureSelfSigned } from "../lib/transport/certs.ts";

/** V8 flags of the `start` and `compile` tasks in deno.json; keep the three in step. */
export const SERVER_V8_FLAGS = "--max-semi-space-size=8,--expose-gc";

/** The `--v8-flags` argument for `flags`; none when empty (V8 rejects an empty flag). */
function v8Flags(flags: string): string[] {
  return flags === "" ? [] : [`--v8-flags=${flags}`];
}

/**
 * File descriptors for the server and the load generator: one per connection and more. The
 * `idle-10k` scenario holds 10,000 connections, so the generator needs 10,000 sockets and the
 * server as many plus its files; raising the hard limit works as root (the benchmark machine).
 */
export const NOFILE = 32768;

/** A server process started for one measurement. */
export interface RunningServer {
  /** The process whose CPU and RSS xmppbench samples. */
  readonly pid: number;
  /** Its c2s port on 127.0.0.1. */
  readonly port: number;
  /**
   * Its HTTP port on 127.0.0.1, with XMPP over WebSocket at `/xmpp-websocket`, when started
   * with `websocket`.
   */
  readonly httpPort?: number;
  /** Stops the process and waits for it to be gone. */
  stop(): Promise<void>;
}

/** What to provision: bench1..bench<users>, and optionally the fanout accounts. */
export interface ProvisionSpec {
  readonly users: number;
  /** Contacts fan1..fan<n> and `fanhub`; 0 for none. */
  readonly fanContacts: number;
}

/** Options for one start. */
export interface StartOptions {
  /**
   * Archive every message (XEP-0313): Prosody's mod_mam with the template's
   * `default_archive_policy = true`, ours with `archive_enabled = true` and
   * `archive_policy = "always"`. Off: Prosody keeps mod_mam loaded with the default policy off,
   * ours runs with `archive_enabled = false`.
   */
  readonly archive: boolean;
  /**
   * Multi-user chat on `conference.localhost` (the `muc` scenario). Prosody gets its mod_muc
   * component only then (`Component "conference.localhost" "muc"`, without mod_muc_mam, so its
   * rooms keep no archive); ours serves MUC in every run (it is on by default) and its rooms
   * archive only when `archive` is on: `archive_enabled = false` turns the service's archive off
   * and `[muc] archiving` says so explicitly, since new rooms default to archiving (`archiving:
   * true` in lib/services/muc/state.ts DEFAULT_CONFIG).
   */
  readonly muc?: boolean;
  /**
   * XMPP over WebSocket (RFC 7395) at `http://127.0.0.1:<httpPort>/xmpp-websocket` (the `ws-*`
   * scenarios). Ours gets an `[http] http_port` (off otherwise), with HTTP upload off so that
   * the port serves the WebSocket and nothing else a run could touch; Prosody gets mod_websocket
   * on its host with `consider_websocket_secure = true`, since ours counts a WebSocket from
   * loopback as encrypted too (`[http] secure_loopback`, on for a localhost-only server).
   */
  readonly websocket?: boolean;
  /**
   * Clients must use TLS (the `--tls` runs): ours with `require_encryption = true` and the
   * self-signed certificate kept in the snapshot; Prosody with mod_tls and a self-signed
   * certificate (start.sh's `PROSODY_TLS=1`) and `c2s_require_encryption = true`; ejabberd
   * offers STARTTLS in every run (its template's `starttls: true`, not required: the template
   * is shared and has no switch), and the generators' `--starttls` fails a login without it.
   */
  readonly tls?: boolean;
  /**
   * Ours only: write a V8 CPU profile (`deno run --cpu-prof`) into this directory when the
   * process exits.
   */
  readonly cpuProfDir?: string;
}

/**
 * The Prosody MUC component: mod_muc with its defaults (rooms are created by their first joiner
 * and locked until configured, 20 messages of history, no archive without mod_muc_mam). One line,
 * as PROSODY_EXTRA_CONFIG needs (start.sh passes it through awk; Lua takes `;` between statements).
 */
export const PROSODY_MUC_CONFIG = `Component "conference.localhost" "muc"`;

/**
 * Prosody's WebSocket, for its host section: mod_websocket (it pulls in mod_http, which listens
 * on the template's `http_ports` and `http_interfaces = { "127.0.0.1" }`; a host's
 * `modules_enabled` adds to the global list) at `/xmpp-websocket`. `consider_websocket_secure`
 * matches ours, which counts a loopback WebSocket as encrypted. `cross_domain_websocket` is left
 * out: 0.12 deprecates it, and the load generator sends no Origin.
 */
export const PROSODY_WEBSOCKET_HOST_CONFIG = [
  `modules_enabled = { "websocket" }`,
  `consider_websocket_secure = true`,
];

/** One kind of server under test. */
export interface ServerKind {
  /** Short name used in the table header. */
  readonly name: string;
  /** Label written into the JSON lines (server and version). */
  readonly label: string;
  /** Creates the accounts and keeps them as the snapshot every start restores. */
  provision(spec: ProvisionSpec, bench: BenchRunner): Promise<void>;
  /** A fresh process from the snapshot. */
  start(opts: StartOptions): Promise<RunningServer>;
  /** Removes the scratch directory. */
  cleanup(): Promise<void>;
  /** Why a start with these options cannot be served (the scenario is skipped), if it cannot. */
  unsupported?(opts: StartOptions): string | undefined;
}

/** Runs xmppbench with the given arguments; resolves with its parsed JSON line, if any. */
export type BenchRunner = (args: readonly string[], timeoutS: number) => Promise<BenchRun>;

/** What one xmppbench invocation produced. */
export interface BenchRun {
  readonly code: number;
  /** The JSON result line, or `undefined` if the tool printed none. */
  readonly json: Readonly<Record<string, unknown>> | undefined;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs a command to completion; throws with its stderr when it fails. */
export async function run(cmd: string, args: readonly string[], env?: Record<string, string>) {
  const out = await new Deno.Command(cmd, {
    args: [...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${dec.decode(out.stderr)}`);
  }
  return dec.decode(out.stdout);
}

/**
 * A free loopback TCP port. The port is released again before the server binds it; the race
 * is acceptable for a benchmark and avoids clashing with fixed ports other jobs use.
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function waitForPort(
  port: number,
  alive: () => boolean,
  timeoutMs: number,
  hostname = "127.0.0.1",
) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!alive()) throw new Error(`server exited before listening on ${port}`);
    try {
      const c = await Deno.connect({ hostname, port });
      c.close();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`server did not listen on ${hostname}:${port} within ${timeoutMs} ms`);
}

async function restore(snapshot: string, target: string) {
  await Deno.remove(target, { recursive: true }).catch(() => {});
  // cp -a keeps owners and modes, which Prosody (running as its own user) needs.
  await run("cp", ["-a", snapshot, target]);
}

/** Runs `fn` on 1..n with at most `concurrency` in flight. */
async function pool(n: number, concurrency: number, fn: (i: number) => Promise<void>) {
  let next = 1;
  async function worker() {
    while (next <= n) await fn(next++);
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}

/** The last lines of a log file, for error messages. */
async function logTail(logFile: string, lines: number): Promise<string> {
  const log = await Deno.readTextFile(logFile).catch(() => "");
  return log.trimEnd().split("\n").slice(-lines).join("\n");
}

/**
 * Starts our server on `config` with its output appended to `logFile`, and waits until each of
 * `ports` on 127.0.0.1 listens. `stop` sends SIGTERM, then SIGKILL after 10 s.
 */
async function spawnOurs(
  mainTs: string,
  config: string,
  logFile: string,
  ports: readonly number[],
  cpuProfDir?: string,
): Promise<{ pid: number; stop: () => Promise<void> }> {
  // exec keeps the pid, so the child's pid is the server's; bash only raises the fd limit.
  const child = new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n ${NOFILE} 2>/dev/null; exec "$@" >>"$LOG" 2>&1`,
      "bash",
      Deno.execPath(),
      "run",
      "--allow-all",
      // The flags `deno task start` uses (see README, Benchmarks), unless the run overrides them.
      "--no-code-cache",
      ...v8Flags(Deno.env.get("OUR_V8_FLAGS") ?? SERVER_V8_FLAGS),
      // Written when the process exits; `main.ts serve` exits normally on SIGTERM.
      ...(cpuProfDir === undefined ? [] : ["--cpu-prof", `--cpu-prof-dir=${cpuProfDir}`]),
      // For heap snapshots of a loaded server (a DevTools client on this address).
      ...(Deno.env.get("OUR_INSPECT") ? [`--inspect=${Deno.env.get("OUR_INSPECT")}`] : []),
      mainTs,
      "--config",
      config,
    ],
    env: { LOG: logFile },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (exited) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => {
      if (!exited) child.kill("SIGKILL");
    }, 10_000);
    await status;
    clearTimeout(timer);
  };
  try {
    for (const port of ports) await waitForPort(port, () => !exited, 30_000);
  } catch (e) {
    await stop();
    throw new Error(`${(e as Error).message}\n${await logTail(logFile, 20)}`);
  }
  return { pid: child.pid, stop };
}

/**
 * This project's server, started as `deno run --allow-all main.ts --config FILE`.
 * `OUR_LOG_LEVEL` sets its `log_level` (default "warning"; "info" for a debug run), and
 * `OUR_V8_FLAGS` passes `--v8-flags`. The log of all runs goes to `<scratch>/server.log`.
 */
export async function ourServer(mainTs: string, label: string): Promise<ServerKind> {
  const scratch = await Deno.makeTempDir({ prefix: "bench_load_ours_" });
  const snapshot = `${scratch}/snapshot`;
  const data = `${scratch}/data`;
  const logFile = `${scratch}/server.log`;
  const logLevel = Deno.env.get("OUR_LOG_LEVEL") ?? "warning";

  async function provision(spec: ProvisionSpec, bench: BenchRunner) {
    const accounts = openAccountStore(snapshot);
    // The certificate the server would make on its first start, made once here so that every
    // start loads the same one instead of generating a key pair (the TLS runs need it).
    await ensureSelfSigned(snapshot, "localhost");
    const names = Array.from({ length: spec.users }, (_, i) => `bench${i + 1}`);
    for (let i = 1; i <= spec.fanContacts; i++) names.push(`fan${i}`);
    if (spec.fanContacts > 0) names.push("fanhub");
    // Each create runs PBKDF2 twice (SHA-1 and SHA-256); overlapping the file writes helps.
    await pool(names.length, 8, (i) => accounts.create("localhost", names[i - 1], "benchpass"));
    if (spec.fanContacts === 0) return;
    // Subscriptions go through the server like Prosody's do, then become part of the snapshot,
    // so measured runs start from populated rosters instead of paying for the flows each time.
    const s = await start({ archive: false });
    let r: BenchRun;
    try {
      r = await bench([
        "--scenario",
        "fanout",
        "--port",
        String(s.port),
        "--contacts",
        String(spec.fanContacts),
        "--updates",
        "1",
        // Our server offers PLAIN only over TLS.
        "--mech",
        "SCRAM-SHA-1",
        "--quiesce-max",
        "0",
      ], 300);
    } finally {
      await s.stop();
    }
    if (r.json?.ok !== true) {
      const why = typeof r.json?.error === "string" ? r.json.error : r.stderr.trim();
      throw new Error(
        `ours: fanout subscriptions failed: ${why}\nserver log (${logLevel}):\n${await logTail(
          logFile,
          30,
        )}`,
      );
    }
    await restore(data, snapshot);
  }

  async function start(opts: StartOptions): Promise<RunningServer> {
    await restore(snapshot, data);
    const port = freePort();
    const httpPort = opts.websocket ? freePort() : undefined;
    const config = `${scratch}/config.toml`;
    await Deno.writeTextFile(
      config,
      [
        `hosts = ["localhost"]`,
        `data_dir = ${JSON.stringify(data)}`,
        `interfaces = ["127.0.0.1"]`,
        `c2s_port = ${port}`,
        `c2s_direct_tls_port = false`,
        `s2s_port = false`,
        `component_port = false`,
        `http = { http_port = ${httpPort ?? false}, https_port = false }`,
        `require_encryption = ${opts.tls ?? false}`,
        // "always" archives every message, as Prosody's template (`default_archive_policy =
        // true`) does; our default ("roster") would skip the bench pairs, who share no roster.
        ...(opts.archive
          ? [`archive_enabled = true`, `archive_policy = "always"`]
          : [`archive_enabled = false`]),
        `log_level = ${JSON.stringify(logLevel)}`,
        // A table ends the top-level keys, so it comes last.
        `[muc]`,
        `archiving = ${opts.archive}`,
        ...(httpPort === undefined ? [] : [`[upload]`, `enabled = false`]),
        ``,
      ].join("\n"),
    );
    const { pid, stop } = await spawnOurs(
      mainTs,
      config,
      logFile,
      httpPort === undefined ? [port] : [port, httpPort],
      opts.cpuProfDir,
    );
    return { pid, port, ...(httpPort === undefined ? {} : { httpPort }), stop };
  }

  return {
    name: "ours",
    label,
    provision,
    start,
    cleanup: () => Deno.remove(scratch, { recursive: true }).catch(() => {}),
  };
}

/** Whether `prosody` is on PATH. */
export async function prosodyInstalled(): Promise<boolean> {
  try {
    await run("bash", ["-c", "command -v prosody"]);
    return true;
  } catch {
    return false;
  }
}

/** Prosody's packaged version, e.g. `0.12.3`, or `unknown`. */
export async function prosodyVersion(): Promise<string> {
  try {
    const v = await run("dpkg-query", ["-W", "-f=${Version}", "prosody"]);
    return v.trim().replace(/-[^-]*$/, "") || "unknown";
  } catch {
    return "unknown";
  }
}

/** Prosody through ../shared/bench/prosody/{start,stop}.sh. */
export async function prosodyServer(scriptsDir: string, label: string): Promise<ServerKind> {
  const scratch = await Deno.makeTempDir({ prefix: "bench_load_prosody_" });
  // start.sh runs Prosody as the `prosody` user, which must reach the scratch directory.
  await Deno.chmod(scratch, 0o755);
  const inst = `${scratch}/instance`;
  const snapshot = `${scratch}/snapshot`;

  async function startAt(
    extraConfig: string,
    websocket = false,
    tls = false,
  ): Promise<RunningServer> {
    const port = freePort();
    const httpPort = freePort();
    const out = await run(
      `${scriptsDir}/start.sh`,
      [inst, String(port), String(freePort()), String(httpPort)],
      {
        ...Deno.env.toObject(),
        PROSODY_EXTRA_CONFIG: extraConfig,
        NOFILE: String(NOFILE),
        // mod_tls and `ssl = { certificate, key }` with a self-signed pair made by start.sh.
        PROSODY_TLS: tls ? "1" : "0",
      },
    );
    const pid = Number(out.trim().split("\n").pop());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`start.sh printed no pid: ${out}`);
    const stop = () => run(`${scriptsDir}/stop.sh`, [inst]).then(() => {});
    // start.sh waits until the c2s port listens; the HTTP listener comes up in the same start.
    if (websocket) {
      try {
        await waitForPort(httpPort, () => true, 15_000);
      } catch (e) {
        await stop().catch(() => {});
        throw e;
      }
    }
    return { pid, port, ...(websocket ? { httpPort } : {}), stop };
  }

  async function provision(spec: ProvisionSpec, bench: BenchRunner) {
    await Deno.remove(inst, { recursive: true }).catch(() => {});
    const s = await startAt("");
    try {
      const reg = async (args: readonly string[], what: string) => {
        const r = await bench(
          ["--scenario", "register", "--port", String(s.port), "--concurrency", "10", ...args],
          900,
        );
        if (r.json?.ok !== true) {
          throw new Error(`Prosody: registering ${what} failed: ${r.stdout}`);
        }
      };
      await reg(["--users", String(spec.users)], `bench1..bench${spec.users}`);
      if (spec.fanContacts > 0) {
        await reg(["--user-prefix", "fan", "--users", String(spec.fanContacts)], "fan contacts");
        await reg(["--names", "fanhub"], "fanhub");
        // The fanout setup phase establishes the subscriptions; one update only.
        const r = await bench([
          "--scenario",
          "fanout",
          "--port",
          String(s.port),
          "--contacts",
          String(spec.fanContacts),
          "--updates",
          "1",
          "--mech",
          "PLAIN",
        ], 300);
        if (r.json?.ok !== true) throw new Error(`Prosody: fanout subscriptions failed`);
      }
    } finally {
      await s.stop();
    }
    await restore(`${inst}/data`, snapshot);
  }

  async function start(opts: StartOptions): Promise<RunningServer> {
    await run(`${scriptsDir}/stop.sh`, [inst]).catch(() => {});
    await restore(snapshot, `${inst}/data`);
    // A second global `default_archive_policy` would make Prosody 0.12.3 fail to read its
    // config (its duplicate-option warning crashes on a nil line number), so the override
    // goes into the host section, which takes precedence over the template's global one.
    // The component comes after the host section so that the template's own `VirtualHost
    // "localhost"` line, which follows the extra configuration, closes it again.
    // c2s_require_encryption also goes into the host section (the template sets it globally);
    // mod_saslauth and mod_tls read it per host, so no login happens before STARTTLS.
    const hostOptions = [
      ...(opts.archive ? [] : [`default_archive_policy = false`]),
      ...(opts.tls ? [`c2s_require_encryption = true`] : []),
      ...(opts.websocket ? PROSODY_WEBSOCKET_HOST_CONFIG : []),
    ];
    const extra = [
      ...(hostOptions.length ? [`VirtualHost "localhost"`, ...hostOptions] : []),
      ...(opts.muc ? [PROSODY_MUC_CONFIG] : []),
    ];
    return await startAt(extra.join("; "), opts.websocket ?? false, opts.tls ?? false);
  }

  return {
    name: "Prosody",
    label,
    provision,
    start,
    cleanup: () => Deno.remove(scratch, { recursive: true }).catch(() => {}),
  };
}

/** Whether `ejabberdctl` is on PATH (Debian's `ejabberd` package). */
export async function ejabberdInstalled(): Promise<boolean> {
  try {
    await run("bash", ["-c", "command -v ejabberdctl"]);
    return true;
  } catch {
    return false;
  }
}

/** ejabberd's packaged version, e.g. `23.01`, or `unknown`. */
export async function ejabberdVersion(): Promise<string> {
  try {
    const v = await run("dpkg-query", ["-W", "-f=${Version}", "ejabberd"]);
    return v.trim().replace(/-[^-]*$/, "") || "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * ejabberd through ../shared/bench/ejabberd/{start,stop,ctl}.sh, as they are: its c2s listener
 * on a free loopback port, Erlang distribution on another (no epmd), Mnesia spool in the
 * scratch directory. Accounts by in-band registration with xmppbench and `fanhub` with
 * `ejabberdctl register` (as run-suite.sh does), fanout subscriptions by xmppbench's setup phase.
 * The template has no MUC service and no HTTP listener, so `muc` and the WebSocket scenarios
 * are skipped. Archiving: `EJABBERD_MAM_DEFAULT` always (archive on) or never (off), as
 * run-suite.sh's msg and msg-nomam.
 */
export async function ejabberdServer(scriptsDir: string, label: string): Promise<ServerKind> {
  const scratch = await Deno.makeTempDir({ prefix: "bench_load_ejabberd_" });
  // start.sh hands the instance to the `ejabberd` user, which must reach it.
  await Deno.chmod(scratch, 0o755);
  const inst = `${scratch}/instance`;
  const snapshot = `${scratch}/snapshot`;
  // Mnesia keeps the node name in its schema, so every start of this snapshot uses the same
  // one; a name of its own keeps it apart from any other benchmark instance.
  const node = `ejbench${Math.floor(Math.random() * 1e9)}@localhost`;

  async function startAt(archive: boolean): Promise<RunningServer> {
    const port = freePort();
    const out = await run(`${scriptsDir}/start.sh`, [inst, String(port), String(freePort())], {
      ...Deno.env.toObject(),
      EJABBERD_NODE: node,
      EJABBERD_MAM_DEFAULT: archive ? "always" : "never",
      NOFILE: String(NOFILE),
    });
    const pid = Number(out.trim().split("\n").pop());
    if (!Number.isInteger(pid) || pid <= 0) throw new Error(`start.sh printed no pid: ${out}`);
    const stop = () => run(`${scriptsDir}/stop.sh`, [inst]).then(() => {});
    return { pid, port, stop };
  }

  async function provision(spec: ProvisionSpec, bench: BenchRunner) {
    await Deno.remove(inst, { recursive: true }).catch(() => {});
    const s = await startAt(false);
    try {
      const reg = async (args: readonly string[], what: string) => {
        const r = await bench(
          ["--scenario", "register", "--port", String(s.port), "--concurrency", "10", ...args],
          1800,
        );
        if (r.json?.ok !== true) {
          throw new Error(`ejabberd: registering ${what} failed: ${r.stdout}`);
        }
      };
      await reg(["--users", String(spec.users)], `bench1..bench${spec.users}`);
      if (spec.fanContacts > 0) {
        await reg(["--user-prefix", "fan", "--users", String(spec.fanContacts)], "fan contacts");
        await run(`${scriptsDir}/ctl.sh`, [inst, "register", "fanhub", "localhost", "benchpass"]);
        // SCRAM: ejabberd's PLAIN login runs a pure-Erlang PBKDF2 (~20 ms each).
        const r = await bench([
          "--scenario",
          "fanout",
          "--port",
          String(s.port),
          "--contacts",
          String(spec.fanContacts),
          "--updates",
          "1",
          "--mech",
          "SCRAM-SHA-1",
        ], 300);
        if (r.json?.ok !== true) throw new Error(`ejabberd: fanout subscriptions failed`);
      }
    } finally {
      await s.stop();
    }
    await restore(`${inst}/spool`, snapshot);
  }

  async function start(opts: StartOptions): Promise<RunningServer> {
    await run(`${scriptsDir}/stop.sh`, [inst]).catch(() => {});
    await restore(snapshot, `${inst}/spool`);
    return await startAt(opts.archive);
  }

  return {
    name: "ejabberd",
    label,
    provision,
    start,
    unsupported: (opts) =>
      opts.muc
        ? "the shared ejabberd template loads no mod_muc"
        : opts.websocket
        ? "the shared ejabberd template has no HTTP/WebSocket listener"
        : undefined,
    cleanup: () => Deno.remove(scratch, { recursive: true }).catch(() => {}),
  };
}

/** One server of a federating pair (the `s2s` scenario), as the load generator reaches it. */
export interface FederatedServer {
  /** The process whose CPU the generator samples. */
  readonly pid: number;
  /** Its c2s address and port. */
  readonly host: string;
  readonly port: number;
  /** Its XMPP domain. */
  readonly domain: string;
}

/** Two servers of one kind federating with each other, started for one measurement. */
export interface RunningPair {
  readonly a: FederatedServer;
  readonly b: FederatedServer;
  /** Stops both and waits for them to be gone. */
  stop(): Promise<void>;
}

/** A kind of server run as a federating pair. */
export interface PairKind {
  readonly name: string;
  readonly label: string;
  /** Creates bench1..bench<users> on both servers, kept as the snapshot every start restores. */
  provision(users: number, bench: BenchRunner): Promise<void>;
  /** A fresh pair of processes from the snapshot. */
  start(): Promise<RunningPair>;
  /** Removes the scratch directory. */
  cleanup(): Promise<void>;
}

/** Stops both servers of a pair, whatever happens to one of them. */
function stopBoth(...stops: (() => Promise<void>)[]): () => Promise<void> {
  return async () => {
    await Promise.allSettled(stops.map((s) => s()));
  };
}

/**
 * Two of our servers, `a.localhost` and `b.localhost`, on 127.0.0.1 with their own ephemeral
 * ports, each finding the other through `[s2s] hosts`. Nothing else differs from a default
 * server but what keeps the two comparable to Prosody's pair (and lets two run side by side):
 * plain-text c2s allowed, no archiving, no MUC, pubsub or upload service, no direct-TLS,
 * component or HTTP port. Between them the defaults hold: STARTTLS with the self-signed
 * certificates each makes (not trusted by the other), then dialback.
 */
export async function ourPair(mainTs: string, label: string): Promise<PairKind> {
  const scratch = await Deno.makeTempDir({ prefix: "bench_s2s_ours_" });
  const logLevel = Deno.env.get("OUR_LOG_LEVEL") ?? "warning";
  const sides = ["a", "b"].map((x) => ({
    domain: `${x}.localhost`,
    snapshot: `${scratch}/snapshot-${x}`,
    data: `${scratch}/data-${x}`,
    logFile: `${scratch}/server-${x}.log`,
    config: `${scratch}/config-${x}.toml`,
  }));

  async function provision(users: number) {
    for (const side of sides) {
      const accounts = openAccountStore(side.snapshot);
      await pool(users, 8, (i) => accounts.create(side.domain, `bench${i}`, "benchpass"));
    }
  }

  async function start(): Promise<RunningPair> {
    const c2s = sides.map(() => freePort());
    const s2s = sides.map(() => freePort());
    const started: { pid: number; stop: () => Promise<void> }[] = [];
    try {
      for (const [i, side] of sides.entries()) {
        const other = sides[1 - i];
        await restore(side.snapshot, side.data);
        await Deno.writeTextFile(
          side.config,
          [
            `hosts = [${JSON.stringify(side.domain)}]`,
            `data_dir = ${JSON.stringify(side.data)}`,
            `interfaces = ["127.0.0.1"]`,
            `c2s_port = ${c2s[i]}`,
            `c2s_direct_tls_port = false`,
            `s2s_port = ${s2s[i]}`,
            `s2s_direct_tls_port = false`,
            `component_port = false`,
            `http = { http_port = false, https_port = false }`,
            `require_encryption = false`,
            `archive_enabled = false`,
            `log_level = ${JSON.stringify(logLevel)}`,
            `[muc]`,
            `enabled = false`,
            `[pubsub]`,
            `enabled = false`,
            `[upload]`,
            `enabled = false`,
            `[s2s]`,
            `hosts = { ${JSON.stringify(other.domain)} = "127.0.0.1:${s2s[1 - i]}" }`,
            ``,
          ].join("\n"),
        );
        started.push(await spawnOurs(mainTs, side.config, side.logFile, [c2s[i], s2s[i]]));
      }
    } catch (e) {
      await stopBoth(...started.map((s) => s.stop))();
      throw e;
    }
    const server = (i: number): FederatedServer => ({
      pid: started[i].pid,
      host: "127.0.0.1",
      port: c2s[i],
      domain: sides[i].domain,
    });
    return { a: server(0), b: server(1), stop: stopBoth(...started.map((s) => s.stop)) };
  }

  return {
    name: "ours",
    label,
    provision: (users) => provision(users),
    start,
    cleanup: () => Deno.remove(scratch, { recursive: true }).catch(() => {}),
  };
}

/**
 * The loopback addresses of Prosody's pair, which are also its domains. Prosody 0.12 finds a
 * remote server by SRV, then on port 5269 of the domain, with no static map; for an IP-literal
 * domain it skips DNS and connects to that address (net/resolvers/service.lua, basic.lua). So
 * each instance serves the domain that is its own address and listens there on 5269. Not .2
 * and .3, which federation tests may take for themselves at the same time.
 */
export const PROSODY_PAIR_ADDRESSES = ["127.0.0.22", "127.0.0.23"] as const;

/** A Prosody configuration for one server of the federating pair. */
export function prosodyPairConfig(
  dir: string,
  address: string,
  c2sPort: number,
  runAsRoot: boolean,
): string {
  return [
    `-- Prosody 0.12, one of two federating benchmark instances (written by bench/_servers.ts).`,
    `pidfile = "${dir}/prosody.pid"`,
    `data_path = "${dir}/data"`,
    `plugin_paths = { }`,
    `admins = { }`,
    `run_as_root = ${runAsRoot}`,
    `interfaces = { "${address}" }`,
    `c2s_interfaces = { "${address}" }`,
    `c2s_ports = { ${c2sPort} }`,
    `c2s_direct_tls_ports = { }`,
    `legacy_ssl_ports = { }`,
    `s2s_interfaces = { "${address}" }`,
    `s2s_ports = { 5269 }`,
    `s2s_direct_tls_ports = { }`,
    `http_ports = { }`,
    `https_ports = { }`,
    `c2s_require_encryption = false`,
    `allow_unencrypted_plain_auth = true`,
    // As ours between its pair: STARTTLS when offered (self-signed, so not trusted), then
    // dialback, which s2s_secure_auth = false allows.
    `s2s_require_encryption = false`,
    `s2s_secure_auth = false`,
    `ssl = { certificate = "${dir}/tls/cert.pem"; key = "${dir}/tls/key.pem"; }`,
    `authentication = "internal_hashed"`,
    `storage = "internal"`,
    `allow_registration = true`,
    `default_archive_policy = false`,
    `log = { warn = "${dir}/prosody.log" }`,
    // The bench template's modules, with TLS and dialback, and without disabling s2s.
    `modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "presence"; ` +
    `"message"; "ping"; "carbons"; "mam"; "offline"; "smacks"; "register"; }`,
    `VirtualHost "${address}"`,
    ``,
  ].join("\n");
}

/**
 * Two Prosody instances federating over loopback: domains and addresses
 * {@link PROSODY_PAIR_ADDRESSES}, each with a self-signed certificate for its address, run as
 * the `prosody` user as ../shared/bench/prosody/start.sh does; stopped with its stop.sh.
 */
export async function prosodyPair(scriptsDir: string, label: string): Promise<PairKind> {
  const scratch = await Deno.makeTempDir({ prefix: "bench_s2s_prosody_" });
  await Deno.chmod(scratch, 0o755);
  const user = "prosody";
  const asRoot = Deno.uid() === 0;
  const hasUser = asRoot &&
    await run("id", [user]).then(() => true, () => false);
  const sides = PROSODY_PAIR_ADDRESSES.map((address) => ({
    address,
    dir: `${scratch}/${address}`,
    snapshot: `${scratch}/snapshot-${address}`,
  }));

  async function startOne(
    side: (typeof sides)[number],
  ): Promise<{ pid: number; port: number; stop: () => Promise<void> }> {
    const port = freePort();
    await Deno.mkdir(`${side.dir}/data`, { recursive: true });
    await Deno.mkdir(`${side.dir}/tls`, { recursive: true });
    await run("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "7",
      "-subj",
      `/CN=${side.address}`,
      "-addext",
      `subjectAltName=IP:${side.address}`,
      "-keyout",
      `${side.dir}/tls/key.pem`,
      "-out",
      `${side.dir}/tls/cert.pem`,
    ]);
    const config = `${side.dir}/prosody.cfg.lua`;
    await Deno.writeTextFile(
      config,
      prosodyPairConfig(side.dir, side.address, port, !hasUser && asRoot),
    );
    await Deno.remove(`${side.dir}/prosody.pid`).catch(() => {});
    let priv: string[] = [];
    if (hasUser) {
      const gid = (await run("id", ["-g", user])).trim();
      await run("chown", ["-R", `${user}:${gid}`, side.dir]);
      priv = ["setpriv", `--reuid=${user}`, `--regid=${gid}`, "--init-groups", "--"];
    }
    const prosody = Deno.env.get("PROSODY_BIN") ?? "prosody";
    // setsid and a file for its output, as start.sh does; Prosody writes its pid file itself.
    await run("bash", [
      "-c",
      `ulimit -n ${NOFILE} 2>/dev/null; setsid "$@" > "$OUT" 2>&1 < /dev/null &`,
      "bash",
      ...priv,
      prosody,
      "--config",
      config,
      "-F",
    ], { ...Deno.env.toObject(), OUT: `${side.dir}/prosody.stdout` });
    const stop = () => run(`${scriptsDir}/stop.sh`, [side.dir]).then(() => {});
    try {
      await waitForPort(port, () => true, 20_000, side.address);
      await waitForPort(5269, () => true, 20_000, side.address);
      let pid = NaN;
      for (let i = 0; i < 50 && !(pid > 0); i++) {
        pid = Number((await Deno.readTextFile(`${side.dir}/prosody.pid`).catch(() => "")).trim());
        if (!(pid > 0)) await new Promise((r) => setTimeout(r, 100));
      }
      if (!(pid > 0)) throw new Error(`no pid file in ${side.dir}`);
      return { pid, port, stop };
    } catch (e) {
      await stop().catch(() => {});
      const out = await logTail(`${side.dir}/prosody.stdout`, 10);
      throw new Error(`Prosody on ${side.address}: ${(e as Error).message}\n${out}`);
    }
  }

  async function startPair(): Promise<RunningPair> {
    const started: { pid: number; port: number; stop: () => Promise<void> }[] = [];
    try {
      for (const side of sides) started.push(await startOne(side));
    } catch (e) {
      await stopBoth(...started.map((s) => s.stop))();
      throw e;
    }
    const server = (i: number): FederatedServer => ({
      pid: started[i].pid,
      host: sides[i].address,
      port: started[i].port,
      domain: sides[i].address,
    });
    return { a: server(0), b: server(1), stop: stopBoth(...started.map((s) => s.stop)) };
  }

  async function provision(users: number, bench: BenchRunner) {
    for (const side of sides) await Deno.remove(side.dir, { recursive: true }).catch(() => {});
    const pair = await startPair();
    try {
      for (const s of [pair.a, pair.b]) {
        const r = await bench([
          "--scenario",
          "register",
          "--host",
          s.host,
          "--port",
          String(s.port),
          "--domain",
          s.domain,
          "--users",
          String(users),
          "--concurrency",
          "10",
        ], 300);
        if (r.json?.ok !== true) {
          throw new Error(
            `Prosody ${s.domain}: registering bench1..bench${users} failed: ${r.stdout}`,
          );
        }
      }
    } finally {
      await pair.stop();
    }
    for (const side of sides) await restore(`${side.dir}/data`, side.snapshot);
  }

  async function start(): Promise<RunningPair> {
    for (const side of sides) {
      await run(`${scriptsDir}/stop.sh`, [side.dir]).catch(() => {});
      await Deno.mkdir(side.dir, { recursive: true });
      await restore(side.snapshot, `${side.dir}/data`);
    }
    return await startPair();
  }

  return {
    name: "Prosody",
    label,
    provision,
    start,
    cleanup: () => Deno.remove(scratch, { recursive: true }).catch(() => {}),
  };
}
