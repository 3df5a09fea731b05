/**
 * Namespace URIs used across the server, named after what they are: each is defined here once
 * and imported from here.
 * @module
 */

// Core (RFC 6120, RFC 6121).
/** Namespace of client-to-server stanzas. */
export const NS_CLIENT = "jabber:client";
export const NS_STREAMS = "http://etherx.jabber.org/streams";
/** `<open/>` and `<close/>` of XMPP over WebSocket (RFC 7395 §3.3). */
export const NS_FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
export const NS_STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams";
export const NS_STANZA_ERRORS = "urn:ietf:params:xml:ns:xmpp-stanzas";
export const NS_TLS = "urn:ietf:params:xml:ns:xmpp-tls";
/** Server-to-server streams (RFC 6120 §4.8.2). */
export const NS_SERVER = "jabber:server";
/** Server dialback (XEP-0220): `<db:result/>`, `<db:verify/>`. */
export const NS_DIALBACK = "jabber:server:dialback";
/** The stream feature that announces dialback (XEP-0220 §2.4.3). */
export const NS_DIALBACK_FEATURE = "urn:xmpp:features:dialback";
export const NS_SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
export const NS_BIND = "urn:ietf:params:xml:ns:xmpp-bind";
export const NS_SESSION = "urn:ietf:params:xml:ns:xmpp-session";
/** Namespace of the roster protocol (RFC 6121 §2). */
export const NS_ROSTER = "jabber:iq:roster";

// Extensions, by XEP.
export const NS_SASL_CB = "urn:xmpp:sasl-cb:0";
export const NS_LIMITS = "urn:xmpp:stream-limits:0";
/** Data forms (XEP-0004). */
export const NS_DATA = "jabber:x:data";
/** Last activity (XEP-0012). */
export const NS_LAST = "jabber:iq:last";
export const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
export const NS_DISCO_ITEMS = "http://jabber.org/protocol/disco#items";
/** Private XML storage (XEP-0049). */
export const NS_PRIVATE = "jabber:iq:private";
/** Legacy bookmarks (XEP-0048), stored in private storage. */
export const NS_LEGACY_BOOKMARKS = "storage:bookmarks";
/** vCards (XEP-0054). */
export const NS_VCARD = "vcard-temp";
/** vCard-based avatars in presence (XEP-0153). */
export const NS_VCARD_UPDATE = "vcard-temp:x:update";
/** Result Set Management (XEP-0059). */
export const NS_RSM = "http://jabber.org/protocol/rsm";
/** Publish-subscribe (XEP-0060). */
export const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
export const NS_PUBSUB_OWNER = "http://jabber.org/protocol/pubsub#owner";
export const NS_PUBSUB_EVENT = "http://jabber.org/protocol/pubsub#event";
export const NS_PUBSUB_ERRORS = "http://jabber.org/protocol/pubsub#errors";
/** In-band registration (XEP-0077). */
export const NS_REGISTER = "jabber:iq:register";
/** The in-band registration stream feature (XEP-0077 §8). */
export const NS_REGISTER_FEATURE = "http://jabber.org/features/iq-register";
/** Chat state notifications (XEP-0085). */
export const NS_CHATSTATES = "http://jabber.org/protocol/chatstates";
/** Software version (XEP-0092). */
export const NS_VERSION = "jabber:iq:version";
/** Entity capabilities (XEP-0115). */
export const NS_CAPS = "http://jabber.org/protocol/caps";
/** Server contact addresses (XEP-0157 form type). */
export const NS_SERVERINFO = "http://jabber.org/network/serverinfo";
/** Blocking command (XEP-0191). */
export const NS_BLOCKING = "urn:xmpp:blocking";
/** The application error condition of a refused stanza (XEP-0191 §3.6). */
export const NS_BLOCKING_ERRORS = "urn:xmpp:blocking:errors";
/** Ping (XEP-0199). */
export const NS_PING = "urn:xmpp:ping";
/** Entity time (XEP-0202). */
export const NS_TIME = "urn:xmpp:time";
/** Delayed delivery (XEP-0203). */
export const NS_DELAY = "urn:xmpp:delay";
/** External service discovery (XEP-0215). */
export const NS_EXTDISCO = "urn:xmpp:extdisco:2";
/** Message carbons (XEP-0280). */
export const NS_CARBONS = "urn:xmpp:carbons:2";
/** Stanza forwarding (XEP-0297). */
export const NS_FORWARD = "urn:xmpp:forward:0";
/** The MAM namespace (XEP-0313: query, result, fin, prefs, metadata). */
export const NS_MAM = "urn:xmpp:mam:2";
/** Disco feature for after-id, before-id, ids, flip-page and metadata. */
export const NS_MAM_EXTENDED = "urn:xmpp:mam:2#extended";
/** Processing hints (XEP-0334). */
export const NS_HINTS = "urn:xmpp:hints";
/** Client state indication (XEP-0352). */
export const NS_CSI = "urn:xmpp:csi:0";
/** Unique and stable stanza ids (XEP-0359). */
export const NS_SID = "urn:xmpp:sid:0";
/** User avatar data node (XEP-0084). */
export const NS_AVATAR_DATA = "urn:xmpp:avatar:data";
/** User avatar metadata node (XEP-0084). */
export const NS_AVATAR_METADATA = "urn:xmpp:avatar:metadata";
/** PEP native bookmarks (XEP-0402). */
export const NS_BOOKMARKS2 = "urn:xmpp:bookmarks:1";
/** XEP-0402 §5: private-storage bookmarks are the PEP bookmarks. */
export const NS_BOOKMARKS_COMPAT = `${NS_BOOKMARKS2}#compat`;
/** PEP and vCard avatar conversion (XEP-0398 §2): announced on accounts. */
export const NS_PEP_VCARD_CONVERSION = "urn:xmpp:pep-vcard-conversion:0";

/** XEP-0198 stream management. */
export const NS_SM = "urn:xmpp:sm:3";

/** XEP-0114 external components (the accept side). */
export const NS_COMPONENT = "jabber:component:accept";
