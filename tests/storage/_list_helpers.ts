/**
 * Shared helpers for the list store tests: a seeded PRNG, random items, and readers of the raw
 * list and index files that do not go through the store.
 * @module
 */
import { crc32 } from "node:zlib";
import { join } from "node:path";
import { collapseRange } from "../../lib/storage/file/fallocate.ts";
import { INDEX_HEADER_SIZE, INDEX_MAGIC } from "../../lib/storage/file/index.ts";
import { LIST_BLOCK } from "../../lib/storage/file/format.ts";

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A test item: `ts` never decreases along a list; `body` makes its size. */
export interface Item {
  readonly id: number;
  readonly ts: number;
  readonly body: string;
}

const ALPHABET = 'abcdefghijklmnopqrstuvwxyz "\\\n\té€😀<>&';

/**
 * Items whose serialised record is between ~10 bytes and ~10 KB, sizes log-uniform so that
 * both many small records and records larger than a block occur; bodies include characters
 * JSON must escape (quotes, backslashes, newlines) and multi-byte UTF-8.
 */
export function randomItems(rand: () => number, n: number, firstId: number, ts0: number): Item[] {
  const out: Item[] = [];
  let ts = ts0;
  for (let i = 0; i < n; i++) {
    const len = Math.floor(Math.exp(rand() * Math.log(10_000)));
    let body = "";
    for (let j = 0; j < len; j++) body += ALPHABET[Math.floor(rand() * ALPHABET.length)];
    ts += Math.floor(rand() * 3); // repeats on purpose: lowerBound must find the first
    out.push({ id: firstId + i, ts, body });
  }
  return out;
}

/** One record found by a raw scan of a list file. */
export interface RawRecord {
  readonly start: number;
  /** Just past the newline. */
  readonly end: number;
  readonly json: string;
}

/** Every line of a list file, checked against the format; blank lines skipped. */
export async function scanRaw(path: string): Promise<{ records: RawRecord[]; bad: number[] }> {
  const bytes = await Deno.readFile(path);
  const records: RawRecord[] = [];
  const bad: number[] = [];
  let start = 0;
  while (start < bytes.length) {
    let nl = bytes.indexOf(0x0a, start);
    const complete = nl !== -1;
    if (!complete) nl = bytes.length;
    if (nl > start) {
      const line = bytes.subarray(start, nl);
      const text = new TextDecoder().decode(line);
      const m = /^([0-9a-f]{8}) (.*)$/s.exec(text);
      const body = line.subarray(9);
      if (complete && m !== null && parseInt(m[1], 16) === crc32(body)) {
        records.push({ start, end: nl + 1, json: m[2] });
      } else bad.push(start);
    }
    start = nl + 1;
  }
  return { records, bad };
}

/** Records that cross a block boundary although they fit in a block, or big ones misaligned. */
export function misplaced(records: readonly RawRecord[]): RawRecord[] {
  return records.filter((r) => {
    const len = r.end - r.start;
    if (len > LIST_BLOCK) return r.start % LIST_BLOCK !== 0;
    return Math.floor(r.start / LIST_BLOCK) !== Math.floor((r.end - 1) / LIST_BLOCK);
  });
}

/** The version and entries of an index file. */
export async function readIndex(path: string): Promise<{ version: number; ends: number[] }> {
  const bytes = await Deno.readFile(path);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  assertMagic(bytes);
  const ends: number[] = [];
  for (let at = INDEX_HEADER_SIZE; at + 8 <= bytes.length; at += 8) {
    ends.push(Number(view.getBigUint64(at, true)));
  }
  return { version: view.getUint32(8, true), ends };
}

function assertMagic(bytes: Uint8Array): void {
  const magic = new TextDecoder().decode(bytes.subarray(0, 8));
  if (magic !== INDEX_MAGIC) throw new Error(`bad index magic ${JSON.stringify(magic)}`);
}

/**
 * A directory whose filesystem can collapse ranges (ext4, xfs), tried in the system temp dir
 * and then under the working directory (for when /tmp is tmpfs); `undefined` when neither
 * can, or FFI is not permitted. The caller removes it.
 */
export async function collapseCapableDir(): Promise<string | undefined> {
  for (const parent of [undefined, Deno.cwd()]) {
    let dir: string;
    try {
      dir = await Deno.makeTempDir({ dir: parent, prefix: ".list-store-test-" });
    } catch {
      continue;
    }
    const probe = join(dir, "probe");
    await Deno.writeFile(probe, new Uint8Array(3 * LIST_BLOCK).fill(0x61));
    let result: string;
    try {
      result = collapseRange(probe, LIST_BLOCK);
    } catch {
      result = "error";
    }
    await Deno.remove(probe);
    if (result === "ok") return dir;
    await Deno.remove(dir, { recursive: true });
  }
  return undefined;
}
