/**
 * The file store: `DATA/<host>/<store>/<user>.json` per keyval value, each written atomically
 * (temp file in the same directory, write, fsync, rename, fsync of the directory), so a crash
 * leaves either the old value or the new one, never a torn file.
 *
 * Every path part is encoded by {@link encodePathPart}: no JID part can climb out of its
 * folder, name a device, or collide with another part on a case-insensitive filesystem.
 * @module
 */
import { join } from "node:path";
import type { KeyvalStore } from "../mod.ts";

/** A stored file that exists but cannot be read back as what was written. */
export class StoreCorruptError extends Error {
  /** The file at fault. */
  readonly path: string;
  constructor(path: string, reason: string) {
    super(`Corrupt store file ${path}: ${reason}`);
    this.name = "StoreCorruptError";
    this.path = path;
  }
}

/**
 * Longest encoded path part: leaves room for an extension inside the usual 255-byte limit on
 * a file name. A 1023-byte localpart can exceed it once percent-encoded; such a part is
 * refused rather than silently truncated (truncation could collide) or hashed (the name could
 * then no longer be listed back): no account can have such a name, so nothing is stored for it.
 */
export const MAX_ENCODED_PART = 240;

/** The prefix of every temp file of an atomic write or a list store copy (`.tmp-<random>`). */
export const TEMP_PREFIX = ".tmp-";

/**
 * A path part {@link encodePathPart} refuses: empty, not valid Unicode, or longer than
 * {@link MAX_ENCODED_PART} once encoded. A keyval store holds no value for such a user (reads
 * find nothing, deletes do nothing) and refuses to write one with this error, so an account
 * of that name can never be created.
 */
export class UnstorableNameError extends RangeError {
  constructor(message: string) {
    super(message);
    this.name = "UnstorableNameError";
  }
}

// Windows device names stay reserved even with an extension ("con.json"); lower-case letters
// pass unencoded, so these would reach the filesystem as-is.
const RESERVED_NAME = /^(?:con|prn|aux|nul|com[0-9]|lpt[0-9])$/;
const SAFE_BYTE = /^[a-z0-9_-]$/;
const SAFE_PART = /^[a-z0-9_-]+$/;
const ENCODED_PART = /^(?:[a-z0-9_-]|%[0-9A-F]{2})+$/;

function percent(byte: number): string {
  return `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
}

/**
 * Encodes one path part (host, store or user): every UTF-8 byte outside `[a-z0-9_-]`, `.`
 * included, becomes `%XX`. Upper case is encoded too, so names that differ only in case stay
 * distinct where the filesystem folds case. The first letter of a Windows device name is
 * encoded as well. Throws on an empty part or one that encodes longer than
 * {@link MAX_ENCODED_PART}.
 */
export function encodePathPart(part: string): string {
  // Most parts (plain user names, store names) need no encoding: one test instead of a loop.
  if (
    part.length <= MAX_ENCODED_PART && SAFE_PART.test(part) && !RESERVED_NAME.test(part)
  ) return part;
  if (part === "") throw new UnstorableNameError("A store path part must not be empty");
  if (!part.isWellFormed()) {
    throw new UnstorableNameError("A store path part must be valid Unicode");
  }
  let out = "";
  for (const byte of new TextEncoder().encode(part)) {
    const ch = String.fromCharCode(byte);
    out += SAFE_BYTE.test(ch) ? ch : percent(byte);
  }
  if (RESERVED_NAME.test(out)) out = percent(out.charCodeAt(0)) + out.slice(1);
  if (out.length > MAX_ENCODED_PART) {
    throw new UnstorableNameError(
      `Store path part too long once encoded (${out.length} characters)`,
    );
  }
  return out;
}

/** The encoded part, or `undefined` when {@link encodePathPart} refuses it. */
function encodedOrUndefined(part: string): string | undefined {
  try {
    return encodePathPart(part);
  } catch (err) {
    if (err instanceof UnstorableNameError) return undefined;
    throw err;
  }
}

/**
 * The inverse of {@link encodePathPart}; `undefined` for a name it could not have produced
 * (stray files in a store directory are skipped rather than misread).
 */
export function decodePathPart(encoded: string): string | undefined {
  if (encoded.length > MAX_ENCODED_PART || !ENCODED_PART.test(encoded)) return undefined;
  const bytes: number[] = [];
  for (let i = 0; i < encoded.length; i++) {
    if (encoded[i] === "%") {
      bytes.push(parseInt(encoded.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(encoded.charCodeAt(i));
  }
  let decoded: string;
  try {
    decoded = new TextDecoder("utf-8", { fatal: true }).decode(new Uint8Array(bytes));
  } catch {
    return undefined;
  }
  // Only canonical encodings count, so one user can never be listed under two names.
  return decoded !== "" && encodePathPart(decoded) === encoded ? decoded : undefined;
}

/** The directory of one store of one host: `<dataDir>/<host>/<store>`, parts encoded. */
export function storeDir(dataDir: string, host: string, store: string): string {
  return join(dataDir, encodePathPart(host), encodePathPart(store));
}

/** Most hosts whose store directory one keyval store remembers (the served hosts, in practice). */
const STORE_DIRS_MAX = 64;

function dirSyncUnsupported(err: unknown): boolean {
  if (err instanceof Deno.errors.NotSupported) return true;
  // Windows cannot open a directory for fsync; some filesystems answer EINVAL or ENOTSUP.
  if (Deno.build.os === "windows" && err instanceof Deno.errors.PermissionDenied) return true;
  const code = err instanceof Error && "code" in err ? err.code : undefined;
  return code === "EINVAL" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "EISDIR";
}

/**
 * Flushes a directory's entries (a rename or a new file in it) to disk. Only the platform
 * refusing to sync a directory is ignored; every other error propagates.
 */
export async function syncDir(dir: string): Promise<void> {
  let handle: Deno.FsFile | undefined;
  try {
    handle = await Deno.open(dir, { read: true });
    await handle.sync();
  } catch (err) {
    if (!dirSyncUnsupported(err)) throw err;
  } finally {
    handle?.close();
  }
}

/**
 * Creates `<dataDir>/<host>/<store>` as needed, syncing the parent of each directory it
 * creates so the new entry survives a crash along with the files later put inside.
 */
export async function ensureStoreDir(
  dataDir: string,
  host: string,
  store: string,
): Promise<string> {
  await Deno.mkdir(dataDir, { recursive: true });
  let parent = dataDir;
  for (const part of [encodePathPart(host), encodePathPart(store)]) {
    const dir = join(parent, part);
    try {
      await Deno.mkdir(dir);
      await syncDir(parent);
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
    parent = dir;
  }
  return parent;
}

/**
 * A name for a new temp file in a store directory: {@link TEMP_PREFIX}, a random part drawn once
 * per process (so that two processes never pick the same name) and a counter (so that this one
 * never does twice), instead of random bytes drawn and hex-formatted for every write.
 */
export function tempName(): string {
  return `${TEMP_PREFIX}${PROCESS_TAG}-${(tempCounter++).toString(36)}`;
}

const PROCESS_TAG = Array.from(
  crypto.getRandomValues(new Uint8Array(8)),
  (b) => b.toString(16).padStart(2, "0"),
).join("");
let tempCounter = 0;

/**
 * Per directory, the directory fsync that is running and the one queued after it. A write's
 * rename is durable once a sync of its directory that *started after* the rename has ended, so
 * writes that rename while a sync runs all wait for the one queued next: twenty logouts at once
 * pay for two directory syncs instead of twenty (each is a journal commit, ~75 µs of CPU).
 */
const dirSyncs = new Map<string, { readonly running: Promise<void>; next?: Promise<void> }>();

function startDirSync(dir: string): Promise<void> {
  const running = syncDir(dir);
  const entry: { readonly running: Promise<void>; next?: Promise<void> } = { running };
  dirSyncs.set(dir, entry);
  // Runs before the queued sync starts (registered first), so the map never names a settled
  // sync without a queued one behind it.
  const clear = () => {
    if (dirSyncs.get(dir) === entry && entry.next === undefined) dirSyncs.delete(dir);
  };
  running.then(clear, clear);
  return running;
}

/**
 * Makes the entries of `dir` durable as {@link syncDir} does, sharing one sync between the
 * callers that come while another runs: resolves after a sync that started after this call.
 */
export function syncDirGrouped(dir: string): Promise<void> {
  const current = dirSyncs.get(dir);
  if (current === undefined) return startDirSync(dir);
  current.next ??= current.running.then(noop, noop).then(() => startDirSync(dir));
  return current.next;
}

function noop(): void {}

/** Largest value written with synchronous calls (see {@link writeFileAtomic}). */
const SYNC_WRITE_MAX = 64 * 1024;

/** Writes all of `data` at the file's position (synchronously when small). */
async function writeWhole(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let written = 0;
  if (data.length <= SYNC_WRITE_MAX) {
    while (written < data.length) written += file.writeSync(data.subarray(written));
  } else {
    while (written < data.length) written += await file.write(data.subarray(written));
  }
}

/**
 * Replaces `dir/name` with `data` atomically: a temp file in the same directory (so the
 * rename stays on one filesystem), written and fsynced, renamed over the target, then the
 * directory fsynced so the rename itself is durable. Temp names start with `.`, which
 * {@link encodePathPart} never produces, so they cannot be mistaken for values.
 *
 * Why the create, the write of a small value and the rename are synchronous calls: on the page
 * cache each costs a few µs, less than the hand-off of an asynchronous op to a blocking thread
 * and back (~100 µs of CPU per write saved, measured with 20 writes at once). Only the fsyncs,
 * which wait for the disk, go off-thread. Being synchronous, creations in one directory are
 * also one at a time: on ext4 the inode allocation under the directory's lock scans past every
 * inode freed in the last seconds (each atomic write frees one), and twenty concurrent
 * creations spinning on that lock once cost more CPU than everything else the server did.
 */
export async function writeFileAtomic(dir: string, name: string, data: Uint8Array): Promise<void> {
  const tmp = join(dir, tempName());
  // 0o600: stores hold credentials and private messages.
  const file = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    try {
      await writeWhole(file, data);
      await file.sync();
    } finally {
      file.close();
    }
    Deno.renameSync(tmp, join(dir, name));
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDirGrouped(dir);
}

/** Options of {@link openKeyvalStore}. */
export interface KeyvalStoreOptions {
  /**
   * Only this store instance writes the store while it is open; other processes may only
   * delete its files (the CLI's `deluser`). The instance then lists a host's directory once
   * and keeps the listing up to date on `set` and `delete`, so that reading a value that does
   * not exist costs no file operation (most users have no vCard, block list ...). A file that
   * vanished since still reads as `undefined`. Never for `accounts` or `tombstones`: the CLI
   * writes those while the server runs, and a cached "missing" would hide what it wrote.
   */
  readonly soleWriter?: boolean;
}

function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound;
}

/** The value names (encoded users) of the `.json` files in `dir`; none when it is missing. */
async function listValueNames(dir: string): Promise<Set<string>> {
  const names = new Set<string>();
  try {
    // Every `.json` entry, not only regular files: a read of anything else fails as before.
    for await (const entry of Deno.readDir(dir)) {
      if (entry.name.endsWith(".json")) names.add(entry.name.slice(0, -".json".length));
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  return names;
}

/**
 * A keyval store kept in files under `dataDir`: `<host>/<store>/<user>.json`. A missing file
 * reads as `undefined`; a file that is not valid JSON throws {@link StoreCorruptError}.
 */
export function openKeyvalStore<T>(
  dataDir: string,
  store: string,
  opts: KeyvalStoreOptions = {},
): KeyvalStore<T> {
  encodePathPart(store); // fail at open time, not at first use
  // Hosts whose store directory is known to exist: a write then skips three mkdir calls.
  const readyHosts = new Set<string>();
  // soleWriter: per host, the names that have a file (see KeyvalStoreOptions).
  const listings = new Map<string, Promise<Set<string>>>();
  // Bumped when a write starts and when it ends, so that a read that found no file can tell
  // whether a write of this instance may have created it meanwhile.
  let writeEvents = 0;

  // Per host, its store directory: joined and encoded once, not on every read.
  const dirs = new Map<string, string>();
  function dirOf(host: string): string {
    let dir = dirs.get(host);
    if (dir === undefined) {
      dir = storeDir(dataDir, host, store);
      if (dirs.size < STORE_DIRS_MAX) dirs.set(host, dir);
    }
    return dir;
  }

  function listing(host: string): Promise<Set<string>> | undefined {
    if (opts.soleWriter !== true) return undefined;
    let names = listings.get(host);
    if (names === undefined) {
      names = listValueNames(storeDir(dataDir, host, store));
      listings.set(host, names);
      // A failed listing (permissions ...) is tried again on the next call.
      names.catch(() => listings.get(host) === names && listings.delete(host));
    }
    return names;
  }

  async function get(host: string, user: string): Promise<T | undefined> {
    // No file can exist for such a name (set refuses it): a message to such a JID finds no
    // account and bounces, instead of failing the recipient's queue.
    const name = encodedOrUndefined(user);
    if (name === undefined) return undefined;
    const names = await listing(host);
    if (names !== undefined && !names.has(name)) return undefined;
    // Built only for a read, and without path.join: the directory is normalised already and
    // the encoded name holds no separator (join's normalising showed in the login profiles).
    const path = `${dirOf(host)}/${name}.json`;
    const seen = writeEvents;
    let text: string;
    try {
      // Synchronously: values are small (every collection in them has a [limits] cap), and a
      // read from the page cache costs ~10 µs this way against ~35 µs of CPU for the hand-off
      // of an asynchronous op to a blocking thread and back (more when the blocking threads are
      // all waiting on fsyncs and a new one must be started, as during a burst of logouts).
      text = Deno.readTextFileSync(path);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      // Deleted by another process: forget the name, unless a write of ours overlapped.
      if (names !== undefined && writeEvents === seen) names.delete(name);
      return undefined;
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new StoreCorruptError(path, err instanceof Error ? err.message : String(err));
    }
  }

  async function set(host: string, user: string, value: T): Promise<void> {
    const name = encodePathPart(user);
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError("Keyval store values must be JSON-serialisable");
    const data = new TextEncoder().encode(json);
    // Listed before the write, so that the listing cannot miss the file this write creates.
    const names = await listing(host);
    writeEvents++;
    try {
      if (!readyHosts.has(host)) {
        await writeFileAtomic(await ensureStoreDir(dataDir, host, store), `${name}.json`, data);
        readyHosts.add(host);
        return;
      }
      try {
        await writeFileAtomic(dirOf(host), `${name}.json`, data);
      } catch (err) {
        if (!isNotFound(err)) throw err;
        // The directory was removed behind our back: create it again.
        readyHosts.delete(host);
        await writeFileAtomic(await ensureStoreDir(dataDir, host, store), `${name}.json`, data);
        readyHosts.add(host);
      }
    } finally {
      writeEvents++;
      // Even after a failure: the rename may have happened. A name without a file only costs
      // a read.
      names?.add(name);
    }
  }

  async function remove(host: string, user: string): Promise<void> {
    const name = encodedOrUndefined(user);
    if (name === undefined) return;
    const path = join(storeDir(dataDir, host, store), `${name}.json`);
    const names = await listing(host);
    // Forgotten first: a read meanwhile sees the value as gone, which it is about to be.
    names?.delete(name);
    try {
      await Deno.remove(path);
    } catch (err) {
      if (isNotFound(err)) return;
      names?.add(name);
      throw err;
    }
    await syncDirGrouped(storeDir(dataDir, host, store));
  }

  async function users(host: string): Promise<string[]> {
    const found: string[] = [];
    try {
      for await (const entry of Deno.readDir(storeDir(dataDir, host, store))) {
        if (!entry.isFile || !entry.name.endsWith(".json")) continue;
        const user = decodePathPart(entry.name.slice(0, -".json".length));
        if (user !== undefined) found.push(user);
      }
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    return found.sort();
  }

  return { get, set, delete: remove, users };
}

/**
 * Removes the temp files that writes cut short by a crash left in the stores under `dataDir`
 * (`<dataDir>/<host>/<store>/.tmp-*`, from {@link writeFileAtomic} and the list store's
 * copies); returns how many. Call it once at start, before the server writes: a temp file is
 * only ever renamed by the write that created it, so any found then is garbage. A CLI write
 * running at that very moment fails cleanly (its rename finds no file) and can be repeated.
 */
export async function removeTempFiles(dataDir: string): Promise<number> {
  let removed = 0;
  for (const host of await subdirs(dataDir)) {
    for (const store of await subdirs(host)) {
      for await (const entry of Deno.readDir(store)) {
        if (!entry.isFile || !entry.name.startsWith(TEMP_PREFIX)) continue;
        try {
          await Deno.remove(join(store, entry.name));
          removed++;
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
    }
  }
  return removed;
}

/** Paths of the directories directly in `dir`; none when it is missing. */
async function subdirs(dir: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (entry.isDirectory) out.push(join(dir, entry.name));
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  return out;
}
