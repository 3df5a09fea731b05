/**
 * Failed-login throttling per address and per account: after `maxFailures` failures within
 * `windowMs`, further attempts are held back until the oldest failure leaves the window.
 * @module
 */

/** The throttle's operations. */
export interface AuthThrottle {
  isThrottled(ip: string, username: string | undefined, now: number): boolean;
  record(ip: string, username: string | undefined, ok: boolean, now: number): void;
}

/** A throttle with its own bounded memory. */
export function createAuthThrottle(opts: {
  readonly maxFailures: number;
  readonly windowMs: number;
}): AuthThrottle {
  const failures = new Map<string, number[]>();
  const recent = (key: string, now: number): number[] => {
    const list = failures.get(key);
    if (list === undefined) return [];
    const kept = list.filter((t) => now - t < opts.windowMs);
    if (kept.length === 0) failures.delete(key);
    else failures.set(key, kept);
    return kept;
  };
  const keys = (ip: string, username: string | undefined): string[] =>
    username === undefined ? [`ip:${ip}`] : [`ip:${ip}`, `user:${username}`];
  return {
    isThrottled(ip, username, now) {
      return keys(ip, username).some((k) => recent(k, now).length >= opts.maxFailures);
    },
    record(ip, username, ok, now) {
      if (ok) {
        if (username !== undefined) failures.delete(`user:${username}`);
        return;
      }
      // Bound the memory an attacker can make us hold.
      if (failures.size > 100_000) failures.clear();
      for (const k of keys(ip, username)) {
        const list = recent(k, now);
        list.push(now);
        failures.set(k, list.slice(-opts.maxFailures));
      }
    },
  };
}
