/**
 * The CPU split of a V8 CPU profile (`deno run --cpu-prof`): self time attributed by the
 * script URL of each sampled function into buckets (XML parsing, TLS, crypto, reducers,
 * routing, storage, GC, …), plus the functions with the most self time. `bench/load.ts
 * --profile` uses it for `bench/results/profile-<scenario>.md`; on its own:
 *
 * `deno run --allow-read bench/profile_split.ts FILE.cpuprofile [--from-us N] [--to-us N]`
 *
 * prints the Markdown. `--from-us`/`--to-us` keep only samples in that window of the
 * profile's clock (µs since boot on Linux, as /proc/uptime).
 *
 * What a profile cannot show: time spent in Rust (rustls, socket reads and writes, the file
 * system) outside a JavaScript call appears as "(program)", and time in a synchronous op
 * counts as self time of the JavaScript function that called it.
 *
 * @module
 */

import { parseArgs } from "node:util";

/** The parts of a `.cpuprofile` (Chrome DevTools format) read here. */
export interface CpuProfile {
  readonly nodes: readonly {
    readonly id: number;
    readonly callFrame: {
      readonly functionName: string;
      readonly url: string;
      readonly lineNumber: number;
    };
    readonly children?: readonly number[];
  }[];
  readonly startTime: number;
  readonly endTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

/** A bucket: its name and how a function's URL (or its name, for V8's own entries) matches. */
interface Bucket {
  readonly name: string;
  readonly match: (url: string, fn: string) => boolean;
}

const has = (...parts: string[]) => (url: string) => parts.some((p) => url.includes(p));

/** First match wins, so the narrower buckets come first. */
export const BUCKETS: readonly Bucket[] = [
  { name: "GC", match: (_u, fn) => fn === "(garbage collector)" },
  { name: "XML parsing (lib/xml, saxes)", match: has("/lib/xml/", "/saxes", "/xmlchars") },
  {
    name: "TLS (lib/transport/openssl.ts and its FFI calls, node:tls, deno_net TLS)",
    match: (url, fn) =>
      has("/lib/transport/openssl.ts", "/lib/transport/tls.ts")(url) ||
      has("node:tls", "ext:deno_node/_tls", "internal/tls", "internal_binding/tls_wrap")(url) ||
      has("ext:deno_net/02_tls")(url) || (url === "" && /tls/i.test(fn)),
  },
  {
    name: "crypto (SCRAM, hashes, node:crypto)",
    match: has(
      "ext:deno_crypto",
      "ext:deno_node/internal/crypto",
      "node:crypto",
      "/lib/xmpp/scram",
    ),
  },
  {
    name: "socket I/O (node:net, streams, deno_net)",
    match: has(
      "ext:deno_net",
      "node:net",
      "ext:deno_node/net",
      "internal/streams",
      "stream_base",
      "internal_binding/stream_wrap",
      "internal_binding/tcp_wrap",
    ),
  },
  {
    name: "routing (lib/core/router, lib/shell/server, registry)",
    match: has("/lib/core/router.ts", "/lib/shell/server.ts", "/lib/shell/registry.ts"),
  },
  { name: "storage (lib/storage)", match: has("/lib/storage/") },
  {
    name: "reducers (lib/c2s, account, modules, core, xmpp, services)",
    match: has(
      "/lib/c2s/",
      "/lib/account/",
      "/lib/modules/",
      "/lib/core/",
      "/lib/xmpp/",
      "/lib/services/",
      "/lib/pubsub/",
      "/lib/component/",
      "/lib/s2s/",
    ),
  },
  { name: "shell and transport (rest of lib/)", match: has("/lib/", "/main.ts") },
  { name: "native, outside JS ((program))", match: (_u, fn) => fn === "(program)" },
  { name: "other JS (runtime, npm, logging)", match: () => true },
];

/** Index of the catch-all bucket. */
const OTHER = BUCKETS.length - 1;

/**
 * Runtime glue that works for whoever called it: a native op (no script URL, e.g. `op_write`,
 * `op_fs_read_file_text_async`) or a runtime/node-compat script (`ext:…`) no bucket claims.
 * Its time goes to the bucket of its nearest caller that has one, so that a file read made by
 * lib/storage counts as storage and a socket write as socket I/O.
 */
function isGlue(url: string, fn: string): boolean {
  return (url === "" && !fn.startsWith("(")) || url.startsWith("ext:");
}

/** The split of one profile. */
export interface Split {
  /** Sampled time in the window, idle excluded, in µs. */
  readonly totalUs: number;
  /** Idle time in the window ("(idle)"), in µs. */
  readonly idleUs: number;
  /** Window length in µs (first to last kept sample). */
  readonly wallUs: number;
  /** Self time per bucket in µs, in the order of {@link BUCKETS}. */
  readonly buckets: readonly { readonly name: string; readonly us: number }[];
  /** Functions by self time, most first. */
  readonly top: readonly {
    readonly fn: string;
    readonly where: string;
    readonly bucket: string;
    readonly us: number;
  }[];
}

/** Shortens a script URL to what identifies it: lib/… paths, npm package files, ext: names. */
function shortUrl(url: string): string {
  const lib = url.lastIndexOf("/lib/");
  if (url.startsWith("file://") && lib >= 0) return url.slice(lib + 1);
  const npm = url.indexOf("/node_modules/");
  if (npm >= 0) return url.slice(npm + 14);
  const reg = url.indexOf("registry.npmjs.org/");
  if (reg >= 0) return url.slice(reg + 19);
  return url;
}

/**
 * Self time by bucket: each sample is charged the time until the next one (the usual reading
 * of `timeDeltas`), and only samples whose time lies in [fromUs, toUs] count.
 */
export function splitProfile(
  p: CpuProfile,
  window: { readonly fromUs?: number; readonly toUs?: number } = {},
  topN = 15,
): Split {
  const from = window.fromUs ?? -Infinity;
  const to = window.toUs ?? Infinity;
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parentOf = new Map<number, number>();
  for (const n of p.nodes) for (const c of n.children ?? []) parentOf.set(c, n.id);
  const bucketOf = new Map<number, number>();
  const classify = (id: number): number => {
    const known = bucketOf.get(id);
    if (known !== undefined) return known;
    const { url, functionName } = byId.get(id)!.callFrame;
    let b = BUCKETS.findIndex((x) => x.match(url, functionName));
    const parent = parentOf.get(id);
    if (b === OTHER && isGlue(url, functionName) && parent !== undefined) b = classify(parent);
    bucketOf.set(id, b);
    return b;
  };
  const perBucket = BUCKETS.map(() => 0);
  const perNode = new Map<number, number>();
  let t = p.startTime;
  let idle = 0, total = 0, first = Infinity, last = -Infinity;
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i] ?? 0;
    if (t < from || t > to) continue;
    const dt = p.timeDeltas[i + 1] ?? 0;
    first = Math.min(first, t);
    last = Math.max(last, t);
    const id = p.samples[i];
    const node = byId.get(id);
    if (node === undefined) continue;
    if (node.callFrame.functionName === "(idle)") {
      idle += dt;
      continue;
    }
    const b = classify(id);
    perBucket[b] += dt;
    total += dt;
    perNode.set(id, (perNode.get(id) ?? 0) + dt);
  }
  // The same function appears as several nodes (one per call path), in different buckets when
  // its callers differ (op_write for a socket and for a file): merged per function and bucket.
  const perFn = new Map<string, { fn: string; where: string; bucket: string; us: number }>();
  for (const [id, us] of perNode) {
    const { url, functionName, lineNumber } = byId.get(id)!.callFrame;
    const where = url ? `${shortUrl(url)}:${lineNumber + 1}` : "";
    const bucket = BUCKETS[bucketOf.get(id)!].name;
    const key = `${functionName}@${where}@${bucket}`;
    const e = perFn.get(key) ?? { fn: functionName || "(anonymous)", where, bucket, us: 0 };
    e.us += us;
    perFn.set(key, e);
  }
  return {
    totalUs: total,
    idleUs: idle,
    wallUs: last > first ? last - first : 0,
    buckets: BUCKETS.map((b, i) => ({ name: b.name, us: perBucket[i] })),
    top: [...perFn.values()].sort((a, b) => b.us - a.us).slice(0, topN),
  };
}

const ms = (us: number) => (us / 1000).toFixed(us >= 100_000 ? 0 : 1);
const pct = (us: number, total: number) => total > 0 ? `${(us / total * 100).toFixed(1)} %` : "—";

/** The split as Markdown: buckets, then the top functions. */
export function renderSplit(
  s: Split,
  meta: { readonly title: string; readonly params?: string },
): string {
  return [
    `## ${meta.title}`,
    "",
    ...(meta.params ? [`- ${meta.params}`] : []),
    `- window: ${ms(s.wallUs)} ms of wall time; ${ms(s.totalUs)} ms sampled busy on the main` +
    ` thread, ${ms(s.idleUs)} ms idle. Self time by the script of each sampled function` +
    " (bench/profile_split.ts); a native op or runtime glue counts for its nearest caller" +
    " that has a bucket (the ops node:tls's tls_wrap calls count as TLS, a file read by" +
    ' lib/storage as storage). Rust work outside a JS call is "(program)".',
    "",
    "| bucket | self ms | share of busy |",
    "|---|---|---|",
    ...s.buckets.filter((b) => b.us > 0).sort((a, b) => b.us - a.us).map((b) =>
      `| ${b.name} | ${ms(b.us)} | ${pct(b.us, s.totalUs)} |`
    ),
    "",
    "Top functions by self time:",
    "",
    "| function | where | bucket | self ms | share |",
    "|---|---|---|---|---|",
    ...s.top.map((f) =>
      `| ${f.fn.replaceAll("|", "\\|")} | ${f.where.replaceAll("|", "\\|")} | ${
        f.bucket.split(" (")[0]
      } | ${ms(f.us)} | ${pct(f.us, s.totalUs)} |`
    ),
    "",
  ].join("\n");
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { "from-us": { type: "string" }, "to-us": { type: "string" } },
  });
  if (positionals.length !== 1) {
    console.error(
      "usage: deno run --allow-read bench/profile_split.ts FILE.cpuprofile [--from-us N] [--to-us N]",
    );
    Deno.exit(2);
  }
  const profile = JSON.parse(await Deno.readTextFile(positionals[0])) as CpuProfile;
  const split = splitProfile(profile, {
    fromUs: values["from-us"] === undefined ? undefined : Number(values["from-us"]),
    toUs: values["to-us"] === undefined ? undefined : Number(values["to-us"]),
  });
  console.log(renderSplit(split, { title: `CPU split of ${positionals[0]}` }));
}
