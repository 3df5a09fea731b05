import assert from "node:assert/strict";
import {
  createHeapTrim,
  TRIM_POLICY,
  trimDue,
  type TrimMark,
  type TrimReport,
  trimWait,
} from "../../lib/shell/heap_trim.ts";

const MB = 1024 * 1024;

Deno.test("heap trim: due only after a burst's growth and a long enough interval", () => {
  const start: TrimMark = { heapTotal: 10 * MB, rss: 1000 * MB, at: -Infinity, ms: 0 };
  const big: TrimMark = { heapTotal: 100 * MB, rss: 1000 * MB, at: -Infinity, ms: 0 };
  const at1000: TrimMark = { heapTotal: 10 * MB, rss: 1000 * MB, at: 1000, ms: 0 };
  const cases: readonly [string, TrimMark, number, number, boolean][] = [
    ["burst after start", start, 30 * MB, 0, true],
    ["small growth", start, 10 * MB + TRIM_POLICY.minGrowthBytes - 1, 0, false],
    ["growth small against a large heap", big, 120 * MB, 0, false],
    ["growth large against a large heap", big, 125 * MB, 0, true],
    ["too soon after the last", at1000, 40 * MB, 1000 + TRIM_POLICY.minIntervalMs - 1, false],
    ["interval passed", at1000, 40 * MB, 1000 + TRIM_POLICY.minIntervalMs, true],
    ["heap shrank", start, 5 * MB, 0, false],
  ];
  for (const [name, last, heapTotal, now, want] of cases) {
    assert.equal(trimDue(last, { heapTotal, rss: last.rss }, now), want, name);
  }
});

Deno.test("heap trim: RSS growth alone is a burst too (native memory)", () => {
  const last: TrimMark = { heapTotal: 20 * MB, rss: 80 * MB, at: -Infinity, ms: 0 };
  assert.equal(trimDue(last, { heapTotal: 20 * MB, rss: 100 * MB }, 0), true);
  assert.equal(trimDue(last, { heapTotal: 20 * MB, rss: 90 * MB }, 0), false, "under 25 %");
  assert.equal(trimDue(last, { heapTotal: 20 * MB, rss: 70 * MB }, 0), false, "shrank");
});

Deno.test("heap trim: a slow trim waits longer before the next", () => {
  // 300 ms last time: the next one no sooner than costFactor times that.
  const last: TrimMark = { heapTotal: 10 * MB, rss: 80 * MB, at: 0, ms: 300 };
  const wait = 300 * TRIM_POLICY.costFactor;
  assert.ok(wait > TRIM_POLICY.minIntervalMs);
  const grown = { heapTotal: 40 * MB, rss: 80 * MB };
  assert.equal(trimDue(last, grown, wait - 1), false);
  assert.equal(trimWait(last, grown, wait - 1000), 1000, "what is left of the interval");
  assert.equal(trimDue(last, grown, wait), true);
  assert.equal(trimWait(last, { heapTotal: 10 * MB, rss: 80 * MB }, 0), undefined, "no growth");
});

Deno.test("heap trim: runs both trimmers when due, then not again within the interval", () => {
  const calls: string[] = [];
  const reports: TrimReport[] = [];
  const trim = createHeapTrim(
    (r) => reports.push(r),
    // Any growth (none at all included) is a burst here; only the interval holds it back.
    { minGrowthBytes: 0, minGrowthRatio: 0, minIntervalMs: 60_000, costFactor: 1 },
    {
      gc: (o) => calls.push(`gc ${o.type} ${o.execution} ${o.flavor}`),
      mallocTrim: () => calls.push("malloc_trim"),
    },
  );
  const waits: number[] = [];
  trim((ms) => waits.push(ms));
  assert.deepEqual(calls, ["gc major sync last-resort", "malloc_trim"]);
  assert.equal(waits.length, 0, "done, nothing to come back for");
  assert.equal(reports.length, 1);
  assert.ok(reports[0].rssAfterBytes > 0 && reports[0].afterBytes > 0);
  trim((ms) => waits.push(ms));
  assert.equal(calls.length, 2, "within the interval");
  assert.equal(waits.length, 1);
  assert.ok(waits[0] > 59_000 && waits[0] <= 60_000, `come back in ${waits[0]} ms`);
});

Deno.test("heap trim: with only malloc_trim (no --expose-gc) it still trims", () => {
  let trims = 0;
  const trim = createHeapTrim(
    undefined,
    { minGrowthBytes: 0, minGrowthRatio: 0, minIntervalMs: 60_000, costFactor: 1 },
    { mallocTrim: () => trims++ },
  );
  trim();
  assert.equal(trims, 1);
});
