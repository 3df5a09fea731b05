/**
 * Trimming a list file: cutting a torn tail before an append, and dropping the oldest records
 * (the list store's `shift`).
 *
 * The head is dropped by collapsing the whole blocks before the new first record
 * (`fallocate(FALLOC_FL_COLLAPSE_RANGE)`) and blanking the rest of its block with newlines,
 * without rewriting what is kept; where the filesystem or platform cannot collapse, the kept
 * records are copied to a new file renamed over the old one. Either way the index is removed
 * first and rewritten shifted by the removed length.
 * @module
 */
import { join } from "node:path";
import { getLogger } from "../../log.ts";
import { syncDir } from "./datamanager.ts";
import { collapseRange } from "./fallocate.ts";
import { lastLine, LIST_BLOCK, newlines } from "./format.ts";
import { persistIndex } from "./index.ts";
import { CHUNK, readAt, removeIfExists, writeAll } from "./io.ts";
import { type FileState, refreshIdentity } from "./leases.ts";

/**
 * How a shift removed items: `collapse` (whole blocks cut out of the file in place), `copy`
 * (the kept items copied to a new file renamed over the old), `blank` (the new first item was
 * already in the first block: the bytes before it were overwritten with blank lines),
 * `truncate` (every item was dropped), `none` (nothing to drop). Readers see the same items,
 * and later appends the same layout, whichever method was used.
 */
export type ShiftMethod = "collapse" | "copy" | "blank" | "truncate" | "none";

const log = getLogger("storage", "list");

/** Cuts a torn tail (or trailing padding) so the next write follows the last good record. */
export async function truncateTail(state: FileState, file: Deno.FsFile): Promise<void> {
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

/**
 * Drops the `n` oldest records of the list file `file` (open, exclusively locked, `state` up
 * to date with it) and brings `state` and the index along. Returns the method and the file
 * now at the list's path: after a copy, the new file (still locked), which the caller closes
 * beside `file`.
 */
export async function trimHead(
  state: FileState,
  file: Deno.FsFile,
  n: number,
  ffi: "auto" | "off",
): Promise<{ readonly method: ShiftMethod; readonly file: Deno.FsFile }> {
  if (n <= 0 || state.count === 0) return { method: "none", file };
  await truncateTail(state, file);
  // No index while the list changes under it: a crash now leaves it to be rebuilt, never
  // an index that points into shifted data.
  if (await removeIfExists(state.idxPath)) await syncDir(state.dir);
  let current = file;
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
      current = tmp;
      method = "copy";
    }
  }
  try {
    if (current !== file) await syncDir(state.dir);
    return { method, file: await settle(state, n, removed, keepFrom, current) };
  } catch (err) {
    // The caller closes `file` only.
    if (current !== file) current.close();
    throw err;
  }
}

/** The state and index after `removed` bytes (records `[0, n)`) left the head of the file. */
async function settle(
  state: FileState,
  n: number,
  removed: number,
  keepFrom: number,
  current: Deno.FsFile,
): Promise<Deno.FsFile> {
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
  return current;
}
