/**
 * Archive expiry: drops messages older than `archive_expires_after` and beyond
 * `archive_max_items` from every user's archive, through the list store's shift (whole blocks
 * cut from the head of the file where the filesystem allows).
 * @module
 */
import type { ArchivedMessage } from "../mam.ts";
import type { ListStore } from "../storage/mod.ts";

/** What one pass removed. */
export interface ExpiryResult {
  readonly users: number;
  readonly removed: number;
}

/** How many of the oldest items to drop, by age and by count. */
export async function itemsToDrop(
  store: ListStore<ArchivedMessage>,
  host: string,
  user: string,
  opts: { readonly now: number; readonly expiresAfter: number; readonly maxItems: number },
): Promise<number> {
  const count = await store.count(host, user);
  const byCount = Math.max(0, count - opts.maxItems);
  if (!Number.isFinite(opts.expiresAfter)) return byCount;
  const cutoff = opts.now - opts.expiresAfter * 1000;
  const byAge = await store.lowerBound(host, user, cutoff, (m) => m.ts);
  return Math.max(byCount, byAge);
}

/** One pass over every archive of the given hosts. */
export async function expireArchives(
  store: ListStore<ArchivedMessage>,
  hosts: readonly string[],
  opts: { readonly now: number; readonly expiresAfter: number; readonly maxItems: number },
): Promise<ExpiryResult> {
  let users = 0;
  let removed = 0;
  for (const host of hosts) {
    for (const user of await store.users(host)) {
      const n = await itemsToDrop(store, host, user, opts);
      if (n === 0) continue;
      await store.shift(host, user, n);
      users++;
      removed += n;
    }
  }
  return { users, removed };
}
