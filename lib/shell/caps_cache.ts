/**
 * The process-wide cache of entity capabilities (XEP-0115): `ver` -> disco features, filled
 * only with answers whose hash checks out, so one client cannot make another seem to want what
 * it did not ask for. Bounded: the oldest entries go first.
 * @module
 */
import { capsInputOf, verificationString } from "../reducers/caps.ts";
import type { Element } from "../xml/element.ts";

/** The cache's operations. */
export interface CapsCache {
  get(ver: string): readonly string[] | undefined;
  /** Keeps the features of `query` under `ver` when `ver` is their SHA-1 verification string. */
  learn(ver: string, query: Element): boolean;
}

/** An empty cache holding at most `limit` entries. */
export function createCapsCache(limit = 10_000): CapsCache {
  const entries = new Map<string, readonly string[]>();
  return {
    get: (ver) => entries.get(ver),
    learn(ver, query) {
      const input = capsInputOf(query);
      // XEP-0115 §5.4: only a verified ver may stand for everyone who sends it.
      if (verificationString(input) !== ver) return false;
      entries.delete(ver);
      entries.set(ver, input.features);
      if (entries.size > limit) entries.delete(entries.keys().next().value!);
      return true;
    },
  };
}
