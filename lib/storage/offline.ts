/**
 * Offline messages (XEP-0160) of each user: an append-only list (`DATA/<host>/offline/<user>.list`,
 * the list store), so that storing one message is one append and one `fdatasync`, however many
 * are waiting; delivered, the list is deleted as a whole.
 *
 * Before this store, offline messages were one JSON array per user in the keyval store
 * `offline` (`<user>.json`, in the same directory). Such an array is moved into the list the
 * first time the user's messages are counted (appended, then the JSON file removed), so that an
 * upgrade loses nothing. A crash between the two steps delivers those messages twice, never
 * not at all.
 * @module
 */
import { getLogger } from "../log.ts";
import type { Element } from "../xml/element.ts";
import { openKeyvalStore } from "./file/datamanager.ts";
import { type FileListStore, openListStore } from "./file/list_store.ts";
import type { KeyvalStore, OfflineStats, OfflineStore } from "./mod.ts";

/** The store's name (the directory under each host). */
export const OFFLINE_STORE = "offline";

/** Options of {@link openOfflineStore}. */
export interface OfflineStoreOptions {
  /**
   * As for the keyval store: only this instance writes the legacy store and the lists while it
   * is open (other processes only delete), so it may keep listings of both.
   */
  readonly soleWriter?: boolean;
  /** As for the list store. */
  readonly ffi?: "auto" | "off";
}

const log = getLogger("storage", "offline");

const NONE: OfflineStats = { count: 0, bytes: 0 };

/**
 * An offline store over a file list store (whose file sizes are the byte counts) and, when
 * given, the legacy keyval store whose arrays are moved into the list on first sight.
 *
 * `soleWriter`: only this instance appends to the lists while it is open (other processes may
 * only delete them, as the CLI's `deluser` does). It then lists a host's lists once and keeps
 * that listing up to date on `append` and `delete`, so that counting the messages of a user who
 * has none (every login does it) costs no file operation. The listing holds the names of users
 * with a list on disk, no more than the directory does.
 */
export function offlineStore(
  list: FileListStore<Element>,
  legacy?: KeyvalStore<readonly Element[]>,
  opts: { readonly soleWriter?: boolean } = {},
): OfflineStore {
  // Per host, the users that have a list (see soleWriter above).
  const listings = new Map<string, Promise<Set<string>>>();
  // Set by `close`. The list refuses every call after it; `stat` alone could answer without
  // it (from a listing) or write without it (the legacy store), so it checks this first.
  let closed = false;
  function listing(host: string): Promise<Set<string>> | undefined {
    if (opts.soleWriter !== true) return undefined;
    let names = listings.get(host);
    if (names === undefined) {
      names = list.users(host).then((users) => new Set(users));
      listings.set(host, names);
      // A failed listing (permissions ...) is tried again on the next call.
      names.catch(() => listings.get(host) === names && listings.delete(host));
    }
    return names;
  }

  async function migrate(host: string, user: string): Promise<void> {
    if (legacy === undefined) return;
    const old = await legacy.get(host, user);
    if (old === undefined) return;
    // Durable in the list before the array goes: a crash in between repeats, never loses.
    if (Array.isArray(old) && old.length > 0) await list.append(host, user, old);
    await legacy.delete(host, user);
    log.info("Moved {count} offline messages of {user}@{host} to the list store", {
      count: Array.isArray(old) ? old.length : 0,
      user,
      host,
    });
  }

  return {
    async stat(host, user) {
      if (closed) throw new Error("Offline store is closed");
      try {
        await migrate(host, user);
        const names = await listing(host);
        if (names !== undefined && !names.has(user)) return NONE;
        const st = await list.stat(host, user);
        return { count: st.count, bytes: st.bytes };
      } catch (err) {
        // A name no file can have (too long once encoded) has no account and nothing stored:
        // the message to it bounces instead of failing its queue.
        if (err instanceof RangeError) return NONE;
        throw err;
      }
    },
    async append(host, user, message) {
      // Listed before the append, so that the listing cannot miss the list it creates; a name
      // without a list only costs a read.
      (await listing(host))?.add(user);
      await list.append(host, user, [message]);
    },
    async all(host, user) {
      const n = await list.count(host, user);
      return n === 0 ? [] : await list.range(host, user, 0, n);
    },
    async delete(host, user) {
      await list.delete(host, user);
      (await listing(host))?.delete(user);
    },
    close() {
      closed = true;
      return list.close();
    },
  };
}

/** The offline store under `dataDir` (list store `offline`, legacy keyval store `offline`). */
export function openOfflineStore(dataDir: string, opts: OfflineStoreOptions = {}): OfflineStore {
  return offlineStore(
    openListStore<Element>(dataDir, OFFLINE_STORE, { ffi: opts.ffi }),
    openKeyvalStore<readonly Element[]>(dataDir, OFFLINE_STORE, { soleWriter: opts.soleWriter }),
    { soleWriter: opts.soleWriter },
  );
}
