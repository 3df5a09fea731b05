/**
 * The records of a multi-user chat room (XEP-0045), what the room reducer may consult, and
 * what it asks the shell to do. A room is a value: the reducer returns a new one (or undefined
 * when the room is gone) and a list of outputs, executed in order.
 * @module
 */
import type { Element } from "../../xml/element.ts";
import type { ArchivedMessage, ArchiveQuery } from "../../core/archive.ts";

/** XEP-0045 §5.2, lowest first. */
export type Affiliation = "outcast" | "none" | "member" | "admin" | "owner";
/** XEP-0045 §5.1, lowest first. */
export type Role = "none" | "visitor" | "participant" | "moderator";

export const AFFILIATION_RANK: Readonly<Record<Affiliation, number>> = {
  outcast: 0,
  none: 1,
  member: 2,
  admin: 3,
  owner: 4,
};
export const ROLE_RANK: Readonly<Record<Role, number>> = {
  none: 0,
  visitor: 1,
  participant: 2,
  moderator: 3,
};

/** Who may send private messages to occupants (`muc#roomconfig_allowpm`). */
export type PmPolicy = "anyone" | "participants" | "moderators" | "none";

/** A room's configuration: every `muc#roomconfig` field clients use. */
export interface RoomConfig {
  /** `muc#roomconfig_roomname`; "" for none (disco shows the room's localpart). */
  readonly name: string;
  readonly description: string;
  /** Kept (config, affiliations, subject) when empty and across restarts. */
  readonly persistent: boolean;
  /** Listed in the service's disco#items. */
  readonly public: boolean;
  readonly membersOnly: boolean;
  /** Only occupants with voice (participant and up) may speak; newcomers are visitors. */
  readonly moderated: boolean;
  /** "" for no password. */
  readonly password: string;
  /** Most occupants (nicks); owners and admins may join past it. Never above the limit. */
  readonly maxUsers: number;
  /** Who sees occupants' real JIDs: moderators (semi-anonymous) or anyone (non-anonymous). */
  readonly whois: "moderators" | "anyone";
  /** Members (not only admins) may invite into a members-only room. */
  readonly allowInvites: boolean;
  /** Participants (not only moderators) may change the subject. */
  readonly changeSubject: boolean;
  readonly allowPm: PmPolicy;
  /** Messages of discussion history kept for newcomers (XEP-0045 §7.2.14). */
  readonly historyLength: number;
  /** `muc#roomconfig_lang`; "" for none. */
  readonly language: string;
  /** The room's messages are archived (XEP-0313 on the room JID). */
  readonly archiving: boolean;
  /**
   * `muc#roomconfig_presencebroadcast`: the roles whose presence the other occupants get (an
   * occupant always gets its own). "none" lists the affiliated users with a reserved nick who
   * are not in the room to each newcomer, as unavailable presence (Prosody's "show offline").
   * In the order of {@link ROLE_RANK}, without repeats.
   */
  readonly presenceBroadcast: readonly Role[];
  /**
   * A user with a reserved nick always enters under it: joining under another nick gets the
   * reserved one with status 210 (XEP-0045 §7.2.11), changing to another is refused. Off by
   * default, as Prosody's `enforce_registered_nickname` (muc_register.scs joins under either).
   */
  readonly enforceNick: boolean;
}

/** One affiliation with what goes with it. */
export interface AffiliationEntry {
  readonly affiliation: Exclude<Affiliation, "none">;
  /** Why an outcast was banned (shown in the ban list). */
  readonly reason?: string;
  /** The nick reserved by room registration (XEP-0045 §7.10) or by an admin. */
  readonly nick?: string;
}

/** One occupant: a nick and the sessions (full JIDs of one bare JID) using it. */
export interface Occupant {
  readonly nick: string;
  /** The real bare JID behind every session. */
  readonly bare: string;
  /** Full JID of each session -> its latest presence as the room shows it (see `cleanPresence`). */
  readonly sessions: ReadonlyMap<string, Element>;
  /** The presence others see: the one most recently sent by any of the sessions. */
  readonly presence: Element;
  readonly role: Role;
  /** XEP-0421: stable per room and real bare JID. */
  readonly occupantId: string;
}

/** The room's subject (XEP-0045 §8.1). */
export interface Subject {
  readonly text: string;
  /** The nick that set it; undefined when the room itself did. */
  readonly by?: string;
  readonly at: number;
}

/** One message of discussion history, as broadcast (from the occupant JID, no `to`). */
export interface HistoryEntry {
  readonly stanza: Element;
  readonly at: number;
  /** Characters of the serialized stanza, for `maxchars` (XEP-0045 §7.2.15). */
  readonly chars: number;
}

/**
 * One room. The affiliation lives only in `affiliations` (an occupant's is derived), so that a
 * change reaches every session at once; `nickOf` and `reservedBy` are indexes over `occupants`
 * and `affiliations`, kept by the reducer, so that a stanza finds its sender in one lookup.
 */
export interface Room {
  /** The room's bare JID (room@service). */
  readonly jid: string;
  readonly config: RoomConfig;
  /** Bare JID (or a domain, banning a whole server) -> affiliation; "none" is absent. */
  readonly affiliations: ReadonlyMap<string, AffiliationEntry>;
  /** Reserved nick -> bare JID (from `affiliations`). */
  readonly reservedBy: ReadonlyMap<string, string>;
  /** Nick -> occupant, in order of joining. */
  readonly occupants: ReadonlyMap<string, Occupant>;
  /** Full JID of a session -> its nick. */
  readonly nickOf: ReadonlyMap<string, string>;
  readonly subject?: Subject;
  /** Oldest first, at most `config.historyLength` and `limits.historyBytes`. */
  readonly history: readonly HistoryEntry[];
  /** Bytes (serialized characters) held in `history`. */
  readonly historyChars: number;
  /** A new room awaiting its configuration (XEP-0045 §10.1): only owners may enter. */
  readonly locked: boolean;
  /** Timestamp of the newest archived message, so that archive ids never go backwards. */
  readonly lastArchived: number;
  /**
   * Voice requests (XEP-0045 §7.13) sent on to the moderators and not yet answered: bare JID
   * of the visitor -> when. A visitor asking again while pending is not sent on again; entries
   * of occupants no longer visitors go at the next request, and there are at most
   * {@link MAX_VOICE_REQUESTS}.
   */
  readonly voiceRequests: ReadonlyMap<string, number>;
}

/** Pending voice requests a room holds (each is one moderator notice per moderator session). */
export const MAX_VOICE_REQUESTS = 100;

/** Every bound on what a room holds, with its default. */
export interface MucLimits {
  /** Occupants (nicks) per room, whatever `maxUsers` says. */
  readonly occupantsPerRoom: number;
  /** Sessions sharing one nick. */
  readonly sessionsPerOccupant: number;
  /** Largest `historyLength` an owner may set. */
  readonly historyMessages: number;
  /** Characters of serialized history kept per room. */
  readonly historyBytes: number;
  /** UTF-8 bytes of a groupchat or private message's body. */
  readonly messageBytes: number;
  /** UTF-8 bytes of a subject. */
  readonly subjectBytes: number;
  /** Affiliations (members, admins, owners, outcasts) per room. */
  readonly affiliations: number;
  /** UTF-8 bytes of a configuration text (name, description, password, language). */
  readonly configTextBytes: number;
  /** UTF-8 bytes of a nick. */
  readonly nickBytes: number;
  /** UTF-8 bytes of a reason (kick, ban, destroy, invitation). */
  readonly reasonBytes: number;
  /** Rooms one user may create (counted by the service; see `MucCtx.roomsCreatedBy`). */
  readonly roomsPerCreator: number;
}

export const DEFAULT_MUC_LIMITS: MucLimits = {
  occupantsPerRoom: 1000,
  sessionsPerOccupant: 10,
  historyMessages: 100,
  historyBytes: 256 * 1024,
  messageBytes: 16 * 1024,
  subjectBytes: 1024,
  affiliations: 10_000,
  configTextBytes: 1024,
  nickBytes: 256,
  reasonBytes: 1024,
  roomsPerCreator: 100,
};

/** Who may create rooms (`[muc] creation`). */
export type CreationPolicy = "local" | "admins" | "anyone";

/** What the room reducer may consult. Deterministic under test. */
export interface MucCtx {
  /** The service's domain (conference.example.com). */
  readonly domain: string;
  readonly now: () => number;
  /** A fresh unique id (archive ids, ad-hoc session ids). */
  readonly newId: () => string;
  readonly limits: MucLimits;
  readonly creation: CreationPolicy;
  /** Bare JIDs of the service's admins: owners of every room. */
  readonly admins: ReadonlySet<string>;
  /** True for a JID of one of our hosts. */
  readonly isLocal: (jid: string) => boolean;
  /** The room archive can be used (the service archives); rooms then choose with `archiving`. */
  readonly archiving: boolean;
  /** XEP-0421: an id stable per room and real bare JID, unlinkable across rooms (a keyed hash). */
  readonly occupantId: (room: string, bare: string) => string;
  /** How many rooms this bare JID created that still exist (for `roomsPerCreator`). */
  readonly roomsCreatedBy?: (bare: string) => number;
  /** Configuration of new rooms, over {@link DEFAULT_CONFIG}. */
  readonly defaults?: Partial<RoomConfig>;
}

/** What the room persists: the rest (occupants, history) lives only while the server runs. */
export interface StoredRoom {
  readonly config: RoomConfig;
  readonly affiliations: readonly (readonly [string, AffiliationEntry])[];
  readonly subject?: Subject;
  readonly lastArchived?: number;
}

/** Something the shell must do for a room, in order. */
export type RoomOutput =
  /** Hand a stanza to the router (`from` and `to` set). */
  | { readonly kind: "route"; readonly stanza: Element }
  /** Persist the room (before anything that follows is sent). */
  | { readonly kind: "store-room"; readonly jid: string; readonly data: StoredRoom }
  /** Remove the room's stored record (destroyed, or no longer persistent). */
  | { readonly kind: "delete-room"; readonly jid: string }
  /** Append to the room's archive, durably, before anything that follows is sent. */
  | { readonly kind: "archive-append"; readonly jid: string; readonly item: ArchivedMessage }
  /**
   * Run `query` on the room's archive and answer `iq` with {@link mamAnswer} (results from the
   * room, then the fin).
   */
  | {
    readonly kind: "mam-query";
    readonly jid: string;
    readonly iq: Element;
    readonly query: ArchiveQuery;
  };

/** One reduction of a room: the room afterwards (undefined: gone) and the outputs. */
export type RoomStep = readonly [Room | undefined, readonly RoomOutput[]];
