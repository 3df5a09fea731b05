/**
 * Blocking command (XEP-0191): the user's block list, kept per account (store `blocklist`),
 * answered by the account's queue, copied into each session at bind and on change. Stanzas
 * from a blocked JID never reach the user (messages and iqs bounce with service-unavailable,
 * the rest is dropped); stanzas to one are refused with `<blocked/>`. Blocking a contact sends
 * them unavailable presence, unblocking sends the current presence again.
 * @module
 */
import { contactsWith } from "../core/roster.ts";
import { bareJid, type Roster, type Session } from "../core/session.ts";
import { childElements, elem, type Element, stanza } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { utf8Bytes } from "../limits.ts";
import { formatJid, normalizeJid, parseJid } from "../xmpp/jid.ts";
import {
  NS_BLOCKING,
  NS_BLOCKING_ERRORS,
  NS_STANZA_ERRORS as NS_STANZAS,
} from "../xmpp/namespaces.ts";
import type { AccountOutput } from "../core/types.ts";
import { resentPresence } from "../core/resent_presence.ts";
import type {
  AccountIqCtx,
  AccountIqResult,
  Module,
  OutboundVerdict,
  Output,
  ResourceView,
  Step,
} from "../core/types.ts";

/** Blocked JIDs, normalised, in the order they were blocked. */
export type Blocklist = readonly string[];

/** A block list with its index: membership is one Set lookup per JID form. */
interface Indexed {
  readonly list: Blocklist;
  readonly set: ReadonlySet<string>;
  /** UTF-8 bytes of the JIDs, for `limits.blocklistBytes`. */
  readonly bytes: number;
}

const EMPTY: Indexed = { list: [], set: new Set(), bytes: 0 };

/**
 * Indexes by list identity. A list is never changed in place (a change makes a new one, which
 * the account hands to every session), so the index is built once per change, on first use, and
 * shared by the account's screen, every session and the router; no stanza pays for the list's
 * length. Weak, so that a replaced list and its index go together.
 */
const INDEXES = new WeakMap<object, Indexed>();

function indexed(data: unknown): Indexed {
  if (!Array.isArray(data) || data.length === 0) return EMPTY;
  let hit = INDEXES.get(data);
  if (hit === undefined) {
    // Stored data is a JSON array of JIDs; anything else in it is ignored.
    const list: Blocklist = data.every((j) => typeof j === "string")
      ? data
      : data.filter((j): j is string => typeof j === "string");
    let bytes = 0;
    for (const j of list) bytes += utf8Bytes(j);
    hit = { list, set: new Set(list), bytes };
    INDEXES.set(data, hit);
    if (list !== data) INDEXES.set(list, hit);
  }
  return hit;
}

/** The block list in a stored value (a JSON array of JIDs; anything else is empty). */
function blocklistOf(data: unknown): Blocklist {
  return indexed(data).list;
}

/**
 * Whether the indexed items cover a JID, as XEP-0016 §2.1 matches (XEP-0191 §3.5 defers to it):
 * a full JID only itself, a bare JID all its resources, a domain everything at it,
 * `domain/resource` that resource of the domain. So at most four lookups, whatever the size.
 */
function coveredBy(set: ReadonlySet<string>, jid: string): boolean {
  if (set.size === 0) return false;
  if (set.has(jid)) return true;
  const j = parseJid(jid);
  if (j === undefined) return false;
  if (set.has(j.domain)) return true;
  if (j.local !== undefined && set.has(`${j.local}@${j.domain}`)) return true;
  // The JID as given may not be normalised; items are.
  const full = formatJid(j);
  return full !== jid && set.has(full);
}

/** Whether the list blocks `jid`. */
export function isBlocked(list: Blocklist | undefined, jid: string | undefined): boolean {
  if (list === undefined || list.length === 0 || jid === undefined) return false;
  return coveredBy(indexed(list).set, jid);
}

/** True when `jid` is the user's own account or one of its resources: never blocked. */
function isOwn(jid: string, bare: string): boolean {
  // Compared in place: no `bare + "/"` string made for every stanza.
  const n = bare.length;
  return jid.length === n
    ? jid === bare
    : jid.length > n && jid.charCodeAt(n) === 0x2f && jid.startsWith(bare);
}

/**
 * What becomes of a stanza from a blocked JID (XEP-0191 §3.5): messages and iq requests are
 * answered with service-unavailable, everything else (presence, results, errors) is dropped.
 */
function bounceBlocked(el: Element): Element[] {
  const type = el.attrs.type;
  if (el.name === "message" && type !== "error") {
    return [errorReply(el, "service-unavailable", { type: "cancel" })];
  }
  if (el.name === "iq" && (type === "get" || type === "set")) {
    return [errorReply(el, "service-unavailable", { type: "cancel" })];
  }
  return [];
}

/** The account's screen: a stanza from someone the user blocked goes no further. */
function screen(data: unknown, el: Element): readonly Element[] | undefined {
  return isBlocked(blocklistOf(data), el.attrs.from) ? bounceBlocked(el) : undefined;
}

/**
 * A message for a local user, screened where it is delivered (the router and the account use
 * the list the user's resources hold): undefined lets it through, else what to route instead.
 */
export function blockedMessage(
  el: Element,
  bare: string,
  resources: readonly ResourceView[],
): Element[] | undefined {
  const from = el.attrs.from;
  if (from === undefined || isOwn(from, bare)) return undefined;
  const list = resources.find((r) => r.blocklist !== undefined)?.blocklist;
  return isBlocked(list, from) ? bounceBlocked(el) : undefined;
}

/**
 * A stanza routed to a session, screened once more: presence and iqs reach sessions directly
 * (and a message may have been queued before the block), so this is where every path meets.
 */
function blockedInbound(s: Session, el: Element): Step | undefined {
  const from = el.attrs.from;
  const bare = bareJid(s);
  if (from === undefined || bare === undefined || isOwn(from, bare)) return undefined;
  if (!isBlocked(s.blocklist, from)) return undefined;
  // Messages were bounced upstream when they were screened; one that slipped by is dropped.
  if (el.name === "message") return [s, []];
  return [s, bounceBlocked(el).map((stanza) => ({ kind: "route", stanza }))];
}

/** The error the user gets for a stanza to a JID they blocked (XEP-0191 §3.6). */
function blockedError(el: Element): Element {
  const { from, to, id } = el.attrs;
  // Built by hand: Prosody's text carries no xml:lang, and conformance scripts compare exactly.
  return stanza(el.name as "message" | "iq", { type: "error", id, from: to, to: from }, [
    elem("error", { type: "cancel" }, [
      elem("not-acceptable", { xmlns: NS_STANZAS }),
      elem("text", { xmlns: NS_STANZAS }, ["You have blocked this JID"]),
      elem("blocked", { xmlns: NS_BLOCKING_ERRORS }),
    ]),
  ]);
}

/**
 * A stanza from the user (from stamped, to normalised) to a JID they blocked: messages and iq
 * requests are refused with `<blocked/>`, the rest (presence, results, errors) dropped.
 * Undefined when the stanza may go.
 */
function refuseBlocked(s: Session, el: Element): Step | undefined {
  const to = el.attrs.to;
  const bare = bareJid(s);
  if (to === undefined || bare === undefined || to === s.host || isOwn(to, bare)) return undefined;
  if (!isBlocked(s.blocklist, to)) return undefined;
  const type = el.attrs.type;
  const answered = (el.name === "message" && type !== "error") ||
    (el.name === "iq" && (type === "get" || type === "set"));
  return [s, answered ? [{ kind: "send", stanza: blockedError(el) }] : []];
}

/** Drops routes to blocked JIDs from a step (presence broadcasts and probes). */
export function withoutBlockedRoutes(s: Session, out: readonly Output[]): readonly Output[] {
  if (s.blocklist === undefined || s.blocklist.length === 0) return out;
  const kept = out.filter((o: Output) =>
    o.kind !== "route" || o.stanza.attrs.to === undefined ||
    !isBlocked(s.blocklist, o.stanza.attrs.to)
  );
  return kept.length === out.length ? out : kept;
}

function listElement(name: "blocklist" | "block" | "unblock", jids: readonly string[]): Element {
  return elem(name, { xmlns: NS_BLOCKING }, jids.map((jid) => elem("item", { jid })));
}

/** The items of a block or unblock request, normalised; undefined when one is malformed. */
function itemsOf(payload: Element): string[] | undefined {
  // A Set: one request may carry thousands of items.
  const out = new Set<string>();
  for (const item of childElements(payload, NS_BLOCKING)) {
    if (item.name !== "item") continue;
    const jid = item.attrs.jid === undefined ? undefined : normalizeJid(item.attrs.jid);
    if (jid === undefined) return undefined;
    out.add(jid);
  }
  return [...out];
}

function refused(
  iq: Element,
  condition: "service-unavailable" | "bad-request" | "jid-malformed" | "resource-constraint",
  text?: string,
) {
  return { replies: [errorReply(iq, condition, text === undefined ? {} : { text })] };
}

/**
 * Pushes of a change to the user's resources that requested the block list (XEP-0191 §3.3,
 * §3.4: "all of the user's connected resources that have requested the blocklist"), whether or
 * not they fetched the roster.
 */
function pushes(change: Element, ctx: AccountIqCtx): AccountOutput[] {
  const resources = ctx.resourcesOf?.(ctx.bare) ?? [];
  return resources.filter((r) => r.blocklistInterested === true).map((r) => ({
    kind: "deliver" as const,
    to: r.fullJid,
    stanza: stanza("iq", { type: "set", id: ctx.newId(), to: r.fullJid }, [change]),
  }));
}

/** Roster contacts that see the user's presence (from or both) and are covered by `items`. */
function subscribersCovered(roster: Roster | undefined, items: readonly string[]): string[] {
  if (roster === undefined || items.length === 0) return [];
  const set = new Set(items);
  return contactsWith(roster, ["from", "both"]).filter((c) => coveredBy(set, c));
}

function available(ctx: AccountIqCtx): ResourceView[] {
  return (ctx.resourcesOf?.(ctx.bare) ?? []).filter((r) => r.available);
}

/**
 * The change's effects, in order: every session's copy of the list first (so that what the
 * user sends next is screened), then the result, the pushes and the presence.
 */
function changed(
  iq: Element,
  list: Blocklist,
  change: Element,
  presence: readonly AccountOutput[],
  ctx: AccountIqCtx,
): AccountIqResult {
  return {
    data: list.length === 0 ? undefined : list,
    replies: [],
    outputs: [
      { kind: "blocklist", blocklist: list },
      { kind: "route", stanza: iqResult(iq) },
      ...pushes(change, ctx),
      ...presence,
    ],
  };
}

function onGet(data: unknown, iq: Element, _p: Element, _ctx: AccountIqCtx): AccountIqResult {
  if (iq.attrs.type !== "get") return refused(iq, "bad-request");
  return { replies: [iqResult(iq, listElement("blocklist", blocklistOf(data)))] };
}

function onBlock(data: unknown, iq: Element, payload: Element, ctx: AccountIqCtx) {
  if (iq.attrs.type !== "set") return refused(iq, "bad-request");
  const items = itemsOf(payload);
  if (items === undefined) return refused(iq, "jid-malformed");
  // XEP-0191 §3.3: a block without items is an error.
  if (items.length === 0) return refused(iq, "bad-request");
  const before = indexed(data);
  const added = items.filter((j) => !before.set.has(j));
  // Bounded like every collection a user grows (XEP-0191 names no condition; RFC 6120 §8.3.3.18
  // resource-constraint, type wait, as for the roster). Nothing is added when the whole is refused.
  let bytes = before.bytes;
  for (const j of added) bytes += utf8Bytes(j);
  if (before.list.length + added.length > ctx.limits.blocklistItems) {
    return refused(iq, "resource-constraint", "Too many blocked JIDs");
  }
  if (bytes > ctx.limits.blocklistBytes) {
    return refused(iq, "resource-constraint", "The block list is too large");
  }
  if (added.length === 0) {
    // Nothing new: the list stays the same array, and so does its index.
    return changed(iq, before.list, listElement("block", items), [], ctx);
  }
  const list = [...before.list, ...added];
  // XEP-0191 §3.3: the contacts go dark: unavailable from each available resource.
  const presence = subscribersCovered(ctx.roster, added).filter((c) => !coveredBy(before.set, c))
    .flatMap((contact) =>
      available(ctx).map((r) => ({
        kind: "route" as const,
        stanza: stanza("presence", { type: "unavailable", from: r.fullJid, to: contact }),
      }))
    );
  return changed(iq, list, listElement("block", items), presence, ctx);
}

function onUnblock(data: unknown, iq: Element, payload: Element, ctx: AccountIqCtx) {
  if (iq.attrs.type !== "set") return refused(iq, "bad-request");
  const items = itemsOf(payload);
  if (items === undefined) return refused(iq, "jid-malformed");
  const before = blocklistOf(data);
  // XEP-0191 §3.4: without items, everything is unblocked.
  const gone = new Set(items);
  const list = items.length === 0 ? [] : before.filter((j) => !gone.has(j));
  const removed = items.length === 0 ? before : before.filter((j) => gone.has(j));
  // Contacts no longer blocked see the user's presence again, as they would after a probe.
  const presence = subscribersCovered(ctx.roster, removed).filter((c) => !isBlocked(list, c))
    .flatMap((contact) =>
      available(ctx).flatMap((r) => {
        const el = resentPresence(r, contact);
        return el === undefined ? [] : [{ kind: "route" as const, stanza: el }];
      })
    );
  return changed(iq, list, listElement("unblock", items), presence, ctx);
}

/** The key of the block list request (XEP-0191 §3.2). */
const BLOCKLIST_REQUEST = `${NS_BLOCKING} blocklist`;

/**
 * A get of the block list from the user to their own account, by a resource that has not asked
 * yet: from then on it is told of the list's changes (XEP-0191 §3.2). The account answers the
 * request itself; the session only remembers that it asked.
 */
function asksForList(s: Session, el: Element): boolean {
  if (el.name !== "iq" || el.attrs.type !== "get" || s.blocklistInterested === true) return false;
  const to = el.attrs.to;
  if (to !== undefined && to !== bareJid(s)) return false;
  const payload = childElements(el)[0];
  return payload !== undefined && `${payload.xmlns} ${payload.name}` === BLOCKLIST_REQUEST;
}

/** The outbound hook: nothing goes to a JID the user blocked (§3.6); who asks for the list. */
function onOutbound(s: Session, el: Element): OutboundVerdict | undefined {
  const refused = refuseBlocked(s, el);
  if (refused !== undefined) return { stop: refused };
  return asksForList(s, el) ? { session: { ...s, blocklistInterested: true } } : undefined;
}

/**
 * XEP-0191: the block list of the user's account, announced on the domain. Registered before
 * the modules whose hooks must not see what it stops: a stanza to a blocked JID is refused
 * before any other outbound hook changes or copies it, and one from a blocked JID is dropped
 * before an inbound hook holds it.
 */
export const BLOCKING: Module = {
  name: "blocking",
  hostFeatures: [NS_BLOCKING],
  outbound: onOutbound,
  inbound: blockedInbound,
  presenceRoutes: withoutBlockedRoutes,
  delivery: { screen: blockedMessage },
  account: {
    store: "blocklist",
    iq: {
      [BLOCKLIST_REQUEST]: onGet,
      [`${NS_BLOCKING} block`]: onBlock,
      [`${NS_BLOCKING} unblock`]: onUnblock,
    },
    // XEP-0191 is about one's own account: to anyone else it does not exist.
    access: Object.fromEntries(
      [BLOCKLIST_REQUEST, `${NS_BLOCKING} block`, `${NS_BLOCKING} unblock`].map((key) => [
        key,
        { get: "self", set: "self", refusal: "service-unavailable" } as const,
      ]),
    ),
    onBound: (data, fullJid) => [{ kind: "blocklist", to: fullJid, blocklist: blocklistOf(data) }],
    screen,
  },
};

/** The session keeps the list it is sent (at bind and on each change). */
export function onBlocklist(s: Session, blocklist: Blocklist): Step {
  return [{ ...s, blocklist }, []];
}
