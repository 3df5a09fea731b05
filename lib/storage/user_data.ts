/**
 * Everything stored for one account, so that deleting the account deletes all of it.
 * @module
 */
import { AccountMissingError, type AccountStore } from "./accounts.ts";
import { openKeyvalStore } from "./datamanager.ts";
import { openListStore } from "./list_store.ts";

/** Keyval stores that hold per-user data (`offline`: arrays from before the list store). */
export const USER_KEYVAL_STORES = ["roster", "offline", "archive_prefs"] as const;
/** List stores that hold per-user data. */
export const USER_LIST_STORES = ["archive", "offline"] as const;

/**
 * Deletes every store of the account's data (the fixed ones and `moduleStores`, the keyval
 * stores the registered modules keep per user), then the account record; throws when the
 * account is missing. The record goes last: a crash in between leaves an account with part of
 * its data, which a retry removes, never data without an account that a later account of the
 * same name would inherit.
 */
export async function deleteAccount(
  accounts: AccountStore,
  dataDir: string,
  host: string,
  username: string,
  moduleStores: readonly string[] = [],
): Promise<void> {
  if (!(await accounts.exists(host, username))) throw new AccountMissingError(host, username);
  for (const store of [...USER_KEYVAL_STORES, ...moduleStores]) {
    await openKeyvalStore(dataDir, store).delete(host, username);
  }
  for (const store of USER_LIST_STORES) {
    await openListStore(dataDir, store, { ffi: "off" }).delete(host, username);
  }
  await accounts.remove(host, username);
}
