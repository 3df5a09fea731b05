/**
 * Byte IO on open files for the list store: positioned reads, whole writes, and the few file
 * system errors it tolerates. Reads and copies go through buffers of at most {@link CHUNK}
 * bytes, so that a huge range never needs one buffer.
 * @module
 */

/** Largest buffer read or written at once (a bigger write goes off-thread). */
export const CHUNK = 1 << 20;

/** Up to `length` bytes at `offset`; fewer at the end of the file. */
export async function readAt(
  file: Deno.FsFile,
  offset: number,
  length: number,
): Promise<Uint8Array> {
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

/** Writes all of `data` at the file's position. */
export async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let done = 0;
  while (done < data.length) done += await file.write(data.subarray(done));
}

/**
 * {@link writeAll}, synchronously: to the page cache a small write costs less than the
 * thread hand-off of an asynchronous op.
 */
export function writeAllSync(file: Deno.FsFile, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) done += file.writeSync(data.subarray(done));
}

/**
 * A growable byte buffer filled in place (`buf[0, len)`): records and journal entries are
 * encoded straight into it, so that a batch costs no buffer per record and no final copy.
 * Mutable on purpose; owned by one writer at a time.
 */
export interface ByteSink {
  buf: Uint8Array;
  len: number;
}

/** A sink of `size` bytes to start with. */
export function newSink(size: number): ByteSink {
  return { buf: new Uint8Array(size), len: 0 };
}

/** Makes room for `n` more bytes after `sink.len` (doubling, so growth is amortised). */
export function reserve(sink: ByteSink, n: number): void {
  const need = sink.len + n;
  if (need <= sink.buf.length) return;
  const next = new Uint8Array(Math.max(need, sink.buf.length * 2));
  next.set(sink.buf.subarray(0, sink.len));
  sink.buf = next;
}

/** The parts, one after the other, in one buffer. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
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

/** Whether `err` says the file or directory does not exist. */
export function isNotFound(err: unknown): boolean {
  return err instanceof Deno.errors.NotFound;
}

/** Removes `path`; true when it existed. */
export async function removeIfExists(path: string): Promise<boolean> {
  try {
    await Deno.remove(path);
    return true;
  } catch (err) {
    if (isNotFound(err)) return false;
    throw err;
  }
}
