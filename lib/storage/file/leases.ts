/**
 * The list store's per-file state cache and its leases.
 *
 * A list store instance keeps, per list file, what it knows of it ({@link FileState}: the
 * in-memory index, the file's identity when loaded) and a chain that runs its operations on
 * that file one at a time. At most {@link MAX_CACHED_FILES} states are kept for files not in
 * use; the least recently used go.
 *
 * Leases: an append keeps the list file (and its index) open and exclusively locked after it
 * is done, so that the appends that follow are one write and one `fdatasync` (the index is
 * written every few appends and when the lease ends), without opening, locking or stat-ing again: while the lock is ours nobody else can change the
 * file. The lease ends after {@link LEASE_IDLE_MS} without an operation on the file, at the
 * latest after {@link LEASE_MAX_MS} (so that another process waiting for the lock, e.g. the CLI
 * deleting an account, gets it), when more than {@link MAX_CACHED_FILES} files are cached, and
 * before a shift or a delete. Another store instance of this process that wants the file asks
 * the holder to end its lease at once. A lease ends only after what the store held back of the
 * file (write-behind, list_store.ts) is written; when that fails, the lease stays, except when
 * the store closes: then every lease ends (after what was queued on its file, as it would
 * lapse), so that no timer is left to write after the close.
 * @module
 */
import { join } from "node:path";
import { encodePathPart, storeDir } from "./datamanager.ts";
import { getLogger } from "../../log.ts";
import type { CorruptRecord } from "./format.ts";
import type { ByteSink } from "./io.ts";

/**
 * Per-file states (the in-memory index) kept for files not in use; least recently used go,
 * and their leases (two open files each) end.
 */
const MAX_CACHED_FILES = 256;
/** How far a cached state may lag behind its real recency (see `stateFor`). */
const MOVE_SLACK = MAX_CACHED_FILES / 4;
/** A lease ends after this many ms without an operation on its file. */
export const LEASE_IDLE_MS = 250;
/** A lease ends after the first batch that finds it this old (ms), so other processes get in. */
export const LEASE_MAX_MS = 2000;

/** Appends waiting for the next batch written to a file (group commit). */
export interface PendingAppend {
  /** The items' JSON texts (encoded as records when the batch is written). */
  readonly jsons: readonly string[];
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * What this process knows about one list file. Mutable on purpose: it is the cache behind
 * the shell, changed only while its `lock` chain is held.
 */
export interface FileState {
  readonly host: string;
  readonly listPath: string;
  /** The list file's path relative to the data directory (how the journal names it). */
  readonly relPath: string;
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
  // Write-behind (list_store.ts): bytes appended, made durable by the journal, and not yet
  // written to `file`; they belong at `behindAt`, the file's written size. Only while leased:
  // the lease does not end before they are written.
  behind: ByteSink | null;
  behindAt: number;
  // Where the leased file ends on disk (-1: not known), past its last record when it was
  // extended with blank lines to make room for held bytes before they are acknowledged.
  reserved: number;
  // After a lease ended while the file was busy: the size it was left at, its tail past the
  // last record blank room this store made, taken up again by the next lease (-1: none).
  room: number;
  // Set by the store just before it ends a busy file's lease: keep the room.
  keepRoom: boolean;
  // Writes them (bound to this state once, handed to the journal for its checkpoints).
  writeBehind: (() => void) | null;
  idx: Deno.FsFile | null;
  idxPos: number;
  leasedAt: number;
  lastUse: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  // The cache's count of moves when this state last moved to the recent end.
  moved: number;
}

/** A lease held by one store instance of this process, found by the list file's path. */
interface LeaseHolder {
  readonly state: object;
  /** Ends the lease once the holder's queued operations on the file are done. */
  readonly end: () => Promise<void>;
}
// Process-wide: flock excludes open files, not processes, so two instances of one process
// would otherwise wait for each other's lease to time out.
const leases = new Map<string, LeaseHolder>();

const log = getLogger("storage", "list");

/** Forgets what was loaded: the next operation looks at the file afresh. */
export function resetState(state: FileState): void {
  state.loaded = false;
  state.room = -1;
  state.ino = null;
  state.size = 0;
  state.mtime = 0;
  state.ends = new Float64Array(0);
  state.count = 0;
  state.validEnd = 0;
  state.persisted = 0;
}

/** Makes room in `state.ends` for `extra` more entries. */
export function growEnds(state: FileState, extra: number): void {
  const need = state.count + extra;
  if (need <= state.ends.length) return;
  const next = new Float64Array(Math.max(need, state.ends.length * 2, 16));
  next.set(state.ends.subarray(0, state.count));
  state.ends = next;
}

/** Closes the index file kept open under a lease, if any. */
export function closeIndex(state: FileState): void {
  state.idx?.close();
  state.idx = null;
  state.idxPos = -1;
}

/** Notes the identity of the list file (to notice later changes by others). */
export async function refreshIdentity(state: FileState, file: Deno.FsFile): Promise<void> {
  const info = await file.stat();
  state.ino = info.ino;
  state.size = info.size;
  state.mtime = info.mtime?.getTime() ?? 0;
}

/** The states of one store instance's files, with their operation chains and leases. */
export interface FileCache {
  /** The state of a user's list file, created (unloaded) when not cached. */
  stateFor(host: string, user: string): FileState;
  /** Runs `fn` alone among the operations of this process on this file. */
  serialised<R>(state: FileState, fn: () => Promise<R>): Promise<R>;
  /** Takes the lease on a file acquired for writing (locked exclusively, up to date). */
  startLease(state: FileState, file: Deno.FsFile): void;
  /**
   * Ends the lease of `state`, if any: notes the file's identity and closes it, which drops
   * the lock. Only from inside the file's operation chain, or when nothing is queued on it.
   */
  endLease(state: FileState): void;
  /** Ends the lease of another instance of this process on this file; false if none. */
  takeFromSibling(state: FileState): Promise<boolean>;
  /**
   * Waits for what is queued on every cached file (appends included), then ends every lease
   * as its lapse would, timers and all: once it resolves, nothing of this cache writes any
   * more. Its caller takes no new operation from the moment it calls this. Rejects (after
   * every file is let go) with the first lease whose end failed.
   */
  close(): Promise<void>;
}

function idle(state: FileState): boolean {
  return state.active === 0 && !state.flushing && state.pending.length === 0;
}

/**
 * The cache of the list store `store` under `dataDir`; `beforeLeaseEnd` runs as a lease ends,
 * while its files are still open.
 */
export function createFileCache(
  dataDir: string,
  store: string,
  beforeLeaseEnd: (state: FileState) => void = () => {},
): FileCache {
  // By host, then user, the names as given: no key or path is built for a cached file.
  const byHost = new Map<string, Map<string, FileState>>();
  // Every state (to its user), least recently moved first.
  const order = new Map<FileState, string>();
  let moves = 0;

  function stateFor(host: string, user: string): FileState {
    let users = byHost.get(host);
    let state = users?.get(user);
    if (state !== undefined) {
      // Moved to the end only when more than MOVE_SLACK others were since: it is then among
      // the newest MOVE_SLACK + 1, which eviction does not reach, and a busy file costs no
      // Map churn per operation.
      if (moves - state.moved > MOVE_SLACK) {
        order.delete(state);
        order.set(state, user);
        state.moved = ++moves;
      }
      return state;
    }
    const dir = storeDir(dataDir, host, store);
    const name = `${encodePathPart(user)}.list`;
    const listPath = join(dir, name);
    state = {
      host,
      listPath,
      relPath: join(storeDir("", host, store), name),
      idxPath: `${listPath.slice(0, -".list".length)}.lidx`,
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
      behind: null,
      behindAt: 0,
      reserved: -1,
      room: -1,
      keepRoom: false,
      writeBehind: null,
      idx: null,
      idxPos: -1,
      leasedAt: 0,
      lastUse: 0,
      timer: undefined,
      moved: ++moves,
    };
    if (users === undefined) byHost.set(host, users = new Map());
    users.set(user, state);
    order.set(state, user);
    if (order.size > MAX_CACHED_FILES) {
      for (const [old, oldUser] of order) {
        if (order.size <= MAX_CACHED_FILES) break;
        if (!idle(old) || !tryEndLease(old)) continue;
        order.delete(old);
        const of = byHost.get(old.host);
        of?.delete(oldUser);
        if (of?.size === 0) byHost.delete(old.host);
      }
    }
    return state;
  }

  function endLease(state: FileState): void {
    const file = state.file;
    if (file === null) return;
    // Throws (the lease stays) when what it holds cannot be written before the lock goes.
    beforeLeaseEnd(state);
    letGo(state);
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

  /** Forgets the lease of `state`: its timer, its holder, its index. The caller closes the file. */
  function letGo(state: FileState): void {
    clearTimeout(state.timer);
    state.timer = undefined;
    if (leases.get(state.listPath)?.state === state) leases.delete(state.listPath);
    closeIndex(state);
    state.file = null;
    state.pos = -1;
    state.reserved = -1;
  }

  /** {@link endLease} where nobody waits for it: a failure is logged, the lease kept. */
  function tryEndLease(state: FileState): boolean {
    try {
      endLease(state);
      return true;
    } catch (err) {
      log.error("List file {path}: lease kept, its end failed: {error}", {
        path: state.listPath,
        error: err instanceof Error ? err.message : String(err),
      });
      return false;
    }
  }

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
      if (idle(state) && quiet >= LEASE_IDLE_MS) {
        // Kept after a failure: tried again a whole idle period later.
        if (!tryEndLease(state)) armTimer(state, LEASE_IDLE_MS);
      } else armTimer(state, Math.max(1, LEASE_IDLE_MS - quiet));
    }, ms);
    // A lease never keeps the process alive: what it covers is on disk already.
    Deno.unrefTimer(timer);
    state.timer = timer;
  }

  async function takeFromSibling(state: FileState): Promise<boolean> {
    const holder = leases.get(state.listPath);
    if (holder === undefined || holder.state === state) return false;
    await holder.end();
    return true;
  }

  async function close(): Promise<void> {
    const failures = await Promise.all([...order.keys()].map(closeFile));
    const failed = failures.find((err) => err !== undefined);
    if (failed !== undefined) throw failed;
  }

  /** Ends the lease of one file once what is queued on it is done; the error if its end failed. */
  async function closeFile(state: FileState): Promise<unknown> {
    // What was asked before the close runs to its end. `lock` is the tail of the file's chain
    // while anything is queued on it, and a flush queues its next batch in the turn its last
    // one ends: so this waits without spinning, and no new work comes (the caller refuses it).
    while (!idle(state)) await state.lock;
    const file = state.file;
    if (file === null) return undefined;
    try {
      endLease(state);
      return undefined;
    } catch (err) {
      log.error("List file {path}: let go at close, its lease's end failed: {error}", {
        path: state.listPath,
        error: err instanceof Error ? err.message : String(err),
      });
      // Let go all the same: no timer may try again after the close. What it held back stays
      // in `behind`, so that the journal's checkpoint fails on it and keeps its entries for
      // the next start's replay (dropped, the checkpoint would empty the journal without them).
      letGo(state);
      state.loaded = false;
      file.close();
      return err;
    }
  }

  function serialised<R>(state: FileState, fn: () => Promise<R>): Promise<R> {
    state.active++;
    const run = state.lock.then(fn).finally(() => state.active--);
    state.lock = run.then(() => {}, () => {});
    return run;
  }

  return { stateFor, serialised, startLease, endLease, takeFromSibling, close };
}
