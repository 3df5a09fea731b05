/**
 * The archive store over a list store (`DATA/<host>/archive/<user>.list` in the file store),
 * oldest message first. Queries run over positional list calls: time bounds and ids are found
 * by binary search on `ts` (archive ids embed their timestamp, see `newArchiveId`), so a page
 * costs a few reads whatever the archive's size; only the `with` filter scans, in chunks, only
 * as far as it needs to fill the page, and never more than the query's `scanLimit` records
 * (`limits.mamScan`). Expiry drops the head of the list (`shift`).
 * @module
 */
import { DEFAULT_LIMITS } from "../../limits.ts";
import {
  type ArchivedMessage,
  type ArchiveQuery,
  type QueryPage,
  tsOfArchiveId,
} from "../../core/archive.ts";
import type { ArchiveEnds, ArchiveExpiry, ArchivePage, ArchiveStore, ListStore } from "../mod.ts";
import { type ListStoreOptions, openListStore } from "./list_store.ts";

/** The list store's name (the directory under each host). */
const ARCHIVE_STORE = "archive";

/** Most items read at a time when scanning for the `with` filter or among equal stamps. */
const CHUNK = 256;

type Archive = ListStore<ArchivedMessage>;

/** Where one user's archive lives, and how many items it had when the query started. */
interface Target {
  readonly store: Archive;
  readonly host: string;
  readonly user: string;
  /** Appends during the query land past this and are left out, so the page stays consistent. */
  readonly n: number;
}

interface Found {
  readonly index: number;
  readonly item: ArchivedMessage;
}

const byTs = (m: ArchivedMessage): number => m.ts;

/**
 * Finds an archive id: a binary search on its embedded timestamp, then the items of that ts,
 * one first and then in doubling chunks: an id is nearly always the first item of its
 * millisecond, so a lookup costs the search and one record, not a chunk.
 */
async function findId(t: Target, id: string): Promise<Found | undefined> {
  const ts = tsOfArchiveId(id);
  if (ts === undefined) return undefined;
  let i = await t.store.lowerBound(t.host, t.user, ts, byTs);
  let size = 1;
  while (i < t.n) {
    const chunk = await t.store.range(t.host, t.user, i, Math.min(i + size, t.n));
    if (chunk.length === 0) return undefined;
    for (const [k, item] of chunk.entries()) {
      if (item.ts !== ts) return undefined;
      if (item.id === id) return { index: i + k, item };
    }
    i += chunk.length;
    size = Math.min(size * 2, CHUNK);
  }
  return undefined;
}

/** XEP-0313 §4.1.1: a bare JID matches any resource of it, a full JID only itself. */
function withMatcher(w: string | undefined): ((m: ArchivedMessage) => boolean) | undefined {
  if (w === undefined) return undefined;
  // Neither localpart nor domainpart may hold a '/', so the first one starts the resource.
  if (w.includes("/")) return (m) => m.peer === w;
  return (m) => {
    const slash = m.peer.indexOf("/");
    return (slash < 0 ? m.peer : m.peer.slice(0, slash)) === w;
  };
}

/** The page out of an explicit, index-sorted selection (the `ids` field). */
function pageOfSelection(
  all: readonly Found[],
  pageLo: number,
  pageHi: number,
  q: ArchiveQuery,
): QueryPage {
  const inPage = all.filter((f) => f.index >= pageLo && f.index < pageHi);
  const backward = q.before !== undefined;
  const from = backward ? Math.max(0, inPage.length - q.max) : 0;
  const items = inPage.slice(from, from + q.max);
  const page: QueryPage = {
    items: items.map((f) => f.item),
    complete: inPage.length <= q.max,
    count: all.length,
  };
  return items.length === 0 ? page : { ...page, firstIndex: all.indexOf(items[0]) };
}

/** The page out of the contiguous indexes `[lo, hi)` when every item there matches. */
async function pageOfRange(
  t: Target,
  lo: number,
  hi: number,
  pageLo: number,
  pageHi: number,
  q: ArchiveQuery,
): Promise<QueryPage> {
  const count = Math.max(0, hi - lo);
  if (pageLo >= pageHi) return { items: [], complete: true, count };
  const backward = q.before !== undefined;
  const a = backward ? Math.max(pageLo, pageHi - q.max) : pageLo;
  const b = backward ? pageHi : Math.min(pageHi, pageLo + q.max);
  const items = a < b ? await t.store.range(t.host, t.user, a, b) : [];
  const complete = backward ? a <= pageLo : b >= pageHi;
  return items.length === 0 ? { items, complete, count } : {
    items,
    complete,
    count,
    firstIndex: a - lo,
  };
}

/**
 * The page out of `[pageLo, pageHi)` keeping only items that match: scans in chunks from the
 * end paging starts at, stopping at one match past the page (which tells whether it is
 * complete), or after `q.scanLimit` records.
 *
 * A scan cut short by the limit ends the page where it stopped, with `complete` false (XEP-0313
 * §4.3.3 lets a page hold fewer than `max` items), and the RSM `<first/>`/`<last/>` name the
 * first and last records read, matching or not (`scanned`): a client that goes on with
 * `<after>` the last (or `<before>` the first, paging backward) resumes exactly there, even
 * after a page with no item, and each query makes progress.
 */
async function pageOfScan(
  t: Target,
  pageLo: number,
  pageHi: number,
  q: ArchiveQuery,
  match: (m: ArchivedMessage) => boolean,
): Promise<QueryPage> {
  const backward = q.before !== undefined;
  const limit = Math.max(1, q.scanLimit ?? DEFAULT_LIMITS.mamScan);
  const found: ArchivedMessage[] = [];
  let lo = pageLo;
  let hi = pageHi;
  let read = 0;
  let firstRead: ArchivedMessage | undefined;
  let lastRead: ArchivedMessage | undefined;
  scan: while (lo < hi && found.length <= q.max && read < limit) {
    const size = Math.min(CHUNK, limit - read);
    const a = backward ? Math.max(lo, hi - size) : lo;
    const b = backward ? hi : Math.min(hi, lo + size);
    const chunk = await t.store.range(t.host, t.user, a, b);
    if (chunk.length === 0) break;
    read += chunk.length;
    if (backward) chunk.reverse();
    for (const item of chunk) {
      firstRead ??= item;
      lastRead = item;
      if (match(item)) found.push(item);
      if (found.length > q.max) break scan;
    }
    if (backward) hi = a;
    else lo = b;
  }
  const items = found.slice(0, q.max);
  if (backward) items.reverse();
  if (found.length > q.max || lo >= hi || lastRead === undefined) {
    return { items, complete: found.length <= q.max };
  }
  // Stopped by the limit with the page not full and records left to read.
  const [older, newer] = backward ? [lastRead, firstRead!] : [firstRead!, lastRead];
  return { items, complete: false, scanned: { first: older.id, last: newer.id } };
}

/** The page of a query over one user's archive (see {@link ArchiveStore.query}). */
async function runQuery(
  store: Archive,
  host: string,
  user: string,
  q: ArchiveQuery,
): Promise<ArchivePage> {
  const t: Target = { store, host, user, n: await store.count(host, user) };
  let lo = 0;
  let hi = t.n;
  if (q.start !== undefined) lo = Math.max(lo, await store.lowerBound(host, user, q.start, byTs));
  if (q.end !== undefined) hi = Math.min(hi, await store.lowerBound(host, user, q.end + 1, byTs));
  if (q.afterId !== undefined) {
    const f = await findId(t, q.afterId);
    if (f === undefined) return { error: "item-not-found" };
    lo = Math.max(lo, f.index + 1);
  }
  if (q.beforeId !== undefined) {
    const f = await findId(t, q.beforeId);
    if (f === undefined) return { error: "item-not-found" };
    hi = Math.min(hi, f.index);
  }

  // RSM ids must exist in the archive but may lie outside the filtered set: they only move
  // the page's bounds.
  let pageLo = lo;
  let pageHi = hi;
  if (q.after !== undefined) {
    const f = await findId(t, q.after);
    if (f === undefined) return { error: "item-not-found" };
    pageLo = Math.max(pageLo, f.index + 1);
  }
  if (typeof q.before === "string") {
    const f = await findId(t, q.before);
    if (f === undefined) return { error: "item-not-found" };
    pageHi = Math.min(pageHi, f.index);
  }

  const match = withMatcher(q.with);
  if (q.ids !== undefined) {
    const selected: Found[] = [];
    for (const id of q.ids) {
      const f = await findId(t, id);
      if (f === undefined) return { error: "item-not-found" };
      if (f.index >= lo && f.index < hi && (match === undefined || match(f.item))) {
        selected.push(f);
      }
    }
    selected.sort((x, y) => x.index - y.index);
    // The same id asked twice is one result.
    const unique = selected.filter((f, i) => i === 0 || selected[i - 1].index !== f.index);
    return pageOfSelection(unique, pageLo, pageHi, q);
  }
  if (match === undefined) return pageOfRange(t, lo, hi, pageLo, pageHi, q);
  return pageOfScan(t, pageLo, pageHi, q, match);
}

async function metadata(store: Archive, host: string, user: string): Promise<ArchiveEnds> {
  const n = await store.count(host, user);
  if (n === 0) return {};
  const [first, last] = await Promise.all([store.get(host, user, 0), store.get(host, user, n - 1)]);
  return { first, last };
}

/** How many of the oldest items to drop, by age and by count. */
async function itemsToDrop(
  store: Archive,
  host: string,
  user: string,
  opts: ArchiveExpiry,
): Promise<number> {
  const count = await store.count(host, user);
  const byCount = Math.max(0, count - opts.maxItems);
  if (opts.before === undefined) return byCount;
  const byAge = await store.lowerBound(host, user, opts.before, byTs);
  return Math.max(byCount, byAge);
}

/** An archive store over a list store of archived messages. */
export function listArchiveStore(list: Archive): ArchiveStore {
  return {
    append: (host, user, messages) => list.append(host, user, messages),
    query: (host, user, q) => runQuery(list, host, user, q),
    metadata: (host, user) => metadata(list, host, user),
    async expire(host, user, opts) {
      const n = await itemsToDrop(list, host, user, opts);
      if (n > 0) await list.shift(host, user, n);
      return n;
    },
    delete: (host, user) => list.delete(host, user),
    users: (host) => list.users(host),
    close: () => list.close(),
  };
}

/** The archive store under `dataDir` (list store `archive`). */
export function openArchiveStore(dataDir: string, opts: ListStoreOptions = {}): ArchiveStore {
  // Write-behind: archives are read only through the store (list_store.ts).
  return listArchiveStore(
    openListStore<ArchivedMessage>(dataDir, ARCHIVE_STORE, { writeBehind: true, ...opts }),
  );
}
