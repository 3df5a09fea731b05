/**
 * Load benchmark: this server beside Prosody and ejabberd, measured with
 * ../shared/bench/xmppbench.mjs in one run, so all see the same machine at the same time.
 * `--tls` puts STARTTLS on every client connection (encryption required by ours and Prosody),
 * `--both` runs TLS and plain TCP and makes the headline table TLS with plain TCP beside it.
 *
 * `deno run --allow-all bench/load.ts [--scenarios login,idle,msg,msg-archive,fanout,muc,ws-idle,
 * ws-msg,s2s] ...` (`--help` lists the flags). xmppbench has no group chat scenario; `muc` runs
 * bench/muc_load.mjs instead, which writes the same JSON fields. xmppbench speaks only TCP;
 * `ws-idle` and `ws-msg` run its idle and msg over WebSocket (RFC 7395) with bench/ws_load.mjs,
 * again with the same fields, against servers started with their WebSocket endpoint on.
 * `s2s` runs two servers of each kind federating (ours↔ours, then Prosody↔Prosody) and
 * bench/s2s_load.mjs between them: senders on one, receivers on the other, CPU of both.
 * Every measured run is a fresh
 * server process started from provisioned accounts, after an unrecorded warm-up of 20 logins;
 * servers alternate within each repeat so that noise from other jobs falls on both. Prosody is
 * skipped when not installed.
 *
 * Prints a Markdown table (medians over repeats), appends the generators' raw JSON lines to
 * `bench/results/load-<date>.jsonl` and writes the table to `bench/results/latest.md`.
 *
 * @module
 */

import { parseArgs } from "node:util";
import {
  type BenchJson,
  bestPeer,
  type Column,
  formatNumber,
  metricMedian,
  METRICS,
  type Outcome,
  renderFailures,
  renderHeadline,
  renderTable,
  type Scenario,
} from "./_report.ts";
import { renderSplit, splitProfile } from "./profile_split.ts";
import {
  type BenchRun,
  ejabberdInstalled,
  ejabberdServer,
  ejabberdVersion,
  NOFILE,
  ourPair,
  ourServer,
  type PairKind,
  prosodyInstalled,
  prosodyPair,
  prosodyServer,
  prosodyVersion,
  run,
  type RunningServer,
  type ServerKind,
  type StartOptions,
} from "./_servers.ts";
import { optionsOrExit, warmupArgs } from "./_cli.ts";

const HELP = `usage: deno run --allow-all bench/load.ts [flags]

  --scenarios LIST      comma-separated: baseline, login, idle, churn, msg, msg-archive,
                        fanout, muc, ws-idle, ws-msg, s2s, idle-10k [all of them]; msg runs
                        the servers with message archiving off, msg-archive the same with
                        archiving on; ws-idle and ws-msg are idle and msg over WebSocket
                        (RFC 7395, /xmpp-websocket); s2s is msg between two federating servers
                        of each kind; baseline is the RSS of a started server without
                        connections; churn is rounds of logins and logouts; idle-10k holds
                        10,000 STARTTLS connections (always TLS)
  --tls                 STARTTLS on every client connection, with encryption required by
                        ours and Prosody (ejabberd offers it); ws-* stay plain ws on loopback
  --both                run every scenario that depends on it twice, TLS and plain TCP; the
                        report's headline table shows TLS with plain TCP beside it
  --repeats N           measured runs per scenario and server; the table shows medians [1]
  --users N             login: logins [300]
  --concurrency N       login: logins in flight [20]
  --idle-users N        idle, ws-idle: connections held [1000]
  --idle-concurrency N  idle, ws-idle: logins in flight during the ramp [50]
  --hold S              idle, ws-idle, idle-10k: seconds to hold the connections [5]
  --settle S            baseline: seconds after the start (and after the 20 warm-up logins)
                        before RSS is read; churn: before the burst and after it [5]
  --churn-seconds S     churn: how long rounds of logins and logouts go on [60]
  --churn-users N       churn: logins per round, all logged out before the next round [100]
  --pairs N             msg, msg-archive, ws-msg, s2s: sender/receiver pairs [20]
  --messages N          msg, msg-archive, ws-msg: messages per pair [500]
  --window N            msg, msg-archive, ws-msg, s2s: unacknowledged messages per pair [10]
  --contacts N          fanout: contacts [200]
  --updates N           fanout: presence updates [300]
  --rooms N             muc: rooms [10]
  --occupants N         muc: occupants per room [10]
  --muc-messages N      muc: groupchat messages each occupant sends [50]
  --muc-window N        muc: unreflected messages per sender [5]
  --muc-warmup N        muc: unrecorded warm-up messages per occupant [50]; fewer leave
                        V8's JIT warm-up in our server's measured phase
  --s2s-messages N      s2s: measured messages per pair [200]
  --s2s-warmup N        s2s: unrecorded warm-up messages per pair [50] (they open the links)
  --mech M              SCRAM-SHA-1 | PLAIN [SCRAM-SHA-1] (our server offers PLAIN only over TLS)
  --roster-get MODE     auto | yes | no: roster get during login, the same for both servers;
                        auto = yes unless our server cannot answer it yet [auto]
  --no-prosody          leave Prosody out
  --no-ejabberd         leave ejabberd out
  --profile             after the measured runs, one more unrecorded run of each scenario on
                        our server under \`deno run --cpu-prof\`; the CPU split of its measured
                        phase goes to bench/results/profile-<scenario>[-tcp].md
  --no-save             print only; write nothing under bench/results/
  --xmppbench PATH      the load generator [../shared/bench/xmppbench.mjs]
  --muc-load PATH       the group chat load generator [bench/muc_load.mjs]
  --ws-load PATH        the WebSocket load generator [bench/ws_load.mjs]
  --s2s-load PATH       the server-to-server load generator [bench/s2s_load.mjs]
  --verbose             pass the generators' progress output through
`;

const ALL_SCENARIOS: readonly Scenario[] = [
  "baseline",
  "login",
  "idle",
  "churn",
  "msg",
  "msg-archive",
  "fanout",
  "muc",
  "ws-idle",
  "ws-msg",
  "s2s",
  "idle-10k",
];

/** Connections the idle-10k scenario holds. */
const IDLE_10K = 10_000;

/** Transports a scenario runs over: STARTTLS (encryption required) or plain TCP. */
type Mode = "tls" | "tcp";

/**
 * Scenarios that do not depend on `--tls`, run once even with `--both`: the WebSocket ones stay
 * plain ws on loopback, s2s has TLS between the servers and plain c2s, idle-10k is always TLS.
 */
const MODE_FREE: readonly Scenario[] = ["ws-idle", "ws-msg", "s2s", "idle-10k"];

/** The scenarios over WebSocket: bench/ws_load.mjs, servers started with their endpoint on. */
const isWebSocket = (s: Scenario) => s === "ws-idle" || s === "ws-msg";

interface Options {
  readonly scenarios: readonly Scenario[];
  readonly repeats: number;
  readonly users: number;
  readonly concurrency: number;
  readonly idleUsers: number;
  readonly idleConcurrency: number;
  readonly hold: number;
  readonly pairs: number;
  readonly messages: number;
  readonly window: number;
  readonly contacts: number;
  readonly updates: number;
  readonly rooms: number;
  readonly occupants: number;
  readonly mucMessages: number;
  readonly mucWindow: number;
  readonly mucWarmup: number;
  readonly s2sMessages: number;
  readonly s2sWarmup: number;
  readonly mech: string;
  readonly rosterGet: "auto" | "yes" | "no";
  readonly prosody: boolean;
  readonly ejabberd: boolean;
  readonly tls: boolean;
  readonly both: boolean;
  readonly settle: number;
  readonly churnSeconds: number;
  readonly churnUsers: number;
  readonly profile: boolean;
  readonly save: boolean;
  readonly xmppbench: string;
  readonly mucLoad: string;
  readonly wsLoad: string;
  readonly s2sLoad: string;
  readonly verbose: boolean;
}

function positive(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name}: expected a positive integer`);
  return n;
}

function nonNegative(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0) throw new Error(`--${name}: expected an integer ≥ 0`);
  return n;
}

function parseOptions(args: readonly string[]): Options | undefined {
  const str = { type: "string" } as const;
  const bool = { type: "boolean" } as const;
  const { values } = parseArgs({
    args: [...args],
    strict: true,
    options: {
      scenarios: str,
      repeats: str,
      users: str,
      concurrency: str,
      "idle-users": str,
      "idle-concurrency": str,
      hold: str,
      pairs: str,
      messages: str,
      window: str,
      contacts: str,
      updates: str,
      rooms: str,
      occupants: str,
      "muc-messages": str,
      "muc-window": str,
      "muc-warmup": str,
      "s2s-messages": str,
      "s2s-warmup": str,
      mech: str,
      "roster-get": str,
      "no-prosody": bool,
      "no-ejabberd": bool,
      tls: bool,
      both: bool,
      settle: str,
      "churn-seconds": str,
      "churn-users": str,
      profile: bool,
      "no-save": bool,
      xmppbench: str,
      "muc-load": str,
      "ws-load": str,
      "s2s-load": str,
      verbose: bool,
      help: bool,
    },
  });
  if (values.help) return undefined;
  const scenarios = (values.scenarios ?? ALL_SCENARIOS.join(",")).split(",").map((s) => s.trim());
  for (const s of scenarios) {
    if (!ALL_SCENARIOS.includes(s as Scenario)) throw new Error(`unknown scenario ${s}`);
  }
  const rosterGet = values["roster-get"] ?? "auto";
  if (rosterGet !== "auto" && rosterGet !== "yes" && rosterGet !== "no") {
    throw new Error("--roster-get: expected auto, yes or no");
  }
  const mech = values.mech ?? "SCRAM-SHA-1";
  if (mech !== "SCRAM-SHA-1" && mech !== "PLAIN") {
    throw new Error("--mech: expected SCRAM-SHA-1 or PLAIN");
  }
  return {
    scenarios: ALL_SCENARIOS.filter((s) => scenarios.includes(s)),
    repeats: positive("repeats", values.repeats, 1),
    users: positive("users", values.users, 300),
    concurrency: positive("concurrency", values.concurrency, 20),
    idleUsers: positive("idle-users", values["idle-users"], 1000),
    idleConcurrency: positive("idle-concurrency", values["idle-concurrency"], 50),
    hold: positive("hold", values.hold, 5),
    pairs: positive("pairs", values.pairs, 20),
    messages: positive("messages", values.messages, 500),
    window: positive("window", values.window, 10),
    contacts: positive("contacts", values.contacts, 200),
    updates: positive("updates", values.updates, 300),
    rooms: positive("rooms", values.rooms, 10),
    occupants: positive("occupants", values.occupants, 10),
    mucMessages: positive("muc-messages", values["muc-messages"], 50),
    mucWindow: positive("muc-window", values["muc-window"], 5),
    // 50: with 5, our server's CPU per delivery was 40% higher (JIT warm-up still measured);
    // from 50 on it stays flat (200 gives the same within noise), and Prosody's does not move.
    mucWarmup: nonNegative("muc-warmup", values["muc-warmup"], 50),
    s2sMessages: positive("s2s-messages", values["s2s-messages"], 200),
    s2sWarmup: nonNegative("s2s-warmup", values["s2s-warmup"], 50),
    mech,
    rosterGet,
    prosody: !values["no-prosody"],
    ejabberd: !values["no-ejabberd"],
    tls: values.tls ?? false,
    both: values.both ?? false,
    settle: nonNegative("settle", values.settle, 5),
    churnSeconds: positive("churn-seconds", values["churn-seconds"], 60),
    churnUsers: positive("churn-users", values["churn-users"], 100),
    profile: values.profile ?? false,
    save: !values["no-save"],
    xmppbench: values.xmppbench ??
      new URL("../../shared/bench/xmppbench.mjs", import.meta.url).pathname,
    mucLoad: values["muc-load"] ?? new URL("./muc_load.mjs", import.meta.url).pathname,
    wsLoad: values["ws-load"] ?? new URL("./ws_load.mjs", import.meta.url).pathname,
    s2sLoad: values["s2s-load"] ?? new URL("./s2s_load.mjs", import.meta.url).pathname,
    verbose: values.verbose ?? false,
  };
}

function progress(msg: string) {
  console.error(`[bench:load ${new Date().toTimeString().slice(0, 8)}] ${msg}`);
}

/**
 * Runs a load generator (xmppbench, muc_load.mjs or ws_load.mjs) under a raised fd limit; never throws for
 * a failed measurement.
 */
function benchRunner(script: string, verbose: boolean) {
  return async function bench(args: readonly string[], timeoutS: number): Promise<BenchRun> {
    const child = new Deno.Command("bash", {
      args: [
        "-c",
        `ulimit -n ${NOFILE} 2>/dev/null; exec node "$0" "$@"`,
        script,
        ...args,
        "--timeout",
        String(timeoutS),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: verbose ? "inherit" : "piped",
    }).spawn();
    benchChildren.add(child);
    // The generators exit by --timeout on their own; this is the backstop if one hangs anyway.
    const timer = setTimeout(() => child.kill("SIGKILL"), (timeoutS + 30) * 1000);
    const out = await child.output();
    clearTimeout(timer);
    benchChildren.delete(child);
    const dec = new TextDecoder();
    const stdout = dec.decode(out.stdout);
    const line = stdout.split("\n").reverse().find((l) => l.startsWith("{"));
    let json: BenchJson | undefined;
    try {
      json = line === undefined ? undefined : JSON.parse(line);
    } catch {
      json = undefined;
    }
    return { code: out.code, json, stdout, stderr: verbose ? "" : dec.decode(out.stderr) };
  };
}

/** Why a run failed, from its JSON (errors or error) or its output. */
function failureText(r: BenchRun): string {
  const j = r.json;
  if (j === undefined) {
    return `the generator exited ${r.code} without a result: ${r.stderr.trim().split("\n").pop()}`;
  }
  const errors = Array.isArray(j.errors) && j.errors.length > 0 ? j.errors.join("; ") : "";
  const error = typeof j.error === "string" ? j.error.split(" | ")[0] : "";
  return error || errors || r.stdout.split("\n").find((l) => l.startsWith("#")) || "failed";
}

function scenarioArgs(s: Scenario, o: Options): string[] {
  switch (s) {
    case "login":
      return ["--users", `${o.users}`, "--concurrency", `${o.concurrency}`];
    case "idle":
    case "ws-idle":
    case "idle-10k":
      return [
        ...(s === "idle" ? [] : ["--scenario", "idle"]),
        "--users",
        `${s === "idle-10k" ? IDLE_10K : o.idleUsers}`,
        "--concurrency",
        `${o.idleConcurrency}`,
        "--hold",
        `${o.hold}`,
      ];
    case "msg":
    case "msg-archive":
    case "ws-msg":
      return [
        ...(s === "ws-msg" ? ["--scenario", "msg"] : []),
        "--pairs",
        `${o.pairs}`,
        "--messages",
        `${o.messages}`,
        "--window",
        `${o.window}`,
      ];
    case "fanout":
      return ["--contacts", `${o.contacts}`, "--updates", `${o.updates}`];
    case "muc":
      return [
        "--rooms",
        `${o.rooms}`,
        "--occupants",
        `${o.occupants}`,
        "--messages",
        `${o.mucMessages}`,
        "--window",
        `${o.mucWindow}`,
        "--warmup",
        `${o.mucWarmup}`,
      ];
    case "s2s":
      return [
        "--pairs",
        `${o.pairs}`,
        "--messages",
        `${o.s2sMessages}`,
        "--window",
        `${o.window}`,
        "--warmup",
        `${o.s2sWarmup}`,
      ];
    case "baseline":
    case "churn":
      // Run by load.ts itself (measureBaseline, measureChurn).
      return [];
  }
}

function scenarioParams(o: Options, rosterGet: boolean): Record<Scenario, string> {
  const login = `${o.mech}, roster get ${rosterGet ? "on" : "off"}`;
  return {
    login: `L=${o.users}, C=${o.concurrency}, ${login}`,
    idle: `N=${o.idleUsers}, C=${o.idleConcurrency}, hold ${o.hold} s, ${login}`,
    msg: `P=${o.pairs}, M=${o.messages}, W=${o.window}, archiving off`,
    "msg-archive": `P=${o.pairs}, M=${o.messages}, W=${o.window}, archiving every message`,
    fanout: `R=${o.contacts}, K=${o.updates}`,
    muc: `R=${o.rooms} rooms × N=${o.occupants} occupants, M=${o.mucMessages} msgs each,` +
      ` W=${o.mucWindow}, warm-up ${o.mucWarmup} msgs each, ${login}, no room archive`,
    "ws-idle": `N=${o.idleUsers}, C=${o.idleConcurrency}, hold ${o.hold} s, ${login}, WebSocket`,
    "ws-msg": `P=${o.pairs}, M=${o.messages}, W=${o.window}, archiving off, WebSocket`,
    s2s: `P=${o.pairs} pairs A→B, M=${o.s2sMessages}, W=${o.window}, warm-up ${o.s2sWarmup},` +
      ` ${login}, archiving off, STARTTLS + dialback`,
    baseline: `settle ${o.settle} s`,
    churn: `${o.churnSeconds} s of rounds of L=${o.churnUsers} logins (C=${o.concurrency}) and` +
      ` logouts, ${login}`,
    "idle-10k": `N=${IDLE_10K}, C=${o.idleConcurrency}, hold ${o.hold} s, ${login}, STARTTLS`,
  };
}

async function machineFacts(): Promise<string[]> {
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? "unknown";
  const node = await run("node", ["--version"]).then((v) => v.trim(), () => "not found");
  return [
    `- date: ${new Date().toISOString()}`,
    `- nproc: ${navigator.hardwareConcurrency}, CPU: ${model}, load average at start: ${
      Deno.loadavg().map((x) => x.toFixed(2)).join(" ")
    }`,
    `- deno ${Deno.version.deno} (V8 ${Deno.version.v8}), node ${node}`,
  ];
}

async function gitRevision(root: string): Promise<string> {
  try {
    return (await run("git", ["-C", root, "rev-parse", "--short", "HEAD"])).trim();
  } catch {
    return "";
  }
}

/** The time since boot in µs, from /proc/uptime: the clock of V8's CPU profiles on Linux. */
async function uptimeUs(): Promise<number> {
  const text = await Deno.readTextFile("/proc/uptime");
  return Math.round(Number(text.split(" ")[0]) * 1e6);
}

/** A process's resident set size in kB (VmRSS), or `undefined` when it is gone. */
async function rssKb(pid: number): Promise<number | undefined> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`).catch(() => "");
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  return m ? Number(m[1]) : undefined;
}

/** A process's utime+stime in seconds (all threads; 10 ms ticks), or `undefined`. */
async function cpuS(pid: number): Promise<number | undefined> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
  // The command name (field 2) may hold spaces; the fields after its ')' are fixed.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return Number.isFinite(ticks) ? ticks / 100 : undefined;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A run measured by load.ts itself, as a generator's result. */
function ownRun(json: BenchJson, human: string): BenchRun {
  return { code: 0, json, stdout: `${JSON.stringify(json)}\n# ${human}\n`, stderr: "" };
}

/**
 * `baseline`: RSS of the server `settle` s after its start, with no connection yet; then the
 * 20-login warm-up (logged in and out again) and RSS after another settle.
 */
async function measureBaseline(
  pid: number,
  settle: number,
  warmup: () => Promise<BenchRun>,
): Promise<BenchRun> {
  const cpu0 = await cpuS(pid);
  await sleep(settle * 1000);
  const rss = await rssKb(pid);
  const cpu1 = await cpuS(pid);
  const w = await warmup();
  await sleep(settle * 1000);
  const after = await rssKb(pid);
  const ok = rss !== undefined && after !== undefined && w.json?.ok === true;
  const json = {
    tool: "bench/load.ts",
    date: new Date().toISOString(),
    scenario: "baseline",
    server_pids: [pid],
    params: { settle_s: settle },
    ok,
    ...(ok ? {} : { error: rss === undefined ? "server gone" : "warm-up logins failed" }),
    rss_kb: rss,
    rss_after_warmup_kb: after,
    settle_cpu_s: cpu0 === undefined || cpu1 === undefined ? undefined : +(cpu1 - cpu0).toFixed(2),
  };
  return ownRun(json, `RSS ${rss} kB after ${settle} s; ${after} kB after 20 logins and a settle`);
}

/**
 * `churn`: rounds of `churnUsers` logins (xmppbench's login scenario: all log in, then all log
 * out) one after another for `churnSeconds`. RSS before the burst (after a settle), sampled
 * every 200 ms during it (peak), right after the last round, and after another settle; the
 * server's CPU over the rounds per login (its logout included).
 */
async function measureChurn(
  pid: number,
  o: Options,
  login: (args: readonly string[]) => Promise<BenchRun>,
): Promise<BenchRun> {
  await sleep(o.settle * 1000);
  const before = await rssKb(pid);
  let peak = before ?? 0;
  const sampler = setInterval(async () => {
    peak = Math.max(peak, (await rssKb(pid)) ?? 0);
  }, 200);
  const cpu0 = await cpuS(pid);
  const t0 = performance.now();
  let rounds = 0, logins = 0, failed = 0;
  const errors: string[] = [];
  try {
    while (performance.now() - t0 < o.churnSeconds * 1000) {
      const r = await login([
        "--users",
        `${o.churnUsers}`,
        "--concurrency",
        `${o.concurrency}`,
      ]);
      rounds++;
      const ops = typeof r.json?.ops === "number" ? r.json.ops : 0;
      logins += ops;
      failed += o.churnUsers - ops;
      if (r.json?.ok !== true) errors.push(failureText(r));
      if (errors.length > 3) break;
    }
  } finally {
    clearInterval(sampler);
  }
  const wall = (performance.now() - t0) / 1000;
  const cpu1 = await cpuS(pid);
  const end = await rssKb(pid);
  await sleep(o.settle * 1000);
  const closed = await rssKb(pid);
  const cpu = cpu0 === undefined || cpu1 === undefined ? undefined : cpu1 - cpu0;
  const growth = before && closed ? +((closed - before) / before * 100).toFixed(1) : undefined;
  const json = {
    tool: "bench/load.ts",
    date: new Date().toISOString(),
    scenario: "churn",
    server_pids: [pid],
    params: { seconds: o.churnSeconds, users_per_round: o.churnUsers, concurrency: o.concurrency },
    ok: logins > 0 && errors.length === 0,
    ...(errors.length ? { errors: [...new Set(errors)] } : {}),
    op: "login+logout",
    ops: logins,
    rounds,
    failed,
    rate_per_s: +(logins / wall).toFixed(2),
    cpu_us_per_op: cpu === undefined || logins === 0 ? undefined : Math.round(cpu * 1e6 / logins),
    rss_before_kb: before,
    rss_peak_kb: peak,
    rss_end_kb: end,
    rss_after_close_kb: closed,
    rss_growth_pct: growth,
    phase: {
      wall_s: +wall.toFixed(3),
      server_cpu_s: cpu === undefined ? undefined : +cpu.toFixed(2),
    },
  };
  return ownRun(
    json,
    `${logins} logins+logouts in ${rounds} rounds, ${wall.toFixed(1)} s; RSS ${before} -> peak` +
      ` ${peak} -> end ${end} -> settled ${closed} kB (${growth}% over before)`,
  );
}

/** The repository's `deno fmt --check` covers Markdown too; keeps a written file clean for it. */
async function fmtMarkdown(root: string, file: string): Promise<void> {
  await run(Deno.execPath(), ["fmt", "--quiet", "--config", `${root}deno.json`, file])
    .catch(() => {});
}

/** The running servers (and federating pairs), so that an interrupt can stop them. */
const active = new Set<{ stop(): Promise<void> }>();
/** The running load generator processes, likewise. */
const benchChildren = new Set<Deno.ChildProcess>();

async function withServer<T>(
  kind: ServerKind,
  opts: StartOptions,
  fn: (s: RunningServer) => Promise<T>,
): Promise<T> {
  const s = await kind.start(opts);
  active.add(s);
  try {
    return await fn(s);
  } finally {
    active.delete(s);
    await s.stop();
  }
}

async function main(args: readonly string[]): Promise<number> {
  const opts = optionsOrExit(args, parseOptions, HELP);
  if (typeof opts === "number") return opts;
  const started = Date.now();
  const root = new URL("..", import.meta.url).pathname;
  const mainTs = new URL("../main.ts", import.meta.url).pathname;
  const resultsDir = new URL("./results/", import.meta.url).pathname;
  const day = new Date().toISOString().slice(0, 10);
  const jsonl = `${resultsDir}load-${day}.jsonl`;
  if (opts.save) await Deno.mkdir(resultsDir, { recursive: true });
  const bench = benchRunner(opts.xmppbench, opts.verbose);
  const mucBench = benchRunner(opts.mucLoad, opts.verbose);
  const wsBench = benchRunner(opts.wsLoad, opts.verbose);
  const s2sBench = benchRunner(opts.s2sLoad, opts.verbose);
  /** The scenarios on one server of each kind; `s2s` runs pairs (runS2s). */
  const single = opts.scenarios.filter((s) => s !== "s2s");

  const rev = await gitRevision(root);
  const ours = await ourServer(mainTs, rev ? `ours-${rev}` : "ours");
  const kinds: ServerKind[] = [ours];
  const pairKinds: PairKind[] = [];
  /** Which transports each scenario runs over; the first is the headline. */
  const modes: Mode[] = opts.both ? ["tls", "tcp"] : [opts.tls ? "tls" : "tcp"];
  const peerNotes: string[] = [];
  if (opts.prosody && await prosodyInstalled()) {
    const v = await prosodyVersion();
    kinds.push(
      await prosodyServer(
        new URL("../../shared/bench/prosody", import.meta.url).pathname,
        `prosody-${v}`,
      ),
    );
  } else {
    peerNotes.push(
      opts.prosody
        ? "Prosody is not installed (`command -v prosody` found nothing): no column."
        : "Prosody not measured (--no-prosody).",
    );
  }
  if (opts.ejabberd && await ejabberdInstalled()) {
    const v = await ejabberdVersion();
    kinds.push(
      await ejabberdServer(
        new URL("../../shared/bench/ejabberd", import.meta.url).pathname,
        `ejabberd-${v}`,
      ),
    );
  } else {
    peerNotes.push(
      opts.ejabberd
        ? "ejabberd is not installed (`apt-get install ejabberd`, then stop what its postinst" +
          " started): no column."
        : "ejabberd not measured (--no-ejabberd).",
    );
  }
  for (const n of peerNotes) progress(n);

  const stopAll = () => Promise.allSettled([...active].map((s) => s.stop()));
  const onSignal = async () => {
    progress("interrupted: stopping servers and generators, removing scratch directories");
    for (const c of benchChildren) {
      try {
        c.kill("SIGTERM");
      } catch {
        // Already exited.
      }
    }
    // Bounded: stop() escalates to SIGKILL after 10 s (ours) or 15 s (Prosody's stop.sh).
    await stopAll();
    for (const k of [...kinds, ...pairKinds]) await k.cleanup();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);

  try {
    const fanout = opts.scenarios.includes("fanout");
    const spec = {
      users: Math.max(
        20,
        opts.scenarios.includes("login") ? opts.users : 0,
        opts.scenarios.includes("churn") ? opts.churnUsers : 0,
        opts.scenarios.includes("idle-10k") ? IDLE_10K : 0,
        opts.scenarios.some((s) => s === "idle" || s === "ws-idle") ? opts.idleUsers : 0,
        opts.scenarios.some((s) => s === "msg" || s === "msg-archive" || s === "ws-msg")
          ? 2 * opts.pairs
          : 0,
        opts.scenarios.includes("muc") ? opts.rooms * opts.occupants : 0,
      ),
      fanContacts: fanout ? opts.contacts : 0,
    };
    for (const k of single.length > 0 ? [...kinds] : []) {
      progress(`${k.name}: provisioning ${spec.users} accounts`);
      const t0 = Date.now();
      try {
        await k.provision(spec, bench);
      } catch (e) {
        if (k === ours) throw e;
        // A broken peer setup should not cost us our own figures.
        const note = `${k.name} dropped: provisioning failed: ${(e as Error).message}`;
        peerNotes.push(note);
        progress(note);
        kinds.splice(kinds.indexOf(k), 1);
        await k.cleanup();
        continue;
      }
      progress(`${k.name}: provisioned in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    }

    // The same login procedure for both servers: roster get only if ours can answer it.
    let rosterGet = opts.rosterGet !== "no";
    if (opts.rosterGet === "auto" && single.length > 0) {
      rosterGet = await withServer(ours, { archive: false }, async (s) => {
        const r = await bench([
          "--scenario",
          "login",
          "--port",
          `${s.port}`,
          "--users",
          "1",
          "--mech",
          opts.mech,
          "--quiesce-max",
          "0",
        ], 30);
        return r.json?.ok === true;
      });
      progress(`roster get during login: ${rosterGet ? "on" : "off (our server cannot yet)"}`);
    }
    const rosterFlag = rosterGet ? [] : ["--no-roster-get"];
    const common = ["--mech", opts.mech, ...rosterFlag];

    /** How a server is started for scenario `s` over `mode`. */
    const startOptions = (s: Scenario, mode: Mode): StartOptions => ({
      archive: s === "msg-archive",
      muc: s === "muc",
      websocket: isWebSocket(s),
      tls: s === "idle-10k" || (mode === "tls" && !isWebSocket(s)),
    });
    const modeTag = (s: Scenario, mode: Mode) =>
      MODE_FREE.includes(s) ? "" : mode === "tls" ? " over TLS" : " over plain TCP";

    /**
     * One measurement of scenario `s` on a started server: the 20-login warm-up, then the
     * generator (or, for baseline and churn, load.ts's own loop). `window` learns the measured
     * phase in /proc/uptime µs, for the profile.
     */
    const measure = async (
      s: Scenario,
      mode: Mode,
      k: ServerKind,
      srv: RunningServer,
      jsonOut: string | undefined,
      window?: (fromUs: number, toUs: number) => void,
    ): Promise<BenchRun> => {
      const ws = isWebSocket(s);
      if (ws && srv.httpPort === undefined) throw new Error("no HTTP port for WebSocket");
      const tls = startOptions(s, mode).tls ? ["--starttls"] : [];
      const base = ["--port", `${ws ? srv.httpPort : srv.port}`, ...common, ...(ws ? [] : tls)];
      // Unrecorded warm-up: the login path once, so JIT and caches are not measured; over the
      // transport the scenario uses, so that its framing code is warm too.
      const warmup = () => (ws ? wsBench : bench)(warmupArgs(base), 60);
      let r: BenchRun;
      if (s === "baseline") {
        const t0 = await uptimeUs();
        r = await measureBaseline(srv.pid, opts.settle, warmup);
        window?.(t0, await uptimeUs());
      } else {
        await warmup();
        const t0 = await uptimeUs();
        if (s === "churn") {
          r = await measureChurn(srv.pid, opts, (args) =>
            bench([
              "--scenario",
              "login",
              ...base,
              ...args,
              "--quiesce-max",
              "0",
            ], 300));
        } else {
          // muc is muc_load.mjs (with its own warm-up of group chat messages); msg-archive is
          // xmppbench's msg against servers started with archiving on; ws-idle and ws-msg are
          // ws_load.mjs, idle-10k xmppbench's idle (scenarioArgs names their scenario).
          const plainXmppbench = s !== "muc" && !ws && s !== "idle-10k";
          r = await (s === "muc" ? mucBench : ws ? wsBench : bench)([
            ...(plainXmppbench ? ["--scenario", s === "msg-archive" ? "msg" : s] : []),
            ...base,
            ...scenarioArgs(s, opts),
            "--server-pid",
            `${srv.pid}`,
          ], s === "idle-10k" ? 1500 : s === "idle" || s === "ws-idle" ? 500 : 300);
        }
        window?.(t0, await uptimeUs());
      }
      // baseline and churn are measured here: their JSON line is made here too.
      const json = r.json === undefined
        ? undefined
        : { ...r.json, label: k.label, tag: `load-${s}${modeTag(s, mode) ? `-${mode}` : ""}` };
      if (jsonOut !== undefined && json !== undefined) {
        await Deno.writeTextFile(jsonOut, JSON.stringify(json) + "\n", { append: true });
      }
      return { ...r, json };
    };

    /** Outcomes per transport, then per server name. */
    const outcomes = new Map<Mode, Map<string, Partial<Record<Scenario, Outcome>>>>(
      modes.map((m) => [m, new Map(kinds.map((k) => [k.name, {}]))]),
    );
    /** Profiles of ours to split after the measured runs: scenario, transport. */
    const toProfile: { s: Scenario; mode: Mode }[] = [];
    for (const s of single) {
      for (const mode of MODE_FREE.includes(s) ? [modes[0]] : modes) {
        const runs = new Map<string, BenchJson[]>(kinds.map((k) => [k.name, []]));
        const failures = new Map<string, string[]>(kinds.map((k) => [k.name, []]));
        const skipped = new Map<string, string>();
        for (let rep = 1; rep <= opts.repeats; rep++) {
          for (const k of kinds) {
            const start = startOptions(s, mode);
            const why = k.unsupported?.(start);
            if (why !== undefined) {
              skipped.set(k.name, why);
              continue;
            }
            progress(`${k.name}: ${s}${modeTag(s, mode)}, repeat ${rep}/${opts.repeats}`);
            try {
              const r = await withServer(
                k,
                start,
                (srv) => measure(s, mode, k, srv, opts.save ? jsonl : undefined),
              );
              const line = r.stdout.split("\n").find((l) => l.startsWith("# "));
              if (line) progress(`${k.name}: ${line.slice(2)}`);
              if (r.json?.ok === true) runs.get(k.name)!.push(r.json);
              else failures.get(k.name)!.push(failureText(r));
            } catch (e) {
              // A server that does not start costs this run only, not the whole table.
              failures.get(k.name)!.push(`server start/stop failed: ${(e as Error).message}`);
              progress(`${k.name}: start/stop failed: ${(e as Error).message.split("\n")[0]}`);
            }
          }
        }
        for (const k of kinds) {
          const why = skipped.get(k.name);
          outcomes.get(mode)!.get(k.name)![s] = {
            runs: runs.get(k.name)!,
            failures: failures.get(k.name)!,
            ...(why === undefined ? {} : { skipped: why }),
          };
        }
        if (opts.profile) toProfile.push({ s, mode });
      }
    }

    // One more run of each scenario on ours under --cpu-prof, not in the table: the sampling
    // profiler costs CPU of its own. Only the generator's run is kept (the server's start and
    // warm-up are cut off by time, from /proc/uptime, the profile's clock).
    const profiled: string[] = [];
    for (const { s, mode } of toProfile) {
      const dir = await Deno.makeTempDir({ prefix: "bench_load_prof_" });
      try {
        progress(`ours: ${s}${modeTag(s, mode)}, profiled run`);
        let window: [number, number] = [0, Infinity];
        await withServer(ours, { ...startOptions(s, mode), cpuProfDir: dir }, async (srv) => {
          const r = await measure(s, mode, ours, srv, undefined, (from, to) => {
            window = [from, to];
          });
          if (r.json?.ok !== true) progress(`ours: profiled ${s} failed: ${failureText(r)}`);
        });
        const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".cpuprofile"));
        if (file === undefined) throw new Error("no .cpuprofile written");
        const keep = Deno.env.get("BENCH_KEEP_PROFILE");
        // For a closer look (inclusive times, flame graphs) than the split gives.
        if (keep) await Deno.copyFile(`${dir}/${file.name}`, `${keep}-${s}-${mode}.cpuprofile`);
        const profile = JSON.parse(await Deno.readTextFile(`${dir}/${file.name}`));
        // baseline: the whole life of the process, start-up included (what it loads is the
        // point there); the others: the generator's run only.
        const split = splitProfile(
          profile,
          s === "baseline" ? {} : { fromUs: window[0], toUs: window[1] },
        );
        const name = `profile-${s}${mode === "tcp" && !MODE_FREE.includes(s) ? "-tcp" : ""}.md`;
        const md = renderSplit(split, {
          title: `CPU split of ours, ${s}${modeTag(s, mode)} (${ours.label})`,
          params: `${scenarioParams(opts, rosterGet)[s]}; ${new Date().toISOString()}`,
        });
        if (opts.save) {
          await Deno.writeTextFile(`${resultsDir}${name}`, md);
          await fmtMarkdown(root, `${resultsDir}${name}`);
          profiled.push(name);
        } else console.log(md);
      } catch (e) {
        progress(`ours: profiling ${s} failed: ${(e as Error).message}`);
      } finally {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
      }
    }

    if (opts.scenarios.includes("s2s")) {
      pairKinds.push(await ourPair(mainTs, ours.label));
      const prosodyLabel = kinds.find((k) => k.name === "Prosody")?.label;
      if (prosodyLabel !== undefined) {
        pairKinds.push(
          await prosodyPair(
            new URL("../../shared/bench/prosody", import.meta.url).pathname,
            prosodyLabel,
          ),
        );
      }
      const s2sOutcomes = outcomes.get(modes[0])!;
      await runS2s(pairKinds, opts, s2sBench, bench, common, jsonl, s2sOutcomes);
      // ejabberd has no pair here: the shared template turns s2s off (`s2s_access: none`).
      for (const k of kinds) {
        const o = s2sOutcomes.get(k.name)!;
        if (o.s2s === undefined) {
          o.s2s = { runs: [], failures: [], skipped: "no federating pair of this server" };
        }
      }
    }

    const params = scenarioParams(opts, rosterGet);
    const column = (mode: Mode, k: ServerKind): Column => ({
      name: k.name,
      label: k.label,
      outcomes: outcomes.get(mode)!.get(k.name)!,
    });
    const peersOf = (mode: Mode) => kinds.filter((k) => k !== ours).map((k) => column(mode, k));
    const modeName = (m: Mode) => m === "tls" ? "TLS" : "plain TCP";
    const headlineTable = renderHeadline(
      opts.scenarios,
      modes.map((m, i) => ({
        name: modeName(m),
        ours: column(m, ours),
        peers: peersOf(m),
        ...(i === 0 ? {} : { shared: MODE_FREE }),
      })),
    );
    const tables = modes.flatMap((m, i) => {
      const scenarios = i === 0
        ? opts.scenarios
        : opts.scenarios.filter((s) => !MODE_FREE.includes(s));
      return [
        `### ${modeName(m)}${
          m === "tls" ? " (STARTTLS; encryption required by ours and Prosody)" : ""
        }`,
        "",
        renderTable({ scenarios, params, ours: column(m, ours), peers: peersOf(m) }),
        "",
      ];
    });
    const notes = modes.flatMap((m) =>
      kinds.flatMap((k) =>
        renderFailures(`${k.name} (${modeName(m)})`, outcomes.get(m)!.get(k.name)!)
      )
    );
    // Goals (issue 15) are judged on the first transport, TLS when it was run.
    const head = modes[0];
    const headOurs = column(head, ours);
    const headPeers = peersOf(head);
    const value = (s: Scenario, i = 0) => metricMedian(headOurs.outcomes[s], METRICS[s][i]);
    const goal = (s: Scenario, limit: number, unit: string, i = 0) => {
      const v = value(s, i);
      return v === undefined
        ? "not measured"
        : `${formatNumber(v, 1)} ${unit}: ${v <= limit ? "met" : "NOT met"}`;
    };
    // A goal relative to the better peer in the same run: without a peer it cannot be judged.
    const relativeGoal = (s: Scenario, limit: number, unit: string) => {
      const v = value(s);
      if (v === undefined) return "not measured";
      const best = bestPeer(headPeers, s, METRICS[s][0]);
      if (best === undefined || best.value === 0) {
        return `${formatNumber(v, 1)} ${unit}, no peer measured in this run: not judged`;
      }
      const r = v / best.value;
      return `${formatNumber(v, 1)} ${unit} against ${best.name}'s ${
        formatNumber(best.value, 1)
      } ${unit} = ${r.toFixed(2)}×: ${r <= limit ? "met" : "NOT met"}`;
    };
    const peerLabels = kinds.filter((k) => k !== ours).map((k) => k.label);
    const report = [
      `## bench:load — ${ours.label} beside ${peerLabels.join(" and ") || "(no peer)"}`,
      "",
      ...await machineFacts(),
      `- ${opts.repeats} measured run(s) per scenario and server, each on a fresh server process` +
      " after a 20-login warm-up; cells are median (min–max). CPU is the server process's" +
      " utime+stime during the measured phase, in 10 ms ticks. The ratio is ours over the" +
      " better of the peers for that metric (lower, or higher for a rate), named in the cell.",
      `- transports: ${modes.map(modeName).join(", then ")}` +
      (modes.includes("tls")
        ? "; TLS = STARTTLS on every client connection (generators' `--starttls`, certificate" +
          " not verified), ours with `require_encryption = true` and the self-signed ECDSA P-256" +
          " certificate it would make itself (made once into the snapshot), Prosody with mod_tls," +
          " a self-signed RSA-2048 certificate (start.sh `PROSODY_TLS=1`) and" +
          " `c2s_require_encryption = true`, ejabberd with its template's optional STARTTLS" +
          " (RSA-2048, self-signed; the template cannot require it, the clients always use it)"
        : ""),
      "",
      "### Headline",
      "",
      headlineTable,
      "",
      ...tables,
      `Goals for our server (issue 15, judged on ${modeName(head)}):`,
      `- KB per idle connection ≤ 0.35× the better peer: ${relativeGoal("idle", 0.35, "KB")}`,
      `- CPU per ${opts.mech} login ≤ 0.35× the better peer: ${relativeGoal("login", 0.35, "µs")}`,
      `- CPU per message + receipt, archive on, durable ≤ 0.25×: ${
        relativeGoal("msg-archive", 0.25, "µs")
      }`,
      `- CPU per presence delivery ≤ 0.15×: ${relativeGoal("fanout", 0.15, "µs")}`,
      `- CPU per message + receipt, archive off ≤ 0.10×: ${relativeGoal("msg", 0.1, "µs")}`,
      `- muc: CPU per delivered groupchat message ≤ 0.25×: ${relativeGoal("muc", 0.25, "µs")}`,
      `- RSS of a started, idle server ≤ 45 MB: ${goal("baseline", 45, "MB")}`,
      `- RSS after a burst of logins has logged out within 5 % of before it: ${
        goal("churn", 5, "%")
      }`,
      `- 10,000 idle TLS connections ≤ 250 MB RSS in all: ${goal("idle-10k", 250, "MB")}`,
      "",
      "Notes:",
      ...(rosterGet ? [] : [
        "- Roster get is off during login for both servers: our server answers it with" +
        " service-unavailable until the IM core exists (`--roster-get yes` to force).",
      ]),
      ...(opts.scenarios.includes("msg")
        ? [
          "- msg: archiving off on every server: Prosody with `default_archive_policy = false`" +
          " (mod_mam loaded, nothing archived), ejabberd with mod_mam `default: never`, ours" +
          " with `archive_enabled = false`.",
        ]
        : []),
      ...(opts.scenarios.includes("msg-archive")
        ? [
          "- msg-archive: archiving every message on every server: Prosody's mod_mam with the" +
          " template's `default_archive_policy = true`, ejabberd's mod_mam `default: always`" +
          " (Mnesia), ours with `archive_enabled = true`," +
          ' `archive_policy = "always"` (appends fdatasync\'d). Prosody also archives the' +
          " XEP-0184 receipts (4 archive entries per message + receipt); ours archives only" +
          " chat/normal messages with a body (2 entries).",
        ]
        : []),
      ...(opts.scenarios.includes("fanout")
        ? [
          "- fanout: the hub's subscriptions to the R contacts are established once while" +
          " provisioning (xmppbench's presence subscription flows) and kept in the snapshot.",
        ]
        : []),
      ...(opts.scenarios.includes("muc")
        ? [
          "- muc: bench/muc_load.mjs (xmppbench has no group chat). Each room's first occupant" +
          " creates it on `conference.localhost` and submits the instant-room form; the others" +
          " join with `<history maxstanzas='0'/>`. A message counts as acknowledged when the" +
          " room reflects it to its sender; a delivery is one occupant's receipt of one" +
          " reflected message, the sender's own echo included (messages × N). Warm-up messages" +
          " and the joins are not measured; the warm-up is long enough for V8's JIT (with 5" +
          " messages per occupant our figure read about 40% higher; Prosody's does not move). No room archive on either server: ours runs with" +
          " `archive_enabled = false` and `[muc] archiving = false` (new rooms would otherwise" +
          " archive: `archiving: true` in lib/services/muc/state.ts DEFAULT_CONFIG), keeps 20" +
          " messages of history in memory and adds an XEP-0421 occupant-id to every message;" +
          ' Prosody runs mod_muc (`Component "conference.localhost" "muc"`, its defaults:' +
          " 20 messages of history in memory) without mod_muc_mam, so nothing is archived," +
          " and adds no occupant-id. Neither user archive stores groupchat messages here" +
          " (ours: archiving off; Prosody's mod_mam skips type=groupchat and its policy is off).",
        ]
        : []),
      ...(opts.scenarios.some(isWebSocket)
        ? [
          "- ws-idle, ws-msg: bench/ws_load.mjs, xmppbench's idle and msg over WebSocket" +
          " (RFC 7395: subprotocol `xmpp`, one stanza per text frame, masked client frames, no" +
          " compression) at `ws://127.0.0.1:<http port>/xmpp-websocket`, same login and JSON" +
          " fields, after a 20-login warm-up over WebSocket. Ours with `[http] http_port` set" +
          " (HTTP upload off; a loopback WebSocket counts as encrypted: `secure_loopback`);" +
          " Prosody with mod_websocket (and so mod_http) on its host and" +
          " `consider_websocket_secure = true`. ws-msg has archiving off as msg does.",
        ]
        : []),
      ...(opts.scenarios.includes("s2s")
        ? [
          "- s2s: bench/s2s_load.mjs. Two servers of each kind federate over loopback; P senders" +
          " log in on A, P receivers on B (no roster between them); each sender sends chat" +
          " messages to its receiver with an XEP-0184 receipt request, W at most without a" +
          " receipt; the receiver's receipt crosses back B→A. CPU is utime+stime of both server" +
          " processes per message (the message and its receipt), and of each side. The warm-up" +
          " opens both links (STARTTLS, dialback) and is not measured. Ours: `a.localhost` and" +
          " `b.localhost` on 127.0.0.1 with `[s2s] hosts` pointing at each other, the self-signed" +
          " certificates each makes (not trusted: dialback), archiving, MUC, pubsub and upload" +
          " off. Prosody: IP-literal domains 127.0.0.22 and 127.0.0.23, each listening on its" +
          " address (s2s on 5269, which Prosody dials for an IP-literal domain without DNS), a" +
          " self-signed certificate each (STARTTLS, then dialback with `s2s_secure_auth = false`)," +
          " the bench template's modules plus tls and dialback, `default_archive_policy = false`.",
        ]
        : []),
      ...(opts.scenarios.includes("baseline")
        ? [
          `- baseline: RSS (VmRSS) of the server process ${opts.settle} s after it listens, before` +
          " any connection; then the 20-login warm-up (all logged out again) and RSS after" +
          " another settle. Prosody's figure is its Lua process, ejabberd's its beam.smp.",
        ]
        : []),
      ...(opts.scenarios.includes("churn")
        ? [
          `- churn: after the warm-up and a ${opts.settle} s settle, rounds of` +
          ` ${opts.churnUsers} logins (xmppbench's login scenario, C=${opts.concurrency}: all log` +
          ` in, then all log out) one after another for ${opts.churnSeconds} s; RSS sampled` +
          " every 200 ms (peak), right after the last round and after another settle. CPU per" +
          " login counts its logout too, and the gaps between rounds (a node start each).",
        ]
        : []),
      ...(opts.scenarios.includes("idle-10k")
        ? [
          `- idle-10k: xmppbench's idle with ${IDLE_10K} connections, each STARTTLS and a` +
          ` ${opts.mech} login, held ${opts.hold} s; always TLS (ours and Prosody require it).` +
          ` ulimit -n ${NOFILE} for the servers and the generator.`,
        ]
        : []),
      ...(kinds.some((k) => k.name === "ejabberd")
        ? [
          "- ejabberd: ../shared/bench/ejabberd/start.sh as it is (its template: mod_mam," +
          " mod_stream_mgmt, mod_register …; shaper none), Mnesia spool restored for each run," +
          " accounts by in-band registration, `fanhub` with `ejabberdctl register`; archiving" +
          " as `EJABBERD_MAM_DEFAULT` always (msg-archive) or never (the rest). No MUC" +
          " service, no HTTP listener and no s2s in that template: muc, ws-* and s2s are" +
          " skipped for it.",
        ]
        : []),
      ...(profiled.length
        ? [
          `- CPU splits of ours (one more run per scenario under \`--cpu-prof\`, not in the` +
          ` tables): ${profiled.map((p) => `bench/results/${p}`).join(", ")}.`,
        ]
        : []),
      ...peerNotes.map((n) => `- ${n}`),
      ...notes,
      `- total time ${((Date.now() - started) / 1000).toFixed(0)} s` +
      (opts.save ? `; raw JSON lines appended to bench/results/load-${day}.jsonl` : ""),
      "",
    ].join("\n");
    console.log(report);
    if (opts.save) {
      await Deno.writeTextFile(`${resultsDir}latest.md`, report);
      await fmtMarkdown(root, `${resultsDir}latest.md`);
    }
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", onSignal);
    Deno.removeSignalListener("SIGTERM", onSignal);
    await stopAll();
    for (const k of [...kinds, ...pairKinds]) await k.cleanup();
  }
}

/**
 * The `s2s` scenario: for each kind, two servers federating (A and B), provisioned with
 * bench1..bench<pairs> each, then bench/s2s_load.mjs: senders on A, receivers on B, with the CPU
 * of both processes. Kinds alternate within each repeat, as in the other scenarios.
 */
async function runS2s(
  pairKinds: readonly PairKind[],
  opts: Options,
  s2sBench: ReturnType<typeof benchRunner>,
  bench: ReturnType<typeof benchRunner>,
  common: readonly string[],
  jsonl: string,
  outcomes: Map<string, Partial<Record<Scenario, Outcome>>>,
): Promise<void> {
  const runs = new Map<string, BenchJson[]>(pairKinds.map((k) => [k.name, []]));
  const failures = new Map<string, string[]>(pairKinds.map((k) => [k.name, []]));
  const ready: PairKind[] = [];
  for (const k of pairKinds) {
    progress(`${k.name} pair: provisioning ${opts.pairs} accounts on each server`);
    try {
      await k.provision(opts.pairs, bench);
      ready.push(k);
    } catch (e) {
      failures.get(k.name)!.push(`provisioning failed: ${(e as Error).message.split("\n")[0]}`);
      progress(`${k.name} pair: provisioning failed: ${(e as Error).message}`);
    }
  }
  for (let rep = 1; rep <= opts.repeats; rep++) {
    for (const k of ready) {
      progress(`${k.name}: s2s, repeat ${rep}/${opts.repeats}`);
      try {
        const pair = await k.start();
        active.add(pair);
        try {
          const r = await s2sBench([
            ...["--host-a", pair.a.host, "--port-a", `${pair.a.port}`, "--domain-a", pair.a.domain],
            ...["--host-b", pair.b.host, "--port-b", `${pair.b.port}`, "--domain-b", pair.b.domain],
            ...common,
            ...scenarioArgs("s2s", opts),
            "--server-a-pid",
            `${pair.a.pid}`,
            "--server-b-pid",
            `${pair.b.pid}`,
            "--label",
            k.label,
            "--tag",
            "load-s2s",
            ...(opts.save ? ["--json-out", jsonl] : []),
          ], 300);
          const line = r.stdout.split("\n").find((l) => l.startsWith("# "));
          if (line) progress(`${k.name}: ${line.slice(2)}`);
          if (r.json?.ok === true) runs.get(k.name)!.push(r.json);
          else failures.get(k.name)!.push(failureText(r));
        } finally {
          active.delete(pair);
          await pair.stop();
        }
      } catch (e) {
        failures.get(k.name)!.push(`server start/stop failed: ${(e as Error).message}`);
        progress(`${k.name}: start/stop failed: ${(e as Error).message.split("\n")[0]}`);
      }
    }
  }
  for (const k of pairKinds) {
    const o = outcomes.get(k.name) ?? {};
    o.s2s = { runs: runs.get(k.name)!, failures: failures.get(k.name)! };
    outcomes.set(k.name, o);
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
