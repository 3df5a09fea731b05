/**
 * The list file's index, `<user>.lidx`: a 16-byte header (`XMPPLIDX`, then the format version
 * and a reserved word, both uint32 little-endian), then per record its end offset in the list
 * file (just past its newline) as a uint64 little-endian. The index is written after the data
 * is synced and never synced itself: it may lag, and is extended or rebuilt from the list file
 * whenever it is missing, of another version, not strictly increasing, longer than the list,
 * or does not end on a good record. Record `i` is the last line of the byte range
 * `[end[i-1], end[i])`, so padding and skipped damaged lines in between cost nothing.
 * @module
 */
import { getLogger } from "../../log.ts";
import { writeFileAtomic } from "./datamanager.ts";
import { type CorruptRecord, endsWithRecord, scan } from "./format.ts";
import { isNotFound, readAt, writeAll, writeAllSync } from "./io.ts";
import { closeIndex, type FileState } from "./leases.ts";

/** Bytes before the first entry of an index file. */
export const INDEX_HEADER_SIZE = 16;
/** The first 8 bytes of an index file. */
export const INDEX_MAGIC = "XMPPLIDX";
/** The index format this module writes; an index of any other version is rebuilt. */
export const INDEX_VERSION = 1;

const log = getLogger("storage", "list");
const encoder = new TextEncoder();
const decoder = new TextDecoder();

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
  return endsWithRecord(await readAt(file, from, ends[i] - from));
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

/**
 * Reads the list's index into `state`, checks it, extends or rebuilds it (`rebuild`: without
 * reading it) from the list file.
 */
export async function loadIndex(
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
  // A fresh look: whatever follows the last record is not room this process left there.
  state.room = -1;
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

/**
 * Writes index entries not yet in the index file (all of it, atomically, when `persisted` is
 * -1); the index may lag, so errors only log.
 */
export async function persistIndex(state: FileState): Promise<void> {
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

/**
 * Index entries a leased list file may have beyond its index file: the index is written every
 * this many appends, and when the lease ends, instead of after every append (a crash leaves it
 * short, and loading it scans that much of the list's tail).
 */
export const INDEX_LAG = 64;

/**
 * {@link persistIndex} while leased, unless fewer than {@link INDEX_LAG} entries wait; the
 * lease's end writes the rest ({@link flushIndexLag}).
 */
export async function persistIndexLazily(state: FileState): Promise<void> {
  if (state.persisted >= 0 && state.file !== null && state.count - state.persisted < INDEX_LAG) {
    return;
  }
  await persistIndex(state);
}

/** Writes what the index of a leased file lacks, as its lease ends. */
export function flushIndexLag(state: FileState): void {
  if (state.persisted >= 0 && state.persisted < state.count) persistIndexLeased(state);
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
