/**
 * Stream-level outputs, neutral to the transport (the transport frames them: a TCP stream
 * writes `<stream:stream>` and `</stream:stream>`), and top-level elements serialized with the
 * conventional `stream:` prefix.
 * @module
 */
import { type Element, escapeAttr, escapeText, serialize } from "../xml/element.ts";
import type { StreamError } from "./errors.ts";
import { NS_CLIENT, NS_DIALBACK, NS_STREAMS } from "./namespaces.ts";

/** The attributes of our stream header (RFC 6120 §4.7), in the order they are written. */
export interface StreamHeader {
  /** The content namespace: `jabber:client`, or `jabber:component:accept` (XEP-0114). */
  readonly ns: string;
  readonly id: string;
  readonly from?: string;
  /** The peer server's domain (server-to-server streams name both ends, RFC 6120 §4.7.2). */
  readonly to?: string;
  /** Declare the `db:` prefix (XEP-0220 dialback) on a server-to-server stream. */
  readonly dialback?: boolean;
  /** Absent on a component stream (XEP-0114 §3 names no version). */
  readonly version?: string;
  readonly lang?: string;
}

/** Opening and closing our side of the stream. */
export type StreamOutput =
  /** Write our stream header. */
  | { readonly kind: "open-stream"; readonly header: StreamHeader }
  /**
   * Close our side of the stream; the error, when there is one, is written before the close
   * (RFC 6120 §4.9.1.1). An error before our header needs an `open-stream` first (§4.9.1.2).
   */
  | { readonly kind: "close-stream"; readonly error?: StreamError };

/** Our header on a client stream. */
export function clientHeader(from: string, id: string): StreamHeader {
  return { ns: NS_CLIENT, id, from, version: "1.0", lang: "en" };
}

/**
 * The text of elements marked fixed, per stream namespace: built once and sent again and again
 * (stream features), they are serialized once. Weak: a mark keeps nothing alive.
 */
const FIXED = new WeakMap<Element, { ns: string; text: string } | null>();

/**
 * Marks an element (never changed, as every Element) as one that is sent many times, so that
 * {@link serializeTopIn} keeps its text; returns it.
 */
export function markFixed(el: Element): Element {
  FIXED.set(el, null);
  return el;
}

/** Serializes a top-level element: stanzas in the client namespace, stream elements prefixed. */
export function serializeTop(el: Element): string {
  return serializeTopIn(el, NS_CLIENT);
}

/**
 * Serializes a top-level element on a stream whose default namespace is `streamNs` (the client
 * namespace, or the component namespace of XEP-0114): stream elements prefixed.
 */
export function serializeTopIn(el: Element, streamNs: string): string {
  const fixed = FIXED.get(el);
  if (fixed === undefined) return serializeTopNow(el, streamNs);
  if (fixed !== null && fixed.ns === streamNs) return fixed.text;
  const text = serializeTopNow(el, streamNs);
  FIXED.set(el, { ns: streamNs, text });
  return text;
}

function serializeTopNow(el: Element, streamNs: string): string {
  if (el.xmlns === NS_DIALBACK) return prefixed(el, "db", streamNs);
  if (el.xmlns !== NS_STREAMS) return serialize(el, streamNs);
  return prefixed(el, "stream", streamNs);
}

// A top-level element with the prefix its namespace has in the stream header.
function prefixed(el: Element, prefix: string, streamNs: string): string {
  let s = "<" + prefix + ":" + el.name;
  for (const k in el.attrs) s += " " + k + '="' + escapeAttr(el.attrs[k]) + '"';
  if (el.children.length === 0) return s + "/>";
  s += ">";
  for (const c of el.children) s += typeof c === "string" ? escapeText(c) : serialize(c, streamNs);
  return s + "</" + prefix + ":" + el.name + ">";
}
