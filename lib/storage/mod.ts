/**
 * Storage interfaces. The file store (datamanager.ts) is the embedded default; other backends
 * (SQL) implement the same interfaces so that one contract test suite can run against each.
 * @module
 */

/**
 * One JSON-serialisable value per user of a host (an account record, a roster, ...).
 * `host` and `user` are expected already normalised (the JID module does that).
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
