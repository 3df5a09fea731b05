/**
 * Gives the memory of a burst back to the system once the server is idle again.
 *
 * A burst of logins leaves the V8 heap several times larger than what stays live (about 19 KB
 * of heap per idle connection after 1000 logins, 10 KB of it live), and that memory stays
 * resident: an ordinary full collection frees the objects but keeps the pages, and V8's own
 * memory reducer does not act for many seconds, if at all. A "last resort" collection
 * (`gc({ flavor: "last-resort" })`, which needs `--expose-gc`) compacts the heap and releases
 * the pages: RSS per idle connection fell from ~32 to ~10 KB. It stops the process for tens of
 * milliseconds per thousand connections, so it runs only when every connection has just gone
 * quiet (no one waits for an answer), only when the heap grew by a burst's worth since the last
 * time, and at most once per interval.
 * @module
 */

/** The gc extension's call with options (V8 `--expose-gc`). */
export type GcCall = (options: {
  readonly type: "major";
  readonly execution: "sync";
  readonly flavor: "last-resort";
}) => void;

/** When a trim is worth its pause. */
export interface TrimPolicy {
  /** Heap growth since the last trim below which memory is left alone, in bytes. */
  readonly minGrowthBytes: number;
  /** Also required: growth by this fraction of the heap after the last trim. */
  readonly minGrowthRatio: number;
  /** Least time between two trims, in milliseconds. */
  readonly minIntervalMs: number;
}

/** The default policy: a burst of a few hundred logins, at most twice a minute. */
export const TRIM_POLICY: TrimPolicy = {
  minGrowthBytes: 8 * 1024 * 1024,
  minGrowthRatio: 0.25,
  minIntervalMs: 30_000,
};

/** The heap size and time of the last trim (or of the start). */
export interface TrimMark {
  readonly heapTotal: number;
  readonly at: number;
}

/** Whether the heap grew enough, and long enough ago was the last trim, to trim now. */
export function trimDue(
  last: TrimMark,
  heapTotal: number,
  now: number,
  policy: TrimPolicy = TRIM_POLICY,
): boolean {
  const growth = heapTotal - last.heapTotal;
  return now - last.at >= policy.minIntervalMs &&
    growth >= policy.minGrowthBytes &&
    growth >= last.heapTotal * policy.minGrowthRatio;
}

/** What a trim did, for the log. */
export interface TrimReport {
  readonly beforeBytes: number;
  readonly afterBytes: number;
  readonly ms: number;
}

/**
 * A function to call when the server has gone quiet: it trims the heap when `trimDue`, and
 * does nothing when the runtime has no gc extension (started without `--expose-gc`).
 */
export function createHeapTrim(
  onTrim?: (report: TrimReport) => void,
  policy: TrimPolicy = TRIM_POLICY,
): () => void {
  const gc = (globalThis as { gc?: GcCall }).gc;
  if (typeof gc !== "function") return () => {};
  // The first burst counts from the heap the server started with, not from zero.
  let last: TrimMark = { heapTotal: Deno.memoryUsage().heapTotal, at: -Infinity };
  return () => {
    const before = Deno.memoryUsage().heapTotal;
    const start = performance.now();
    if (!trimDue(last, before, start, policy)) return;
    gc({ type: "major", execution: "sync", flavor: "last-resort" });
    const end = performance.now();
    const after = Deno.memoryUsage().heapTotal;
    last = { heapTotal: after, at: end };
    onTrim?.({ beforeBytes: before, afterBytes: after, ms: end - start });
  };
}
