/**
 * The list store: an append-only list of JSON items per user, in
 * `DATA/<host>/<store>/<user>.list` with an index beside it in `<user>.lidx`.
 *
 * List file: one record per line, `<crc32 of the JSON, 8 lower-case hex digits> <JSON>\n`
 * (JSON escaping guarantees no raw newline inside). Before a record that would cross a
 * 4096-byte boundary, and is at most 4096 bytes, the file is padded with `\n` up to the
 * boundary; a larger record starts on a boundary. Readers skip blank lines, so whole blocks
 * can be cut from the head of the file (`fallocate(FALLOC_FL_COLLAPSE_RANGE)`) and a partial
 * block blanked, without rewriting what is kept.
 *
 * Index file: a 16-byte header (`XMPPLIDX`, then the format version and a reserved word, both
 * uint32 little-endian), then per record its end offset in the list file (just past its
 * newline) as a uint64 little-endian. The index is written after the data is synced and never
 * synced itself: it may lag, and is extended or rebuilt from the list file whenever it is
 * missing, of another version, not strictly increasing, longer than the list, or does not end
 * on a good record. Record `i` is the last line of the byte range `[end[i-1], end[i])`, so
 * padding and skipped damaged lines in between cost nothing.
 *
 * Durability: an append resolves after `fdatasync`. Appends to one file arriving while a sync
 * is in flight are queued and written together with one sync (group commit). Each operation
 * takes an advisory `flock` on the list file (shared to read, exclusive to write), so that two
 * processes never write one file at once, and notices changes made by another process.
 *
 * Leases: an append keeps the list file (and its index) open and exclusively locked after it
 * is done, so that the appends that follow are one write, one `fdatasync` and one index write,
 * without opening, locking or stat-ing again: while the lock is ours nobody else can change the
 * file. The lease ends after {@link LEASE_IDLE_MS} without an operation on the file, at the
 * latest after {@link LEASE_MAX_MS} (so that another process waiting for the lock, e.g. the CLI
 * deleting an account, gets it), when more than {@link MAX_CACHED_FILES} files are cached, and
 * before a shift or a delete. Another store instance of this process that wants the file asks
 * the holder to end its lease at once. Small writes are synchronous: to the page cache they
 * cost less than the thread hand-off of an asynchronous op; only the sync waits off-thread.
 * @module
 */
import { crc32 } from "node:zlib";
import { join } from "node:path";
import { getLogger } from "../log.ts";
import type { CorruptRecord, ListStat, ListStore, ShiftMethod } from "./mod.ts";
import { collapseRange } from "./fallocate.ts";
import {
  decodePathPart,
  encodePathPart,
  ensureStoreDir,
  storeDir,
  syncDir,
  writeFileAtomic,
} from "./datamanager.ts";

/** Alignment unit of the list file: records smaller than this never cross a multiple of it. */
export const LIST_BLOCK = 4096;
/** Bytes before the first entry of an index file. */
export const INDEX_HEADER_SIZE = 16;
/** The first 8 bytes of an index file. */
export const INDEX_MAGIC = "XMPPLIDX";
/** The index format this module writes; an index of any other version is rebuilt. */
export const INDEX_VERSION = 1;

/** Options of {@link openListStore}. */
export interface ListStoreOptions {
  /**
   * `auto` (default): trim with `fallocate` through FFI when permitted on Linux and supported
   * by the filesystem, copying otherwise. `off`: always copy.
   */
  readonly ffi?: "auto" | "off";
}

const log = getLogger("storage", "list");
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NL = 0x0a;
const SPACE = 0x20;
// Reads and copies go through buffers of this size, so a huge range never needs one buffer.
const CHUNK = 1 << 20;
/**
 * Per-file states (the in-memory index) kept for files not in use; least recently used go,
 * and their leases (two open files each) end.
 */
export const MAX_CACHED_FILES = 256;
/** A lease ends after this many ms without an operation on its file. */
export const LEASE_IDLE_MS = 250;
/** A lease ends after the first batch that finds it this old (ms), so other processes get in. */
export const LEASE_MAX_MS = 2000;

/** A lease held by one store instance of this process, found by the list file's path. */
interface LeaseHolder {
  readonly state: object;
  /** Ends the lease once the holder's queued operations on the file are done. */
  readonly end: () => Promise<void>;
}
// Process-wide: flock excludes open files, not processes, so two instances of one process
// would otherwise wait for each other's lease to time out.
const leases = new Map<string, LeaseHolder>();

/** Raised inside a read when a record no longer matches its checksum: the index is rebuilt. */
class IndexMismatch extends Error {
  constructor() {
    super("A list record does not match its index entry or checksum");
    this.name = "IndexMismatch";
  }
}

interface PendingAppend {
  readonly records: readonly Uint8Array[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * What this process knows about one list file. Mutable on purpose: it is the cache behind
 * the shell, changed only while its `lock` chain is held.
 */
interface FileState {
  readonly host: string;
  readonly listPath: string;
  readonly idxPath: string;
  readonly dir: string;
  lock: Promise<void>;
  active: number;
  pending: PendingAppend[];
  flushing: boolean;
  // The list file this state was loaded from: inode, size and mtime at that time.
  loaded: boolean;
  ino: number | null;
  size: number;
  mtime: number;
  ends: Float64Array;
  count: number;
  // End of the last good record: what follows it is padding or a torn tail.
  validEnd: number;
  // Entries known to be in the index file (it may lag behind `count`).
  persisted: number;
  corrupt: CorruptRecord[];
  // The lease: the list file, open and exclusively locked, and its index open to append.
  file: Deno.FsFile | null;
  // Known position of `file` (-1: unknown), so that a write after a write does not seek.
  pos: number;
  idx: Deno.FsFile | null;
  idxPos: number;
  leasedAt: number;
  lastUse: number;
  timer: ReturnType<typeof setTimeout> | undefined;
}

const HEX = encoder.encode("0123456789abcdef");
// Records are encoded here first, then copied out at their exact size.
let scratch = new Uint8Array(64 * 1024);

/** `<crc> <json>\n` for one item. */
function encodeRecord(item: unknown): Uint8Array {
  const json = JSON.stringify(item);
  if (json === undefined) throw new TypeError("List store items must be JSON-serialisable");
  // UTF-8 takes at most 3 bytes per UTF-16 unit. A huge item gets a buffer of its own.
  const need = json.length * 3 + 10;
  if (scratch.length < need && need <= CHUNK) scratch = new Uint8Array(need);
  const buf = scratch.length < need ? new Uint8Array(need) : scratch;
  const { written } = encoder.encodeInto(json, buf.subarray(9));
  const out = buf.slice(0, written + 10);
  let sum = crc32(out.subarray(9, 9 + written));
  for (let i = 7; i >= 0; i--) {
    out[i] = HEX[sum & 0xf];
    sum >>>= 4;
  }
  out[8] = SPACE;
  out[out.length - 1] = NL;
  return out;
}

function hexValue(byte: number): number {
  if (byte >= 0x30 && byte <= 0x39) return byte - 0x30;
  if (byte >= 0x61 && byte <= 0x66) return byte - 0x61 + 10;
  return -1;
}

/** Whether `line` (without its newline) is a record whose checksum matches. */
function recordValid(line: Uint8Array): boolean {
  if (line.length < 10 || line[8] !== SPACE) return false;
  let sum = 0;
  for (let i = 0; i < 8; i++) {
    const v = hexValue(line[i]);
    if (v < 0) return false;
    sum = sum * 16 + v;
  }
  return crc32(line.subarray(9)) === sum;
}

/** Padding to put before a record of `len` bytes appended at `offset`. */
function paddingBefore(offset: number, len: number): number {
  const inBlock = offset % LIST_BLOCK;
  if (inBlock === 0) return 0;
  if (len > LIST_BLOCK || inBlock + len > LIST_BLOCK) return LIST_BLOCK - inBlock;
  return 0;
}

async function readAt(file: Deno.FsFile, offset: number, length: number): Promise<Uint8Array> {
  const buf = new Uint8Array(length);
  await file.seek(offset, Deno.SeekMode.Start);
  let got = 0;
  while (got < length) {
    const n = await file.read(buf.subarray(got));
    if (n === null) return buf.subarray(0, got);
    got += n;
  }
  return buf;
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) done += await file.write(data.subarray(done));
}

function writeAllSync(file: Deno.FsFile, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += file.writeSync(data.subarray(done));
}

function newlines(n: number): Uint8Array {
  return new Uint8Array(n).fill(NL);
}

/** The last line of a segment that ends with a newline, without that newline. */
function lastLine(segment: Uint8Array): { readonly start: number; readonly line: Uint8Array } {
  const stop = segment.length - 1;
  const start = segment.lastIndexOf(NL, stop - 1) + 1;
  return { start, line: segment.subarray(start, stop) };
}

interface ScanResult {
  readonly ends: number[];
  readonly corrupt: CorruptRecord[];
  readonly validEnd: number;
}

/**
 * Reads `[from, to)` line by line: good records give their end offsets; damaged lines before
 * the last good record are `checksum`, anything after it that is not blank is `torn`.
 */
async function scan(file: Deno.FsFile, from: number, to: number): Promise<ScanResult> {
  const ends: number[] = [];
  const bad: { offset: number; length: number }[] = [];
  let validEnd = from;
  let carry = new Uint8Array(0);
  let carryAt = from;
  for (let pos = from; pos < to;) {
    const chunk = await readAt(file, pos, Math.min(CHUNK, to - pos));
    if (chunk.length === 0) break;
    pos += chunk.length;
    const buf = carry.length === 0 ? chunk : concat([carry, chunk]);
    let lineStart = 0;
    for (let nl = buf.indexOf(NL); nl !== -1; nl = buf.indexOf(NL, lineStart)) {
      if (nl > lineStart) {
        const line = buf.subarray(lineStart, nl);
        const at = carryAt + lineStart;
        if (recordValid(line)) {
          validEnd = carryAt + nl + 1;
          ends.push(validEnd);
        } else bad.push({ offset: at, length: line.length });
      }
      lineStart = nl + 1;
    }
    carry = buf.slice(lineStart);
    carryAt += lineStart;
  }
  if (carry.length > 0) bad.push({ offset: carryAt, length: carry.length });
  const corrupt = bad.map((b): CorruptRecord => ({
    ...b,
    kind: b.offset < validEnd ? "checksum" : "torn",
  }));
  return { ends, corrupt, validEnd };
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function encodeIndex(ends: Float64Array, from: number, to: number, header: boolean): Uint8Array {
  const base = header ? INDEX_HEADER_SIZE : 0;
  const out = new Uint8Array(base + (to - from) * 8);
  const view = new DataView(out.buffer);
  if (header) {
    out.set(encoder.encode(INDEX_MAGIC), 0);
    view.setUint32(8, INDEX_VERSION, true);
    view.setUint32(12, 0, true);
  }
  // Two uint32 halves: offsets stay below 2^53, and this avoids a BigInt per entry.
  for (let i = from; i < to; i++) {
    const at = base + (i - from) * 8;
    view.setUint32(at, ends[i] % 0x1_0000_0000, true);
    view.setUint32(at + 4, Math.floor(ends[i] / 0x1_0000_0000), true);
  }
  return out;
}

/**
 * The entries of an index file that passes the cheap checks (magic, version, strictly
 * increasing, within the list), or `undefined`. A trailing partial entry is ignored.
 */
function decodeIndex(bytes: Uint8Array, listSize: number): number[] | undefined {
  if (bytes.length < INDEX_HEADER_SIZE) return undefined;
  if (decoder.decode(bytes.subarray(0, 8)) !== INDEX_MAGIC) return undefined;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(8, true) !== INDEX_VERSION) return undefined;
  const n = Math.floor((bytes.length - INDEX_HEADER_SIZE) / 8);
  const ends = new Array<number>(n);
  let prev = 0;
  for (let i = 0; i < n; i++) {
    const at = INDEX_HEADER_SIZE + i * 8;
    const end = view.getUint32(at + 4, true) * 0x1_0000_0000 + view.getUint32(at, true);
    // A record is at least 11 bytes (`<8 hex> <json>\n`).
    if (end < prev + 11 || end > listSize) return undefined;
    ends[i] = end;
    prev = end;
  }
  return ends;
}

async function endsOnRecord(file: Deno.FsFile, ends: readonly number[], i: number) {
  const from = i === 0 ? 0 : ends[i - 1];
  const seg = await readAt(file, from, ends[i] - from);
  return seg[seg.length - 1] === NL && recordValid(lastLine(seg).line);
}

function growEnds(state: FileState, extra: number): void {
  const need = state.count + extra;
  if (need <= state.ends.length) return;
  const next = new Float64Array(Math.max(need, state.ends.length * 2, 16));
  next.set(state.ends.subarray(0, state.count));
  state.ends = next;
}

function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound;
}

async function removeIfExists(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}

/** A rejected promise for a non-integer index (the API never throws synchronously). */
function badIndex(...indexes: readonly number[]): Promise<never> | undefined {
  const bad = indexes.find((i) => !Number.isInteger(i));
  return bad === undefined
    ? undefined
    : Promise.reject(new RangeError(`List index must be an integer: ${bad}`));
}

/**
 * Opens the list store `store` under `dataDir` (nothing is touched until first use). Items are
 * stored as JSON: what comes back is what `JSON.parse(JSON.stringify(item))` gives.
 */
export function openListStore<T>(
  dataDir: string,
  store: string,
  opts: ListStoreOptions = {},
): ListStore<T> {
  encodePathPart(store); // fail at open time, not at first use
  const ffi = opts.ffi ?? "auto";
  const states = new Map<string, FileState>();

  function stateFor(host: string, user: string): FileState {
    const dir = storeDir(dataDir, host, store);
    const base = join(dir, encodePathPart(user));
    const listPath = `${base}.list`;
    let state = states.get(listPath);
    if (state !== undefined) {
      // Re-insert: Map order then runs from least to most recently used.
      states.delete(listPath);
      states.set(listPath, state);
      return state;
    }
    state = {
      host,
      listPath,
      idxPath: `${base}.lidx`,
      dir,
      lock: Promise.resolve(),
      active: 0,
      pending: [],
      flushing: false,
      loaded: false,
      ino: null,
      size: 0,
      mtime: 0,
      ends: new Float64Array(0),
      count: 0,
      validEnd: 0,
      persisted: 0,
      corrupt: [],
      file: null,
      pos: -1,
      idx: null,
      idxPos: -1,
      leasedAt: 0,
      lastUse: 0,
      timer: undefined,
    };
    states.set(listPath, state);
    if (states.size > MAX_CACHED_FILES) {
      for (const [path, old] of states) {
        if (states.size <= MAX_CACHED_FILES) break;
        if (idle(old)) {
          endLease(old);
          states.delete(path);
        }
      }
    }
    return state;
  }

  function idle(state: FileState): boolean {
    return state.active === 0 && !state.flushing && state.pending.length === 0;
  }

  /**
   * Ends the lease of `state`, if any: notes the file's identity (to notice later changes by
   * others) and closes it, which drops the lock. Only from inside the file's operation chain,
   * or when no operation is queued on it.
   */
  function endLease(state: FileState): void {
    const file = state.file;
    if (file === null) return;
    clearTimeout(state.timer);
    state.timer = undefined;
    if (leases.get(state.listPath)?.state === state) leases.delete(state.listPath);
    closeIndex(state);
    state.file = null;
    state.pos = -1;
    try {
      const info = file.statSync();
      state.ino = info.ino;
      state.size = info.size;
      state.mtime = info.mtime?.getTime() ?? 0;
    } catch {
      state.loaded = false;
    }
    file.close();
  }

  function closeIndex(state: FileState): void {
    state.idx?.close();
    state.idx = null;
    state.idxPos = -1;
  }

  /** Takes the lease on a file acquired for writing (locked exclusively, up to date). */
  function startLease(state: FileState, file: Deno.FsFile): void {
    state.file = file;
    state.pos = -1;
    state.leasedAt = state.lastUse = performance.now();
    leases.set(state.listPath, {
      state,
      end: () => serialised(state, () => Promise.resolve(endLease(state))),
    });
    armTimer(state, LEASE_IDLE_MS);
  }

  function armTimer(state: FileState, ms: number): void {
    const timer = setTimeout(() => {
      state.timer = undefined;
      if (state.file === null) return;
      const quiet = performance.now() - state.lastUse;
      if (idle(state) && quiet >= LEASE_IDLE_MS) endLease(state);
      else armTimer(state, Math.max(1, LEASE_IDLE_MS - quiet));
    }, ms);
    // A lease never keeps the process alive: what it covers is on disk already.
    Deno.unrefTimer(timer);
    state.timer = timer;
  }

  /** Ends the lease of another instance of this process on this file, if there is one. */
  async function takeFromSibling(state: FileState): Promise<boolean> {
    const holder = leases.get(state.listPath);
    if (holder === undefined || holder.state === state) return false;
    await holder.end();
    return true;
  }

  /** Runs `fn` alone among the operations of this process on this file. */
  function serialised<R>(state: FileState, fn: () => Promise<R>): Promise<R> {
    state.active++;
    const run = state.lock.then(fn).finally(() => state.active--);
    state.lock = run.then(() => {}, () => {});
    return run;
  }

  function reset(state: FileState): void {
    state.loaded = false;
    state.ino = null;
    state.size = 0;
    state.mtime = 0;
    state.ends = new Float64Array(0);
    state.count = 0;
    state.validEnd = 0;
    state.persisted = 0;
  }

  function report(state: FileState, found: readonly CorruptRecord[]): void {
    for (const c of found) {
      log.warn("List file {path}: {kind} record of {length} bytes at offset {offset} skipped", {
        path: state.listPath,
        ...c,
      });
      state.corrupt.push(c);
    }
  }

  /** Reads the list's index, checks it, extends or rebuilds it from the list file. */
  async function load(
    state: FileState,
    file: Deno.FsFile,
    info: Deno.FileInfo,
    rebuild: boolean,
  ): Promise<void> {
    const size = info.size;
    state.pos = -1;
    let ends: number[] | undefined;
    if (!rebuild) {
      try {
        ends = decodeIndex(await Deno.readFile(state.idxPath), size);
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
      // Cheap checks passed: the first and last entries must end on good records.
      if (ends !== undefined && ends.length > 0) {
        const ok = await endsOnRecord(file, ends, 0) &&
          await endsOnRecord(file, ends, ends.length - 1);
        if (!ok) ends = undefined;
      }
    }
    const indexed = ends?.length ?? 0;
    const from = indexed > 0 ? ends![indexed - 1] : 0;
    const tail = await scan(file, from, size);
    const all = (ends ?? []).concat(tail.ends);
    if (ends === undefined && size > 0) {
      log.info("Rebuilding list index {path} ({count} records)", {
        path: state.idxPath,
        count: all.length,
      });
    }
    state.corrupt = [];
    report(state, tail.corrupt);
    state.ends = Float64Array.from(all);
    state.count = all.length;
    state.validEnd = all.length > 0 ? all[all.length - 1] : 0;
    state.persisted = ends === undefined ? -1 : indexed;
    state.ino = info.ino;
    state.size = size;
    state.mtime = info.mtime?.getTime() ?? 0;
    state.loaded = true;
    if (state.count > 0 || ends !== undefined) await persistIndex(state);
  }

  /** Writes index entries not yet in the index file; the index may lag, so errors only log. */
  async function persistIndex(state: FileState): Promise<void> {
    if (state.persisted === state.count) return;
    if (state.persisted >= 0 && state.file !== null) {
      persistIndexLeased(state);
      return;
    }
    try {
      if (state.persisted < 0) {
        closeIndex(state);
        await writeFileAtomic(
          state.dir,
          state.idxPath.slice(state.dir.length + 1),
          encodeIndex(state.ends, 0, state.count, true),
        );
      } else {
        const idx = await Deno.open(state.idxPath, { write: true });
        try {
          await idx.seek(INDEX_HEADER_SIZE + state.persisted * 8, Deno.SeekMode.Start);
          await writeAll(idx, encodeIndex(state.ends, state.persisted, state.count, false));
        } finally {
          idx.close();
        }
      }
      state.persisted = state.count;
    } catch (err) {
      // Rebuilt from the list file on a later load; a full disk must not fail the append.
      log.warn("Could not write list index {path}: {error}", {
        path: state.idxPath,
        error: err instanceof Error ? err.message : String(err),
      });
      if (state.persisted >= 0 && isNotFound(err)) state.persisted = -1;
    }
  }

  /** {@link persistIndex} under a lease: one write to the index kept open, no seek in a row. */
  function persistIndexLeased(state: FileState): void {
    try {
      if (state.idx === null) {
        state.idx = Deno.openSync(state.idxPath, { write: true });
        state.idxPos = -1;
      }
      const at = INDEX_HEADER_SIZE + state.persisted * 8;
      if (state.idxPos !== at) state.idxPos = state.idx.seekSync(at, Deno.SeekMode.Start);
      const bytes = encodeIndex(state.ends, state.persisted, state.count, false);
      state.idxPos = -1;
      writeAllSync(state.idx, bytes);
      state.idxPos = at + bytes.length;
      state.persisted = state.count;
    } catch (err) {
      closeIndex(state);
      log.warn("Could not write list index {path}: {error}", {
        path: state.idxPath,
        error: err instanceof Error ? err.message : String(err),
      });
      if (isNotFound(err)) state.persisted = -1;
    }
  }

  /**
   * Opens and locks the list file (exclusively to write) and brings `state` up to date with
   * it (unless `refresh` is false). Returns `undefined` (state emptied) when there is no list
   * and `create` is false.
   */
  async function acquire(
    state: FileState,
    write: boolean,
    create: boolean,
    refresh = true,
  ): Promise<Deno.FsFile | undefined> {
    for (;;) {
      let file: Deno.FsFile;
      try {
        file = await Deno.open(state.listPath, { read: true, write });
      } catch (err) {
        if (!isNotFound(err)) throw err;
        if (!create) {
          reset(state);
          state.corrupt = [];
          return undefined;
        }
        await ensureStoreDir(dataDir, state.host, store);
        // 0o600: archives hold private messages.
        file = await Deno.open(state.listPath, {
          read: true,
          write: true,
          create: true,
          mode: 0o600,
        });
        await syncDir(state.dir);
      }
      try {
        await lock(state, file, write);
        const info = await file.stat();
        // Another process may have replaced or removed the file while we waited for the lock.
        let current: Deno.FileInfo | undefined;
        try {
          current = await Deno.stat(state.listPath);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
        if (current === undefined || current.ino !== info.ino) {
          file.close();
          continue;
        }
        const changed = !state.loaded || state.ino !== info.ino || state.size !== info.size ||
          state.mtime !== (info.mtime?.getTime() ?? 0);
        if (refresh && changed) await load(state, file, info, false);
        return file;
      } catch (err) {
        file.close();
        throw err;
      }
    }
  }

  /**
   * Locks `file`: at once when free; after ending the lease of another instance of this
   * process when it holds it; else waiting for the other process.
   */
  async function lock(state: FileState, file: Deno.FsFile, exclusive: boolean): Promise<void> {
    while (!file.tryLockSync(exclusive)) {
      if (!(await takeFromSibling(state))) {
        await file.lock(exclusive);
        return;
      }
    }
  }

  async function refreshIdentity(state: FileState, file: Deno.FsFile): Promise<void> {
    const info = await file.stat();
    state.ino = info.ino;
    state.size = info.size;
    state.mtime = info.mtime?.getTime() ?? 0;
  }

  /** Runs a read under a shared lock; a record failing its checksum rebuilds the index once. */
  function withRead<R>(
    host: string,
    user: string,
    empty: R,
    fn: (state: FileState, file: Deno.FsFile) => Promise<R>,
  ): Promise<R> {
    const state = stateFor(host, user);
    return serialised(state, async () => {
      const leased = state.file;
      if (leased !== null) {
        // Ours alone while leased: nothing to check. The reads move the position.
        state.pos = -1;
        state.lastUse = performance.now();
        try {
          return await fn(state, leased);
        } catch (err) {
          if (!(err instanceof IndexMismatch)) throw err;
          await load(state, leased, leased.statSync(), true);
          return await fn(state, leased);
        } finally {
          state.pos = -1;
        }
      }
      const file = await acquire(state, false, false);
      if (file === undefined) return empty;
      try {
        try {
          return await fn(state, file);
        } catch (err) {
          if (!(err instanceof IndexMismatch)) throw err;
          await load(state, file, await file.stat(), true);
          return await fn(state, file);
        }
      } finally {
        file.close();
      }
    });
  }

  async function readRecord(state: FileState, file: Deno.FsFile, i: number): Promise<T> {
    const from = i === 0 ? 0 : state.ends[i - 1];
    const seg = await readAt(file, from, state.ends[i] - from);
    return parseSegment(seg);
  }

  function parseSegment(seg: Uint8Array): T {
    if (seg.length === 0 || seg[seg.length - 1] !== NL) throw new IndexMismatch();
    const { line } = lastLine(seg);
    if (!recordValid(line)) throw new IndexMismatch();
    return JSON.parse(decoder.decode(line.subarray(9))) as T;
  }

  async function readRange(state: FileState, file: Deno.FsFile, start: number, end: number) {
    const out: T[] = [];
    let i = start;
    while (i < end) {
      // Take as many whole records as fit a chunk (at least one).
      const from = i === 0 ? 0 : state.ends[i - 1];
      let j = i + 1;
      while (j < end && state.ends[j] - from <= CHUNK) j++;
      const buf = await readAt(file, from, state.ends[j - 1] - from);
      for (let k = i; k < j; k++) {
        const a = (k === 0 ? 0 : state.ends[k - 1]) - from;
        out.push(parseSegment(buf.subarray(a, state.ends[k] - from)));
      }
      i = j;
    }
    return out;
  }

  /** Cuts a torn tail (or trailing padding) so the next write follows the last good record. */
  async function trimTail(state: FileState, file: Deno.FsFile): Promise<void> {
    if (state.size === state.validEnd) return;
    const torn = state.corrupt.some((c) => c.kind === "torn" && c.offset >= state.validEnd);
    await file.truncate(state.validEnd);
    if (torn) {
      log.info("List file {path}: torn tail truncated at {offset}", {
        path: state.listPath,
        offset: state.validEnd,
      });
    }
    state.size = state.validEnd;
  }

  async function writeBatch(state: FileState, records: readonly Uint8Array[]): Promise<void> {
    let file = state.file;
    if (file === null) {
      const acquired = await acquire(state, true, true);
      if (acquired === undefined) throw new Error("unreachable: list file not created");
      startLease(state, acquired);
      file = acquired;
    }
    let ok = false;
    try {
      await trimTail(state, file);
      const start = state.validEnd;
      const parts: Uint8Array[] = [];
      const newEnds: number[] = [];
      let off = start;
      for (const rec of records) {
        const pad = paddingBefore(off, rec.length);
        if (pad > 0) parts.push(newlines(pad));
        off += pad + rec.length;
        parts.push(rec);
        newEnds.push(off);
      }
      try {
        const data = parts.length === 1 ? parts[0] : concat(parts);
        if (state.pos !== start) {
          state.pos = -1;
          state.pos = file.seekSync(start, Deno.SeekMode.Start);
        }
        state.pos = -1;
        // Megabytes at once (an import) would hold up the event loop: those go off-thread.
        if (data.length > CHUNK) await writeAll(file, data);
        else writeAllSync(file, data);
        state.pos = start + data.length;
        await file.syncData();
      } catch (err) {
        // ENOSPC/EFBIG/EIO: leave no partial record behind, so later appends follow good data.
        state.loaded = false;
        try {
          await file.truncate(start);
          await file.syncData();
        } catch (undo) {
          log.error("List file {path}: could not truncate after a failed append: {error}", {
            path: state.listPath,
            error: undo instanceof Error ? undo.message : String(undo),
          });
        }
        throw err;
      }
      growEnds(state, newEnds.length);
      for (const e of newEnds) state.ends[state.count++] = e;
      state.validEnd = off;
      // Ours while leased: the size is what we wrote (the mtime is read when the lease ends).
      state.size = off;
      await persistIndex(state);
      ok = true;
    } finally {
      const now = performance.now();
      state.lastUse = now;
      // After a failure the next batch starts from a fresh look at the file.
      if (!ok || now - state.leasedAt >= LEASE_MAX_MS) endLease(state);
    }
  }

  async function flush(state: FileState): Promise<void> {
    state.flushing = true;
    try {
      while (state.pending.length > 0) {
        // Everything that queued up while the previous batch was syncing goes in one write.
        const batch = state.pending.splice(0);
        try {
          await serialised(state, () => writeBatch(state, batch.flatMap((b) => b.records)));
          for (const b of batch) b.resolve();
        } catch (err) {
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      state.flushing = false;
    }
  }

  function append(host: string, user: string, items: readonly T[]): Promise<void> {
    let records: Uint8Array[];
    try {
      records = items.map(encodeRecord);
    } catch (err) {
      return Promise.reject(err);
    }
    if (records.length === 0) return Promise.resolve();
    const state = stateFor(host, user);
    return new Promise<void>((resolve, reject) => {
      state.pending.push({ records, resolve, reject });
      if (!state.flushing) void flush(state);
    });
  }

  function count(host: string, user: string): Promise<number> {
    return withRead(host, user, 0, (state) => Promise.resolve(state.count));
  }

  function get(host: string, user: string, index: number): Promise<T | undefined> {
    const bad = badIndex(index);
    if (bad) return bad;
    return withRead<T | undefined>(host, user, undefined, async (state, file) => {
      if (index < 0 || index >= state.count) return undefined;
      return await readRecord(state, file, index);
    });
  }

  function range(host: string, user: string, start: number, end: number): Promise<T[]> {
    const bad = badIndex(start, end);
    if (bad) return bad;
    return withRead<T[]>(host, user, [], (state, file) => {
      const s = Math.max(0, start);
      const e = Math.min(state.count, end);
      return s >= e ? Promise.resolve([]) : readRange(state, file, s, e);
    });
  }

  function lowerBound(
    host: string,
    user: string,
    k: number,
    key: (item: T) => number,
  ): Promise<number> {
    return withRead(host, user, 0, async (state, file) => {
      let lo = 0;
      let hi = state.count;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (key(await readRecord(state, file, mid)) < k) lo = mid + 1;
        else hi = mid;
      }
      return lo;
    });
  }

  function stat(host: string, user: string): Promise<ListStat> {
    const none: ListStat = { count: 0, bytes: 0, corrupt: [] };
    return withRead(
      host,
      user,
      none,
      (state) =>
        Promise.resolve({ count: state.count, bytes: state.size, corrupt: [...state.corrupt] }),
    );
  }

  /** Copies `[from, to)` of `file` to a new file `tmp`, after `lead` blank bytes. */
  async function copyTail(
    file: Deno.FsFile,
    tmp: Deno.FsFile,
    lead: number,
    from: number,
    to: number,
  ): Promise<void> {
    await writeAll(tmp, newlines(lead));
    for (let pos = from; pos < to;) {
      const chunk = await readAt(file, pos, Math.min(CHUNK, to - pos));
      if (chunk.length === 0) throw new Error(`List file shrank while copying at ${pos}`);
      await writeAll(tmp, chunk);
      pos += chunk.length;
    }
  }

  function shift(host: string, user: string, n: number): Promise<{ readonly method: ShiftMethod }> {
    const bad = badIndex(n);
    if (bad) return bad;
    const state = stateFor(host, user);
    return serialised(state, async () => {
      // Rare: the lease ends rather than following the file through a copy and a new index.
      endLease(state);
      const file = await acquire(state, true, false);
      if (file === undefined) return { method: "none" as const };
      // After a copy, the new file (still locked) replaces the old one.
      let current: Deno.FsFile = file;
      try {
        if (n <= 0 || state.count === 0) return { method: "none" as const };
        await trimTail(state, file);
        // No index while the list changes under it: a crash now leaves it to be rebuilt, never
        // an index that points into shifted data.
        if (await removeIfExists(state.idxPath)) await syncDir(state.dir);
        let method: ShiftMethod;
        let removed: number;
        // Offset, in the file before the shift, of the first byte kept.
        let keepFrom: number;
        if (n >= state.count) {
          await file.truncate(0);
          await file.sync();
          method = "truncate";
          removed = state.validEnd;
          keepFrom = Infinity;
        } else {
          const from = state.ends[n - 1];
          const seg = await readAt(file, from, state.ends[n] - from);
          const first = from + lastLine(seg).start;
          keepFrom = first;
          removed = first - (first % LIST_BLOCK);
          const lead = first - removed;
          let collapsed = removed === 0;
          if (!collapsed && ffi === "auto") {
            const r = collapseRange(state.listPath, removed);
            collapsed = r === "ok";
            if (r === "unsupported") {
              log.debug("Collapse refused for {path}; copying", { path: state.listPath });
            }
          }
          // A crash between the collapse and the blanking leaves the old records of the last
          // partial block readable (the first line, cut, is reported and skipped): fewer items
          // dropped than asked, never a kept item lost. Shifting again finishes the job.
          if (collapsed) {
            await file.seek(0, Deno.SeekMode.Start);
            await writeAll(file, newlines(lead));
            await file.sync();
            method = removed === 0 ? "blank" : "collapse";
          } else {
            const tmpPath = join(state.dir, `.tmp-${crypto.randomUUID()}`);
            const tmp = await Deno.open(tmpPath, {
              read: true,
              write: true,
              createNew: true,
              mode: 0o600,
            });
            try {
              await tmp.lock(true);
              await copyTail(file, tmp, lead, first, state.validEnd);
              await tmp.sync();
              await Deno.rename(tmpPath, state.listPath);
            } catch (err) {
              tmp.close();
              await removeIfExists(tmpPath).catch(() => false);
              throw err;
            }
            await syncDir(state.dir);
            current = tmp;
            method = "copy";
          }
        }
        const kept = state.count - Math.min(n, state.count);
        const ends = new Float64Array(Math.max(kept, 16));
        for (let i = 0; i < kept; i++) ends[i] = state.ends[state.count - kept + i] - removed;
        state.ends = ends;
        state.count = kept;
        state.validEnd = kept > 0 ? ends[kept - 1] : 0;
        state.persisted = -1;
        // Damaged lines past the new head move with it; those before it are gone.
        state.corrupt = state.corrupt.filter((c) => c.offset >= keepFrom)
          .map((c) => ({ ...c, offset: c.offset - removed }));
        await refreshIdentity(state, current);
        await persistIndex(state);
        return { method };
      } catch (err) {
        state.loaded = false;
        throw err;
      } finally {
        file.close();
        if (current !== file) current.close();
      }
    });
  }

  function remove(host: string, user: string): Promise<void> {
    const state = stateFor(host, user);
    return serialised(state, async () => {
      endLease(state);
      const file = await acquire(state, true, false, false);
      if (file === undefined) return;
      try {
        // Index first: a crash in between leaves a list whose index is simply rebuilt.
        await removeIfExists(state.idxPath);
        await removeIfExists(state.listPath);
        await syncDir(state.dir);
      } finally {
        file.close();
        reset(state);
        state.corrupt = [];
      }
    });
  }

  async function users(host: string): Promise<string[]> {
    const found: string[] = [];
    try {
      for await (const entry of Deno.readDir(storeDir(dataDir, host, store))) {
        if (!entry.isFile || !entry.name.endsWith(".list")) continue;
        const user = decodePathPart(entry.name.slice(0, -".list".length));
        if (user !== undefined) found.push(user);
      }
    } catch (err) {
      if (isNotFound(err)) return [];
      throw err;
    }
    return found.sort();
  }

  return { append, count, get, range, lowerBound, shift, delete: remove, users, stat };
}
