/**
 * The c2s session record of the origin model, and its predicates.
 *
 * A session goes `c2s_unauthed` -> `c2s`; `notopen` holds until the stream header arrives. A
 * connected resource has a full JID, an available resource also has presence, an interested
 * resource also fetched its roster. Every change returns a new record.
 * @module
 */
import type { Element } from "../xml/element.ts";

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
  /** Items by the contact's bare JID (peer-supplied keys: see lib/roster.ts `rosterItem`). */
  readonly items: Readonly<Record<string, RosterItem>>;
  /**
   * Inbound subscription requests awaiting the user's answer (RFC 6121 §3.1.3), by bare JID,
   * whether or not the contact is in the roster; redelivered at each initial presence. Keys
   * are peer-supplied: read them with `Object.hasOwn` (lib/roster.ts `pendingRequest`).
   */
  readonly pendingIn: Readonly<Record<string, PendingRequest>>;
}

/**
 * A stored inbound subscription request: `true` when it carried no payload (and in rosters
 * stored before payloads were kept), else the request's child elements (`<status/>`, XEP-0172
 * `<nick/>`, XEP-0401 `<preauth/>` ...), redelivered with it (RFC 6121 §3.1.3).
 */
export type PendingRequest = true | { readonly payload: readonly Element[] };

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
  /**
   * Who got directed presence from this resource and must hear when it goes (RFC 6121 §4.6).
   * A set, copied only when it changes, at most `limits.directedPresences` JIDs.
   */
  readonly directed: ReadonlySet<string>;
  /** Stanzas that arrived between binding and the roster's arrival, replayed in order. */
  readonly held: readonly Element[];
  /** The stream's xml:lang, for error texts. */
  readonly lang?: string;
  /**
   * Present while the client says it is inactive (XEP-0352): the stanzas held back from it,
   * oldest first. Absent means active, as every stream begins.
   */
  readonly csi?: CsiHold;
  /** The user's avatar hash from their vCard (XEP-0153), added to available presence. */
  readonly avatarHash?: string;
  /** The entity capabilities (XEP-0115) of the last available presence; features once known. */
  readonly caps?: ClientCaps;
  /**
   * Per-session state of modules, by module name (`Module.name`): what a module that plugs in
   * keeps for one session without a field here. Module names are ours, never a peer's.
   */
  readonly modules: Readonly<Record<string, unknown>>;
  /** The user's block list (XEP-0191), a copy of the account's; set at bind and on change. */
  readonly blocklist?: readonly string[];
  /** This resource requested the block list (XEP-0191 §3.2): it gets block and unblock pushes. */
  readonly blocklistInterested?: boolean;
  /** When the current presence was set (ms), for the delay stamp when it is sent again. */
  readonly presenceAt?: number;
  /** Stream management (XEP-0198), once the client enabled it. */
  readonly sm?: StreamManagement;
}

/**
 * What is held for an inactive client (XEP-0352): the stanzas, oldest first, and their size in
 * bytes (bounded by `limits.csiBytes`). `sizes` and `bytes` are absent while nothing is held.
 */
export interface CsiHold {
  readonly held: readonly Element[];
  /** The size of each held stanza, measured once when it was held. */
  readonly sizes?: readonly number[];
  readonly bytes?: number;
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
  /**
   * The size in bytes of each of `unacked` (measured once, when it was queued), and their sum:
   * the queue is bounded by `limits.smQueueBytes` as well as by count. Absent means empty.
   */
  readonly unackedSizes?: readonly number[];
  readonly unackedBytes?: number;
  /** `outbound` when we last sent `<r/>`; absent when no request is outstanding. */
  readonly requestedAt?: number;
  /** The connection dropped: the session waits to be resumed, stanzas go to `unacked`. */
  readonly hibernating?: boolean;
  /** When it began to hibernate (ms): the oldest goes first past `limits.resumablePerAccount`. */
  readonly hibernatedAt?: number;
}

/** A client's advertised capabilities: `node#ver` names them, `features` once learned. */
export interface ClientCaps {
  readonly node: string;
  readonly ver: string;
  readonly hash: string;
  readonly features?: readonly string[];
  /**
   * Our questions about these caps (`node#ver`) still unanswered: only an answer to one of them
   * is learned, so that nobody can fill the caps cache with answers nobody asked for.
   */
  readonly asked?: readonly CapsQuestion[];
}

/** One of our disco#info questions about a resource's caps, waiting for its answer. */
export interface CapsQuestion {
  /** The iq id we sent. */
  readonly id: string;
  /** The full JID we asked: the answer must come from it. */
  readonly to: string;
  /** The PEP service (a bare JID) that asked: the answer is addressed to it. */
  readonly from: string;
}

/** No directed presence sent: shared, since a set is never changed in place. */
export const NO_DIRECTED: ReadonlySet<string> = new Set();

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
    modules: {},
    directed: NO_DIRECTED,
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

/**
 * Where a session is in its life: `unauthenticated` until SASL succeeds, `authenticated` until
 * a resource is bound, `bound` while it serves a resource, `hibernating` while its connection
 * is gone and it waits to be resumed (XEP-0198 §5), `ended` once it was destroyed. Each phase
 * follows only from the ones before it.
 */
export type SessionPhase = "unauthenticated" | "authenticated" | "bound" | "hibernating" | "ended";

/**
 * The phase of a session, derived from its fields (`destroyed`, `sm.hibernating`, `fullJid`,
 * `type`) so that it can never disagree with them: the shell and the guards ask this one
 * question instead of combining the fields each in its own way.
 */
export function phaseOf(s: Session): SessionPhase {
  if (s.destroyed) return "ended";
  if (s.sm?.hibernating === true) return "hibernating";
  if (s.fullJid !== undefined) return "bound";
  return s.type === "c2s" ? "authenticated" : "unauthenticated";
}

/** An interested resource has also requested the roster. */
export function isInterested(s: Session): boolean {
  return isConnected(s) && s.interested;
}
