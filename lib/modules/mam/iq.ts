/**
 * Message archive requests of a session (XEP-0313): queries, metadata and preferences of the
 * user's own archive are validated here and carried out by the account, in order with the
 * messages it archives.
 * @module
 */
import { parseMamQuery, parsePrefs } from "./protocol.ts";
import { bareJid, type Session } from "../../core/session.ts";
import type { Element } from "../../xml/element.ts";
import { errorReply } from "../../xmpp/errors.ts";
import type { Step } from "../../core/types.ts";

/**
 * A get or set iq to the user's own archive (from stamped), for a payload the MAM module
 * registers (`query`, `metadata`, `prefs`).
 */
export function onMamIq(s: Session, iq: Element, payload: Element): Step {
  const bare = bareJid(s)!;
  const type = iq.attrs.type;
  const fail = (condition: Parameters<typeof errorReply>[1], text?: string): Step => [
    s,
    [{ kind: "send", stanza: errorReply(iq, condition, { text }) }],
  ];
  switch (payload.name) {
    case "query": {
      if (type !== "set") return fail("bad-request", "A query is an iq of type set");
      const query = parseMamQuery(payload);
      if ("error" in query) return fail(query.error, query.text);
      return [s, [{ kind: "account", bare, op: { kind: "mam-query", iq, query } }]];
    }
    case "metadata":
      if (type !== "get") return fail("bad-request", "Metadata is an iq of type get");
      return [s, [{ kind: "account", bare, op: { kind: "mam-metadata", iq } }]];
    default: {
      if (type === "get") return [s, [{ kind: "account", bare, op: { kind: "mam-prefs", iq } }]];
      const prefs = parsePrefs(payload);
      if ("error" in prefs) return fail(prefs.error, prefs.text);
      return [s, [{ kind: "account", bare, op: { kind: "mam-prefs", iq, prefs } }]];
    }
  }
}
