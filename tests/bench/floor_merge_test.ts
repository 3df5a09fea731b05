/**
 * bench/floor.ts's `mergeReports`: a run of some floors (`--only`) replaces their sections of the
 * saved report, keeps the others, and says which facts hold for the sections it re-ran.
 * @module
 */
import assert from "node:assert/strict";
import { mergeReports } from "../../bench/floor.ts";

const head = (date: string) =>
  ["## bench:floor", "", `- date: ${date}`, "- nproc: 2", ""].join("\n");

const report = (date: string, sections: Record<number, string>) =>
  head(date) +
  Object.entries(sections).map(([n, body]) => `### ${n}. Floor ${n}: x\n\n${body}\n\n`).join("");

Deno.test("floor merge: re-run sections replace theirs, the rest stays, the facts are added", () => {
  const old = report("day 1", { 1: "relay old", 2: "login old", 3: "memory old" });
  const merged = mergeReports(old, report("day 2", { 2: "login new" }));
  assert.match(merged, /relay old/);
  assert.match(merged, /login new/);
  assert.doesNotMatch(merged, /login old/);
  assert.match(merged, /memory old/);
  assert.match(merged, /- date: day 1\n/);
  assert.match(
    merged,
    /- re-run alone later \(2\. Floor 2\), with these facts:\n {2}- date: day 2\n/,
  );
  // The sections keep their order.
  assert.ok(merged.indexOf("relay old") < merged.indexOf("login new"));
  assert.ok(merged.indexOf("login new") < merged.indexOf("memory old"));
});

Deno.test("floor merge: a second re-run of the same sections drops the first one's facts", () => {
  const old = report("day 1", { 1: "relay old", 2: "login old" });
  const once = mergeReports(old, report("day 2", { 2: "login newer" }));
  const twice = mergeReports(once, report("day 3", { 2: "login newest" }));
  assert.doesNotMatch(twice, /day 2/);
  assert.match(
    twice,
    /- re-run alone later \(2\. Floor 2\), with these facts:\n {2}- date: day 3\n/,
  );
  assert.equal(twice.match(/re-run alone later/g)?.length, 1);
  assert.match(twice, /login newest/);
  // Another set of sections keeps its own facts.
  const other = mergeReports(twice, report("day 4", { 1: "relay new" }));
  assert.match(other, /day 3/);
  assert.match(other, /day 4/);
});
