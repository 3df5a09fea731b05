/**
 * The account reducer: everything that belongs to a user rather than to one of their sessions
 * (the roster with its subscription states and pending requests, offline messages), reduced
 * one operation at a time per account whether or not the user is online. Sessions keep a copy
 * of the roster, refreshed by `roster-changed`.
 * @module
 */
import type { RosterSetChange } from "../core/roster.ts";
import {
  pendingPayload,
  pendingRequest,
  pendingRequestOf,
  removeItem,
  rosterItem,
  type RosterOverflow,
  rosterOverflow,
  rosterPush,
  rosterQuery,
  setPendingIn,
  setSubscription,
  updateItem,
} from "../core/roster.ts";
import {
  EMPTY_ROSTER,
  type PendingRequest,
  type Roster,
  type RosterItem,
} from "../core/session.ts";
import {
  inbound,
  NO_SUBSCRIPTION,
  outbound,
  type SubscriptionType,
  subscriptionTypeOf,
  type SubState,
} from "../core/subscription.ts";
import {
  child,
  childElements,
  elem,
  type Element,
  stanza,
  withAttrs,
  withChildren,
} from "../xml/element.ts";
import { formatDateTime } from "../xmpp/datetime.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { bareJidOf, parseJid } from "../xmpp/jid.ts";
import {
  type ArchivedMessage,
  type ArchivePrefs,
  type ArchiveQuery,
  isArchivable,
  newArchiveId,
  type QueryPage,
  shouldArchive,
  withStanzaId,
} from "../core/archive.ts";
import {
  finResult,
  metadataElement,
  prefsElement,
  resultMessages,
} from "../modules/mam/protocol.ts";
import { messageDeliveries } from "../core/router.ts";
import { tombstoneReplies } from "../core/tombstones.ts";
import {
  ACCOUNT_BOUND,
  ACCOUNT_CAPS,
  ACCOUNT_IQ,
  ACCOUNT_LOGOUT,
  ACCOUNT_SCREEN,
  ACCOUNT_WAITING,
  DELIVERY,
  payloadKey,
} from "../modules/registry.ts";
import { resentPresence } from "../core/resent_presence.ts";
import type { IqWho, ResourceView, WaitingEvent } from "../core/types.ts";
import {
  type AccountCtx,
  type AccountOp,
  type AccountOutput,
  type AccountState,
  type AccountStep,
  NO_OFFLINE,
  offlineSize,
} from "../core/types.ts";
import { NS_DELAY, NS_ROSTER } from "../xmpp/namespaces.ts";

/** The subscription state of a contact as the tables see it. */
function subStateOf(roster: Roster, contact: string): SubState {
  const item = rosterItem(roster, contact);
  const pendingIn = pendingRequest(roster, contact) !== undefined;
  if (item === undefined) return { ...NO_SUBSCRIPTION, pendingIn };
  return {
    subscription: item.subscription,
    pendingOut: item.ask === "subscribe",
    pendingIn,
    approved: item.approved === true,
  };
}

function applySubState(
  roster: Roster,
  contact: string,
  next: SubState,
  request: PendingRequest = true,
): { roster: Roster; item: RosterItem | undefined; changed: boolean } {
  // A subscription either way, a request of the user's or a pre-approval needs an item
  // (RFC 6121 §3.1.2, §3.1.5, §3.4); a pending inbound request alone does not.
  const create = next.subscription !== "none" || next.pendingOut || next.approved;
  // `request` is stored only when the request is new: a pending one keeps what it had.
  const withPending = setPendingIn(roster, contact, next.pendingIn && request);
  const r = setSubscription(withPending, contact, {
    subscription: next.subscription,
    ask: next.pendingOut ? "subscribe" : undefined,
    approved: next.approved ? true : undefined,
  }, create);
  // One change, one version: the request and the item are saved together.
  const once = r.changed && withPending !== roster
    ? { ...r.roster, version: withPending.version }
    : r.roster;
  return { ...r, roster: once, changed: r.changed || withPending !== roster };
}

/** Local resources, or a remote contact's as federation saw them (for PEP notifications). */
function withRemote(ctx: AccountCtx): (bare: string) => readonly ResourceView[] {
  const remote = ctx.remoteResourcesOf;
  if (remote === undefined) return ctx.resourcesOf;
  return (bare) => {
    const local = ctx.resourcesOf(bare);
    return local.length > 0 ? local : remote(bare);
  };
}

function interested(ctx: AccountCtx, bare: string): ResourceView[] {
  return ctx.resourcesOf(bare).filter((r) => r.interested);
}

function available(ctx: AccountCtx, bare: string): ResourceView[] {
  return ctx.resourcesOf(bare).filter((r) => r.available);
}

/** Roster pushes of one change to every interested resource (RFC 6121 §2.1.6). */
function pushes(
  ctx: AccountCtx,
  bare: string,
  roster: Roster,
  change: Parameters<typeof rosterPush>[1],
): AccountOutput[] {
  return interested(ctx, bare).map((r) => ({
    kind: "deliver" as const,
    to: r.fullJid,
    stanza: rosterPush(roster, change, r.fullJid, ctx.newId()),
  }));
}

/** The current presence of each available resource, addressed to `to` (RFC 6121 §4.3.2). */
function presenceOfResources(ctx: AccountCtx, bare: string, to: string): AccountOutput[] {
  return available(ctx, bare).flatMap((r) => {
    const stanza = resentPresence(r, to);
    return stanza === undefined ? [] : [{ kind: "route" as const, stanza }];
  });
}

/** Unavailable presence from each available resource to `to`. */
function unavailableOfResources(ctx: AccountCtx, bare: string, to: string): AccountOutput[] {
  return available(ctx, bare).map((r) => ({
    kind: "route" as const,
    stanza: stanza("presence", { type: "unavailable", from: r.fullJid, to }),
  }));
}

function changedRoster(roster: Roster): AccountOutput[] {
  return [{ kind: "store-roster", roster }, { kind: "roster-changed", roster }];
}

/**
 * The resource-constraint answer to a subscription stanza of the user's that would take the
 * roster past a bound: to the resource that sent it when its full JID is known, else to each
 * of the user's connected resources (the session hands the stanza over from the bare JID).
 */
function userErrors(
  ctx: AccountCtx,
  bare: string,
  el: Element,
  over: RosterOverflow,
): AccountOutput[] {
  const error = errorReply(el, "resource-constraint", { text: overflowText(over) });
  const from = el.attrs.from;
  if (from !== undefined && parseJid(from)?.resource !== undefined) {
    return [{ kind: "deliver", to: from, stanza: error }];
  }
  return ctx.resourcesOf(bare).map((r) => ({ kind: "deliver", to: r.fullJid, stanza: error }));
}

/** The text of the resource-constraint answer to a change past a roster bound. */
function overflowText(over: RosterOverflow): string {
  switch (over) {
    case "items":
      return "The roster is full";
    case "bytes":
      return "The roster is too large";
    case "pending":
      return "Too many subscription requests are waiting";
  }
}

function subscriptionType(el: Element): SubscriptionType | undefined {
  return subscriptionTypeOf(el.attrs.type);
}

/** Reduces one operation on an account. */
export function reduceAccount(s: AccountState, op: AccountOp, ctx: AccountCtx): AccountStep {
  const screened = screenInbound(s, op);
  if (screened !== undefined) return [s, screened.map((stanza) => ({ kind: "route", stanza }))];
  switch (op.kind) {
    case "session-bound":
      return then([s, [
        // Before the roster: the session replays its held stanzas when the roster arrives.
        ...ACCOUNT_BOUND.flatMap((m) => m.onBound!(s.modules[m.store], op.fullJid)),
        { kind: "send-roster", to: op.fullJid, roster: s.roster },
      ]], (next) => onWaiting(next, { kind: "back" }, ctx));
    case "roster-get":
      return onRosterGet(s, op.iq);
    case "roster-set":
      return onRosterSet(s, op.iq, op.change, ctx);
    case "outbound-subscription":
      return onOutbound(s, op.stanza, ctx);
    case "inbound-subscription":
      return onInbound(s, op.stanza, ctx);
    case "probe":
      return onProbe(s, op.stanza, ctx);
    case "offline-message":
      return onOfflineMessage(s, op.stanza, ctx);
    case "initial-presence":
      return onInitialPresence(s, op.fullJid, op.priority);
    case "incoming-message":
      return onIncomingMessage(s, op.stanza, ctx);
    case "outgoing-message":
      return onOutgoingMessage(s, op.stanza, op.then ?? [], ctx);
    case "mam-query":
      return onMamQuery(s, op.iq, op.query, ctx);
    case "mam-metadata":
      return [s, [{ kind: "mam-metadata", iq: op.iq }]];
    case "mam-prefs":
      return onPrefs(s, op.iq, op.prefs, ctx);
    case "module-iq":
      return onModuleIq(s, op.iq, ctx);
    case "iq-reply":
      return onWaiting(s, { kind: "reply", iq: op.iq }, ctx);
    case "resource-caps":
      return [
        s,
        s.exists
          ? ACCOUNT_CAPS.flatMap((m) =>
            m.onCaps!(s.modules[m.store], s.bare, s.roster, op.fullJid, op.features)
          )
          : [],
      ];
    case "logout":
      return onLogout(s, op.status, ctx);
    case "sm-stash":
      // Kept on disk first, then the user hears of them (XEP-0357).
      return then(
        [s, [{ kind: "sm-stash", sid: op.sid, messages: op.messages }]],
        (next) => onWaiting(next, { kind: "hibernated", messages: op.messages }, ctx),
      );
    case "sm-unstash":
      // Resumed, or ended with its messages gone offline: the user's client is back, or gone.
      return then(
        [s, [{ kind: "sm-unstash", sid: op.sid }]],
        (next) => onWaiting(next, { kind: "back" }, ctx),
      );
    case "remove-account":
      // The shell deletes, then answers with `account-removed`.
      return [s, [{ kind: "delete-account", iq: op.iq }]];
    case "account-removed":
      return onAccountRemoved(s, op.iq, op.ok);
  }
}

/**
 * XEP-0077 §3.2, once the shell deleted the account (or failed to): the requesting session gets
 * its result, then every session of the account ends (unbound ones too: they authenticated as
 * an account that no longer exists). What stays cached is an account that no longer exists,
 * with its tombstone. A failed deletion is answered like any failed op, to the requester alone.
 */
function onAccountRemoved(s: AccountState, iq: Element, ok: boolean): AccountStep {
  if (!ok) return [s, failedOpReplies({ kind: "remove-account", iq })];
  const from = iq.attrs.from;
  const reply = from === undefined ? undefined : { to: from, stanza: iqResult(iq) };
  return [
    { ...s, exists: false, gone: true, roster: EMPTY_ROSTER, offline: NO_OFFLINE, modules: {} },
    [reply === undefined ? { kind: "end-sessions" } : { kind: "end-sessions", reply }],
  ];
}

/** What arrives from someone else, for the modules that screen it (XEP-0191 blocking). */
function inboundStanza(s: AccountState, op: AccountOp): Element | undefined {
  let el: Element;
  switch (op.kind) {
    case "inbound-subscription":
    case "probe":
    case "offline-message":
    case "incoming-message":
      el = op.stanza;
      break;
    case "module-iq":
      el = op.iq;
      break;
    default:
      return undefined;
  }
  const from = el.attrs.from === undefined ? undefined : bareJidOf(el.attrs.from);
  return from === undefined || from === s.bare ? undefined : el;
}

function screenInbound(s: AccountState, op: AccountOp): readonly Element[] | undefined {
  const el = inboundStanza(s, op);
  if (el === undefined) return undefined;
  for (const m of ACCOUNT_SCREEN) {
    const out = m.screen!(s.modules[m.store], el);
    if (out !== undefined) return out;
  }
  return undefined;
}

/** A step followed by another on its state, their outputs in order. */
function then(first: AccountStep, second: (s: AccountState) => AccountStep): AccountStep {
  const [next, out] = second(first[0]);
  return out.length === 0 && next === first[0] ? first : [next, [...first[1], ...out]];
}

/**
 * Messages wait for the user, or the user is back: the modules that watch (XEP-0357 push)
 * route what they route and store their new data.
 */
function onWaiting(s: AccountState, event: WaitingEvent, ctx: AccountCtx): AccountStep {
  if (!s.exists || ACCOUNT_WAITING.length === 0) return [s, []];
  const wctx = { bare: s.bare, now: ctx.now(), newId: ctx.newId, limits: ctx.limits };
  let modules = s.modules;
  const out: AccountOutput[] = [];
  for (const m of ACCOUNT_WAITING) {
    const result = m.onWaiting!(modules[m.store], event, wctx);
    if (result === undefined) continue;
    if ("data" in result) {
      modules = { ...modules, [m.store]: result.data };
      out.push({ kind: "store-module", store: m.store, data: result.data });
    }
    out.push(...result.outputs);
  }
  return [modules === s.modules ? s : { ...s, modules }, out];
}

/** Whether `from` (a bare JID) is one `who` names for this account. */
function mayAsk(who: IqWho, s: AccountState, from: string | undefined): boolean {
  if (who === "anyone" || from === s.bare) return true;
  if (who === "self" || from === undefined) return false;
  const sub = rosterItem(s.roster, from)?.subscription;
  return sub === "from" || sub === "both";
}

function onModuleIq(s: AccountState, iq: Element, ctx: AccountCtx): AccountStep {
  const payload = childElements(iq)[0];
  const entry = payload === undefined ? undefined : ACCOUNT_IQ.get(payloadKey(payload));
  if (entry === undefined || !s.exists) {
    return [s, [{ kind: "route", stanza: errorReply(iq, "service-unavailable") }]];
  }
  const from = iq.attrs.from === undefined ? undefined : bareJidOf(iq.attrs.from);
  const access = entry.access;
  if (access !== undefined) {
    const who = iq.attrs.type === "set" ? access.set : access.get;
    if (!mayAsk(who, s, from)) {
      return [s, [{ kind: "route", stanza: errorReply(iq, access.refusal) }]];
    }
  }
  const result = entry.handler(s.modules[entry.store], iq, payload, {
    bare: s.bare,
    self: from === s.bare,
    now: ctx.now(),
    newId: ctx.newId,
    roster: s.roster,
    resourcesOf: withRemote(ctx),
    limits: ctx.limits,
    also: Object.fromEntries(entry.alsoStores.map((name) => [name, s.modules[name]])),
  });
  const out: AccountOutput[] = [];
  const modules: Record<string, unknown> = { ...s.modules };
  if ("data" in result) {
    modules[entry.store] = result.data;
    out.push({ kind: "store-module", store: entry.store, data: result.data });
  }
  // Only the stores the module declared: the cache then matches what is stored.
  for (const name of entry.alsoStores) {
    if (result.alsoData === undefined || !(name in result.alsoData)) continue;
    modules[name] = result.alsoData[name];
    out.push({ kind: "store-module", store: name, data: result.alsoData[name] });
  }
  const next = out.length === 0 ? s : { ...s, modules };
  out.push(...result.outputs ?? []);
  // Replies go through the router: to the user's own session, or to whoever asked.
  for (const r of result.replies) out.push({ kind: "route", stanza: r });
  return [next, out];
}

/**
 * One of the user's available resources went: the modules that keep something of it (XEP-0012
 * §4: the latest logout is the last one) store their new data, without reading the old.
 */
function onLogout(s: AccountState, status: string | undefined, ctx: AccountCtx): AccountStep {
  if (!s.exists || ACCOUNT_LOGOUT.length === 0) return [s, []];
  const now = ctx.now();
  const modules: Record<string, unknown> = { ...s.modules };
  const out: AccountOutput[] = [];
  for (const m of ACCOUNT_LOGOUT) {
    const result = m.onLogout!(now, status);
    if (result === undefined) continue;
    modules[m.store] = result.data;
    out.push({ kind: "store-module", store: m.store, data: result.data });
  }
  return out.length === 0 ? [s, []] : [{ ...s, modules }, out];
}

/** The preferences in force for the user. */
function prefsOf(s: AccountState, ctx: AccountCtx): ArchivePrefs {
  return s.prefs ?? { default: ctx.archive.policy, always: [], never: [] };
}

/** Archives `el` with `peer` when the user's preferences say so; the item and the new state. */
function archived(
  s: AccountState,
  el: Element,
  peer: string | undefined,
  ctx: AccountCtx,
): { readonly state: AccountState; readonly item?: ArchivedMessage } {
  if (!ctx.archive.enabled || !s.exists || peer === undefined || !isArchivable(el)) {
    return { state: s };
  }
  const peerBare = bareJidOf(peer);
  if (peerBare === undefined) return { state: s };
  if (!shouldArchive(prefsOf(s, ctx), peerBare, rosterItem(s.roster, peerBare) !== undefined)) {
    return { state: s };
  }
  // Stamps never go backwards, so that the archive stays sorted by time.
  const ts = Math.max(ctx.now(), s.lastArchived);
  const item: ArchivedMessage = { id: newArchiveId(ts, ctx.random()), ts, peer, stanza: el };
  return { state: { ...s, lastArchived: ts }, item };
}

function onIncomingMessage(s: AccountState, el: Element, ctx: AccountCtx): AccountStep {
  if (!s.exists) return onOfflineMessage(s, el, ctx);
  const { state, item } = archived(s, el, el.attrs.from, ctx);
  const out: AccountOutput[] = [];
  let delivered = el;
  if (item !== undefined) {
    out.push({ kind: "archive-append", item });
    // XEP-0359: the recipient learns the archive id, once it is on disk.
    delivered = withStanzaId(el, s.bare, item.id);
  }
  const to = el.attrs.to === undefined ? undefined : parseJid(el.attrs.to);
  let next = state;
  for (
    const d of messageDeliveries(
      delivered,
      s.bare,
      to?.resource,
      ctx.resourcesOf(s.bare),
      DELIVERY,
    )
  ) {
    if (d.kind === "deliver") out.push({ kind: "deliver", to: d.to, stanza: d.stanza });
    else if (d.kind === "bounce") out.push({ kind: "route", stanza: d.stanza });
    else if (d.kind === "account" && d.op.kind === "offline-message") {
      const [after, more] = onOfflineMessage(next, d.op.stanza, ctx);
      next = after;
      out.push(...more);
    }
  }
  return [next, out];
}

/**
 * A message the user sent: kept in their archive when their policy says so, durably, and only
 * then routed on to its recipient, with the stanzas that follow it (`then`) after it.
 */
function onOutgoingMessage(
  s: AccountState,
  el: Element,
  then: readonly Element[],
  ctx: AccountCtx,
): AccountStep {
  const { state, item } = archived(s, el, el.attrs.to, ctx);
  const out: AccountOutput[] = item === undefined ? [] : [{ kind: "archive-append", item }];
  out.push({ kind: "route", stanza: el, senderArchived: true });
  for (const c of then) out.push({ kind: "route", stanza: c });
  return [state, out];
}

/**
 * A query of the user's archive, bounded: at most `limits.mamIds` ids (more is
 * `policy-violation`: XEP-0313 names no error for it, and the request is well-formed but
 * against the service's policy, RFC 6120 §8.3.3.12), and at most `limits.mamScan` records
 * read while filtering (see `ArchiveStore.query`).
 */
function onMamQuery(
  s: AccountState,
  iq: Element,
  query: ArchiveQuery,
  ctx: AccountCtx,
): AccountStep {
  const max = ctx.limits.mamIds;
  if (query.ids !== undefined && query.ids.length > max) {
    const text = `At most ${max} ids per query`;
    return [s, [{
      kind: "deliver",
      to: iq.attrs.from!,
      stanza: errorReply(iq, "policy-violation", { text }),
    }]];
  }
  return [s, [{ kind: "mam-query", iq, query: { ...query, scanLimit: ctx.limits.mamScan } }]];
}

function onPrefs(
  s: AccountState,
  iq: Element,
  prefs: ArchivePrefs | undefined,
  ctx: AccountCtx,
): AccountStep {
  // The lists are the user's to grow: capped together, not-acceptable as for a roster item
  // over a server limit (RFC 6121 §2.3.3). Nothing is stored then.
  if (prefs !== undefined && prefs.always.length + prefs.never.length > ctx.limits.mamPrefsJids) {
    const text = `At most ${ctx.limits.mamPrefsJids} JIDs in always and never together`;
    return [s, [{
      kind: "deliver",
      to: iq.attrs.from!,
      stanza: errorReply(iq, "not-acceptable", { text }),
    }]];
  }
  if (prefs === undefined) {
    return [s, [{
      kind: "deliver",
      to: iq.attrs.from!,
      stanza: iqResult(iq, prefsElement(prefsOf(s, ctx))),
    }]];
  }
  return [{ ...s, prefs }, [
    { kind: "store-prefs", prefs },
    { kind: "deliver", to: iq.attrs.from!, stanza: iqResult(iq, prefsElement(prefs)) },
  ]];
}

function onRosterGet(s: AccountState, iq: Element): AccountStep {
  const query = child(iq, "query", NS_ROSTER);
  const result = iqResult(iq, rosterQuery(s.roster, query?.attrs.ver));
  return [s, [{ kind: "deliver", to: iq.attrs.from!, stanza: result }]];
}

function onRosterSet(
  s: AccountState,
  iq: Element,
  change: RosterSetChange,
  ctx: AccountCtx,
): AccountStep {
  const requester = iq.attrs.from!;
  if (change.kind === "update") {
    const { roster, item } = updateItem(s.roster, change.jid, change.name, change.groups);
    // RFC 6121 §2.3.3: a roster set past the server's bounds is a resource-constraint.
    const over = rosterOverflow(s.roster, roster, ctx.limits);
    if (over !== undefined) {
      return [s, [{
        kind: "deliver",
        to: requester,
        stanza: errorReply(iq, "resource-constraint", { text: overflowText(over) }),
      }]];
    }
    return [{ ...s, roster }, [
      ...changedRoster(roster),
      // The result first, then the pushes: clients wait for the result of what they sent.
      { kind: "deliver", to: requester, stanza: iqResult(iq) },
      ...pushes(ctx, s.bare, roster, { kind: "item", item }),
    ]];
  }
  const removed = removeItem(s.roster, change.jid);
  if (removed === undefined) {
    return [s, [{ kind: "deliver", to: requester, stanza: errorReply(iq, "item-not-found") }]];
  }
  const { roster } = removed;
  const sub = removed.removed.subscription;
  const out: AccountOutput[] = [
    ...changedRoster(roster),
    { kind: "deliver", to: requester, stanza: iqResult(iq) },
    ...pushes(ctx, s.bare, roster, { kind: "remove", jid: change.jid }),
  ];
  // RFC 6121 §2.5.2: removing an item cancels the subscriptions both ways.
  if (sub === "to" || sub === "both" || removed.removed.ask === "subscribe") {
    out.push({
      kind: "route",
      stanza: stanza("presence", { type: "unsubscribe", from: s.bare, to: change.jid }),
    });
  }
  // A pending request from the contact is declined too, so their side does not wait forever.
  const declines = sub === "from" || sub === "both" ||
    pendingRequest(s.roster, change.jid) !== undefined;
  if (declines) {
    out.push({
      kind: "route",
      stanza: stanza("presence", { type: "unsubscribed", from: s.bare, to: change.jid }),
    });
    // The contact no longer sees this user's presence: say goodbye from each resource.
    if (sub === "from" || sub === "both") {
      out.push(...unavailableOfResources(ctx, s.bare, change.jid));
    }
  }
  return [{ ...s, roster }, out];
}

function onOutbound(s: AccountState, el: Element, ctx: AccountCtx): AccountStep {
  const type = subscriptionType(el);
  const contact = el.attrs.to;
  if (type === undefined || contact === undefined) return [s, []];
  const before = subStateOf(s.roster, contact);
  const { state, route } = outbound(before, type);
  // RFC 6121 §3.1.2: an outbound subscribe creates the item when it is missing.
  const { roster, item, changed } = applySubState(s.roster, contact, state);
  const over = rosterOverflow(s.roster, roster, ctx.limits);
  if (over !== undefined) {
    // Nothing changes and nothing goes out: the user hears why, as for a roster set.
    return [s, userErrors(ctx, s.bare, el, over)];
  }
  const out: AccountOutput[] = [];
  if (changed) {
    out.push(...changedRoster(roster));
    if (item !== undefined) out.push(...pushes(ctx, s.bare, roster, { kind: "item", item }));
  }
  // Subscription stanzas carry the user's bare JID (RFC 6121 §3.1.2).
  if (route) out.push({ kind: "route", stanza: withAttrs(el, { from: s.bare, to: contact }) });
  if (type === "subscribed" && route) {
    // RFC 6121 §3.1.5: the new subscriber gets the user's current presence. Its account asks
    // for it with a probe once it has handled this approval (onInbound), so the presence
    // cannot overtake the 'subscribed' and the roster push there. A contact on another server
    // gets it from here, after the 'subscribed' on the same link: its server need not probe
    // (Prosody does not).
    const domain = parseJid(contact)?.domain;
    if (domain !== undefined && ctx.federated?.(domain)) {
      out.push(...presenceOfResources(ctx, s.bare, contact));
    }
    // And if the user is subscribed to the contact too, learn the contact's presence now.
    if (state.subscription === "to" || state.subscription === "both") {
      out.push({
        kind: "route",
        stanza: stanza("presence", { type: "probe", from: s.bare, to: contact }),
      });
    }
  }
  if (type === "unsubscribed" && route) {
    out.push(...unavailableOfResources(ctx, s.bare, contact));
  }
  return [{ ...s, roster }, out];
}

function onInbound(s: AccountState, el: Element, ctx: AccountCtx): AccountStep {
  const type = subscriptionType(el);
  const from = el.attrs.from === undefined ? undefined : bareJidOf(el.attrs.from);
  // Subscription stanzas for a JID without an account are dropped (RFC 6121 §8.5.1).
  if (type === undefined || from === undefined) return [s, []];
  if (!s.exists) return [s, goneReplies(s, el)];
  const before = subStateOf(s.roster, from);
  const { state, deliver, autoReply } = inbound(before, type);
  // RFC 6121 §3.1.3: the request is stored with its payload, to be delivered again with it
  // (a repeat of a pending one is not stored: its payload is not even looked at).
  const request = type === "subscribe" && !before.pendingIn ? pendingRequestOf(el) : true;
  const { roster, item, changed } = applySubState(s.roster, from, state, request);
  const over = rosterOverflow(s.roster, roster, ctx.limits);
  if (over !== undefined) {
    // Refused rather than dropped, so the requester is not left waiting without a word (the
    // error is what Prosody's own "unable to save" case is marked to send).
    return [s, [{
      kind: "route",
      stanza: errorReply(el, "resource-constraint", { text: overflowText(over) }),
    }]];
  }
  const out: AccountOutput[] = [];
  if (changed) out.push(...changedRoster(roster));
  const delivered = withAttrs(el, { from, to: s.bare });
  if (deliver) {
    for (const r of available(ctx, s.bare)) {
      out.push({ kind: "deliver", to: r.fullJid, stanza: delivered });
    }
  }
  // The presence first, then the push, as Prosody sends them (the scripts expect this order).
  if (changed && item !== undefined) {
    out.push(...pushes(ctx, s.bare, roster, { kind: "item", item }));
  }
  if (type === "subscribed" && deliver) {
    // RFC 6121 §3.1.5, from this side: now subscribed, learn the contact's presence.
    out.push({
      kind: "route",
      stanza: stanza("presence", { type: "probe", from: s.bare, to: from }),
    });
  }
  if (autoReply === "subscribed") {
    out.push({
      kind: "route",
      stanza: stanza("presence", { type: "subscribed", from: s.bare, to: from }),
    });
    out.push(...presenceOfResources(ctx, s.bare, from));
  } else if (type === "subscribe" && deliver) {
    // Tell the requester the request arrived, without revealing presence (as Prosody does).
    out.push({
      kind: "route",
      stanza: stanza("presence", { type: "unavailable", from: s.bare, to: from }),
    });
  }
  if (
    type === "unsubscribe" && (before.subscription === "from" || before.subscription === "both")
  ) {
    // The contact unsubscribed from this user's presence: it goes dark for them. Only a
    // subscriber ever saw it; withdrawing a mere request must not reveal the user's resources.
    out.push(...unavailableOfResources(ctx, s.bare, from));
  }
  return [{ ...s, roster }, out];
}

/**
 * A removed account answers probes and subscription requests from its tombstone. A probe from
 * a local session is answered to that session directly (as Prosody does), so the prober hears
 * of it whatever its own subscription state; the rest goes through the router.
 */
function goneReplies(s: AccountState, el: Element): AccountOutput[] {
  if (s.gone !== true) return [];
  const from = el.attrs.from!;
  const direct = el.attrs.type === "probe" && parseJid(from)?.resource !== undefined;
  return tombstoneReplies(el, s.bare).map((stanza): AccountOutput =>
    direct ? { kind: "deliver", to: from, stanza } : { kind: "route", stanza }
  );
}

function onProbe(s: AccountState, el: Element, ctx: AccountCtx): AccountStep {
  const from = el.attrs.from;
  const fromBare = from === undefined ? undefined : bareJidOf(from);
  if (from === undefined || fromBare === undefined) return [s, []];
  if (!s.exists) return [s, goneReplies(s, el)];
  const sub = rosterItem(s.roster, fromBare)?.subscription;
  // RFC 6121 §4.3.2: presence only for contacts subscribed to it (and the user's own JID).
  if (fromBare !== s.bare && sub !== "from" && sub !== "both") return [s, []];
  return [s, presenceOfResources(ctx, s.bare, from)];
}

/** The XEP-0203 delay stamp added to a stored message. */
function withDelay(el: Element, from: string, now: number): Element {
  const stamp = formatDateTime(now);
  return withChildren(el, [
    ...el.children,
    elem("delay", { xmlns: NS_DELAY, from, stamp }),
  ]);
}

function onOfflineMessage(s: AccountState, el: Element, ctx: AccountCtx): AccountStep {
  const type = el.attrs.type ?? "normal";
  if (!s.exists) {
    // RFC 6121 §8.5.1: a message to a JID without an account bounces.
    if (type === "error" || type === "headline" || type === "groupchat") return [s, []];
    return [s, [{ kind: "route", stanza: errorReply(el, "service-unavailable") }]];
  }
  // XEP-0160: only chat and normal messages are stored; the rest is dropped.
  if (type !== "chat" && type !== "normal") {
    if (type === "groupchat") {
      return [s, [{ kind: "route", stanza: errorReply(el, "service-unavailable") }]];
    }
    return [s, []];
  }
  const host = s.bare.slice(s.bare.indexOf("@") + 1);
  const message = withDelay(el, host, ctx.now());
  const size = offlineSize(message);
  // Past either cap the message bounces as for a user without storage (XEP-0160 §4; RFC 6121
  // §8.5.2.2 lets the server refuse with service-unavailable).
  if (
    s.offline.count >= ctx.limits.offlineMessages ||
    s.offline.bytes + size > ctx.limits.offlineBytes
  ) {
    return [s, [{
      kind: "route",
      stanza: errorReply(el, "service-unavailable", { text: "Offline storage is full" }),
    }]];
  }
  const offline = { count: s.offline.count + 1, bytes: s.offline.bytes + size };
  // Stored durably first, then the user hears of it (XEP-0357).
  return then(
    [{ ...s, offline }, [{ kind: "store-offline", action: "append", message }]],
    (next) => onWaiting(next, { kind: "offline", message: el, stored: offline.count }, ctx),
  );
}

function onInitialPresence(s: AccountState, fullJid: string, priority: number): AccountStep {
  const out: AccountOutput[] = [];
  // RFC 6121 §3.1.3: pending requests are delivered again when the user comes online.
  for (const [jid, request] of Object.entries(s.roster.pendingIn)) {
    out.push({
      kind: "deliver",
      to: fullJid,
      stanza: stanza("presence", { type: "subscribe", from: jid, to: s.bare }, [
        ...pendingPayload(request),
      ]),
    });
  }
  // XEP-0160: offline messages go to the first resource with non-negative priority.
  if (priority < 0 || s.offline.count === 0) return [s, out];
  // The shell reads them, delivers them, then deletes them: a crash in between repeats.
  out.push({ kind: "store-offline", action: "deliver", to: fullJid });
  return [{ ...s, offline: NO_OFFLINE }, out];
}

/**
 * The answers to an operation the account could not carry out (its data could not be loaded, a
 * store failed, a reducer threw), so that whoever waits for it hears back while the rest of
 * the queue goes on. An iq get or set gets `internal-server-error`, type cancel (RFC 6120
 * §8.3.3.6); a message bounces to its sender with the same error (RFC 6121 §8.5), except an
 * error (never an error for an error, RFC 6120 §8.3.1) and a headline (nobody waits for one).
 * A message whose sender's archive copy failed (a full disk) bounces the same way and is not
 * delivered: nothing reaches the recipient that the sender's archive lacks. Presence and the
 * user's own bookkeeping (logout, caps) are dropped. A session waiting for its roster gets an
 * empty one rather than waiting for ever.
 */
export function failedOpReplies(op: AccountOp): readonly AccountOutput[] {
  switch (op.kind) {
    case "roster-get":
    case "roster-set":
    case "mam-query":
    case "mam-metadata":
    case "mam-prefs":
    case "module-iq":
    case "remove-account":
    case "account-removed": {
      const type = op.iq.attrs.type;
      if ((type !== "get" && type !== "set") || op.iq.attrs.from === undefined) return [];
      return [{ kind: "route", stanza: errorReply(op.iq, "internal-server-error") }];
    }
    case "incoming-message":
    case "outgoing-message":
    case "offline-message": {
      const type = op.stanza.attrs.type;
      if (type === "error" || type === "headline" || op.stanza.attrs.from === undefined) return [];
      return [{ kind: "route", stanza: errorReply(op.stanza, "internal-server-error") }];
    }
    case "session-bound":
      return [{ kind: "send-roster", to: op.fullJid, roster: EMPTY_ROSTER }];
    case "outbound-subscription":
    case "inbound-subscription":
    case "probe":
    case "initial-presence":
    case "resource-caps":
    case "logout":
    case "sm-stash":
    case "sm-unstash":
    case "iq-reply":
      return [];
  }
}

/**
 * XEP-0313 §4: the answer to a query once the archive returned its page: each result message,
 * then the `<fin/>`, to the resource that asked; or the error the archive found (an unknown id:
 * `item-not-found`). The shell loads the page; what is sent is decided here.
 */
export function mamPageAnswer(
  iq: Element,
  query: ArchiveQuery,
  page: QueryPage | { readonly error: "item-not-found" },
): AccountOutput[] {
  const to = iq.attrs.from!;
  if ("error" in page) return [{ kind: "deliver", to, stanza: errorReply(iq, page.error) }];
  return [
    ...resultMessages(page, query, to).map((stanza) => ({ kind: "deliver" as const, to, stanza })),
    { kind: "deliver", to, stanza: finResult(iq, page, query) },
  ];
}

/** XEP-0313 §5: the answer to a metadata request, from the archive's first and last items. */
export function mamMetadataAnswer(
  iq: Element,
  first: ArchivedMessage | undefined,
  last: ArchivedMessage | undefined,
): AccountOutput[] {
  return [{
    kind: "deliver",
    to: iq.attrs.from!,
    stanza: iqResult(iq, metadataElement(first, last)),
  }];
}
