import assert from "node:assert/strict";
import { TRIM_POLICY, trimDue } from "../../lib/shell/heap_trim.ts";

const MB = 1024 * 1024;

Deno.test("heap trim: due only after a burst's growth and a long enough interval", () => {
  const start = { heapTotal: 10 * MB, at: -Infinity };
  const cases: readonly [string, { heapTotal: number; at: number }, number, number, boolean][] = [
    ["burst after start", start, 30 * MB, 0, true],
    ["small growth", start, 10 * MB + TRIM_POLICY.minGrowthBytes - 1, 0, false],
    [
      "growth small against a large heap",
      { heapTotal: 100 * MB, at: -Infinity },
      120 * MB,
      0,
      false,
    ],
    [
      "growth large against a large heap",
      { heapTotal: 100 * MB, at: -Infinity },
      125 * MB,
      0,
      true,
    ],
    ["too soon after the last", { heapTotal: 10 * MB, at: 1000 }, 40 * MB, 1000 + 29_999, false],
    ["interval passed", { heapTotal: 10 * MB, at: 1000 }, 40 * MB, 1000 + 30_000, true],
    ["heap shrank", start, 5 * MB, 0, false],
  ];
  for (const [name, last, heapTotal, now, want] of cases) {
    assert.equal(trimDue(last, heapTotal, now), want, name);
  }
});
