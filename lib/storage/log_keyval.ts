/**
 * A keyval store kept as one append-only log per host, `DATA/<host>/<store>/entries.log`, for
 * small values written often and read rarely: the last logout of XEP-0012, written at every
 * logout. Each line is `["user",value]` (a value set) or `["user"]` (a value deleted); the last
 * line of a user wins. A value is durable once its line is written and `fdatasync`ed, and
 * writes that come while a sync runs share the next one: twenty logouts at once cost two
 * appends and two `fdatasync`s, against twenty atomic file replacements with the per-file
 * store (each a new inode, whose allocation on ext4 cost ~370 µs of CPU per logout in the
 * login benchmark, an fsync, a rename and a directory fsync).
 *
 * The sole writer (the server) holds every value of a host in memory from its first use (the
 * log is read once) and rewrites the log with only the live values when it has grown to more
 * than twice as many lines (written to a temp file, fsynced, renamed over the log: a crash
 * leaves the old log or the new one). Other processes (the CLI's `deluser`) and other instances
 * append under an exclusive `flock` of the log, checking that the path still names the file
 * they locked; the sole writer's rewrite holds the same lock, and reads the lines others added
 * before it rewrites, so that nothing they wrote is lost. Lines others append are also read
 * before each of its own appends.
 *
 * A crash can cut the last line short; such a line was never acknowledged (its writer had not
 * had its `fdatasync`), is skipped when read, and the next append starts on a new line.
 * Values of the per-file store (`<user>.json` in the same directory, from before this store)
 * are read beneath the log's lines and moved into it by a rewrite after the first append (or
 * removed by a delete).
 *
 * Memory: the sole writer holds one short JSON text per user with a value, which is at most
 * one per account (an account's removal deletes its value).
 * @module
 */
import { join } from "node:path";
import { getLogger } from "../log.ts";
import {
  decodePathPart,
  encodePathPart,
  ensureStoreDir,
  storeDir,
  syncDir,
  tempName,
  UnstorableNameError,
} from "./file/datamanager.ts";
import type { KeyvalStore } from "./mod.ts";

/** The log's file name in the store directory (no `.json`: never taken for a user's value). */
export const LOG_FILE = "entries.log";

/** Lines a log may hold before it is rewritten, however few values are live. */
export const COMPACT_MIN_LINES = 1024;

const log = getLogger("storage", "log_keyval");
const NEWLINE = 0x0a;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Options of {@link openLogKeyvalStore}. */
export interface LogKeyvalOptions {
  /**
   * Only this instance writes the store while it is open, apart from appends by other
   * processes (the CLI's `deluser`): it then keeps the values in memory and rewrites the log.
   * Without it, every read reads the files and every write is a locked append.
   */
  readonly soleWriter?: boolean;
  /** Lines before a rewrite is considered (tests lower it); default {@link COMPACT_MIN_LINES}. */
  readonly compactMinLines?: number;
}

/** One line: a user's value as JSON text, or `undefined` for a deletion. */
interface Line {
  readonly user: string;
  readonly json: string | undefined;
}

/** The line of a set (`json`) or a delete, newline-terminated. */
export function formatLine(user: string, json: string | undefined): string {
  return json === undefined ? `[${JSON.stringify(user)}]\n` : `[${JSON.stringify(user)},${json}]\n`;
}

/**
 * The lines of a log's text, in order; `torn` when it does not end with a newline (a crash cut
 * the last append short). Lines that are not a record (a cut line glued to nothing, damage)
 * are counted in `skipped`: a cut line cannot parse, since a record ends with its `]`.
 */
export function parseLog(
  text: string,
): { readonly lines: readonly Line[]; readonly torn: boolean; readonly skipped: number } {
  const lines: Line[] = [];
  let skipped = 0;
  const parts = text.split("\n");
  const torn = parts[parts.length - 1] !== "";
  for (const part of parts) {
    if (part === "") continue;
    const line = parseLine(part);
    if (line === undefined) skipped++;
    else lines.push(line);
  }
  return { lines, torn, skipped };
}

function parseLine(part: string): Line | undefined {
  let rec: unknown;
  try {
    rec = JSON.parse(part);
  } catch {
    return undefined;
  }
  if (!Array.isArray(rec) || typeof rec[0] !== "string") return undefined;
  if (rec.length === 1) return { user: rec[0], json: undefined };
  if (rec.length === 2) return { user: rec[0], json: JSON.stringify(rec[1]) };
  return undefined;
}

/** Applies lines to the values, in order. */
function apply(values: Map<string, string>, lines: readonly Line[]): void {
  for (const { user, json } of lines) {
    if (json === undefined) values.delete(user);
    else values.set(user, json);
  }
}

/** What a host's directory holds, read once. */
interface Loaded {
  /** User → value JSON: the per-file values beneath the log's lines. */
  readonly values: Map<string, string>;
  /** Users with a `<user>.json` file of the per-file store. */
  readonly legacy: Set<string>;
  /** Bytes of the log read (0 when there is none). */
  readonly size: number;
  readonly exists: boolean;
  readonly lines: number;
  readonly torn: boolean;
}

function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound;
}

/** Reads the per-file values and then the log of one store directory. */
async function loadDir(dir: string): Promise<Loaded> {
  const values = new Map<string, string>();
  const legacy = new Set<string>();
  try {
    for await (const entry of Deno.readDir(dir)) {
      if (!entry.isFile || !entry.name.endsWith(".json")) continue;
      const user = decodePathPart(entry.name.slice(0, -".json".length));
      if (user === undefined) continue;
      let text: string;
      try {
        text = await Deno.readTextFile(join(dir, entry.name));
      } catch (err) {
        if (isNotFound(err)) continue;
        throw err;
      }
      legacy.add(user);
      try {
        values.set(user, JSON.stringify(JSON.parse(text)));
      } catch {
        log.warning("Skipped unreadable value {file}", { file: join(dir, entry.name) });
      }
    }
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(join(dir, LOG_FILE));
  } catch (err) {
    if (!isNotFound(err)) throw err;
    return { values, legacy, size: 0, exists: false, lines: 0, torn: false };
  }
  const { lines, torn, skipped } = parseLog(decoder.decode(bytes));
  if (skipped > 0) log.warning("{dir}: skipped {skipped} cut or damaged lines", { dir, skipped });
  apply(values, lines);
  return { values, legacy, size: bytes.length, exists: true, lines: lines.length, torn };
}

/** Reads `[from, size)` of an open file. */
function readFrom(file: Deno.FsFile, from: number, size: number): Uint8Array {
  const out = new Uint8Array(size - from);
  file.seekSync(from, Deno.SeekMode.Start);
  let off = 0;
  while (off < out.length) {
    const n = file.readSync(out.subarray(off));
    if (n === null || n === 0) break;
    off += n;
  }
  return out.subarray(0, off);
}

function writeAll(file: Deno.FsFile, data: Uint8Array): void {
  for (let off = 0; off < data.length;) off += file.writeSync(data.subarray(off));
}

/**
 * Opens `path` for appending with an exclusive lock, creating it if asked, and makes sure the
 * locked file is still the one the path names (a rewrite may have replaced it meanwhile).
 * Resolves to the locked file and whether it was created; `undefined` when it is missing and
 * `create` is false.
 */
async function openLocked(
  path: string,
  create: boolean,
): Promise<{ readonly file: Deno.FsFile; readonly created: boolean } | undefined> {
  for (;;) {
    let created = false;
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(path, { read: true, append: true });
    } catch (err) {
      if (!isNotFound(err) || !create) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
      file = Deno.openSync(path, { read: true, append: true, create: true, mode: 0o600 });
      created = true;
    }
    try {
      await file.lock(true);
      const named = Deno.statSync(path);
      if (named.ino === file.statSync().ino) return { file, created };
    } catch (err) {
      file.close();
      if (isNotFound(err)) continue;
      throw err;
    }
    file.close();
  }
}

/** Appends `text` to the log in `dir` under its lock and makes it durable (other writers). */
async function appendLocked(dir: string, text: string, create: boolean): Promise<void> {
  const opened = await openLocked(join(dir, LOG_FILE), create);
  if (opened === undefined) return;
  const { file, created } = opened;
  try {
    const size = file.statSync().size;
    // A line cut by a crash must not swallow this one.
    const torn = size > 0 && readFrom(file, size - 1, size)[0] !== NEWLINE;
    writeAll(file, encoder.encode(torn ? `\n${text}` : text));
    await file.syncData();
  } finally {
    file.close();
  }
  if (created) await syncDir(dir);
}

/** A host's state in the sole writer. */
interface HostLog {
  readonly host: string;
  readonly dir: string;
  readonly path: string;
  readonly values: Map<string, string>;
  readonly legacy: Set<string>;
  /** Bytes of the log accounted for in `values`: more on disk means others appended. */
  size: number;
  /** Lines in the log (live or not): the rewrite's measure. */
  lines: number;
  exists: boolean;
  /** The log ends in a cut line: the next append starts with a newline. */
  torn: boolean;
  /** Lines waiting for the next append, and whoever waits for them to be durable. */
  pending: Line[];
  waiters: { resolve: () => void; reject: (err: unknown) => void }[];
  flushing: boolean;
}

/**
 * A keyval store over per-host logs under `dataDir` (see the module comment). `set` throws
 * {@link UnstorableNameError} for a name the file store cannot hold, as the per-file store
 * does, so that the two refuse the same accounts.
 */
export function openLogKeyvalStore<T>(
  dataDir: string,
  store: string,
  opts: LogKeyvalOptions = {},
): KeyvalStore<T> {
  encodePathPart(store); // fail at open time, not at first use
  if (opts.soleWriter !== true) return sharedLogStore<T>(dataDir, store);
  const compactMin = opts.compactMinLines ?? COMPACT_MIN_LINES;
  const hosts = new Map<string, Promise<HostLog>>();

  function hostLog(host: string): Promise<HostLog> {
    let h = hosts.get(host);
    if (h === undefined) {
      const dir = storeDir(dataDir, host, store);
      h = loadDir(dir).then((l) => ({
        host,
        dir,
        path: join(dir, LOG_FILE),
        values: l.values,
        legacy: l.legacy,
        size: l.size,
        lines: l.lines,
        exists: l.exists,
        torn: l.torn,
        pending: [],
        waiters: [],
        flushing: false,
      }));
      hosts.set(host, h);
      // A failed load (permissions ...) is tried again on the next call.
      h.catch(() => hosts.get(host) === h && hosts.delete(host));
    }
    return h;
  }

  /** Queues a line; resolves once it is durable. The value is seen by reads at once. */
  function write(host: string, h: HostLog, line: Line): Promise<void> {
    apply(h.values, [line]);
    h.pending.push(line);
    const durable = new Promise<void>((resolve, reject) => h.waiters.push({ resolve, reject }));
    if (!h.flushing) {
      h.flushing = true;
      flush(host, h);
    }
    return durable;
  }

  /** Appends what is pending, one append and one sync per round, until nothing is. */
  async function flush(host: string, h: HostLog): Promise<void> {
    while (h.pending.length > 0) {
      const lines = h.pending;
      const waiters = h.waiters;
      h.pending = [];
      h.waiters = [];
      try {
        await appendOwn(h, lines);
      } catch (err) {
        // What is on disk is unknown now: the next use reads it again. Values written after
        // this round but not yet appended fail with it (their writers are told).
        hosts.delete(host);
        const all = [...waiters, ...h.waiters];
        h.pending = [];
        h.waiters = [];
        for (const w of all) w.reject(err);
        break;
      }
      // Per-file values left from before this store move into the log at its first write,
      // before that write resolves: whoever waits for it then finds them moved.
      if (h.legacy.size > 0 || (h.lines >= compactMin && h.lines > 2 * h.values.size)) {
        await compact(h).catch((err) =>
          log.error("Rewriting {path} failed: {err}", { path: h.path, err: String(err) })
        );
      }
      for (const w of waiters) w.resolve();
    }
    h.flushing = false;
  }

  /**
   * The sole writer's append of its lines. Others may append at any time (`O_APPEND` keeps
   * each append whole); when the file is not where ours alone would leave it, the lines from
   * where we last looked to the end are read and applied in the file's order, ours among them.
   */
  async function appendOwn(h: HostLog, lines: readonly Line[]): Promise<void> {
    const created = !h.exists;
    if (created) await ensureStoreDir(dataDir, h.host, store);
    const file = Deno.openSync(h.path, { read: true, append: true, create: created, mode: 0o600 });
    try {
      const before = file.statSync().size;
      if (before < h.size) throw new Error(`${h.path} shrank behind our back`);
      // A line cut by a crash (ours, or another writer's) must not swallow ours.
      const torn = before === h.size
        ? h.torn
        : before > 0 && readFrom(file, before - 1, before)[0] !== NEWLINE;
      const text = lines.map((l) => formatLine(l.user, l.json)).join("");
      const data = encoder.encode(torn ? `\n${text}` : text);
      writeAll(file, data);
      if (before === h.size && file.statSync().size === before + data.length) {
        h.size += data.length;
        h.lines += lines.length;
        h.torn = false;
      } else catchUp(h, file);
      await file.syncData();
    } finally {
      file.close();
    }
    if (created) {
      await syncDir(h.dir);
      h.exists = true;
    }
  }

  /**
   * Reads the log from where we last looked to its end and applies it in order, then the lines
   * still pending (they go after it in the file). Everything applied before was in that part
   * or pending, so the values are then what a new load will read.
   */
  function catchUp(h: HostLog, file: Deno.FsFile): void {
    const size = file.statSync().size;
    if (size === h.size) return;
    if (size < h.size) throw new Error(`${h.path} shrank behind our back`);
    const { lines, torn } = parseLog(decoder.decode(readFrom(file, h.size, size)));
    apply(h.values, lines);
    apply(h.values, h.pending);
    h.size = size;
    h.lines += lines.length;
    h.torn = torn;
  }

  /**
   * Rewrites the log with the live values only, under its lock, then removes the per-file
   * values it now holds. Runs between two appends of the flush loop: nothing of ours is in
   * flight.
   */
  async function compact(h: HostLog): Promise<void> {
    const opened = await openLocked(h.path, false);
    if (opened === undefined) throw new Error(`${h.path} is missing`);
    const { file } = opened;
    let text: string;
    try {
      catchUp(h, file);
      text = [...h.values].map(([user, json]) => formatLine(user, json)).join("");
      const data = encoder.encode(text);
      const tmp = join(h.dir, tempName());
      const out = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
      try {
        try {
          writeAll(out, data);
          await out.sync();
        } finally {
          out.close();
        }
        Deno.renameSync(tmp, h.path);
      } catch (err) {
        await Deno.remove(tmp).catch(() => {});
        throw err;
      }
      await syncDir(h.dir);
      h.size = data.length;
      h.lines = h.values.size;
      h.torn = false;
    } finally {
      // Closing releases the lock: a waiting appender finds the path renamed and reopens.
      file.close();
    }
    if (h.legacy.size === 0) return;
    for (const user of h.legacy) {
      await Deno.remove(join(h.dir, `${encodePathPart(user)}.json`)).catch((err) => {
        if (!isNotFound(err)) throw err;
      });
    }
    h.legacy.clear();
    await syncDir(h.dir);
  }

  async function get(host: string, user: string): Promise<T | undefined> {
    if (encodedOrUndefined(user) === undefined) return undefined;
    const json = (await hostLog(host)).values.get(user);
    return json === undefined ? undefined : JSON.parse(json) as T;
  }

  async function set(host: string, user: string, value: T): Promise<void> {
    encodePathPart(user);
    const json = JSON.stringify(value);
    if (json === undefined) throw new TypeError("Keyval store values must be JSON-serialisable");
    const h = await hostLog(host);
    await write(host, h, { user, json });
  }

  async function remove(host: string, user: string): Promise<void> {
    const name = encodedOrUndefined(user);
    if (name === undefined) return;
    const h = await hostLog(host);
    if (h.legacy.has(user)) {
      // The log's line goes first: a crash in between cannot bring the old file's value back.
      if (h.values.has(user)) await write(host, h, { user, json: undefined });
      h.values.delete(user);
      await removeLegacy(h.dir, name);
      h.legacy.delete(user);
      return;
    }
    if (!h.values.has(user)) return;
    await write(host, h, { user, json: undefined });
  }

  async function users(host: string): Promise<string[]> {
    return [...(await hostLog(host)).values.keys()].sort();
  }

  return { get, set, delete: remove, users };
}

/** Removes a per-file value and makes its removal durable; a missing file is not an error. */
async function removeLegacy(dir: string, name: string): Promise<void> {
  try {
    await Deno.remove(join(dir, `${name}.json`));
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  await syncDir(dir);
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
 * The store for other writers (the CLI, account removal): every read reads the directory,
 * every write is a locked append; a delete also removes the per-file value.
 */
function sharedLogStore<T>(dataDir: string, store: string): KeyvalStore<T> {
  return {
    async get(host, user) {
      if (encodedOrUndefined(user) === undefined) return undefined;
      const json = (await loadDir(storeDir(dataDir, host, store))).values.get(user);
      return json === undefined ? undefined : JSON.parse(json) as T;
    },
    async set(host, user, value) {
      encodePathPart(user);
      const json = JSON.stringify(value);
      if (json === undefined) throw new TypeError("Keyval store values must be JSON-serialisable");
      const dir = await ensureStoreDir(dataDir, host, store);
      await appendLocked(dir, formatLine(user, json), true);
    },
    async delete(host, user) {
      const name = encodedOrUndefined(user);
      if (name === undefined) return;
      const dir = storeDir(dataDir, host, store);
      // Without a log there is no line to cancel; a deletion line costs less than reading it.
      await appendLocked(dir, formatLine(user, undefined), false);
      await removeLegacy(dir, name);
    },
    async users(host) {
      return [...(await loadDir(storeDir(dataDir, host, store))).values.keys()].sort();
    },
  };
}
