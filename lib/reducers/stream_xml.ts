/**
 * Stream-level XML that is not a stanza: our stream header, the closing tag, and stream-level
 * elements written with the conventional `stream:` prefix.
 * @module
 */
import { type Element, escapeAttr, escapeText, serialize } from "../xml/element.ts";
import { NS_CLIENT, NS_STREAMS } from "../xmpp/namespaces.ts";

/** Our stream header (RFC 6120 §4.7), with the XML declaration. */
export function streamHeader(opts: { readonly from?: string; readonly id?: string }): string {
  let s = "<?xml version='1.0'?><stream:stream xmlns='" + NS_CLIENT +
    "' xmlns:stream='" + NS_STREAMS + "'";
  if (opts.id !== undefined) s += " id='" + escapeAttr(opts.id) + "'";
  if (opts.from !== undefined) s += " from='" + escapeAttr(opts.from) + "'";
  return s + " version='1.0' xml:lang='en'>";
}

/** The closing tag of the stream. */
export const STREAM_CLOSE = "</stream:stream>";

/** Serializes a top-level element: stanzas in the client namespace, stream elements prefixed. */
export function serializeTop(el: Element): string {
  return serializeTopIn(el, NS_CLIENT);
}

/**
 * Serializes a top-level element on a stream whose default namespace is `streamNs` (the client
 * namespace, or the component namespace of XEP-0114): stream elements prefixed.
 */
export function serializeTopIn(el: Element, streamNs: string): string {
  if (el.xmlns !== NS_STREAMS) return serialize(el, streamNs);
  let s = "<stream:" + el.name;
  for (const k in el.attrs) s += " " + k + '="' + escapeAttr(el.attrs[k]) + '"';
  if (el.children.length === 0) return s + "/>";
  s += ">";
  for (const c of el.children) s += typeof c === "string" ? escapeText(c) : serialize(c, streamNs);
  return s + "</stream:" + el.name + ">";
}
