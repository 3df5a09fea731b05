/**
 * The file list store: an append-only list of JSON items per user, in
 * `DATA/<host>/<store>/<user>.list` (the record format: format.ts) with an index beside it in
 * `<user>.lidx` (index.ts), kept open between appends under a lease (leases.ts) and trimmed
 * from the head in place where the filesystem allows (trim.ts). This module composes them.
 *
 * Durability: an append resolves after `fdatasync`: of the list file itself, or, where the
 * process holds the data directory's journal (journal.ts: the server does), of the journal,
 * which then makes the appends to every list file of a batch durable at once. Appends to one
 * file arriving while a sync is in flight are queued and written together (group commit);
 * a shift or a delete first settles the file with the journal.
 *
 * Write-behind (`writeBehind`, the archive's choice): where the journal holds an append's
 * bytes durably, the list file need not have them at once. The store holds them (per leased
 * file, up to {@link WRITE_BEHIND_BYTES}) and writes them in one write when that fills, before
 * any read of the file, before its lease ends (so another process, or another instance of this
 * one, never sees the file short), and when a checkpoint of the journal is about to sync the
 * file (the journal calls back). A crash loses only the process's copy: replay at the next
 * start writes them from the journal, as after a power loss. So that a full disk or a file
 * size limit still refuses the append that does not fit (not a later write of what was
 * acknowledged), the file is first extended with blank lines (padding, to readers) past what
 * is held, a chunk at a time; the lease's end cuts what is left of them. Each operation
 * takes an advisory `flock` on the list file (shared to read, exclusive to write), so that two
 * processes never write one file at once, and notices changes made by another process. Small
 * writes are synchronous: to the page cache they cost less than the thread hand-off of an
 * asynchronous op; only the sync waits off-thread.
 *
 * Closing (`close`, at shutdown): the calls already made run to their end, every later one is
 * refused, and every lease ends as its lapse would end it (held bytes and the index's lag
 * written, the room cut), its timer with it: nothing under the store's directory is written
 * once it resolves. The journal, if any, is closed after the stores: its last checkpoint syncs
 * what the leases' ends wrote, and until then its entries cover those bytes.
 * @module
 */
import { getLogger } from "../../log.ts";
import type { ListStore } from "../mod.ts";
import {
  decodePathPart,
  encodePathPart,
  ensureStoreDir,
  storeDir,
  syncDir,
} from "./datamanager.ts";
import {
  appendRecords,
  type CorruptRecord,
  IndexMismatch,
  itemJson,
  parseSegment,
} from "./format.ts";
import { flushIndexLag, loadIndex, persistIndexLazily } from "./index.ts";
import { listJournalFor } from "./journal.ts";
import {
  type ByteSink,
  CHUNK,
  isNotFound,
  newSink,
  readAt,
  removeIfExists,
  writeAll,
  writeAllSync,
} from "./io.ts";
import { createFileCache, type FileState, growEnds, LEASE_MAX_MS, resetState } from "./leases.ts";
import { type ShiftMethod, trimHead, truncateTail } from "./trim.ts";

/** Options of {@link openListStore}. */
export interface ListStoreOptions {
  /**
   * `auto` (default): trim with `fallocate` through FFI when permitted on Linux and supported
   * by the filesystem, copying otherwise. `off`: always copy.
   */
  readonly ffi?: "auto" | "off";
  /**
   * Where the process holds the journal: write appended bytes to the list file later, in one
   * write of many appends (see {@link WRITE_BEHIND_BYTES}), since the journal already holds
   * them durably. Off by default: the file on disk then lags what the store returns (it
   * never lags what another process or a crash recovery sees: the lease ends, a read and
   * every checkpoint write them first).
   */
  readonly writeBehind?: boolean;
}

/**
 * Write-behind bytes a leased list file holds at most before they are written (more when one
 * batch brings more); a batch of more than this is written at once.
 */
export const WRITE_BEHIND_BYTES = 32 * 1024;

/** What {@link FileListStore.stat} reports about one user's list. */
export interface ListStat {
  /** Number of readable items. */
  readonly count: number;
  /** Size of the list file in bytes (padding and skipped lines included). */
  readonly bytes: number;
  /** Damaged lines found since the list was last loaded; also logged when found. */
  readonly corrupt: readonly CorruptRecord[];
}

/** The list store over files, with what only files have: trimming methods, sizes, damage. */
export interface FileListStore<T> extends ListStore<T> {
  /** Drops the `n` oldest items, and tells how the file was trimmed. */
  shift(host: string, user: string, n: number): Promise<{ readonly method: ShiftMethod }>;
  /** Count, size and damaged lines of the user's list (loading and checking it if needed). */
  stat(host: string, user: string): Promise<ListStat>;
}

const log = getLogger("storage", "list");

// Blank lines, the room made ahead of held bytes (never written to: only its prefixes are).
let blankLines = new Uint8Array(0);

function blanks(n: number): Uint8Array {
  if (blankLines.length < n) blankLines = new Uint8Array(n).fill(0x0a);
  return blankLines.subarray(0, n);
}

// A batch written at once is encoded here (written before anything else runs); one grown
// past a chunk is let go after its batch.
let scratch = newSink(64 * 1024);

/**
 * Writes what `state` holds back (write-behind) to its leased file, at the end of what the
 * file has. Throws when it cannot: the bytes stay held, the lease with them.
 */
function writeBehind(state: FileState): void {
  const held = state.behind;
  if (held === null || held.len === 0) return;
  const file = state.file;
  if (file === null) throw new Error(`List file ${state.listPath}: held bytes without a lease`);
  const at = state.behindAt;
  if (state.pos !== at) {
    state.pos = -1;
    state.pos = file.seekSync(at, Deno.SeekMode.Start);
  }
  state.pos = -1;
  writeAllSync(file, held.buf.subarray(0, held.len));
  state.pos = at + held.len;
  state.behindAt = at + held.len;
  held.len = 0;
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
): FileListStore<T> {
  encodePathPart(store); // fail at open time, not at first use
  const ffi = opts.ffi ?? "auto";
  const behindOn = opts.writeBehind ?? false;
  const cache = createFileCache(
    dataDir,
    store,
    (state) => {
      // The list's bytes before the index that points at them, both before the lock goes.
      writeBehind(state);
      // The room made for held bytes (blank lines) is cut, unless the file is busy: then the
      // next lease takes it up (a cut costs more than the writes it saves).
      const keep = state.keepRoom;
      state.keepRoom = false;
      state.room = -1;
      if (state.reserved > state.validEnd) {
        if (keep) state.room = state.reserved;
        else state.file?.truncateSync(state.validEnd);
      }
      state.reserved = -1;
      // An idle file keeps no buffer.
      state.behind = null;
      flushIndexLag(state);
    },
  );
  const { stateFor, serialised, startLease, endLease, takeFromSibling } = cache;
  // Set by `close`: every call from then on is refused, before it touches a file.
  let closing: Promise<void> | undefined;

  /** The answer to a call after `close`: it would write, or find files let go. */
  function refused(): Promise<never> {
    return Promise.reject(new Error(`List store ${store} under ${dataDir} is closed`));
  }

  function close(): Promise<void> {
    return closing ??= cache.close();
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
          resetState(state);
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
        if (refresh && changed) await loadIndex(state, file, info, false);
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
        // Ours alone while leased: nothing to check, but what it holds back goes first. The
        // reads move the position.
        writeBehind(state);
        state.pos = -1;
        state.lastUse = performance.now();
        try {
          return await fn(state, leased);
        } catch (err) {
          if (!(err instanceof IndexMismatch)) throw err;
          await loadIndex(state, leased, leased.statSync(), true);
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
          await loadIndex(state, file, await file.stat(), true);
          return await fn(state, file);
        }
      } finally {
        file.close();
      }
    });
  }

  async function readRecord(state: FileState, file: Deno.FsFile, i: number): Promise<T> {
    const from = i === 0 ? 0 : state.ends[i - 1];
    return parseSegment<T>(await readAt(file, from, state.ends[i] - from));
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
        out.push(parseSegment<T>(buf.subarray(a, state.ends[k] - from)));
      }
      i = j;
    }
    return out;
  }

  async function writeBatch(state: FileState, jsons: readonly string[]): Promise<void> {
    let file = state.file;
    if (file === null) {
      const acquired = await acquire(state, true, true);
      if (acquired === undefined) throw new Error("unreachable: list file not created");
      startLease(state, acquired);
      file = acquired;
    }
    let ok = false;
    try {
      // The room this store left at the end of the last lease, the file as it was then: kept.
      if (state.room > state.validEnd && state.room === state.size) {
        state.reserved = state.room;
        state.size = state.validEnd;
      }
      state.room = -1;
      // A tail cut (after a reload) takes any room made for held bytes with it.
      if (state.size !== state.validEnd) state.reserved = -1;
      await truncateTail(state, file);
      const start = state.validEnd;
      const journal = listJournalFor(dataDir);
      let chars = 0;
      for (const j of jsons) chars += j.length;
      // UTF-8 has at least a byte per UTF-16 unit: more than this many units is a big batch.
      const behind = behindOn && journal !== undefined && chars <= WRITE_BEHIND_BYTES;
      let sink: ByteSink;
      if (behind) {
        sink = state.behind ??= newSink(4096);
        if (sink.len > 0 && sink.len + chars > WRITE_BEHIND_BYTES) writeBehind(state);
        if (sink.len === 0) state.behindAt = start;
        else if (state.behindAt + sink.len !== start) {
          // Held bytes end where the list does, or they would land in the wrong place.
          throw new Error(`List file ${state.listPath}: held bytes do not end at ${start}`);
        }
      } else {
        // Written now, after what is held back (never before: the file has no gaps).
        writeBehind(state);
        scratch.len = 0;
        sink = scratch;
      }
      const from = sink.len;
      const newEnds = appendRecords(sink, jsons, start);
      const data = sink.buf.subarray(from, sink.len);
      try {
        if (behind && journal !== undefined) {
          // No room on disk for them (a full disk, a file size limit): everything held is
          // written now, this batch too, which then fails as a write would.
          if (!makeRoom(state, file, start, start + data.length)) writeBehind(state);
          // The journal copies the bytes before this returns: the sink may move on.
          state.writeBehind ??= () => writeBehind(state);
          await journal.commit(state.relPath, state.ino ?? 0, start, data, state.writeBehind);
        } else {
          if (state.pos !== start) {
            state.pos = -1;
            state.pos = file.seekSync(start, Deno.SeekMode.Start);
          }
          state.pos = -1;
          // Megabytes at once (an import) would hold up the event loop: those go off-thread,
          // out of a buffer of their own (the shared one serves others meanwhile).
          const bytes = data.length > CHUNK ? data.slice() : data;
          if (scratch.buf.length > CHUNK) scratch = newSink(64 * 1024);
          if (bytes !== data) await writeAll(file, bytes);
          else writeAllSync(file, bytes);
          state.pos = start + bytes.length;
          if (journal === undefined) await file.syncData();
          else await journal.commit(state.relPath, state.ino ?? 0, start, bytes);
        }
      } catch (err) {
        // ENOSPC/EFBIG/EIO: leave no partial record behind, so later appends follow good data.
        state.loaded = false;
        const held = state.behind;
        // Not written yet (the bytes held back before it are): it is simply dropped.
        if (behind && held !== null && state.behindAt <= start) {
          held.len = start - state.behindAt;
        }
        state.reserved = -1;
        try {
          writeBehind(state);
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
      const off = newEnds[newEnds.length - 1];
      growEnds(state, newEnds.length);
      for (const e of newEnds) state.ends[state.count++] = e;
      state.validEnd = off;
      // Ours while leased: the size is what we wrote (the mtime is read when the lease ends).
      state.size = off;
      await persistIndexLazily(state);
      ok = true;
    } finally {
      const now = performance.now();
      state.lastUse = now;
      // After a failure the next batch starts from a fresh look at the file.
      if (!ok || now - state.leasedAt >= LEASE_MAX_MS) {
        state.keepRoom = ok;
        try {
          endLease(state);
        } catch (err) {
          // Held bytes that cannot be written keep the lease (the journal has them); the
          // append itself is answered by how it went.
          log.error("List file {path}: lease kept, its end failed: {error}", {
            path: state.listPath,
            error: err instanceof Error ? err.message : String(err),
          });
        }
      }
    }
  }

  /**
   * Makes sure the leased file has room on disk for held bytes from `start` to `end`: a full
   * disk or a file size limit then refuses the append now, as a write would, not when the
   * held bytes are written later. The room is blank lines, which readers skip, ahead of what
   * is held, {@link WRITE_BEHIND_BYTES} more at a time. False when it cannot be made.
   */
  function makeRoom(state: FileState, file: Deno.FsFile, start: number, end: number): boolean {
    // Unknown: the file ends at `start` (its last record; a lease starts without held bytes).
    if (state.reserved < start) state.reserved = start;
    if (end <= state.reserved) return true;
    const to = end + WRITE_BEHIND_BYTES;
    try {
      // The held bytes, if any, belong below `reserved`: this only extends the file.
      state.pos = -1;
      state.pos = file.seekSync(state.reserved, Deno.SeekMode.Start);
      state.pos = -1;
      writeAllSync(file, blanks(to - state.reserved));
      state.pos = to;
      state.reserved = to;
      return true;
    } catch {
      // Some of it may be there: blank lines, overwritten or cut like any padding.
      state.reserved = -1;
      return false;
    }
  }

  async function flush(state: FileState): Promise<void> {
    state.flushing = true;
    try {
      while (state.pending.length > 0) {
        // Everything that queued up while the previous batch was syncing goes in one write.
        const batch = state.pending.splice(0);
        const jsons = batch.length === 1 ? batch[0].jsons : batch.flatMap((b) => b.jsons);
        try {
          await serialised(state, () => writeBatch(state, jsons));
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
    if (closing !== undefined) return refused();
    let jsons: string[];
    try {
      jsons = items.map(itemJson);
    } catch (err) {
      return Promise.reject(err);
    }
    if (jsons.length === 0) return Promise.resolve();
    const state = stateFor(host, user);
    return new Promise<void>((resolve, reject) => {
      state.pending.push({ jsons, resolve, reject });
      if (!state.flushing) void flush(state);
    });
  }

  function count(host: string, user: string): Promise<number> {
    if (closing !== undefined) return refused();
    return withRead(host, user, 0, (state) => Promise.resolve(state.count));
  }

  function get(host: string, user: string, index: number): Promise<T | undefined> {
    if (closing !== undefined) return refused();
    const bad = badIndex(index);
    if (bad) return bad;
    return withRead<T | undefined>(host, user, undefined, async (state, file) => {
      if (index < 0 || index >= state.count) return undefined;
      return await readRecord(state, file, index);
    });
  }

  function range(host: string, user: string, start: number, end: number): Promise<T[]> {
    if (closing !== undefined) return refused();
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
    if (closing !== undefined) return refused();
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
    if (closing !== undefined) return refused();
    const none: ListStat = { count: 0, bytes: 0, corrupt: [] };
    return withRead(
      host,
      user,
      none,
      (state) =>
        Promise.resolve({ count: state.count, bytes: state.size, corrupt: [...state.corrupt] }),
    );
  }

  function shift(host: string, user: string, n: number): Promise<{ readonly method: ShiftMethod }> {
    if (closing !== undefined) return refused();
    const bad = badIndex(n);
    if (bad) return bad;
    const state = stateFor(host, user);
    return serialised(state, async () => {
      // Rare: the lease ends rather than following the file through a copy and a new index.
      endLease(state);
      const file = await acquire(state, true, false);
      if (file === undefined) return { method: "none" as const };
      try {
        await listJournalFor(dataDir)?.settle(state.relPath, file);
        const trimmed = await trimHead(state, file, n, ffi);
        // After a copy, the new file (still locked) replaced the old one.
        if (trimmed.file !== file) trimmed.file.close();
        return { method: trimmed.method };
      } catch (err) {
        state.loaded = false;
        throw err;
      } finally {
        file.close();
      }
    });
  }

  function remove(host: string, user: string): Promise<void> {
    if (closing !== undefined) return refused();
    const state = stateFor(host, user);
    return serialised(state, async () => {
      endLease(state);
      const file = await acquire(state, true, false, false);
      if (file === undefined) return;
      try {
        await listJournalFor(dataDir)?.settle(state.relPath);
        // Index first: a crash in between leaves a list whose index is simply rebuilt.
        await removeIfExists(state.idxPath);
        await removeIfExists(state.listPath);
        await syncDir(state.dir);
      } finally {
        file.close();
        resetState(state);
        state.corrupt = [];
      }
    });
  }

  async function users(host: string): Promise<string[]> {
    if (closing !== undefined) return await refused();
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

  return { append, count, get, range, lowerBound, shift, delete: remove, users, stat, close };
}
