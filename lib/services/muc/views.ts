/**
 * What occupants see of each other: the `<x xmlns=muc#user/>` of an occupant's presence, with
 * real JIDs only for those allowed to see them (XEP-0045 §5.1: moderators in a semi-anonymous
 * room, everyone in a non-anonymous one, always oneself), and the broadcast of a change.
 *
 * The order of an `<x/>`'s children is the one clients are tested against (Prosody's): the
 * change's own status codes and `<destroy/>` first, then one `<item/>` per session (one without
 * a JID for those who may not see it), then status 110 for the occupant itself.
 * @module
 */
import { elem, type Element, stanza, type XmlNode } from "../../xml/element.ts";
import {
  errorReply,
  type StanzaErrorCondition,
  type StanzaErrorOptions,
} from "../../xmpp/errors.ts";
import { NS_STANZA_ERRORS } from "../../xmpp/namespaces.ts";
import { NS_MUC_USER, NS_OCCUPANT_ID } from "./namespaces.ts";
import { affiliationOf, broadcasts, occupantJid, seesJids } from "./state.ts";
import type { Affiliation, MucCtx, Occupant, Role, Room, RoomOutput } from "./types.ts";

/** The room's `<x xmlns=muc#user>` with these children. */
export function userX(children: readonly (XmlNode | undefined | false)[]): Element {
  return elem("x", { xmlns: NS_MUC_USER }, children);
}

/** `<status code=.../>`. */
export function status(code: string): Element {
  return elem("status", { xmlns: NS_MUC_USER, code });
}

/** Who made a change, for `<actor/>`: their nick in the room, and their real JID. */
export interface Actor {
  readonly nick?: string;
  readonly jid: string;
}

/** What an item says beside affiliation, role and JID. */
export interface ItemDetails {
  /** The new nick (status 303). */
  readonly nick?: string;
  readonly actor?: Actor;
  readonly reason?: string;
}

/** One `<item/>` (in muc#user, or muc#admin for the lists). */
export function item(
  affiliation: Affiliation,
  role: Role | undefined,
  jid: string | undefined,
  details: ItemDetails = {},
  actorJid = false,
  xmlns: string = NS_MUC_USER,
): Element {
  const { actor, reason, nick } = details;
  return elem("item", { xmlns, affiliation, role, jid, nick }, [
    actor !== undefined &&
    elem("actor", { nick: actor.nick, jid: actorJid ? actor.jid : undefined }),
    reason !== undefined && elem("reason", {}, [reason]),
  ]);
}

/** The items of an occupant: one per session with its JID, or one without. */
export function occupantItems(
  room: Room,
  occ: Occupant,
  ctx: MucCtx,
  showJids: boolean,
  showActorJid: boolean,
  details: ItemDetails = {},
): Element[] {
  const aff = affiliationOf(room, occ.bare, ctx);
  if (!showJids) return [item(aff, occ.role, undefined, details, showActorJid)];
  return [...occ.sessions.keys()].map((jid) => item(aff, occ.role, jid, details, showActorJid));
}

/** A presence from an occupant JID to `to`, with the occupant-id and the room's `<x/>`. */
export function fromOccupant(
  room: Room,
  occ: Occupant,
  base: Element,
  to: string,
  x: Element,
): Element {
  return {
    ...base,
    attrs: { ...base.attrs, from: occupantJid(room, occ.nick), to },
    children: [
      ...base.children,
      elem("occupant-id", { xmlns: NS_OCCUPANT_ID, id: occ.occupantId }),
      x,
    ],
  };
}

/** How a change of an occupant is shown. */
export interface Publicity extends ItemDetails {
  /** Status codes and `<destroy/>`, before the items. */
  readonly lead?: readonly Element[];
  /** The occupant is gone: everyone gets this unavailable presence (default a bare one). */
  readonly gone?: Element;
  /** Whether the other occupants hear of it (default true). */
  readonly others?: boolean;
  /** The sessions of the occupant that get the self-presence (default all of them). */
  readonly self?: readonly string[];
  /** Status codes for the occupant itself only, before 110 (201 on creation, 100, 210). */
  readonly selfLead?: readonly Element[];
  /**
   * The role before this change: when the new role's presence is not broadcast but the old
   * one's was, the others see the occupant go (unavailable) instead of hearing nothing.
   */
  readonly prevRole?: Role;
}

/**
 * Presences telling the room about `occ` (its role and presence as they now are): to each other
 * occupant's sessions, then to the occupant's own sessions with status 110.
 */
export function publicise(room: Room, occ: Occupant, ctx: MucCtx, p: Publicity): RoomOutput[] {
  const out: RoomOutput[] = [];
  const lead = p.lead ?? [];
  const base = p.gone ?? occ.presence;
  // A departure is always told; otherwise only roles the room broadcasts are shown
  // (`muc#roomconfig_presencebroadcast`), and one that stops being shown is seen to go.
  let othersBase: Element | undefined = base;
  if (p.gone === undefined && !broadcasts(room, occ.role)) {
    othersBase = p.prevRole !== undefined && broadcasts(room, p.prevRole)
      ? { name: "presence", xmlns: base.xmlns, attrs: { type: "unavailable" }, children: [] }
      : undefined;
  }
  if (p.others !== false && othersBase !== undefined) {
    // Built once per kind of viewer, not once per recipient.
    const views = new Map<string, Element>();
    const view = (jids: boolean, actorJid: boolean) => {
      const key = `${jids}/${actorJid}`;
      let x = views.get(key);
      if (x === undefined) {
        x = userX([...lead, ...occupantItems(room, occ, ctx, jids, actorJid, p)]);
        views.set(key, x);
      }
      return x;
    };
    for (const other of room.occupants.values()) {
      if (other.nick === occ.nick) continue;
      const sees = seesJids(room, other.role);
      const x = view(sees || other.bare === occ.bare, sees);
      for (const to of other.sessions.keys()) {
        out.push({ kind: "route", stanza: fromOccupant(room, occ, othersBase, to, x) });
      }
    }
  }
  const self = p.self ?? [...occ.sessions.keys()];
  if (self.length > 0) {
    // The occupant's own copy names the actor by nick only, even for a moderator, who sees
    // the actor's JID in everyone else's copies (as Prosody, muc_show_offline.scs line 530).
    const x = userX([
      ...lead,
      ...(p.selfLead ?? []),
      ...occupantItems(room, occ, ctx, true, false, p),
      status("110"),
    ]);
    for (const to of self) {
      const own = p.gone ?? occ.sessions.get(to) ?? occ.presence;
      out.push({ kind: "route", stanza: fromOccupant(room, occ, own, to, x) });
    }
  }
  return out;
}

/** The presence of `occ` for a newcomer (the occupant list on joining, a probe's answer). */
export function presenceFor(
  room: Room,
  occ: Occupant,
  to: string,
  viewer: Role,
  viewerBare: string,
  ctx: MucCtx,
): Element {
  const sees = seesJids(room, viewer);
  const x = userX(occupantItems(room, occ, ctx, sees || viewerBare === occ.bare, sees));
  return fromOccupant(room, occ, occ.presence, to, x);
}

/**
 * The error reply to a stanza sent to the service, a room or an occupant. Its `<text/>` has no
 * `xml:lang` (the stream's language applies, RFC 6120 §8.3.2 does not require one): MUC clients
 * and their tests compare errors with Prosody's, which carry none.
 */
export function mucError(
  st: Element,
  condition: StanzaErrorCondition,
  opts: StanzaErrorOptions = {},
): Element {
  const { text, ...rest } = opts;
  const reply = errorReply(st, condition, rest);
  if (text === undefined) return reply;
  return {
    ...reply,
    children: reply.children.map((c) => {
      if (typeof c === "string" || c.name !== "error") return c;
      // After the condition, before any application-specific element.
      const [cond, ...more] = c.children;
      return { ...c, children: [cond, elem("text", { xmlns: NS_STANZA_ERRORS }, [text]), ...more] };
    }),
  };
}

/**
 * What a newcomer (or a session resyncing, XEP-0410) gets before its own presence: the
 * presence of every other occupant whose role the room broadcasts (or who is the same user),
 * then, when the room broadcasts "none", an unavailable presence for each affiliated user
 * with a reserved nick who is not in the room (as Prosody, muc_show_offline.scs).
 */
export function occupantList(room: Room, occ: Occupant, to: string, ctx: MucCtx): Element[] {
  const out: Element[] = [];
  const present = new Set<string>();
  for (const other of room.occupants.values()) {
    present.add(other.bare);
    if (other.nick === occ.nick) continue;
    if (!broadcasts(room, other.role) && other.bare !== occ.bare) continue;
    out.push(presenceFor(room, other, to, occ.role, occ.bare, ctx));
  }
  if (!broadcasts(room, "none")) return out;
  const sees = seesJids(room, occ.role);
  for (const [bare, entry] of room.affiliations) {
    const nick = entry.nick;
    if (nick === undefined || present.has(bare) || room.occupants.has(nick)) continue;
    out.push(stanza("presence", { type: "unavailable", from: occupantJid(room, nick), to }, [
      userX([item(entry.affiliation, "none", sees ? bare : undefined, { nick })]),
    ]));
  }
  return out;
}
