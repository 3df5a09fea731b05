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
  /** Stops watching `key` (its connection ended). */
  forget(key: object): void;
  /** Stops the timer; later touches are ignored. */
  stop(): void;
}

/**
 * A watch that ticks every `periodMs` while it has anything to watch. `onAllQuiet` runs at the
 * tick where the last active key went quiet: the whole server has just become idle.
 */
export function createQuietWatch(periodMs: number, onAllQuiet?: () => void): QuietWatch {
  // Two generations: keys touched since the last tick, and keys touched in the period before.
  // A key still in `older` at a tick was not touched for a whole period.
  let recent = new Map<object, (key: object) => void>();
  let older = new Map<object, (key: object) => void>();
  let timer: ReturnType<typeof setInterval> | undefined;
  let stopped = false;

  function tick(): void {
    for (const [key, onQuiet] of older) if (!recent.has(key)) onQuiet(key);
    const allQuiet = recent.size === 0 && older.size > 0;
    older = recent;
    recent = new Map();
    if (older.size === 0) {
      clearInterval(timer);
      timer = undefined;
    }
    if (allQuiet) onAllQuiet?.();
  }

  return {
    touch(key, onQuiet) {
      if (stopped) return;
      recent.set(key, onQuiet as (key: object) => void);
      // Runs only while there is something to watch; the server's shutdown stops it.
      timer ??= setInterval(tick, periodMs);
    },
    forget(key) {
      recent.delete(key);
      older.delete(key);
    },
    stop() {
      stopped = true;
      clearInterval(timer);
      timer = undefined;
      recent.clear();
      older.clear();
    },
  };
}
