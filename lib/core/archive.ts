/**
 * The message archive's records and rules (XEP-0313, XEP-0359) that the router, the account
 * reducer and the archive stores share: archived messages, queries and pages, preferences,
 * archive ids, and which messages are archived. The protocol (parsing queries, building
 * results) is the MAM module's (lib/modules/mam/). Running a query is `ArchiveStore.query`.
 * @module
 */
import { child, elem, type Element } from "../xml/element.ts";
import { formatDateTime } from "../xmpp/datetime.ts";
import { NS_SID } from "../xmpp/namespaces.ts";

/** RSM page size when the client gives none. */
export const DEFAULT_MAX = 20;
/** Largest page we send, whatever the client asks for (XEP-0313 §4.3.1 allows a limit). */
export const MAX_PAGE = 50;

/** One archived message. `ts` in ms, non-decreasing along an archive. */
export interface ArchivedMessage {
  /** Archive id, from {@link newArchiveId} with this message's `ts`. */
  readonly id: string;
  /** When the server received the message, in ms since the epoch. */
  readonly ts: number;
  /** The other party's JID (full when known), normalised. */
  readonly peer: string;
  /** The message as it is returned inside `<forwarded/>`. */
  readonly stanza: Element;
}

/** A parsed MAM query. */
export interface ArchiveQuery {
  /** The `queryid` attribute, echoed in every `<result/>`. */
  readonly queryId?: string;
  /** Normalised; a bare JID matches any resource of it, a full JID matches exactly. */
  readonly with?: string;
  /** ms, inclusive. */
  readonly start?: number;
  /** ms, inclusive. */
  readonly end?: number;
  /** #extended form field after-id (exclusive). */
  readonly afterId?: string;
  /** #extended form field before-id (exclusive). */
  readonly beforeId?: string;
  /** #extended form field ids. */
  readonly ids?: readonly string[];
  /** RSM max, default {@link DEFAULT_MAX}, capped at {@link MAX_PAGE}. */
  readonly max: number;
  /** RSM `<after>`. */
  readonly after?: string;
  /** RSM `<before>ID</before>`, or true for an empty `<before/>` (the last page). */
  readonly before?: string | true;
  /** `<flip-page/>`: send the page newest first. */
  readonly flip: boolean;
  /**
   * Most archive records the query may read while filtering (`limits.mamScan`), set by the
   * account; the archive store takes its default when absent.
   */
  readonly scanLimit?: number;
}

/** One page of results. */
export interface QueryPage {
  /** Oldest first, whatever the paging direction. */
  readonly items: readonly ArchivedMessage[];
  /** True when the page reaches the end of the results in the direction of paging. */
  readonly complete: boolean;
  /** Size of the whole result set, when known. */
  readonly count?: number;
  /** Position of `items[0]` in the whole result set, when known. */
  readonly firstIndex?: number;
  /**
   * When a bounded scan stopped before the page was full: the ids of the first and last
   * archive records it read, which the RSM `<first/>` and `<last/>` then name instead of the
   * page's own items, so that `after`/`before` with them go on where the scan stopped, even
   * after an empty page.
   */
  readonly scanned?: { readonly first: string; readonly last: string };
}

/**
 * The stamp of an archived message (`<delay/>`, metadata `timestamp`): XEP-0082 DateTime at
 * second precision, `YYYY-MM-DDTHH:MM:SSZ`.
 */
export const stamp: (ts: number) => string = formatDateTime;

/** Width of the timestamp prefix of an archive id: 36^9 ms reaches past the year 5000. */
const TS_WIDTH = 9;
const TS_LIMIT = 36 ** TS_WIDTH;
const TS_PREFIX = /^[0-9a-z]{9}/;

/**
 * An archive id that embeds its timestamp so it can be found by binary search: fixed-width
 * base36 of `ts` (9 characters) and then `random` (given, so that this stays pure). Ids of
 * later messages sort after those of earlier ones.
 */
export function newArchiveId(ts: number, random: string): string {
  if (!Number.isSafeInteger(ts) || ts < 0 || ts >= TS_LIMIT) {
    throw new RangeError(`Archive timestamp out of range: ${ts}`);
  }
  return ts.toString(36).padStart(TS_WIDTH, "0") + random;
}

/** The timestamp embedded by {@link newArchiveId}, or undefined when `id` is not one of ours. */
export function tsOfArchiveId(id: string): number | undefined {
  const m = TS_PREFIX.exec(id);
  return m === null ? undefined : parseInt(m[0], 36);
}

/** Archiving preferences: a default and two JID lists (normalised). */
export interface ArchivePrefs {
  readonly default: "always" | "never" | "roster";
  readonly always: readonly string[];
  readonly never: readonly string[];
}

/**
 * Whether a message with `peerBare` (normalised bare JID) is archived: a JID in `never` is not,
 * even when also in `always`; then one in `always` is; otherwise the default decides (`roster`:
 * only contacts in the roster).
 */
export function shouldArchive(p: ArchivePrefs, peerBare: string, inRoster: boolean): boolean {
  if (p.never.includes(peerBare)) return false;
  if (p.always.includes(peerBare)) return true;
  return p.default === "always" || (p.default === "roster" && inRoster);
}

/**
 * Removes the `<stanza-id xmlns=NS_SID/>` children whose `by` the predicate says is ours: a
 * client must not be able to forge them (XEP-0359 §5). Others' stanza-ids are kept.
 */
export function stripStanzaIds(el: Element, ours: (by: string) => boolean): Element {
  const kept = el.children.filter((c) =>
    typeof c === "string" || c.name !== "stanza-id" || c.xmlns !== NS_SID ||
    c.attrs.by === undefined || !ours(c.attrs.by)
  );
  return kept.length === el.children.length ? el : { ...el, children: kept };
}

/** A copy with `<stanza-id xmlns=NS_SID by=... id=.../>` added. */
export function withStanzaId(el: Element, by: string, id: string): Element {
  return { ...el, children: [...el.children, elem("stanza-id", { xmlns: NS_SID, by, id })] };
}

/**
 * True when a message is archived at all: type chat or normal (absent means normal) with a
 * `<body/>`. XEP-0313 §6.1.1 leaves the choice to the server; this is our rule.
 */
export function isArchivable(el: Element): boolean {
  if (el.name !== "message") return false;
  const type = el.attrs.type ?? "normal";
  return (type === "chat" || type === "normal") && child(el, "body") !== undefined;
}
