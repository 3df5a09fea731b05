/**
 * Storage interfaces. The file store (`file/`) is the embedded default; other backends (SQL)
 * implement the same interfaces, and one contract test suite (`tests/storage/contract/`) runs
 * against each. Only what any backend can offer is here: what files alone have (trimming
 * methods, sizes on disk, damaged lines) is in the file store's own types.
 * @module
 */
import type { ArchivedMessage, ArchiveQuery, QueryPage } from "../core/archive.ts";
import type { Element } from "../xml/element.ts";

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
  /**
   * Drops the `n` oldest items, so that item `n` becomes item 0. What it resolves to is the
   * backend's own report (the file store: how the file was trimmed).
   */
  shift(host: string, user: string, n: number): Promise<unknown>;
  /** Removes the user's list; removing a missing list is not an error. */
  delete(host: string, user: string): Promise<void>;
  /** The users of a host that have a list, sorted. */
  users(host: string): Promise<string[]>;
  /**
   * Lets the calls already made finish, then lets go of every file or connection: once it
   * resolves the store writes nothing more (a server's data directory can be removed, another
   * process takes over). Every later call rejects with an error saying the store is closed.
   * Calling it again returns the same promise.
   */
  close(): Promise<void>;
}

/** The answer to an archive query: a page, or an id of the query that the archive lacks. */
export type ArchivePage = QueryPage | { readonly error: "item-not-found" };

/** The oldest and newest message of an archive (both absent when it is empty). */
export interface ArchiveEnds {
  readonly first?: ArchivedMessage;
  readonly last?: ArchivedMessage;
}

/** What {@link ArchiveStore.expire} drops. */
export interface ArchiveExpiry {
  /** Messages stamped before this (ms) go; none by age when absent. */
  readonly before?: number;
  /** Then the oldest go until at most this many are left. */
  readonly maxItems: number;
}

/**
 * Each user's message archive (XEP-0313), oldest first, messages stamped in non-decreasing
 * order of `ts` (archive ids embed their stamp, see `newArchiveId`). A query is one call, so
 * that a backend that can (SQL) runs its filters and paging where the data is.
 */
export interface ArchiveStore {
  /** Appends messages in order; durable once the promise resolves. */
  append(host: string, user: string, messages: readonly ArchivedMessage[]): Promise<void>;
  /**
   * One page of a query. Unknown ids (after-id, before-id, ids, RSM after and before) give
   * `{ error: "item-not-found" }` (XEP-0313 §4.1.3, §4.3.2).
   *
   * The result set is cut by start/end (inclusive), after-id/before-id (exclusive), ids, and
   * `with` (a bare JID matches any resource of it, a full JID only itself). RSM `after` pages
   * forward from just after that item, RSM `before` (an id, or true for the last page) pages
   * backward from just before it; RSM ids must exist but may lie outside the filtered set,
   * and after-id/before-id never reverse paging (XEP-0313 §9). `complete` is true when nothing
   * more matches in the direction of paging. `count` and `firstIndex` are given when cheap.
   * A filter reads at most `q.scanLimit` records (`limits.mamScan`): cut short, the page ends
   * where it stopped, `complete` false, and `scanned` names the first and last records read.
   * Messages appended while the query runs are left out.
   */
  query(host: string, user: string, q: ArchiveQuery): Promise<ArchivePage>;
  /** The oldest and newest message. */
  metadata(host: string, user: string): Promise<ArchiveEnds>;
  /** Drops the oldest messages by age, then by count; returns how many went. */
  expire(host: string, user: string, opts: ArchiveExpiry): Promise<number>;
  /** Removes the user's archive; removing none is not an error. */
  delete(host: string, user: string): Promise<void>;
  /** The users of a host that have an archive, sorted. */
  users(host: string): Promise<string[]>;
  /** As {@link ListStore.close}. */
  close(): Promise<void>;
}

/** How much is stored for a user, without reading the messages. */
export interface OfflineStats {
  /** Messages waiting. */
  readonly count: number;
  /**
   * Bytes they take in the store: at least the size of their JSON (the backend's framing
   * included), so a byte cap checked against it errs towards refusing.
   */
  readonly bytes: number;
}

/** Offline messages (XEP-0160) per user of a host, oldest first. */
export interface OfflineStore {
  /** Count and size of the user's messages; none for a name the backend cannot store. */
  stat(host: string, user: string): Promise<OfflineStats>;
  /** Appends one message; durable once the promise resolves. */
  append(host: string, user: string, message: Element): Promise<void>;
  /** Every stored message, oldest first. */
  all(host: string, user: string): Promise<Element[]>;
  /** Removes the user's messages (after delivery); removing none is not an error. */
  delete(host: string, user: string): Promise<void>;
  /** As {@link ListStore.close}. */
  close(): Promise<void>;
}

/**
 * What hibernating sessions (XEP-0198) were sent, durably, so that a crash cannot lose it:
 * one stash per session, dropped when it resumes or its queue goes to offline storage.
 */
export interface SmStash {
  /** Appends messages queued for session `sid`; durable once the promise resolves. */
  append(host: string, user: string, sid: string, messages: readonly Element[]): Promise<void>;
  /** Drops session `sid`'s stash (resumed, or its queue went to offline storage). */
  drop(host: string, user: string, sid: string): Promise<void>;
  /**
   * Moves every stash of `hosts` to offline storage (after a crash, before anyone logs in);
   * returns how many messages were moved.
   */
  recover(hosts: readonly string[], offline: OfflineStore): Promise<number>;
  /** Drops every stash of the user (the account is being deleted). */
  delete(host: string, user: string): Promise<void>;
  /** As {@link ListStore.close}. */
  close(): Promise<void>;
}
