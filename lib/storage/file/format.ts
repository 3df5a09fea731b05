/**
 * The list file's record format.
 *
 * One record per line, `<crc32 of the JSON, 8 lower-case hex digits> <JSON>\n` (JSON escaping
 * guarantees no raw newline inside). Before a record that would cross a 4096-byte boundary,
 * and is at most 4096 bytes, the file is padded with `\n` up to the boundary; a larger record
 * starts on a boundary. Readers skip blank lines, so whole blocks can be cut from the head of
 * the file (`fallocate(FALLOC_FL_COLLAPSE_RANGE)`) and a partial block blanked, without
 * rewriting what is kept.
 * @module
 */
import { crc32 } from "node:zlib";
import { type ByteSink, CHUNK, concat, readAt, reserve } from "./io.ts";

/** Alignment unit of the list file: records smaller than this never cross a multiple of it. */
export const LIST_BLOCK = 4096;

/** A line of a list file that could not be read back as a record, and was skipped. */
export interface CorruptRecord {
  /** Byte offset of the line in the list file when it was found. */
  readonly offset: number;
  /** Its length in bytes (without a newline). */
  readonly length: number;
  /**
   * `checksum`: a complete line whose checksum does not match, followed by good records.
   * `torn`: trailing bytes after the last good record (an append cut short by a crash); they
   * are truncated away before the next append.
   */
  readonly kind: "checksum" | "torn";
}

/** Raised inside a read when a record no longer matches its checksum: the index is rebuilt. */
export class IndexMismatch extends Error {
  constructor() {
    super("A list record does not match its index entry or checksum");
    this.name = "IndexMismatch";
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const NL = 0x0a;
const SPACE = 0x20;
const HEX = encoder.encode("0123456789abcdef");
// A record is encoded here first (its length decides the padding before it), then copied to
// its place; a huge one gets a buffer of its own.
let scratch = new Uint8Array(64 * 1024);

/** The JSON text of a list item; throws a TypeError for what JSON cannot hold. */
export function itemJson(item: unknown): string {
  const json = JSON.stringify(item);
  if (json === undefined) throw new TypeError("List store items must be JSON-serialisable");
  return json;
}

/** `<crc> <json>\n` for one JSON text, in a buffer that is reused by the next call. */
function recordBytes(json: string): Uint8Array {
  // UTF-8 takes at most 3 bytes per UTF-16 unit.
  const need = json.length * 3 + 10;
  if (scratch.length < need && need <= CHUNK) scratch = new Uint8Array(need);
  const buf = scratch.length < need ? new Uint8Array(need) : scratch;
  const { written } = encoder.encodeInto(json, buf.subarray(9));
  let sum = crc32(buf.subarray(9, 9 + written));
  for (let i = 7; i >= 0; i--) {
    buf[i] = HEX[sum & 0xf];
    sum >>>= 4;
  }
  buf[8] = SPACE;
  buf[written + 9] = NL;
  return buf.subarray(0, written + 10);
}

/** `<crc> <json>\n` for one item. */
export function encodeRecord(item: unknown): Uint8Array {
  return recordBytes(itemJson(item)).slice();
}

/**
 * Appends to `sink` the records of `jsons` as they go into a list file from `offset` on, with
 * the padding each needs before it; returns the file offset each record ends at.
 */
export function appendRecords(sink: ByteSink, jsons: readonly string[], offset: number): number[] {
  const ends: number[] = [];
  let off = offset;
  for (const json of jsons) {
    const rec = recordBytes(json);
    const pad = paddingBefore(off, rec.length);
    reserve(sink, pad + rec.length);
    if (pad > 0) sink.buf.fill(NL, sink.len, sink.len + pad);
    sink.buf.set(rec, sink.len + pad);
    sink.len += pad + rec.length;
    off += pad + rec.length;
    ends.push(off);
  }
  return ends;
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
export function paddingBefore(offset: number, len: number): number {
  const inBlock = offset % LIST_BLOCK;
  if (inBlock === 0) return 0;
  if (len > LIST_BLOCK || inBlock + len > LIST_BLOCK) return LIST_BLOCK - inBlock;
  return 0;
}

/** `n` blank lines: padding, and what blanks the head of a trimmed file. */
export function newlines(n: number): Uint8Array {
  return new Uint8Array(n).fill(NL);
}

/** The last line of a segment that ends with a newline, without that newline. */
export function lastLine(
  segment: Uint8Array,
): { readonly start: number; readonly line: Uint8Array } {
  const stop = segment.length - 1;
  const start = segment.lastIndexOf(NL, stop - 1) + 1;
  return { start, line: segment.subarray(start, stop) };
}

/** Whether a segment is newline-terminated and its last line is a good record. */
export function endsWithRecord(segment: Uint8Array): boolean {
  return segment[segment.length - 1] === NL && recordValid(lastLine(segment).line);
}

/**
 * The item of the record that ends a segment (`[end[i-1], end[i])`: padding, then the
 * record); throws {@link IndexMismatch} when there is no good record there.
 */
export function parseSegment<T>(seg: Uint8Array): T {
  if (seg.length === 0 || seg[seg.length - 1] !== NL) throw new IndexMismatch();
  const { line } = lastLine(seg);
  if (!recordValid(line)) throw new IndexMismatch();
  return JSON.parse(decoder.decode(line.subarray(9))) as T;
}

/** What {@link scan} found in a byte range of a list file. */
export interface ScanResult {
  /** End offsets of the good records, in order. */
  readonly ends: number[];
  readonly corrupt: CorruptRecord[];
  /** End of the last good record (the range's start when there is none). */
  readonly validEnd: number;
}

/**
 * Reads `[from, to)` line by line: good records give their end offsets; damaged lines before
 * the last good record are `checksum`, anything after it that is not blank is `torn`.
 */
export async function scan(file: Deno.FsFile, from: number, to: number): Promise<ScanResult> {
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
