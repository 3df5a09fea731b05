/**
 * Notices connections that went quiet, with one timer for all of them instead of one each: a
 * connection that received nothing for between one and two periods gets its `onQuiet` called
 * once, so it can let go of what it needs only while busy.
 * @module
 */

/** The watch's operations. */
export interface QuietWatch {
  /**
   * Records activity on `key`; `onQuiet(key)` runs once `key` has then been quiet long enough.
   * It gets the key so that one shared function serves every connection (no closure each).
   */
  touch<K extends object>(key: K, onQuiet: (key: K) => void): void;
  /** Stops watching `key` (its connection ended); counts as activity for `onAllQuiet`. */
  forget(key: object): void;
  /** Stops the timer; later touches are ignored. */
  stop(): void;
}

/**
 * A watch that ticks every `periodMs` while it has anything to watch. `onAllQuiet` runs at the
 * first tick after a whole period in which no key was touched, once per spell of activity: the
 * whole server has just become idle, whether its last connections went quiet or went away (a
 * burst of logins that all logged out leaves no key to go quiet, and is the burst whose memory
 * most needs giving back). It may call `again(ms)` to run once more after that long, unless
 * some activity comes first (it put its work off, and the server would still be idle).
 */
export function createQuietWatch(
  periodMs: number,
  onAllQuiet?: (again: (ms: number) => void) => void,
): QuietWatch {
  // Two generations: keys touched since the last tick, and keys touched in the period before.
  // A key still in `older` at a tick was not touched for a whole period.
  let recent = new Map<object, (key: object) => void>();
  let older = new Map<object, (key: object) => void>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let stopped = false;
  // A key was touched since `onAllQuiet` last ran (or since the start).
  let busy = false;
  // Touched since the last tick, even if forgotten since: `recent` alone misses a connection
  // that came and went within one period.
  let touched = false;
  // `onAllQuiet` asked to run again later.
  let again: ReturnType<typeof setTimeout> | undefined;

  function allQuiet(): void {
    again = undefined;
    onAllQuiet?.(later);
  }

  function later(ms: number): void {
    if (stopped || busy) return;
    clearTimeout(again);
    again = setTimeout(allQuiet, ms);
  }

  function active(): void {
    busy = touched = true;
    clearTimeout(again);
    again = undefined;
    // Runs only while there is something to watch; the server's shutdown stops it.
    timer ??= setInterval(tick, periodMs);
  }

  function tick(): void {
    for (const [key, onQuiet] of older) if (!recent.has(key)) onQuiet(key);
    const wentQuiet = busy && !touched;
    if (wentQuiet) busy = false;
    touched = false;
    older = recent;
    recent = new Map();
    // Keeps ticking until the spell of activity has been told as over.
    if (older.size === 0 && !busy) {
      clearInterval(timer);
      timer = undefined;
    }
    if (wentQuiet) allQuiet();
  }

  return {
    touch(key, onQuiet) {
      if (stopped) return;
      recent.set(key, onQuiet as (key: object) => void);
      active();
    },
    forget(key) {
      recent.delete(key);
      older.delete(key);
      if (stopped) return;
      // A connection that ends is activity too: its last bytes are not touched (it is done by
      // then), and what it held has just become garbage.
      active();
    },
    stop() {
      stopped = true;
      busy = touched = false;
      clearInterval(timer);
      clearTimeout(again);
      again = undefined;
      timer = undefined;
      recent.clear();
      older.clear();
    },
  };
}
