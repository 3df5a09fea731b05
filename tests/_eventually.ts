/**
 * Polling for a state the server reaches on its own time (a file written after a durable
 * append, a queue drained): the tests assert on the value it returns, never on how long it took.
 * @module
 */

/**
 * Reads `read()` until `ok` holds for what it gives, or `timeoutMs` passed; returns the last
 * value read either way, for the caller's assertion to judge.
 */
export async function eventually<T>(
  read: () => T | Promise<T>,
  ok: (value: T) => boolean,
  { timeoutMs = 10_000, everyMs = 20 }: { timeoutMs?: number; everyMs?: number } = {},
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (ok(value) || performance.now() >= deadline) return value;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
