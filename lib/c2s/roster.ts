/**
 * Roster requests of a session (RFC 6121 §2): a get makes the resource interested, a set is
 * validated here and carried out by the account, which answers and pushes.
 * @module
 */
import { parseRosterSet } from "../core/roster.ts";
import { bareJid, type Session } from "../core/session.ts";
import type { Element } from "../xml/element.ts";
import { errorReply } from "../xmpp/errors.ts";
import type { Step } from "../core/types.ts";
import { NS_ROSTER } from "../xmpp/namespaces.ts";

/** True for a roster query. */
export function isRosterQuery(payload: Element): boolean {
  return payload.name === "query" && payload.xmlns === NS_ROSTER;
}

/** A roster get or set addressed to the user's own account. */
export function onRosterIq(s: Session, iq: Element, query: Element): Step {
  const bare = bareJid(s)!;
  if (iq.attrs.type === "get") {
    return [{ ...s, interested: true }, [{
      kind: "account",
      bare,
      op: { kind: "roster-get", iq },
    }]];
  }
  const parsed = parseRosterSet(query, bare);
  if (!parsed.ok) {
    return [s, [{ kind: "send", stanza: errorReply(iq, parsed.condition, { text: parsed.text }) }]];
  }
  return [s, [{ kind: "account", bare, op: { kind: "roster-set", iq, change: parsed.change } }]];
}
