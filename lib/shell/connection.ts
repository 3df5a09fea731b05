/**
 * The per-connection loop: bytes in through the parser, events through the reducer one at a
 * time in arrival order, outputs executed in order. The only place a session record changes.
 * @module
 */
import type tls from "node:tls";
import { reduce } from "../c2s/mod.ts";
import { canResume } from "../modules/stream_management.ts";
import { tcpFrame } from "../transport/tcp_framing.ts";
import { NS_CLIENT } from "../xmpp/namespaces.ts";
import type { Ctx, Event, Output } from "../core/types.ts";
import { type ChannelBindings, newSession, type Session } from "../core/session.ts";
import type { AccountStore } from "../storage/accounts.ts";
import type { AccountHub } from "./account_hub.ts";
import type { CapsCache } from "./caps_cache.ts";
import { createStreamParser, type ParseEvent, type StreamParser } from "../xml/parser.ts";
import type { Element } from "../xml/element.ts";
import type { Logger } from "../log.ts";
import type { Registry, SessionHandle } from "./registry.ts";
import type { QuietWatch } from "./quiet.ts";
import type { Registration } from "./registration.ts";
import type { AuthThrottle } from "./throttle.ts";
import { acceptTls, type TlsContexts } from "../transport/tls.ts";
import type { Ticket } from "./admission.ts";
import { type BacklogGuard, type BacklogSource, createBacklogGuard, whenRelieved } from "./flow.ts";
import { utf8Bytes } from "../limits.ts";
import { bareJid } from "../core/session.ts";
import { parseJid } from "../xmpp/jid.ts";

/** Everything a connection shares with the rest of the server. */
export interface ConnectionDeps {
  readonly ctx: Ctx;
  readonly registry: Registry;
  readonly accounts: AccountStore;
  /** Routes a stanza to sessions and accounts. */
  /**
   * Routes a stanza; resolves once what it caused is durable. `then` (sent carbons) are routed
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

/** A byte sink that keeps writes in order and batches those made in one tick. */
export interface Sink extends BacklogSource {
  write(text: string): void;
  flush(): Promise<void>;
  close(): void;
  /** Closes at once, dropping what is unwritten (for a peer that does not read). */
  abort(): void;
}

const encoder = new TextEncoder();

// Read buffer bounds in bytes: an idle connection holds READ_MIN, a busy one up to READ_MAX.
const READ_MIN = 512;
const READ_MAX = 16384;

/** A sink writing to a plain TCP connection; `onError` runs when a write fails. */
export function plainSink(conn: Deno.Conn, onError: () => void): Sink {
  let pending: string[] = [];
  let pendingBytes = 0;
  let inFlight = 0;
  let taken = 0;
  let chain = Promise.resolve();
  let scheduled = false;
  // Counted per partial write, so that a peer reading a large write is seen to make progress.
  const writeCounted = async (data: Uint8Array) => {
    let off = 0;
    try {
      while (off < data.length) {
        const n = await conn.write(data.subarray(off));
        off += n;
        inFlight -= n;
        taken += n;
      }
    } finally {
      inFlight -= data.length - off;
    }
  };
  const flush = (): Promise<void> => {
    scheduled = false;
    if (pending.length === 0) return chain;
    const data = encoder.encode(pending.join(""));
    pending = [];
    pendingBytes = 0;
    inFlight += data.length;
    chain = chain.then(() => writeCounted(data)).catch(onError);
    return chain;
  };
  return {
    backlog: () => inFlight + pendingBytes,
    taken: () => taken,
    abort() {
      pending = [];
      pendingBytes = 0;
      try {
        conn.close();
      } catch {
        // already closed
      }
    },
    write(text) {
      pending.push(text);
      pendingBytes += utf8Bytes(text);
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(flush);
      }
    },
    flush,
    close() {
      flush().finally(() => {
        try {
          conn.close();
        } catch {
          // already closed
        }
      });
    },
  };
}

function tlsSink(socket: tls.TLSSocket): Sink {
  // Bytes, not strings, so that writableLength counts in the same unit as `accepted`.
  let accepted = 0;
  return {
    backlog: () => socket.writableLength,
    taken: () => accepted - socket.writableLength,
    abort: () => void socket.destroy(),
    write(text) {
      if (socket.destroyed) return;
      const data = encoder.encode(text);
      accepted += data.length;
      socket.write(data);
    },
    flush: () => Promise.resolve(),
    close() {
      socket.end();
      setTimeout(() => socket.destroy(), 2000).unref?.();
    },
  };
}

function toEvent(ev: ParseEvent): Event {
  switch (ev.kind) {
    case "error":
      return { kind: "parse-error", condition: ev.condition, text: ev.text };
    default:
      return ev;
  }
}

/**
 * RFC 9266 tls-exporter data, when the runtime can export keying material and the session is
 * TLS 1.3 (the binding is undefined for older versions). Deno's node:tls lacks the call today,
 * so this turns on by itself once it exists.
 */
function tlsExporter(socket: tls.TLSSocket): Uint8Array | undefined {
  const exportKeyingMaterial = (socket as unknown as {
    exportKeyingMaterial?: (length: number, label: string, context?: Uint8Array) => Uint8Array;
  }).exportKeyingMaterial;
  if (typeof exportKeyingMaterial !== "function") return undefined;
  if (socket.getProtocol() !== "TLSv1.3") return undefined;
  try {
    return new Uint8Array(
      exportKeyingMaterial.call(socket, 32, "EXPORTER-Channel-Binding", new Uint8Array(0)),
    );
  } catch {
    return undefined;
  }
}

function remoteIp(conn: Deno.Conn): string {
  const addr = conn.remoteAddr;
  return addr.transport === "tcp" ? addr.hostname : "unknown";
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

/** Serves one accepted connection until it ends. */
export async function serveConnection(
  conn: Deno.Conn,
  deps: ConnectionDeps,
  opts: ServeOptions,
): Promise<void> {
  const { ctx, registry, log } = deps;
  let session: Session = newSession(ctx.newId(), { ip: remoteIp(conn), secure: false });
  let parser: StreamParser = newParser(false);
  let generation = 0;
  let sink: Sink = plainSink(conn, () => dispatch({ kind: "disconnected", reason: "write" }));
  let tlsSocket: tls.TLSSocket | undefined;
  let done = false;
  /** Effects of this session's stanzas not yet durable (account ops, routed stanzas). */
  // Made on first use: most connections never wait for anything (an idle one holds nothing).
  let effects: Set<Promise<void>> | undefined;
  /** The last `<a/>` scheduled (XEP-0198), so that they go out in order. */
  let acked: Promise<unknown> | undefined;
  /** The socket is gone while the session waits to be resumed: nothing more is written. */
  let hibernating = false;
  function track(p: Promise<void> | void): void {
    if (p === undefined) return;
    (effects ??= new Set()).add(p);
    p.then(() => effects!.delete(p));
  }
  let lastActivity = Date.now();
  let resolveDone!: () => void;
  const finished = new Promise<void>((r) => (resolveDone = r));
  const queue: { ev: Event; gen: number }[] = [];
  let draining = false;
  /** The resumption id this connection is registered under (XEP-0198). */
  let smId: string | undefined;
  let hibernationTimer: ReturnType<typeof setTimeout> | undefined;
  let aborted = false;
  const limits = ctx.limits;
  // Nothing more can be written to a peer that does not read: close the socket now and end (or
  // hibernate) the session as for a dropped connection.
  // Made the first time the backlog passes the limit: most connections never get there, and an
  // idle connection's memory is what the server holds most of.
  let backlogGuard: BacklogGuard | undefined;
  const guardBacklog = () => {
    if (backlogGuard === undefined && sink.backlog() <= limits.writeBacklog) return;
    backlogGuard ??= createBacklogGuard(() => sink, limits.writeBacklog, (why) => {
      aborted = true;
      log.warn("{ip}: dropped, it does not read what is sent to it ({why})", {
        ip: session.ip,
        why,
      });
      sink.abort();
      opts.ticket?.release();
      // Ahead of whatever else is queued: nothing more is written to this peer.
      queue.unshift({ ev: { kind: "disconnected", reason: "write backlog" }, gen: -1 });
      if (!draining) drain();
    });
    backlogGuard.check();
  };
  /** Accounts this connection's stanzas went to lately, whose queues may hold its reading. */
  let recentTargets: Set<string> | undefined;

  function newParser(authenticated: boolean): StreamParser {
    return createStreamParser({
      maxStanzaBytes: authenticated ? ctx.maxStanzaSize : ctx.maxStanzaSizeUnauthed,
      maxDepth: deps.maxDepth,
    });
  }

  const handle: SessionHandle = {
    id: session.id,
    session: () => session,
    dispatch: (ev) => dispatch(ev),
    lastActivity: () => lastActivity,
  };

  function takeOver(): Session | undefined {
    // In the middle of a reduction the record is not final: refuse rather than hand over a
    // stale one (the client then binds a new resource).
    if (done || draining) return undefined;
    const snapshot = session;
    dispatch({ kind: "sm-taken-over" });
    return snapshot;
  }

  function dispatch(ev: Event, gen = -1): void {
    if (done) return;
    queue.push({ ev, gen });
    if (!draining) drain();
  }

  function drain(): void {
    draining = true;
    while (queue.length > 0 && !done) {
      const { ev, gen } = queue.shift()!;
      // Events parsed before a stream restart belong to the old stream.
      if (gen !== -1 && gen !== generation) continue;
      const [next, outputs] = reduce(session, ev, ctx);
      session = next;
      for (const out of outputs) execute(out);
      if (session.type === "c2s") opts.ticket?.authenticated();
      if (!done && !aborted) guardBacklog();
    }
    draining = false;
  }

  /**
   * Reading waits while this account's queue, or the queue of an account it just sent to, is
   * longer than `account_queue`, or while the peer has not taken half its write backlog: a
   * client cannot make the server hold more than the bounds by sending faster than it works.
   */
  function pressured(): boolean {
    if (sink.backlog() > limits.writeBacklog / 2) return true;
    const own = bareJid(session);
    if (own !== undefined && deps.hub.queueLength(own) > limits.accountQueue) return true;
    for (const bare of recentTargets ?? []) {
      if (deps.hub.queueLength(bare) > limits.accountQueue) return true;
    }
    return false;
  }

  function noteTarget(to: string | undefined): void {
    const jid = to === undefined ? undefined : parseJid(to);
    if (jid?.local === undefined) return;
    const bare = `${jid.local}@${jid.domain}`;
    recentTargets ??= new Set();
    recentTargets.delete(bare);
    recentTargets.add(bare);
    if (recentTargets.size > RECENT_TARGETS) {
      recentTargets.delete(recentTargets.values().next().value!);
    }
  }

  function execute(out: Output): void {
    switch (out.kind) {
      case "send":
      case "open-stream":
      case "close-stream":
        sink.write(tcpFrame(out, NS_CLIENT));
        return;
      case "route":
        if (session.type === "c2s") noteTarget(out.stanza.attrs.to);
        track(deps.route(out.stanza, out.then === undefined ? undefined : { then: out.then }));
        return;
      case "account":
        track(deps.hub.submit(out.bare, out.op));
        return;
      case "send-durable": {
        // XEP-0198: `<a/>` only once every effect of the stanzas it counts is durable; acks
        // stay in order (each waits for the one before it).
        const { stanza } = out;
        const waits = [...(acked === undefined ? [] : [acked]), ...(effects ?? [])];
        acked = Promise.allSettled(waits).then(() => {
          if (!done && !hibernating) sink.write(tcpFrame({ kind: "send", stanza }, NS_CLIENT));
        });
        return;
      }
      case "load-credentials": {
        const { host, username } = out;
        // An account that failed often lately, from any address, is answered late rather than
        // refused, so that no one can lock its user out (lib/shell/throttle.ts).
        const delay = deps.throttle.delayMs(username, ctx.now());
        if (delay > 0) {
          log.info("{ip}: answering the login for {user} after {ms} ms (recent failures)", {
            ip: session.ip,
            user: username,
            ms: delay,
          });
        }
        // An unknown account gets decoys, so that its exchange looks and costs like a real one.
        const credentials = deps.accounts.getCredentials(host, username)
          .then((found) => found ?? deps.accounts.decoyCredentials(host, username))
          .catch((err) => {
            log.error("Loading credentials failed: {err}", { err: String(err) });
            return undefined;
          });
        const due = new Promise<void>((resolve) => {
          if (delay > 0) setTimeout(resolve, delay);
          else resolve();
        });
        Promise.all([credentials, due]).then(([loaded]) =>
          dispatch({ kind: "credentials-loaded", username, credentials: loaded })
        );
        return;
      }
      case "starttls":
        startTls();
        return;
      case "reset-stream":
        generation++;
        parser = newParser(out.authenticated);
        return;
      case "bind": {
        // Bound: the auth timeout no longer applies, and its timer would outlive the login.
        clearTimeout(authTimer);
        const old = registry.bind(out.fullJid, handle);
        old?.dispatch({ kind: "replaced" });
        return;
      }
      case "unbind":
        registry.unbind(out.fullJid, handle);
        return;
      case "auth-result":
        deps.throttle.record(session.ip, out.username, out.ok, ctx.now());
        log.info(
          out.ok ? "{ip} authenticated as {user}" : "{ip} failed to authenticate as {user}",
          { ip: session.ip, user: out.username },
        );
        return;
      case "register-account":
      case "change-password": {
        const { iq } = out;
        const registration = deps.registration;
        const answer = registration === undefined
          ? Promise.resolve("failed" as const)
          : out.kind === "register-account"
          ? registration.register(session.ip, out.host, out.username, out.password)
          : registration.changePassword(out.host, out.username, out.password);
        answer.then((outcome) => dispatch({ kind: "registration-result", iq, outcome }));
        return;
      }
      case "disconnect":
        finish();
        return;
      case "sm-resumable":
        smId = out.id;
        deps.resumable.set(out.id, { handle, takeOver });
        return;
      case "sm-resume": {
        const entry = deps.resumable.get(out.previd);
        const old = entry !== undefined && entry.handle !== handle &&
            canResume(session, entry.handle.session(), out.previd)
          ? entry.takeOver()
          : undefined;
        // Queued behind this reduction's outputs, before anything else the client sent.
        dispatch({ kind: "sm-resume-answer", previd: out.previd, h: out.h, old });
        return;
      }
      case "hibernate":
        // The socket is gone but the session is not: it stays registered, and this loop keeps
        // reducing what is routed to it until it is resumed elsewhere or the timer fires.
        hibernating = true;
        sink.close();
        backlogGuard?.stop();
        opts.ticket?.release();
        deps.quiet.forget(handle);
        clearTimeout(hibernationTimer);
        hibernationTimer = setTimeout(
          () => dispatch({ kind: "hibernation-timeout" }),
          out.seconds * 1000,
        );
        for (const jid of out.evict ?? []) {
          registry.get(jid)?.dispatch({ kind: "hibernation-timeout" });
        }
        return;
      case "caps-learned":
        deps.caps?.learn(out.ver, out.query);
        return;
      case "log":
        log[out.level === "warning" ? "warn" : out.level](out.message);
        return;
    }
  }

  function finish(): void {
    if (done) return;
    done = true;
    clearTimeout(authTimer);
    clearTimeout(hibernationTimer);
    if (smId !== undefined && deps.resumable.get(smId)?.handle === handle) {
      deps.resumable.delete(smId);
    }
    deps.quiet.forget(handle);
    registry.removeConnection(handle);
    backlogGuard?.stop();
    sink.close();
    opts.ticket?.release();
    resolveDone();
  }

  function onBytes(chunk: Uint8Array): void {
    lastActivity = Date.now();
    const gen = generation;
    for (const ev of parser.push(chunk)) dispatch(toEvent(ev), gen);
    if (!done) deps.quiet.touch(handle, compact);
  }

  // Most connections are idle most of the time: between stanzas the parser can drop its state.
  function compact(): void {
    parser.compact();
  }

  function readTls(socket: tls.TLSSocket): void {
    let paused = false;
    socket.on("data", (chunk: Uint8Array) => {
      onBytes(chunk);
      if (paused || !pressured()) return;
      paused = true;
      socket.pause();
      whenRelieved(pressured, () => done).then(() => {
        paused = false;
        if (!done) socket.resume();
      });
    });
    socket.on("end", () => dispatch({ kind: "disconnected", reason: "end" }));
    socket.on("close", () => dispatch({ kind: "disconnected", reason: "close" }));
    socket.on("error", () => dispatch({ kind: "disconnected", reason: "tls error" }));
  }

  function bindingsFor(socket: tls.TLSSocket): ChannelBindings {
    const name = (socket as unknown as { servername?: string }).servername;
    const host = typeof name === "string" && deps.endPoints.has(name)
      ? name
      : deps.tls!.defaultHost;
    const endPoint = deps.endPoints.get(host);
    const exporter = tlsExporter(socket);
    return {
      ...(endPoint === undefined ? {} : { "tls-server-end-point": endPoint }),
      ...(exporter === undefined ? {} : { "tls-exporter": exporter }),
    };
  }

  function startTls(): void {
    readingPlain = false;
    const previous = sink;
    previous.flush().then(() => acceptTls(conn, deps.tls!)).then((socket) => {
      tlsSocket = socket;
      sink = tlsSink(socket);
      readTls(socket);
      dispatch({ kind: "tls-done", channelBindings: bindingsFor(socket) });
    }, () => dispatch({ kind: "disconnected", reason: "TLS handshake failed" }));
  }

  let readingPlain = true;
  registry.addConnection(handle);
  const authTimer = setTimeout(() => dispatch({ kind: "auth-timeout" }), deps.authTimeoutMs);

  if (opts.directTls) {
    try {
      const socket = await acceptTls(conn, deps.tls!, { alpn: ["xmpp-client"] });
      tlsSocket = socket;
      sink = tlsSink(socket);
      session = { ...session, secure: true, channelBindings: bindingsFor(socket) };
      readTls(socket);
    } catch {
      finish();
    }
    return finished;
  }

  // The pending read holds its buffer for as long as the connection is idle, which is most of
  // its life, so the buffer starts small and grows only while reads fill it. The parser copies
  // what it keeps, so the buffer is reused without copying each chunk.
  let buf = new Uint8Array(READ_MIN);
  // A pending read cannot be cancelled, so a STARTTLS upgrade must happen between reads: the
  // client sends nothing after <starttls/> until it sees <proceed/>.
  while (readingPlain && !done) {
    if (pressured()) {
      await whenRelieved(pressured, () => done);
      if (!readingPlain || done) break;
    }
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      n = null;
    }
    if (n === null) {
      if (readingPlain) dispatch({ kind: "disconnected", reason: "end" });
      break;
    }
    onBytes(buf.subarray(0, n));
    if (n === buf.length) {
      if (n < READ_MAX) buf = new Uint8Array(Math.min(n * 4, READ_MAX));
    } else if (n <= READ_MIN && buf.length > READ_MIN) buf = new Uint8Array(READ_MIN);
  }
  void tlsSocket;
  return finished;
}
