/**
 * Everything stored for one account, so that deleting the account deletes all of it.
 * @module
 */
import type { AccountStore } from "./accounts.ts";
import { openKeyvalStore } from "./datamanager.ts";
import { openListStore } from "./list_store.ts";

/** Keyval stores that hold per-user data. */
export const USER_KEYVAL_STORES = ["roster", "offline", "archive_prefs"] as const;
/** List stores that hold per-user data. */
export const USER_LIST_STORES = ["archive"] as const;

/**
 * Deletes the account and every store of its data (the fixed ones and `moduleStores`, the
 * keyval stores the registered modules keep per user); throws when the account is missing.
 */
export async function deleteAccount(
  accounts: AccountStore,
  dataDir: string,
  host: string,
  username: string,
  moduleStores: readonly string[] = [],
): Promise<void> {
  await accounts.remove(host, username);
  for (const store of [...USER_KEYVAL_STORES, ...moduleStores]) {
    await openKeyvalStore(dataDir, store).delete(host, username);
  }
  for (const store of USER_LIST_STORES) {
    await openListStore(dataDir, store, { ffi: "off" }).delete(host, username);
  }
}
