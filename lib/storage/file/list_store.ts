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
 * a shift or a delete first settles the file with the journal. Each operation
 * takes an advisory `flock` on the list file (shared to read, exclusive to write), so that two
 * processes never write one file at once, and notices changes made by another process. Small
 * writes are synchronous: to the page cache they cost less than the thread hand-off of an
 * asynchronous op; only the sync waits off-thread.
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
  type CorruptRecord,
  encodeRecord,
  IndexMismatch,
  newlines,
  paddingBefore,
  parseSegment,
} from "./format.ts";
import { flushIndexLag, loadIndex, persistIndexLazily } from "./index.ts";
import { listJournalFor } from "./journal.ts";
import { CHUNK, concat, isNotFound, readAt, removeIfExists, writeAll, writeAllSync } from "./io.ts";
import { createFileCache, type FileState, growEnds, LEASE_MAX_MS, resetState } from "./leases.ts";
import { type ShiftMethod, trimHead, truncateTail } from "./trim.ts";

/** Options of {@link openListStore}. */
export interface ListStoreOptions {
  /**
   * `auto` (default): trim with `fallocate` through FFI when permitted on Linux and supported
   * by the filesystem, copying otherwise. `off`: always copy.
   */
  readonly ffi?: "auto" | "off";
}

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
  const { stateFor, serialised, startLease, endLease, takeFromSibling } = createFileCache(
    dataDir,
    store,
    flushIndexLag,
  );

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
        // Ours alone while leased: nothing to check. The reads move the position.
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
      await truncateTail(state, file);
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
        const journal = listJournalFor(dataDir);
        if (journal === undefined) await file.syncData();
        else await journal.commit(state.relPath, state.ino ?? 0, start, data);
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
      await persistIndexLazily(state);
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

  function shift(host: string, user: string, n: number): Promise<{ readonly method: ShiftMethod }> {
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
