/**
 * `deno task bench:floor`: the floors of Deno itself under issue 15's goals. Each floor is a
 * minimal server that does only the work no XMPP server on Deno can avoid, run in a fresh Deno
 * process started as ours is (`deno task start`'s flags), driven by a Node load client in
 * another process, measured by the server process's utime+stime (/proc/<pid>/stat) during the
 * measured phase, or its VmRSS:
 *
 * 1. relay: P pairs of connections, each message and its receipt (xmppbench's bytes) relayed
 *    unchanged to the partner connection, over plain TCP and over TLS (lib/transport/openssl.ts,
 *    direct TLS); and the same parsing every stanza with lib/xml/parser.ts and serializing it
 *    again (lib/xml/element.ts): CPU µs per message + receipt.
 * 2. login: per connection the round trips and bytes of our STARTTLS + SCRAM-SHA-1 login (roster
 *    get, presence, ping), canned (bench/fixtures/floor_login.json), with the TLS handshake of
 *    OpenSSL (openssl.ts) or of node:tls (lib/transport/tls.ts), and the plain TCP login: CPU µs
 *    per login, and per close.
 * 3. memory: RSS of a Deno process that loads nothing, of one that loads what our server needs
 *    before its own modules (node:net, node:tls, node:crypto, the npm packages) and listens, and
 *    of that with OpenSSL loaded; KB per idle connection held for plain TCP, OpenSSL, node:tls
 *    and Deno.listenTls (rustls), with and without a pending read.
 * 4. fanout: one publisher and R contacts; each presence update (xmppbench's bytes) goes to all
 *    R, unchanged, or parsed once and serialized once per contact with its own `to`: CPU µs per
 *    presence delivery, plain TCP and TLS.
 * 5. archive: the relay plus, per message with a body, two durable appends (sender's and
 *    recipient's archive) through lib/storage/file/list_store.ts and its journal (journal.ts),
 *    the message forwarded once both resolved: CPU µs per message + receipt.
 *
 * Runs repeat round-robin (every variant once, then again), so drift on the shared machine
 * touches all alike; the report shows medians (min–max). `--load` runs `bench:load` (msg, login,
 * idle, baseline over TLS) in the same sitting first, to place ours beside the floors; the
 * peers' figures come from that run when it includes them, else from bench/results/latest.md.
 * The report goes to bench/results/floor.md (`--no-save`: printed only). See `--help`.
 * @module
 */

import { parseArgs } from "node:util";
import { ensureSelfSigned } from "../lib/transport/certs.ts";
import { type BenchRun, NOFILE, ourServer, SERVER_V8_FLAGS, type ServerKind } from "./_servers.ts";
import { optionsOrExit, warmupArgs } from "./_cli.ts";

const HELP = `usage: deno task bench:floor [flags]

  --repeats N         runs of each variant, each in a fresh server process [3]
  --only LIST         relay, login, memory, idle, fanout, archive (comma-separated) [all];
                      with a subset, the saved report keeps the other sections of floor.md
  --pairs N           relay: connection pairs [20]
  --messages N        relay: measured messages per pair [500]
  --window N          relay: unacknowledged messages per pair [10]
  --warmup N          relay: unmeasured messages per pair first [50]
  --contacts N        fanout: contacts [200]
  --updates N         fanout: measured presence updates [300] (after 20 unmeasured)
  --logins N          login: measured logins [300]
  --concurrency N     login: logins in flight [20]
  --conns N           idle: connections held [1000]
  --settle S          memory: seconds before RSS is read [5]
  --idle-10k          idle: also hold 10,000 TLS connections on OpenSSL once
  --no-ours           leave out our server's msg, login, fanout and msg-archive over TLS, which
                      otherwise run in the same rounds as the floors (xmppbench, as bench:load
                      runs them)
  --load              run bench:load --scenarios msg,login,idle,baseline,fanout,msg-archive
                      (those of --only) --tls --repeats 3 --no-save --no-prosody --no-ejabberd
                      first, in the same sitting
  --load-peers        the same with Prosody and ejabberd
  --load-report FILE  take ours (and peers) from this saved bench:load output instead
  --no-save           print the report only
`;

/** The floors, in the report's order; each with the bench:load scenario that places ours. */
const GROUPS = ["relay", "login", "memory", "idle", "fanout", "archive"] as const;
type Group = typeof GROUPS[number];
const LOAD_SCENARIO: Readonly<Record<Group, string>> = {
  relay: "msg",
  login: "login",
  memory: "baseline",
  idle: "idle",
  fanout: "fanout",
  archive: "msg-archive",
};

interface Options {
  readonly repeats: number;
  readonly only: ReadonlySet<string>;
  readonly pairs: number;
  readonly messages: number;
  readonly window: number;
  readonly warmup: number;
  readonly contacts: number;
  readonly updates: number;
  readonly logins: number;
  readonly concurrency: number;
  readonly conns: number;
  readonly settle: number;
  readonly idle10k: boolean;
  readonly ours: boolean;
  readonly load: "none" | "ours" | "peers";
  readonly loadReport?: string;
  readonly save: boolean;
}

function parseOptions(args: readonly string[]): Options | undefined {
  const { values } = parseArgs({
    args: [...args],
    options: {
      help: { type: "boolean" },
      repeats: { type: "string" },
      only: { type: "string" },
      pairs: { type: "string" },
      messages: { type: "string" },
      window: { type: "string" },
      warmup: { type: "string" },
      contacts: { type: "string" },
      updates: { type: "string" },
      logins: { type: "string" },
      concurrency: { type: "string" },
      conns: { type: "string" },
      settle: { type: "string" },
      "idle-10k": { type: "boolean" },
      "no-ours": { type: "boolean" },
      load: { type: "boolean" },
      "load-peers": { type: "boolean" },
      "load-report": { type: "string" },
      "no-save": { type: "boolean" },
    },
  });
  if (values.help) return undefined;
  const n = (raw: string | undefined, fallback: number) => {
    const v = raw === undefined ? fallback : Number(raw);
    if (!Number.isFinite(v) || v < 0) throw new Error(`not a number: ${raw}`);
    return v;
  };
  return {
    repeats: n(values.repeats, 3),
    only: new Set((values.only ?? GROUPS.join(",")).split(",").map((s) => s.trim())),
    pairs: n(values.pairs, 20),
    messages: n(values.messages, 500),
    window: n(values.window, 10),
    warmup: n(values.warmup, 50),
    contacts: n(values.contacts, 200),
    updates: n(values.updates, 300),
    logins: n(values.logins, 300),
    concurrency: n(values.concurrency, 20),
    conns: n(values.conns, 1000),
    settle: n(values.settle, 5),
    idle10k: values["idle-10k"] === true,
    ours: values["no-ours"] !== true,
    load: values["load-peers"] ? "peers" : values.load ? "ours" : "none",
    loadReport: values["load-report"],
    save: values["no-save"] !== true,
  };
}

const here = (p: string) => new URL(p, import.meta.url).pathname;
const SERVER = here("./floor_server.ts");
const BASELINE = here("./floor_baseline.ts");
const CLIENT = here("./floor_client.mjs");
const SCRIPT = here("./fixtures/floor_login.json");
const MAIN = here("../main.ts");
const XMPPBENCH = here("../../shared/bench/xmppbench.mjs");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function progress(msg: string): void {
  console.error(`[floor] ${msg}`);
}

// ------------------------------------------------------------------------------ processes --

/** Lines of a child's output, as they come. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let rest = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    rest += chunk;
    let i;
    while ((i = rest.indexOf("\n")) >= 0) {
      yield rest.slice(0, i);
      rest = rest.slice(i + 1);
    }
  }
  if (rest !== "") yield rest;
}

interface Proc {
  readonly pid: number;
  /** What the process printed on its `ready` line. */
  readonly ready: string;
  /** Its stderr so far. */
  stderr(): string;
  stop(): Promise<void>;
}

/**
 * Starts `cmd args` under a raised fd limit (exec keeps the pid) and waits for a stdout line
 * that starts with `ready`; the rest of its output is drained.
 */
async function spawn(cmd: string, args: readonly string[], ready: string): Promise<Proc> {
  const child = new Deno.Command("bash", {
    args: ["-c", `ulimit -n ${NOFILE} 2>/dev/null; exec "$@"`, "bash", cmd, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  (async () => {
    for await (const l of lines(child.stderr)) err += `${l}\n`;
  })();
  const out = lines(child.stdout);
  let exited = false;
  const status = child.status.then((s) => {
    exited = true;
    return s;
  });
  const stop = async () => {
    if (!exited) child.kill("SIGKILL");
    await status;
  };
  const timer = setTimeout(() => void stop(), 60_000);
  let line: string | undefined;
  for await (const l of out) {
    if (l.startsWith(ready)) {
      line = l;
      break;
    }
  }
  clearTimeout(timer);
  if (line === undefined) {
    await stop();
    throw new Error(`${args.join(" ")}: no "${ready}" line\n${err}`);
  }
  (async () => {
    for await (const _ of out) { /* drained */ }
  })();
  return { pid: child.pid, ready: line, stderr: () => err, stop };
}

/** A floor server of bench/floor_server.ts (or floor_baseline.ts), started as ours is. */
async function startServer(script: string, args: readonly string[]) {
  const p = await spawn(Deno.execPath(), [
    "run",
    "--allow-all",
    "--no-code-cache",
    `--v8-flags=${SERVER_V8_FLAGS}`,
    script,
    ...args,
  ], "listening");
  return { ...p, port: Number(p.ready.split(" ")[1]) };
}

/** Runs the load client to its end; its last stdout line is the JSON result. */
async function runClient(args: readonly string[]): Promise<Record<string, unknown>> {
  const out = await new Deno.Command("bash", {
    // A lost stanza would leave the client waiting: it fails after 5 minutes instead.
    args: [
      "-c",
      `ulimit -n ${NOFILE} 2>/dev/null; exec timeout 300 "$@"`,
      "bash",
      "node",
      CLIENT,
      ...args,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
  if (!out.success || !text.startsWith("{")) {
    throw new Error(`floor_client ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(text);
}

async function rssKb(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (m === null) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]);
}

// ----------------------------------------------------------------------------- variants --

interface Variant {
  readonly group: Group;
  readonly name: string;
  /** One measurement: named figures. */
  run(): Promise<Record<string, number>>;
}

/** A variant of `group`: one measurement per `run()`. */
function variant(group: Group, name: string, run: () => Promise<Record<string, number>>): Variant {
  return { group, name, run };
}

/** Runs `measure` against a server once `start` has it up, and stops it whatever happens. */
async function withServer<S extends { stop(): Promise<void> }, T>(
  start: Promise<S>,
  measure: (s: S) => Promise<T>,
): Promise<T> {
  const s = await start;
  try {
    return await measure(s);
  } finally {
    await s.stop();
  }
}

/** The `tls=` and `xml=` arguments that server and client of a variant share. */
function tlsXml(tls: boolean, xml: boolean): string[] {
  return [`tls=${+tls}`, `xml=${+xml}`];
}

/** The load client's arguments for `mode` against the floor server `s`. */
function clientArgs(mode: string, s: { port: number; pid: number }, ...rest: string[]): string[] {
  return [mode, `port=${s.port}`, `pid=${s.pid}`, ...rest];
}

/** A run's CPU figures from the client's result: µs and rate per operation, other load. */
function cpuFigures(r: Record<string, unknown>, us: string, rate: string) {
  return {
    us: r[us] as number,
    rate: r[rate] as number,
    other: r.other_busy_cores as number,
  };
}

/** Runs the load client in `mode` with `args` against `s`: CPU figures by `us` and `rate`. */
function measureClient(mode: string, [us, rate]: [string, string], args: string[]) {
  return async (s: { port: number; pid: number }) =>
    cpuFigures(await runClient(clientArgs(mode, s, ...args)), us, rate);
}

/** The relay client, which drives the archive floor too. */
function measureRelay(o: Options, tls: boolean, xml: boolean) {
  return measureClient("relay", ["us_per_msg", "msgs_per_s"], [
    ...tlsXml(tls, xml),
    `pairs=${o.pairs}`,
    `messages=${o.messages}`,
    `window=${o.window}`,
    `warmup=${o.warmup}`,
  ]);
}

function relayVariant(o: Options, name: string, tls: boolean, xml: boolean, cert: string[]) {
  return variant("relay", name, () =>
    withServer(
      startServer(SERVER, ["relay", ...tlsXml(tls, xml), ...cert]),
      measureRelay(o, tls, xml),
    ));
}

function fanoutVariant(o: Options, name: string, tls: boolean, xml: boolean, cert: string[]) {
  const args = [...tlsXml(tls, xml), `contacts=${o.contacts}`, `updates=${o.updates}`];
  return variant("fanout", name, () =>
    withServer(
      startServer(SERVER, ["fanout", ...tlsXml(tls, xml), ...cert]),
      measureClient("fanout", ["us_per_delivery", "deliveries_per_s"], args),
    ));
}

function archiveVariant(o: Options, name: string, tls: boolean, xml: boolean, cert: string[]) {
  return variant("archive", name, async () => {
    // ext4, as a real data directory: /tmp may be tmpfs, where a sync costs nothing.
    const dir = await Deno.makeTempDir({ dir: "/var/tmp", prefix: "bench_floor_archive_" });
    try {
      return await withServer(
        startServer(SERVER, ["archive", ...tlsXml(tls, xml), `dir=${dir}`, ...cert]),
        measureRelay(o, tls, xml),
      );
    } finally {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  });
}

const LOGIN_XML = "STARTTLS, OpenSSL + XML parse/serialize + SCRAM check";

function loginVariant(o: Options, name: string, engine: string, xml: boolean, cert: string[]) {
  return variant("login", name, () =>
    withServer(
      startServer(SERVER, [
        "login",
        `engine=${engine}`,
        `xml=${xml ? 1 : 0}`,
        `script=${SCRIPT}`,
        ...cert,
      ]),
      async (s) => {
        const r = await runClient(clientArgs(
          "login",
          s,
          `starttls=${engine === "tcp" ? 0 : 1}`,
          `script=${SCRIPT}`,
          `logins=${o.logins}`,
          `concurrency=${o.concurrency}`,
        ));
        const { us, rate, other } = cpuFigures(r, "us_per_login", "logins_per_s");
        return { us, close: r.us_per_close as number, rate, other };
      },
    ));
}

function baselineVariant(o: Options, name: string, level: string, cert: string[]) {
  return variant(
    "memory",
    name,
    () =>
      withServer(startServer(BASELINE, [level, ...cert]), async (s) => {
        await sleep(o.settle * 1000);
        return { mb: (await rssKb(s.pid)) / 1024 };
      }),
  );
}

function idleVariant(
  o: Options,
  name: string,
  engine: string,
  read: boolean,
  cert: string[],
  conns = o.conns,
) {
  return variant("idle", name, () =>
    withServer(
      startServer(SERVER, ["idle", `engine=${engine}`, `read=${+read}`, ...cert]),
      async (s) => {
        const trimmed = async () => {
          // Our server trims its heaps once quiet (lib/shell/heap_trim.ts); so does the floor.
          Deno.kill(s.pid, "SIGUSR1");
          await sleep(1000);
          return await rssKb(s.pid);
        };
        let c: Proc | undefined;
        const hold = (n: number) =>
          spawn("node", [
            CLIENT,
            "idle",
            `port=${s.port}`,
            `tls=${engine === "tcp" ? 0 : 1}`,
            `conns=${n}`,
          ], "held");
        try {
          // bench:load reads ours after 20 logins and logouts, which have grown its C heap's
          // arenas and warmed its code: the floor has 20 connections come and go first too.
          const warm = await hold(20);
          await warm.stop();
          await sleep(1000);
          const before = await trimmed();
          c = await hold(conns);
          await sleep(2000);
          const held = await trimmed();
          // In bench:load's units: /proc's kB as KB, MB = 1024 of them.
          return { before: before / 1024, held: held / 1024, kb: (held - before) / conns };
        } finally {
          await c?.stop();
        }
      },
    ));
}

/** Runs xmppbench to its end (bench/_servers.ts's BenchRunner, for provisioning too). */
async function runXmppbench(args: readonly string[], timeoutS: number): Promise<BenchRun> {
  const out = await new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n ${NOFILE} 2>/dev/null; exec "$@"`,
      "bash",
      "node",
      XMPPBENCH,
      ...args,
      "--timeout",
      `${timeoutS}`,
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const line = stdout.split("\n").reverse().find((l) => l.startsWith("{"));
  return {
    code: out.code,
    json: line === undefined ? undefined : JSON.parse(line),
    stdout,
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** Runs xmppbench to its end; its last JSON line is the result. */
async function xmppbench(args: readonly string[]): Promise<Record<string, unknown>> {
  const r = await runXmppbench(args, 300);
  if (r.json?.ok !== true) {
    throw new Error(`xmppbench ${args.join(" ")}: ${r.json?.error ?? r.stderr}`);
  }
  return r.json;
}

type OursScenario = "msg" | "login" | "fanout" | "msg-archive";
const OURS_GROUP: Readonly<Record<OursScenario, Group>> = {
  msg: "relay",
  login: "login",
  fanout: "fanout",
  "msg-archive": "archive",
};

/**
 * Our server (main.ts, as bench:load starts it: fresh from a provisioned snapshot, STARTTLS
 * required, archiving off but for msg-archive, the 20-login warm-up) under xmppbench's msg,
 * login, fanout or msg-archive, so that ours is measured in the same rounds as the floors.
 */
function oursVariant(o: Options, scenario: OursScenario, kind: () => Promise<ServerKind>) {
  const start = async () =>
    (await kind()).start({ archive: scenario === "msg-archive", tls: true });
  return variant(
    OURS_GROUP[scenario],
    `ours (main.ts): xmppbench ${scenario}, STARTTLS`,
    () =>
      withServer(start(), async (s) => {
        const base = ["--port", `${s.port}`, "--mech", "SCRAM-SHA-1", "--starttls"];
        await xmppbench(warmupArgs(base));
        const r = await xmppbench([
          "--scenario",
          scenario === "msg-archive" ? "msg" : scenario,
          ...base,
          ...(scenario === "login"
            ? ["--users", `${o.logins}`, "--concurrency", `${o.concurrency}`]
            : scenario === "fanout"
            ? ["--contacts", `${o.contacts}`, "--updates", `${o.updates}`]
            : ["--pairs", `${o.pairs}`, "--messages", `${o.messages}`, "--window", `${o.window}`]),
          "--server-pid",
          `${s.pid}`,
        ]);
        return {
          us: r.cpu_us_per_op as number,
          rate: r.rate_per_s as number,
          other: (r.phase as { other_busy_cores: number }).other_busy_cores,
          close: NaN,
        };
      }),
  );
}

// -------------------------------------------------------------------------------- report --

interface Stat {
  readonly med: number;
  readonly min: number;
  readonly max: number;
}

function stat(xs: readonly number[]): Stat {
  const v = [...xs].sort((a, b) => a - b);
  const mid = v.length >> 1;
  const med = v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
  return { med, min: v[0], max: v[v.length - 1] };
}

function fmt(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return "—";
  const abs = Math.abs(x);
  const d = abs >= 100 ? 0 : Math.max(0, digits - 1 - Math.floor(Math.log10(abs || 1)));
  return x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

function cell(s: Stat | undefined, digits = 3): string {
  if (s === undefined || !Number.isFinite(s.med)) return "—";
  return s.min === s.max
    ? fmt(s.med, digits)
    : `${fmt(s.med, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}

/** One metric of a bench:load report: each server's cell, by column label. */
type LoadMetric = ReadonlyMap<string, string>;

/**
 * The metrics of a bench:load report's TLS table (or its only table): scenario → bold metric →
 * column label → cell.
 */
export function parseLoadReport(md: string, section = "TLS"): Map<string, LoadMetric> {
  const out = new Map<string, LoadMetric>();
  let heading = "";
  let header: string[] | undefined;
  let scenario = "";
  for (const line of md.split("\n")) {
    if (line.startsWith("#")) {
      heading = line;
      header = undefined;
      continue;
    }
    if (!line.startsWith("|") || heading.includes("Headline")) continue;
    if (!heading.includes(section)) continue;
    const cells = line.split("|").slice(1, -1).map((c) => c.trim());
    if (cells[0] === "scenario") {
      header = cells;
      continue;
    }
    if (header === undefined || cells[0].startsWith("---")) continue;
    if (cells[0] !== "") scenario = cells[0].split(" ")[0];
    const bold = /\*\*(.+?)\*\*/.exec(cells[1])?.[1];
    if (bold === undefined) continue;
    const m = new Map<string, string>();
    header.forEach((h, i) => {
      if (i >= 2) m.set(h, cells[i]);
    });
    out.set(`${scenario} ${bold}`, m);
  }
  return out;
}

/** The first number of a cell ("3,400 (3,100–3,600)" → 3400), or undefined. */
function num(c: string | undefined): number | undefined {
  const m = /^[\d,.]+/.exec(c ?? "");
  return m === null ? undefined : Number(m[0].replaceAll(",", ""));
}

interface Figures {
  /** Ours over the better peer within one bench:load run: this sitting's, and latest.md's. */
  readonly ratioNow?: number;
  readonly ratioLatest?: number;
  /** Ours, and where the figure comes from. */
  readonly ours?: { readonly cell: string; readonly from: string };
  /** The better peer: its figure, name and source. */
  readonly peer?: { readonly value: number; readonly name: string; readonly from: string };
}

function figures(
  key: string,
  sitting: Map<string, LoadMetric> | undefined,
  latest: Map<string, LoadMetric>,
): Figures {
  const pick = (m: LoadMetric | undefined, prefix: string) =>
    [...(m ?? new Map<string, string>()).entries()].find(([h, c]) =>
      h.startsWith(`${prefix}-`) && num(c) !== undefined
    );
  const better = (m: LoadMetric | undefined) => {
    const peers = ["prosody", "ejabberd"].map((p) => pick(m, p)).filter((x) => x !== undefined);
    if (peers.length === 0) return undefined;
    const [h, c] = peers.reduce((a, b) => num(b[1])! < num(a[1])! ? b : a);
    return { value: num(c)!, name: h };
  };
  const s = sitting?.get(key);
  const ours = pick(s, "ours");
  const oursLatest = pick(latest.get(key), "ours");
  const peerNow = better(s);
  const peerLatest = better(latest.get(key));
  const r = (o: [string, string] | undefined, p: { value: number } | undefined) =>
    o === undefined || p === undefined ? undefined : num(o[1])! / p.value;
  return {
    ratioNow: r(ours, peerNow),
    ratioLatest: r(oursLatest, peerLatest),
    ours: ours !== undefined
      ? { cell: ours[1], from: "this sitting" }
      : oursLatest !== undefined
      ? { cell: oursLatest[1], from: "latest.md" }
      : undefined,
    peer: peerNow !== undefined
      ? { ...peerNow, from: "this sitting" }
      : peerLatest !== undefined
      ? { ...peerLatest, from: "latest.md" }
      : undefined,
  };
}

/** The bench:load scenarios that place ours beside the floors of `only`. */
function loadScenarios(only: ReadonlySet<string>): string {
  return GROUPS.filter((g) => only.has(g)).map((g) => LOAD_SCENARIO[g]).join(",");
}

async function runLoad(peers: boolean, scenarios: string): Promise<string | undefined> {
  const args = [
    "run",
    "--allow-all",
    here("./load.ts"),
    "--scenarios",
    scenarios,
    "--tls",
    "--repeats",
    "3",
    "--no-save",
    ...(peers ? [] : ["--no-prosody", "--no-ejabberd"]),
  ];
  progress(`bench:load ${args.slice(3).join(" ")}`);
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) {
    progress("bench:load failed: ours and the peers come from bench/results/latest.md");
    return undefined;
  }
  const md = new TextDecoder().decode(out.stdout);
  // Kept at once: a floor run that fails later must not lose it (--load-report reuses it).
  const file = await Deno.makeTempFile({ prefix: "bench_floor_load_", suffix: ".md" });
  await Deno.writeTextFile(file, md);
  progress(`bench:load's report: ${file}`);
  return md;
}

async function machine(): Promise<string[]> {
  const cpu = /model name\s*:\s*(.+)/.exec(await Deno.readTextFile("/proc/cpuinfo"))?.[1] ?? "?";
  const load = (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");
  const node = new TextDecoder().decode(
    (await new Deno.Command("node", { args: ["--version"], stdout: "piped" }).output()).stdout,
  ).trim();
  const git = async (...args: string[]) =>
    new TextDecoder().decode(
      (await new Deno.Command("git", { args, cwd: here("../"), stdout: "piped", stderr: "null" })
        .output()).stdout,
    ).trim();
  const dirty = (await git("status", "--porcelain", "lib/", "main.ts")) !== "";
  return [
    `- code: ${await git("rev-parse", "--short", "HEAD")}${
      dirty ? " with uncommitted changes under lib/ (the working tree is what ran)" : ""
    }; the floors import lib/transport/openssl.ts, tls.ts, lib/xml/parser.ts, element.ts,` +
    " lib/xmpp/stream_xml.ts, scram.ts, lib/core/archive.ts, lib/storage/file/list_store.ts and" +
    " journal.ts",
    `- nproc: ${navigator.hardwareConcurrency}, CPU: ${cpu}, load average at start: ${load}`,
    `- deno ${Deno.version.deno} (V8 ${Deno.version.v8}), node ${node} (the load client)`,
  ];
}

// ---------------------------------------------------------------------------------- main --

async function main(args: readonly string[]): Promise<number> {
  const opts = optionsOrExit(args, parseOptions, HELP);
  if (typeof opts === "number") return opts;
  const started = new Date();
  const facts = await machine();
  const loadMd = opts.loadReport !== undefined
    ? await Deno.readTextFile(opts.loadReport)
    : opts.load !== "none"
    ? await runLoad(opts.load === "peers", loadScenarios(opts.only))
    : undefined;
  const scratch = await Deno.makeTempDir({ prefix: "bench_floor_" });
  // The certificate our server makes for itself: ECDSA P-256, self-signed.
  await ensureSelfSigned(scratch, "localhost");
  const cert = [`cert=${scratch}/certs/localhost.crt`, `key=${scratch}/certs/localhost.key`];
  // Our server, provisioned once (on first use) for the rounds that measure it too.
  let ours: Promise<ServerKind> | undefined;
  const oursKind = () =>
    ours ??= (async () => {
      const k = await ourServer(MAIN, "ours");
      await k.provision(
        {
          users: Math.max(20, opts.logins, 2 * opts.pairs),
          fanContacts: opts.only.has("fanout") ? opts.contacts : 0,
        },
        runXmppbench,
      );
      return k;
    })();
  const all: Variant[] = [
    ...(opts.ours ? [oursVariant(opts, "msg", oursKind)] : []),
    relayVariant(opts, "plain TCP", false, false, cert),
    relayVariant(opts, "TLS (openssl.ts)", true, false, cert),
    relayVariant(opts, "plain TCP + XML parse/serialize", false, true, cert),
    relayVariant(opts, "TLS (openssl.ts) + XML parse/serialize", true, true, cert),
    ...(opts.ours ? [oursVariant(opts, "login", oursKind)] : []),
    loginVariant(opts, "STARTTLS, OpenSSL (openssl.ts)", "openssl", false, cert),
    loginVariant(opts, LOGIN_XML, "openssl", true, cert),
    loginVariant(opts, "STARTTLS, node:tls (tls.ts acceptTls)", "node", false, cert),
    loginVariant(opts, "plain TCP (no TLS)", "tcp", false, cert),
    baselineVariant(opts, "empty script", "empty", cert),
    baselineVariant(opts, "+ node:net/tls/crypto, npm deps, a listener", "imports", cert),
    baselineVariant(opts, "+ OpenSSL loaded, one context", "openssl", cert),
    idleVariant(opts, "plain TCP, pending read (512 B)", "tcp", true, cert),
    idleVariant(opts, "plain TCP, no read", "tcp", false, cert),
    idleVariant(opts, "TLS openssl.ts, pending read (512 B)", "openssl", true, cert),
    idleVariant(opts, "TLS openssl.ts, no read", "openssl", false, cert),
    idleVariant(opts, "TLS node:tls createServer", "node", true, cert),
    idleVariant(opts, "TLS Deno.listenTls (rustls), pending read (512 B)", "rustls", true, cert),
    idleVariant(opts, "TLS Deno.listenTls (rustls), no read", "rustls", false, cert),
    ...(opts.ours ? [oursVariant(opts, "fanout", oursKind)] : []),
    fanoutVariant(opts, "plain TCP", false, false, cert),
    fanoutVariant(opts, "TLS (openssl.ts)", true, false, cert),
    fanoutVariant(opts, "plain TCP + XML parse once, serialize per contact", false, true, cert),
    fanoutVariant(
      opts,
      "TLS (openssl.ts) + XML parse once, serialize per contact",
      true,
      true,
      cert,
    ),
    ...(opts.ours ? [oursVariant(opts, "msg-archive", oursKind)] : []),
    archiveVariant(opts, "plain TCP + XML + 2 appends", false, true, cert),
    archiveVariant(opts, "TLS (openssl.ts) + 2 appends (no parser)", true, false, cert),
    archiveVariant(opts, "TLS (openssl.ts) + XML + 2 appends", true, true, cert),
  ].filter((v) => opts.only.has(v.group));
  const results = new Map<Variant, Record<string, number>[]>();
  const failures: string[] = [];
  try {
    for (let r = 1; r <= opts.repeats; r++) {
      for (const v of all) {
        progress(`run ${r}/${opts.repeats}: ${v.group}: ${v.name}`);
        try {
          const res = await v.run();
          progress(`  ${JSON.stringify(res)}`);
          results.set(v, [...(results.get(v) ?? []), res]);
        } catch (e) {
          // One failed run costs its cell a sample, not the sitting its results.
          progress(`  failed: ${(e as Error).message.slice(0, 500)}`);
          failures.push(`${v.group}: ${v.name}, run ${r}: ${(e as Error).message.split("\n")[0]}`);
        }
      }
    }
    if (opts.idle10k && opts.only.has("idle")) {
      const v = idleVariant(opts, "TLS openssl.ts, 10,000", "openssl", true, cert, 10_000);
      progress(`once: ${v.name}`);
      results.set(v, [await v.run()]);
    }
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
    if (ours !== undefined) await (await ours).cleanup();
  }
  const raw = await Deno.makeTempFile({ prefix: "bench_floor_runs_", suffix: ".json" });
  await Deno.writeTextFile(
    raw,
    JSON.stringify([...results].map(([v, rs]) => ({ group: v.group, name: v.name, runs: rs }))),
  );
  progress(`raw runs: ${raw}`);
  const latestMd = await Deno.readTextFile(here("./results/latest.md")).catch(() => "");
  const report = render(opts, started, facts, results, loadMd, latestMd) +
    (failures.length === 0
      ? ""
      : `\n### Failed runs\n\n${failures.map((f) => `- ${f}`).join("\n")}\n`);
  console.log(report);
  if (opts.save) {
    const file = here("./results/floor.md");
    const partial = GROUPS.some((g) => !opts.only.has(g));
    const old = partial ? await Deno.readTextFile(file).catch(() => undefined) : undefined;
    await Deno.writeTextFile(file, old === undefined ? report : mergeReports(old, report));
    await new Deno.Command(Deno.execPath(), { args: ["fmt", file], stderr: "null" }).output();
    progress(`wrote ${file}`);
  }
  return 0;
}

/** A report's lines before its first `### ` section, and its sections by heading. */
function sections(md: string): { head: string[]; parts: [string, string[]][] } {
  const head: string[] = [];
  const parts: [string, string[]][] = [];
  for (const line of md.trimEnd().split("\n")) {
    if (line.startsWith("### ")) parts.push([line, [line]]);
    else if (parts.length === 0) head.push(line);
    else parts[parts.length - 1][1].push(line);
  }
  return { head, parts };
}

/** "### 4. Fanout floor: …" → 4; unnumbered sections → Infinity. */
function sectionNumber(heading: string): number {
  const m = /^### (\d+)\./.exec(heading);
  return m === null ? Infinity : Number(m[1]);
}

/**
 * `head` without the item `first` and its indented lines: the facts of an earlier re-run of the
 * same sections, whose figures the new run replaces.
 */
function withoutRerun(head: readonly string[], first: string): string[] {
  const out: string[] = [];
  let skipping = false;
  for (const line of head) {
    if (line === first) skipping = true;
    else if (skipping && !line.startsWith("  ")) skipping = false;
    if (!skipping) out.push(line);
  }
  return out;
}

/**
 * The saved report after a run of some floors only (`--only`): the old report's sections, each
 * replaced by the new one of its number (or heading), new ones put in by number; the old
 * head stays, with the new run's facts added as one item, since they hold only for its
 * sections (an earlier re-run of the same sections leaves with the figures it measured).
 */
export function mergeReports(old: string, fresh: string): string {
  const o = sections(old);
  const f = sections(fresh);
  const key = (h: string) => {
    const n = sectionNumber(h);
    return Number.isFinite(n) ? `#${n}` : h;
  };
  const fresher = new Map(f.parts.map(([h, ls]) => [key(h), ls]));
  const parts = o.parts.map(([h, ls]): [string, string[]] => [h, fresher.get(key(h)) ?? ls]);
  const have = new Set(o.parts.map(([h]) => key(h)));
  for (const [h, ls] of f.parts) {
    if (have.has(key(h))) continue;
    const n = sectionNumber(h);
    const at = parts.findIndex(([g]) => sectionNumber(g) > n);
    parts.splice(at < 0 ? parts.length : at, 0, [h, ls]);
  }
  const rerun = f.parts.map(([h]) => h.replace(/^### /, "").split(": ")[0]).join("; ");
  const facts = f.head.filter((l) => l.startsWith("- ") || l.startsWith("  "));
  const head = withoutRerun(o.head, `- re-run alone later (${rerun}), with these facts:`);
  while (head.length > 0 && head[head.length - 1] === "") head.pop();
  head.push(
    `- re-run alone later (${rerun}), with these facts:`,
    ...facts.map((l) => `  ${l}`),
    "",
  );
  return [...head, ...parts.flatMap(([, ls]) => ls)].join("\n") + "\n";
}

function render(
  o: Options,
  started: Date,
  facts: readonly string[],
  results: ReadonlyMap<Variant, Record<string, number>[]>,
  loadMd: string | undefined,
  latestMd: string,
): string {
  const byName = (group: string) => [...results].filter(([v]) => v.group === group);
  const s = (rs: Record<string, number>[], k: string) => stat(rs.map((r) => r[k]));
  const find = (group: string, prefix: string) =>
    byName(group).find(([v]) => v.name.startsWith(prefix))?.[1];
  const sitting = loadMd === undefined ? undefined : parseLoadReport(loadMd);
  const latest = parseLoadReport(latestMd);
  const latestDate = /^- date: (.+)$/m.exec(latestMd)?.[1] ?? "?";
  const md: string[] = [
    "## bench:floor — what Deno itself costs, under issue 15's goals",
    "",
    `- date: ${started.toISOString()}`,
    ...facts,
    `- ${o.repeats} run(s) of each variant, round-robin, each on a fresh Deno process started with` +
    ` our server's flags (\`--no-code-cache --v8-flags=${SERVER_V8_FLAGS}\`); cells are median` +
    " (min–max). CPU is the server process's utime+stime in 10 ms ticks during the measured" +
    " phase; the load client is Node (bench/floor_client.mjs) in its own process.",
    `- ours and the peers: ${
      loadMd === undefined
        ? `bench/results/latest.md (${latestDate}), not re-measured in this sitting`
        : `\`bench:load --scenarios ${loadScenarios(o.only)} --tls --repeats 3${
          o.load === "ours" ? " --no-prosody --no-ejabberd" : ""
        }\` run in this` +
          ` sitting first; figures it lacks from bench/results/latest.md (${latestDate})`
    }. Ratios are against the better of Prosody and ejabberd, over TLS.`,
    "",
  ];
  const peerText = (f: Figures, digits = 3) =>
    f.peer === undefined
      ? "—"
      : `${fmt(f.peer.value, digits)} (${f.peer.name}${
        f.peer.from === "this sitting" ? "" : ", latest.md"
      })`;
  const oursText = (f: Figures) =>
    f.ours === undefined
      ? "—"
      : `${f.ours.cell}${f.ours.from === "this sitting" ? "" : " (latest.md)"}`;
  const oursRounds = (group: string) => {
    const rs = find(group, "ours");
    return rs === undefined ? "—" : cell(s(rs, "us"));
  };
  /** The floor as a share of ours measured in the same rounds. */
  const ofOurs = (group: string, floor: number) => {
    const rs = find(group, "ours");
    return rs === undefined
      ? ""
      : ` (${fmt(floor / s(rs, "us").med * 100, 2)} % of ours in the same rounds)`;
  };
  /**
   * A CPU goal as a share of ours. The goal is `goal`× the better peer and ours is
   * `ratioNow`× it in the same bench:load run, so ours must fall to goal / ratioNow of itself;
   * set beside the floor's share of ours measured in the same rounds, that does not depend on
   * how busy the shared machine was, as the absolute figures do.
   */
  const verdict = (
    group: string,
    goal: number,
    f: Figures,
    floor: number,
    floorXml?: number,
    why = "a relay that does not parse cannot stamp `from` or route by `to`",
  ) => {
    const rs = find(group, "ours");
    if (rs === undefined || (f.ratioNow ?? f.ratioLatest) === undefined) return "";
    const ours = s(rs, "us").med;
    const pct = (x: number) => `${fmt(x * 100, 2)} %`;
    const needs = [f.ratioNow, f.ratioLatest].filter((x) => x !== undefined).map((x) => goal / x);
    const need = Math.max(...needs);
    const share = floor / ours;
    const shareXml = floorXml === undefined ? undefined : floorXml / ours;
    // Without the peers in this sitting's bench:load, latest.md's ratio is the one there is.
    const asks = f.ratioNow === undefined
      ? `${pct(goal / f.ratioLatest!)} of itself (ours/peer ${
        fmt(f.ratioLatest!, 2)
      } in latest.md's bench:load`
      : `${pct(goal / f.ratioNow)} of itself (ours/peer ${
        fmt(f.ratioNow, 2)
      } in this sitting's bench:load${
        f.ratioLatest === undefined
          ? ""
          : `; ${pct(goal / f.ratioLatest)} with latest.md's ${fmt(f.ratioLatest, 2)}`
      }`;
    return ` In shares of ours, which do not depend on the machine's load: the ${
      goal.toFixed(2)
    }× goal asks ours to fall to ${asks}); the floor is ${pct(share)} of ours in the same rounds${
      shareXml === undefined ? "" : `, ${pct(shareXml)} with XML parsing`
    }: ` +
      ((shareXml ?? share) > need
        ? `**the goal is below Deno's floor**${
          shareXml !== undefined && share <= need ? ` once stanzas are parsed (${why})` : ""
        }.`
        : `reachable only if everything above the floor shrinks to ${
          pct(need - (shareXml ?? share))
        } of ours (${fmt((need - (shareXml ?? share)) * ours)} µs) at best, from ${
          pct(1 - (shareXml ?? share))
        } now.`);
  };
  const ratio = (x: number, f: Figures) =>
    f.peer === undefined ? "—" : `${fmt(x / f.peer.value, 2)}×`;
  /** Ours and the peers' figures under `key`, and the goal: `factor` times the better peer's. */
  const cpuGoal = (key: string, factor: number) => {
    const f = figures(key, sitting, latest);
    return { f, goal: f.peer === undefined ? NaN : f.peer.value * factor };
  };
  /** A CPU floor's variants: CPU µs per `op`, `rate` and the machine's other load. */
  const cpuTable = (op: string, rate: string, rows: [Variant, Record<string, number>[]][]) => [
    `| server | CPU µs per ${op} | ${rate} | other load (cores) |`,
    "| --- | --- | --- | --- |",
    ...rows.map(([v, rs]) =>
      `| ${v.name} | ${cell(s(rs, "us"))} | ${cell(s(rs, "rate"))} | ${cell(s(rs, "other"), 2)} |`
    ),
    "",
  ];
  /** A CPU metric beside its goal: ours, each floor (heading and runs), the better peer. */
  const goalTable = (
    metric: string,
    group: string,
    f: Figures,
    factor: number,
    goal: number,
    floors: [string, Record<string, number>[] | undefined][],
  ) => {
    const heads = ["ours, TLS (bench:load)", "ours, TLS (same rounds)", ...floors.map(([h]) => h)];
    const cells = [
      oursText(f),
      oursRounds(group),
      ...floors.map(([, rs]) => rs === undefined ? "—" : cell(s(rs, "us"))),
    ];
    return [
      `| metric | ${heads.join(" | ")} | better peer | goal (${factor.toFixed(2)}×) |`,
      `|${" --- |".repeat(heads.length + 3)}`,
      `| ${metric} | ${cells.join(" | ")} | ${peerText(f)} | ≤ ${fmt(goal)} |`,
      "",
    ];
  };
  /**
   * A CPU floor measured over TLS and over TLS + XML (relay, fanout): ours and the peers'
   * figures under `key`, the goal at `factor`× the better peer, and the two variants' runs.
   */
  const tlsFloor = (group: Group, key: string, factor: number) => {
    const { f, goal } = cpuGoal(key, factor);
    const tls = find(group, "TLS (openssl.ts)")!;
    const tlsXml = find(group, "TLS (openssl.ts) + XML");
    const floor = s(tls, "us").med;
    const floorXml = tlsXml && s(tlsXml, "us").med;
    return {
      f,
      tls,
      /** The goal table, its floors headed `floor: TLS <group>` and `… + XML`. */
      table: (metric: string) =>
        goalTable(metric, group, f, factor, goal, [
          [`floor: TLS ${group}`, tls],
          [`floor: TLS ${group} + XML`, tlsXml],
        ]),
      /**
       * The conclusion's end: the floor with XML (`how` it differs), the goal against the
       * floor (`below` it, or `noRoom` above it once XML is parsed), and the verdict.
       */
      tail: (how: string, below: string, noRoom: string, why?: string) =>
        (floorXml === undefined ? "" : `, ${fmt(floorXml)} µs = ${ratio(floorXml, f)} ${how}`) +
        `: the ${factor.toFixed(2)}× goal (${fmt(goal)} µs) ${
          floor > goal
            ? below
            : floorXml !== undefined && floorXml > goal
            ? noRoom
            : "is above the floor"
        }.` + verdict(group, factor, f, floor, floorXml, why),
    };
  };

  const [relay, login, mem, idle, fan, arch] = GROUPS.map((g) => byName(g));
  if (relay.length > 0) {
    const { f, tls, table, tail } = tlsFloor("relay", "msg server CPU µs/msg", 0.10);
    md.push(
      "### 1. Relay floor: CPU µs per message + receipt (archive off)",
      "",
      `P=${o.pairs} pairs, M=${o.messages} messages per pair (after ${o.warmup} unmeasured), ` +
        `W=${o.window}; xmppbench's message and receipt bytes; the server forwards each` +
        " connection's bytes to its partner (routing fixed by accept order) with tcp.ts's reads" +
        " and per-tick writes; TLS is openssl.ts over direct TLS (ECDSA P-256), the client node:tls.",
      "",
      ...cpuTable("msg + receipt", "msgs/s", relay),
      ...table("CPU µs per message + receipt"),
      `**Conclusion:** the TLS relay alone costs ${fmt(s(tls, "us").med)} µs per message +` +
        ` receipt${ofOurs("relay", s(tls, "us").med)} = ${
          ratio(s(tls, "us").med, f)
        } the better peer` +
        tail(
          "with our XML parser and serializer",
          "is below Deno's floor",
          "leaves no room for XML parsing",
        ),
      "",
    );
  }

  if (login.length > 0) {
    const ossl = find("login", "STARTTLS, OpenSSL (openssl.ts)")!;
    const osslXml = find("login", LOGIN_XML);
    const { f, goal } = cpuGoal("login server CPU µs/login", 0.35);
    const floor = s(ossl, "us").med;
    const floorXml = osslXml && s(osslXml, "us").med;
    const above = floorXml ?? floor;
    md.push(
      "### 2. Login floor: CPU µs per SCRAM login over TLS",
      "",
      `L=${o.logins} logins, C=${o.concurrency} in flight (after 20 unmeasured); each login the` +
        " round trips and bytes of xmppbench's STARTTLS + SCRAM-SHA-1 login against ours (9 steps" +
        " with STARTTLS, 7 without: stream, starttls, stream, auth, response, stream, bind, roster" +
        " get, presence + ping), answered with canned bytes (bench/fixtures/floor_login.json), no" +
        " XML parsing and no SCRAM arithmetic; the closes (`</stream:stream>` each way, close_notify)" +
        ` are measured apart, after the logins, as xmppbench does. "${LOGIN_XML}" adds the work no` +
        " login can skip: the client's bytes parsed by lib/xml/parser.ts (a new parser at each" +
        " stream restart), each reply's elements serialized by lib/xmpp/stream_xml.ts behind a" +
        " stream header with a fresh id, and the client's SCRAM proof checked by lib/xmpp/scram.ts;" +
        " no session, storage, roster or routing.",
      "",
      "| server | CPU µs per login | CPU µs per close | logins/s | other load (cores) |",
      "| --- | --- | --- | --- | --- |",
      ...login.map(([v, rs]) =>
        `| ${v.name} | ${cell(s(rs, "us"))} | ${cell(s(rs, "close"))} | ${cell(s(rs, "rate"))} | ${
          cell(s(rs, "other"), 2)
        } |`
      ),
      "",
      ...goalTable("CPU µs per SCRAM login", "login", f, 0.35, goal, [
        ["floor: OpenSSL", ossl],
        ["floor: OpenSSL + XML + SCRAM", osslXml],
      ]),
      `**Conclusion:** accept + TLS handshake + the login's round trips cost ` +
        `${fmt(floor)} µs${ofOurs("login", floor)} = ${ratio(floor, f)} the better peer` +
        (floorXml === undefined
          ? ""
          : `, ${fmt(floorXml)} µs${ofOurs("login", floorXml)} = ${
            ratio(floorXml, f)
          } with the XML parsed and serialized and the SCRAM proof checked`) +
        // With ours in the same rounds the verdict below is in shares of ours, which the
        // machine's load between this sitting's runs does not move; else in absolute figures.
        (find("login", "ours") !== undefined
          ? "."
          : `; that is ${fmt(above / goal * 100, 2)} % of the 0.35× goal (${fmt(goal)} µs): ` +
            (above > goal
              ? "the goal is below Deno's floor."
              : `that leaves ${fmt(goal - above)} µs per login for the session, the` +
                " credentials' read, the roster and presence.")) +
        verdict(
          "login",
          0.35,
          f,
          floor,
          floorXml,
          "a login that does not parse cannot check the SCRAM proof",
        ),
      "",
    );
  }

  if (mem.length > 0 || idle.length > 0) {
    const fb = figures("baseline RSS of the started server MB", sitting, latest);
    const fi = figures("idle KB per connection", sitting, latest);
    const f10 = figures("idle-10k RSS holding 10,000 TLS connections MB", sitting, latest);
    md.push("### 3. Memory floors", "");
    if (mem.length > 0) {
      md.push(
        `RSS ${o.settle} s after the start, after the compacting collection our server makes once` +
          " it listens (lib/cli.ts).",
        "",
        "| process | RSS MB |",
        "| --- | --- |",
        ...mem.map(([v, rs]) => `| ${v.name} | ${cell(s(rs, "mb"))} |`),
        "",
      );
    }
    if (idle.length > 0) {
      md.push(
        `N=${o.conns} connections held (direct TLS, handshake done; the node client opens them 50` +
          " at a time); RSS read after the heap trim our server makes once quiet (V8's compacting" +
          " collection and `malloc_trim`), before and while held.",
        "",
        "| server | RSS before MB | RSS held MB | KB per connection |",
        "| --- | --- | --- | --- |",
        ...idle.map(([v, rs]) =>
          `| ${v.name} | ${cell(s(rs, "before"))} | ${cell(s(rs, "held"))} | ${cell(s(rs, "kb"))} |`
        ),
        "",
      );
    }
    const base = find("memory", "+ OpenSSL") ?? find("memory", "+ node");
    const empty = find("memory", "empty");
    const ossl = find("idle", "TLS openssl.ts, pending");
    const osslNoRead = find("idle", "TLS openssl.ts, no read");
    const rustls = find("idle", "TLS Deno.listenTls (rustls), pending");
    const ten = find("idle", "TLS openssl.ts, 10,000");
    const kbGoal = fi.peer === undefined ? NaN : fi.peer.value * 0.35;
    const rows: string[] = [];
    const lines: string[] = [];
    if (base !== undefined) {
      const b = s(base, "mb").med;
      rows.push(
        `| RSS of a started idle server MB | ${oursText(fb)} | ${fmt(b)} (${
          empty === undefined ? "" : `empty: ${fmt(s(empty, "mb").med)}; `
        }with imports, listener and OpenSSL) | ${peerText(fb)} | ≤ 45 |`,
      );
      lines.push(
        `**Conclusion (baseline):** a Deno process with our flags starts at ${
          empty === undefined ? "?" : fmt(s(empty, "mb").med)
        } MB, ${fmt(b)} MB with node:net/tls/crypto, the npm packages, a listener and OpenSSL: ` +
          (b > 45
            ? "the 45 MB goal is below Deno's floor."
            : `${fmt(45 - b)} MB of the 45 MB goal are left for our ~150 modules and their state.`),
      );
    }
    if (ossl !== undefined) {
      const k = s(ossl, "kb").med;
      rows.push(
        `| KB per idle TLS connection | ${oursText(fi)} | ${fmt(k)} (openssl.ts${
          osslNoRead === undefined ? "" : `; ${fmt(s(osslNoRead, "kb").med)} without a read`
        }${rustls === undefined ? "" : `; rustls ${fmt(s(rustls, "kb").med)}`}) | ${
          peerText(fi)
        } | ≤ ${fmt(kbGoal)} |`,
      );
      lines.push(
        `**Conclusion (per connection):** an idle TLS connection on openssl.ts holds ${fmt(k)} KB` +
          ` before any XMPP state = ${ratio(k, fi)} the better peer: ` +
          (k > kbGoal
            ? `the 0.35× goal (${fmt(kbGoal)} KB) is below this floor` +
              (rustls !== undefined && s(rustls, "kb").med < kbGoal
                ? `; Deno.listenTls (rustls) holds ${fmt(s(rustls, "kb").med)} KB, under it,` +
                  " but only on a direct TLS port (XEP-0368): Deno.startTls is client-side, so" +
                  " STARTTLS on port 5222 cannot have rustls."
                : ".")
            : `${fmt(kbGoal - k)} KB of the 0.35× goal (${
              fmt(kbGoal)
            } KB) are left for the session, parser and socket state.`),
      );
    }
    if (base !== undefined && ossl !== undefined) {
      const projected = s(base, "mb").med + s(ossl, "kb").med * 10_000 / 1024;
      rows.push(
        `| 10,000 idle TLS connections MB | ${oursText(f10)} | ${fmt(projected)} (baseline floor` +
          ` + 10,000 × KB floor)${
            ten === undefined ? "" : `; measured: ${fmt(s(ten, "held").med)}`
          } | ${peerText(f10)} | ≤ 250 |`,
      );
      const tenK = ten === undefined ? projected : s(ten, "held").med;
      lines.push(
        `**Conclusion (10k):** ${
          ten === undefined
            ? `the floors add up to ${fmt(projected)} MB`
            : `the floor holds ${fmt(tenK)} MB measured (the floors add up to ${fmt(projected)} MB)`
        } for 10,000 idle TLS connections: ` +
          (tenK > 250
            ? "the 250 MB goal is below Deno's floor."
            : `${fmt(250 - tenK)} MB of the 250 MB goal are left for 10,000 sessions (${
              fmt((250 - tenK) * 1024 / 10_000)
            } KB each).`),
      );
    }
    if (rows.length > 0) {
      md.push(
        "| metric | ours, TLS | floor | better peer | goal |",
        "| --- | --- | --- | --- | --- |",
        ...rows,
        "",
        ...lines.flatMap((l) => [l, ""]),
      );
    }
  }
  if (fan.length > 0) {
    const { f, tls, table, tail } = tlsFloor(
      "fanout",
      "fanout server CPU µs/presence delivery",
      0.15,
    );
    md.push(
      "### 4. Fanout floor: CPU µs per presence delivery",
      "",
      `R=${o.contacts} contacts, K=${o.updates} presence updates (after 20 unmeasured), one at a` +
        " time: the next once all R have the last, as xmppbench's fanout waits; xmppbench's" +
        " presence bytes from one publisher connection; the server writes them to every contact" +
        " unchanged, or parses them once, stamps `from` and serializes once per contact with its" +
        " own `to`, with tcp.ts's reads and per-tick writes (one TLS record and one write per" +
        " contact per update); TLS is openssl.ts over direct TLS, the client node:tls.",
      "",
      ...cpuTable("presence delivery", "deliveries/s", fan),
      ...table("CPU µs per presence delivery"),
      `**Conclusion:** writing one presence to one contact over TLS costs ${
        fmt(s(tls, "us").med)
      } µs${ofOurs("fanout", s(tls, "us").med)} = ${ratio(s(tls, "us").med, f)} the better peer` +
        tail(
          "with the parse once and a serialization per contact",
          "is below Deno's floor (a TLS record and a write per delivery)",
          "leaves no room for serializing each delivery",
          "each delivery carries its own `to`",
        ),
      "",
    );
  }

  if (arch.length > 0) {
    const { f, goal } = cpuGoal("msg-archive server CPU µs/msg", 0.25);
    const raw = find("archive", "TLS (openssl.ts) + 2 appends");
    const tlsXml = find("archive", "TLS (openssl.ts) + XML")!;
    const relayXml = find("relay", "TLS (openssl.ts) + XML");
    const xmlUs = s(tlsXml, "us").med;
    md.push(
      "### 5. Archive floor: CPU µs per message + receipt, archiving every message",
      "",
      `The relay floor (P=${o.pairs}, M=${o.messages} after ${o.warmup}, W=${o.window}), plus` +
        " for each message with a body (not the receipts, as lib/core/archive.ts's isArchivable)" +
        " two appends, the sender's archive and the recipient's, of an item shaped as" +
        " ArchivedMessage with the stanza as a string, through lib/storage/file/list_store.ts with" +
        " the data directory's journal (journal.ts, opened as our server opens it); the message" +
        " goes on once both appends resolved, in order. The data directory is on ext4" +
        " (/var/tmp), fresh for each run and removed after.",
      "",
      ...cpuTable("msg + receipt", "msgs/s", arch),
      ...goalTable("CPU µs per message + receipt, archived", "archive", f, 0.25, goal, [
        ["floor: TLS + appends", raw],
        ["floor: TLS + XML + appends", tlsXml],
      ]),
      `**Conclusion:** relaying, parsing and serializing a message and its receipt over TLS and` +
        ` archiving the message twice, durably, costs ${fmt(xmlUs)} µs${
          ofOurs("archive", xmlUs)
        } = ${ratio(xmlUs, f)} the better peer` +
        (raw === undefined ? "" : ` (${fmt(s(raw, "us").med)} µs without the XML parser)`) +
        (relayXml === undefined
          ? ""
          : `; the two appends add ${fmt(xmlUs - s(relayXml, "us").med)} µs to the relay` +
            " floor's in the same rounds") +
        `: the 0.25× goal (${fmt(goal)} µs) ${
          xmlUs > goal
            ? "is below this floor"
            : `leaves ${fmt(goal - xmlUs)} µs per message above it for routing, the session and` +
              " the account"
        }.` + verdict("archive", 0.25, f, raw === undefined ? xmlUs : s(raw, "us").med, xmlUs),
      "",
    );
  }

  if (loadMd !== undefined) {
    const tls = /^### TLS[^]*?(?=^### |(?![^]))/m.exec(loadMd)?.[0];
    if (tls !== undefined) {
      md.push(
        `### bench:load in this sitting (${loadScenarios(o.only).replaceAll(",", ", ")}; TLS)`,
        "",
        ...tls.replace(/^### .*\n/, "").trim().split("\n"),
        "",
      );
    }
  }
  return md.join("\n");
}

if (import.meta.main) Deno.exit(await main(Deno.args));
