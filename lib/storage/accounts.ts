/**
 * Accounts: SCRAM credentials per user, never the password (DESIGN: "accounts.ts (SCRAM
 * credentials only, never plaintext)"). Host and username are expected already normalised
 * by the caller (the JID module).
 * @module
 */
import { join } from "node:path";
import {
  decoyCredentialSet,
  MIN_ITERATIONS,
  newCredentialSet,
  type ScramCredentialSet,
} from "../xmpp/scram.ts";
import { openKeyvalStore, syncDir } from "./file/datamanager.ts";
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
  /**
   * Stand-in credentials to show for an account that does not exist, so that logins cannot
   * tell it from a real one: the same for every call with the same name, salts as long as real
   * ones, the configured iterations, and keys no password matches.
   */
  decoyCredentials(host: string, username: string): Promise<ScramCredentialSet>;
  /**
   * Whether the account exists. The first call after `getCredentials` found the account (within
   * {@link VOUCH_MS}, and with no `remove` through this store since) answers from that read
   * instead of reading again: a login reads the record for SASL and, moments later, its bind
   * loads the account, which asks this.
   */
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
  /**
   * The secret the decoy credentials are derived from. Default: a random one per store, so
   * decoys are stable for the life of the process only; {@link openAccountStore} keeps one in
   * the data directory instead.
   */
  readonly decoyKey?: () => Promise<Uint8Array>;
}

/** The file under the data directory that holds the decoy secret. */
export const DECOY_KEY_FILE = "sasl-decoy.key";
const DECOY_KEY_BYTES = 32;

/**
 * The decoy secret of a data directory, made on first use. Kept on disk so that an unknown
 * name shows the same salt after a restart, as a real account would. It is written whole to a
 * temp file and then linked into place, so that no reader ever sees a partial one and two
 * processes making it at once end up with the same.
 */
export function loadDecoyKey(dataDir: string): Promise<Uint8Array> {
  return loadSecretKey(dataDir, DECOY_KEY_FILE);
}

/**
 * A 32-byte secret of the data directory kept in `fileName` (the decoy salts', the MUC occupant
 * ids'), made on first use as {@link loadDecoyKey} says.
 */
export async function loadSecretKey(dataDir: string, fileName: string): Promise<Uint8Array> {
  const path = join(dataDir, fileName);
  const read = async () => {
    const key = await Deno.readFile(path);
    if (key.length !== DECOY_KEY_BYTES) {
      throw new Error(`${path}: expected ${DECOY_KEY_BYTES} bytes, found ${key.length}`);
    }
    return key;
  };
  try {
    return await read();
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  await Deno.mkdir(dataDir, { recursive: true });
  const key = crypto.getRandomValues(new Uint8Array(DECOY_KEY_BYTES));
  const temp = join(dataDir, `.${fileName}.${crypto.randomUUID()}`);
  const file = await Deno.open(temp, { write: true, createNew: true, mode: 0o600 });
  try {
    try {
      for (let off = 0; off < key.length;) off += await file.write(key.subarray(off));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.link(temp, path);
    await syncDir(dataDir);
    return key;
  } catch (err) {
    // Another process linked its own first: use that one.
    if (err instanceof Deno.errors.AlreadyExists) return await read();
    throw err;
  } finally {
    await Deno.remove(temp).catch(() => {});
  }
}

/** Runs `load` once; a failure is not kept, so the next call tries again. */
function once<T>(load: () => Promise<T>): () => Promise<T> {
  let pending: Promise<T> | undefined;
  return () => {
    pending ??= load().catch((err) => {
      pending = undefined;
      throw err;
    });
    return pending;
  };
}

/** How long a read of an account's credentials vouches for its existence (see `exists`). */
export const VOUCH_MS = 10_000;
/** Accounts vouched for at most at once (logins between SASL and bind); the oldest go first. */
const VOUCH_MAX = 1024;

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

  // Accounts whose record a credential read just found, with when (see `exists`). Insertion
  // order is age order: a vouch is deleted before it is set again.
  const vouched = new Map<string, number>();
  // Bumped as every remove starts and ends, so that a read overlapping one vouches for nothing.
  let removals = 0;

  async function getCredentials(host: string, username: string) {
    const seen = removals;
    const record = await keyval.get(host, username);
    const key = JSON.stringify([host, username]);
    vouched.delete(key);
    if (record !== undefined && removals === seen) {
      vouched.set(key, performance.now());
      if (vouched.size > VOUCH_MAX) vouched.delete(vouched.keys().next().value!);
    }
    return record?.scram;
  }

  const decoyKey = once(
    opts.decoyKey ?? (() => Promise.resolve(crypto.getRandomValues(new Uint8Array(32)))),
  );
  async function decoyCredentials(host: string, username: string) {
    const name = JSON.stringify([host, username]);
    return decoyCredentialSet(await decoyKey(), name, opts.iterations ?? MIN_ITERATIONS);
  }

  /** Whether the record is on disk now. */
  async function stored(host: string, username: string) {
    return (await keyval.get(host, username)) !== undefined;
  }

  function exists(host: string, username: string) {
    const key = JSON.stringify([host, username]);
    const at = vouched.get(key);
    if (at !== undefined) {
      // Once only: a later load (after a logout, another login) reads again.
      vouched.delete(key);
      if (performance.now() - at < VOUCH_MS) return Promise.resolve(true);
    }
    return stored(host, username);
  }

  function create(host: string, username: string, password: string) {
    return serialized(host, username, async () => {
      if (await stored(host, username)) throw new AccountExistsError(host, username);
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
      if (!(await stored(host, username))) throw new AccountMissingError(host, username);
      // Before and after: a read that overlaps any part of the removal vouches for nothing.
      removals++;
      vouched.delete(JSON.stringify([host, username]));
      try {
        await keyval.delete(host, username);
      } finally {
        removals++;
      }
    });
  }

  return { getCredentials, decoyCredentials, exists, create, setPassword, remove };
}

/**
 * The file-backed account store: keyval store `accounts` under `dataDir`, and the decoy
 * secret in `dataDir`/{@link DECOY_KEY_FILE}.
 */
export function openAccountStore(dataDir: string, opts: AccountStoreOptions = {}): AccountStore {
  return createAccountStore(openKeyvalStore<AccountRecord>(dataDir, "accounts"), {
    decoyKey: () => loadDecoyKey(dataDir),
    ...opts,
  });
}
