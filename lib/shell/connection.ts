/**
 * The per-connection loop: bytes in through the parser, events through the reducer one at a
 * time in arrival order, outputs executed in order. The only place a session record changes.
 * @module
 */
import type tls from "node:tls";
import { reduce } from "../reducers/mod.ts";
import { canResume } from "../reducers/stream_management.ts";
import { serializeTop } from "../reducers/stream_xml.ts";
import type { Ctx, Event, Output } from "../reducers/types.ts";
import { type ChannelBindings, newSession, type Session } from "../session.ts";
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
import { acceptTls, type TlsContexts, writeAll } from "./tls.ts";

/** Everything a connection shares with the rest of the server. */
export interface ConnectionDeps {
  readonly ctx: Ctx;
  readonly registry: Registry;
  readonly accounts: AccountStore;
  /** Routes a stanza to sessions and accounts. */
  readonly route: (stanza: Element) => void;
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
export interface Sink {
  write(text: string): void;
  flush(): Promise<void>;
  close(): void;
  /** Bytes (about) written but not yet taken by the peer. */
  backlog(): number;
  /** Closes at once, dropping what is unwritten (for a peer that does not read). */
  abort(): void;
}

/**
 * A peer that stops reading while others keep sending to it would make us buffer without end:
 * past this backlog the connection is dropped (through the destroy path; stream management may
 * keep the session for resumption).
 */
export const MAX_WRITE_BACKLOG = 4 * 1024 * 1024;

const encoder = new TextEncoder();

// Read buffer bounds in bytes: an idle connection holds READ_MIN, a busy one up to READ_MAX.
const READ_MIN = 512;
const READ_MAX = 16384;

/** A sink writing to a plain TCP connection; `onError` runs when a write fails. */
export function plainSink(conn: Deno.Conn, onError: () => void): Sink {
  let pending: string[] = [];
  let pendingChars = 0;
  let inFlight = 0;
  let chain = Promise.resolve();
  let scheduled = false;
  const flush = (): Promise<void> => {
    scheduled = false;
    if (pending.length === 0) return chain;
    const data = encoder.encode(pending.join(""));
    pending = [];
    pendingChars = 0;
    inFlight += data.length;
    chain = chain.then(() => writeAll(conn, data)).catch(onError).finally(() => {
      inFlight -= data.length;
    });
    return chain;
  };
  return {
    backlog: () => inFlight + pendingChars,
    abort() {
      pending = [];
      pendingChars = 0;
      try {
        conn.close();
      } catch {
        // already closed
      }
    },
    write(text) {
      pending.push(text);
      pendingChars += text.length;
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
  return {
    backlog: () => socket.writableLength,
    abort: () => void socket.destroy(),
    write(text) {
      if (!socket.destroyed) socket.write(text);
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

/** Serves one accepted connection until it ends. `directTls`: XEP-0368 port. */
export async function serveConnection(
  conn: Deno.Conn,
  deps: ConnectionDeps,
  opts: { readonly directTls: boolean },
): Promise<void> {
  const { ctx, registry, log } = deps;
  let session: Session = newSession(ctx.newId(), { ip: remoteIp(conn), secure: false });
  let parser: StreamParser = newParser(false);
  let generation = 0;
  let sink: Sink = plainSink(conn, () => dispatch({ kind: "disconnected", reason: "write" }));
  let tlsSocket: tls.TLSSocket | undefined;
  let done = false;
  let lastActivity = Date.now();
  let resolveDone!: () => void;
  const finished = new Promise<void>((r) => (resolveDone = r));
  const queue: { ev: Event; gen: number }[] = [];
  let draining = false;
  /** The resumption id this connection is registered under (XEP-0198). */
  let smId: string | undefined;
  let hibernationTimer: ReturnType<typeof setTimeout> | undefined;
  let aborted = false;

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
      if (!done && !aborted && sink.backlog() > MAX_WRITE_BACKLOG) {
        // Nothing more can be written to a peer that does not read: close the socket now and
        // end (or hibernate) the session as for a dropped connection.
        aborted = true;
        log.warn("{ip}: dropped, it does not read what is sent to it", { ip: session.ip });
        sink.abort();
        queue.unshift({ ev: { kind: "disconnected", reason: "write backlog" }, gen: -1 });
      }
    }
    draining = false;
  }

  function execute(out: Output): void {
    switch (out.kind) {
      case "send":
        sink.write(serializeTop(out.stanza));
        return;
      case "send-raw":
        sink.write(out.text);
        return;
      case "route":
        deps.route(out.stanza);
        return;
      case "account":
        deps.hub.submit(out.bare, out.op);
        return;
      case "load-credentials":
        deps.accounts.getCredentials(out.host, out.username).then(
          (credentials) =>
            dispatch({ kind: "credentials-loaded", username: out.username, credentials }),
          (err) => {
            log.error("Loading credentials failed: {err}", { err: String(err) });
            dispatch({
              kind: "credentials-loaded",
              username: out.username,
              credentials: undefined,
            });
          },
        );
        return;
      case "load-roster":
        // The account owns the roster: it answers with roster-loaded.
        deps.hub.submit(`${out.username}@${out.host}`, {
          kind: "session-bound",
          fullJid: session.fullJid!,
        });
        return;
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
          {
            ip: session.ip,
            user: out.username ?? "?",
          },
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
        sink.close();
        deps.quiet.forget(handle);
        clearTimeout(hibernationTimer);
        hibernationTimer = setTimeout(
          () => dispatch({ kind: "hibernation-timeout" }),
          out.seconds * 1000,
        );
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
    sink.close();
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
    socket.on("data", (chunk: Uint8Array) => onBytes(chunk));
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
