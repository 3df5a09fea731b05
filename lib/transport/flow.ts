/**
 * Flow control shared by every kind of connection (clients and components) and every transport
 * (the driver, ./driver.ts, applies it): when a peer that does not take what is written to it
 * must be dropped, and when reading from a peer must wait.
 * @module
 */

/** What the backlog guard reads from a connection's sink. */
export interface BacklogSource {
  /** Bytes written but not yet taken by the peer. */
  backlog(): number;
  /** Bytes the peer has taken since the connection opened (grows whenever it reads). */
  taken(): number;
}

/** How long a backlog over the limit may last; defaults suit real networks. */
export interface BacklogTimes {
  /** Over the limit with not one byte taken for this long: the peer has stopped reading. */
  readonly stallMs: number;
  /** Over the limit without a break for this long: the peer reads too slowly to keep up. */
  readonly graceMs: number;
}

const DEFAULT_TIMES: BacklogTimes = { stallMs: 30_000, graceMs: 120_000 };

/** Why a peer is dropped, for the log. */
export type DropReason = "growing" | "stalled" | "too slow";

/** Watches one connection's write backlog; see {@link createBacklogGuard}. */
export interface BacklogGuard {
  /** Looks at the backlog now (after writes); calls `onDrop` once when the peer must go. */
  check(): void;
  /** Stops the timer (the connection ended). */
  stop(): void;
}

/**
 * A backlog over `limit` alone is no reason to drop a peer: one large reply (a roster, an
 * archive page, a file-sized stanza) puts it there for as long as the peer takes to read it.
 * The peer is dropped when the backlog over the limit does not drain: it grew by another
 * `limit` since it first went over (others send faster than the peer reads; this also bounds
 * what is held to about twice the limit plus one write), no byte was taken for `stallMs`, or it
 * stayed over the limit for `graceMs`. While over the limit a timer re-checks, so a peer that
 * nobody writes to any more is still judged.
 */
export function createBacklogGuard(
  source: () => BacklogSource,
  limit: number,
  onDrop: (why: DropReason) => void,
  times: BacklogTimes = DEFAULT_TIMES,
  now: () => number = Date.now,
): BacklogGuard {
  let over: { since: number; level: number; taken: number; progressAt: number } | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let dropped = false;

  const drop = (why: DropReason) => {
    dropped = true;
    stop();
    onDrop(why);
  };
  const stop = () => {
    clearTimeout(timer);
    timer = undefined;
  };
  const check = () => {
    if (dropped) return;
    const sink = source();
    const backlog = sink.backlog();
    if (backlog <= limit) {
      over = undefined;
      stop();
      return;
    }
    const t = now();
    const taken = sink.taken();
    if (over === undefined) {
      over = { since: t, level: backlog, taken, progressAt: t };
    } else if (taken > over.taken) {
      over.taken = taken;
      over.progressAt = t;
    }
    if (backlog > over.level + limit) return drop("growing");
    if (t - over.progressAt >= times.stallMs) return drop("stalled");
    if (t - over.since >= times.graceMs) return drop("too slow");
    if (timer === undefined) {
      timer = setTimeout(() => {
        timer = undefined;
        check();
      }, Math.min(1000, times.stallMs));
    }
  };
  return { check, stop };
}

/**
 * Resolves once `pressured()` is false (checked every `pollMs`) or `ended()` is true. A short
 * poll rather than a wake-up from each queue: pressure is rare and brief, and the poll costs
 * nothing while there is none.
 */
export async function whenRelieved(
  pressured: () => boolean,
  ended: () => boolean,
  pollMs = 10,
): Promise<void> {
  while (pressured() && !ended()) await new Promise((r) => setTimeout(r, pollMs));
}
