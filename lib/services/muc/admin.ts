/**
 * Roles, affiliations and the room's life (XEP-0045 §8-§10): kicking, voice, moderator,
 * membership, bans, the admin and owner lists, configuration, registration of nicks (§7.10),
 * destruction and shutdown. Each change returns the room and what to send; the iq reply is
 * the caller's, after everything the change sent (as clients are tested against).
 * @module
 */
import { child, childElements, elem, type Element, stanza, text } from "../../xml/element.ts";
import { iqResult, type StanzaErrorCondition } from "../../xmpp/errors.ts";
import { buildForm, type DataForm, FORM_TYPE, formTypeField, parseForm } from "../../xmpp/forms.ts";
import { bareJidOf, normalizeJid } from "../../xmpp/jid.ts";
import { NS_DATA, NS_REGISTER } from "../../xmpp/namespaces.ts";
import { utf8Bytes } from "../../limits.ts";
import { applyConfigForm, configChangeCodes, configForm } from "./config.ts";
import {
  NS_MUC_ADMIN,
  NS_MUC_OWNER,
  NS_MUC_REGISTER,
  NS_MUC_REQUEST,
  NS_MUC_USER,
} from "./namespaces.ts";
import {
  affiliationOf,
  broadcasts,
  defaultRole,
  dropOccupant,
  occupantJid,
  occupantOf,
  putAffiliation,
  putOccupant,
  seesJids,
  storedRoom,
  trimHistory,
  validNick,
} from "./state.ts";
import {
  type Affiliation,
  AFFILIATION_RANK,
  MAX_VOICE_REQUESTS,
  type MucCtx,
  type Occupant,
  type Role,
  ROLE_RANK,
  type Room,
  type RoomOutput,
  type RoomStep,
} from "./types.ts";
import { type Actor, item, mucError, presenceFor, publicise, status, userX } from "./views.ts";

/** A refused change: the stanza error to answer with. */
export interface Refusal {
  readonly refused: StanzaErrorCondition;
  readonly text?: string;
}

/** A change made: the room afterwards and what it sent. */
export interface Change {
  readonly room: Room;
  readonly out: readonly RoomOutput[];
}

const AFFILIATIONS: ReadonlySet<string> = new Set(["outcast", "none", "member", "admin", "owner"]);
const ROLES: ReadonlySet<string> = new Set(["none", "visitor", "participant", "moderator"]);

/** `store-room` when the room is persistent, else nothing. */
export function persist(room: Room): RoomOutput[] {
  return room.config.persistent
    ? [{ kind: "store-room", jid: room.jid, data: storedRoom(room) }]
    : [];
}

/** True when the room has to go: empty, and temporary or never configured. */
export function isDead(room: Room): boolean {
  return room.occupants.size === 0 && (!room.config.persistent || room.locked);
}

/** The room, or undefined once it is dead (temporary rooms go with their last occupant). */
export function settle(room: Room, out: readonly RoomOutput[]): RoomStep {
  return [isDead(room) ? undefined : room, out];
}

/** The actor of a change made by the session `jid`. */
export function actorOf(room: Room, jid: string): Actor {
  const nick = room.nickOf.get(jid);
  return nick === undefined ? { jid } : { nick, jid };
}

/**
 * Removes an occupant (all its sessions): everyone, the occupant included, gets its
 * unavailable presence with the codes `lead` (307 kick, 301 ban, 321 and 322 membership, 333
 * error) and the actor and reason.
 */
export function removeOccupant(
  room: Room,
  occ: Occupant,
  ctx: MucCtx,
  how: {
    readonly lead: readonly Element[];
    readonly actor?: Actor;
    readonly reason?: string;
    readonly gone?: Element;
    readonly self?: boolean;
  },
): Change {
  const gone: Occupant = { ...occ, role: "none" };
  const after = dropOccupant(room, occ.nick);
  // The others are `after`'s occupants; the one leaving hears it on its own sessions.
  const out = publicise(after, gone, ctx, {
    lead: how.lead,
    actor: how.actor,
    reason: how.reason,
    gone: how.gone ?? stanza("presence", { type: "unavailable" }),
    self: how.self === false ? [] : undefined,
  });
  return { room: after, out };
}

/**
 * Sets the affiliation of `bare` (a bare JID, or a domain to ban a server). `actor` undefined:
 * the room itself (registration, invitations). `nick` reserves a nick for the user (XEP-0045
 * §9.3 and registration); an occupant using it under another JID is kicked (307).
 */
export function setAffiliation(
  room: Room,
  actor: Actor | undefined,
  bare: string,
  aff: Affiliation,
  ctx: MucCtx,
  opts: { readonly reason?: string; readonly nick?: string; readonly keepNick?: boolean } = {},
): Change | Refusal {
  const current = room.affiliations.get(bare);
  const currentAff: Affiliation = current?.affiliation ?? "none";
  if (actor !== undefined) {
    const actorAff = affiliationOf(room, actor.jid, ctx);
    const actorBare = bareJidOf(actor.jid) ?? actor.jid;
    if (actorAff === "owner") {
      if (actorBare === bare && aff !== "owner") {
        const owners = [...room.affiliations].filter(([, e]) => e.affiliation === "owner");
        if (owners.length <= 1) {
          return { refused: "conflict", text: "A room needs an owner" };
        }
      }
    } else if (actorAff === "admin") {
      if (aff === "owner" || aff === "admin" || currentAff === "owner" || currentAff === "admin") {
        return { refused: "not-allowed" };
      }
    } else return { refused: "forbidden" };
  }
  if (
    current === undefined && aff !== "none" && room.affiliations.size >= ctx.limits.affiliations
  ) {
    return { refused: "resource-constraint", text: "Too many affiliations" };
  }
  const nick = aff === "none" || aff === "outcast"
    ? undefined
    : opts.nick ?? (opts.keepNick === false ? undefined : current?.nick);
  if (nick !== undefined) {
    const holder = room.reservedBy.get(nick);
    if (holder !== undefined && holder !== bare) {
      return { refused: "conflict", text: "The nick is reserved by someone else" };
    }
  }
  let next = putAffiliation(
    room,
    bare,
    aff === "none" ? undefined : {
      affiliation: aff,
      ...(aff === "outcast" && opts.reason !== undefined ? { reason: opts.reason } : {}),
      ...(nick !== undefined ? { nick } : {}),
    },
  );
  const out: RoomOutput[] = [...persist(next)];

  // An occupant using the nick now reserved for someone else has to go.
  if (nick !== undefined) {
    const squatter = next.occupants.get(nick);
    if (squatter !== undefined && squatter.bare !== bare) {
      const r = removeOccupant(next, squatter, ctx, {
        lead: [status("307")],
        reason: "This nickname is reserved",
      });
      next = r.room;
      out.push(...r.out);
    }
  }

  const newAff = affiliationOf(next, bare, ctx);
  const role = defaultRole(next, newAff);
  const downgrade = AFFILIATION_RANK[newAff] < AFFILIATION_RANK[currentAff];
  const affected = [...next.occupants.values()].filter((o) => o.bare === bare);
  for (const occ of affected) {
    if (role === "none") {
      const r = removeOccupant(next, occ, ctx, {
        lead: [status(newAff === "outcast" ? "301" : "321")],
        actor,
        reason: opts.reason,
      });
      next = r.room;
      out.push(...r.out);
      continue;
    }
    const newRole: Role = downgrade || ROLE_RANK[occ.role] < ROLE_RANK[role] ? role : occ.role;
    const changed: Occupant = { ...occ, role: newRole };
    next = putOccupant(next, changed);
    out.push(...publicise(next, changed, ctx, { actor, reason: opts.reason, prevRole: occ.role }));
    out.push(...visibilityChange(next, occ.role, changed, ctx));
  }
  if (affected.length === 0) out.push(...outOfRoom(next, bare, newAff, opts.reason));
  return { room: next, out };
}

/**
 * In a semi-anonymous room, an occupant who gains the moderator role now sees real JIDs: it
 * gets everyone's presence again, with them (Prosody does the same).
 */
function visibilityChange(room: Room, before: Role, occ: Occupant, ctx: MucCtx): RoomOutput[] {
  if (room.config.whois === "anyone") return [];
  if (seesJids(room, before) || !seesJids(room, occ.role)) return [];
  const out: RoomOutput[] = [];
  for (const other of room.occupants.values()) {
    if (other.nick === occ.nick || !broadcasts(room, other.role)) continue;
    for (const to of occ.sessions.keys()) {
      out.push({ kind: "route", stanza: presenceFor(room, other, to, occ.role, occ.bare, ctx) });
    }
  }
  return out;
}

/**
 * The affiliation of someone not in the room changed: the occupants who may see real JIDs get
 * a message saying so (XEP-0045 §9, as Prosody sends it), and the user a headline with status
 * 101 (XEP-0045 §15.6.1: an affiliation change while not in the room).
 */
function outOfRoom(
  room: Room,
  bare: string,
  aff: Affiliation,
  reason: string | undefined,
): RoomOutput[] {
  const out: RoomOutput[] = [];
  // No `nick` in the item, even when one was reserved: the notice is about the affiliation,
  // and Prosody's (which clients are tested against) carries affiliation, JID and reason only.
  const x = userX([
    aff === "outcast" && status("301"),
    item(aff, undefined, bare, { reason }),
  ]);
  for (const occ of room.occupants.values()) {
    if (!seesJids(room, occ.role)) continue;
    for (const to of occ.sessions.keys()) {
      out.push({ kind: "route", stanza: stanza("message", { from: room.jid, to }, [x]) });
    }
  }
  // Not to a domain (a server ban) nor to the service's own users' absent accounts elsewhere.
  if (bare.includes("@")) {
    out.push({
      kind: "route",
      stanza: stanza("message", { type: "headline", from: room.jid, to: bare }, [
        elem("body", {}, [`Your affiliation in room ${room.jid} is now ${aff}.`]),
        userX([status("101")]),
      ]),
    });
  }
  return out;
}

/** Sets the role of the occupant `nick` (XEP-0045 §8.2-8.5, §9.6-9.7). */
export function setRole(
  room: Room,
  actor: Actor,
  nick: string,
  role: Role,
  ctx: MucCtx,
  reason?: string,
): Change | Refusal {
  const actorOcc = occupantOf(room, actor.jid);
  if (actorOcc === undefined || actorOcc.role !== "moderator") return { refused: "forbidden" };
  const target = room.occupants.get(nick);
  if (target === undefined) return { refused: "item-not-found", text: "No such occupant" };
  const targetAff = affiliationOf(room, target.bare, ctx);
  const actorAff = affiliationOf(room, actor.jid, ctx);
  if (role !== "moderator" && AFFILIATION_RANK[targetAff] >= AFFILIATION_RANK.admin) {
    // Admins and owners stay moderators; only a higher affiliation could change that, and
    // affiliations, not roles, are how it is done (XEP-0045 §8.2, §9.7).
    return { refused: "not-allowed" };
  }
  if (
    (role === "moderator" || target.role === "moderator") &&
    AFFILIATION_RANK[actorAff] < AFFILIATION_RANK.admin
  ) return { refused: "not-allowed" };
  if (role === "none") {
    if (target.nick === actorOcc.nick) return { refused: "conflict", text: "Cannot kick oneself" };
    return removeOccupant(room, target, ctx, { lead: [status("307")], actor, reason });
  }
  const changed: Occupant = { ...target, role };
  const next = putOccupant(room, changed);
  return {
    room: next,
    out: [
      ...publicise(next, changed, ctx, { actor, reason, prevRole: target.role }),
      ...visibilityChange(next, target.role, changed, ctx),
    ],
  };
}

/** Answers a refused iq. */
function refuse(iq: Element, r: Refusal): RoomOutput {
  return {
    kind: "route",
    stanza: mucError(iq, r.refused, r.text === undefined ? {} : { text: r.text }),
  };
}

function reply(iq: Element, payload?: Element): RoomOutput {
  return { kind: "route", stanza: iqResult(iq, payload) };
}

/** The text of `<reason/>` when within the limit; undefined when absent; false when too long. */
function reasonOf(el: Element, ctx: MucCtx): string | undefined | false {
  const r = child(el, "reason");
  if (r === undefined) return undefined;
  const t = text(r);
  return utf8Bytes(t) > ctx.limits.reasonBytes ? false : t;
}

/** `muc#admin` get: an affiliation list or a role list (XEP-0045 §9.5, §8.5, §10.5). */
export function adminGet(room: Room, iq: Element, query: Element, ctx: MucCtx): RoomStep {
  const from = iq.attrs.from;
  const it = childElements(query, NS_MUC_ADMIN).find((c) => c.name === "item");
  const aff = it?.attrs.affiliation;
  const role = it?.attrs.role;
  const mine = affiliationOf(room, from, ctx);
  if (aff !== undefined && role === undefined && AFFILIATIONS.has(aff) && aff !== "none") {
    // Owners and admins see every list; members of a non-anonymous room may see who is
    // affiliated (not who is banned), as Prosody allows.
    const allowed = AFFILIATION_RANK[mine] >= AFFILIATION_RANK.admin ||
      (mine === "member" && room.config.whois === "anyone" && aff !== "outcast");
    if (!allowed) return [room, [refuse(iq, { refused: "forbidden" })]];
    const items = [...room.affiliations]
      .filter(([, e]) => e.affiliation === aff)
      .map(([jid, e]) =>
        item(
          aff as Affiliation,
          undefined,
          jid,
          { nick: e.nick, reason: e.reason },
          false,
          NS_MUC_ADMIN,
        )
      );
    return [room, [reply(iq, elem("query", { xmlns: NS_MUC_ADMIN }, items))]];
  }
  if (role !== undefined && aff === undefined && ROLES.has(role) && role !== "none") {
    if (occupantOf(room, from)?.role !== "moderator") {
      return [room, [refuse(iq, { refused: "forbidden" })]];
    }
    const items = [...room.occupants.values()]
      .filter((o) => o.role === role)
      .flatMap((o) =>
        [...o.sessions.keys()].map((jid) =>
          item(affiliationOf(room, o.bare, ctx), o.role, jid, { nick: o.nick }, false, NS_MUC_ADMIN)
        )
      );
    return [room, [reply(iq, elem("query", { xmlns: NS_MUC_ADMIN }, items))]];
  }
  return [room, [refuse(iq, { refused: "bad-request" })]];
}

/**
 * `muc#admin` set: each `<item/>` changes a role (nick and role) or an affiliation (jid and
 * affiliation). All of them or none: the first refusal answers and nothing is changed.
 */
export function adminSet(room: Room, iq: Element, query: Element, ctx: MucCtx): RoomStep {
  const actor = actorOf(room, iq.attrs.from);
  const items = childElements(query, NS_MUC_ADMIN).filter((c) => c.name === "item");
  if (items.length === 0 || items.length > ctx.limits.affiliations) {
    return [room, [refuse(iq, { refused: "bad-request" })]];
  }
  let next = room;
  const out: RoomOutput[] = [];
  for (const it of items) {
    const reason = reasonOf(it, ctx);
    if (reason === false) {
      return [room, [refuse(iq, { refused: "not-acceptable", text: "Reason too long" })]];
    }
    const { affiliation, role, nick } = it.attrs;
    let r: Change | Refusal;
    if (affiliation !== undefined && role === undefined) {
      if (!AFFILIATIONS.has(affiliation)) return [room, [refuse(iq, { refused: "bad-request" })]];
      let bare: string | undefined;
      if (it.attrs.jid !== undefined) {
        const jid = normalizeJid(it.attrs.jid);
        if (jid === undefined) return [room, [refuse(iq, { refused: "jid-malformed" })]];
        bare = bareJidOf(jid);
      } else if (nick !== undefined) bare = next.occupants.get(nick)?.bare;
      if (bare === undefined) return [room, [refuse(iq, { refused: "bad-request" })]];
      if (it.attrs.jid !== undefined && nick !== undefined && validNick(nick, ctx) === undefined) {
        return [room, [refuse(iq, { refused: "jid-malformed", text: "Invalid nick" })]];
      }
      r = setAffiliation(next, actor, bare, affiliation as Affiliation, ctx, {
        reason,
        nick: it.attrs.jid !== undefined ? nick : undefined,
      });
    } else if (role !== undefined && affiliation === undefined && nick !== undefined) {
      if (!ROLES.has(role)) return [room, [refuse(iq, { refused: "bad-request" })]];
      r = setRole(next, actor, nick, role as Role, ctx, reason);
    } else return [room, [refuse(iq, { refused: "bad-request" })]];
    if ("refused" in r) return [room, [refuse(iq, r)]];
    next = r.room;
    out.push(...r.out);
  }
  return settle(next, [...out, reply(iq)]);
}

/** `muc#owner` get: the configuration form (XEP-0045 §10.2). */
export function ownerGet(room: Room, iq: Element, ctx: MucCtx): RoomStep {
  if (affiliationOf(room, iq.attrs.from, ctx) !== "owner") {
    return [room, [refuse(iq, { refused: "forbidden", text: "Only owners can configure rooms" })]];
  }
  return [room, [reply(iq, elem("query", { xmlns: NS_MUC_OWNER }, [configForm(room, ctx)]))]];
}

/** `muc#owner` set: a configuration form, or `<destroy/>` (XEP-0045 §10.2, §10.9). */
export function ownerSet(room: Room, iq: Element, query: Element, ctx: MucCtx): RoomStep {
  if (affiliationOf(room, iq.attrs.from, ctx) !== "owner") {
    return [room, [refuse(iq, { refused: "forbidden", text: "Only owners can configure rooms" })]];
  }
  const payload = childElements(query)[0];
  if (payload?.name === "destroy" && payload.xmlns === NS_MUC_OWNER) {
    const reason = reasonOf(payload, ctx);
    if (reason === false) {
      return [room, [refuse(iq, { refused: "not-acceptable", text: "Reason too long" })]];
    }
    let alternate: string | undefined;
    if (payload.attrs.jid !== undefined) {
      alternate = normalizeJid(payload.attrs.jid);
      if (alternate === undefined) return [room, [refuse(iq, { refused: "jid-malformed" })]];
    }
    const password = child(payload, "password");
    const [, out] = destroyRoom(room, ctx, {
      alternate,
      reason,
      password: password === undefined ? undefined : text(password),
    });
    return [undefined, [...out, reply(iq)]];
  }
  if (payload?.name !== "x" || payload.xmlns !== NS_DATA) {
    return [room, [refuse(iq, { refused: "bad-request" })]];
  }
  const form = parseForm(payload);
  if (form.type === "cancel") {
    // XEP-0045 §10.1.3: cancelling the initial configuration destroys the room.
    if (room.locked) return [undefined, [...destroyRoom(room, ctx, {})[1], reply(iq)]];
    return [room, [reply(iq)]];
  }
  if (form.type !== "submit") {
    return [room, [refuse(iq, { refused: "bad-request", text: "Not a submitted form" })]];
  }
  if (form.fields.length > 0 && form.formType !== "http://jabber.org/protocol/muc#roomconfig") {
    return [room, [
      refuse(iq, { refused: "bad-request", text: "Form is not of type room configuration" }),
    ]];
  }
  const config = applyConfigForm(room, form, ctx);
  if ("error" in config) return [room, [refuse(iq, { refused: config.error, text: config.text })]];
  const lists = listChanges(room, form, ctx);
  if ("refused" in lists) return [room, [refuse(iq, lists)]];
  const codes = configChangeCodes(room.config, config);
  let next: Room = trimHistory({ ...room, config, locked: false }, config.historyLength);
  const out: RoomOutput[] = [];
  if (config.persistent) out.push(...persist(next));
  else if (room.config.persistent) out.push({ kind: "delete-room", jid: room.jid });
  const actor = actorOf(room, iq.attrs.from);
  for (const [bare, aff] of lists) {
    const r = setAffiliation(next, actor, bare, aff, ctx);
    if ("refused" in r) return [room, [refuse(iq, r)]];
    next = r.room;
    out.push(...r.out);
  }
  // Becoming members-only removes everyone without an affiliation (XEP-0045 status 322).
  if (config.membersOnly && !room.config.membersOnly) {
    for (const occ of [...next.occupants.values()]) {
      if (AFFILIATION_RANK[affiliationOf(next, occ.bare, ctx)] >= AFFILIATION_RANK.member) continue;
      const r = removeOccupant(next, occ, ctx, { lead: [status("322")] });
      next = r.room;
      out.push(...r.out);
    }
  }
  out.push(...broadcastChange(room, next, ctx));
  out.push(reply(iq));
  if (codes.length > 0) {
    const x = userX(codes.map(status));
    for (const occ of next.occupants.values()) {
      for (const to of occ.sessions.keys()) {
        out.push({
          kind: "route",
          stanza: stanza("message", { type: "groupchat", from: room.jid, to }, [x]),
        });
      }
    }
  }
  return settle(next, out);
}

/** The lists of a configuration form that change affiliations, with the one each gives. */
const AFFILIATION_LISTS = [
  ["muc#roomconfig_roomowners", "owner"],
  ["muc#roomconfig_roomadmins", "admin"],
] as const;

/**
 * The affiliation changes asked by the owner and admin lists of a submitted configuration
 * form (XEP-0045 §10.2, "full list"): those listed get the list's affiliation (owner wins
 * when both list someone), those left off a submitted list lose it (none). A list left out of
 * the form changes nothing. In the order they can be made: owners first (so that an owner may
 * hand the room over and step down in one form), then admins, then removals.
 */
function listChanges(
  room: Room,
  form: DataForm,
  ctx: MucCtx,
): readonly (readonly [string, Affiliation])[] | Refusal {
  const target = new Map<string, Affiliation>();
  const submitted: (readonly [Affiliation, readonly string[]])[] = [];
  for (const [field, aff] of AFFILIATION_LISTS) {
    const f = form.byVar.get(field);
    if (f === undefined) continue;
    if (f.values.length > ctx.limits.affiliations) {
      return { refused: "not-acceptable", text: `Too many JIDs in ${field}` };
    }
    const jids: string[] = [];
    for (const v of f.values) {
      if (v.trim() === "") continue;
      const jid = normalizeJid(v.trim());
      const bare = jid === undefined ? undefined : bareJidOf(jid);
      if (bare === undefined || bare !== jid) {
        return { refused: "jid-malformed", text: `Not a bare JID in ${field}: ${v}` };
      }
      jids.push(bare);
    }
    submitted.push([aff, jids]);
  }
  for (const [aff, jids] of submitted) {
    for (const [bare, e] of room.affiliations) {
      if (e.affiliation === aff && !jids.includes(bare)) target.set(bare, "none");
    }
  }
  // Admins before owners, so that owner wins for a JID in both lists.
  for (const [aff, jids] of [...submitted].reverse()) {
    for (const bare of jids) target.set(bare, aff);
  }
  const owners =
    [...room.affiliations].filter(([bare, e]) =>
      e.affiliation === "owner" && (target.get(bare) ?? "owner") === "owner"
    ).length + [...target].filter(([bare, aff]) =>
      aff === "owner" && room.affiliations.get(bare)?.affiliation !== "owner"
    ).length;
  if (form.byVar.has(AFFILIATION_LISTS[0][0]) && owners === 0) {
    return { refused: "conflict", text: "A room needs an owner" };
  }
  const changes = [...target].filter(([bare, aff]) =>
    (room.affiliations.get(bare)?.affiliation ?? "none") !== aff
  );
  const order = (aff: Affiliation) => aff === "owner" ? 0 : aff === "none" ? 2 : 1;
  return changes.sort((a, b) => order(a[1]) - order(b[1]));
}

/**
 * The roles whose presence is broadcast changed: the others now see the occupants whose role
 * became shown, and see those whose role became hidden go (unavailable), as Prosody does.
 */
function broadcastChange(before: Room, after: Room, ctx: MucCtx): RoomOutput[] {
  const out: RoomOutput[] = [];
  for (const occ of after.occupants.values()) {
    const was = broadcasts(before, occ.role);
    const is = broadcasts(after, occ.role);
    if (was === is) continue;
    out.push(...publicise(after, occ, ctx, {
      self: [],
      ...(is ? {} : { gone: stanza("presence", { type: "unavailable" }) }),
    }));
  }
  return out;
}

/** How a room is destroyed (XEP-0045 §10.9). */
export interface Destruction {
  /** Where the discussion goes on. */
  readonly alternate?: string;
  readonly reason?: string;
  /** The alternate room's password. */
  readonly password?: string;
}

/**
 * Destroys the room: each occupant's sessions get an unavailable presence with `<destroy/>`,
 * and the stored room goes. Only each occupant's own presence is sent (XEP-0045 §10.9), not
 * everyone's departure to everyone.
 */
export function destroyRoom(room: Room, ctx: MucCtx, d: Destruction): RoomStep {
  const destroy = elem("destroy", { xmlns: NS_MUC_USER, jid: d.alternate }, [
    d.reason !== undefined && elem("reason", {}, [d.reason]),
    d.password !== undefined && elem("password", {}, [d.password]),
  ]);
  return [undefined, [
    { kind: "delete-room", jid: room.jid },
    ...farewells(room, ctx, [destroy]),
  ]];
}

/**
 * XEP-0045 status 332: the service is shutting down. Every session hears it; what is
 * stored stays (the room comes back, empty, with the service).
 */
export function shutdownRoom(room: Room, ctx: MucCtx): readonly RoomOutput[] {
  return farewells(room, ctx, [status("332")]);
}

/** Each session's own unavailable presence with `lead`, role none, and status 110. */
function farewells(room: Room, ctx: MucCtx, lead: readonly Element[]): RoomOutput[] {
  const out: RoomOutput[] = [];
  for (const occ of room.occupants.values()) {
    const aff = affiliationOf(room, occ.bare, ctx);
    for (const to of occ.sessions.keys()) {
      out.push({
        kind: "route",
        stanza: stanza("presence", { type: "unavailable", from: occupantJid(room, occ.nick), to }, [
          userX([...lead, item(aff, "none", to), status("110")]),
        ]),
      });
    }
  }
  return out;
}

/** The registration form (XEP-0045 §7.10). */
function registrationForm(nick: string | undefined): Element {
  return elem("x", { xmlns: NS_DATA, type: "form" }, [
    elem("field", { type: "hidden", var: FORM_TYPE }, [elem("value", {}, [NS_MUC_REGISTER])]),
    elem("field", { type: "text-single", label: "Nickname", var: "muc#register_roomnick" }, [
      elem("required"),
      nick !== undefined && elem("value", {}, [nick]),
    ]),
  ]);
}

/**
 * `jabber:iq:register` on the room: reserve a nick, or give the registration up. Registering
 * needs an affiliation already (Prosody's default: unaffiliated users get
 * registration-required), and makes the user a member when they were less.
 */
export function register(room: Room, iq: Element, query: Element, ctx: MucCtx): RoomStep {
  const from = iq.attrs.from;
  const bare = bareJidOf(from) ?? from;
  const aff = affiliationOf(room, from, ctx);
  if (aff === "outcast") return [room, [refuse(iq, { refused: "forbidden" })]];
  const entry = room.affiliations.get(bare);
  if (iq.attrs.type === "get") {
    if (aff === "none") return [room, [refuse(iq, { refused: "registration-required" })]];
    return [room, [reply(
      iq,
      elem("query", { xmlns: NS_REGISTER }, [
        entry?.nick !== undefined && elem("registered"),
        registrationForm(entry?.nick),
      ]),
    )]];
  }
  if (child(query, "remove") !== undefined) {
    if (entry === undefined) return [room, [refuse(iq, { refused: "registration-required" })]];
    const r = entry.affiliation === "member"
      ? setAffiliation(room, undefined, bare, "none", ctx)
      : setAffiliation(room, undefined, bare, entry.affiliation, ctx, { keepNick: false });
    if ("refused" in r) return [room, [refuse(iq, r)]];
    return settle(r.room, [...r.out, reply(iq)]);
  }
  if (aff === "none") return [room, [refuse(iq, { refused: "registration-required" })]];
  const x = childElements(query, NS_DATA).find((c) => c.name === "x");
  if (x === undefined) return [room, [refuse(iq, { refused: "bad-request" })]];
  const form = parseForm(x);
  if (form.formType !== NS_MUC_REGISTER) {
    return [room, [
      refuse(iq, { refused: "bad-request", text: "Form is not of type registration" }),
    ]];
  }
  const asked = form.byVar.get("muc#register_roomnick")?.values[0];
  if (asked === undefined || asked === "") {
    return [room, [refuse(iq, { refused: "not-acceptable", text: "A nick is required" })]];
  }
  const nick = validNick(asked, ctx);
  if (nick === undefined) {
    return [room, [refuse(iq, { refused: "jid-malformed", text: "Invalid nick" })]];
  }
  const user = room.occupants.get(nick);
  if (user !== undefined && user.bare !== bare) {
    return [room, [refuse(iq, { refused: "conflict", text: "The nick is in use" })]];
  }
  const target: Affiliation = AFFILIATION_RANK[aff] >= AFFILIATION_RANK.member &&
      room.affiliations.has(bare)
    ? entry!.affiliation
    : "member";
  const r = setAffiliation(room, undefined, bare, target, ctx, { nick });
  if ("refused" in r) return [room, [refuse(iq, r)]];
  return settle(r.room, [...r.out, reply(iq)]);
}

/**
 * A message to the room carrying a `muc#request` form (XEP-0045 §7.13, §8.6): from a visitor
 * of a moderated room, a request for voice, sent on to every moderator as the approval form;
 * from a moderator, that form submitted back, which grants voice when `muc#request_allow` is
 * true (the usual presence broadcast of §8.3).
 */
export function voiceRequest(room: Room, st: Element, form: DataForm, ctx: MucCtx): RoomStep {
  const sender = occupantOf(room, st.attrs.from);
  if (sender === undefined) {
    return [room, [refuse(st, { refused: "not-acceptable", text: "You are not in the room" })]];
  }
  if (sender.role === "moderator" && form.byVar.has("muc#request_allow")) {
    return voiceApproval(room, st, form, ctx);
  }
  if (!room.config.moderated) {
    return [room, [refuse(st, { refused: "forbidden", text: "The room is not moderated" })]];
  }
  if (sender.role !== "visitor") {
    return [room, [
      refuse(st, { refused: "not-allowed", text: "Only visitors may request voice" }),
    ]];
  }
  const asked = form.byVar.get("muc#role")?.values[0];
  if (asked !== undefined && asked !== "participant") {
    return [room, [refuse(st, { refused: "bad-request", text: "Only voice may be requested" })]];
  }
  // Requests of those who are no longer visitors here are answered (or moot): they go.
  const visitors = new Set(
    [...room.occupants.values()].filter((o) => o.role === "visitor").map((o) => o.bare),
  );
  const pending = new Map([...room.voiceRequests].filter(([bare]) => visitors.has(bare)));
  // Asking again while the moderators have it adds nothing for them to read.
  if (pending.has(sender.bare)) return [{ ...room, voiceRequests: pending }, []];
  if (pending.size >= MAX_VOICE_REQUESTS) {
    return [room, [
      refuse(st, { refused: "resource-constraint", text: "Too many pending voice requests" }),
    ]];
  }
  pending.set(sender.bare, ctx.now());
  const approval = approvalForm(st.attrs.from, sender.nick);
  const out: RoomOutput[] = [];
  for (const occ of room.occupants.values()) {
    if (occ.role !== "moderator") continue;
    for (const to of occ.sessions.keys()) {
      out.push({ kind: "route", stanza: stanza("message", { from: room.jid, to }, [approval]) });
    }
  }
  return [{ ...room, voiceRequests: pending }, out];
}

/** The form a moderator gets for a voice request (XEP-0045 §8.6, Example 95). */
function approvalForm(jid: string, nick: string): Element {
  const form = buildForm("form", [
    formTypeField(NS_MUC_REQUEST),
    { var: "muc#role", type: "list-single", label: "Requested role", values: ["participant"] },
    { var: "muc#jid", type: "jid-single", label: "User ID", values: [jid] },
    { var: "muc#roomnick", type: "text-single", label: "Room Nickname", values: [nick] },
    {
      var: "muc#request_allow",
      type: "boolean",
      label: "Grant voice to this person?",
      values: ["false"],
    },
  ]);
  return {
    ...form,
    children: [
      elem("title", { xmlns: NS_DATA }, ["Voice request"]),
      elem("instructions", { xmlns: NS_DATA }, [
        'To approve this request for voice, select the "Grant voice to this person?" checkbox' +
        " and click OK. To skip this request, click the cancel button.",
      ]),
      ...form.children,
    ],
  };
}

/** A moderator's answer to a voice request: voice for the visitor it names, or nothing. */
function voiceApproval(room: Room, st: Element, form: DataForm, ctx: MucCtx): RoomStep {
  const nick = form.byVar.get("muc#roomnick")?.values[0];
  if (nick === undefined) {
    return [room, [refuse(st, { refused: "bad-request", text: "No muc#roomnick" })]];
  }
  const target = room.occupants.get(nick);
  const jid = form.byVar.get("muc#jid")?.values[0];
  // The nick may have changed hands since the request: the JID, when given, must match.
  if (
    target === undefined ||
    (jid !== undefined && jid !== "" && (bareJidOf(jid) ?? jid) !== target.bare)
  ) {
    return [room, [refuse(st, { refused: "item-not-found", text: "No such occupant" })]];
  }
  const voiceRequests = new Map(room.voiceRequests);
  voiceRequests.delete(target.bare);
  const next: Room = { ...room, voiceRequests };
  const allow = form.byVar.get("muc#request_allow")?.values[0];
  if ((allow !== "1" && allow !== "true") || target.role !== "visitor") return [next, []];
  const r = setRole(next, actorOf(room, st.attrs.from), nick, "participant", ctx);
  if ("refused" in r) return [room, [refuse(st, r)]];
  return [r.room, r.out];
}
