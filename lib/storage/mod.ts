/**
 * Storage interfaces. The file store (datamanager.ts) is the embedded default; other backends
 * (SQL) implement the same interfaces so that one contract test suite can run against each.
 * @module
 */

/**
 * One JSON-serialisable value per user of a host (an account record, a roster, ...).
 * `host` and `user` are expected already normalised (the JID module does that). A user name
 * the backend cannot store (the file store: one too long for a file name) has no value: `get`
 * finds none, `delete` does nothing and `set` throws, so no account can take that name.
 */
export interface KeyvalStore<T> {
  /** The stored value, or `undefined` when there is none. */
  get(host: string, user: string): Promise<T | undefined>;
  /** Replaces the value; durable once the promise resolves. */
  set(host: string, user: string, value: T): Promise<void>;
  /** Removes the value; removing a missing value is not an error. */
  delete(host: string, user: string): Promise<void>;
  /** The users of a host that have a value, sorted. */
  users(host: string): Promise<string[]>;
}

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

/** What {@link ListStore.stat} reports about one user's list. */
export interface ListStat {
  /** Number of readable items. */
  readonly count: number;
  /** Size of the list file in bytes (padding and skipped lines included). */
  readonly bytes: number;
  /** Damaged lines found since the list was last loaded; also logged when found. */
  readonly corrupt: readonly CorruptRecord[];
}

/**
 * How {@link ListStore.shift} removed items: `collapse` (whole blocks cut out of the file in
 * place), `copy` (the kept items copied to a new file renamed over the old), `blank` (the new
 * first item was already in the first block: the bytes before it were overwritten with blank
 * lines), `truncate` (every item was dropped), `none` (nothing to drop). Readers see the same
 * items, and later appends the same layout, whichever method was used.
 */
export type ShiftMethod = "collapse" | "copy" | "blank" | "truncate" | "none";

/**
 * An append-only list of JSON-serialisable items per user of a host (a message archive, an
 * offline queue). Items are numbered from 0, oldest first. `host` and `user` are expected
 * already normalised.
 */
export interface ListStore<T> {
  /** Appends `items` in order; durable (on disk) once the promise resolves. */
  append(host: string, user: string, items: readonly T[]): Promise<void>;
  /** Number of items; 0 when the user has no list. */
  count(host: string, user: string): Promise<number>;
  /** Item `index`, or `undefined` when out of range. */
  get(host: string, user: string, index: number): Promise<T | undefined>;
  /** Items `[start, end)`, clamped to the list. */
  range(host: string, user: string, start: number, end: number): Promise<T[]>;
  /**
   * For items whose `key(item)` does not decrease along the list (e.g. a timestamp): the first
   * index whose key is `>= k`, or the count when there is none. A binary search.
   */
  lowerBound(host: string, user: string, k: number, key: (item: T) => number): Promise<number>;
  /** Drops the `n` oldest items, so that item `n` becomes item 0. */
  shift(host: string, user: string, n: number): Promise<{ readonly method: ShiftMethod }>;
  /** Removes the user's list; removing a missing list is not an error. */
  delete(host: string, user: string): Promise<void>;
  /** The users of a host that have a list, sorted. */
  users(host: string): Promise<string[]>;
  /** Count, size and damaged lines of the user's list (loading and checking it if needed). */
  stat(host: string, user: string): Promise<ListStat>;
}
