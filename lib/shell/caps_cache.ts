/**
 * The process-wide cache of entity capabilities (XEP-0115): `ver` -> disco features, filled
 * only with answers whose hash checks out, so one client cannot make another seem to want what
 * it did not ask for. Only answers to the server's own questions reach it (lib/reducers/
 * client_caps.ts). Bounded ("Nothing grows without a bound"): an answer larger than
 * `caps_entry_bytes` is not kept, and past `caps_cache_items` entries or `caps_cache_bytes`
 * the least recently used go first.
 * @module
 */
import { capsInputOf, verificationString } from "../modules/caps.ts";
import { DEFAULT_LIMITS, type Limits, utf8Bytes } from "../limits.ts";
import { type Element, serialize } from "../xml/element.ts";

/** The bounds the cache keeps to. */
export type CapsCacheLimits = Pick<Limits, "capsCacheItems" | "capsCacheBytes" | "capsEntryBytes">;

/** How much the cache holds. */
export interface CapsCacheSize {
  readonly items: number;
  /** What the entries cost: each `ver` and its features, in UTF-8 bytes. */
  readonly bytes: number;
}

/** The cache's operations. */
export interface CapsCache {
  /** The features behind `ver`; a hit makes the entry the most recently used. */
  get(ver: string): readonly string[] | undefined;
  /**
   * Keeps the features of `query` under `ver` when `ver` is their SHA-1 verification string
   * and the answer is within `capsEntryBytes`; false when it is not kept.
   */
  learn(ver: string, query: Element): boolean;
  /** What the cache holds now (for tests and monitoring). */
  size(): CapsCacheSize;
}

interface Entry {
  readonly features: readonly string[];
  readonly bytes: number;
}

function entryBytes(ver: string, features: readonly string[]): number {
  let n = utf8Bytes(ver);
  for (const f of features) n += utf8Bytes(f);
  return n;
}

/** An empty cache within `limits` (the `[limits]` defaults when omitted). */
export function createCapsCache(limits: CapsCacheLimits = DEFAULT_LIMITS): CapsCache {
  // A Map iterates in insertion order: re-inserting on use keeps the least recently used first.
  const entries = new Map<string, Entry>();
  let bytes = 0;
  const drop = (ver: string) => {
    const e = entries.get(ver);
    if (e === undefined) return;
    entries.delete(ver);
    bytes -= e.bytes;
  };
  return {
    get(ver) {
      const e = entries.get(ver);
      if (e === undefined) return undefined;
      entries.delete(ver);
      entries.set(ver, e);
      return e.features;
    },
    learn(ver, query) {
      // Measured before hashing: an oversized answer costs no more than reading it.
      if (utf8Bytes(serialize(query)) > limits.capsEntryBytes) return false;
      const input = capsInputOf(query);
      // XEP-0115 §5.4: only a verified ver may stand for everyone who sends it.
      if (verificationString(input) !== ver) return false;
      const entry = { features: input.features, bytes: entryBytes(ver, input.features) };
      drop(ver);
      if (limits.capsCacheItems === 0 || entry.bytes > limits.capsCacheBytes) return false;
      while (
        entries.size >= limits.capsCacheItems || bytes + entry.bytes > limits.capsCacheBytes
      ) {
        drop(entries.keys().next().value!);
      }
      entries.set(ver, entry);
      bytes += entry.bytes;
      return true;
    },
    size: () => ({ items: entries.size, bytes }),
  };
}
