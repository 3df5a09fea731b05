/**
 * Load benchmark: this server beside Prosody, measured with ../shared/bench/xmppbench.mjs in
 * one run, so both see the same machine at the same time.
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
  formatNumber,
  metricMedian,
  METRICS,
  type Outcome,
  renderFailures,
  renderTable,
  type Scenario,
} from "./_report.ts";
import {
  type BenchRun,
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

const HELP = `usage: deno run --allow-all bench/load.ts [flags]

  --scenarios LIST      comma-separated: login, idle, msg, msg-archive, fanout, muc, ws-idle,
                        ws-msg, s2s [all of them]; msg runs both servers with message archiving
                        off, msg-archive the same with archiving on; ws-idle and ws-msg are
                        idle and msg over WebSocket (RFC 7395, /xmpp-websocket); s2s is msg
                        between two federating servers of each kind
  --repeats N           measured runs per scenario and server; the table shows medians [1]
  --users N             login: logins [300]
  --concurrency N       login: logins in flight [20]
  --idle-users N        idle, ws-idle: connections held [1000]
  --idle-concurrency N  idle, ws-idle: logins in flight during the ramp [50]
  --hold S              idle, ws-idle: seconds to hold the connections [5]
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
  --no-prosody          measure our server only
  --no-save             print only; write nothing under bench/results/
  --xmppbench PATH      the load generator [../shared/bench/xmppbench.mjs]
  --muc-load PATH       the group chat load generator [bench/muc_load.mjs]
  --ws-load PATH        the WebSocket load generator [bench/ws_load.mjs]
  --s2s-load PATH       the server-to-server load generator [bench/s2s_load.mjs]
  --verbose             pass the generators' progress output through
`;

const ALL_SCENARIOS: readonly Scenario[] = [
  "login",
  "idle",
  "msg",
  "msg-archive",
  "fanout",
  "muc",
  "ws-idle",
  "ws-msg",
  "s2s",
];

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
      return [
        ...(s === "ws-idle" ? ["--scenario", "idle"] : []),
        "--users",
        `${o.idleUsers}`,
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
  let o: Options | undefined;
  try {
    o = parseOptions(args);
  } catch (e) {
    console.error(`${(e as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (o === undefined) {
    console.log(HELP);
    return 0;
  }
  const opts = o;
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
  let prosodyNote = "";
  if (opts.prosody && await prosodyInstalled()) {
    const v = await prosodyVersion();
    kinds.push(
      await prosodyServer(
        new URL("../../shared/bench/prosody", import.meta.url).pathname,
        `prosody-${v}`,
      ),
    );
  } else {
    prosodyNote = opts.prosody
      ? "Prosody is not installed (`command -v prosody` found nothing): its column is empty."
      : "Prosody not measured (--no-prosody).";
    progress(prosodyNote);
  }

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

  const outcomes = new Map<string, Partial<Record<Scenario, Outcome>>>();
  try {
    const fanout = opts.scenarios.includes("fanout");
    const spec = {
      users: Math.max(
        20,
        opts.scenarios.includes("login") ? opts.users : 0,
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
        // A broken Prosody setup should not cost us our own figures.
        prosodyNote = `Prosody dropped: provisioning failed: ${(e as Error).message}`;
        progress(prosodyNote);
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

    for (const k of kinds) outcomes.set(k.name, {});
    for (const s of single) {
      const runs = new Map<string, BenchJson[]>(kinds.map((k) => [k.name, []]));
      const failures = new Map<string, string[]>(kinds.map((k) => [k.name, []]));
      for (let rep = 1; rep <= opts.repeats; rep++) {
        for (const k of kinds) {
          progress(`${k.name}: ${s}, repeat ${rep}/${opts.repeats}`);
          const ws = isWebSocket(s);
          const start = { archive: s === "msg-archive", muc: s === "muc", websocket: ws };
          try {
            await withServer(k, start, async (srv) => {
              if (ws && srv.httpPort === undefined) throw new Error("no HTTP port for WebSocket");
              const base = ["--port", `${ws ? srv.httpPort : srv.port}`, ...common];
              // Unrecorded warm-up: the login path once, so JIT and caches are not measured;
              // over the transport the scenario uses, so that its framing code is warm too.
              await (ws ? wsBench : bench)([
                "--scenario",
                "login",
                ...base,
                "--users",
                "20",
                "--concurrency",
                "5",
                "--quiesce-max",
                "0",
              ], 60);
              // muc is muc_load.mjs (with its own warm-up of group chat messages); msg-archive is
              // xmppbench's msg against servers started with archiving on; ws-idle and ws-msg
              // are ws_load.mjs (scenarioArgs names its scenario).
              const r = await (s === "muc" ? mucBench : ws ? wsBench : bench)([
                ...(s === "muc" || ws ? [] : ["--scenario", s === "msg-archive" ? "msg" : s]),
                ...base,
                ...scenarioArgs(s, opts),
                "--server-pid",
                `${srv.pid}`,
                "--label",
                k.label,
                "--tag",
                `load-${s}`,
                ...(opts.save ? ["--json-out", jsonl] : []),
              ], s === "idle" || s === "ws-idle" ? 500 : 300);
              const line = r.stdout.split("\n").find((l) => l.startsWith("# "));
              if (line) progress(`${k.name}: ${line.slice(2)}`);
              if (r.json?.ok === true) runs.get(k.name)!.push(r.json);
              else failures.get(k.name)!.push(failureText(r));
            });
          } catch (e) {
            // A server that does not start costs this run only, not the whole table.
            failures.get(k.name)!.push(`server start/stop failed: ${(e as Error).message}`);
            progress(`${k.name}: start/stop failed: ${(e as Error).message.split("\n")[0]}`);
          }
        }
      }
      for (const k of kinds) {
        outcomes.get(k.name)![s] = { runs: runs.get(k.name)!, failures: failures.get(k.name)! };
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
      await runS2s(pairKinds, opts, s2sBench, bench, common, jsonl, outcomes);
    }

    const prosodyKind = kinds.find((k) => k.name === "Prosody");
    const table = renderTable({
      scenarios: opts.scenarios,
      params: scenarioParams(opts, rosterGet),
      ours: outcomes.get("ours")!,
      prosody: prosodyKind ? outcomes.get("Prosody") : undefined,
      oursLabel: ours.label,
      prosodyLabel: prosodyKind?.label ?? "Prosody",
    });
    const notes = [
      ...renderFailures("ours", outcomes.get("ours")!),
      ...(prosodyKind ? renderFailures("Prosody", outcomes.get("Prosody")!) : []),
    ];
    const ourOutcomes = outcomes.get("ours")!;
    const headline = (s: Scenario) => metricMedian(ourOutcomes[s], METRICS[s][0]);
    const cpuLogin = headline("login");
    const kbConn = headline("idle");
    const goal = (v: number | undefined, limit: number, unit: string) =>
      v === undefined
        ? "not measured"
        : `${formatNumber(v, 1)} ${unit}: ${v <= limit ? "met" : "NOT met"}`;
    // A goal relative to Prosody in the same run: without Prosody it cannot be judged.
    const relativeGoal = (s: Scenario, limit: number, unit: string) => {
      const v = headline(s);
      if (v === undefined) return "not measured";
      const theirs = prosodyKind
        ? metricMedian(outcomes.get("Prosody")![s], METRICS[s][0])
        : undefined;
      if (theirs === undefined || theirs === 0) {
        return `${formatNumber(v, 1)} ${unit}, Prosody not measured in this run: not judged`;
      }
      const r = v / theirs;
      return `${formatNumber(v, 1)} ${unit} against Prosody's ${formatNumber(theirs, 1)} ${unit}` +
        ` = ${r.toFixed(2)}×: ${r <= limit ? "met" : "NOT met"}`;
    };
    const report = [
      `## bench:load — ${ours.label} beside ${prosodyKind?.label ?? "(no Prosody)"}`,
      "",
      ...await machineFacts(),
      `- ${opts.repeats} measured run(s) per scenario and server, each on a fresh server process` +
      " after a 20-login warm-up; cells are median (min–max). CPU is the server process's" +
      " utime+stime during the measured phase, in 10 ms ticks.",
      "",
      table,
      "",
      "Goals for our server:",
      `- server CPU per ${opts.mech} login over plain TCP ≤ 1000 µs (Prosody 5,200 SCRAM): ${
        goal(cpuLogin, 1000, "µs")
      }`,
      `- memory per idle authenticated connection ≤ 17 KB (Prosody 34): ${goal(kbConn, 17, "KB")}`,
      // Anchors from ../shared/bench/README.md (P=20, M=500; msg there is its msg-nomam).
      `- msg: server CPU per message and its receipt ≤ 190 µs (Prosody 639, ejabberd 385): ${
        goal(headline("msg"), 190, "µs")
      }`,
      `- fanout: server CPU per presence delivery ≤ 40 µs (Prosody 147, ejabberd 82): ${
        goal(headline("fanout"), 40, "µs")
      }`,
      `- msg with durable archiving: server CPU per message and its receipt ≤ 480 µs` +
      ` (Prosody 1,914, ejabberd 6,926): ${goal(headline("msg-archive"), 480, "µs")}`,
      `- muc: server CPU per delivered groupchat message ≤ 0.25× Prosody's in the same run: ${
        relativeGoal("muc", 0.25, "µs")
      }`,
      "",
      "Notes:",
      ...(rosterGet ? [] : [
        "- Roster get is off during login for both servers: our server answers it with" +
        " service-unavailable until the IM core exists (`--roster-get yes` to force).",
      ]),
      ...(opts.scenarios.includes("msg")
        ? [
          "- msg: archiving off on both servers: Prosody with `default_archive_policy = false`" +
          " (mod_mam loaded, nothing archived), ours with `archive_enabled = false`.",
        ]
        : []),
      ...(opts.scenarios.includes("msg-archive")
        ? [
          "- msg-archive: archiving every message on both servers: Prosody's mod_mam with the" +
          " template's `default_archive_policy = true`, ours with `archive_enabled = true`," +
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
      ...(prosodyNote ? [`- ${prosodyNote}`] : []),
      ...notes,
      `- total time ${((Date.now() - started) / 1000).toFixed(0)} s` +
      (opts.save ? `; raw JSON lines appended to bench/results/load-${day}.jsonl` : ""),
      "",
    ].join("\n");
    console.log(report);
    if (opts.save) {
      await Deno.writeTextFile(`${resultsDir}latest.md`, report);
      // The repository's `deno fmt --check` covers Markdown too; keep the file clean for it.
      await run(Deno.execPath(), [
        "fmt",
        "--quiet",
        "--config",
        `${root}deno.json`,
        `${resultsDir}latest.md`,
      ]).catch(() => {});
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
