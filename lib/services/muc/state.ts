/**
 * Reading and changing a room record: affiliations with their nick index, occupants with their
 * session index, history, and the stored form. Every change goes through here, so that the
 * indexes (`reservedBy`, `nickOf`) never disagree with what they index.
 * @module
 */
import { type Element, serialize } from "../../xml/element.ts";
import { bareJidOf, parseJid, prepResourcepart } from "../../xmpp/jid.ts";
import { utf8Bytes } from "../../limits.ts";
import type { ArchivedMessage } from "../../core/archive.ts";
import { NS_MUC, NS_MUC_USER, NS_OCCUPANT_ID } from "./namespaces.ts";
import {
  type Affiliation,
  type AffiliationEntry,
  type HistoryEntry,
  type MucCtx,
  type Occupant,
  type Role,
  ROLE_RANK,
  type Room,
  type RoomConfig,
  type StoredRoom,
} from "./types.ts";

/** The configuration of a new room before the service's defaults (Prosody's, for clients). */
export const DEFAULT_CONFIG: RoomConfig = {
  name: "",
  description: "",
  persistent: false,
  public: true,
  membersOnly: false,
  moderated: false,
  password: "",
  maxUsers: 0,
  whois: "moderators",
  allowInvites: false,
  changeSubject: false,
  allowPm: "anyone",
  historyLength: 20,
  language: "",
  archiving: true,
  presenceBroadcast: ["visitor", "participant", "moderator"],
  enforceNick: false,
};

/** A new, empty, locked room. */
export function newRoom(jid: string, ctx: MucCtx): Room {
  const config = { ...DEFAULT_CONFIG, ...ctx.defaults };
  return {
    jid,
    config: {
      ...config,
      maxUsers: clampUsers(config.maxUsers, ctx),
      historyLength: Math.min(config.historyLength, ctx.limits.historyMessages),
    },
    affiliations: new Map(),
    reservedBy: new Map(),
    occupants: new Map(),
    nickOf: new Map(),
    history: [],
    historyChars: 0,
    locked: true,
    lastArchived: 0,
    voiceRequests: new Map(),
  };
}

/** `maxUsers` within the service's limit (0, "no limit", means the limit). */
export function clampUsers(n: number, ctx: MucCtx): number {
  const cap = ctx.limits.occupantsPerRoom;
  return n <= 0 || n > cap ? cap : n;
}

/** The room JID of a nick. */
export function occupantJid(room: Room, nick: string): string {
  return `${room.jid}/${nick}`;
}

/**
 * The affiliation of a JID (any form): its bare JID's, else its domain's when the domain is
 * banned (XEP-0045 §9.1 lets a whole server be banned), and service admins own every room.
 */
export function affiliationOf(room: Room, jid: string, ctx: MucCtx): Affiliation {
  const bare = bareJidOf(jid) ?? jid;
  if (ctx.admins.has(bare)) return "owner";
  const own = room.affiliations.get(bare)?.affiliation;
  if (own !== undefined) return own;
  const domain = parseJid(bare)?.domain;
  if (domain !== undefined && room.affiliations.get(domain)?.affiliation === "outcast") {
    return "outcast";
  }
  return "none";
}

/** The role an affiliation enters with (XEP-0045 §5.1.2); "none": may not enter. */
export function defaultRole(room: Room, aff: Affiliation): Role {
  if (aff === "owner" || aff === "admin") return "moderator";
  if (aff === "member") return "participant";
  if (aff === "outcast" || room.config.membersOnly) return "none";
  return room.config.moderated ? "visitor" : "participant";
}

/** Whether the other occupants get the presence of an occupant with this role. */
export function broadcasts(room: Room, role: Role): boolean {
  return room.config.presenceBroadcast.includes(role);
}

/** Whether an occupant with this role sees real JIDs. */
export function seesJids(room: Room, role: Role): boolean {
  return room.config.whois === "anyone" || ROLE_RANK[role] >= ROLE_RANK.moderator;
}

/** The occupant of a session (full JID), if it is in the room. */
export function occupantOf(room: Room, fullJid: string): Occupant | undefined {
  const nick = room.nickOf.get(fullJid);
  return nick === undefined ? undefined : room.occupants.get(nick);
}

/** A room with this occupant put (or replaced) under its nick, indexes updated. */
export function putOccupant(room: Room, occ: Occupant): Room {
  const occupants = new Map(room.occupants);
  const nickOf = new Map(room.nickOf);
  const old = occupants.get(occ.nick);
  if (old !== undefined) { for (const jid of old.sessions.keys()) nickOf.delete(jid); }
  occupants.set(occ.nick, occ);
  for (const jid of occ.sessions.keys()) nickOf.set(jid, occ.nick);
  return { ...room, occupants, nickOf };
}

/** A room without the occupant of this nick. */
export function dropOccupant(room: Room, nick: string): Room {
  const old = room.occupants.get(nick);
  if (old === undefined) return room;
  const occupants = new Map(room.occupants);
  const nickOf = new Map(room.nickOf);
  occupants.delete(nick);
  for (const jid of old.sessions.keys()) nickOf.delete(jid);
  return { ...room, occupants, nickOf };
}

/** A room with the affiliation of `bare` set ("none" removes it), the nick index updated. */
export function putAffiliation(
  room: Room,
  bare: string,
  entry: AffiliationEntry | undefined,
): Room {
  const affiliations = new Map(room.affiliations);
  const reservedBy = new Map(room.reservedBy);
  const old = affiliations.get(bare);
  if (old?.nick !== undefined && reservedBy.get(old.nick) === bare) reservedBy.delete(old.nick);
  if (entry === undefined) affiliations.delete(bare);
  else {
    affiliations.set(bare, entry);
    if (entry.nick !== undefined) reservedBy.set(entry.nick, bare);
  }
  return { ...room, affiliations, reservedBy };
}

/**
 * A presence as the room keeps and shows it: the client's own children without the MUC
 * payloads (the room adds its own `<x/>`) and without a forged occupant-id (XEP-0421 §4), and
 * no addressing (the room sets `from` and `to`).
 */
export function cleanPresence(p: Element): Element {
  const children = p.children.filter((c) =>
    typeof c === "string" ||
    !((c.name === "x" && (c.xmlns === NS_MUC || c.xmlns === NS_MUC_USER)) ||
      (c.name === "occupant-id" && c.xmlns === NS_OCCUPANT_ID))
  ).filter((c) => typeof c !== "string" || c.trim() !== "");
  const attrs: Record<string, string> = {};
  if (p.attrs.type !== undefined) attrs.type = p.attrs.type;
  if (p.attrs["xml:lang"] !== undefined) attrs["xml:lang"] = p.attrs["xml:lang"];
  return { name: "presence", xmlns: p.xmlns, attrs, children };
}

/**
 * A nick the room accepts: a valid resourcepart (RFC 7622, as the router already checked) that
 * also passes a stricter test, as Prosody's (stringprep in strict mode) does: no emoji
 * presentation selectors or joiners and no symbols outside the Basic Multilingual Plane, whose
 * look-alikes make impersonation easy. Undefined when refused.
 */
export function validNick(nick: string, ctx: MucCtx): string | undefined {
  if (nick === "" || utf8Bytes(nick) > ctx.limits.nickBytes) return undefined;
  if (prepResourcepart(nick) !== nick || STRICT_REFUSED.test(nick)) return undefined;
  return nick;
}

/** Joiners, variation selectors, and symbols outside the Basic Multilingual Plane (emoji). */
const STRICT_REFUSED = /[\u200c\u200d\ufe00-\ufe0f]|(?=[\u{10000}-\u{10ffff}])\p{So}/u;

/** The room with one message added to its history, oldest ones dropped past the bounds. */
export function addHistory(room: Room, stanza: Element, at: number, ctx: MucCtx): Room {
  const keep = room.config.historyLength;
  if (keep <= 0) return room;
  const chars = serialize(stanza).length;
  const cap = ctx.limits.historyBytes;
  if (chars > cap) return room;
  let history = [...room.history, { stanza, at, chars } satisfies HistoryEntry];
  let total = room.historyChars + chars;
  let drop = 0;
  while (history.length - drop > keep || total > cap) total -= history[drop++].chars;
  if (drop > 0) history = history.slice(drop);
  return { ...room, history, historyChars: total };
}

/** The room with at most `keep` messages of history (after a configuration change). */
export function trimHistory(room: Room, keep: number): Room {
  if (room.history.length <= keep) return room;
  const history = room.history.slice(room.history.length - keep);
  return { ...room, history, historyChars: history.reduce((n, h) => n + h.chars, 0) };
}

/** What is persisted of a room. */
export function storedRoom(room: Room): StoredRoom {
  return {
    config: room.config,
    affiliations: [...room.affiliations],
    ...(room.subject !== undefined ? { subject: room.subject } : {}),
    lastArchived: room.lastArchived,
  };
}

/**
 * A room as loaded from storage: unlocked, empty. `archived` is the newest messages of the
 * room's archive, oldest first (the shell reads the last `historyLength` when the room
 * archives): they become its discussion history, stamped when they were archived, so that a
 * restart does not leave newcomers without context.
 */
export function roomFromStored(
  jid: string,
  data: StoredRoom,
  ctx: MucCtx,
  archived: readonly ArchivedMessage[] = [],
): Room {
  const base = newRoom(jid, ctx);
  const room: Room = {
    ...base,
    config: { ...base.config, ...data.config },
    locked: false,
    lastArchived: data.lastArchived ?? 0,
    ...(data.subject !== undefined ? { subject: data.subject } : {}),
  };
  // Built in one pass: putAffiliation copies its maps, which would make loading quadratic.
  const affiliations = new Map<string, AffiliationEntry>();
  const reservedBy = new Map<string, string>();
  for (const [bare, entry] of data.affiliations) {
    affiliations.set(bare, entry);
    if (entry.nick !== undefined) reservedBy.set(entry.nick, bare);
  }
  let loaded: Room = { ...room, affiliations, reservedBy };
  const keep = loaded.config.historyLength;
  for (const m of archived.slice(Math.max(0, archived.length - keep))) {
    loaded = addHistory(loaded, m.stanza, m.ts, ctx);
  }
  return loaded;
}
