/**
 * A long crash run (issue 10): the server killed with SIGKILL `--cycles` times under load
 * (default 1000), then every archive checked. Prints the counts for the README.
 *
 * `deno run -A bench/crash.ts [--cycles N] [--seed S]`
 * @module
 */
import { parseArgs } from "node:util";
import { crashRun } from "../tests/integration/crash_test.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: { cycles: { type: "string" }, seed: { type: "string" } },
});
const cycles = Number(values.cycles ?? "1000");
const seed = Number(values.seed ?? String(Date.now() % 100000));
const started = performance.now();
const report = await crashRun({
  cycles,
  seed,
  onCycle: (i) => {
    if ((i + 1) % 50 === 0) console.error(`${i + 1}/${cycles} kills`);
  },
});
console.log(
  JSON.stringify({ seed, seconds: Math.round((performance.now() - started) / 1000), ...report }),
);
const lost = report.missingSender + report.missingRecipient + report.duplicates +
  report.outOfOrder + report.misplaced;
Deno.exit(lost === 0 ? 0 : 1);
