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
import type { KeyvalStore } from "./mod.ts";

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
 * refused rather than silently truncated (truncation could collide).
 */
export const MAX_ENCODED_PART = 240;

// Windows device names stay reserved even with an extension ("con.json"); lower-case letters
// pass unencoded, so these would reach the filesystem as-is.
const RESERVED_NAME = /^(?:con|prn|aux|nul|com[0-9]|lpt[0-9])$/;
const SAFE_BYTE = /^[a-z0-9_-]$/;
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
  if (part === "") throw new RangeError("A store path part must not be empty");
  if (!part.isWellFormed()) throw new RangeError("A store path part must be valid Unicode");
  let out = "";
  for (const byte of new TextEncoder().encode(part)) {
    const ch = String.fromCharCode(byte);
    out += SAFE_BYTE.test(ch) ? ch : percent(byte);
  }
  if (RESERVED_NAME.test(out)) out = percent(out.charCodeAt(0)) + out.slice(1);
  if (out.length > MAX_ENCODED_PART) {
    throw new RangeError(`Store path part too long once encoded (${out.length} characters)`);
  }
  return out;
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

function randomHex(bytes: number): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(bytes)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
}

/**
 * Replaces `dir/name` with `data` atomically: a temp file in the same directory (so the
 * rename stays on one filesystem), written and fsynced, renamed over the target, then the
 * directory fsynced so the rename itself is durable. Temp names start with `.`, which
 * {@link encodePathPart} never produces, so they cannot be mistaken for values.
 */
export async function writeFileAtomic(dir: string, name: string, data: Uint8Array): Promise<void> {
  const tmp = join(dir, `.tmp-${randomHex(8)}`);
  // 0o600: stores hold credentials and private messages.
  const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
  try {
    try {
      let written = 0;
      while (written < data.length) written += await file.write(data.subarray(written));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, join(dir, name));
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
  await syncDir(dir);
}

/**
 * A keyval store kept in files under `dataDir`: `<host>/<store>/<user>.json`. A missing file
 * reads as `undefined`; a file that is not valid JSON throws {@link StoreCorruptError}.
 */
export function openKeyvalStore<T>(dataDir: string, store: string): KeyvalStore<T> {
  encodePathPart(store); // fail at open time, not at first use
  const fileOf = (host: string, user: string) =>
    join(storeDir(dataDir, host, store), `${encodePathPart(user)}.json`);

  async function get(host: string, user: string): Promise<T | undefined> {
    const path = fileOf(host, user);
    let text: string;
    try {
      text = await Deno.readTextFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new StoreCorruptError(path, err instanceof Error ? err.message : String(err));
    }
  }

  async function set(host: string, user: string, value: T): Promise<void> {
    const name = `${encodePathPart(user)}.json`;
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError("Keyval store values must be JSON-serialisable");
    const dir = await ensureStoreDir(dataDir, host, store);
    await writeFileAtomic(dir, name, new TextEncoder().encode(json));
  }

  async function remove(host: string, user: string): Promise<void> {
    const path = fileOf(host, user);
    try {
      await Deno.remove(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
      throw err;
    }
    await syncDir(storeDir(dataDir, host, store));
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
      if (err instanceof Deno.errors.NotFound) return [];
      throw err;
    }
    return found.sort();
  }

  return { get, set, delete: remove, users };
}
export { openListStore } from "./list_store.ts";
