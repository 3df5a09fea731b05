/**
 * How a TCP stream (RFC 6120 §4) frames the transport-neutral outputs of the reducers: our
 * header as an open `<stream:stream>` tag, stanzas and nonzas as they are, a stream error then
 * `</stream:stream>` to close. Another transport (WebSocket, BOSH) replaces only this module.
 * @module
 */
import { type Element, escapeAttr } from "../xml/element.ts";
import { serializeTopIn, type StreamHeader, type StreamOutput } from "../xmpp/stream_xml.ts";
import { streamErrorElement } from "../xmpp/errors.ts";
import { NS_DIALBACK, NS_STREAMS } from "../xmpp/namespaces.ts";

/** The closing tag of a TCP stream. */
export const STREAM_CLOSE = "</stream:stream>";

/** Our stream header as an open tag, with the XML declaration. */
export function tcpHeader(h: StreamHeader): string {
  let s = "<?xml version='1.0'?><stream:stream xmlns='" + escapeAttr(h.ns) +
    "' xmlns:stream='" + NS_STREAMS + "'";
  if (h.dialback === true) s += " xmlns:db='" + NS_DIALBACK + "'";
  // An initiating server (its header names `to`) sends no id (RFC 6120 §4.7.3).
  if (h.id !== "" || h.to === undefined) s += " id='" + escapeAttr(h.id) + "'";
  if (h.from !== undefined) s += " from='" + escapeAttr(h.from) + "'";
  if (h.to !== undefined) s += " to='" + escapeAttr(h.to) + "'";
  if (h.version !== undefined) s += " version='" + escapeAttr(h.version) + "'";
  if (h.lang !== undefined) s += " xml:lang='" + escapeAttr(h.lang) + "'";
  return s + ">";
}

/**
 * The text of one output on a TCP stream whose content namespace is `ns`: a stanza or nonza
 * (`send`), or a stream-level output.
 */
export function tcpFrame(
  out: StreamOutput | { readonly kind: "send"; readonly stanza: Element },
  ns: string,
): string {
  switch (out.kind) {
    case "send":
      return serializeTopIn(out.stanza, ns);
    case "open-stream":
      return tcpHeader(out.header);
    case "close-stream":
      return (out.error === undefined ? "" : serializeTopIn(streamErrorElement(out.error), ns)) +
        STREAM_CLOSE;
  }
}
