/**
 * The c2s session record of the origin model, and its predicates.
 *
 * A session goes `c2s_unauthed` -> `c2s`; `notopen` holds until the stream header arrives. A
 * connected resource has a full JID, an available resource also has presence, an interested
 * resource also fetched its roster. Every change returns a new record.
 * @module
 */
import type { Element } from "./xml/element.ts";

/** Subscription states of RFC 6121 §2.1.2.5. */
export type Subscription = "none" | "to" | "from" | "both";

/** One roster entry (RFC 6121 §2.1.2). */
export interface RosterItem {
  /** The contact's bare JID, normalised. */
  readonly jid: string;
  readonly name?: string;
  readonly subscription: Subscription;
  /** Pending outbound subscription request (`ask="subscribe"`). */
  readonly ask?: "subscribe";
  /** Subscription pre-approved by the user (RFC 6121 §3.4, `approved="true"`). */
  readonly approved?: boolean;
  readonly groups: readonly string[];
}

/** A user's roster with its version (XEP-0237). */
export interface Roster {
  /** Increases with every change; sent as `ver`. */
  readonly version: string;
  /** Items by the contact's bare JID. */
  readonly items: Readonly<Record<string, RosterItem>>;
  /**
   * Inbound subscription requests awaiting the user's answer (RFC 6121 §3.1.3), by bare JID,
   * whether or not the contact is in the roster; redelivered at each initial presence.
   */
  readonly pendingIn: Readonly<Record<string, true>>;
}

/** A roster with nothing in it. */
export const EMPTY_ROSTER: Roster = { version: "0", items: {}, pendingIn: {} };

/** SASL exchange in progress (opaque to everything but lib/reducers/sasl.ts). */
export interface SaslExchange {
  readonly mechanism: string;
  readonly step: "await-credentials" | "await-final";
  readonly username: string;
  readonly state: Readonly<Record<string, string>>;
}

/** Channel binding data the TLS layer could provide, by RFC 5056 type name. */
export type ChannelBindings = Readonly<
  Partial<Record<"tls-server-end-point" | "tls-exporter", Uint8Array>>
>;

/** A client-to-server session. */
export interface Session {
  /** Process-unique id of the connection. */
  readonly id: string;
  readonly type: "c2s_unauthed" | "c2s";
  /** True until the (current) stream header has arrived. */
  readonly notopen: boolean;
  /** True once the stream ended: the terminal state swallows late input. */
  readonly destroyed: boolean;
  /** The stream id we sent in the latest header. */
  readonly streamId?: string;
  /** TLS is in place (STARTTLS done or direct TLS). */
  readonly secure: boolean;
  /** Channel binding data for SCRAM-*-PLUS, set when TLS completes. */
  readonly channelBindings: ChannelBindings;
  /** A SASL exchange under way. */
  readonly sasl?: SaslExchange;
  /** Remote address, for throttling and logs. */
  readonly ip: string;
  readonly host?: string;
  readonly username?: string;
  readonly resource?: string;
  readonly fullJid?: string;
  readonly priority: number;
  /** The last broadcast available presence; reset on unavailable. */
  readonly presence?: Element;
  /** Set when this resource fetched its roster: it then gets roster pushes. */
  readonly interested: boolean;
  /** Loaded at bind. */
  readonly roster?: Roster;
  /** Who got directed presence from this resource and must hear when it goes (RFC 6121 §4.6). */
  readonly directed: readonly string[];
  /** Stanzas that arrived between binding and the roster's arrival, replayed in order. */
  readonly held: readonly Element[];
  /** The stream's xml:lang, for error texts. */
  readonly lang?: string;
  /**
   * Present while the client says it is inactive (XEP-0352): the stanzas held back from it,
   * oldest first. Absent means active, as every stream begins.
   */
  readonly csi?: { readonly held: readonly Element[] };
  /** The user's avatar hash from their vCard (XEP-0153), added to available presence. */
  readonly avatarHash?: string;
  /** The entity capabilities (XEP-0115) of the last available presence; features once known. */
  readonly caps?: ClientCaps;
  /** The resource enabled message carbons (XEP-0280). */
  readonly carbons: boolean;
  /** The user's block list (XEP-0191), a copy of the account's; set at bind and on change. */
  readonly blocklist?: readonly string[];
  /** When the current presence was set (ms), for the delay stamp when it is sent again. */
  readonly presenceAt?: number;
  /** Stream management (XEP-0198), once the client enabled it. */
  readonly sm?: StreamManagement;
}

/**
 * XEP-0198 counters and the queue of stanzas the client has not acknowledged. Counters are
 * unsigned 32-bit and wrap (XEP-0198 §4). Kept in the record so that resumption can hand the
 * whole session, queue included, to the connection that resumes it.
 */
export interface StreamManagement {
  /** The resumption id; absent when the client enabled counting only. */
  readonly id?: string;
  /** Seconds a dropped connection's session waits to be resumed. */
  readonly max?: number;
  /** Stanzas received from the client and handled (our `h`). */
  readonly inbound: number;
  /** Stanzas sent to the client, acknowledged or not. */
  readonly outbound: number;
  /** Sent stanzas the client has not acknowledged yet, oldest first. */
  readonly unacked: readonly Element[];
  /** `outbound` when we last sent `<r/>`; absent when no request is outstanding. */
  readonly requestedAt?: number;
  /** The connection dropped: the session waits to be resumed, stanzas go to `unacked`. */
  readonly hibernating?: boolean;
}

/** A client's advertised capabilities: `node#ver` names them, `features` once learned. */
export interface ClientCaps {
  readonly node: string;
  readonly ver: string;
  readonly hash: string;
  readonly features?: readonly string[];
}

/** A fresh session for a new connection. */
export function newSession(
  id: string,
  opts: {
    readonly ip: string;
    readonly secure: boolean;
    readonly channelBindings?: ChannelBindings;
  },
): Session {
  return {
    id,
    type: "c2s_unauthed",
    notopen: true,
    destroyed: false,
    secure: opts.secure,
    channelBindings: opts.channelBindings ?? {},
    ip: opts.ip,
    priority: 0,
    interested: false,
    carbons: false,
    directed: [],
    held: [],
  };
}

/** The bare JID of an authenticated session. */
export function bareJid(s: Session): string | undefined {
  return s.username !== undefined && s.host !== undefined ? `${s.username}@${s.host}` : undefined;
}

/** A connected resource has a full JID. */
export function isConnected(s: Session): boolean {
  return !s.destroyed && s.fullJid !== undefined;
}

/** An available resource has also sent available presence. */
export function isAvailable(s: Session): boolean {
  return isConnected(s) && s.presence !== undefined;
}

/** The connection dropped and the session waits to be resumed (XEP-0198 §5). */
export function isHibernating(s: Session): boolean {
  return !s.destroyed && s.sm?.hibernating === true;
}

/** An interested resource has also requested the roster. */
export function isInterested(s: Session): boolean {
  return isConnected(s) && s.interested;
}
