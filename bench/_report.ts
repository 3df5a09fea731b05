/**
 * The Markdown report of `bench/load.ts`: which xmppbench JSON fields are shown per scenario,
 * medians over repeats, and the side-by-side table. Pure functions over the parsed JSON lines.
 * @module
 */

/**
 * The scenarios load.ts knows. `msg-archive` is xmppbench's msg scenario with message archiving
 * on in both servers; `msg` has it off. `muc` is bench/muc_load.mjs (group chat, XEP-0045),
 * which writes its JSON line with xmppbench's field names. `ws-idle` and `ws-msg` are idle and
 * msg over WebSocket (RFC 7395), by bench/ws_load.mjs, with the same field names again. `s2s` is
 * bench/s2s_load.mjs: messages and receipts between two federating servers of the same kind,
 * with the CPU of both (and of each side in `cpu_a_us_per_op`, `cpu_b_us_per_op`).
 * `baseline` is the RSS of a started server before any connection (load.ts reads it itself),
 * `churn` repeated rounds of logins and logouts (load.ts runs xmppbench's login in a loop) and
 * `idle-10k` xmppbench's idle with 10,000 STARTTLS connections.
 */
export type Scenario =
  | "login"
  | "idle"
  | "msg"
  | "msg-archive"
  | "fanout"
  | "muc"
  | "ws-idle"
  | "ws-msg"
  | "s2s"
  | "baseline"
  | "churn"
  | "idle-10k";

/** One xmppbench (or muc_load) JSON line, parsed. */
export type BenchJson = Readonly<Record<string, unknown>>;

/** What happened to one scenario on one server. */
export interface Outcome {
  /** The JSON lines of the successful runs. */
  readonly runs: readonly BenchJson[];
  /** Why runs failed (one entry per failed run), empty when all succeeded. */
  readonly failures: readonly string[];
  /** Set when the scenario was not run on this server at all, with the reason. */
  readonly skipped?: string;
}

/** One row of the table: a JSON field (dotted path) and how to show it. */
export interface Metric {
  readonly label: string;
  readonly path: string;
  /** Decimals below 100 (values of 100 and more are shown as integers). */
  readonly digits: number;
  /** Divide the field by this (kB -> MB: 1024). */
  readonly divide?: number;
  /** No ratio column: the figure describes the machine, not the server. */
  readonly noRatio?: boolean;
  /** A rate: the better peer is the one with the larger value (otherwise the smaller). */
  readonly higherIsBetter?: boolean;
}

const OTHER_LOAD: Metric = {
  label: "other load on the machine (cores)",
  path: "phase.other_busy_cores",
  digits: 2,
  noRatio: true,
};

const SERVER_CPU: Metric = {
  label: "server CPU s in the measured phase (10 ms ticks)",
  path: "phase.server_cpu_s",
  digits: 2,
  noRatio: true,
};

const MSG: readonly Metric[] = [
  { label: "**server CPU µs/msg** (+ its receipt)", path: "cpu_us_per_op", digits: 0 },
  { label: "delivered msgs/s", path: "rate_per_s", digits: 0, higherIsBetter: true },
  { label: "end-to-end p50 ms", path: "lat_ms.p50", digits: 1 },
  { label: "end-to-end p99 ms", path: "lat_ms.p99", digits: 1 },
  SERVER_CPU,
  OTHER_LOAD,
];

const IDLE: readonly Metric[] = [
  { label: "**KB per connection** (lower is better)", path: "kb_per_conn", digits: 1 },
  { label: "RSS before MB", path: "rss_before_kb", digits: 1, divide: 1024 },
  { label: "RSS held MB", path: "rss_after_kb", digits: 1, divide: 1024 },
  { label: "RSS after close MB", path: "rss_after_close_kb", digits: 1, divide: 1024 },
  { label: "server CPU µs/login during the ramp", path: "cpu_us_per_op", digits: 0 },
  { label: "server CPU s while holding", path: "hold_server_cpu_s", digits: 2 },
  SERVER_CPU,
  OTHER_LOAD,
];

/** The rows per scenario; the first of each is the headline figure. */
export const METRICS: Readonly<Record<Scenario, readonly Metric[]>> = {
  login: [
    { label: "**server CPU µs/login** (lower is better)", path: "cpu_us_per_op", digits: 0 },
    { label: "logins/s", path: "rate_per_s", digits: 0, higherIsBetter: true },
    { label: "login time p50 ms", path: "lat_ms.p50", digits: 1 },
    { label: "login time p99 ms", path: "lat_ms.p99", digits: 1 },
    { label: "SASL step p50 ms", path: "auth_ms.p50", digits: 1 },
    SERVER_CPU,
    OTHER_LOAD,
  ],
  idle: IDLE,
  msg: MSG,
  "msg-archive": MSG,
  fanout: [
    { label: "**server CPU µs/presence delivery**", path: "cpu_us_per_op", digits: 1 },
    { label: "all contacts reached p50 ms", path: "update_ms.p50", digits: 1 },
    { label: "all contacts reached p99 ms", path: "update_ms.p99", digits: 1 },
    { label: "deliveries/s", path: "rate_per_s", digits: 0, higherIsBetter: true },
    SERVER_CPU,
    OTHER_LOAD,
  ],
  muc: [
    { label: "**server CPU µs/groupchat delivery**", path: "cpu_us_per_op", digits: 1 },
    { label: "deliveries/s", path: "rate_per_s", digits: 0, higherIsBetter: true },
    { label: "end-to-end p50 ms (send → each occupant)", path: "lat_ms.p50", digits: 1 },
    { label: "end-to-end p99 ms", path: "lat_ms.p99", digits: 1 },
    { label: "server CPU µs/message sent (× N deliveries)", path: "cpu_us_per_msg", digits: 0 },
    SERVER_CPU,
    OTHER_LOAD,
  ],
  "ws-idle": IDLE,
  "ws-msg": MSG,
  s2s: [
    {
      label: "**CPU µs/msg, both servers** (A→B + receipt B→A)",
      path: "cpu_us_per_op",
      digits: 0,
    },
    { label: "sending server A CPU µs/msg", path: "cpu_a_us_per_op", digits: 0 },
    { label: "receiving server B CPU µs/msg", path: "cpu_b_us_per_op", digits: 0 },
    {
      label: "msgs/s (receipt back at the sender)",
      path: "rate_per_s",
      digits: 0,
      higherIsBetter: true,
    },
    { label: "send → receipt p50 ms", path: "lat_ms.p50", digits: 1 },
    { label: "send → receipt p99 ms", path: "lat_ms.p99", digits: 1 },
    {
      label: "both servers' CPU s in the measured phase",
      path: "phase.server_cpu_s",
      digits: 2,
      noRatio: true,
    },
    OTHER_LOAD,
  ],
  baseline: [
    {
      label: "**RSS of the started server MB** (no connection yet)",
      path: "rss_kb",
      digits: 1,
      divide: 1024,
    },
    {
      label: "RSS after 20 logins and logouts MB (settled again)",
      path: "rss_after_warmup_kb",
      digits: 1,
      divide: 1024,
    },
    { label: "server CPU s while settling", path: "settle_cpu_s", digits: 2, noRatio: true },
  ],
  churn: [
    {
      label: "**RSS after all left, above before the burst (%)**",
      path: "rss_growth_pct",
      digits: 1,
      noRatio: true,
    },
    { label: "server CPU µs per login + logout", path: "cpu_us_per_op", digits: 0 },
    {
      label: "logins/s (rounds of logins, then all log out)",
      path: "rate_per_s",
      digits: 0,
      higherIsBetter: true,
    },
    { label: "RSS before the burst MB", path: "rss_before_kb", digits: 1, divide: 1024 },
    { label: "RSS peak during the burst MB", path: "rss_peak_kb", digits: 1, divide: 1024 },
    {
      label: "RSS at the end MB (last round just left)",
      path: "rss_end_kb",
      digits: 1,
      divide: 1024,
    },
    {
      label: "RSS after all left and a settle MB",
      path: "rss_after_close_kb",
      digits: 1,
      divide: 1024,
    },
    SERVER_CPU,
  ],
  "idle-10k": [
    {
      label: "**RSS holding 10,000 TLS connections MB**",
      path: "rss_after_kb",
      digits: 1,
      divide: 1024,
    },
    { label: "KB per connection", path: "kb_per_conn", digits: 1 },
    { label: "RSS before MB", path: "rss_before_kb", digits: 1, divide: 1024 },
    { label: "RSS after close MB", path: "rss_after_close_kb", digits: 1, divide: 1024 },
    { label: "connections held", path: "alive_after_hold", digits: 0, higherIsBetter: true },
    { label: "server CPU µs/login during the ramp", path: "cpu_us_per_op", digits: 0 },
    { label: "server CPU s while holding", path: "hold_server_cpu_s", digits: 2 },
    SERVER_CPU,
    OTHER_LOAD,
  ],
};

/** A numeric field at a dotted path, or `undefined`. */
export function field(json: BenchJson, path: string): number | undefined {
  let cur: unknown = json;
  for (const key of path.split(".")) {
    if (typeof cur !== "object" || cur === null) return undefined;
    cur = (cur as Record<string, unknown>)[key];
  }
  return typeof cur === "number" && Number.isFinite(cur) ? cur : undefined;
}

/** The median of the values (mean of the middle two for an even count). */
export function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 === 1 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/** A number as summarize.mjs shows it: integers with separators from 100 up. */
export function formatNumber(x: number, digits: number): string {
  return Math.abs(x) >= 100 || digits === 0
    ? Math.round(x).toLocaleString("en-US")
    : x.toFixed(digits);
}

function values(outcome: Outcome, m: Metric): number[] {
  return outcome.runs
    .map((r) => field(r, m.path))
    .filter((x): x is number => x !== undefined)
    .map((x) => x / (m.divide ?? 1));
}

/** The median of a metric over an outcome's runs. */
export function metricMedian(outcome: Outcome | undefined, m: Metric): number | undefined {
  return outcome === undefined ? undefined : median(values(outcome, m));
}

function cell(outcome: Outcome | undefined, m: Metric): string {
  if (outcome === undefined) return "—";
  if (outcome.skipped !== undefined) return "skipped";
  const v = values(outcome, m).sort((a, b) => a - b);
  // No successful run: the notes say why (renderFailures).
  if (v.length === 0) return outcome.runs.length === 0 ? "failed" : "n/a";
  const med = formatNumber(median(v)!, m.digits);
  // The range shows how far repeats disagree; with one run there is none.
  return v.length === 1
    ? med
    : `${med} (${formatNumber(v[0], m.digits)}–${formatNumber(v[v.length - 1], m.digits)})`;
}

function ratio(ours: number | undefined, theirs: number | undefined): string {
  if (ours === undefined || theirs === undefined || theirs === 0) return "—";
  const r = ours / theirs;
  return r >= 10 ? r.toFixed(0) : r >= 1 ? r.toFixed(1) : r.toFixed(2);
}

/** One server's column: its name, label and outcomes. */
export interface Column {
  readonly name: string;
  readonly label: string;
  readonly outcomes: Readonly<Partial<Record<Scenario, Outcome>>>;
}

/**
 * The better of the peers for a metric (smaller, or larger for a rate), with its median; none
 * when no peer has a (positive, for a ratio) value.
 */
export function bestPeer(
  peers: readonly Column[],
  s: Scenario,
  m: Metric,
): { readonly name: string; readonly value: number } | undefined {
  let best: { name: string; value: number } | undefined;
  for (const p of peers) {
    const v = metricMedian(p.outcomes[s], m);
    // A ratio needs a positive base: a negative KB per connection (RSS fell while a few
    // connections were held) is noise, not a better peer.
    if (v === undefined || (!m.noRatio && v <= 0)) continue;
    const better = best === undefined || (m.higherIsBetter ? v > best.value : v < best.value);
    if (better) best = { name: p.name, value: v };
  }
  return best;
}

/** `0.69 (Prosody)`: ours over the better peer, and which peer that was. */
function ratioCell(ours: Column, peers: readonly Column[], s: Scenario, m: Metric): string {
  if (m.noRatio) return "";
  const best = bestPeer(peers, s, m);
  const r = ratio(metricMedian(ours.outcomes[s], m), best?.value);
  return r === "—" || best === undefined ? r : `${r} (${best.name})`;
}

/** Input of {@link renderTable}. */
export interface TableInput {
  readonly scenarios: readonly Scenario[];
  /** Parameters per scenario, shown in the scenario column. */
  readonly params: Readonly<Record<Scenario, string>>;
  /** Our server's column. */
  readonly ours: Column;
  /** The peers measured in the same run (Prosody, ejabberd), possibly none. */
  readonly peers: readonly Column[];
}

/**
 * The side-by-side Markdown table: one column per server, then ours over the better of the
 * peers for each metric (named in the cell).
 */
export function renderTable(t: TableInput): string {
  const cols = [t.ours, ...t.peers];
  const lines = [
    `| scenario | metric | ${cols.map((c) => c.label).join(" | ")} | ours / better peer |`,
    `|---|---|${cols.map(() => "---|").join("")}---|`,
  ];
  for (const s of t.scenarios) {
    METRICS[s].forEach((m, i) => {
      const head = i === 0 ? `${s} (${t.params[s]})` : "";
      const cells = cols.map((c) => cell(c.outcomes[s], m)).join(" | ");
      lines.push(`| ${head} | ${m.label} | ${cells} | ${ratioCell(t.ours, t.peers, s, m)} |`);
    });
  }
  return lines.join("\n");
}

/** One transport of {@link renderHeadline}: "TLS" or "plain TCP" and its columns. */
export interface HeadlineMode {
  readonly name: string;
  readonly ours: Column;
  readonly peers: readonly Column[];
  /** Scenarios this mode did not run (they do not depend on it), shown as "same". */
  readonly shared?: readonly Scenario[];
}

/**
 * The README table: each scenario's headline metric (its first row), ours and the better peer
 * under each transport, the first transport (TLS) first.
 */
export function renderHeadline(scenarios: readonly Scenario[], modes: readonly HeadlineMode[]) {
  const head = modes.map((m) =>
    `ours, ${m.name} | better peer, ${m.name} | ours / peer, ${m.name}`
  );
  const lines = [
    `| scenario | metric | ${head.join(" | ")} |`,
    `|---|---|${modes.map(() => "---|---|---|").join("")}`,
  ];
  for (const s of scenarios) {
    const m = METRICS[s][0];
    const cells = modes.map((mode) => {
      if (mode.shared?.includes(s)) return "(one run: see the first) | | ";
      const ours = metricMedian(mode.ours.outcomes[s], m);
      const best = bestPeer(mode.peers, s, m);
      const fmt = (v: number | undefined) => v === undefined ? "—" : formatNumber(v, m.digits);
      const peer = best === undefined ? "—" : `${fmt(best.value)} (${best.name})`;
      return `${fmt(ours)} | ${peer} | ${m.noRatio ? "" : ratio(ours, best?.value)}`;
    });
    lines.push(`| ${s} | ${m.label} | ${cells.join(" | ")} |`);
  }
  return lines.join("\n");
}

/** Notes for runs that failed or were skipped, one line each. */
export function renderFailures(
  name: string,
  outcomes: Readonly<Partial<Record<Scenario, Outcome>>>,
): string[] {
  const out: string[] = [];
  for (const [s, o] of Object.entries(outcomes)) {
    if (o === undefined) continue;
    if (o.skipped !== undefined) out.push(`- ${name}, ${s}: skipped: ${o.skipped}`);
    const distinct = [...new Set(o.failures)];
    for (const f of distinct) {
      const n = o.failures.filter((x) => x === f).length;
      out.push(`- ${name}, ${s}: ${n} run(s) failed: ${f.slice(0, 300)}`);
    }
  }
  return out;
}
