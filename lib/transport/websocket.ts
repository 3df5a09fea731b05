/**
 * XMPP over WebSocket (RFC 7395): the transport of a client connection whose socket came from an
 * HTTP upgrade (./http.ts). The framing is all that differs from TCP: our header is an `<open/>`
 * message, each stanza or nonza is one text message that declares its own namespaces, a stream
 * error is a message of its own followed by `<close/>`. STARTTLS does not exist here: TLS, when
 * there is any, is the HTTP layer's.
 *
 * Reading: every message must be exactly one complete element (§3.3.3). The streaming parser of
 * lib/xml/parser.ts stays the one XML reader; the driver is given a message parser
 * ({@link createMessageParser}) that reads each message as the content of a stream of its own:
 * a fresh streaming parser is fed a synthetic stream header, the message, and the stream end. It
 * yields the events a TCP stream would, with the same size, depth and restricted-XML checks, and
 * holds nothing between messages (an idle WebSocket keeps no parser state at all). The client's
 * `<open/>` becomes the stream header event and `<close/>` the stream end.
 * @module
 */
import { type Element, escapeAttr, escapeText, serialize } from "../xml/element.ts";
import {
  createStreamParser,
  type ParseEvent,
  type StreamParser,
  type StreamParserOptions,
} from "../xml/parser.ts";
import { streamErrorElement } from "../xmpp/errors.ts";
import { NS_CLIENT, NS_FRAMING, NS_STREAMS } from "../xmpp/namespaces.ts";
import type { StreamHeader } from "../xmpp/stream_xml.ts";
import { utf8Bytes } from "../limits.ts";
import {
  dispatch,
  type Driver,
  type Frame,
  hangUp,
  pressured,
  receive,
  type Transport,
} from "./driver.ts";
import { whenRelieved } from "./flow.ts";

/** The WebSocket subprotocol of XMPP (RFC 7395 §3.1). */
export const XMPP_SUBPROTOCOL = "xmpp";

const encoder = new TextEncoder();

// Each message is parsed as the only content of this stream: the content namespace and the
// `stream` prefix are declared, so that a client that leaves them out of a message is still
// read as it meant (RFC 7395 §3.3.3 asks it to declare them, and most do).
const WRAP_OPEN = encoder.encode(
  `<stream:stream xmlns='${NS_CLIENT}' xmlns:stream='${NS_STREAMS}'>`,
);
const WRAP_CLOSE = encoder.encode("</stream:stream>");

const NONE: readonly ParseEvent[] = Object.freeze([]);

/** Our stream header as an `<open/>` message (RFC 7395 §3.4). */
export function wsOpen(h: StreamHeader): string {
  let s = '<open xmlns="' + NS_FRAMING + '"';
  s += ' id="' + escapeAttr(h.id) + '"';
  if (h.from !== undefined) s += ' from="' + escapeAttr(h.from) + '"';
  if (h.version !== undefined) s += ' version="' + escapeAttr(h.version) + '"';
  if (h.lang !== undefined) s += ' xml:lang="' + escapeAttr(h.lang) + '"';
  return s + "/>";
}

/** The `<close/>` message (RFC 7395 §3.6). */
export const WS_CLOSE = '<close xmlns="' + NS_FRAMING + '"/>';

// An element in the stream's content namespace by default (built without one) gets it written.
function inNs(el: Element, ns: string): Element {
  return el.xmlns === "" ? { ...el, xmlns: ns } : el;
}

/**
 * One top-level element as a standalone message: every namespace declared on it (§3.3.3).
 * Stream elements keep the conventional `stream:` prefix, which some clients match on.
 */
export function wsElement(el: Element, ns: string): string {
  if (el.xmlns !== NS_STREAMS) return serialize(inNs(el, ns), "");
  let s = "<stream:" + el.name + ' xmlns:stream="' + NS_STREAMS + '"';
  for (const k in el.attrs) s += " " + k + '="' + escapeAttr(el.attrs[k]) + '"';
  if (el.children.length === 0) return s + "/>";
  s += ">";
  for (const c of el.children) {
    s += typeof c === "string" ? escapeText(c) : serialize(inNs(c, ns), "");
  }
  return s + "</stream:" + el.name + ">";
}

/** The messages of one frame on a WebSocket whose content namespace is `ns`, in order. */
export function wsFrame(frame: Frame, ns: string): readonly string[] {
  switch (frame.kind) {
    case "send":
      return [wsElement(frame.stanza, ns)];
    case "open-stream":
      return [wsOpen(frame.header)];
    case "close-stream":
      return frame.error === undefined
        ? [WS_CLOSE]
        : [wsElement(streamErrorElement(frame.error), ns), WS_CLOSE];
  }
}

function refusal(condition: "policy-violation" | "bad-format" | "not-well-formed", text: string) {
  return { kind: "error" as const, condition, text };
}

/**
 * What one message says: a stream header (`<open/>`), a stream end (`<close/>`), a stanza or
 * nonza, nothing (a message of whitespace only), or the stream error it earns. `maxBytes` is the
 * stanza limit in force; a message over it is refused before it is parsed.
 */
export function parseMessage(
  msg: Uint8Array,
  maxBytes: number,
  maxDepth?: number,
): ParseEvent | undefined {
  if (msg.length > maxBytes) return refusal("policy-violation", "message over the stanza limit");
  // The synthetic header is no part of the message: the limit must not refuse it.
  const p = createStreamParser({ maxStanzaBytes: Math.max(maxBytes, WRAP_OPEN.length), maxDepth });
  p.push(WRAP_OPEN);
  let element: Element | undefined;
  for (const ev of p.push(msg)) {
    if (ev.kind === "error") return ev;
    // The message ended our synthetic stream: it held an end tag of its own.
    if (ev.kind !== "stanza") return refusal("not-well-formed", "unbalanced end tag");
    if (element !== undefined) return refusal("bad-format", "more than one element in a message");
    element = ev.stanza;
  }
  const end = p.push(WRAP_CLOSE);
  for (const ev of end) {
    if (ev.kind === "error") {
      return ev.condition === "not-well-formed"
        ? refusal("not-well-formed", "a message must hold one complete element")
        : ev;
    }
    if (ev.kind === "stanza") {
      if (element !== undefined) return refusal("bad-format", "more than one element in a message");
      element = ev.stanza;
    }
  }
  if (element === undefined) return undefined;
  if (element.xmlns === NS_FRAMING) {
    if (element.name === "open") {
      return {
        kind: "stream-open",
        name: "stream",
        prefix: "stream",
        xmlns: NS_STREAMS,
        contentXmlns: NS_CLIENT,
        attrs: element.attrs,
      };
    }
    if (element.name === "close") return { kind: "stream-close" };
  }
  return { kind: "stanza", stanza: element };
}

/**
 * The driver's parser for a WebSocket: each `push` is one whole message (see the module
 * comment). Like the stream parser it is dead after an error.
 */
export function createMessageParser(opts: StreamParserOptions): StreamParser {
  let maxBytes = opts.maxStanzaBytes;
  let dead = false;
  return {
    push(msg) {
      if (dead) return NONE;
      const ev = parseMessage(msg, maxBytes, opts.maxDepth);
      if (ev === undefined) return NONE;
      if (ev.kind === "error") dead = true;
      return [ev];
    },
    setMaxStanzaBytes(n) {
      maxBytes = n;
    },
    // Nothing is held between messages.
    compact() {},
  };
}

/** How a WebSocket connection is framed. */
export interface WebSocketOptions {
  /** The stream's content namespace (`jabber:client`). */
  readonly ns: string;
}

/**
 * The transport of `d` over an upgraded `socket` (its subprotocol already `xmpp`). `read()`
 * resolves when the socket closes.
 *
 * A WebSocket cannot stop reading: messages that arrive while the driver says reading must wait
 * are held in order and handed on once it is relieved. What is held is bounded by the write
 * backlog: a peer that sends past it while the server cannot keep up is sent away with
 * `policy-violation`, where a TCP peer would have been stopped by its full socket.
 */
export function webSocketTransport<S, E, O>(
  d: Driver<S, E, O>,
  socket: WebSocket,
  opts: WebSocketOptions,
): Transport {
  // Messages written before the handshake completed, sent on `open`.
  let early: string[] | undefined = socket.readyState === WebSocket.CONNECTING ? [] : undefined;
  let earlyBytes = 0;
  let sentBytes = 0;
  let closeWanted = false;
  // Messages held while reading waits; `null` stands for a binary message.
  const held: (string | null)[] = [];
  let heldBytes = 0;
  let pumping = false;
  let resolveRead!: () => void;
  const closed = new Promise<void>((r) => (resolveRead = r));

  const write = (text: string) => {
    if (socket.readyState > WebSocket.OPEN) return;
    const n = utf8Bytes(text);
    if (early !== undefined) {
      early.push(text);
      earlyBytes += n;
      return;
    }
    sentBytes += n;
    try {
      socket.send(text);
    } catch {
      hangUp(d, "write");
    }
  };
  const closeNow = (code: number) => {
    try {
      socket.close(code);
    } catch {
      // already closed
    }
  };

  const deliver = (data: string | null) => {
    if (data === null) {
      // §3.2: XMPP goes in text frames only.
      dispatch(
        d,
        d.kind.parsed(refusal("bad-format", "binary messages are not XMPP (RFC 7395 §3.2)")),
        d.generation,
      );
      return;
    }
    receive(d, encoder.encode(data));
  };

  const pump = async () => {
    pumping = true;
    while (held.length > 0 && !d.done) {
      if (pressured(d)) {
        await whenRelieved(() => pressured(d), () => d.done);
        continue;
      }
      const data = held.shift()!;
      heldBytes -= data === null ? 0 : data.length;
      deliver(data);
    }
    held.length = 0;
    heldBytes = 0;
    pumping = false;
  };

  socket.onopen = () => {
    const queued = early ?? [];
    early = undefined;
    earlyBytes = 0;
    for (const text of queued) write(text);
    if (closeWanted) closeNow(1000);
  };
  socket.onmessage = (e: MessageEvent) => {
    if (d.done) return;
    const data = typeof e.data === "string" ? e.data : null;
    if (!pumping && !pressured(d)) {
      deliver(data);
      return;
    }
    held.push(data);
    heldBytes += data === null ? 0 : data.length;
    if (heldBytes > d.writeBacklog) {
      held.length = 0;
      heldBytes = 0;
      dispatch(
        d,
        d.kind.parsed(refusal("policy-violation", "too much sent while the server was busy")),
      );
      return;
    }
    if (!pumping) void pump();
  };
  socket.onclose = () => {
    hangUp(d, "close");
    resolveRead();
  };
  socket.onerror = () => hangUp(d, "websocket error");

  return {
    backlog: () => earlyBytes + socket.bufferedAmount,
    taken: () => sentBytes - socket.bufferedAmount,
    send(frame) {
      if (closeWanted) return;
      for (const text of wsFrame(frame, opts.ns)) write(text);
    },
    read: () => closed,
    close() {
      if (closeWanted) return;
      closeWanted = true;
      // Messages already handed to the socket go out before its close frame.
      if (early === undefined) closeNow(1000);
    },
    abort() {
      closeWanted = true;
      early = undefined;
      // 1008: policy violation (RFC 6455 §7.4.1), for a peer that does not read.
      closeNow(1008);
    },
  };
}
