/**
 * Archive expiry: drops messages older than `archive_expires_after` and beyond
 * `archive_max_items` from every user's archive, through the archive store's `expire` (in the
 * file store, whole blocks cut from the head of the file where the filesystem allows).
 * @module
 */
import type { ArchiveStore } from "../storage/mod.ts";

/** What one pass removed. */
export interface ExpiryResult {
  readonly users: number;
  readonly removed: number;
}

/** One pass over every archive of the given hosts. */
export async function expireArchives(
  store: ArchiveStore,
  hosts: readonly string[],
  opts: { readonly now: number; readonly expiresAfter: number; readonly maxItems: number },
): Promise<ExpiryResult> {
  // `expiresAfter` is in seconds; never (Infinity): by count only.
  const before = Number.isFinite(opts.expiresAfter)
    ? opts.now - opts.expiresAfter * 1000
    : undefined;
  let users = 0;
  let removed = 0;
  for (const host of hosts) {
    for (const user of await store.users(host)) {
      const n = await store.expire(host, user, { before, maxItems: opts.maxItems });
      if (n === 0) continue;
      users++;
      removed += n;
    }
  }
  return { users, removed };
}
