/**
 * Tombstones of removed accounts (as Prosody's mod_tombstones): for a while after an account
 * is removed its name cannot be registered again, so that nobody inherits the old account's
 * contacts and group memberships, and presence aimed at it is answered so that former contacts
 * drop their subscriptions. Messages and iqs bounce as for any account that does not exist.
 * @module
 */
import { type Element, stanza } from "../xml/element.ts";
import { errorReply } from "../xmpp/errors.ts";
import { bareJidOf } from "../xmpp/jid.ts";

/** What is stored per removed account. */
export interface Tombstone {
  /** When the account was removed (ms since the epoch). */
  readonly removed: number;
}

/** True while a tombstone stands: `expiry` in seconds (Infinity keeps it forever). */
export function tombstoneStands(
  tombstone: Tombstone | undefined,
  now: number,
  expiry: number,
): boolean {
  if (tombstone === undefined) return false;
  return expiry === Infinity || now < tombstone.removed + expiry * 1000;
}

/**
 * The answers to a presence for the removed account `bare`: a probe or a subscription request
 * gets a `gone` error and `unsubscribed`, so that the contact's server cleans up its side;
 * anything else gets nothing.
 */
export function tombstoneReplies(presence: Element, bare: string): Element[] {
  const type = presence.attrs.type;
  const from = presence.attrs.from;
  if ((type !== "probe" && type !== "subscribe") || from === undefined) return [];
  const to = bareJidOf(from) ?? from;
  return [
    errorReply(presence, "gone", { text: "User deleted" }),
    stanza("presence", { type: "unsubscribed", from: bare, to }),
  ];
}
