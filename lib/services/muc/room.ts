/**
 * The room reducer (XEP-0045): every stanza to a room JID or an occupant JID, `from` stamped
 * with the sender's full JID and `to` normalised, reduced against the room into the room
 * afterwards (undefined once it is gone) and the outputs to execute in order.
 *
 * Occupants are sessions anywhere (full JIDs); everything the room sends goes out as `route`
 * outputs, through the router. Nothing here reads a clock or does IO: time, ids and the
 * occupant-id hash come from the context.
 * @module
 */
import { child, childElements, elem, type Element, stanza, text } from "../../xml/element.ts";
import { iqResult, type StanzaErrorCondition } from "../../xmpp/errors.ts";
import { bareJidOf, normalizeJid } from "../../xmpp/jid.ts";
import { formatDateTime, parseDateTime } from "../../xmpp/datetime.ts";
import { parseForm } from "../../xmpp/forms.ts";
import {
  NS_DATA,
  NS_DELAY,
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_HINTS,
  NS_MAM,
  NS_PING,
  NS_REGISTER,
  NS_SID,
  NS_STANZA_ERRORS,
  NS_VCARD,
} from "../../xmpp/namespaces.ts";
import { utf8Bytes } from "../../limits.ts";
import { newArchiveId, type QueryPage } from "../../core/archive.ts";
import { finResult, parseMamQuery, resultMessages } from "../../modules/mam/protocol.ts";
import { roomFeatures, roomIdentity, roomInfoForm } from "./config.ts";
import {
  NODE_ROOMUSER_ITEM,
  NS_MUC,
  NS_MUC_ADMIN,
  NS_MUC_OWNER,
  NS_MUC_REQUEST,
  NS_MUC_SELF_PING,
  NS_MUC_STABLE_ID,
  NS_MUC_USER,
  NS_OCCUPANT_ID,
  NS_X_CONFERENCE,
} from "./namespaces.ts";
import {
  addHistory,
  affiliationOf,
  cleanPresence,
  defaultRole,
  dropOccupant,
  newRoom,
  occupantJid,
  occupantOf,
  putAffiliation,
  putOccupant,
  seesJids,
  validNick,
} from "./state.ts";
import {
  adminGet,
  adminSet,
  isDead,
  ownerGet,
  ownerSet,
  persist,
  register,
  removeOccupant,
  setAffiliation,
  settle,
  voiceRequest,
} from "./admin.ts";
import {
  AFFILIATION_RANK,
  type MucCtx,
  type Occupant,
  type Role,
  ROLE_RANK,
  type Room,
  type RoomOutput,
  type RoomStep,
} from "./types.ts";
import { item, mucError, occupantList, presenceFor, publicise, status, userX } from "./views.ts";

/** The error reply to a stanza, as a route output. */
function fail(
  st: Element,
  condition: StanzaErrorCondition,
  text?: string,
  by?: string,
): RoomOutput {
  const opts = { ...(text !== undefined ? { text } : {}), ...(by !== undefined ? { by } : {}) };
  return { kind: "route", stanza: mucError(st, condition, opts) };
}

/** A refused join: the error presence with the `<x xmlns=muc/>` of XEP-0045 §7.2 examples. */
function refuseJoin(
  room: Room | undefined,
  roomJid: string,
  st: Element,
  condition: StanzaErrorCondition,
  text?: string,
): RoomStep {
  const err = mucError(st, condition, {
    by: roomJid,
    ...(text !== undefined ? { text } : {}),
  });
  return [room, [{
    kind: "route",
    stanza: { ...err, children: [elem("x", { xmlns: NS_MUC }), ...err.children] },
  }]];
}

const routeOf = (stanza: Element): RoomOutput => ({ kind: "route", stanza });

function splitTo(to: string): { readonly room: string; readonly nick?: string } {
  const slash = to.indexOf("/");
  return slash < 0 ? { room: to } : { room: to.slice(0, slash), nick: to.slice(slash + 1) };
}

/**
 * Reduces one stanza to the room (`room` undefined: no such room yet). The stanza's `from` is
 * the sender's full JID, its `to` the room JID or an occupant JID, both normalised.
 */
export function reduceRoom(room: Room | undefined, st: Element, ctx: MucCtx): RoomStep {
  const from = st.attrs.from;
  const to = st.attrs.to;
  if (from === undefined || to === undefined) return [room, []];
  const { room: roomJid, nick } = splitTo(to);
  if (room === undefined) return noRoom(roomJid, nick, st, ctx);
  switch (st.name) {
    case "presence":
      return nick === undefined
        ? presenceToRoom(room, st, ctx)
        : presenceToOccupant(room, st, nick, ctx);
    case "message":
      return nick === undefined
        ? messageToRoom(room, st, ctx)
        : messageToOccupant(room, st, nick, ctx);
    case "iq":
      return nick === undefined ? iqToRoom(room, st, ctx) : iqToOccupant(room, st, nick);
  }
  return [room, []];
}

/** A stanza to a room that does not exist: a join creates it, if the sender may. */
function noRoom(roomJid: string, nick: string | undefined, st: Element, ctx: MucCtx): RoomStep {
  const type = st.attrs.type;
  if (st.name === "presence") {
    if (type !== undefined) return [undefined, []];
    if (nick === undefined) {
      return refuseJoin(undefined, roomJid, st, "jid-malformed", "A nick is required");
    }
    const from = st.attrs.from;
    const bare = bareJidOf(from) ?? from;
    const allowed = ctx.creation === "anyone" ||
      (ctx.creation === "local" && ctx.isLocal(from)) || ctx.admins.has(bare);
    if (!allowed) {
      return refuseJoin(undefined, roomJid, st, "not-allowed", "Room creation is restricted");
    }
    if ((ctx.roomsCreatedBy?.(bare) ?? 0) >= ctx.limits.roomsPerCreator && !ctx.admins.has(bare)) {
      return refuseJoin(undefined, roomJid, st, "resource-constraint", "Too many rooms");
    }
    if (validNick(nick, ctx) === undefined) {
      return refuseJoin(
        undefined,
        roomJid,
        st,
        "jid-malformed",
        "Nickname must pass strict validation",
      );
    }
    const created = putAffiliation(newRoom(roomJid, ctx), bare, { affiliation: "owner" });
    return join(created, st, nick, ctx, true);
  }
  if (type === "error" || type === "result") return [undefined, []];
  return [undefined, [fail(st, "item-not-found", "No such room")]];
}

// --- Presence -------------------------------------------------------------------------------

/** Presence to the bare room JID: a client's update of its presence in the room (or leave). */
function presenceToRoom(room: Room, st: Element, ctx: MucCtx): RoomStep {
  const nick = room.nickOf.get(st.attrs.from);
  if (nick !== undefined) return presenceToOccupant(room, st, nick, ctx);
  if (st.attrs.type === undefined) {
    return refuseJoin(room, room.jid, st, "jid-malformed", "A nick is required");
  }
  return [room, []];
}

function presenceToOccupant(room: Room, st: Element, nick: string, ctx: MucCtx): RoomStep {
  const from = st.attrs.from;
  const type = st.attrs.type;
  const current = room.nickOf.get(from);
  if (type === "error") return current === undefined ? [room, []] : kickForError(room, st, ctx);
  if (type === "probe") return probe(room, st, nick, ctx);
  if (type === "unavailable") {
    return current === undefined ? [room, []] : leave(room, from, st, ctx);
  }
  if (type !== undefined) return [room, []];
  if (current === undefined) return join(room, st, nick, ctx, false);
  if (current === nick) return update(room, st, ctx);
  return changeNick(room, st, current, nick, ctx);
}

/** Why a session may not take `nick`, or undefined when it may (XEP-0045 §7.2 error table). */
function joinRefusal(
  room: Room,
  st: Element,
  nick: string,
  ctx: MucCtx,
): { readonly condition: StanzaErrorCondition; readonly text?: string } | undefined {
  const from = st.attrs.from;
  const bare = bareJidOf(from) ?? from;
  if (validNick(nick, ctx) === undefined) {
    return { condition: "jid-malformed", text: "Nickname must pass strict validation" };
  }
  const aff = affiliationOf(room, from, ctx);
  if (aff === "outcast") return { condition: "forbidden", text: "You are banned from this room" };
  if (room.locked && aff !== "owner") {
    return { condition: "item-not-found", text: "The room is locked until it is configured" };
  }
  if (defaultRole(room, aff) === "none") {
    return { condition: "registration-required", text: "The room is members-only" };
  }
  const holder = room.reservedBy.get(nick);
  const user = room.occupants.get(nick);
  if ((holder !== undefined && holder !== bare) || (user !== undefined && user.bare !== bare)) {
    return { condition: "conflict", text: "The nick is in use or reserved" };
  }
  const privileged = AFFILIATION_RANK[aff] >= AFFILIATION_RANK.admin;
  if (room.config.password !== "" && !privileged) {
    const given = childText(child(st, "x", NS_MUC), "password", NS_MUC);
    if (given !== room.config.password) {
      return { condition: "not-authorized", text: "A password is required" };
    }
  }
  if (user === undefined) {
    const full = room.occupants.size >= ctx.limits.occupantsPerRoom ||
      (!privileged && room.occupants.size >= room.config.maxUsers);
    if (full) return { condition: "service-unavailable", text: "The room is full" };
  } else if (user.sessions.size >= ctx.limits.sessionsPerOccupant) {
    return { condition: "resource-constraint", text: "Too many sessions with this nick" };
  }
  return undefined;
}

function childText(el: Element | undefined, name: string, xmlns: string): string | undefined {
  const c = el === undefined ? undefined : child(el, name, xmlns);
  return c === undefined ? undefined : text(c);
}

/**
 * A session enters (XEP-0045 §7.2): the others' presence to it, its presence to everyone (itself
 * last, with 110, and 201 when it created the room), the history, then the subject.
 */
function join(room: Room, st: Element, asked: string, ctx: MucCtx, created: boolean): RoomStep {
  const from = st.attrs.from;
  const bare = bareJidOf(from) ?? from;
  // XEP-0045 §7.2.11: where reserved nicks are enforced, the user enters under theirs, told
  // so with status 210, whatever nick they asked for.
  const nick = (room.config.enforceNick ? room.affiliations.get(bare)?.nick : undefined) ?? asked;
  const refusal = joinRefusal(room, st, nick, ctx);
  if (refusal !== undefined) {
    return refuseJoin(created ? undefined : room, room.jid, st, refusal.condition, refusal.text);
  }
  const presence = cleanPresence(st);
  const existing = room.occupants.get(nick);
  const occ: Occupant = existing !== undefined
    ? { ...existing, sessions: new Map([...existing.sessions, [from, presence]]), presence }
    : {
      nick,
      bare,
      sessions: new Map([[from, presence]]),
      presence,
      role: defaultRole(room, affiliationOf(room, from, ctx)),
      occupantId: ctx.occupantId(room.jid, bare),
    };
  const next = putOccupant(room, occ);
  const out: RoomOutput[] = occupantList(next, occ, from, ctx).map(routeOf);
  const selfLead = [
    ...(created ? [status("201")] : []),
    ...(next.config.whois === "anyone" ? [status("100")] : []),
    ...(nick !== asked ? [status("210")] : []),
  ];
  out.push(...publicise(next, occ, ctx, { selfLead }));
  out.push(
    ...[...history(next, child(st, "x", NS_MUC), from, ctx), subjectTo(next, from)].map(routeOf),
  );
  return [next, out];
}

/** A presence change of a session in the room; a join payload in it asks for a resync. */
function update(room: Room, st: Element, ctx: MucCtx): RoomStep {
  const from = st.attrs.from;
  const occ = occupantOf(room, from)!;
  const presence = cleanPresence(st);
  const changed: Occupant = {
    ...occ,
    sessions: new Map([...occ.sessions, [from, presence]]),
    presence,
  };
  const next = putOccupant(room, changed);
  const x = child(st, "x", NS_MUC);
  if (x === undefined) return [next, publicise(next, changed, ctx, {})];
  // XEP-0410 §5: a client unsure whether it is still joined sends its join again; it gets
  // what a join gets (without status 201), the others a presence update.
  const out: RoomOutput[] = occupantList(next, changed, from, ctx).map(routeOf);
  out.push(...publicise(next, changed, ctx, {
    selfLead: next.config.whois === "anyone" ? [status("100")] : [],
  }));
  out.push(...[...history(next, x, from, ctx), subjectTo(next, from)].map(routeOf));
  return [next, out];
}

/** A session leaves (XEP-0045 §7.14): with its last session, the occupant goes. */
function leave(room: Room, from: string, st: Element, ctx: MucCtx): RoomStep {
  const occ = occupantOf(room, from)!;
  const gone = cleanPresence(st);
  if (occ.sessions.size > 1) return dropSession(room, occ, from, gone, ctx);
  const r = removeOccupant(room, occ, ctx, { lead: [], gone });
  return settle(r.room, r.out);
}

/**
 * One of several sessions of an occupant goes: it alone hears it leave; the others see the
 * occupant's presence again (its items, one per session, changed).
 */
function dropSession(
  room: Room,
  occ: Occupant,
  from: string,
  gone: Element,
  ctx: MucCtx,
  lead: readonly Element[] = [],
): RoomStep {
  const sessions = new Map(occ.sessions);
  sessions.delete(from);
  const rest: Occupant = { ...occ, sessions, presence: [...sessions.values()].at(-1)! };
  const next = putOccupant(room, rest);
  const leaving: Occupant = { ...occ, role: "none", sessions: new Map([[from, gone]]) };
  return [next, [
    ...publicise(next, leaving, ctx, { lead, gone, others: false }),
    ...publicise(next, rest, ctx, { self: [] }),
  ]];
}

/**
 * A session bounced a stanza the room sent it, or sent presence of type error: it is gone
 * (Prosody's ghost removal, status 333). Others hear status 333 and the error in the status text.
 */
function kickForError(room: Room, st: Element, ctx: MucCtx): RoomStep {
  const from = st.attrs.from;
  const occ = occupantOf(room, from);
  if (occ === undefined) return [room, []];
  const error = child(st, "error");
  const condition = error === undefined
    ? undefined
    : childElements(error, NS_STANZA_ERRORS).find((c) => c.name !== "text")?.name;
  const errText = error === undefined ? undefined : childText(error, "text", NS_STANZA_ERRORS);
  const why = `Kicked: ${condition?.replaceAll("-", " ") ?? "presence error"}` +
    (errText !== undefined && errText !== "" ? `: ${errText}` : "");
  const gone = stanza("presence", { type: "unavailable" }, [elem("status", {}, [why])]);
  if (occ.sessions.size > 1) return dropSession(room, occ, from, gone, ctx, [status("333")]);
  const r = removeOccupant(room, occ, ctx, { lead: [status("333")], gone, self: false });
  return settle(r.room, r.out);
}

/** Error conditions after which a session is taken for gone (Prosody's list). */
const KICKABLE: ReadonlySet<string> = new Set([
  "gone",
  "internal-server-error",
  "item-not-found",
  "jid-malformed",
  "recipient-unavailable",
  "redirect",
  "remote-server-not-found",
  "remote-server-timeout",
  "service-unavailable",
]);

function isKickable(st: Element): boolean {
  const error = child(st, "error");
  if (error === undefined) return true;
  const cond = childElements(error, NS_STANZA_ERRORS).find((c) => c.name !== "text")?.name;
  return cond === undefined || KICKABLE.has(cond);
}

/**
 * A session changes its nick (XEP-0045 §7.6): everyone sees the old nick leave with status 303
 * and the new nick in the item, then the new nick arrive. When the occupant has other sessions
 * under the old nick, only the changing session sees it leave.
 */
function changeNick(room: Room, st: Element, oldNick: string, nick: string, ctx: MucCtx): RoomStep {
  const from = st.attrs.from;
  const reserved = room.config.enforceNick
    ? room.affiliations.get(bareJidOf(from) ?? from)?.nick
    : undefined;
  if (reserved !== undefined && reserved !== nick) {
    return refuseJoin(
      room,
      room.jid,
      st,
      "not-acceptable",
      `Your nick in this room is reserved: ${reserved}`,
    );
  }
  const refusal = joinRefusal(room, st, nick, ctx);
  // The password and room capacity were checked when the session entered.
  if (
    refusal !== undefined && refusal.condition !== "not-authorized" &&
    refusal.condition !== "service-unavailable"
  ) {
    return refuseJoin(room, room.jid, st, refusal.condition, refusal.text);
  }
  const occ = room.occupants.get(oldNick)!;
  const presence = cleanPresence(st);
  const out: RoomOutput[] = [];
  const gone = stanza("presence", { type: "unavailable" });
  let next: Room;
  if (occ.sessions.size > 1) {
    const [after, o] = dropSession(room, occ, from, gone, ctx, [status("303")]);
    next = after!;
    // The item of the changing session names its new nick.
    out.push(...o.map((x) => withNickInItems(x, nick)));
  } else {
    next = dropOccupant(room, oldNick);
    const leaving: Occupant = { ...occ };
    out.push(...publicise(next, leaving, ctx, { lead: [status("303")], gone, nick }));
  }
  const existing = next.occupants.get(nick);
  const moved: Occupant = existing !== undefined
    ? { ...existing, sessions: new Map([...existing.sessions, [from, presence]]), presence }
    : { ...occ, nick, sessions: new Map([[from, presence]]), presence };
  next = putOccupant(next, moved);
  out.push(...publicise(next, moved, ctx, {}));
  return [next, out];
}

/** The unavailable presence of a nick change: its items carry the new nick. */
function withNickInItems(o: RoomOutput, nick: string): RoomOutput {
  if (o.kind !== "route" || o.stanza.attrs.type !== "unavailable") return o;
  const children = o.stanza.children.map((c) =>
    typeof c !== "string" && c.name === "x" && c.xmlns === NS_MUC_USER
      ? {
        ...c,
        children: c.children.map((i) =>
          typeof i !== "string" && i.name === "item" ? { ...i, attrs: { ...i.attrs, nick } } : i
        ),
      }
      : c
  );
  return { ...o, stanza: { ...o.stanza, children } };
}

/**
 * A presence probe to an occupant JID (Prosody's extension, used with presence broadcast
 * limits): occupants get the nick's current presence, or its affiliation when it is offline
 * but reserved; anyone else not-acceptable.
 */
function probe(room: Room, st: Element, nick: string, ctx: MucCtx): RoomStep {
  const from = st.attrs.from;
  const asker = occupantOf(room, from);
  if (asker === undefined) {
    // Type cancel, not not-acceptable's usual modify: nothing in the probe can be changed to
    // make it acceptable, only joining can (and Prosody, which clients are tested on, says so).
    return [room, [routeOf(mucError(st, "not-acceptable", { type: "cancel" }))]];
  }
  const occ = room.occupants.get(nick);
  if (occ !== undefined) {
    return [room, [{
      kind: "route",
      stanza: presenceFor(room, occ, from, asker.role, asker.bare, ctx),
    }]];
  }
  const bare = room.reservedBy.get(nick);
  if (bare === undefined) return [room, [fail(st, "item-not-found")]];
  const sees = seesJids(room, asker.role);
  return [room, [{
    kind: "route",
    stanza: stanza("presence", { type: "unavailable", from: occupantJid(room, nick), to: from }, [
      userX([item(affiliationOf(room, bare, ctx), "none", sees ? bare : undefined, { nick })]),
    ]),
  }]];
}

/**
 * The discussion history for a newcomer (XEP-0045 §7.2.15), with delay stamps (XEP-0203):
 * `maxstanzas`, `maxchars`, `seconds` and `since` in `<history/>` each narrow it.
 */
function history(room: Room, x: Element | undefined, to: string, ctx: MucCtx): Element[] {
  let entries = room.history;
  const h = x === undefined ? undefined : child(x, "history", NS_MUC);
  if (h !== undefined) {
    const num = (v: string | undefined) =>
      v !== undefined && /^\d{1,9}$/.test(v) ? Number(v) : undefined;
    const maxStanzas = num(h.attrs.maxstanzas);
    if (maxStanzas !== undefined) entries = entries.slice(Math.max(0, entries.length - maxStanzas));
    const seconds = num(h.attrs.seconds);
    if (seconds !== undefined) {
      const cutoff = ctx.now() - seconds * 1000;
      entries = entries.filter((e) => e.at >= cutoff);
    }
    const since = h.attrs.since === undefined ? undefined : parseDateTime(h.attrs.since);
    if (since !== undefined) entries = entries.filter((e) => e.at >= since.ms);
    const maxChars = num(h.attrs.maxchars);
    if (maxChars !== undefined) {
      let total = 0;
      let first = entries.length;
      while (first > 0 && total + entries[first - 1].chars <= maxChars) {
        total += entries[--first].chars;
      }
      entries = entries.slice(first);
    }
  }
  return entries.map((e) => ({
    ...e.stanza,
    attrs: { ...e.stanza.attrs, to },
    children: [
      ...e.stanza.children,
      elem("delay", { xmlns: NS_DELAY, stamp: formatDateTime(e.at), from: room.jid }),
    ],
  }));
}

/** The subject for a newcomer: empty when none was set (XEP-0045 §7.2.15). */
function subjectTo(room: Room, to: string): Element {
  const s = room.subject;
  return stanza("message", {
    type: "groupchat",
    from: s?.by !== undefined ? occupantJid(room, s.by) : room.jid,
    to,
  }, [elem("subject", {}, s === undefined || s.text === "" ? [] : [s.text])]);
}

// --- Messages -------------------------------------------------------------------------------

function messageToRoom(room: Room, st: Element, ctx: MucCtx): RoomStep {
  const type = st.attrs.type;
  if (type === "error") return isKickable(st) ? kickForError(room, st, ctx) : [room, []];
  if (type === "groupchat") return groupchat(room, st, ctx);
  const x = child(st, "x", NS_MUC_USER);
  if (x !== undefined) {
    const invites = childElements(x, NS_MUC_USER).filter((c) => c.name === "invite");
    if (invites.length > 0) return invite(room, st, invites, ctx);
    const decline = child(x, "decline");
    if (decline !== undefined) return declineInvite(room, st, decline, ctx);
    return [room, [fail(st, "bad-request")]];
  }
  const form = childElements(st, NS_DATA).find((c) => c.name === "x");
  if (form !== undefined) {
    const parsed = parseForm(form);
    if (parsed.formType === NS_MUC_REQUEST) return voiceRequest(room, st, parsed, ctx);
  }
  // Nothing else is addressed to the room itself.
  return [room, child(st, "body") === undefined ? [] : [fail(st, "service-unavailable")]];
}

const HINT_NO_STORE = new Set(["no-store", "no-permanent-store"]);

/** A message kept in history and archived: one with a body or a subject (XEP-0045 §7.2.15). */
function isHistoric(st: Element): boolean {
  if (child(st, "body") === undefined && child(st, "subject") === undefined) return false;
  return !childElements(st, NS_HINTS).some((h) => HINT_NO_STORE.has(h.name));
}

/** The message as occupants get it, without `to`: the client's occupant-id and room stanza-ids go. */
function asBroadcast(room: Room, st: Element, occ: Occupant): Element {
  const children = st.children.filter((c) =>
    typeof c === "string" ||
    !((c.name === "occupant-id" && c.xmlns === NS_OCCUPANT_ID) ||
      (c.name === "stanza-id" && c.xmlns === NS_SID && c.attrs.by === room.jid))
  );
  const attrs: Record<string, string> = { type: st.attrs.type ?? "normal" };
  if (st.attrs.id !== undefined) attrs.id = st.attrs.id;
  if (st.attrs["xml:lang"] !== undefined) attrs["xml:lang"] = st.attrs["xml:lang"];
  attrs.from = occupantJid(room, occ.nick);
  return {
    name: "message",
    xmlns: st.xmlns,
    attrs,
    children: [...children, elem("occupant-id", { xmlns: NS_OCCUPANT_ID, id: occ.occupantId })],
  };
}

/** Routes one stanza to every session of every occupant. */
function broadcast(room: Room, msg: Element, out: RoomOutput[]): void {
  for (const occ of room.occupants.values()) {
    for (const to of occ.sessions.keys()) {
      // A spread, not withAttrs: `to` is a normalised JID already, and this is the hot path.
      out.push({ kind: "route", stanza: { ...msg, attrs: { ...msg.attrs, to } } });
    }
  }
}

/** A groupchat message (XEP-0045 §7.4) or a subject change (§8.1). */
function groupchat(room: Room, st: Element, ctx: MucCtx): RoomStep {
  const occ = occupantOf(room, st.attrs.from);
  if (occ === undefined) return [room, [fail(st, "not-acceptable", "You are not in the room")]];
  const subject = child(st, "subject");
  // XEP-0045 §8.1: a subject change has a subject and no body; a thread makes it a message
  // about that thread (Prosody issue 667).
  if (
    subject !== undefined && child(st, "body") === undefined && child(st, "thread") === undefined
  ) {
    return changeSubject(room, st, occ, text(subject), ctx);
  }
  if (ROLE_RANK[occ.role] < ROLE_RANK.participant) {
    return [room, [fail(st, "forbidden", "You have no voice in this room")]];
  }
  const body = child(st, "body");
  if (body !== undefined && utf8Bytes(text(body)) > ctx.limits.messageBytes) {
    return [room, [fail(st, "policy-violation", "The message is too long")]];
  }
  let msg = asBroadcast(room, st, occ);
  let next = room;
  const out: RoomOutput[] = [];
  if (isHistoric(st)) {
    const now = ctx.now();
    if (ctx.archiving && room.config.archiving) {
      const ts = Math.max(now, room.lastArchived);
      const id = newArchiveId(ts, ctx.newId());
      msg = {
        ...msg,
        children: [...msg.children, elem("stanza-id", { xmlns: NS_SID, by: room.jid, id })],
      };
      out.push({
        kind: "archive-append",
        jid: room.jid,
        item: { id, ts, peer: msg.attrs.from, stanza: msg },
      });
      next = { ...next, lastArchived: ts };
    }
    next = addHistory(next, msg, now, ctx);
  }
  broadcast(next, msg, out);
  return [next, out];
}

function changeSubject(
  room: Room,
  st: Element,
  occ: Occupant,
  subject: string,
  ctx: MucCtx,
): RoomStep {
  const may = occ.role === "moderator" ||
    (room.config.changeSubject && ROLE_RANK[occ.role] >= ROLE_RANK.participant);
  if (!may) return [room, [fail(st, "forbidden", "You may not change the subject")]];
  if (utf8Bytes(subject) > ctx.limits.subjectBytes) {
    return [room, [fail(st, "not-acceptable", "The subject is too long")]];
  }
  const next: Room = { ...room, subject: { text: subject, by: occ.nick, at: ctx.now() } };
  const attrs: Record<string, string> = { type: "groupchat" };
  if (st.attrs.id !== undefined) attrs.id = st.attrs.id;
  attrs.from = occupantJid(room, occ.nick);
  const msg = stanza("message", attrs, [
    elem("subject", {}, subject === "" ? [] : [subject]),
    elem("occupant-id", { xmlns: NS_OCCUPANT_ID, id: occ.occupantId }),
  ]);
  const out: RoomOutput[] = [...persist(next)];
  broadcast(next, msg, out);
  return [next, out];
}

/** A private message to an occupant (XEP-0045 §7.5), with `<x xmlns=muc#user/>` added. */
function messageToOccupant(room: Room, st: Element, nick: string, ctx: MucCtx): RoomStep {
  const type = st.attrs.type;
  const sender = occupantOf(room, st.attrs.from);
  if (type === "error") {
    return sender !== undefined && isKickable(st) ? kickForError(room, st, ctx) : [room, []];
  }
  if (sender === undefined) return [room, [fail(st, "not-acceptable", "You are not in the room")]];
  if (type === "groupchat") {
    return [room, [fail(st, "bad-request", "Groupchat messages go to the room")]];
  }
  const pm = room.config.allowPm;
  const allowed = pm === "anyone" ||
    (pm === "participants" && ROLE_RANK[sender.role] >= ROLE_RANK.participant) ||
    (pm === "moderators" && sender.role === "moderator");
  if (!allowed) return [room, [fail(st, "forbidden", "Private messages are not allowed")]];
  const target = room.occupants.get(nick);
  if (target === undefined) return [room, [fail(st, "item-not-found", "Recipient not in room")]];
  const body = child(st, "body");
  if (body !== undefined && utf8Bytes(text(body)) > ctx.limits.messageBytes) {
    return [room, [fail(st, "policy-violation", "The message is too long")]];
  }
  const base = asBroadcast(room, st, sender);
  const msg: Element = { ...base, children: [...base.children, elem("x", { xmlns: NS_MUC_USER })] };
  const out: RoomOutput[] = [];
  for (const to of target.sessions.keys()) {
    out.push({ kind: "route", stanza: { ...msg, attrs: { ...msg.attrs, to } } });
  }
  return [room, out];
}

/** Invitations through the room (XEP-0045 §7.8.2): at most this many in one message. */
const MAX_INVITES = 10;

function invite(room: Room, st: Element, invites: readonly Element[], ctx: MucCtx): RoomStep {
  const from = st.attrs.from;
  const sender = occupantOf(room, from);
  const aff = affiliationOf(room, from, ctx);
  const role: Role = sender?.role ?? "none";
  if (ROLE_RANK[role] <= ROLE_RANK.visitor) return [room, [fail(st, "forbidden")]];
  const privileged = AFFILIATION_RANK[aff] >= AFFILIATION_RANK.admin;
  if (room.config.membersOnly && !privileged && !room.config.allowInvites) {
    return [room, [fail(st, "forbidden", "Only admins may invite to this room")]];
  }
  if (invites.length > MAX_INVITES) {
    return [room, [fail(st, "policy-violation", "Too many invitations")]];
  }
  let next = room;
  const out: RoomOutput[] = [];
  for (const inv of invites) {
    const invitee = inv.attrs.to === undefined ? undefined : normalizeJid(inv.attrs.to);
    if (invitee === undefined) return [room, [fail(st, "jid-malformed")]];
    const reason = childText(inv, "reason", NS_MUC_USER) ?? "";
    if (utf8Bytes(reason) > ctx.limits.reasonBytes) {
      return [room, [fail(st, "not-acceptable", "Reason too long")]];
    }
    // In a semi-anonymous room the invitee learns the inviter's nick, not their address.
    const inviter = room.config.whois === "anyone" || sender === undefined
      ? from
      : occupantJid(room, sender.nick);
    const msg = stanza("message", { from: room.jid, to: invitee, id: st.attrs.id }, [
      userX([
        elem("invite", { from: inviter }, [elem("reason", {}, reason === "" ? [] : [reason])]),
        room.config.password !== "" && elem("password", {}, [room.config.password]),
      ]),
      elem("body", {}, [
        `${inviter} invited you to the room ${room.jid}` + (reason === "" ? "" : ` (${reason})`),
      ]),
      elem("x", {
        xmlns: NS_X_CONFERENCE,
        jid: room.jid,
        reason: reason === "" ? undefined : reason,
      }),
    ]);
    // XEP-0045 §7.8.2: an invitation to a members-only room by someone allowed to invite
    // makes the invitee a member, so that they can enter.
    const inviteeBare = bareJidOf(invitee) ?? invitee;
    if (room.config.membersOnly && affiliationOf(next, inviteeBare, ctx) === "none") {
      const r = setAffiliation(next, undefined, inviteeBare, "member", ctx);
      if (!("refused" in r)) {
        next = r.room;
        out.push(...r.out);
      }
    }
    out.push({ kind: "route", stanza: msg });
  }
  return [next, out];
}

function declineInvite(room: Room, st: Element, decline: Element, ctx: MucCtx): RoomStep {
  const to = decline.attrs.to === undefined ? undefined : normalizeJid(decline.attrs.to);
  if (to === undefined) return [room, [fail(st, "jid-malformed")]];
  const reason = childText(decline, "reason", NS_MUC_USER) ?? "";
  if (utf8Bytes(reason) > ctx.limits.reasonBytes) {
    return [room, [fail(st, "not-acceptable", "Reason too long")]];
  }
  const decliner = bareJidOf(st.attrs.from) ?? st.attrs.from;
  return [room, [{
    kind: "route",
    stanza: stanza("message", { from: room.jid, to, id: st.attrs.id }, [
      userX([elem("decline", { from: decliner }, [reason !== "" && elem("reason", {}, [reason])])]),
      elem("body", {}, [
        `${decliner} declined your invite to the room ${room.jid}` +
        (reason === "" ? "" : ` (${reason})`),
      ]),
    ]),
  }]];
}

// --- IQs ------------------------------------------------------------------------------------

function reply(iq: Element, payload?: Element): RoomOutput {
  return { kind: "route", stanza: iqResult(iq, payload) };
}

function iqToRoom(room: Room, iq: Element, ctx: MucCtx): RoomStep {
  const type = iq.attrs.type;
  if (type !== "get" && type !== "set") return [room, []];
  const payload = childElements(iq)[0];
  if (payload === undefined) return [room, [fail(iq, "bad-request")]];
  const key = `${type} ${payload.xmlns} ${payload.name}`;
  switch (key) {
    case `get ${NS_DISCO_INFO} query`:
      return [room, [discoInfo(room, iq, payload, ctx)]];
    case `get ${NS_DISCO_ITEMS} query`:
      // XEP-0045 §6.5: occupants are not listed, to keep nicks from those outside the room.
      return [room, [
        reply(iq, elem("query", { xmlns: NS_DISCO_ITEMS, node: payload.attrs.node })),
      ]];
    case `get ${NS_MUC_ADMIN} query`:
      return adminGet(room, iq, payload, ctx);
    case `set ${NS_MUC_ADMIN} query`:
      return adminSet(room, iq, payload, ctx);
    case `get ${NS_MUC_OWNER} query`:
      return ownerGet(room, iq, ctx);
    case `set ${NS_MUC_OWNER} query`:
      return ownerSet(room, iq, payload, ctx);
    case `get ${NS_REGISTER} query`:
    case `set ${NS_REGISTER} query`:
      return register(room, iq, payload, ctx);
    case `set ${NS_MAM} query`:
      return mamQuery(room, iq, payload, ctx);
    case `get ${NS_PING} ping`:
      return [room, [reply(iq)]];
  }
  return [room, [fail(iq, "service-unavailable")]];
}

/** The room's disco#info (XEP-0045 §6.4), or the asker's reserved nick (§7.12). */
function discoInfo(room: Room, iq: Element, query: Element, ctx: MucCtx): RoomOutput {
  const node = query.attrs.node;
  if (node === NODE_ROOMUSER_ITEM) {
    const bare = bareJidOf(iq.attrs.from) ?? iq.attrs.from;
    const nick = room.affiliations.get(bare)?.nick;
    return reply(
      iq,
      elem("query", { xmlns: NS_DISCO_INFO, node }, [
        nick !== undefined &&
        elem("identity", { category: "conference", type: "text", name: nick }),
      ]),
    );
  }
  if (node !== undefined) return fail(iq, "item-not-found");
  const features = [
    NS_DISCO_INFO,
    NS_MUC,
    NS_MUC_STABLE_ID,
    NS_MUC_SELF_PING,
    NS_OCCUPANT_ID,
    NS_REGISTER,
    ...roomFeatures(room, ctx),
  ];
  return reply(
    iq,
    elem("query", { xmlns: NS_DISCO_INFO }, [
      roomIdentity(room),
      ...features.map((v) => elem("feature", { var: v })),
      roomInfoForm(room),
    ]),
  );
}

/**
 * A MAM query on the room (XEP-0313 §5 on a MUC): members-only rooms answer their members,
 * other rooms anyone not banned. The shell runs it and answers with {@link mamAnswer}.
 */
function mamQuery(room: Room, iq: Element, query: Element, ctx: MucCtx): RoomStep {
  if (!ctx.archiving || !room.config.archiving) return [room, [fail(iq, "service-unavailable")]];
  const aff = affiliationOf(room, iq.attrs.from, ctx);
  if (
    aff === "outcast" ||
    (room.config.membersOnly && AFFILIATION_RANK[aff] < AFFILIATION_RANK.member)
  ) {
    return [room, [fail(iq, "forbidden")]];
  }
  const q = parseMamQuery(query);
  if ("error" in q) return [room, [fail(iq, q.error, q.text)]];
  return [room, [{ kind: "mam-query", jid: room.jid, iq, query: q }]];
}

/** The answer to a `mam-query` output: results from the room, then the fin. */
export function mamAnswer(
  roomJid: string,
  iq: Element,
  query: Parameters<typeof resultMessages>[1],
  page: QueryPage,
): Element[] {
  const results = resultMessages(page, query, iq.attrs.from).map((m) => ({
    ...m,
    attrs: { from: roomJid, ...m.attrs },
  }));
  return [...results, finResult(iq, page, query)];
}

/** An iq to an occupant: XEP-0410 self-pings are answered; others go to the occupant. */
function iqToOccupant(room: Room, iq: Element, nick: string): RoomStep {
  const type = iq.attrs.type;
  const from = iq.attrs.from;
  if (type === "result" || type === "error") return [room, iqAnswerToOccupant(room, iq, nick)];
  if (type !== "get" && type !== "set") return [room, []];
  const senderNick = room.nickOf.get(from);
  if (senderNick === undefined) {
    return [room, [fail(iq, "not-acceptable", "You are not in the room")]];
  }
  const payload = childElements(iq)[0];
  if (senderNick === nick && payload?.name === "ping" && payload.xmlns === NS_PING) {
    return [room, [reply(iq)]];
  }
  const target = room.occupants.get(nick);
  if (target === undefined) return [room, [fail(iq, "item-not-found", "Recipient not in room")]];
  // vCards are the account's, answered by the occupant's server (XEP-0054 requests go to the bare JID, as Prosody does).
  const session = [...target.sessions.keys()].at(-1)!;
  const dest = payload?.xmlns === NS_VCARD ? target.bare : session;
  return [room, [{
    kind: "route",
    stanza: {
      ...iq,
      attrs: {
        ...iq.attrs,
        from: occupantJid(room, senderNick),
        to: dest,
        id: encodeProxyId(from, iq.attrs.id ?? "", dest),
      },
    },
  }]];
}

/**
 * The answer to a proxied iq, sent by the occupant (or its account) to the asker's occupant
 * JID: the id says who asked and who was asked, so that only the one asked can answer and the
 * answer goes to the session that asked, if it is still there.
 */
function iqAnswerToOccupant(room: Room, iq: Element, nick: string): RoomOutput[] {
  const decoded = decodeProxyId(iq.attrs.id ?? "");
  if (decoded === undefined) return [];
  const [asker, id, asked] = decoded;
  const from = iq.attrs.from;
  if (from !== asked && from !== bareJidOf(asked)) return [];
  if (room.nickOf.get(asker) !== nick) return [];
  const responder = room.nickOf.get(from) ?? room.nickOf.get(asked);
  if (responder === undefined) return [];
  return [{
    kind: "route",
    stanza: { ...iq, attrs: { ...iq.attrs, from: occupantJid(room, responder), to: asker, id } },
  }];
}

function encodeProxyId(asker: string, id: string, asked: string): string {
  const bytes = new TextEncoder().encode(JSON.stringify([asker, id, asked]));
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

function decodeProxyId(s: string): readonly [string, string, string] | undefined {
  try {
    const bin = atob(s);
    const bytes = Uint8Array.from(bin, (c) => c.charCodeAt(0));
    const v: unknown = JSON.parse(new TextDecoder().decode(bytes));
    if (Array.isArray(v) && v.length === 3 && v.every((p) => typeof p === "string")) {
      return [v[0], v[1], v[2]];
    }
  } catch {
    // Not one of ours.
  }
  return undefined;
}

// --- For the service ------------------------------------------------------------------------

/**
 * The session `fullJid` is gone (logout, drop, conflict, shutdown): it leaves every room it is
 * in, once, as if it had sent unavailable presence. The service calls this for each room that
 * `nickOf` lists the session in.
 */
export function sessionEnded(room: Room, fullJid: string, ctx: MucCtx): RoomStep {
  if (!room.nickOf.has(fullJid)) return [room, []];
  return leave(room, fullJid, stanza("presence", { type: "unavailable", from: fullJid }), ctx);
}

export { isDead };
