/**
 * XEP-0313 on the wire: parsing queries (`urn:xmpp:mam:2` and `#extended`) and preferences,
 * building result messages, the `<fin/>` reply and archive metadata.
 * @module
 */
import { child, childElements, elem, type Element, text } from "../../xml/element.ts";
import { type DataForm, findForm, parseForm } from "../../xmpp/forms.ts";
import { iqResult, type StanzaErrorCondition } from "../../xmpp/errors.ts";
import { parseDateTime } from "../../xmpp/datetime.ts";
import { normalizeJid } from "../../xmpp/jid.ts";
import { NS_CLIENT, NS_DELAY, NS_FORWARD, NS_MAM, NS_RSM } from "../../xmpp/namespaces.ts";
import {
  type ArchivedMessage,
  type ArchivePrefs,
  type ArchiveQuery,
  DEFAULT_MAX,
  MAX_PAGE,
  type QueryPage,
  stamp,
} from "../../core/archive.ts";

/** Why a query or preferences element was refused. */
export interface MamError {
  readonly error: StanzaErrorCondition;
  readonly text: string;
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
