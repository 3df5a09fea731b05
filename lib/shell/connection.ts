/**
 * Client connections (c2s): the client kind of the connection driver (lib/transport/driver.ts).
 * What is theirs alone lives here: the executor of the c2s outputs (routing, account
 * operations, the login throttle, binding, XEP-0077 registration, XEP-0198 resumption and
 * hibernation), and the account queues that make reading wait. The driver runs the loop.
 * @module
 */
import { reduce } from "../c2s/mod.ts";
import { canResume } from "../modules/stream_management.ts";
import { NS_CLIENT } from "../xmpp/namespaces.ts";
import type { Ctx, Event, Output } from "../core/types.ts";
import { bareJid, newSession, phaseOf, type Session } from "../core/session.ts";
import type { AccountStore } from "../storage/accounts.ts";
import type { AccountHub } from "./account_hub.ts";
import type { CapsCache } from "./caps_cache.ts";
import type { ParseEvent } from "../xml/parser.ts";
import type { Element } from "../xml/element.ts";
import type { Logger } from "../log.ts";
import type { Registry, SessionHandle } from "./registry.ts";
import type { QuietWatch } from "./quiet.ts";
import type { Registration } from "./registration.ts";
import type { AuthThrottle } from "./throttle.ts";
import type { TlsContexts } from "../transport/tls.ts";
import type { Ticket } from "./admission.ts";
import {
  arm,
  closeSocket,
  createDriver,
  disarm,
  dispatch,
  type Driver,
  type DriverKind,
  finish,
  hangUp,
  restartStream,
  type Transport,
} from "../transport/driver.ts";
import { remoteIp, tcpTransport } from "../transport/tcp.ts";
import { createMessageParser, webSocketTransport } from "../transport/websocket.ts";
import type { StreamParser, StreamParserOptions } from "../xml/parser.ts";
import { bareJidOf } from "../xmpp/jid.ts";

/** Everything a connection shares with the rest of the server. */
export interface ConnectionDeps {
  readonly ctx: Ctx;
  readonly registry: Registry;
  readonly accounts: AccountStore;
  /**
   * Routes a stanza; resolves once what it caused is durable. `then` (stanzas a module routes after it) are routed
   * after it has passed the sender's archive.
   */
  readonly route: (
    stanza: Element,
    opts?: { readonly then?: readonly Element[] },
  ) => Promise<void> | void;
  readonly hub: AccountHub;
  /** The process-wide entity capabilities cache (XEP-0115). */
  readonly caps?: CapsCache;
  readonly throttle: AuthThrottle;
  /** Account creation and password changes (XEP-0077); without it both fail. */
  readonly registration?: Registration;
  readonly tls?: TlsContexts;
  /** tls-server-end-point data per host (RFC 5929), for SCRAM-*-PLUS. */
  readonly endPoints: ReadonlyMap<string, Uint8Array>;
  readonly maxDepth: number;
  readonly authTimeoutMs: number;
  /** Tells when a connection has gone quiet, so that it can shed its parser's state. */
  readonly quiet: QuietWatch;
  /** Sessions that can be resumed (XEP-0198), by resumption id, across all connections. */
  readonly resumable: Map<string, Resumable>;
  readonly log: Logger;
}

/**
 * A connection whose session can be resumed (XEP-0198 §5). Resumption moves a session record
 * from one connection to another: the resuming connection's reducer asks with `sm-resume`, this
 * shell finds the entry, checks (with the pure `canResume`) that it is the same account's, takes
 * the record with `takeOver` and hands it to its own reducer as `sm-resume-answer`. Deciding
 * what to send stays in the reducers; the shell only moves the record.
 */
export interface Resumable {
  readonly handle: SessionHandle;
  /**
   * Ends this connection without ending its session (it closes with a `conflict` stream error
   * if still open) and returns the session record; undefined when the connection already ended.
   */
  takeOver(): Session | undefined;
}

/** How a connection is served. */
export interface ServeOptions {
  /** The XEP-0368 direct TLS port. */
  readonly directTls: boolean;
  /** The connection's place in the connection limits, released when its socket goes. */
  readonly ticket?: Ticket;
}

/** At most this many accounts a connection recently routed to are watched for backpressure. */
const RECENT_TARGETS = 8;

/** A client connection: the driver's record and what the client kind keeps beside it. */
interface C2s extends Driver<Session, Event, Output> {
  readonly deps: ConnectionDeps;
  /** What the registry and other connections hold of this one. */
  handle: SessionHandle;
  /** Effects of this session's stanzas not yet durable (account ops, routed stanzas). */
  // Made on first use: most connections never wait for anything (an idle one holds nothing).
  effects: Set<Promise<void>> | undefined;
  /** The last `<a/>` scheduled (XEP-0198), so that they go out in order. */
  acked: Promise<unknown> | undefined;
  /** The resumption id this connection is registered under (XEP-0198). */
  smId: string | undefined;
  /** Accounts this connection's stanzas went to lately, whose queues may hold its reading. */
  recentTargets: Set<string> | undefined;
  /** The newest of `recentTargets`. */
  lastTarget: string | undefined;
  /**
   * What this connection routed to each user that is still on its way (a message passes the
   * sender's and the recipient's archives): the next stanza to that user follows it, so that
   * an iq or presence sent after a message cannot overtake it (RFC 6120 §10.1). Entries go
   * once their stanza has arrived.
   */
  inFlight: Map<string, InFlight> | undefined;
}

/** A stanza on its way to a user (see `C2s.inFlight`). */
interface InFlight {
  /** Settles once it has arrived (its effects are done); may reject. */
  readonly done: Promise<void>;
  /** A message that passes the account queues (see {@link passesQueues}). */
  readonly queued: boolean;
}

/**
 * Whether a message to `key` passes its recipient's account queue in the order it was routed:
 * with archiving on, every message to a local user does (one kept waiting in its sender's
 * archive keeps its place there, see `AccountHub.reserve`), so a message after such a message
 * needs no waiting here, and the session's own account requests that follow (a MAM query) come
 * after both in the sender's queue.
 */
function passesQueues(d: C2s, stanza: Element, key: string): boolean {
  if (stanza.name !== "message" || !d.deps.ctx.archiving) return false;
  return d.deps.ctx.hosts.includes(key.slice(key.indexOf("@") + 1));
}

/** Adds `p` to the effects a later `<a/>` waits for, until it settles. */
function track(d: C2s, p: Promise<void> | void): void {
  if (p === undefined) return;
  const effects = d.effects ??= new Set();
  effects.add(p);
  const settle = () => effects.delete(p);
  p.then(settle, settle);
}

/**
 * Routes a stanza after what this connection routed to the same user (`key`, a bare JID) before
 * (RFC 6120 §10.1), and tracks its effects (see {@link track}). One callback per routed
 * stanza ends both its tracking and its place in `inFlight`: a message that passes the archive
 * makes no other closure or promise here.
 */
function routeInOrder(
  d: C2s,
  stanza: Element,
  then: readonly Element[] | undefined,
  key: string | undefined,
): void {
  const opts = then === undefined ? undefined : { then };
  const entry = key === undefined ? undefined : d.inFlight?.get(key);
  const queued = entry !== undefined && passesQueues(d, stanza, key!);
  const before = entry === undefined || (queued && entry.queued) ? undefined : entry.done;
  let routed: Promise<void> | void;
  // Nothing on its way to this user (the common case): routed now, no closure made.
  if (before === undefined) routed = d.deps.route(stanza, opts);
  else {
    // Whether what went before arrived or failed, this one goes.
    const go = () => d.deps.route(stanza, opts);
    routed = before.then(go, go);
  }
  if (key === undefined || routed === undefined) return track(d, routed);
  const p = routed;
  const effects = d.effects ??= new Set();
  effects.add(p);
  const inFlight = d.inFlight ??= new Map();
  const mine: InFlight = { done: p, queued: queued || passesQueues(d, stanza, key) };
  inFlight.set(key, mine);
  const settle = () => {
    effects.delete(p);
    if (inFlight.get(key) === mine) inFlight.delete(key);
  };
  p.then(settle, settle);
}

function noteTarget(d: C2s, bare: string | undefined): void {
  if (bare === undefined || bare === d.lastTarget) return;
  // A client mostly writes to the same few users: the one just noted is already the newest.
  d.lastTarget = bare;
  const recent = d.recentTargets ??= new Set();
  recent.delete(bare);
  recent.add(bare);
  if (recent.size > RECENT_TARGETS) recent.delete(recent.values().next().value!);
}

function takeOver(d: C2s): Session | undefined {
  // In the middle of a reduction the record is not final: refuse rather than hand over a
  // stale one (the client then binds a new resource).
  if (d.done || d.draining) return undefined;
  const snapshot = d.session;
  dispatch(d, { kind: "sm-taken-over" });
  return snapshot;
}

function loadCredentials(d: C2s, host: string, username: string): void {
  const { deps } = d;
  // An account that failed often lately, from any address, is answered late rather than
  // refused, so that no one can lock its user out (lib/shell/throttle.ts).
  const delay = deps.throttle.delayMs(username, deps.ctx.now());
  if (delay > 0) {
    deps.log.info("{ip}: answering the login for {user} after {ms} ms (recent failures)", {
      ip: d.session.ip,
      user: username,
      ms: delay,
    });
  }
  // An unknown account gets decoys, so that its exchange looks and costs like a real one.
  const credentials = deps.accounts.getCredentials(host, username)
    .then((found) => found ?? deps.accounts.decoyCredentials(host, username))
    .catch((err) => {
      deps.log.error("Loading credentials failed: {err}", { err: String(err) });
      return undefined;
    });
  const due = new Promise<void>((resolve) => {
    if (delay > 0) setTimeout(resolve, delay);
    else resolve();
  });
  Promise.all([credentials, due]).then(([loaded]) =>
    dispatch(d, { kind: "credentials-loaded", username, credentials: loaded })
  );
}

function startTls(d: C2s): void {
  const t = d.transport;
  t.starttls!().then((channelBindings) => {
    void t.read();
    dispatch(d, { kind: "tls-done", channelBindings });
  }, () => hangUp(d, "TLS handshake failed"));
}

/** The c2s outputs that are neither frames nor `disconnect`, in the order given. */
function execute(d: C2s, out: Exclude<Output, { kind: "send" | "open-stream" | "close-stream" }>) {
  const { deps } = d;
  switch (out.kind) {
    case "route": {
      // The parser's cached bare string: the same string each time, so that the maps and sets
      // it keys find it without hashing and comparing a new one.
      const to = out.stanza.attrs.to === undefined ? undefined : bareJidOf(out.stanza.attrs.to);
      // A user's, not a domain's (a domain holds no `@`).
      const bare = to !== undefined && to.includes("@") ? to : undefined;
      if (phaseOf(d.session) !== "unauthenticated") noteTarget(d, bare);
      routeInOrder(d, out.stanza, out.then, bare);
      return;
    }
    case "account":
      track(d, deps.hub.submit(out.bare, out.op));
      return;
    case "send-durable": {
      // XEP-0198: `<a/>` only once every effect of the stanzas it counts is durable; acks
      // stay in order (each waits for the one before it).
      const { stanza } = out;
      const waits = [...(d.acked === undefined ? [] : [d.acked]), ...(d.effects ?? [])];
      d.acked = Promise.allSettled(waits).then(() => {
        // A hibernating session has no socket: its acks are for the connection that resumes.
        if (!d.done && phaseOf(d.session) !== "hibernating") {
          d.transport.send({ kind: "send", stanza });
        }
      });
      return;
    }
    case "load-credentials":
      loadCredentials(d, out.host, out.username);
      return;
    case "starttls":
      startTls(d);
      return;
    case "reset-stream":
      restartStream(
        d,
        out.authenticated ? deps.ctx.maxStanzaSize : deps.ctx.maxStanzaSizeUnauthed,
      );
      return;
    case "bind": {
      // Bound: the auth timeout no longer applies, and its timer would outlive the login.
      disarm(d);
      const old = deps.registry.bind(out.fullJid, d.handle);
      old?.dispatch({ kind: "replaced" });
      return;
    }
    case "unbind":
      deps.registry.unbind(out.fullJid, d.handle);
      return;
    case "auth-result":
      deps.throttle.record(d.session.ip, out.username, out.ok, deps.ctx.now());
      deps.log.info(
        out.ok ? "{ip} authenticated as {user}" : "{ip} failed to authenticate as {user}",
        { ip: d.session.ip, user: out.username },
      );
      return;
    case "register-account":
    case "change-password": {
      const { iq } = out;
      const registration = deps.registration;
      const answer = registration === undefined
        ? Promise.resolve("failed" as const)
        : out.kind === "register-account"
        ? registration.register(d.session.ip, out.host, out.username, out.password)
        : registration.changePassword(out.host, out.username, out.password);
      answer.then((outcome) => dispatch(d, { kind: "registration-result", iq, outcome }));
      return;
    }
    case "sm-resumable":
      d.smId = out.id;
      deps.resumable.set(out.id, { handle: d.handle, takeOver: () => takeOver(d) });
      return;
    case "sm-resume": {
      const entry = deps.resumable.get(out.previd);
      const old = entry !== undefined && entry.handle !== d.handle &&
          canResume(d.session, entry.handle.session(), out.previd)
        ? entry.takeOver()
        : undefined;
      // Queued behind this reduction's outputs, before anything else the client sent.
      dispatch(d, { kind: "sm-resume-answer", previd: out.previd, h: out.h, old });
      return;
    }
    case "hibernate":
      // The socket is gone but the session is not: it stays registered, and the driver keeps
      // reducing what is routed to it until it is resumed elsewhere or the deadline passes.
      closeSocket(d);
      arm(d, out.seconds * 1000, { kind: "hibernation-timeout" });
      for (const jid of out.evict ?? []) {
        deps.registry.get(jid)?.dispatch({ kind: "hibernation-timeout" });
      }
      return;
    case "caps-learned":
      deps.caps?.learn(out.ver, out.query);
      return;
    case "log":
      deps.log[out.level === "warning" ? "warn" : out.level](out.message);
      return;
  }
}

function toEvent(ev: ParseEvent): Event {
  switch (ev.kind) {
    case "error":
      return { kind: "parse-error", condition: ev.condition, text: ev.text };
    default:
      return ev;
  }
}

/** The client kind of connection, shared by every client connection. */
const C2S: DriverKind<Session, Event, Output, C2s> = {
  reduce: (s, ev, d) => reduce(s, ev, d.deps.ctx),
  execute,
  parsed: toEvent,
  disconnected: (reason) => ({ kind: "disconnected", reason }),
  afterStep(d) {
    if (phaseOf(d.session) !== "unauthenticated") d.ticket?.authenticated();
  },
  /**
   * Reading also waits while this account's queue, or the queue of an account it just sent
   * to, is longer than `account_queue`.
   */
  pressured(d) {
    const { hub, ctx } = d.deps;
    const own = bareJid(d.session);
    if (own !== undefined && hub.queueLength(own) > ctx.limits.accountQueue) return true;
    for (const bare of d.recentTargets ?? []) {
      if (hub.queueLength(bare) > ctx.limits.accountQueue) return true;
    }
    return false;
  },
  dropped(d, why) {
    d.deps.log.warn("{ip}: dropped, it does not read what is sent to it ({why})", {
      ip: d.session.ip,
      why,
    });
  },
  ended(d) {
    const { deps } = d;
    if (d.smId !== undefined && deps.resumable.get(d.smId)?.handle === d.handle) {
      deps.resumable.delete(d.smId);
    }
    deps.registry.removeConnection(d.handle);
  },
};

/** What the registry holds of a connection: three small functions over its record. */
function handleOf(d: C2s): SessionHandle {
  return {
    id: d.session.id,
    session: () => d.session,
    dispatch: (ev) => dispatch(d, ev),
    lastActivity: () => d.lastActivity,
  };
}

/** Where a new client connection comes from and how it is framed. */
interface ClientStart {
  readonly ip: string;
  /** Encrypted below the stream (a WebSocket behind a TLS-terminating proxy that says so). */
  readonly secure: boolean;
  readonly ticket?: Ticket;
  /** The transport's parser, when its framing is not a TCP stream's. */
  readonly parser?: (opts: StreamParserOptions) => StreamParser;
}

/** A client connection over the transport `transport` makes, registered, its deadline armed. */
function startClient(
  deps: ConnectionDeps,
  start: ClientStart,
  transport: (d: C2s) => Transport,
): C2s {
  const { ctx } = deps;
  const d = createDriver(
    C2S,
    newSession(ctx.newId(), { ip: start.ip, secure: start.secure }),
    {
      writeBacklog: ctx.limits.writeBacklog,
      maxStanzaBytes: ctx.maxStanzaSizeUnauthed,
      maxDepth: deps.maxDepth,
      ticket: start.ticket,
      quiet: deps.quiet,
      parser: start.parser,
    },
    {
      deps,
      handle: undefined as unknown as SessionHandle,
      effects: undefined,
      acked: undefined,
      smId: undefined,
      recentTargets: undefined,
      lastTarget: undefined,
      inFlight: undefined,
    },
    transport,
  );
  d.handle = handleOf(d);
  deps.registry.addConnection(d.handle);
  arm(d, deps.authTimeoutMs, { kind: "auth-timeout" });
  return d;
}

/**
 * Serves one client over an upgraded WebSocket (RFC 7395) until it ends: the same kind, reducer
 * and limits as TCP, framed by lib/transport/websocket.ts. `deps.ctx` should say that TLS is
 * not available (there is no STARTTLS on a WebSocket).
 */
export function serveWebSocket(
  socket: WebSocket,
  deps: ConnectionDeps,
  start: Omit<ClientStart, "parser">,
): Promise<void> {
  const d = startClient(
    deps,
    { ...start, parser: createMessageParser },
    (d) => webSocketTransport(d, socket, { ns: NS_CLIENT }),
  );
  void d.transport.read();
  return d.finished;
}

/**
 * Serves one BOSH session (XEP-0206) until it ends: the same kind, reducer and limits as TCP,
 * with lib/transport/bosh.ts's transport and the WebSocket's message parser (each element of a
 * request body is one message).
 */
export function serveBosh(
  deps: ConnectionDeps,
  start: Omit<ClientStart, "parser">,
  transport: (d: Driver<Session, Event, Output>) => Transport,
): Promise<void> {
  return startClient(deps, { ...start, parser: createMessageParser }, transport).finished;
}

/** Serves one accepted connection until it ends. */
export async function serveConnection(
  conn: Deno.Conn,
  deps: ConnectionDeps,
  opts: ServeOptions,
): Promise<void> {
  const d = startClient(
    deps,
    { ip: remoteIp(conn), secure: false, ticket: opts.ticket },
    (d) => tcpTransport(d, conn, { ns: NS_CLIENT, tls: deps.tls, endPoints: deps.endPoints }),
  );

  if (opts.directTls) {
    try {
      const channelBindings = await d.transport.starttls!(["xmpp-client"]);
      d.session = { ...d.session, secure: true, channelBindings };
    } catch {
      finish(d);
      return d.finished;
    }
  }
  await d.transport.read();
  return d.finished;
}
