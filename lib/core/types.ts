/**
 * The reducer contract: (session, event, ctx) -> [session', outputs]. Events come from the
 * shell; outputs are data the shell executes in order.
 * @module
 */
import type { ChannelBindings, Roster, Session } from "./session.ts";
import type { Element } from "../xml/element.ts";
import type { StanzaErrorCondition, StreamError, StreamErrorCondition } from "../xmpp/errors.ts";
import type { ScramCredentialSet } from "../xmpp/scram.ts";
import type { RosterSetChange } from "./roster.ts";
import type { ArchivedMessage, ArchivePrefs, ArchiveQuery } from "./archive.ts";
import { utf8Bytes } from "../limits.ts";
import type { ParseEvent } from "../xml/parser.ts";
import type { Limits } from "../limits.ts";
import type { StreamOutput } from "../xmpp/stream_xml.ts";

/** Something that happened to a session. */
export type Event =
  /** The stream header, a stanza, the stream's end: as the parser reports them. */
  | Exclude<ParseEvent, { readonly kind: "error" }>
  /** The parser refused the input. */
  | {
    readonly kind: "parse-error";
    readonly condition: StreamErrorCondition;
    readonly text?: string;
  }
  | { readonly kind: "tls-done"; readonly channelBindings: ChannelBindings }
  /** A stanza routed to this session by the router. */
  | { readonly kind: "inbound"; readonly stanza: Element }
  /** Answer to a `load` of credentials; undefined when the account does not exist. */
  | {
    readonly kind: "credentials-loaded";
    readonly username: string;
    readonly credentials: ScramCredentialSet | undefined;
  }
  | { readonly kind: "roster-loaded"; readonly roster: Roster }
  /** Another session bound the same full JID. */
  | { readonly kind: "replaced" }
  /** The unauthenticated-connection timer fired. */
  | { readonly kind: "auth-timeout" }
  /** Nothing arrived for longer than the idle limit (XEP-0478 idle-seconds). */
  | { readonly kind: "idle-timeout" }
  /** The connection dropped (read end or write error). */
  | { readonly kind: "disconnected"; readonly reason: string }
  /** The server is shutting down. */
  | { readonly kind: "shutdown" }
  /** The user's avatar hash (XEP-0153) is now this; undefined: no avatar. */
  | { readonly kind: "avatar-hash"; readonly hash?: string }
  /** The shell's answer to `register-account` or `change-password` (XEP-0077) for `iq`. */
  | {
    readonly kind: "registration-result";
    readonly iq: Element;
    readonly outcome: RegistrationOutcome;
  }
  /** The account was removed (XEP-0077 §3.2): the session ends, `reply` sent first. */
  | { readonly kind: "account-removed"; readonly reply?: Element }
  /** The user's block list (XEP-0191), at bind and after each change. */
  | { readonly kind: "blocklist"; readonly blocklist: readonly string[] }
  /**
   * The shell's answer to `sm-resume` (XEP-0198 §5): `old` is the session to resume, taken from
   * its connection (which is closed), or undefined when none matches.
   */
  | {
    readonly kind: "sm-resume-answer";
    readonly previd: string;
    readonly h: number;
    readonly old?: Session;
  }
  /** Another connection resumed this session: this one ends without ending the session. */
  | { readonly kind: "sm-taken-over" }
  /** A hibernating session was not resumed in time (XEP-0198 §5). */
  | { readonly kind: "hibernation-timeout" };

/** How an account creation or password change went. */
export type RegistrationOutcome = "ok" | "conflict" | "throttled" | "not-acceptable" | "failed";

/** Something the shell must do, in order. */
export type Output =
  /** Write a stanza (or a stream-level element) on this connection. */
  | { readonly kind: "send"; readonly stanza: Element }
  /** Open or close our side of the stream; the transport frames it. */
  | StreamOutput
  /**
   * Hand a stanza to the router (its `from` is already stamped); `then` are stanzas routed
   * after this one once it is archived (past the sender's archive, so they keep its order).
   */
  | { readonly kind: "route"; readonly stanza: Element; readonly then?: readonly Element[] }
  /**
   * Write once every effect of what this session asked for before is durable (archived,
   * stored, or handed to a live session): XEP-0198 `<a/>` acknowledges nothing less.
   */
  | { readonly kind: "send-durable"; readonly stanza: Element }
  | { readonly kind: "load-credentials"; readonly host: string; readonly username: string }
  /** An operation for a user's account (roster, subscriptions, offline messages). */
  | { readonly kind: "account"; readonly bare: string; readonly op: AccountOp }
  /** Upgrade the connection to TLS now (after `<proceed/>` was written). */
  | { readonly kind: "starttls" }
  /** Start a fresh parser for the restarted stream; `authenticated` raises the size limit. */
  | { readonly kind: "reset-stream"; readonly authenticated: boolean }
  /** Register the bound full JID; an older session with it is replaced. */
  | { readonly kind: "bind"; readonly fullJid: string }
  /** Remove this session from the registry (the destroy path). */
  | { readonly kind: "unbind"; readonly fullJid: string }
  /**
   * A password check failed, or a login succeeded: for the login throttle (per address,
   * address and account, and account). Refusals before any password was checked are not
   * reported.
   */
  | { readonly kind: "auth-result"; readonly ok: boolean; readonly username: string }
  /** Close the socket (after everything before it was written). */
  | { readonly kind: "disconnect"; readonly error?: StreamError }
  /** A client answered a caps disco#info (XEP-0115): the shell verifies `ver` and caches it. */
  | { readonly kind: "caps-learned"; readonly ver: string; readonly query: Element }
  /**
   * XEP-0077: create an account, answered by `registration-result`. `iq` is the request
   * without its payload, so that the password is in `password` only (and never logged).
   */
  | {
    readonly kind: "register-account";
    readonly iq: Element;
    readonly host: string;
    readonly username: string;
    readonly password: string;
  }
  /** XEP-0077 §3.3: replace the user's password, answered by `registration-result`. */
  | {
    readonly kind: "change-password";
    readonly iq: Element;
    readonly host: string;
    readonly username: string;
    readonly password: string;
  }
  /** XEP-0198: the session can be resumed by `id` (the shell remembers this connection). */
  | { readonly kind: "sm-resumable"; readonly id: string }
  /** XEP-0198: find the session `previd` and answer with `sm-resume-answer`. */
  | { readonly kind: "sm-resume"; readonly previd: string; readonly h: number }
  /**
   * XEP-0198: the connection is gone but the session lives on: close the socket, keep the
   * session registered, and send `hibernation-timeout` after `seconds`. The user's hibernating
   * sessions named in `evict` (past `limits.resumablePerAccount`) get `hibernation-timeout` now.
   */
  | {
    readonly kind: "hibernate";
    readonly seconds: number;
    readonly evict?: readonly string[];
  }
  | {
    readonly kind: "log";
    readonly level: "debug" | "info" | "warning";
    readonly message: string;
  };

/** One reduction's result. */
export type Step = readonly [Session, readonly Output[]];

/** A view of another live session, as the registry shows it. */
export interface ResourceView {
  readonly fullJid: string;
  readonly resource: string;
  readonly priority: number;
  readonly available: boolean;
  readonly interested: boolean;
  /** The last available presence broadcast by the resource (from stamped). */
  readonly presence?: Element;
  /** The resource's disco features, known from its entity capabilities (XEP-0115). */
  readonly features?: readonly string[];
  /** The session's module state (`Session.modules`), for modules deciding about deliveries. */
  readonly modules?: Readonly<Record<string, unknown>>;
  /** The user's block list (XEP-0191) as the resource holds it; undefined until loaded. */
  readonly blocklist?: readonly string[];
  /** The resource requested the block list: it gets block and unblock pushes (XEP-0191 §3.2). */
  readonly blocklistInterested?: boolean;
  /** The session waits to be resumed (XEP-0198 §5) since this time (ms); absent when it does not. */
  readonly hibernatingSince?: number;
  /** When `presence` was set (ms), for the delay stamp when it is sent again. */
  readonly presenceAt?: number;
}

/** What a reducer may consult. Everything here is read-only or deterministic under test. */
export interface Ctx {
  readonly hosts: readonly string[];
  readonly requireEncryption: boolean;
  /** TLS can be offered (a certificate is loaded). */
  readonly tlsAvailable: boolean;
  /** The message archive (XEP-0313) is on. */
  readonly archiving: boolean;
  /** SASL PLAIN may be offered (only ever under TLS). */
  readonly allowPlain: boolean;
  /** Stanza size limit after authentication, in bytes. */
  readonly maxStanzaSize: number;
  /** Stanza size limit before authentication, in bytes. */
  readonly maxStanzaSizeUnauthed: number;
  /** Seconds the server waits before closing an idle stream (XEP-0478 idle-seconds). */
  readonly idleSeconds: number;
  /** Seconds a dropped session waits to be resumed (XEP-0198 `max`). */
  readonly smResumeTimeout: number;
  readonly now: () => number;
  /** A fresh unique id (stream ids, resources, iq ids). */
  readonly newId: () => string;
  /** A fresh random nonce for SASL (printable, no comma). */
  readonly nonce: () => string;
  /**
   * True when logins from this address, or (with `username`) from this address for this
   * account, are refused for now. An account alone is never refused, only slowed down.
   */
  readonly isAuthThrottled: (ip: string, username?: string) => boolean;
  /** The live resources of a bare JID. */
  readonly resourcesOf: (bareJid: string) => readonly ResourceView[];
  /** The features behind a verified XEP-0115 `ver`, when some client already told us. */
  readonly capsFeatures: (ver: string) => readonly string[] | undefined;
  readonly serverName: string;
  readonly serverVersion: string;
  readonly settings: ModuleSettings;
  /** Every bound on what a peer can make the server hold (`[limits]`). */
  readonly limits: Limits;
  /**
   * The modules the session reducer runs (lib/modules/registry.ts `withDerived`); absent: the
   * server's registry. A registry is data, so a test can run one without a module, or with one
   * of its own, and see that nothing else had to know.
   */
  readonly modules?: readonly Module[];
}

/** Settings of the server's modules, from the configuration. */
export interface ModuleSettings {
  /** When the server started (ms), for uptime (XEP-0012 on the domain). */
  readonly startedAt: number;
  /** XEP-0157 contact addresses by kind (`abuse`, `admin`, ...). */
  readonly contactInfo: Readonly<Record<string, readonly string[]>>;
  /** XEP-0077: accounts may be created in-band (off when absent). */
  readonly allowRegistration?: boolean;
  /** XEP-0215: the services announced on the domain. */
  readonly externalServices?: readonly ExternalService[];
  /** Domains of the configured external components (XEP-0114), listed in disco#items. */
  readonly components?: readonly string[];
}

/** One external service (XEP-0215) as configured. */
export interface ExternalService {
  readonly type: string;
  readonly host: string;
  readonly port?: number;
  readonly transport?: "tcp" | "udp";
  readonly username?: string;
  readonly password?: string;
  /** Shared secret for TURN REST credentials (draft-uberti-behave-turn-rest); never sent. */
  readonly secret?: string;
  /** Seconds REST credentials stay valid (default one day). */
  readonly ttl?: number;
  /** Credentials are needed even without a password here. */
  readonly restricted?: boolean;
}

/** An IQ handler for one payload (`namespace name`). */
export type IqHandler = (s: Session, iq: Element, payload: Element, ctx: Ctx) => Step;

/** A disco identity (XEP-0030). */
export interface Identity {
  readonly category: string;
  readonly type: string;
  readonly name?: string;
}

/**
 * One feature of the server: what it answers and what it announces. Everything served is
 * registered as a module, and disco is derived from the registry, so it never lies.
 */
export interface Module {
  readonly name: string;
  /** Features announced on the server's domain. */
  readonly hostFeatures?: readonly string[];
  /** Features announced on accounts (bare JIDs). */
  readonly accountFeatures?: readonly string[];
  readonly hostIdentities?: readonly Identity[];
  /** Identities announced on accounts, beside `account/registered` (XEP-0163 `pubsub/pep`). */
  readonly accountIdentities?: readonly Identity[];
  /**
   * Handlers of iqs to the server's domain, by `namespace name` of the payload. Who may ask:
   * anyone with a session here. Only get and set reach a handler (the dispatcher drops results
   * and errors) and an unknown payload, or one of a module that is off, is answered
   * `service-unavailable` by the dispatcher.
   */
  readonly hostIq?: Readonly<Record<string, IqHandler>>;
  /**
   * Handlers of iqs to the user's own account (no `to`, or the bare JID), as `hostIq`. Who may
   * ask: the account's own sessions only. The c2s dispatcher hands a handler nothing else (an
   * iq from someone else to the account is the account's, `account.iq`, and is not routed
   * here), so handlers never check the sender.
   */
  readonly selfIq?: Readonly<Record<string, IqHandler>>;
  /** XEP-0128 extended information on the domain's disco#info. */
  readonly hostForms?: (ctx: Ctx) => readonly Element[];
  /** Stream features offered once authenticated, beside `<bind/>` (XEP-0352 csi, XEP-0115 c). */
  readonly authedFeatures?: (ctx: Ctx) => readonly Element[];
  /** Data kept per account, answered by the account's queue (vCard, private storage ...). */
  readonly account?: AccountModule;
  /** Its part in delivering messages to local users. */
  readonly delivery?: DeliveryHooks;
  /**
   * False when the module is off in this configuration (MAM with archiving off): it then
   * answers nothing (its iqs get `service-unavailable`) and announces nothing (disco, caps,
   * stream features, forms). Absent: always on.
   */
  readonly enabled?: (ctx: Ctx) => boolean;
  /**
   * A stanza one of the user's bound sessions sends (message, presence or iq), `from` stamped,
   * `to` normalised (a message without one is to the user's bare JID), before it is
   * dispatched or routed (XEP-0191 refuses stanzas to blocked JIDs and notes who asked for the
   * list, XEP-0359 strips forged stanza-ids, XEP-0280 refuses client-made copies and adds sent
   * ones). Run in registry order, each seeing the stanza and session the previous left;
   * undefined lets it through unchanged.
   */
  readonly outbound?: (s: Session, stanza: Element, ctx: Ctx) => OutboundVerdict | undefined;
  /**
   * A stanza routed to this bound session, before it is written (XEP-0191 drops what a blocked
   * JID sends, XEP-0352 holds what can wait). Run in registry order: the first Step wins;
   * when every hook passes (undefined), c2s writes the stanza.
   */
  readonly inbound?: (s: Session, stanza: Element, ctx: Ctx) => Step | undefined;
  /**
   * A top-level element of another namespace than `jabber:client` from an authenticated
   * session: a nonza (XEP-0352 `<active/>`), handled in stream order. Undefined: not this
   * module's (the stream ends with `unsupported-stanza-type` when it is nobody's).
   */
  readonly nonza?: (s: Session, el: Element, ctx: Ctx) => Step | undefined;
  /**
   * Presence the user's session sends, before it is broadcast or routed (XEP-0153 adds the
   * avatar hash, XEP-0115 learns the client's caps, XEP-0012 keeps the logout status).
   */
  readonly presence?: (s: Session, presence: Element, ctx: Ctx) => PresenceVerdict | undefined;
  /**
   * What the user's presence routes (broadcast, probes, directed presence), filtered before it
   * goes (XEP-0191 §3.6: nothing to a blocked JID). Run in registry order.
   */
  readonly presenceRoutes?: (s: Session, outputs: readonly Output[]) => readonly Output[];
  /** The session bound a resource: what the module does then (after the roster is asked for). */
  readonly bound?: (s: Session, ctx: Ctx) => Step | undefined;
  /** The session is ending (the destroy path): what the module adds before it goes. */
  readonly ending?: (s: Session, ctx: Ctx) => readonly Output[];
}

/** False when the module is off under `ctx` (see `Module.enabled`). */
export function isEnabled(m: Module, ctx: Ctx): boolean {
  return m.enabled === undefined || m.enabled(ctx);
}

/** What an outbound hook decided about a stanza the user sends. */
export type OutboundVerdict =
  /**
   * Handled here: this Step instead of dispatching or routing (an error reply, or nothing),
   * after the outputs earlier hooks added.
   */
  | { readonly stop: Step }
  /**
   * Go on: with the stanza as changed here, the session as changed here, outputs to write
   * before the stanza's own, and stanzas to route after it (`then`: a routed message's follow
   * it past the sender's archive; others are routed after the stanza's outputs).
   */
  | {
    readonly stanza?: Element;
    readonly then?: readonly Element[];
    readonly session?: Session;
    readonly outputs?: readonly Output[];
  };

/**
 * What a presence hook decided: a changed presence, a new session, outputs to add. Outputs come
 * in two places because the order is protocol: `outputs` go before the presence is broadcast
 * (XEP-0115: the user's own PEP service asks about new caps before the presence comes back),
 * `after` once the broadcast and what it starts are out (the contacts' services ask, XEP-0012
 * records the logout).
 */
export interface PresenceVerdict {
  readonly presence?: Element;
  readonly session?: Session;
  readonly outputs?: readonly Output[];
  readonly after?: readonly Output[];
}

/** A delivery the router or a module decides: one stanza for one live session. */
export interface SessionDelivery {
  readonly to: string;
  readonly stanza: Element;
}

/**
 * How a module takes part in delivering a message to a local user: the router (and the
 * recipient's account, when it archives first) runs these for every message, in registry order.
 */
export interface DeliveryHooks {
  /** Bounces that replace every delivery (XEP-0191: a blocked sender); undefined: deliver. */
  readonly screen?: (
    message: Element,
    bare: string,
    resources: readonly ResourceView[],
  ) => readonly Element[] | undefined;
  /** The message as the user's resources get it (XEP-0280 §7 removes `<private/>`). */
  readonly rewrite?: (message: Element) => Element;
  /** More deliveries beside the ones decided, to the resources not `reached` (XEP-0280 §6). */
  readonly copies?: (
    message: Element,
    bare: string,
    reached: readonly string[],
    resources: readonly ResourceView[],
  ) => readonly SessionDelivery[];
}

/** What an account handler may consult. */
export interface AccountIqCtx {
  /** The account (user@host). */
  readonly bare: string;
  /** True when the iq comes from one of the account's own resources. */
  readonly self: boolean;
  readonly now: number;
  /** A fresh unique id (item ids). */
  readonly newId: () => string;
  /** The account's roster, for access decisions (PEP access models). */
  readonly roster?: Roster;
  /** The live resources of a bare JID, for notifications (PEP). */
  readonly resourcesOf?: (bareJid: string) => readonly ResourceView[];
  /** The data of the module's `alsoStores`, by store name (absent when nothing is stored). */
  readonly also?: Readonly<Record<string, unknown>>;
  /** Every bound on what a peer can make the server hold (`[limits]`). */
  readonly limits: Limits;
}

/** The answer of an account handler: new data to store (if changed) and the replies. */
export interface AccountIqResult {
  readonly data?: unknown;
  readonly replies: readonly Element[];
  /** What else the account must do, before the replies (e.g. tell the user's sessions). */
  readonly outputs?: readonly AccountOutput[];
  /** New data for some of the module's `alsoStores`, by store name (undefined deletes it). */
  readonly alsoData?: Readonly<Record<string, unknown>>;
}

/** Handles an iq (get or set, from stamped) for an account's stored data. */
export type AccountIqHandler = (
  data: unknown,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
) => AccountIqResult;

/** Who may send an iq to a user's account data: the user, their presence subscribers, anyone. */
export type IqWho = "self" | "contacts" | "anyone";

/**
 * Who may ask, per iq type, and the error everyone else gets: checked by the account reducer
 * before the handler runs, so that handlers never repeat it. `contacts` are the JIDs with a
 * `from` or `both` subscription in the user's roster (and the user).
 */
export interface IqAccess {
  readonly get: IqWho;
  readonly set: IqWho;
  readonly refusal: StanzaErrorCondition;
}

/** A module's per-account data: one keyval store, and the payloads it answers. */
export interface AccountModule {
  readonly store: string;
  /**
   * Other modules' stores the handlers read and may update, loaded beside `store` (XEP-0402 §5:
   * the bookmarks of private storage live in PEP; XEP-0398: avatars live in both).
   */
  readonly alsoStores?: readonly string[];
  /** By `namespace name` of the payload; iqs to the account's bare JID (or none, from itself). */
  readonly iq: Readonly<Record<string, AccountIqHandler>>;
  /** Who may send each payload (by `namespace name`); absent: anyone (the handler decides). */
  readonly access?: Readonly<Record<string, IqAccess>>;
  /** What a session that just bound needs from the stored data (its store is loaded first). */
  readonly onBound?: (data: unknown, fullJid: string) => readonly AccountOutput[];
  /**
   * Screens a stanza from someone else before the account acts on it (its store is always
   * loaded): undefined lets it through, otherwise the stanzas to route instead (none: drop).
   */
  readonly screen?: (data: unknown, stanza: Element) => readonly Element[] | undefined;
  /**
   * An available resource of the user went (the `logout` op, with the status text of its
   * unavailable presence): the new data of `store`, written without reading the old one (a
   * logout only overwrites: XEP-0012 keeps the latest); undefined: nothing to record.
   */
  readonly onLogout?: (
    now: number,
    status: string | undefined,
  ) => { readonly data: unknown } | undefined;
  /**
   * A resource (`fullJid`, a contact's or the user's own) made its disco features known through
   * its caps: what the module sends it from the stored data (XEP-0163 §4.3.4: the last items of
   * the nodes it asked `+notify` for). `roster` is the account's, for access decisions.
   */
  readonly onCaps?: (
    data: unknown,
    owner: string,
    roster: Roster,
    fullJid: string,
    features: readonly string[],
  ) => readonly AccountOutput[];
  /**
   * Messages wait for the user, or the user came back (see {@link WaitingEvent}): what the
   * module routes (XEP-0357: a notification to each of the user's push services) and its new
   * data (`data` present: written, undefined deletes). Its store is loaded for the ops that
   * raise these events. Undefined: nothing to do.
   */
  readonly onWaiting?: (
    data: unknown,
    event: WaitingEvent,
    ctx: WaitingCtx,
  ) => { readonly data?: unknown; readonly outputs: readonly AccountOutput[] } | undefined;
}

/**
 * What the account learns of a user who is not reading: a message was stored offline
 * (`stored`: how many are stored now, this one included), or messages were queued for one of
 * the user's hibernating sessions (XEP-0198: when it hibernates, what it had not acknowledged;
 * then each message sent to it). `back`: one of the user's clients is reading again (a
 * resource bound, or a hibernating session was resumed or ended).
 */
export type WaitingEvent =
  | { readonly kind: "offline"; readonly message: Element; readonly stored: number }
  | { readonly kind: "hibernated"; readonly messages: readonly Element[] }
  | { readonly kind: "back" }
  /** An answer (iq result or error) to an iq the account sent, such as a notification. */
  | { readonly kind: "reply"; readonly iq: Element };

/** What an `onWaiting` hook may consult. */
export interface WaitingCtx {
  /** The account (user@host). */
  readonly bare: string;
  readonly now: number;
  /** A fresh unique id (iq ids). */
  readonly newId: () => string;
  readonly limits: Limits;
}

// The account's records: its state, the operations on it and the outputs of its reducer
// (lib/account/), here below every module so that modules can name them.

/** What the server keeps for one account while it works on it. */
export interface AccountState {
  /** user@host. */
  readonly bare: string;
  /** False for a local JID with no account: stanzas to it bounce. */
  readonly exists: boolean;
  readonly roster: Roster;
  /**
   * How many offline messages are stored and their bytes, loaded once with the account and
   * kept up to date here, so that storing one never reads the others (XEP-0160).
   */
  readonly offline: OfflineTally;
  /** The user's archive preferences; undefined: the server's default policy. */
  readonly prefs?: ArchivePrefs;
  /** Timestamp of the newest archived message, so that stamps never go backwards. */
  readonly lastArchived: number;
  /** Stored data of modules, by store name; loaded before an op that needs it. */
  readonly modules: Readonly<Record<string, unknown>>;
  /** The account was removed and its tombstone stands: presence to it is answered. */
  readonly gone?: boolean;
}

/** The count and bytes of a user's stored offline messages (see {@link offlineSize}). */
export interface OfflineTally {
  readonly count: number;
  readonly bytes: number;
}

/** No offline messages. */
export const NO_OFFLINE: OfflineTally = { count: 0, bytes: 0 };

/**
 * What one stored message counts against `limits.offlineBytes`: the UTF-8 length of its JSON,
 * the form it is stored in. The store reports a little more for what it holds (its framing),
 * so an account loaded again errs towards refusing, never towards holding more.
 */
export function offlineSize(el: Element): number {
  return utf8Bytes(JSON.stringify(el));
}

/** A roster change requested by the user, validated by the session. */
export type { RosterSetChange };

/** An operation on an account. */
export type AccountOp =
  /** A session bound: it needs the roster. */
  | { readonly kind: "session-bound"; readonly fullJid: string }
  /** `<iq type="get"><query xmlns="jabber:iq:roster"/></iq>` from one of the user's sessions. */
  | { readonly kind: "roster-get"; readonly iq: Element }
  | { readonly kind: "roster-set"; readonly iq: Element; readonly change: RosterSetChange }
  /** The user sent subscribe/subscribed/unsubscribe/unsubscribed (from = user's bare JID). */
  | { readonly kind: "outbound-subscription"; readonly stanza: Element }
  /** A contact's subscription stanza for this user. */
  | { readonly kind: "inbound-subscription"; readonly stanza: Element }
  /** A presence probe for this user (RFC 6121 §4.3). */
  | { readonly kind: "probe"; readonly stanza: Element }
  /** A message for this user that no resource can take now (RFC 6121 §8.5.2.1.1, XEP-0160). */
  | { readonly kind: "offline-message"; readonly stanza: Element }
  /** One of the user's resources sent initial presence (RFC 6121 §4.2). */
  | { readonly kind: "initial-presence"; readonly fullJid: string; readonly priority: number }
  /** A message for this user, to archive and then deliver (when archiving is on). */
  | { readonly kind: "incoming-message"; readonly stanza: Element }
  /** A message this user sent, for their archive. */
  | {
    readonly kind: "outgoing-message";
    readonly stanza: Element;
    /** Stanzas routed after this one once it is archived (so they keep its order). */
    readonly then?: readonly Element[];
  }
  /** XEP-0313 query, metadata and preferences of the user's own archive. */
  | { readonly kind: "mam-query"; readonly iq: Element; readonly query: ArchiveQuery }
  | { readonly kind: "mam-metadata"; readonly iq: Element }
  /** Preferences get (no prefs) or set. */
  | { readonly kind: "mam-prefs"; readonly iq: Element; readonly prefs?: ArchivePrefs }
  /** An iq for a module's per-account data (vCard, private storage ...), from stamped. */
  | { readonly kind: "module-iq"; readonly iq: Element }
  /**
   * An iq result or error addressed to the account's bare JID: the answer to an iq the account
   * sent (XEP-0357: the app server's answer to a notification).
   */
  | { readonly kind: "iq-reply"; readonly iq: Element }
  /**
   * A resource's disco features became known (XEP-0115 caps): modules with `onCaps` answer (PEP
   * sends the last item of each node it wants notifications of).
   */
  | {
    readonly kind: "resource-caps";
    readonly fullJid: string;
    readonly features: readonly string[];
  }
  /** XEP-0077 §3.2: the user removes their account (`iq` from the requesting session). */
  | { readonly kind: "remove-account"; readonly iq: Element }
  /** The shell's answer to `delete-account`: the account and its data are gone, or not. */
  | { readonly kind: "account-removed"; readonly iq: Element; readonly ok: boolean }
  /** Messages queued for a hibernating session `sid` (XEP-0198), kept on disk too (issue 10). */
  | { readonly kind: "sm-stash"; readonly sid: string; readonly messages: readonly Element[] }
  /** Session `sid` was resumed or its queue went to offline storage: its stash goes. */
  | { readonly kind: "sm-unstash"; readonly sid: string }
  /** An available resource went (XEP-0012 §4 keeps the time and the status text). */
  | { readonly kind: "logout"; readonly status?: string };

/** What the shell does for an account, in order. */
export type AccountOutput =
  /** Persist the roster before anything that follows is sent. */
  | { readonly kind: "store-roster"; readonly roster: Roster }
  /**
   * Offline storage (XEP-0160). `append`: store one message, durably (fdatasync done) before
   * anything that follows is sent. `deliver`: give every stored message, oldest first, to the
   * session `to`, then delete them (a crash in between repeats them, never loses them).
   */
  | { readonly kind: "store-offline"; readonly action: "append"; readonly message: Element }
  | { readonly kind: "store-offline"; readonly action: "deliver"; readonly to: string }
  /** Give a stanza to one of this user's sessions. */
  | { readonly kind: "deliver"; readonly to: string; readonly stanza: Element }
  /**
   * Hand a stanza to the router (to another account or session); `senderArchived`: the
   * sender's archive copy of this message is durable, it goes on to its recipient.
   */
  | { readonly kind: "route"; readonly stanza: Element; readonly senderArchived?: boolean }
  /** The roster changed: every session of the user gets the new one. */
  | { readonly kind: "roster-changed"; readonly roster: Roster }
  /** One session gets the roster (after binding). */
  | { readonly kind: "send-roster"; readonly to: string; readonly roster: Roster }
  /** Append to the user's archive, durably, before anything that follows is sent. */
  | { readonly kind: "archive-append"; readonly item: ArchivedMessage }
  /** Run a query on the user's archive and send the results and the fin to `iq.from`. */
  | { readonly kind: "mam-query"; readonly iq: Element; readonly query: ArchiveQuery }
  /** Answer a metadata request from the user's archive. */
  | { readonly kind: "mam-metadata"; readonly iq: Element }
  | { readonly kind: "store-prefs"; readonly prefs: ArchivePrefs }
  /** Persist a module's data for the account (undefined deletes it). */
  | { readonly kind: "store-module"; readonly store: string; readonly data: unknown }
  /** The block list (XEP-0191) for one session (`to`) or, without `to`, all of the user's. */
  | { readonly kind: "blocklist"; readonly to?: string; readonly blocklist: readonly string[] }
  /** The avatar hash (XEP-0153) for one session (`to`) or, without `to`, all of the user's. */
  | { readonly kind: "avatar-hash"; readonly to?: string; readonly hash?: string }
  /**
   * Delete the account and all its data (the modules' stores first, then the record, which
   * leaves a tombstone), then answer with the `account-removed` op, ok or not, for `iq`.
   */
  | { readonly kind: "delete-account"; readonly iq: Element }
  /**
   * Every session of the account, bound or not, gets the `account-removed` event and ends; the
   * session `reply.to` writes `reply.stanza` first (XEP-0077 §3.2: the requester's result).
   */
  | {
    readonly kind: "end-sessions";
    readonly reply?: { readonly to: string; readonly stanza: Element };
  }
  /** Append to (or drop) the on-disk stash of a hibernating session (XEP-0198, issue 10). */
  | { readonly kind: "sm-stash"; readonly sid: string; readonly messages: readonly Element[] }
  | { readonly kind: "sm-unstash"; readonly sid: string };

/** What the account reducer may consult. */
export interface AccountCtx {
  readonly now: () => number;
  readonly newId: () => string;
  readonly resourcesOf: (bareJid: string) => readonly ResourceView[];
  /**
   * The available resources of a contact on another server, as far as their presence told us
   * (federation), for PEP notifications.
   */
  readonly remoteResourcesOf?: (bareJid: string) => readonly ResourceView[];
  /**
   * True for a domain served by another server (federation on): what is routed there leaves
   * over one link, in the order it was routed.
   */
  readonly federated?: (domain: string) => boolean;
  /** Every bound on what a peer can make the server hold (`[limits]`). */
  readonly limits: Limits;
  /** The archive's switch and the default policy for users without preferences. */
  readonly archive: { readonly enabled: boolean; readonly policy: ArchivePrefs["default"] };
  /** A random token for archive ids. */
  readonly random: () => string;
}

/** One reduction of an account. */
export type AccountStep = readonly [AccountState, readonly AccountOutput[]];
