/**
 * The list store's journal: one `fdatasync` for the appends of many list files.
 *
 * Without it, every list file an append touches pays its own `fdatasync` (about 80 µs of CPU
 * on ext4, mostly the kernel's journal commit), and a message is archived twice (sender and
 * recipient). With it, an append writes its bytes to the list file as before (page cache
 * only) and the same bytes, with where they went, to this journal; one write and one
 * `fdatasync` of the journal then make every append of that batch durable, whatever the
 * number of files. A checkpoint (every {@link CHECKPOINT_MS}, or after
 * {@link CHECKPOINT_BYTES}) syncs the list files written since the last one and empties the
 * journal; at start, {@link openListJournal} first writes back into the list files what the
 * journal holds and they lack (after a power loss: the page cache is gone, the journal is not;
 * after a crash of a list store that held appends back, write-behind: they never got there).
 * A list store that holds bytes back hands {@link ListJournal.commit} a callback that writes
 * them; a checkpoint calls it before it syncs the list files.
 *
 * The entries waiting for a batch are encoded one after the other into one reused buffer as
 * they are committed: a batch is one write, with no buffer per entry.
 *
 * Two journal files take turns: while the list files of one are synced at a checkpoint, new
 * appends go to the other, so a checkpoint never holds up an append. Entries carry a sequence
 * number so that replay follows the order they were written in across both files.
 *
 * Entry (little-endian): u32 length of what follows the crc, u32 crc32 of it, then u8 kind
 * (1: bytes written at `start` of the list file; 2: a barrier: the list file is about to be
 * shifted or deleted, entries before it are not to be replayed), f64 sequence, f64 inode of
 * the list file (0: unknown), f64 start, u16 path length, the path (UTF-8, relative to the
 * data directory), then the bytes. A torn or damaged entry ends the file's replay: nothing
 * after it was acknowledged, since the write and its sync are the acknowledgement.
 *
 * One process owns a data directory's journal (an exclusive `flock`); a process that cannot
 * get it (the CLI while the server runs) syncs each list file itself, as the store always did.
 * @module
 */
import { crc32 } from "node:zlib";
import { join, resolve } from "node:path";
import { getLogger } from "../../log.ts";
import { type ByteSink, concat, isNotFound, newSink, readAt, reserve, writeAllSync } from "./io.ts";

/** A checkpoint at the latest this long (ms) after the first entry of a journal file. */
export const CHECKPOINT_MS = 2000;
/** A checkpoint once a journal file holds this many bytes. */
export const CHECKPOINT_BYTES = 8 * 1024 * 1024;
/** List files synced at once during a checkpoint. */
const SYNC_PARALLEL = 8;
/** A batch buffer grown past this is let go after its batch (a burst does not keep it). */
const BATCH_BUFFER_KEPT = 1024 * 1024;

const KIND_DATA = 1;
const KIND_BARRIER = 2;
/** u32 length + u32 crc. */
const FRAME = 8;
/** u8 kind, f64 seq, f64 ino, f64 start, u16 path length. */
const FIXED = 1 + 8 + 8 + 8 + 2;

const log = getLogger("storage", "journal");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The journal of one data directory, shared by every list store of the process on it. */
export interface ListJournal {
  /**
   * Makes `bytes`, just written (not synced) at `start` of the list file `path` (relative to
   * the data directory; `ino` its inode, 0 if unknown), durable through the journal. Rejects
   * when the journal could not be written: the caller undoes its write. `bytes` is copied
   * before this returns.
   *
   * `writeBehind`: the caller has not written `bytes` to the list file yet (write-behind,
   * list_store.ts); the checkpoint that syncs the file calls it first, and it writes whatever
   * the caller still holds for the file (it throws when it cannot: the checkpoint fails and
   * keeps the entries).
   */
  commit(
    path: string,
    ino: number,
    start: number,
    bytes: Uint8Array,
    writeBehind?: () => void,
  ): Promise<void>;
  /**
   * Before the list file at `path` (relative to the data directory) changes other than by an append (a shift, a delete): syncs
   * it (when `file` is given) if the journal covers some of it, and records that earlier
   * entries of it are not to be replayed.
   */
  settle(path: string, file?: Deno.FsFile): Promise<void>;
  /** Syncs every list file written since the last checkpoint and empties the journal. */
  checkpoint(): Promise<void>;
  /** A last checkpoint, then lets go of the journal files and their lock. */
  close(): Promise<void>;
}

/** Options of {@link openListJournal}. */
export interface ListJournalOptions {
  /** Checkpoint at the latest this long (ms) after an entry; {@link CHECKPOINT_MS}. */
  readonly checkpointMs?: number;
}

/** One journal file and the list files its entries went to. */
interface Side {
  readonly file: Deno.FsFile;
  readonly path: string;
  size: number;
  /** List files (relative paths) with entries here, not yet synced. */
  readonly dirty: Set<string>;
  /** What writes bytes of those entries that their list stores still hold. */
  readonly behind: Set<() => void>;
}

interface Waiting {
  readonly path: string;
  readonly writeBehind: (() => void) | undefined;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

// By resolved data directory: every list store of this process finds the same journal. Two
// servers of one process on one directory (tests) share it; the last close closes it.
const journals = new Map<string, ListJournal>();
const refs = new Map<string, number>();
// Data directories as list stores name them, resolved (a few: the configured one, in tests
// one per test).
const resolved = new Map<string, string>();
const RESOLVED_MAX = 256;

/** The journal the server opened on `dataDir`, if any. */
export function listJournalFor(dataDir: string): ListJournal | undefined {
  if (journals.size === 0) return undefined;
  let root = resolved.get(dataDir);
  if (root === undefined) {
    root = resolve(dataDir);
    if (resolved.size >= RESOLVED_MAX) resolved.clear();
    resolved.set(dataDir, root);
  }
  return journals.get(root);
}

/** One entry as the journal file holds it (see the module's documentation). */
export function encodeEntry(
  kind: JournalEntry["kind"],
  seq: number,
  ino: number,
  start: number,
  path: string,
  bytes: Uint8Array,
): Uint8Array {
  const sink = newSink(FRAME + FIXED + path.length * 3 + bytes.length);
  appendEntry(sink, kind, seq, ino, start, path, bytes);
  return sink.buf.slice(0, sink.len);
}

/** {@link encodeEntry} into `sink`, after what it holds: a batch is one buffer. */
function appendEntry(
  sink: ByteSink,
  kind: JournalEntry["kind"],
  seq: number,
  ino: number,
  start: number,
  path: string,
  bytes: Uint8Array,
): void {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  reserve(sink, FRAME + FIXED + path.length * 3 + bytes.length);
  const at = sink.len;
  const buf = sink.buf;
  const pathLength = encoder.encodeInto(path, buf.subarray(at + FRAME + FIXED)).written;
  const bodyLength = FIXED + pathLength + bytes.length;
  buf.set(bytes, at + FRAME + FIXED + pathLength);
  const view = new DataView(buf.buffer, buf.byteOffset + at, FRAME + FIXED);
  view.setUint32(0, bodyLength, true);
  view.setUint8(FRAME, kind === "data" ? KIND_DATA : KIND_BARRIER);
  view.setFloat64(FRAME + 1, seq, true);
  view.setFloat64(FRAME + 9, ino, true);
  view.setFloat64(FRAME + 17, start, true);
  view.setUint16(FRAME + 25, pathLength, true);
  view.setUint32(4, crc32(buf.subarray(at + FRAME, at + FRAME + bodyLength)), true);
  sink.len = at + FRAME + bodyLength;
}

/** A decoded journal entry. */
export interface JournalEntry {
  readonly kind: "data" | "barrier";
  readonly seq: number;
  readonly ino: number;
  readonly start: number;
  readonly path: string;
  readonly bytes: Uint8Array;
}

/** The good entries at the head of a journal file's bytes (a damaged one ends them). */
export function decodeEntries(buf: Uint8Array): JournalEntry[] {
  const out: JournalEntry[] = [];
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let at = 0;
  while (at + FRAME + FIXED <= buf.length) {
    const len = view.getUint32(at, true);
    if (len < FIXED || at + FRAME + len > buf.length) break;
    const body = buf.subarray(at + FRAME, at + FRAME + len);
    if (crc32(body) !== view.getUint32(at + 4, true)) break;
    const kind = body[0];
    const pathLength = view.getUint16(at + FRAME + 25, true);
    if ((kind !== KIND_DATA && kind !== KIND_BARRIER) || FIXED + pathLength > len) break;
    out.push({
      kind: kind === KIND_DATA ? "data" : "barrier",
      seq: view.getFloat64(at + FRAME + 1, true),
      ino: view.getFloat64(at + FRAME + 9, true),
      start: view.getFloat64(at + FRAME + 17, true),
      path: decoder.decode(body.subarray(FIXED, FIXED + pathLength)),
      bytes: body.subarray(FIXED + pathLength),
    });
    at += FRAME + len;
  }
  return out;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * Whether `there` is what a lost tail leaves of `wanted`: a prefix of it (the part that
 * reached the disk), then zeros (size updated, data not) or blank lines (room a list store
 * made for bytes it held back, list_store.ts) up to its end.
 */
function lostTailOf(there: Uint8Array, wanted: Uint8Array): boolean {
  let i = 0;
  while (i < there.length && there[i] === wanted[i]) i++;
  for (; i < there.length; i++) if (there[i] !== 0 && there[i] !== 0x0a) return false;
  return true;
}

/**
 * Writes one entry back into its list file if the file lacks it. Returns whether the file
 * was written. A file that is gone, or is another file now (inode), or holds other bytes
 * there, is left alone: it was deleted or rewritten after the entry, by someone who synced.
 */
async function replayEntry(dataDir: string, e: JournalEntry): Promise<boolean> {
  const path = join(dataDir, e.path);
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true, write: true });
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
  try {
    const info = await file.stat();
    if (e.ino !== 0 && info.ino !== null && info.ino !== e.ino) return false;
    const end = e.start + e.bytes.length;
    const have = Math.min(info.size, end) - e.start;
    if (have > 0) {
      const there = await readAt(file, e.start, have);
      if (have === e.bytes.length && sameBytes(there, e.bytes)) return false;
      if (!lostTailOf(there, e.bytes)) {
        log.warn("Journal entry for {path} at {start} does not match the file: left out", {
          path,
          start: e.start,
        });
        return false;
      }
    }
    // Never a gap of zeros in a list file: blank lines read as padding.
    const gap = Math.max(0, e.start - info.size);
    if (gap > 0) {
      log.warn("List file {path} ends {gap} bytes before a journal entry: filled", { path, gap });
    }
    await file.seek(e.start - gap, Deno.SeekMode.Start);
    writeAllSync(file, gap > 0 ? concat([new Uint8Array(gap).fill(0x0a), e.bytes]) : e.bytes);
    return true;
  } finally {
    file.close();
  }
}

/** Writes back what the journal files hold; returns the list files written. */
async function replay(dataDir: string, files: readonly Deno.FsFile[]): Promise<number> {
  const entries: JournalEntry[] = [];
  for (const f of files) {
    const size = (await f.stat()).size;
    if (size > 0) entries.push(...decodeEntries(await readAt(f, 0, size)));
  }
  if (entries.length === 0) return 0;
  entries.sort((a, b) => a.seq - b.seq);
  const barrier = new Map<string, number>();
  for (const e of entries) if (e.kind === "barrier") barrier.set(e.path, e.seq);
  const written = new Set<string>();
  for (const e of entries) {
    if (e.kind !== "data" || e.seq < (barrier.get(e.path) ?? -1)) continue;
    if (await replayEntry(dataDir, e)) written.add(e.path);
  }
  for (const p of written) await syncPath(join(dataDir, p));
  return written.size;
}

/** `fdatasync` of the file at `path`; nothing when it is gone. */
async function syncPath(path: string): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (err) {
    if (isNotFound(err)) return;
    throw err;
  }
  try {
    await file.syncData();
  } finally {
    file.close();
  }
}

async function emptied(file: Deno.FsFile): Promise<void> {
  await file.truncate(0);
  // Truncating leaves the position where it was: the next entry would follow a hole of
  // zeros, where replay stops (a zero length), and be lost with all after it.
  await file.seek(0, Deno.SeekMode.Start);
  await file.syncData();
}

/**
 * Opens (creating them) and locks the journal of `dataDir`, writes back into the list files
 * what it holds and they lack, and makes it the journal of every list store of this process
 * on `dataDir`. `undefined` when another process holds it: list stores then sync each file.
 */
export async function openListJournal(
  dataDir: string,
  opts: ListJournalOptions = {},
): Promise<ListJournal | undefined> {
  const root = resolve(dataDir);
  const existing = journals.get(root);
  if (existing !== undefined) {
    refs.set(root, (refs.get(root) ?? 1) + 1);
    return existing;
  }
  await Deno.mkdir(root, { recursive: true });
  const paths = [join(root, ".list-journal-0"), join(root, ".list-journal-1")];
  const files: Deno.FsFile[] = [];
  try {
    for (const p of paths) {
      files.push(await Deno.open(p, { read: true, write: true, create: true, mode: 0o600 }));
    }
    // The first file's lock stands for both.
    if (!files[0].tryLockSync(true)) {
      for (const f of files) f.close();
      // Held by this process (opened meanwhile by another caller): shared; else by another.
      const raced = journals.get(root);
      if (raced !== undefined) refs.set(root, (refs.get(root) ?? 1) + 1);
      return raced;
    }
    const n = await replay(root, files);
    if (n > 0) log.info("Journal: {n} list files completed after an unclean stop", { n });
    for (const f of files) await emptied(f);
  } catch (err) {
    for (const f of files) f.close();
    throw err;
  }
  const journal = makeJournal(
    root,
    opts.checkpointMs ?? CHECKPOINT_MS,
    files.map((file, i) => ({
      file,
      path: paths[i],
      size: 0,
      dirty: new Set<string>(),
      behind: new Set<() => void>(),
    })),
  );
  journals.set(root, journal);
  refs.set(root, 1);
  return journal;
}

function makeJournal(root: string, checkpointMs: number, sides: readonly Side[]): ListJournal {
  let active = 0;
  let seq = 0;
  let waiting: Waiting[] = [];
  // The entries of `waiting`, encoded one after the other: the next batch's write. Reused
  // from one batch to the next (written synchronously, it is free again before the sync).
  let entries = newSink(64 * 1024);
  // Cleared by the flush itself in the turn its loop finds nothing waiting: an entry queued by
  // a continuation of its last batch then starts a new flush (a flag cleared a turn later
  // would leave that entry waiting for ever).
  let flushing = false;
  let flushed: Promise<void> = Promise.resolve();
  // A batch is written and its sync not done: the sides must not switch under it.
  let inBatch = false;
  // The list files of the retired side being synced, then that side emptied.
  let retiring: Promise<void> | undefined;
  // Asked-for switches, done at the first moment no batch is in flight and no side retiring.
  let wanted: { resolve(): void; reject(err: unknown): void; promise: Promise<void> } | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  function arm(): void {
    if (timer !== undefined || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      void requestRotate().catch(logFail);
    }, checkpointMs);
    Deno.unrefTimer(timer);
  }

  function logFail(err: unknown): void {
    log.error("Journal checkpoint failed: {error}", { error: String(err) });
  }

  /**
   * Syncs the list files of `side`, then empties it. On failure it keeps its entries (and
   * its dirty list files), to be retired again later.
   */
  async function retire(side: Side): Promise<void> {
    // Bytes not yet in their list files go there first, or the sync would miss them.
    for (const write of side.behind) write();
    const paths = [...side.dirty];
    for (let i = 0; i < paths.length; i += SYNC_PARALLEL) {
      await Promise.all(paths.slice(i, i + SYNC_PARALLEL).map((p) => syncPath(join(root, p))));
    }
    await emptied(side.file);
    side.size = 0;
    side.dirty.clear();
    side.behind.clear();
  }

  /** Resolves once the side active now has been synced and emptied. */
  function requestRotate(): Promise<void> {
    if (wanted === undefined) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      wanted = { resolve, reject, promise };
    }
    const p = wanted.promise;
    tryRotate();
    return p;
  }

  /** Switches sides if one was asked for and nothing is in the way; synchronous. */
  function tryRotate(): void {
    if (wanted === undefined || inBatch || retiring !== undefined) return;
    const w = wanted;
    wanted = undefined;
    const side = sides[active];
    if (side.size === 0) {
      w.resolve();
      return;
    }
    active = 1 - active;
    const done = retire(side);
    retiring = done;
    done.then(w.resolve, w.reject).finally(() => {
      retiring = undefined;
      tryRotate();
    });
  }

  async function flush(): Promise<void> {
    try {
      while (waiting.length > 0) await writeBatch();
    } finally {
      // In the turn the loop finds nothing waiting (no await in between): whatever is queued
      // from here starts a new flush.
      flushing = false;
    }
    tryRotate();
  }

  /** Writes and syncs what waits, as one batch, and answers its commits. */
  async function writeBatch(): Promise<void> {
    tryRotate();
    const batch = waiting;
    waiting = [];
    const side = sides[active];
    const data = entries.buf.subarray(0, entries.len);
    // Free again once written: a batch that grew it much does not keep it.
    entries = entries.buf.length > BATCH_BUFFER_KEPT ? newSink(64 * 1024) : entries;
    entries.len = 0;
    const before = side.size;
    inBatch = true;
    try {
      writeAllSync(side.file, data);
      side.size += data.length;
      for (const w of batch) {
        side.dirty.add(w.path);
        if (w.writeBehind !== undefined) side.behind.add(w.writeBehind);
      }
      await side.file.syncData();
    } catch (err) {
      // No torn entry may stay: replay stops at the first, and would miss what follows.
      try {
        await side.file.truncate(before);
        await side.file.seek(before, Deno.SeekMode.Start);
        side.size = before;
      } catch {
        // Whole or cut, the entry is at worst written back or where replay stops; neither
        // loses an acknowledged append, since this batch's appends fail.
      }
      for (const w of batch) w.reject(err);
      return;
    } finally {
      inBatch = false;
    }
    for (const w of batch) w.resolve();
    if (side.size >= CHECKPOINT_BYTES) void requestRotate().catch(logFail);
    else arm();
  }

  function enqueue(
    kind: JournalEntry["kind"],
    ino: number,
    start: number,
    path: string,
    bytes: Uint8Array,
    writeBehind: (() => void) | undefined,
  ): Promise<void> {
    if (closed) return Promise.reject(new Error("The list journal is closed"));
    try {
      appendEntry(entries, kind, seq++, ino, start, path, bytes);
    } catch (err) {
      return Promise.reject(err);
    }
    return new Promise<void>((resolve, reject) => {
      waiting.push({ path, writeBehind, resolve, reject });
      if (!flushing) {
        flushing = true;
        flushed = flush();
      }
    });
  }

  function commit(
    path: string,
    ino: number,
    start: number,
    bytes: Uint8Array,
    writeBehind?: () => void,
  ): Promise<void> {
    return enqueue("data", ino, start, path, bytes, writeBehind);
  }

  async function settle(path: string, file?: Deno.FsFile): Promise<void> {
    if (file !== undefined) await file.syncData();
    await enqueue("barrier", 0, 0, path, new Uint8Array(0), undefined);
  }

  async function checkpoint(): Promise<void> {
    clearTimeout(timer);
    timer = undefined;
    // The second switch retires what went to the other side while the first was retired.
    await requestRotate();
    await requestRotate();
  }

  async function close(): Promise<void> {
    if (closed) return;
    const left = (refs.get(root) ?? 1) - 1;
    if (left > 0 && journals.get(root)?.close === close) {
      refs.set(root, left);
      return;
    }
    refs.delete(root);
    closed = true;
    try {
      while (flushing || retiring !== undefined) {
        await flushed;
        await retiring?.catch(() => {});
      }
      for (const side of sides) if (side.size > 0) await retire(side);
    } finally {
      clearTimeout(timer);
      if (journals.get(root)?.close === close) journals.delete(root);
      for (const side of sides) side.file.close();
    }
  }

  return { commit, settle, checkpoint, close };
}
