/**
 * Accounts: SCRAM credentials per user, never the password (DESIGN: "accounts.ts (SCRAM
 * credentials only, never plaintext)"). Host and username are expected already normalised
 * by the caller (the JID module).
 * @module
 */
import { newCredentialSet, type ScramCredentialSet } from "../sasl/scram.ts";
import { openKeyvalStore } from "./datamanager.ts";
import type { KeyvalStore } from "./mod.ts";

/** What is stored per account. */
export interface AccountRecord {
  readonly scram: ScramCredentialSet;
  /** When the account was created, ISO 8601. */
  readonly created: string;
}

/** `create` found the account already there. */
export class AccountExistsError extends Error {
  constructor(host: string, username: string) {
    super(`Account ${username}@${host} already exists`);
    this.name = "AccountExistsError";
  }
}

/** `setPassword` or `remove` found no such account. */
export class AccountMissingError extends Error {
  constructor(host: string, username: string) {
    super(`Account ${username}@${host} does not exist`);
    this.name = "AccountMissingError";
  }
}

/** The account operations the server and the CLI need. */
export interface AccountStore {
  /** The stored SCRAM credentials, or `undefined` for an unknown account. */
  getCredentials(host: string, username: string): Promise<ScramCredentialSet | undefined>;
  exists(host: string, username: string): Promise<boolean>;
  /** Creates an account; throws {@link AccountExistsError} if it exists. */
  create(host: string, username: string, password: string): Promise<void>;
  /** Replaces the credentials; throws {@link AccountMissingError} if there is no account. */
  setPassword(host: string, username: string, password: string): Promise<void>;
  /** Deletes the account record; throws {@link AccountMissingError} if there is none. */
  remove(host: string, username: string): Promise<void>;
}

/** Options for an account store. */
export interface AccountStoreOptions {
  /** PBKDF2 iterations for new credentials (default and minimum 4096). */
  readonly iterations?: number;
  /** The clock for `created` (tests pass a fixed one). */
  readonly now?: () => Date;
}

/** An account store over any keyval store of {@link AccountRecord}s. */
export function createAccountStore(
  keyval: KeyvalStore<AccountRecord>,
  opts: AccountStoreOptions = {},
): AccountStore {
  const now = opts.now ?? (() => new Date());
  // Check-then-write must not interleave for one account within this process, or two
  // concurrent `create`s could both succeed.
  const tails = new Map<string, Promise<unknown>>();
  function serialized<R>(host: string, username: string, op: () => Promise<R>): Promise<R> {
    const key = JSON.stringify([host, username]);
    const run = (tails.get(key) ?? Promise.resolve()).then(op, op);
    const tail = run.catch(() => {});
    tails.set(key, tail);
    tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return run;
  }

  async function getCredentials(host: string, username: string) {
    return (await keyval.get(host, username))?.scram;
  }

  async function exists(host: string, username: string) {
    return (await keyval.get(host, username)) !== undefined;
  }

  function create(host: string, username: string, password: string) {
    return serialized(host, username, async () => {
      if (await exists(host, username)) throw new AccountExistsError(host, username);
      const scram = newCredentialSet(password, opts.iterations);
      await keyval.set(host, username, { scram, created: now().toISOString() });
    });
  }

  function setPassword(host: string, username: string, password: string) {
    return serialized(host, username, async () => {
      const record = await keyval.get(host, username);
      if (record === undefined) throw new AccountMissingError(host, username);
      const scram = newCredentialSet(password, opts.iterations);
      await keyval.set(host, username, { ...record, scram });
    });
  }

  function remove(host: string, username: string) {
    return serialized(host, username, async () => {
      if (!(await exists(host, username))) throw new AccountMissingError(host, username);
      await keyval.delete(host, username);
    });
  }

  return { getCredentials, exists, create, setPassword, remove };
}

/** The file-backed account store: keyval store `accounts` under `dataDir`. */
export function openAccountStore(dataDir: string, opts: AccountStoreOptions = {}): AccountStore {
  return createAccountStore(openKeyvalStore<AccountRecord>(dataDir, "accounts"), opts);
}
