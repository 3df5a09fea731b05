/**
 * Pure roster operations (RFC 6121 §2) with roster versioning (XEP-0237): rendering the roster
 * and its pushes, validating a client's roster set, and the updates the roster and presence
 * features apply. Every operation returns a new roster; the input is never changed.
 *
 * Versions are a decimal counter ("0", "1", ...) bumped by one with each change, so a client
 * holding the current version can be answered with an empty result.
 *
 * Items and pending requests are keyed by peer-supplied JIDs ("constructor" is a valid one), so
 * they are only ever read as own properties ({@link rosterItem}, {@link pendingRequest}). Their
 * count and stored bytes are bounded (`[limits] roster_items`, `roster_bytes`,
 * `pending_subscriptions`) and kept as a running tally, so checking a change costs O(1).
 * @module
 */
import type { PendingRequest, Roster, RosterItem } from "./session.ts";
import { childElements, elem, type Element, stanza, text } from "../xml/element.ts";
import { bareJidOf, parseJid } from "../xmpp/jid.ts";
import { type Limits, utf8Bytes } from "../limits.ts";
import { NS_ROSTER } from "../xmpp/namespaces.ts";

/**
 * Longest item name and group name accepted, in code points. RFC 6121 §2.3.3 leaves the limit
 * to the server; this one matches the longest JID part, more than any human label needs.
 */
const MAX_LABEL_CHARS = 1024;

/** A change to announce in a roster push. */
export type RosterChange =
  | { readonly kind: "item"; readonly item: RosterItem }
  | { readonly kind: "remove"; readonly jid: string };

/** What a client asked for in a valid roster set. */
export type RosterSetChange =
  | {
    readonly kind: "update";
    readonly jid: string;
    readonly name?: string;
    readonly groups: readonly string[];
  }
  | { readonly kind: "remove"; readonly jid: string };

/** The outcome of {@link parseRosterSet}: the change, or the stanza error to answer with. */
export type RosterSetResult =
  | { readonly ok: true; readonly change: RosterSetChange }
  | {
    readonly ok: false;
    readonly condition: "bad-request" | "not-allowed" | "not-acceptable" | "item-not-found";
    readonly text: string;
  };

/** The fields a subscription transition decides. */
export interface SubscriptionFields {
  readonly subscription: RosterItem["subscription"];
  readonly ask?: "subscribe";
  readonly approved?: boolean;
}

/** The next version of a decimal counter. */
function nextVersion(version: string): string {
  // BigInt keeps the counter exact however long a roster lives. A version that is not a
  // counter (hand-edited storage) restarts at "1" rather than making the roster unusable.
  return /^\d+$/.test(version) ? String(BigInt(version) + 1n) : "1";
}

/**
 * The version as clients see it. Prosody numbers a roster that was never saved 1, and its first
 * save 1 as well; the conformance scripts expect exactly those numbers, so "0" shows as "1".
 */
function shownVersion(roster: Roster): string {
  return roster.version === "0" ? "1" : roster.version;
}

function bumped(roster: Roster, items: Roster["items"], pendingIn = roster.pendingIn): Roster {
  return { version: nextVersion(roster.version), items, pendingIn };
}

/** An own entry only: a JID such as "constructor" must not find Object.prototype's members. */
function own<T>(rec: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(rec, key) ? rec[key] : undefined;
}

function withoutKey<T>(rec: Readonly<Record<string, T>>, key: string): Record<string, T> {
  const next = { ...rec };
  delete next[key];
  return next;
}

/** The roster item for a bare JID, if there is one (own keys only). */
export function rosterItem(roster: Roster, jid: string): RosterItem | undefined {
  return own(roster.items, jid);
}

/** The stored inbound subscription request from a bare JID, if there is one (own keys only). */
export function pendingRequest(roster: Roster, jid: string): PendingRequest | undefined {
  return own(roster.pendingIn, jid);
}

/**
 * Most bytes of a request's payload kept with it (as stored, JSON). Enough for a status, a
 * nick and an XEP-0401 token many times over; larger children are left out (the request itself
 * still stands), so that each request costs at most a few KiB of the roster's bytes.
 */
export const MAX_REQUEST_PAYLOAD_BYTES = 4096;

/**
 * The request to store for an inbound "subscribe" (RFC 6121 §3.1.3): its child elements in
 * order, each whole, leaving out any that would take the payload past
 * {@link MAX_REQUEST_PAYLOAD_BYTES}; `true` when none is kept.
 */
export function pendingRequestOf(subscribe: Element): PendingRequest {
  const payload: Element[] = [];
  let bytes = 0;
  for (const c of childElements(subscribe)) {
    const n = utf8Bytes(JSON.stringify(c));
    if (bytes + n > MAX_REQUEST_PAYLOAD_BYTES) continue;
    payload.push(c);
    bytes += n;
  }
  return payload.length === 0 ? true : { payload };
}

/** The children a stored request is redelivered with (none for `true`, as older rosters hold). */
export function pendingPayload(request: PendingRequest): readonly Element[] {
  // Tolerates a hand-edited store: anything but a payload array redelivers a bare request.
  return request !== true && Array.isArray(request?.payload) ? request.payload : [];
}

/**
 * JSON framing of a stored item counted as a constant (its key, the field names, quotes,
 * subscription, ask, approved), so that a subscription change never changes a roster's size
 * and every size is known from the item alone.
 */
const ITEM_OVERHEAD = 96;
/** Quotes and comma around a stored group name. */
const GROUP_OVERHEAD = 3;
/** Key quotes, colon, comma and `true` or the payload's wrapper of a stored request. */
const PENDING_OVERHEAD = 16;

/**
 * Bytes an item takes in the stored roster (UTF-8, JSON escapes aside): the JID twice (as key
 * and field), the name, each group, and {@link ITEM_OVERHEAD}.
 */
export function itemBytes(item: RosterItem): number {
  let n = ITEM_OVERHEAD + 2 * utf8Bytes(item.jid);
  if (item.name !== undefined) n += utf8Bytes(item.name);
  for (const g of item.groups) n += GROUP_OVERHEAD + utf8Bytes(g);
  return n;
}

/** Bytes a pending request takes in the stored roster: its JID and its payload as stored. */
export function pendingBytes(jid: string, request: PendingRequest): number {
  const payload = pendingPayload(request);
  return PENDING_OVERHEAD + utf8Bytes(jid) +
    (payload.length === 0 ? 0 : utf8Bytes(JSON.stringify(payload)));
}

/** Entries and bytes of a record of items or of pending requests. */
interface Tally {
  readonly count: number;
  readonly bytes: number;
}

/**
 * Tallies by record, carried from each record to the one derived from it, so that a change is
 * checked in O(1). A record with none (a roster just loaded from storage) is counted once.
 * Records are immutable, so a memo keyed by identity can never go stale.
 */
const itemTallies = new WeakMap<object, Tally>();
const pendingTallies = new WeakMap<object, Tally>();

function itemTally(items: Roster["items"]): Tally {
  let t = itemTallies.get(items);
  if (t === undefined) {
    let bytes = 0;
    const all = Object.values(items);
    for (const item of all) bytes += itemBytes(item);
    t = { count: all.length, bytes };
    itemTallies.set(items, t);
  }
  return t;
}

function pendingTally(pendingIn: Roster["pendingIn"]): Tally {
  let t = pendingTallies.get(pendingIn);
  if (t === undefined) {
    let bytes = 0;
    const all = Object.entries(pendingIn);
    for (const [jid, request] of all) bytes += pendingBytes(jid, request);
    t = { count: all.length, bytes };
    pendingTallies.set(pendingIn, t);
  }
  return t;
}

/** `items` with `jid` set to `item` (or removed), its tally carried over. */
function itemsWith(
  items: Roster["items"],
  jid: string,
  item: RosterItem | undefined,
): Roster["items"] {
  const t = itemTally(items);
  const old = own(items, jid);
  // A computed key: "__proto__" becomes an own property, not the record's prototype.
  const next = item === undefined ? withoutKey(items, jid) : { ...items, [jid]: item };
  itemTallies.set(next, {
    count: t.count + (old === undefined ? 0 : -1) + (item === undefined ? 0 : 1),
    bytes: t.bytes - (old === undefined ? 0 : itemBytes(old)) +
      (item === undefined ? 0 : itemBytes(item)),
  });
  return next;
}

/** `pendingIn` with the request from `jid` set (or removed), its tally carried over. */
function pendingWith(
  pendingIn: Roster["pendingIn"],
  jid: string,
  request: PendingRequest | undefined,
): Roster["pendingIn"] {
  const t = pendingTally(pendingIn);
  const old = own(pendingIn, jid);
  const next = request === undefined
    ? withoutKey(pendingIn, jid)
    : { ...pendingIn, [jid]: request };
  pendingTallies.set(next, {
    count: t.count + (old === undefined ? 0 : -1) + (request === undefined ? 0 : 1),
    bytes: t.bytes - (old === undefined ? 0 : pendingBytes(jid, old)) +
      (request === undefined ? 0 : pendingBytes(jid, request)),
  });
  return next;
}

/** What a roster holds against its bounds. */
export interface RosterUsage {
  /** Roster items (`roster_items`). */
  readonly items: number;
  /** Pending inbound requests (`pending_subscriptions`). */
  readonly pending: number;
  /** Bytes as stored, items and pending requests with their payloads (`roster_bytes`). */
  readonly bytes: number;
}

/** The roster's size; O(1) for a roster derived by this module, O(n) once for a loaded one. */
export function rosterUsage(roster: Roster): RosterUsage {
  const i = itemTally(roster.items);
  const p = pendingTally(roster.pendingIn);
  return { items: i.count, pending: p.count, bytes: i.bytes + p.bytes };
}

/** The bound a change broke: RFC 6121 §2.3.3 resource-constraint. */
export type RosterOverflow = "items" | "pending" | "bytes";

/**
 * The bound `after` goes past by growing from `before`, or undefined. A roster already past a
 * bound (limits lowered, an older store) may still shrink or change in place: only growth
 * past a cap is refused.
 */
export function rosterOverflow(
  before: Roster,
  after: Roster,
  limits: Pick<Limits, "rosterItems" | "rosterBytes" | "pendingSubscriptions">,
): RosterOverflow | undefined {
  if (after === before) return undefined;
  const a = rosterUsage(after);
  const b = rosterUsage(before);
  if (a.items > limits.rosterItems && a.items > b.items) return "items";
  if (a.pending > limits.pendingSubscriptions && a.pending > b.pending) return "pending";
  if (a.bytes > limits.rosterBytes && a.bytes > b.bytes) return "bytes";
  return undefined;
}

/**
 * `<query xmlns="jabber:iq:roster" ver=...>` with every item, or undefined when the client's
 * `ver` equals the current version (XEP-0237: the result is then an empty iq result).
 * `requestedVer` undefined = client sent no ver.
 */
export function rosterQuery(roster: Roster, requestedVer: string | undefined): Element | undefined {
  if (requestedVer !== undefined && requestedVer === shownVersion(roster)) return undefined;
  // A stale or unknown ver gets the whole roster: we keep no history to send a diff from.
  return elem(
    "query",
    { xmlns: NS_ROSTER, ver: shownVersion(roster) },
    Object.values(roster.items).map(itemElement),
  );
}

/** The `<item/>` element of an item (jid, name, subscription, ask, approved="true", groups). */
export function itemElement(item: RosterItem): Element {
  return elem(
    "item",
    {
      xmlns: NS_ROSTER,
      jid: item.jid,
      name: item.name,
      subscription: item.subscription,
      ask: item.ask,
      approved: item.approved === true ? "true" : undefined,
    },
    item.groups.map((g) => elem("group", { xmlns: NS_ROSTER }, [g])),
  );
}

/**
 * A roster push (RFC 6121 §2.1.6): `<iq type="set" id=... to=fullJid><query ver=...><item
 * .../></query></iq>`; for a removed item, the item element is `<item jid=...
 * subscription="remove"/>`. `roster` is the roster after the change, whose version is sent.
 */
export function rosterPush(roster: Roster, change: RosterChange, to: string, id: string): Element {
  const item = change.kind === "item"
    ? itemElement(change.item)
    : elem("item", { xmlns: NS_ROSTER, jid: change.jid, subscription: "remove" });
  return stanza("iq", { type: "set", id, to }, [
    elem("query", { xmlns: NS_ROSTER, ver: shownVersion(roster) }, [item]),
  ]);
}

function fail(
  condition: "bad-request" | "not-allowed" | "not-acceptable",
  message: string,
): RosterSetResult {
  return { ok: false, condition, text: message };
}

function tooLong(s: string): boolean {
  // Cheap test first: code points never outnumber UTF-16 units.
  return s.length > MAX_LABEL_CHARS && Array.from(s).length > MAX_LABEL_CHARS;
}

/**
 * Validates a roster set's query (RFC 6121 §2.3.3, §2.5.3): exactly one item (else
 * bad-request); a valid bare JID (else bad-request; it is normalised); not the user's own bare
 * JID (not-allowed); a name of at most 1024 characters and group names of at most 1024
 * characters (else not-acceptable); no empty group (not-acceptable, as RFC 6121 §2.3.3 says)
 * and no duplicate group (bad-request). The subscription attribute is only read for "remove";
 * other values, `ask` and `approved` are ignored because the subscription state is the
 * server's. An empty name counts as no name. Returns the requested change.
 */
export function parseRosterSet(query: Element, ownBare: string): RosterSetResult {
  const items = childElements(query, NS_ROSTER).filter((c) => c.name === "item");
  // RFC 6121 §2.3.3: the query MUST contain exactly one item.
  if (items.length !== 1) {
    return fail("bad-request", items.length === 0 ? "No roster item" : "More than one item");
  }
  const item = items[0];
  const jidAttr = item.attrs.jid;
  if (jidAttr === undefined) return fail("bad-request", "The item has no jid");
  const parsed = parseJid(jidAttr);
  if (parsed === undefined) return fail("bad-request", "The item's jid is not a valid JID");
  // Roster items are bare JIDs (RFC 6121 §2.1.2.3); a full JID is a client mistake.
  if (parsed.resource !== undefined) return fail("bad-request", "The item's jid has a resource");
  const jid = bareJidOf(jidAttr)!;
  // The user's own presence is the server's to route, not a subscription's: no self-contact.
  if (jid === (bareJidOf(ownBare) ?? ownBare)) {
    return fail("not-allowed", "The roster cannot hold your own JID");
  }

  // RFC 6121 §2.5.2: a remove request carries only the jid; anything else on it is ignored.
  if (item.attrs.subscription === "remove") return { ok: true, change: { kind: "remove", jid } };

  const rawName = item.attrs.name;
  // Clients clear a name with name=""; storing an empty label helps nobody.
  const name = rawName === undefined || rawName === "" ? undefined : rawName;
  if (name !== undefined && tooLong(name)) return fail("not-acceptable", "The name is too long");

  const groups: string[] = [];
  for (const g of childElements(item, NS_ROSTER)) {
    if (g.name !== "group") continue;
    const group = text(g);
    // RFC 6121 §2.3.3: zero-length and over-long groups are not-acceptable, duplicates bad-request.
    if (group === "") return fail("not-acceptable", "A group name is empty");
    if (tooLong(group)) return fail("not-acceptable", "A group name is too long");
    if (groups.includes(group)) return fail("bad-request", "Duplicate group");
    groups.push(group);
  }
  return {
    ok: true,
    change: name === undefined
      ? { kind: "update", jid, groups }
      : { kind: "update", jid, name, groups },
  };
}

/**
 * Applies an update from the user: creates the item (subscription none) or changes its name and
 * groups, keeping subscription/ask/approved; bumps the version.
 */
export function updateItem(
  roster: Roster,
  jid: string,
  name: string | undefined,
  groups: readonly string[],
): { readonly roster: Roster; readonly item: RosterItem } {
  const old = own(roster.items, jid);
  const base: RosterItem = old === undefined ? { jid, subscription: "none", groups: [] } : old;
  // Rebuilt rather than spread so that a cleared name is an absent key, not `name: undefined`.
  const { name: _oldName, ...rest } = base;
  const item: RosterItem = name === undefined
    ? { ...rest, groups: [...groups] }
    : { ...rest, name, groups: [...groups] };
  return { roster: bumped(roster, itemsWith(roster.items, jid, item)), item };
}

/**
 * Removes an item (and any pending inbound request from that JID); undefined when there is no
 * such item (the caller answers item-not-found, RFC 6121 §2.5.3). Bumps the version.
 */
export function removeItem(
  roster: Roster,
  jid: string,
): { readonly roster: Roster; readonly removed: RosterItem } | undefined {
  const removed = own(roster.items, jid);
  if (removed === undefined) return undefined;
  const pendingIn = Object.hasOwn(roster.pendingIn, jid)
    ? pendingWith(roster.pendingIn, jid, undefined)
    : roster.pendingIn;
  return { roster: bumped(roster, itemsWith(roster.items, jid, undefined), pendingIn), removed };
}

/**
 * Replaces an item's subscription fields (after a subscription transition), creating the item
 * when it is missing and `create` is set; bumps the version when anything changed; returns the
 * item or undefined when it is not in the roster and was not created.
 */
export function setSubscription(
  roster: Roster,
  jid: string,
  fields: SubscriptionFields,
  create: boolean,
): { readonly roster: Roster; readonly item: RosterItem | undefined; readonly changed: boolean } {
  const old = own(roster.items, jid);
  if (old === undefined && !create) return { roster, item: undefined, changed: false };
  const { ask: _ask, approved: _approved, ...rest }: RosterItem = old ??
    { jid, subscription: "none", groups: [] };
  // Absent keys stay absent so that stored items compare and serialise the same way.
  const item: RosterItem = {
    ...rest,
    subscription: fields.subscription,
    ...(fields.ask !== undefined ? { ask: fields.ask } : {}),
    ...(fields.approved === true ? { approved: true } : {}),
  };
  const changed = old === undefined || old.subscription !== item.subscription ||
    old.ask !== item.ask || (old.approved === true) !== (item.approved === true);
  if (!changed) return { roster, item: old, changed: false };
  return { roster: bumped(roster, itemsWith(roster.items, jid, item)), item, changed: true };
}

/**
 * Records (`true` or a request with its payload) or clears (`false`) a pending inbound request.
 * A request already pending is kept as it was stored: a repeat is not delivered either (RFC
 * 6121 A.3.1), so the user sees the first one. The version moves too, as Prosody's does (the
 * request is saved with the roster), so the numbers clients see match the conformance scripts.
 */
export function setPendingIn(
  roster: Roster,
  jid: string,
  pending: boolean | PendingRequest,
): Roster {
  if ((pending !== false) === Object.hasOwn(roster.pendingIn, jid)) return roster;
  return bumped(
    roster,
    roster.items,
    pendingWith(roster.pendingIn, jid, pending === false ? undefined : pending),
  );
}

/** Contacts whose subscription is in the given set, e.g. ["from","both"] for presence broadcast. */
export function contactsWith(
  roster: Roster,
  subs: readonly RosterItem["subscription"][],
): string[] {
  return Object.values(roster.items).filter((i) => subs.includes(i.subscription)).map((i) => i.jid);
}
