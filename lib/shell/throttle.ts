/**
 * Failed-login throttling. Failures are counted within a sliding window (`windowMs`) three ways:
 *
 * - per (address, account) pair: past `maxFailures`, that address may not try that account;
 * - per address (any account): past `maxFailuresPerAddress`, that address may not log in
 *   (an IPv6 address counts with its whole /64, see {@link addressKey});
 * - per account (any address): never refused, since then anyone could lock any user out by
 *   failing from a few addresses; past `slowDownAfter` the answers are delayed instead
 *   ({@link AuthThrottle.delayMs}), 250 ms doubling with each further failure, at most 4 s.
 *
 * A success clears its pair only: clearing the address would let someone with one account
 * reset their address's count between guesses at others, and clearing the account would hand
 * a distributed guesser a fresh budget each time the real user logs in.
 *
 * Memory is bounded: each table keeps at most `maxKeys` keys, evicting the least recently
 * failed first (a Map iterates in insertion order, and a key is re-inserted on each failure),
 * each key keeps at most as many timestamps as its threshold needs, and long account names
 * are kept as a digest.
 * @module
 */
import { createHash } from "node:crypto";

/** The throttle's operations. `now` is in milliseconds. */
export interface AuthThrottle {
  /** True when the address, or the (address, account) pair, is past its threshold. */
  isThrottled(ip: string, username: string | undefined, now: number): boolean;
  /** Milliseconds to hold back the answer to a login for `username` (0: none). */
  delayMs(username: string, now: number): number;
  /**
   * A password check failed (`ok` false) or a login succeeded. Without `username` only the
   * address counts (callers that throttle something other than logins, e.g. registrations).
   */
  record(ip: string, username: string | undefined, ok: boolean, now: number): void;
  /** Keys held in each table, for tests of the bound. */
  sizes(): { readonly pairs: number; readonly addresses: number; readonly accounts: number };
}

/** Thresholds; see the module documentation. */
export interface AuthThrottleOptions {
  /** Failures per (address, account) pair before that pair is refused. */
  readonly maxFailures: number;
  /** Failures per address before the address is refused (default `maxFailures`). */
  readonly maxFailuresPerAddress?: number;
  /** Failures per account after which answers are delayed (default: never delayed). */
  readonly slowDownAfter?: number;
  readonly windowMs: number;
  /** Keys kept per table (default 100,000). */
  readonly maxKeys?: number;
}

/** The first delay, doubled with each failure past `slowDownAfter`. */
const BASE_DELAY_MS = 250;
/** The longest delay: long enough to slow a guesser down, short enough for a real user. */
export const MAX_DELAY_MS = 4000;
// Doublings until MAX_DELAY_MS: failures beyond that need not be remembered.
const DOUBLINGS = Math.ceil(Math.log2(MAX_DELAY_MS / BASE_DELAY_MS));
// Account names longer than this are keyed by a digest (a localpart may have 1023 bytes).
const LONG_NAME = 64;

/** A table of recent failure times per key, bounded in keys and in times per key. */
class FailureTable {
  readonly #times = new Map<string, number[]>();
  constructor(
    private readonly keep: number,
    private readonly windowMs: number,
    private readonly maxKeys: number,
  ) {}

  /** Failures of `key` still within the window. */
  count(key: string, now: number): number {
    const list = this.#times.get(key);
    if (list === undefined) return 0;
    let n = 0;
    for (const t of list) if (now - t < this.windowMs) n++;
    return n;
  }

  add(key: string, now: number): void {
    const list = (this.#times.get(key) ?? []).filter((t) => now - t < this.windowMs);
    list.push(now);
    // Re-insert at the back: the front of the map is then always the least recently failed.
    this.#times.delete(key);
    this.#times.set(key, list.length > this.keep ? list.slice(-this.keep) : list);
    this.#prune(now);
  }

  delete(key: string): void {
    this.#times.delete(key);
  }

  get size(): number {
    return this.#times.size;
  }

  #prune(now: number): void {
    for (const [key, list] of this.#times) {
      // Entries at the front whose last failure left the window are expired: drop them.
      // Past the cap, the oldest go even if still in the window.
      const expired = now - list[list.length - 1] >= this.windowMs;
      if (!expired && this.#times.size <= this.maxKeys) return;
      this.#times.delete(key);
    }
  }
}

/**
 * The key an address is counted under: IPv4 as is (an IPv4-mapped IPv6 address as its IPv4
 * form), IPv6 by its /64 prefix, since one host usually holds a whole /64 and could otherwise
 * take a fresh address for each guess.
 */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(ip);
  if (mapped !== null) return mapped[1];
  if (!ip.includes(":")) return ip;
  const bare = ip.split("%")[0];
  const halves = bare.split("::");
  if (halves.length > 2) return bare;
  const groups = (
    part: string | undefined,
  ) => (part === undefined || part === "" ? [] : part.split(":"));
  const head = groups(halves[0]);
  const tail = groups(halves[1]);
  // A dotted IPv4 tail stands for two groups.
  const tailWidth = tail.length + (tail.at(-1)?.includes(".") ? 1 : 0);
  const all = halves.length === 1
    ? head
    : [...head, ...Array(Math.max(0, 8 - head.length - tailWidth)).fill("0"), ...tail];
  const prefix = all.slice(0, 4).map((g) => (parseInt(g, 16) || 0).toString(16));
  return `${prefix.join(":")}::/64`;
}

function accountKey(username: string): string {
  if (username.length <= LONG_NAME) return username;
  // "@" cannot occur in a localpart (RFC 7622 §3.3.1), so a digest key never names an account.
  return `@${createHash("sha256").update(username).digest("base64")}`;
}

/** A throttle with its own bounded memory. */
export function createAuthThrottle(opts: AuthThrottleOptions): AuthThrottle {
  const perAddress = opts.maxFailuresPerAddress ?? opts.maxFailures;
  const slowDownAfter = opts.slowDownAfter ?? Infinity;
  const maxKeys = opts.maxKeys ?? 100_000;
  const pairs = new FailureTable(opts.maxFailures, opts.windowMs, maxKeys);
  const addresses = new FailureTable(perAddress, opts.windowMs, maxKeys);
  const accounts = new FailureTable(
    Number.isFinite(slowDownAfter) ? slowDownAfter + DOUBLINGS + 1 : 0,
    opts.windowMs,
    maxKeys,
  );
  // The NUL cannot occur in an address or a localpart: the pair key is unambiguous.
  const pairKey = (ip: string, username: string) => `${addressKey(ip)}\0${accountKey(username)}`;
  return {
    isThrottled(ip, username, now) {
      if (addresses.count(addressKey(ip), now) >= perAddress) return true;
      return username !== undefined && pairs.count(pairKey(ip, username), now) >= opts.maxFailures;
    },
    delayMs(username, now) {
      const past = accounts.count(accountKey(username), now) - slowDownAfter;
      if (!(past >= 0)) return 0;
      return Math.min(BASE_DELAY_MS * 2 ** past, MAX_DELAY_MS);
    },
    record(ip, username, ok, now) {
      if (ok) {
        if (username !== undefined) pairs.delete(pairKey(ip, username));
        return;
      }
      addresses.add(addressKey(ip), now);
      if (username === undefined) return;
      pairs.add(pairKey(ip, username), now);
      if (Number.isFinite(slowDownAfter)) accounts.add(accountKey(username), now);
    },
    sizes() {
      return { pairs: pairs.size, addresses: addresses.size, accounts: accounts.size };
    },
  };
}
