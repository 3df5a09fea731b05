/**
 * XEP-0288 bidirectional server-to-server streams: the receiving server offers the feature, the
 * initiating server asks for it before authenticating, and then each side may send stanzas the
 * other way over the same connection, for the domain pairs whose identities are established
 * (see lib/s2s/inbound.ts and lib/s2s/outbound.ts for which).
 * @module
 */
import { elem, type Element } from "../xml/element.ts";

/** The stream feature the receiving server offers. */
export const NS_BIDI_FEATURE = "urn:xmpp:features:bidi";
/** The element the initiating server sends to turn bidirectionality on. */
export const NS_BIDI = "urn:xmpp:bidi";

/** `<bidi xmlns='urn:xmpp:features:bidi'/>`, for our features. */
export function bidiFeature(): Element {
  return elem("bidi", { xmlns: NS_BIDI_FEATURE });
}

/** `<bidi xmlns='urn:xmpp:bidi'/>`, our request on an outgoing stream. */
export function bidiRequest(): Element {
  return elem("bidi", { xmlns: NS_BIDI });
}
