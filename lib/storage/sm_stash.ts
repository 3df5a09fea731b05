/**
 * What hibernating sessions (XEP-0198) were sent, on disk, so that a crash cannot lose it: while
 * a session waits to be resumed, every message queued for it is appended (durably) to a list of
 * its own, `DATA/<host>/sm_stash/<user>.<sid>.list`. Resumption or a clean end (which moves the
 * queue to offline storage from memory) drops the list; at start, lists left by a crash are
 * moved to offline storage, where the user finds them at the next login.
 * @module
 */
import type { Element } from "../xml/element.ts";
import { openListStore } from "./file/list_store.ts";
import type { ListStore, SmStash } from "./mod.ts";

/** The list store's name. */
const SM_STASH_STORE = "sm_stash";

// Session ids are base64url (no dot): the last dot separates the user from the session.
const key = (user: string, sid: string) => `${user}.${sid}`;
const userOf = (name: string) => name.slice(0, name.lastIndexOf("."));

/** A stash over a list store. */
export function smStash(list: ListStore<Element>): SmStash {
  return {
    append: (host, user, sid, messages) => list.append(host, key(user, sid), messages),
    drop: (host, user, sid) => list.delete(host, key(user, sid)),
    async recover(hosts, offline) {
      let moved = 0;
      for (const host of hosts) {
        for (const name of await list.users(host)) {
          const user = userOf(name);
          const n = await list.count(host, name);
          // Durable in offline storage before the stash goes: a crash in between repeats.
          for (const m of n === 0 ? [] : await list.range(host, name, 0, n)) {
            await offline.append(host, user, m);
            moved++;
          }
          await list.delete(host, name);
        }
      }
      return moved;
    },
    async delete(host, user) {
      for (const name of await list.users(host)) {
        if (userOf(name) === user) await list.delete(host, name);
      }
    },
    close: () => list.close(),
  };
}

/** The stash under `dataDir`. */
export function openSmStash(
  dataDir: string,
  opts: { readonly ffi?: "auto" | "off" } = {},
): SmStash {
  return smStash(openListStore<Element>(dataDir, SM_STASH_STORE, { ffi: opts.ffi }));
}
