/**
 * The connection driver, one for every kind of connection (clients, components) and every
 * transport (TCP today; WebSocket and BOSH plug in with their own framing). Per connection it
 * keeps one event queue, reduced one event at a time in arrival order; it executes the outputs
 * in order (frames go to the transport, `disconnect` ends the connection, the rest to the
 * kind's executor); it watches the write backlog, says when reading must wait, and keeps one
 * deadline (auth or handshake timeout, then hibernation).
 *
 * A connection is a mutable record (`Driver`) handled by the functions below, and a kind
 * (`DriverKind`) is one shared object of functions over that record: an idle connection holds
 * its state and no closures of its own, which is most of what the server holds per connection.
 * @module
 */
import {
  createStreamParser,
  type ParseEvent,
  type StreamParser,
  type StreamParserOptions,
} from "../xml/parser.ts";
import type { Element } from "../xml/element.ts";
import type { StreamOutput } from "../xmpp/stream_xml.ts";
import type { ChannelBindings } from "../core/session.ts";
import {
  type BacklogGuard,
  type BacklogSource,
  createBacklogGuard,
  type DropReason,
} from "./flow.ts";

/** What a transport frames: our side of the stream opening and closing, and top-level elements. */
export type Frame = StreamOutput | { readonly kind: "send"; readonly stanza: Element };

/**
 * One connection's transport. It alone knows how a frame looks on the wire (`<stream:stream>`
 * on TCP); it hands the bytes it reads to `receive` and reports the peer's going with `hangUp`.
 */
export interface Transport extends BacklogSource {
  /** Writes one frame; writes keep their order. */
  send(frame: Frame): void;
  /**
   * Reads until the peer goes, or until this layer of reading ends (an upgrade to TLS, after
   * which `read` serves the new layer).
   */
  read(): Promise<void>;
  /**
   * Upgrades to TLS once what was sent is written (STARTTLS, or at once for direct TLS with
   * `alpn`); resolves with the channel bindings the TLS layer provides. Absent where the
   * transport cannot (a WebSocket is secured below it).
   */
  starttls?(alpn?: readonly string[]): Promise<ChannelBindings>;
  /** Closes after what was sent is written. */
  close(): void;
  /** Closes at once, dropping what is unwritten (for a peer that does not read). */
  abort(): void;
}

/** The connection's place in the connection limits (lib/shell/admission.ts `Ticket`). */
export interface DriverTicket {
  authenticated(): void;
  release(): void;
}

/** A watch that tells when a connection went quiet (lib/shell/quiet.ts). */
export interface QuietLike {
  touch<K extends object>(key: K, onQuiet: (key: K) => void): void;
  forget(key: object): void;
}

/** The output kinds the driver executes itself. */
type DriverOutput = Frame | { readonly kind: "disconnect" };

/**
 * What makes one kind of connection: its reducer, its executor for the outputs that are not
 * frames, and how transport happenings become its events. One object per kind, shared by all
 * its connections; `D` is the kind's connection record (the driver's fields and its own).
 */
export interface DriverKind<S, E, O, D extends Driver<S, E, O> = Driver<S, E, O>> {
  /** The pure reducer, with whatever context the kind keeps in `d`. */
  reduce(s: S, ev: E, d: D): readonly [S, readonly O[]];
  /** Executes an output that is neither a frame nor `disconnect` (route, register, bind ...). */
  execute(d: D, out: Exclude<O, DriverOutput>): void;
  /** A parser event as the kind's event (a stanza, or the parser's refusal). */
  parsed(ev: ParseEvent): E;
  /** The peer went, or the connection must be treated as gone. */
  disconnected(reason: string): E;
  /** After each reduction and its outputs. */
  afterStep?(d: D): void;
  /** Reading also waits while this is true (the write backlog is checked for every kind). */
  pressured?(d: D): boolean;
  /** The peer is dropped for not reading what is written to it: for the log. */
  dropped(d: D, why: DropReason): void;
  /** The connection ended: what the kind keeps elsewhere about it goes. */
  ended?(d: D): void;
}

/** One queued event, with the stream generation it was parsed in (-1: not from the parser). */
interface Queued<E> {
  readonly ev: E;
  readonly gen: number;
}

/**
 * A connection as the driver runs it. Mutable, and changed only by the functions of this
 * module and the kind's executor: it is the shell's state, what the reducers' records are not.
 */
export interface Driver<S, E, O> {
  /** The session record; replaced (never changed) at each reduction. */
  session: S;
  readonly kind: DriverKind<S, E, O>;
  transport: Transport;
  parser: StreamParser;
  /** Makes the parser of each stream (the transport's framing: a TCP stream, WebSocket messages). */
  readonly newParser: (opts: StreamParserOptions) => StreamParser;
  /** Bumped at each stream restart: events parsed before it belong to the old stream. */
  generation: number;
  readonly queue: Queued<E>[];
  draining: boolean;
  done: boolean;
  /** Dropped for not reading: nothing more is written, the backlog is no longer judged. */
  aborted: boolean;
  /** When bytes last arrived (ms since the epoch), for the idle sweep. */
  lastActivity: number;
  /** The one deadline: the auth (or handshake) timeout, later the hibernation timeout. */
  timer: ReturnType<typeof setTimeout> | undefined;
  /** Made the first time the backlog passes the limit: most connections never get there. */
  guard: BacklogGuard | undefined;
  readonly writeBacklog: number;
  readonly maxDepth: number;
  readonly ticket: DriverTicket | undefined;
  readonly quiet: QuietLike | undefined;
  /** Resolves when the connection ended. */
  readonly finished: Promise<void>;
  readonly resolveFinished: () => void;
}

/** How a connection is driven, beside its kind. */
export interface DriverOptions {
  /** Bytes written and not taken past which a peer that does not read is dropped. */
  readonly writeBacklog: number;
  readonly maxStanzaBytes: number;
  readonly maxDepth: number;
  readonly ticket?: DriverTicket;
  /** Parsers of connections that went quiet shed their buffers. */
  readonly quiet?: QuietLike;
  /** The transport's parser, when its framing is not a TCP stream's (a WebSocket's messages). */
  readonly parser?: (opts: StreamParserOptions) => StreamParser;
}

/**
 * A new connection record: the driver's fields, then `own` (the kind's fields), then its
 * transport, made from the record it serves.
 */
export function createDriver<S, E, O, X extends object>(
  kind: DriverKind<S, E, O, Driver<S, E, O> & X>,
  session: S,
  opts: DriverOptions,
  own: X,
  transport: (d: Driver<S, E, O> & X) => Transport,
): Driver<S, E, O> & X {
  let resolveFinished!: () => void;
  const finished = new Promise<void>((r) => (resolveFinished = r));
  const d: Driver<S, E, O> & X = {
    session,
    kind: kind as DriverKind<S, E, O>,
    transport: undefined as unknown as Transport,
    parser: (opts.parser ?? createStreamParser)({
      maxStanzaBytes: opts.maxStanzaBytes,
      maxDepth: opts.maxDepth,
    }),
    newParser: opts.parser ?? createStreamParser,
    generation: 0,
    queue: [],
    draining: false,
    done: false,
    aborted: false,
    lastActivity: Date.now(),
    timer: undefined,
    guard: undefined,
    writeBacklog: opts.writeBacklog,
    maxDepth: opts.maxDepth,
    ticket: opts.ticket,
    quiet: opts.quiet,
    finished,
    resolveFinished,
    ...own,
  };
  d.transport = transport(d);
  return d;
}

/** Queues an event for the connection; it is reduced after those before it. */
export function dispatch<S, E, O>(d: Driver<S, E, O>, ev: E, gen = -1): void {
  if (d.done) return;
  d.queue.push({ ev, gen });
  if (!d.draining) drain(d);
}

function drain<S, E, O>(d: Driver<S, E, O>): void {
  d.draining = true;
  const { queue, kind } = d;
  while (queue.length > 0 && !d.done) {
    const { ev, gen } = queue.shift()!;
    // Events parsed before a stream restart belong to the old stream.
    if (gen !== -1 && gen !== d.generation) continue;
    const [next, outputs] = kind.reduce(d.session, ev, d);
    d.session = next;
    for (const out of outputs) execute(d, out);
    kind.afterStep?.(d);
    if (!d.done && !d.aborted) guardBacklog(d);
  }
  d.draining = false;
}

function execute<S, E, O>(d: Driver<S, E, O>, out: O): void {
  const o = out as { readonly kind: string };
  switch (o.kind) {
    case "send":
    case "open-stream":
    case "close-stream":
      d.transport.send(o as Frame);
      return;
    case "disconnect":
      finish(d);
      return;
    default:
      d.kind.execute(d, out as Exclude<O, DriverOutput>);
  }
}

function guardBacklog<S, E, O>(d: Driver<S, E, O>): void {
  if (d.guard === undefined && d.transport.backlog() <= d.writeBacklog) return;
  d.guard ??= createBacklogGuard(() => d.transport, d.writeBacklog, (why) => drop(d, why));
  d.guard.check();
}

/**
 * Nothing more can be written to a peer that does not read: close the socket now and end (or
 * hibernate) the session as for a dropped connection, ahead of whatever else is queued.
 */
function drop<S, E, O>(d: Driver<S, E, O>, why: DropReason): void {
  d.aborted = true;
  d.kind.dropped(d, why);
  d.transport.abort();
  d.ticket?.release();
  d.queue.unshift({ ev: d.kind.disconnected("write backlog"), gen: -1 });
  if (!d.draining) drain(d);
}

/** Bytes from the transport: parsed, and their events queued in order. */
export function receive<S, E, O>(d: Driver<S, E, O>, bytes: Uint8Array): void {
  d.lastActivity = Date.now();
  const gen = d.generation;
  for (const ev of d.parser.push(bytes)) dispatch(d, d.kind.parsed(ev), gen);
  if (!d.done) d.quiet?.touch(d, compactParser);
}

// Most connections are idle most of the time: between stanzas the parser can drop its state.
function compactParser(d: Driver<unknown, unknown, unknown>): void {
  d.parser.compact();
}

/** The transport lost the peer (read end, write error, failed handshake). */
export function hangUp<S, E, O>(d: Driver<S, E, O>, reason: string): void {
  dispatch(d, d.kind.disconnected(reason));
}

/**
 * Reading waits while the peer has not taken half its write backlog, or while the kind says so
 * (a client's account queues): a peer cannot make the server hold more than the bounds by
 * sending faster than it works.
 */
export function pressured<S, E, O>(d: Driver<S, E, O>): boolean {
  if (d.transport.backlog() > d.writeBacklog / 2) return true;
  return d.kind.pressured?.(d) ?? false;
}

/** A fresh parser for a restarted stream (after TLS or SASL); queued old events are dropped. */
export function restartStream<S, E, O>(d: Driver<S, E, O>, maxStanzaBytes: number): void {
  d.generation++;
  d.parser = d.newParser({ maxStanzaBytes, maxDepth: d.maxDepth });
}

/** Queues `ev` in `ms` unless the deadline is replaced or cleared first. */
export function arm<S, E, O>(d: Driver<S, E, O>, ms: number, ev: E): void {
  clearTimeout(d.timer);
  // Arguments rather than a closure: nothing is allocated per connection but the timer.
  d.timer = setTimeout(dispatch<S, E, O>, ms, d, ev);
}

/** Clears the deadline (the peer authenticated in time). */
export function disarm<S, E, O>(d: Driver<S, E, O>): void {
  clearTimeout(d.timer);
  d.timer = undefined;
}

/**
 * The socket goes but the session stays (XEP-0198 hibernation): what was sent is written, the
 * connection no longer counts in the limits, and events are still reduced until `finish`.
 */
export function closeSocket<S, E, O>(d: Driver<S, E, O>): void {
  d.transport.close();
  d.guard?.stop();
  d.ticket?.release();
  d.quiet?.forget(d);
}

/** Ends the connection: no more events, the socket closes after what was written. */
export function finish<S, E, O>(d: Driver<S, E, O>): void {
  if (d.done) return;
  d.done = true;
  clearTimeout(d.timer);
  d.quiet?.forget(d);
  d.kind.ended?.(d);
  d.guard?.stop();
  d.transport.close();
  d.ticket?.release();
  d.resolveFinished();
}
