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
import { NOFILE, ourServer, SERVER_V8_FLAGS, type ServerKind } from "./_servers.ts";

const HELP = `usage: deno task bench:floor [flags]

  --repeats N         runs of each variant, each in a fresh server process [3]
  --only LIST         relay, login, memory, idle (comma-separated) [all]
  --pairs N           relay: connection pairs [20]
  --messages N        relay: measured messages per pair [500]
  --window N          relay: unacknowledged messages per pair [10]
  --warmup N          relay: unmeasured messages per pair first [50]
  --logins N          login: measured logins [300]
  --concurrency N     login: logins in flight [20]
  --conns N           idle: connections held [1000]
  --settle S          memory: seconds before RSS is read [5]
  --idle-10k          idle: also hold 10,000 TLS connections on OpenSSL once
  --no-ours           leave out our server's msg and login over TLS, which otherwise run in
                      the same rounds as the floors (xmppbench, as bench:load runs them)
  --load              run bench:load --scenarios msg,login,idle,baseline --tls --repeats 3
                      --no-save --no-prosody --no-ejabberd first, in the same sitting
  --load-peers        the same with Prosody and ejabberd
  --load-report FILE  take ours (and peers) from this saved bench:load output instead
  --no-save           print the report only
`;

interface Options {
  readonly repeats: number;
  readonly only: ReadonlySet<string>;
  readonly pairs: number;
  readonly messages: number;
  readonly window: number;
  readonly warmup: number;
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
    only: new Set((values.only ?? "relay,login,memory,idle").split(",").map((s) => s.trim())),
    pairs: n(values.pairs, 20),
    messages: n(values.messages, 500),
    window: n(values.window, 10),
    warmup: n(values.warmup, 50),
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
  readonly group: "relay" | "login" | "memory" | "idle";
  readonly name: string;
  /** One measurement: named figures. */
  run(): Promise<Record<string, number>>;
}

function relayVariant(o: Options, name: string, tls: boolean, xml: boolean, cert: string[]) {
  return {
    group: "relay" as const,
    name,
    async run() {
      const s = await startServer(SERVER, ["relay", `tls=${+tls}`, `xml=${+xml}`, ...cert]);
      try {
        const r = await runClient([
          "relay",
          `port=${s.port}`,
          `pid=${s.pid}`,
          `tls=${+tls}`,
          `xml=${+xml}`,
          `pairs=${o.pairs}`,
          `messages=${o.messages}`,
          `window=${o.window}`,
          `warmup=${o.warmup}`,
        ]);
        return {
          us: r.us_per_msg as number,
          rate: r.msgs_per_s as number,
          other: r.other_busy_cores as number,
        };
      } finally {
        await s.stop();
      }
    },
  };
}

function loginVariant(o: Options, name: string, engine: string, cert: string[]) {
  return {
    group: "login" as const,
    name,
    async run() {
      const s = await startServer(SERVER, [
        "login",
        `engine=${engine}`,
        `script=${SCRIPT}`,
        ...cert,
      ]);
      try {
        const r = await runClient([
          "login",
          `port=${s.port}`,
          `pid=${s.pid}`,
          `starttls=${engine === "tcp" ? 0 : 1}`,
          `script=${SCRIPT}`,
          `logins=${o.logins}`,
          `concurrency=${o.concurrency}`,
        ]);
        return {
          us: r.us_per_login as number,
          close: r.us_per_close as number,
          rate: r.logins_per_s as number,
          other: r.other_busy_cores as number,
        };
      } finally {
        await s.stop();
      }
    },
  };
}

function baselineVariant(o: Options, name: string, level: string, cert: string[]) {
  return {
    group: "memory" as const,
    name,
    async run() {
      const s = await startServer(BASELINE, [level, ...cert]);
      try {
        await sleep(o.settle * 1000);
        return { mb: (await rssKb(s.pid)) / 1024 };
      } finally {
        await s.stop();
      }
    },
  };
}

function idleVariant(
  o: Options,
  name: string,
  engine: string,
  read: boolean,
  cert: string[],
  conns = o.conns,
) {
  return {
    group: "idle" as const,
    name,
    async run() {
      const s = await startServer(SERVER, ["idle", `engine=${engine}`, `read=${+read}`, ...cert]);
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
        await s.stop();
      }
    },
  };
}

/** Runs xmppbench to its end; its last JSON line is the result. */
async function xmppbench(args: readonly string[]): Promise<Record<string, unknown>> {
  const out = await new Deno.Command("bash", {
    args: [
      "-c",
      `ulimit -n ${NOFILE} 2>/dev/null; exec "$@"`,
      "bash",
      "node",
      XMPPBENCH,
      ...args,
      "--timeout",
      "300",
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const line = new TextDecoder().decode(out.stdout).split("\n").reverse().find((l) =>
    l.startsWith("{")
  );
  const r = line === undefined ? undefined : JSON.parse(line);
  if (r?.ok !== true) {
    throw new Error(
      `xmppbench ${args.join(" ")}: ${r?.error ?? new TextDecoder().decode(out.stderr)}`,
    );
  }
  return r;
}

/**
 * Our server (main.ts, as bench:load starts it: fresh from a provisioned snapshot, STARTTLS
 * required, archiving off, the 20-login warm-up) under xmppbench's msg or login, so that ours
 * is measured in the same rounds as the floors.
 */
function oursVariant(o: Options, scenario: "msg" | "login", kind: () => Promise<ServerKind>) {
  return {
    group: scenario === "msg" ? "relay" as const : "login" as const,
    name: `ours (main.ts): xmppbench ${scenario}, STARTTLS`,
    async run() {
      const s = await (await kind()).start({ archive: false, tls: true });
      try {
        const base = ["--port", `${s.port}`, "--mech", "SCRAM-SHA-1", "--starttls"];
        await xmppbench([
          "--scenario",
          "login",
          ...base,
          "--users",
          "20",
          "--concurrency",
          "5",
          "--quiesce-max",
          "0",
        ]);
        const r = await xmppbench([
          "--scenario",
          scenario,
          ...base,
          ...(scenario === "msg"
            ? ["--pairs", `${o.pairs}`, "--messages", `${o.messages}`, "--window", `${o.window}`]
            : ["--users", `${o.logins}`, "--concurrency", `${o.concurrency}`]),
          "--server-pid",
          `${s.pid}`,
        ]);
        return {
          us: r.cpu_us_per_op as number,
          rate: r.rate_per_s as number,
          other: (r.phase as { other_busy_cores: number }).other_busy_cores,
          close: NaN,
        };
      } finally {
        await s.stop();
      }
    },
  };
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

async function runLoad(peers: boolean): Promise<string | undefined> {
  const args = [
    "run",
    "--allow-all",
    here("./load.ts"),
    "--scenarios",
    "msg,login,idle,baseline",
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
    }; the floors import lib/transport/openssl.ts, tls.ts, lib/xml/parser.ts and element.ts`,
    `- nproc: ${navigator.hardwareConcurrency}, CPU: ${cpu}, load average at start: ${load}`,
    `- deno ${Deno.version.deno} (V8 ${Deno.version.v8}), node ${node} (the load client)`,
  ];
}

// ---------------------------------------------------------------------------------- main --

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
  const started = new Date();
  const facts = await machine();
  const loadMd = opts.loadReport !== undefined
    ? await Deno.readTextFile(opts.loadReport)
    : opts.load !== "none"
    ? await runLoad(opts.load === "peers")
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
        { users: Math.max(opts.logins, 2 * opts.pairs), fanContacts: 0 },
        () => Promise.reject(new Error("no fanout here")),
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
    loginVariant(opts, "STARTTLS, OpenSSL (openssl.ts)", "openssl", cert),
    loginVariant(opts, "STARTTLS, node:tls (tls.ts acceptTls)", "node", cert),
    loginVariant(opts, "plain TCP (no TLS)", "tcp", cert),
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
    await Deno.writeTextFile(file, report);
    await new Deno.Command(Deno.execPath(), { args: ["fmt", file], stderr: "null" }).output();
    progress(`wrote ${file}`);
  }
  return 0;
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
        : "`bench:load --scenarios msg,login,idle,baseline --tls --repeats 3` run in this" +
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
  const verdict = (group: string, goal: number, f: Figures, floor: number, floorXml?: number) => {
    const rs = find(group, "ours");
    if (rs === undefined || f.ratioNow === undefined) return "";
    const ours = s(rs, "us").med;
    const pct = (x: number) => `${fmt(x * 100, 2)} %`;
    const needs = [f.ratioNow, f.ratioLatest].filter((x) => x !== undefined).map((x) => goal / x);
    const need = Math.max(...needs);
    const share = floor / ours;
    const shareXml = floorXml === undefined ? undefined : floorXml / ours;
    return ` In shares of ours, which do not depend on the machine's load: the ${
      goal.toFixed(2)
    }× goal asks` +
      ` ours to fall to ${pct(goal / f.ratioNow)} of itself (ours/peer ${
        fmt(f.ratioNow, 2)
      } in this sitting's bench:load${
        f.ratioLatest === undefined
          ? ""
          : `; ${pct(goal / f.ratioLatest)} with latest.md's ${fmt(f.ratioLatest, 2)}`
      }); the floor is ${pct(share)} of ours in the same rounds${
        shareXml === undefined ? "" : `, ${pct(shareXml)} with XML parsing`
      }: ` +
      ((shareXml ?? share) > need
        ? `**the goal is below Deno's floor**${
          shareXml !== undefined && share <= need
            ? " once stanzas are parsed (a relay that does not parse cannot stamp `from` or route by `to`)"
            : ""
        }.`
        : `reachable only if everything above the floor shrinks to ${
          pct(need - (shareXml ?? share))
        } of ours (${fmt((need - (shareXml ?? share)) * ours)} µs) at best, from ${
          pct(1 - (shareXml ?? share))
        } now.`);
  };
  const ratio = (x: number, f: Figures) =>
    f.peer === undefined ? "—" : `${fmt(x / f.peer.value, 2)}×`;

  const relay = byName("relay");
  if (relay.length > 0) {
    const f = figures("msg server CPU µs/msg", sitting, latest);
    const tls = find("relay", "TLS (openssl.ts)")!;
    const tlsXml = find("relay", "TLS (openssl.ts) + XML");
    const goal = f.peer === undefined ? NaN : f.peer.value * 0.10;
    md.push(
      "### 1. Relay floor: CPU µs per message + receipt (archive off)",
      "",
      `P=${o.pairs} pairs, M=${o.messages} messages per pair (after ${o.warmup} unmeasured), ` +
        `W=${o.window}; xmppbench's message and receipt bytes; the server forwards each` +
        " connection's bytes to its partner (routing fixed by accept order) with tcp.ts's reads" +
        " and per-tick writes; TLS is openssl.ts over direct TLS (ECDSA P-256), the client node:tls.",
      "",
      "| server | CPU µs per msg + receipt | msgs/s | other load (cores) |",
      "| --- | --- | --- | --- |",
      ...relay.map(([v, rs]) =>
        `| ${v.name} | ${cell(s(rs, "us"))} | ${cell(s(rs, "rate"))} | ${cell(s(rs, "other"), 2)} |`
      ),
      "",
      "| metric | ours, TLS (bench:load) | ours, TLS (same rounds) | floor: TLS relay | floor: TLS relay + XML | better peer | goal (0.10×) |",
      "| --- | --- | --- | --- | --- | --- | --- |",
      `| CPU µs per message + receipt | ${oursText(f)} | ${oursRounds("relay")} | ${
        cell(s(tls, "us"))
      } | ${tlsXml === undefined ? "—" : cell(s(tlsXml, "us"))} | ${peerText(f)} | ≤ ${
        fmt(goal)
      } |`,
      "",
      `**Conclusion:** the TLS relay alone costs ${fmt(s(tls, "us").med)} µs per message +` +
        ` receipt${ofOurs("relay", s(tls, "us").med)} = ${
          ratio(s(tls, "us").med, f)
        } the better peer` +
        (tlsXml === undefined
          ? ""
          : `, ${fmt(s(tlsXml, "us").med)} µs = ${
            ratio(s(tlsXml, "us").med, f)
          } with our XML parser and serializer`) +
        `: the 0.10× goal (${fmt(goal)} µs) ${
          s(tls, "us").med > goal
            ? "is below Deno's floor"
            : tlsXml !== undefined && s(tlsXml, "us").med > goal
            ? "leaves no room for XML parsing"
            : "is above the floor"
        }.` + verdict("relay", 0.10, f, s(tls, "us").med, tlsXml && s(tlsXml, "us").med),
      "",
    );
  }

  const login = byName("login");
  if (login.length > 0) {
    const f = figures("login server CPU µs/login", sitting, latest);
    const ossl = find("login", "STARTTLS, OpenSSL")!;
    const goal = f.peer === undefined ? NaN : f.peer.value * 0.35;
    md.push(
      "### 2. Login floor: CPU µs per SCRAM login over TLS",
      "",
      `L=${o.logins} logins, C=${o.concurrency} in flight (after 20 unmeasured); each login the` +
        " round trips and bytes of xmppbench's STARTTLS + SCRAM-SHA-1 login against ours (9 steps" +
        " with STARTTLS, 7 without: stream, starttls, stream, auth, response, stream, bind, roster" +
        " get, presence + ping), answered with canned bytes (bench/fixtures/floor_login.json), no" +
        " XML parsing and no SCRAM arithmetic; the closes (`</stream:stream>` each way, close_notify)" +
        " are measured apart, after the logins, as xmppbench does.",
      "",
      "| server | CPU µs per login | CPU µs per close | logins/s | other load (cores) |",
      "| --- | --- | --- | --- | --- |",
      ...login.map(([v, rs]) =>
        `| ${v.name} | ${cell(s(rs, "us"))} | ${cell(s(rs, "close"))} | ${cell(s(rs, "rate"))} | ${
          cell(s(rs, "other"), 2)
        } |`
      ),
      "",
      "| metric | ours, TLS (bench:load) | ours, TLS (same rounds) | floor: OpenSSL | better peer | goal (0.35×) |",
      "| --- | --- | --- | --- | --- | --- |",
      `| CPU µs per SCRAM login | ${oursText(f)} | ${oursRounds("login")} | ${
        cell(s(ossl, "us"))
      } | ${peerText(f)} | ≤ ${fmt(goal)} |`,
      "",
      `**Conclusion:** accept + TLS handshake + the login's round trips cost ` +
        `${fmt(s(ossl, "us").med)} µs${ofOurs("login", s(ossl, "us").med)} = ${
          ratio(s(ossl, "us").med, f)
        } the better peer, ` +
        `${fmt(s(ossl, "us").med / goal * 100, 2)} % of the 0.35× goal (${fmt(goal)} µs): ` +
        (s(ossl, "us").med > goal
          ? "the goal is below Deno's floor."
          : `that leaves ${
            fmt(goal - s(ossl, "us").med)
          } µs per login for XML, SCRAM, the session` +
            " and the roster.") +
        verdict("login", 0.35, f, s(ossl, "us").med),
      "",
    );
  }

  const mem = byName("memory");
  const idle = byName("idle");
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
  if (loadMd !== undefined) {
    const tls = /^### TLS[^]*?(?=^### |(?![^]))/m.exec(loadMd)?.[0];
    if (tls !== undefined) {
      md.push(
        "### bench:load in this sitting (msg, login, idle, baseline; TLS)",
        "",
        ...tls.replace(/^### .*\n/, "").trim().split("\n"),
        "",
      );
    }
  }
  return md.join("\n");
}

if (import.meta.main) Deno.exit(await main(Deno.args));
