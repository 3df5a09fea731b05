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
import { openKeyvalStore } from "./datamanager.ts";
import { openListStore } from "./list_store.ts";
import type { KeyvalStore, ListStore } from "./mod.ts";

/** The store's name (the directory under each host). */
export const OFFLINE_STORE = "offline";

/** How much is stored for a user, without reading the messages. */
export interface OfflineStats {
  /** Messages waiting. */
  readonly count: number;
  /**
   * Bytes they take in the store: at least the size of their JSON (the list's framing and
   * block padding included), so a byte cap checked against it errs towards refusing.
   */
  readonly bytes: number;
}

/** Offline messages per user of a host, oldest first. */
export interface OfflineStore {
  /** Count and size of the user's messages (moving a legacy keyval array into the list first). */
  stat(host: string, user: string): Promise<OfflineStats>;
  /** Appends one message; durable (fdatasync done) once the promise resolves. */
  append(host: string, user: string, message: Element): Promise<void>;
  /** Every stored message, oldest first. */
  all(host: string, user: string): Promise<Element[]>;
  /** Removes the user's messages (after delivery); removing none is not an error. */
  delete(host: string, user: string): Promise<void>;
}

/** Options of {@link openOfflineStore}. */
export interface OfflineStoreOptions {
  /** As for the keyval store: only this instance writes the legacy store while it is open. */
  readonly soleWriter?: boolean;
  /** As for the list store. */
  readonly ffi?: "auto" | "off";
}

const log = getLogger("storage", "offline");

const NONE: OfflineStats = { count: 0, bytes: 0 };

/**
 * An offline store over a list store and, when given, the legacy keyval store whose arrays
 * are moved into the list on first sight.
 */
export function offlineStore(
  list: ListStore<Element>,
  legacy?: KeyvalStore<readonly Element[]>,
): OfflineStore {
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
      try {
        await migrate(host, user);
        const st = await list.stat(host, user);
        return { count: st.count, bytes: st.bytes };
      } catch (err) {
        // A name no file can have (too long once encoded) has no account and nothing stored:
        // the message to it bounces instead of failing its queue.
        if (err instanceof RangeError) return NONE;
        throw err;
      }
    },
    append: (host, user, message) => list.append(host, user, [message]),
    async all(host, user) {
      const n = await list.count(host, user);
      return n === 0 ? [] : await list.range(host, user, 0, n);
    },
    delete: (host, user) => list.delete(host, user),
  };
}

/** The offline store under `dataDir` (list store `offline`, legacy keyval store `offline`). */
export function openOfflineStore(dataDir: string, opts: OfflineStoreOptions = {}): OfflineStore {
  return offlineStore(
    openListStore<Element>(dataDir, OFFLINE_STORE, { ffi: opts.ffi }),
    openKeyvalStore<readonly Element[]>(dataDir, OFFLINE_STORE, { soleWriter: opts.soleWriter }),
  );
}
