/**
 * Gives the memory of a burst back to the system once the server is idle again.
 *
 * A burst of logins leaves the V8 heap several times larger than what stays live (about 19 KB
 * of heap per idle connection after 1000 logins, 10 KB of it live), and that memory stays
 * resident: an ordinary full collection frees the objects but keeps the pages, and V8's own
 * memory reducer does not act for many seconds, if at all. A "last resort" collection
 * (`gc({ flavor: "last-resort" })`, which needs `--expose-gc`) compacts the heap and releases
 * the pages: RSS per idle connection fell from ~32 to ~10 KB, and after 20 s of logins and
 * logouts RSS fell by 40 MB (heapTotal by 39). What the native side freed stays in glibc's
 * arenas until `malloc_trim` (./malloc_trim.ts), another 8 MB there.
 *
 * A trim stops the process for 50-300 ms per thousand connections (several full collections),
 * so it runs only when the server has just gone idle (every connection quiet, or gone), only
 * when the heap or RSS grew by a burst's worth since the last time, and never more than 5 % of
 * the time: the least interval between two trims is twenty times what the last one took (a
 * thousand connections closing a few seconds after the trim that followed their logins are
 * then given back too, rather than 30 s later or never).
 * @module
 */

import { openMallocTrim } from "./malloc_trim.ts";

/** The gc extension's call with options (V8 `--expose-gc`). */
export type GcCall = (options: {
  readonly type: "major";
  readonly execution: "sync";
  readonly flavor: "last-resort";
}) => void;

/** When a trim is worth its pause. */
export interface TrimPolicy {
  /** Growth of the heap (or of RSS) since the last trim below which memory is left alone. */
  readonly minGrowthBytes: number;
  /** Also required: growth by this fraction of the heap (or RSS) after the last trim. */
  readonly minGrowthRatio: number;
  /** Least time between two trims, in milliseconds. */
  readonly minIntervalMs: number;
  /** Least time between two trims as a multiple of what the last one took. */
  readonly costFactor: number;
}

/** The default policy: a burst of a few hundred logins, and trims at most 5 % of the time. */
export const TRIM_POLICY: TrimPolicy = {
  minGrowthBytes: 8 * 1024 * 1024,
  minGrowthRatio: 0.25,
  minIntervalMs: 2_000,
  costFactor: 20,
};

/** The sizes after the last trim (or at the start), when it ended and how long it took. */
export interface TrimMark {
  readonly heapTotal: number;
  readonly rss: number;
  readonly at: number;
  readonly ms: number;
}

/** The memory figures a trim is decided on (`Deno.memoryUsage()` has them). */
export interface MemoryNow {
  readonly heapTotal: number;
  readonly rss: number;
}

function grew(before: number, now: number, policy: TrimPolicy): boolean {
  const growth = now - before;
  return growth >= policy.minGrowthBytes && growth >= before * policy.minGrowthRatio;
}

/**
 * How long until a trim is due: undefined when memory did not grow enough since the last one,
 * else what remains of the interval since it (0: due now).
 */
export function trimWait(
  last: TrimMark,
  mem: MemoryNow,
  now: number,
  policy: TrimPolicy = TRIM_POLICY,
): number | undefined {
  if (!grew(last.heapTotal, mem.heapTotal, policy) && !grew(last.rss, mem.rss, policy)) {
    return undefined;
  }
  const interval = Math.max(policy.minIntervalMs, last.ms * policy.costFactor);
  return Math.max(0, last.at + interval - now);
}

/** Whether memory grew enough, and long enough ago was the last trim, to trim now. */
export function trimDue(
  last: TrimMark,
  mem: MemoryNow,
  now: number,
  policy: TrimPolicy = TRIM_POLICY,
): boolean {
  return trimWait(last, mem, now, policy) === 0;
}

/** What a trim did, for the log. */
export interface TrimReport {
  readonly beforeBytes: number;
  readonly afterBytes: number;
  readonly rssBeforeBytes: number;
  readonly rssAfterBytes: number;
  readonly ms: number;
}

/** What a trim calls: V8's last-resort collection and glibc's `malloc_trim`, where present. */
export interface Trimmers {
  readonly gc?: GcCall;
  readonly mallocTrim?: () => void;
}

function defaultTrimmers(): Trimmers {
  const gc = (globalThis as { gc?: GcCall }).gc;
  return { gc: typeof gc === "function" ? gc : undefined, mallocTrim: openMallocTrim() };
}

/**
 * A function to call when the server has gone idle: it trims when `trimDue`, and does nothing
 * when neither trimmer is there (no `--expose-gc`, no glibc or FFI). When only the interval
 * holds it back it asks `again` for a call when it ends, if the server is still idle then
 * (`createQuietWatch` passes it): 1000 connections that close a few seconds after the trim
 * that followed their logins are given back too.
 */
export function createHeapTrim(
  onTrim?: (report: TrimReport) => void,
  policy: TrimPolicy = TRIM_POLICY,
  trimmers: Trimmers = defaultTrimmers(),
): (again?: (ms: number) => void) => void {
  const { gc, mallocTrim } = trimmers;
  if (gc === undefined && mallocTrim === undefined) return () => {};
  // The first burst counts from the memory the server started with, not from zero.
  const start = Deno.memoryUsage();
  let last: TrimMark = { heapTotal: start.heapTotal, rss: start.rss, at: -Infinity, ms: 0 };
  return (again) => {
    const before = Deno.memoryUsage();
    const t0 = performance.now();
    const wait = trimWait(last, before, t0, policy);
    if (wait !== undefined && wait > 0) again?.(wait);
    if (wait !== 0) return;
    gc?.({ type: "major", execution: "sync", flavor: "last-resort" });
    // After V8's trim: the collection's finalizers free native memory too.
    mallocTrim?.();
    const end = performance.now();
    const after = Deno.memoryUsage();
    last = { heapTotal: after.heapTotal, rss: after.rss, at: end, ms: end - t0 };
    onTrim?.({
      beforeBytes: before.heapTotal,
      afterBytes: after.heapTotal,
      rssBeforeBytes: before.rss,
      rssAfterBytes: after.rss,
      ms: end - t0,
    });
  };
}
