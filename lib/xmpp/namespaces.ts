/** Namespace URIs used across the server, named after what they are. @module */

export const NS_CLIENT = "jabber:client";
export const NS_STREAMS = "http://etherx.jabber.org/streams";
export const NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams";
export const NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas";
export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
export const NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session";
export const NS_PING = "urn:xmpp:ping";
export const NS_SASL_CB = "urn:xmpp:sasl-cb:0";
export const NS_LIMITS = "urn:xmpp:stream-limits:0";
export const NS_XML = "http://www.w3.org/XML/1998/namespace";
