/**
 * Everything stored for one account, so that deleting the account deletes all of it, each
 * store through its interface.
 * @module
 */
import type { Element } from "../xml/element.ts";
import { AccountMissingError, type AccountStore } from "./accounts.ts";
import { openArchiveStore } from "./file/archive.ts";
import { openKeyvalStore } from "./file/datamanager.ts";
import { openLogKeyvalStore } from "./log_keyval.ts";
import type { ArchiveStore, KeyvalStore, OfflineStore, SmStash } from "./mod.ts";
import { OFFLINE_STORE, offlineStore } from "./offline.ts";
import { openListStore } from "./file/list_store.ts";
import { openSmStash } from "./sm_stash.ts";

/** Keyval stores that hold per-user data (`offline`: arrays from before the list store). */
const USER_KEYVAL_STORES = ["roster", OFFLINE_STORE, "archive_prefs"] as const;

/**
 * Module stores kept as one append-only log per host instead of a file per user
 * (lib/storage/log_keyval.ts): written at every logout, read only when someone asks. The last
 * logout (XEP-0012, `lastlog`) was an atomic file replacement per logout, the largest file
 * cost of a login and logout.
 */
const LOG_STORES: ReadonlySet<string> = new Set(["lastlog"]);

/**
 * The keyval store of a module's per-account data under `dataDir`, in the form that store is
 * kept in (see {@link LOG_STORES}); `soleWriter` as for the file store.
 */
export function openModuleStore<T>(
  dataDir: string,
  name: string,
  opts: { readonly soleWriter?: boolean } = {},
): KeyvalStore<T> {
  return LOG_STORES.has(name)
    ? openLogKeyvalStore<T>(dataDir, name, opts)
    : openKeyvalStore<T>(dataDir, name, opts);
}

/** The stores of one account's data. */
export interface UserData {
  /** Keyval stores: {@link USER_KEYVAL_STORES}, then the registered modules' stores. */
  readonly keyval: readonly KeyvalStore<unknown>[];
  readonly archive: ArchiveStore;
  readonly offline: OfflineStore;
  readonly smStash: SmStash;
}

/**
 * The file stores of account data under `dataDir` (`moduleStores`: the keyval stores the
 * registered modules keep per user), opened to delete (no trimming through FFI).
 */
export function openUserData(dataDir: string, moduleStores: readonly string[] = []): UserData {
  return {
    keyval: [
      ...USER_KEYVAL_STORES.map((name) => openKeyvalStore<unknown>(dataDir, name)),
      ...moduleStores.map((name) => openModuleStore<unknown>(dataDir, name)),
    ],
    archive: openArchiveStore(dataDir, { ffi: "off" }),
    // The legacy arrays are among the keyval stores: deleting needs no migration.
    offline: offlineStore(openListStore<Element>(dataDir, OFFLINE_STORE, { ffi: "off" })),
    smStash: openSmStash(dataDir, { ffi: "off" }),
  };
}

/**
 * Deletes every store of the account's data, then the account record; throws when the account
 * is missing. The record goes last: a crash in between leaves an account with part of its
 * data, which a retry removes, never data without an account that a later account of the same
 * name would inherit.
 */
export async function deleteAccount(
  accounts: AccountStore,
  data: UserData,
  host: string,
  username: string,
): Promise<void> {
  if (!(await accounts.exists(host, username))) throw new AccountMissingError(host, username);
  for (const store of data.keyval) await store.delete(host, username);
  await data.archive.delete(host, username);
  await data.offline.delete(host, username);
  await data.smStash.delete(host, username);
  await accounts.remove(host, username);
}
