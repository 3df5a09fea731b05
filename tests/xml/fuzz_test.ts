/**
 * A short slice of the parser and reducer fuzz target (tests/xml/_fuzz.ts; the long run is
 * `bench/fuzz.ts`). The seeds are fixed so that the suite is reproducible; FUZZ_SEED=N starts
 * them elsewhere. A failure names the seed that reproduces it: `deno run -A bench/fuzz.ts --seed N`.
 * @module
 */
import assert from "node:assert/strict";
import {
  checkSplitInvariance,
  describe,
  FuzzFailure,
  makeInput,
  runInput,
  SESSIONS,
} from "./_fuzz.ts";

const START = Number(Deno.env.get("FUZZ_SEED") ?? 1);
const INPUTS = 1000;
const SPLITS = 300;

function failure(seed: number, e: unknown, input?: string): Error {
  const stage = e instanceof FuzzFailure ? e.stage : "harness";
  const message = e instanceof Error ? e.message : String(e);
  return new Error(`fuzz seed ${seed} (${stage}): ${message}${input ? "\n" + input : ""}`);
}

Deno.test("fuzz: the recorded sessions log in, are served and close without a stream error", () => {
  // Otherwise the fuzzer would only ever reach the login.
  const seen = new Set<string>();
  for (let seed = 0; seen.size < SESSIONS.length; seed++) {
    const input = makeInput(seed, false);
    assert.deepEqual(input.mutations, []);
    const outcome = runInput(input);
    assert.deepEqual([...outcome.streamErrors], [], describe(input));
    assert.equal(outcome.end, "close", describe(input));
    assert.ok(outcome.stanzas >= 3, describe(input));
    seen.add(input.session);
  }
});

Deno.test("fuzz: mutated sessions end in stanzas and stream errors, never an exception", () => {
  let stanzas = 0;
  const conditions = new Map<string, number>();
  const ends = new Map<string, number>();
  for (let seed = START; seed < START + INPUTS; seed++) {
    const input = makeInput(seed);
    let outcome;
    try {
      outcome = runInput(input);
    } catch (e) {
      throw failure(seed, e, describe(input));
    }
    stanzas += outcome.stanzas;
    ends.set(outcome.end, (ends.get(outcome.end) ?? 0) + 1);
    for (const [c, n] of outcome.streamErrors) conditions.set(c, (conditions.get(c) ?? 0) + n);
  }
  // The mutations reach past the first stanza and into several kinds of refusal.
  assert.ok(stanzas > INPUTS, `${stanzas} stanzas`);
  assert.ok((ends.get("error") ?? 0) > INPUTS / 2, JSON.stringify([...ends]));
  assert.ok((ends.get("close") ?? 0) > 0, JSON.stringify([...ends]));
  for (const c of ["not-well-formed", "bad-format", "bad-namespace-prefix", "restricted-xml"]) {
    assert.ok(conditions.has(c), `no ${c} in ${JSON.stringify([...conditions])}`);
  }
});

Deno.test("fuzz: split invariance, as recorded and mutated", () => {
  let events = 0;
  for (let seed = START; seed < START + SPLITS; seed++) {
    for (const mutate of [false, true]) {
      try {
        events += checkSplitInvariance(seed, mutate);
      } catch (e) {
        throw failure(seed, e, mutate ? "(mutated)" : "(as recorded)");
      }
    }
  }
  assert.ok(events > SPLITS * 4, `${events} events`);
});
