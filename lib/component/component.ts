/**
 * External components (XEP-0114, Jabber Component Protocol) as a pure reducer: the stream
 * header, the `<handshake/>` and the stanzas a component sends or receives. A component
 * connection has its own small session record; the connection driver (lib/transport/driver.ts)
 * feeds it parser events, and lib/shell/component_listener.ts executes its outputs.
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { type Element, renamespace } from "../xml/element.ts";
import { errorReply, type StreamError } from "../xmpp/errors.ts";
import { parseJid, prepDomainpart } from "../xmpp/jid.ts";
import { NS_CLIENT, NS_COMPONENT, NS_STREAMS } from "../xmpp/namespaces.ts";
import type { ParseEvent } from "../xml/parser.ts";
import type { StreamHeader, StreamOutput } from "../xmpp/stream_xml.ts";

/** A component connection's state. */
export interface ComponentSession {
  /** `opening`: no header yet; `handshake`: waiting for the secret; `ready`; `closed`. */
  readonly state: "opening" | "handshake" | "ready" | "closed";
  readonly streamId?: string;
  /** The component's domain, from the `to` of its header. */
  readonly domain?: string;
}

/** A fresh component connection. */
export const NEW_COMPONENT: ComponentSession = { state: "opening" };

/** What happens to a component connection. */
export type ComponentEvent =
  | Exclude<ParseEvent, { readonly kind: "error" }>
  | { readonly kind: "parse-error"; readonly condition: StreamError["condition"] }
  /** A stanza routed to the component's domain. */
  | { readonly kind: "inbound"; readonly stanza: Element }
  /** The handshake took too long. */
  | { readonly kind: "handshake-timeout" }
  | { readonly kind: "disconnected" }
  | { readonly kind: "shutdown" };

/** What the shell does for a component connection, in order. */
export type ComponentOutput =
  /** Open or close our side of the stream; the transport frames it. */
  | StreamOutput
  /** A stanza, already in the component namespace. */
  | { readonly kind: "send"; readonly stanza: Element }
  /** A stanza for the router, already in the client namespace with a checked `from`. */
  | { readonly kind: "route"; readonly stanza: Element }
  /** Deliver what is addressed to `domain` to this connection from now on. */
  | { readonly kind: "register"; readonly domain: string }
  | { readonly kind: "unregister"; readonly domain: string }
  /** A wrong secret was given (for the throttle of wrong handshakes). */
  | { readonly kind: "handshake-failed" }
  /** Close the socket after everything before it was written. */
  | { readonly kind: "disconnect" };

/** What the component reducer may consult. */
export interface ComponentCtx {
  /** The configured secret of a component domain; undefined when it is not one. */
  readonly secretOf: (domain: string) => string | undefined;
  /** True when a component for the domain is connected (on another connection). */
  readonly isConnected: (domain: string) => boolean;
  readonly newId: () => string;
  /**
   * True when this connection's address gave too many wrong handshakes lately: its handshake
   * is refused without looking at the secret.
   */
  readonly handshakeThrottled?: () => boolean;
}

/** One reduction's result. */
export type ComponentStep = readonly [ComponentSession, readonly ComponentOutput[]];

/** The handshake value XEP-0114 §3 expects: hex(SHA-1(streamId + secret)), lowercase. */
export function handshakeDigest(streamId: string, secret: string): string {
  return createHash("sha1").update(streamId + secret, "utf8").digest("hex");
}

/**
 * True when the handshake `given` is the digest expected, compared in constant time: the time
 * taken must not tell how many leading characters of a guess were right.
 */
export function handshakeMatches(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given);
  const b = new TextEncoder().encode(expected);
  // The length of a SHA-1 hex digest is no secret.
  return a.length === b.length && timingSafeEqual(a, b);
}

/** Our stream header for a component (XEP-0114 §3: no version, the component namespace). */
export function componentHeader(from: string | undefined, id: string): StreamHeader {
  return from === undefined ? { ns: NS_COMPONENT, id } : { ns: NS_COMPONENT, id, from };
}

export { renamespace };

const STANZAS = new Set(["message", "presence", "iq"]);

function close(s: ComponentSession, error?: StreamError): ComponentStep {
  const out: ComponentOutput[] = [];
  // A header must precede a stream error (RFC 6120 §4.9.1.1).
  if (s.state === "opening") {
    out.push({ kind: "open-stream", header: componentHeader(undefined, "") });
  }
  out.push({ kind: "close-stream", error });
  if (s.state === "ready" && s.domain !== undefined) {
    out.push({ kind: "unregister", domain: s.domain });
  }
  out.push({ kind: "disconnect" });
  return [{ ...s, state: "closed" }, out];
}

function onOpen(
  s: ComponentSession,
  ev: Extract<ComponentEvent, { kind: "stream-open" }>,
  ctx: ComponentCtx,
): ComponentStep {
  if (ev.xmlns !== NS_STREAMS || ev.name !== "stream" || ev.contentXmlns !== NS_COMPONENT) {
    return close(s, {
      condition: "invalid-namespace",
      text: "A component stream must be in " + NS_COMPONENT,
    });
  }
  const id = ctx.newId();
  const domain = prepDomainpart(ev.attrs.to ?? "");
  const header: ComponentOutput = { kind: "open-stream", header: componentHeader(domain, id) };
  if (domain === undefined || ctx.secretOf(domain) === undefined) {
    const [d, out] = close({ ...s, state: "handshake" }, {
      condition: "host-unknown",
      text: "No component is configured for " + (ev.attrs.to ?? "(none)"),
    });
    return [d, [header, ...out]];
  }
  return [{ state: "handshake", streamId: id, domain }, [header]];
}

function onHandshake(s: ComponentSession, el: Element, ctx: ComponentCtx): ComponentStep {
  if (ctx.handshakeThrottled?.() === true) {
    return close(s, {
      condition: "not-authorized",
      text: "Too many wrong handshakes from your address; try again later",
    });
  }
  const secret = ctx.secretOf(s.domain!);
  const given = el.children.filter((c) => typeof c === "string").join("").trim().toLowerCase();
  if (secret === undefined || !handshakeMatches(given, handshakeDigest(s.streamId!, secret))) {
    const [d, out] = close(s, { condition: "not-authorized", text: "Wrong handshake" });
    return [d, [{ kind: "handshake-failed" }, ...out]];
  }
  // XEP-0114 leaves a second connection open to choice: the new one is refused, so that a
  // misconfigured twin cannot take over a working component.
  if (ctx.isConnected(s.domain!)) {
    return close(s, { condition: "conflict", text: "The component is already connected" });
  }
  return [{ ...s, state: "ready" }, [
    { kind: "register", domain: s.domain! },
    { kind: "send", stanza: { name: "handshake", xmlns: NS_COMPONENT, attrs: {}, children: [] } },
  ]];
}

/** True when `from` is the component's domain or a JID at it. */
function fromComponent(from: string | undefined, domain: string): boolean {
  if (from === undefined) return false;
  const jid = parseJid(from);
  return jid !== undefined && jid.domain === domain;
}

function onStanza(s: ComponentSession, el: Element, ctx: ComponentCtx): ComponentStep {
  if (s.state === "handshake") {
    if (el.name === "handshake" && el.xmlns === NS_COMPONENT) return onHandshake(s, el, ctx);
    return close(s, { condition: "not-authorized", text: "Handshake first" });
  }
  if (!STANZAS.has(el.name) || el.xmlns !== NS_COMPONENT) {
    return close(s, { condition: "unsupported-stanza-type" });
  }
  if (!fromComponent(el.attrs.from, s.domain!)) {
    return close(s, {
      condition: "invalid-from",
      text: "The from address must be at " + s.domain,
    });
  }
  const stanza = renamespace(el, NS_COMPONENT, NS_CLIENT);
  // Without a `to` the stanza is for the server, which has nothing to say to components but
  // must answer an iq (RFC 6120 §8.1.1.1 lets it treat the stanza as to the domain).
  if (el.attrs.to === undefined) {
    const type = el.attrs.type;
    if (el.name === "iq" && (type === "get" || type === "set")) {
      const reply = errorReply(stanza, "service-unavailable");
      return [s, [{ kind: "send", stanza: renamespace(reply, NS_CLIENT, NS_COMPONENT) }]];
    }
    return [s, []];
  }
  return [s, [{ kind: "route", stanza }]];
}

/** Reduces one event of a component connection. */
export function reduceComponent(
  s: ComponentSession,
  ev: ComponentEvent,
  ctx: ComponentCtx,
): ComponentStep {
  // A closed connection swallows late input.
  if (s.state === "closed") return [s, []];
  switch (ev.kind) {
    case "stream-open":
      if (s.state !== "opening") return close(s, { condition: "invalid-xml" });
      return onOpen(s, ev, ctx);
    case "stanza":
      if (s.state === "opening") return close(s, { condition: "invalid-xml" });
      return onStanza(s, ev.stanza, ctx);
    case "inbound":
      if (s.state !== "ready") return [s, []];
      return [s, [{ kind: "send", stanza: renamespace(ev.stanza, NS_CLIENT, NS_COMPONENT) }]];
    case "parse-error":
      return close(s, { condition: ev.condition });
    case "handshake-timeout":
      return s.state === "ready" ? [s, []] : close(s, { condition: "connection-timeout" });
    case "shutdown":
      return close(s, { condition: "system-shutdown" });
    case "stream-close": {
      const [d, out] = close(s);
      return [d, out];
    }
    case "disconnected":
      return [{ ...s, state: "closed" }, [
        ...(s.state === "ready" && s.domain !== undefined
          ? [{ kind: "unregister" as const, domain: s.domain }]
          : []),
        { kind: "disconnect" },
      ]];
  }
}
