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
import { elem, type Element, type XmlNode } from "../../xml/element.ts";
import { NS_MUC_USER, NS_OCCUPANT_ID } from "./namespaces.ts";
import { affiliationOf, occupantJid, seesJids } from "./state.ts";
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
}

/**
 * Presences telling the room about `occ` (its role and presence as they now are): to each other
 * occupant's sessions, then to the occupant's own sessions with status 110.
 */
export function publicise(room: Room, occ: Occupant, ctx: MucCtx, p: Publicity): RoomOutput[] {
  const out: RoomOutput[] = [];
  const lead = p.lead ?? [];
  const base = p.gone ?? occ.presence;
  if (p.others !== false) {
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
        out.push({ kind: "route", stanza: fromOccupant(room, occ, base, to, x) });
      }
    }
  }
  const self = p.self ?? [...occ.sessions.keys()];
  if (self.length > 0) {
    const x = userX([
      ...lead,
      ...(p.selfLead ?? []),
      ...occupantItems(room, occ, ctx, true, seesJids(room, occ.role), p),
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
