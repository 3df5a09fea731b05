/**
 * Namespaces of multi-user chat (XEP-0045) and the extensions a room speaks. Kept beside the
 * service rather than in lib/xmpp/namespaces.ts, which only the service uses them from.
 * @module
 */

/** The join payload `<x/>` (XEP-0045 §7.2) and the room feature. */
export const NS_MUC = "http://jabber.org/protocol/muc";
/** Occupant items, status codes, invitations, destroy notices. */
export const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
/** Roles and affiliations (XEP-0045 §8, §9). */
export const NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
/** Room configuration and destruction (XEP-0045 §10). */
export const NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner";
/** FORM_TYPE of the room configuration form. */
export const NS_MUC_ROOMCONFIG = "http://jabber.org/protocol/muc#roomconfig";
/** FORM_TYPE of the extended room information (XEP-0128 on the room's disco#info). */
export const NS_MUC_ROOMINFO = "http://jabber.org/protocol/muc#roominfo";
/** FORM_TYPE of the room registration form (XEP-0045 §7.10). */
export const NS_MUC_REGISTER = "http://jabber.org/protocol/muc#register";
/** FORM_TYPE of voice requests and their approval (XEP-0045 §7.13, §8.6). */
export const NS_MUC_REQUEST = "http://jabber.org/protocol/muc#request";
/** Unique room names (XEP-0045 §10.1.4). */
export const NS_MUC_UNIQUE = "http://jabber.org/protocol/muc#unique";
/** The room keeps a client's message id and adds its own stanza-id (XEP-0045 §17.2 feature). */
export const NS_MUC_STABLE_ID = "http://jabber.org/protocol/muc#stable_id";
/** XEP-0410: the room answers pings to an occupant's own nick itself. */
export const NS_MUC_SELF_PING = "http://jabber.org/protocol/muc#self-ping-optimization";
/** Legacy direct invitation element, added to mediated invitations for old clients. */
export const NS_X_CONFERENCE = "jabber:x:conference";
/** Anonymous unique occupant identifiers (XEP-0421). */
export const NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0";
/** Ad-hoc commands (XEP-0050), for Prosody's room destruction command. */
export const NS_COMMANDS = "http://jabber.org/protocol/commands";
/** The ad-hoc node Prosody's admin tools use to destroy rooms. */
export const NODE_PROSODY_DESTROY = "http://prosody.im/protocol/muc#destroy";
/** The disco#info node that answers a user's reserved nick (XEP-0045 §7.12). */
export const NODE_ROOMUSER_ITEM = "x-roomuser-item";
