/**
 * Tombstones of removed accounts: keyval store `tombstones`, one record per host and user. It
 * is not one of the user's stores, so deleting the user's data leaves it in place.
 * @module
 */
import { type Tombstone, tombstoneStands } from "../core/tombstones.ts";
import { AccountMissingError, type AccountStore } from "./accounts.ts";
import { openKeyvalStore } from "./file/datamanager.ts";
import type { KeyvalStore } from "./mod.ts";
import { deleteAccount, type UserData } from "./user_data.ts";

/** The tombstone store under `dataDir`. */
export function openTombstoneStore(dataDir: string): KeyvalStore<Tombstone> {
  return openKeyvalStore<Tombstone>(dataDir, "tombstones");
}

/** True while the tombstone of `user` stands; an expired one is removed on the way. */
export async function hasTombstone(
  store: KeyvalStore<Tombstone>,
  host: string,
  user: string,
  opts: { readonly now: number; readonly expiry: number },
): Promise<boolean> {
  const tombstone = await store.get(host, user);
  if (tombstoneStands(tombstone, opts.now, opts.expiry)) return true;
  if (tombstone !== undefined) await store.delete(host, user);
  return false;
}

/**
 * Removes an account with all its data and leaves a tombstone (the server's `<remove/>` and
 * the CLI's `deluser`). The tombstone is written first, the data deleted next and the account
 * record last: a crash in between leaves a tombstone beside an account (with part of its
 * data), never a removed account whose name is free again, nor data that a later account of
 * the same name would inherit.
 * @throws {AccountMissingError} when there is no such account
 */
export async function removeAccount(
  deps: {
    readonly accounts: AccountStore;
    readonly tombstones: KeyvalStore<Tombstone>;
    /** The stores of the account's data (`openUserData` for the file store). */
    readonly data: UserData;
  },
  host: string,
  user: string,
  now: number,
): Promise<void> {
  if (!(await deps.accounts.exists(host, user))) throw new AccountMissingError(host, user);
  await deps.tombstones.set(host, user, { removed: now });
  await deleteAccount(deps.accounts, deps.data, host, user);
}
