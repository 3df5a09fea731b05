/**
 * Message Archive Management (XEP-0313, `urn:xmpp:mam:2` and `#extended`) as pure functions:
 * parsing queries and preferences, building result messages, the `<fin/>` reply and archive
 * metadata, archive ids, and the stanza-id (XEP-0359) rules. Running a query against a store is
 * `ArchiveStore.query` (storage/mod.ts).
 * @module
 */
import { child, childElements, elem, type Element, text } from "./xml/element.ts";
import { type DataForm, findForm, parseForm } from "./xmpp/forms.ts";
import { iqResult, type StanzaErrorCondition } from "./xmpp/errors.ts";
import { formatDateTime, parseDateTime } from "./xmpp/datetime.ts";
import { normalizeJid } from "./xmpp/jid.ts";
import { NS_CLIENT, NS_DELAY, NS_FORWARD, NS_MAM, NS_RSM, NS_SID } from "./xmpp/namespaces.ts";

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

/** Why a query or preferences element was refused. */
export interface MamError {
  readonly error: StanzaErrorCondition;
  readonly text: string;
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

function fail(error: StanzaErrorCondition, text: string): MamError {
  return { error, text };
}

const FORM_FIELDS = new Set(["FORM_TYPE", "with", "start", "end", "after-id", "before-id", "ids"]);
const MULTI_FIELDS = new Set(["ids"]);

/** The data form's fields by var, or an error. Single-value fields hold at most one value. */
function formFields(
  form: DataForm,
): { readonly fields: ReadonlyMap<string, readonly string[]> } | MamError {
  const type = form.type;
  if (type !== undefined && type !== "submit") {
    return fail("bad-request", `Expected a form of type 'submit', got '${type}'`);
  }
  const fields = new Map<string, readonly string[]>();
  for (const { var: v, values } of form.fields) {
    if (v === undefined) return fail("bad-request", "A form field has no 'var'");
    // XEP-0313 §4.1.5: a field we do not recognise must not be silently ignored.
    if (!FORM_FIELDS.has(v)) return fail("feature-not-implemented", `Unsupported field '${v}'`);
    if (fields.has(v)) return fail("bad-request", `Field '${v}' appears twice`);
    if (values.length > 1 && !MULTI_FIELDS.has(v)) {
      return fail("bad-request", `Field '${v}' takes one value`);
    }
    fields.set(v, values);
  }
  return { fields };
}

/** The single value of a field; a field without a value (or an empty one) counts as absent. */
function single(fields: ReadonlyMap<string, readonly string[]>, v: string): string | undefined {
  const value = fields.get(v)?.[0];
  return value === "" ? undefined : value;
}

/**
 * Parses `<query xmlns="urn:xmpp:mam:2">`: the data form (FORM_TYPE urn:xmpp:mam:2, fields
 * with, start, end, after-id, before-id, ids), the RSM `<set/>` and `<flip-page/>`.
 *
 * Errors: feature-not-implemented for an unknown form field (XEP-0313 §4.1.5) and for RSM
 * `<index/>` (XEP-0059 §2.6 lets a server refuse it); bad-request for a wrong FORM_TYPE, a bad
 * JID, a bad date (XEP-0082), an empty id, a `max` that is not a non-negative integer.
 * An `end` without fractional seconds covers that whole second, since the stamps we send are
 * second precision and a client must be able to pass one back as `end`.
 */
export function parseMamQuery(query: Element): ArchiveQuery | MamError {
  const form = findForm(query);
  // Built up field by field; keys stay absent rather than undefined.
  const q: { -readonly [K in keyof ArchiveQuery]: ArchiveQuery[K] } = {
    max: DEFAULT_MAX,
    flip: false,
  };
  if (query.attrs.queryid !== undefined) q.queryId = query.attrs.queryid;

  if (form !== undefined) {
    const parsed = formFields(parseForm(form));
    if ("error" in parsed) return parsed;
    const map = parsed.fields;
    if (map.get("FORM_TYPE")?.[0] !== NS_MAM) {
      return fail("bad-request", `Expected FORM_TYPE '${NS_MAM}'`);
    }
    const withValue = single(map, "with");
    if (withValue !== undefined) {
      const jid = normalizeJid(withValue);
      if (jid === undefined) return fail("bad-request", `Invalid JID in 'with': ${withValue}`);
      q.with = jid;
    }
    for (const field of ["start", "end"] as const) {
      const value = single(map, field);
      if (value === undefined) continue;
      const t = parseDateTime(value);
      if (t === undefined) return fail("bad-request", `Invalid date in '${field}': ${value}`);
      // Inclusive bounds on whole ms: round inwards.
      if (field === "start") q.start = Math.ceil(t.ms);
      else q.end = t.fraction ? Math.floor(t.ms) : t.ms + 999;
    }
    const afterId = single(map, "after-id");
    if (afterId !== undefined) q.afterId = afterId;
    const beforeId = single(map, "before-id");
    if (beforeId !== undefined) q.beforeId = beforeId;
    const ids = map.get("ids");
    if (ids !== undefined && ids.length > 0) {
      if (ids.includes("")) return fail("bad-request", "Empty value in 'ids'");
      q.ids = [...new Set(ids)];
    }
  }

  const set = child(query, "set", NS_RSM);
  if (set !== undefined) {
    if (child(set, "index") !== undefined) {
      return fail("feature-not-implemented", "RSM <index/> is not supported");
    }
    const max = child(set, "max");
    if (max !== undefined) {
      const t = text(max);
      if (!/^\d+$/.test(t)) return fail("bad-request", `Invalid RSM <max>: ${t}`);
      q.max = Math.min(Number(t), MAX_PAGE);
    }
    const after = child(set, "after");
    if (after !== undefined) {
      if (text(after) === "") return fail("bad-request", "Empty RSM <after/>");
      q.after = text(after);
    }
    const before = child(set, "before");
    if (before !== undefined) q.before = text(before) === "" ? true : text(before);
  }
  q.flip = child(query, "flip-page") !== undefined;
  return q;
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

/** One result message (XEP-0313 §4.2). No `from`: it comes from the user's own account. */
function resultMessage(item: ArchivedMessage, queryId: string | undefined, to: string): Element {
  return elem("message", { xmlns: NS_CLIENT, to }, [
    elem("result", { xmlns: NS_MAM, queryid: queryId, id: item.id }, [
      elem("forwarded", { xmlns: NS_FORWARD }, [
        elem("delay", { xmlns: NS_DELAY, stamp: stamp(item.ts) }),
        item.stanza,
      ]),
    ]),
  ]);
}

/** The result messages, in the order to send them (newest first when flip-page was asked). */
export function resultMessages(page: QueryPage, q: ArchiveQuery, to: string): Element[] {
  const out = page.items.map((item) => resultMessage(item, q.queryId, to));
  return q.flip ? out.reverse() : out;
}

/**
 * The final iq result with `<fin/>` and its RSM `<set/>`. `first` and `last` name the oldest and
 * newest item of the page even when flipped: flip-page changes only the order of sending
 * (XEP-0313 §4.3.4), and RSM ids are positions in the result set, not in the transmission.
 */
export function finResult(iq: Element, page: QueryPage, _q: ArchiveQuery): Element {
  const first = page.scanned?.first ?? page.items[0]?.id;
  const last = page.scanned?.last ?? page.items[page.items.length - 1]?.id;
  const set = elem("set", { xmlns: NS_RSM }, [
    first !== undefined &&
    elem("first", { index: page.scanned ? undefined : page.firstIndex?.toString() }, [first]),
    last !== undefined && elem("last", {}, [last]),
    page.count !== undefined && elem("count", {}, [String(page.count)]),
  ]);
  return iqResult(
    iq,
    elem("fin", { xmlns: NS_MAM, complete: page.complete ? "true" : undefined }, [set]),
  );
}

/** Archiving preferences: a default and two JID lists (normalised). */
export interface ArchivePrefs {
  readonly default: "always" | "never" | "roster";
  readonly always: readonly string[];
  readonly never: readonly string[];
}

const DEFAULTS: ReadonlySet<string> = new Set(["always", "never", "roster"]);

function jidList(prefs: Element, name: "always" | "never"): string[] | MamError {
  const list = child(prefs, name);
  if (list === undefined) return [];
  // A Set, not an object keyed by JID ('constructor' and '__proto__' are JIDs too), and not
  // a search of the array per JID: the list is as long as the client makes it.
  const out = new Set<string>();
  for (const j of childElements(list, prefs.xmlns)) {
    if (j.name !== "jid") continue;
    const jid = normalizeJid(text(j));
    if (jid === undefined) return fail("bad-request", `Invalid JID in <${name}/>: ${text(j)}`);
    out.add(jid);
  }
  return [...out];
}

/**
 * Parses `<prefs xmlns="urn:xmpp:mam:2" default=...>` with optional `<always/>` and `<never/>`
 * lists of `<jid/>`. bad-request for a missing or unknown default or a bad JID.
 */
export function parsePrefs(prefs: Element): ArchivePrefs | MamError {
  const d = prefs.attrs.default;
  if (d === undefined || !DEFAULTS.has(d)) {
    return fail("bad-request", `Invalid 'default': ${d ?? "(missing)"}`);
  }
  const always = jidList(prefs, "always");
  if ("error" in always) return always;
  const never = jidList(prefs, "never");
  if ("error" in never) return never;
  return { default: d as ArchivePrefs["default"], always, never };
}

/** `<prefs xmlns=NS_MAM default=...><always><jid/>...</always><never>...</never></prefs>`. */
export function prefsElement(p: ArchivePrefs): Element {
  const list = (name: string, jids: readonly string[]) =>
    elem(name, {}, jids.map((j) => elem("jid", {}, [j])));
  return elem("prefs", { xmlns: NS_MAM, default: p.default }, [
    list("always", p.always),
    list("never", p.never),
  ]);
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
 * `<metadata xmlns=NS_MAM><start id timestamp/><end id timestamp/></metadata>` (XEP-0313 §5);
 * an empty `<metadata/>` for an empty archive.
 */
export function metadataElement(
  first: ArchivedMessage | undefined,
  last: ArchivedMessage | undefined,
): Element {
  const mark = (name: string, m: ArchivedMessage | undefined) =>
    m !== undefined && elem(name, { id: m.id, timestamp: stamp(m.ts) });
  return elem("metadata", { xmlns: NS_MAM }, [mark("start", first), mark("end", last)]);
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
