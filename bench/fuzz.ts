/**
 * The parser and reducer fuzz target, run for as long as asked (tests/xml/_fuzz.ts says what it
 * checks). Prints how many inputs ran, the stanzas parsed, the stream errors by condition, how
 * sessions ended, and every failure with the seed that reproduces it.
 *
 *   deno run -A bench/fuzz.ts --seconds 60          random mutations, random first seed
 *   deno run -A bench/fuzz.ts --seconds 60 --start 7  seeds 7, 8, 9...
 *   deno run -A bench/fuzz.ts --seed 123456           replays one input and shows it
 *
 * Exits 1 when something failed.
 * @module
 */
import {
  checkSplitInvariance,
  describe,
  FuzzFailure,
  makeInput,
  runInput,
} from "../tests/xml/_fuzz.ts";

/** `--name value` or `--name=value` pairs. */
function parseArgs(argv: readonly string[]): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (m === null) throw new Error(`unexpected argument ${argv[i]}`);
    out[m[1]] = m[2] ?? argv[++i];
  }
  return out;
}

const args = parseArgs(Deno.args);

function report(seed: number, e: unknown, what: string): string {
  const stage = e instanceof FuzzFailure ? e.stage : "harness";
  const message = e instanceof Error ? e.message : String(e);
  return `FAILED (${stage}) ${what} seed ${seed}: ${message}`;
}

if (args.seed !== undefined) {
  const seed = Number(args.seed);
  const input = makeInput(seed);
  console.log(describe(input));
  let failed = false;
  try {
    const outcome = runInput(input);
    console.log(
      `ok: ${outcome.stanzas} stanzas, ended ${outcome.end}, stream errors ` +
        JSON.stringify(Object.fromEntries(outcome.streamErrors)),
    );
  } catch (e) {
    console.log(report(seed, e, "session"));
    failed = true;
  }
  for (const mutate of [false, true]) {
    try {
      checkSplitInvariance(seed, mutate);
    } catch (e) {
      console.log(report(seed, e, mutate ? "split (mutated)" : "split"));
      failed = true;
    }
  }
  Deno.exit(failed ? 1 : 0);
}

const seconds = Number(args.seconds ?? 10);
const maxFailures = Number(args["max-failures"] ?? 20);
let seed = args.start !== undefined
  ? Number(args.start)
  : crypto.getRandomValues(new Uint32Array(1))[0];
const first = seed;
const deadline = performance.now() + seconds * 1000;
let inputs = 0;
let stanzas = 0;
let splits = 0;
const errors = new Map<string, number>();
const ends = new Map<string, number>();
const failures: string[] = [];

while (performance.now() < deadline && failures.length < maxFailures) {
  // Eight mutated sessions for each split check, as the session run costs more.
  for (let k = 0; k < 8; k++, seed = (seed + 1) >>> 0) {
    inputs++;
    try {
      const outcome = runInput(makeInput(seed));
      stanzas += outcome.stanzas;
      ends.set(outcome.end, (ends.get(outcome.end) ?? 0) + 1);
      for (const [c, n] of outcome.streamErrors) errors.set(c, (errors.get(c) ?? 0) + n);
    } catch (e) {
      failures.push(report(seed, e, "session"));
      console.log(failures[failures.length - 1]);
    }
  }
  for (const mutate of [false, true]) {
    splits++;
    try {
      checkSplitInvariance(seed, mutate);
    } catch (e) {
      failures.push(report(seed, e, mutate ? "split (mutated)" : "split"));
      console.log(failures[failures.length - 1]);
    }
  }
  seed = (seed + 1) >>> 0;
}

const sorted = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
console.log(`seeds ${first}..${seed - 1}: ${inputs} inputs, ${splits} split checks`);
console.log(`stanzas parsed: ${stanzas}`);
console.log("sessions ended:");
for (const [k, n] of sorted(ends)) console.log(`  ${k.padEnd(26)} ${n}`);
console.log("stream errors by condition:");
for (const [k, n] of sorted(errors)) console.log(`  ${k.padEnd(26)} ${n}`);
console.log(`failures: ${failures.length}`);
for (const f of failures) console.log(`  ${f.split("\n")[0]}`);
Deno.exit(failures.length > 0 ? 1 : 0);
