/**
 * The message archive (XEP-0313) and the archive's ids (XEP-0359) as modules. The archive is
 * on only with archiving (`ctx.archiving`): off, it answers nothing (its iqs get
 * `service-unavailable` from the dispatcher) and announces nothing. What is archived and how
 * (the sender's and recipient's copies, the ids) is the router's and the account's, which read
 * the same switch.
 * @module
 */
import type { Element } from "../../xml/element.ts";
import { stripStanzaIds } from "../../core/archive.ts";
import { parseJid } from "../../xmpp/jid.ts";
import { NS_MAM, NS_MAM_EXTENDED } from "../../xmpp/namespaces.ts";
import type { Ctx, Module } from "../../core/types.ts";
import { onMamIq } from "./iq.ts";

/** XEP-0313: the user's own archive: queries, metadata and preferences, on the bare JID. */
export const MAM: Module = {
  name: "mam",
  enabled: (ctx) => ctx.archiving,
  accountFeatures: [NS_MAM, NS_MAM_EXTENDED],
  selfIq: {
    [`${NS_MAM} query`]: (s, iq, payload) => onMamIq(s, iq, payload),
    [`${NS_MAM} prefs`]: (s, iq, payload) => onMamIq(s, iq, payload),
    [`${NS_MAM} metadata`]: (s, iq, payload) => onMamIq(s, iq, payload),
  },
};

/** True when `jid` is one of our hosts or an account on one of them. */
function isLocal(jid: string, ctx: Ctx): boolean {
  const parsed = parseJid(jid);
  return parsed !== undefined && ctx.hosts.includes(parsed.domain);
}

/**
 * XEP-0359 §5: a client cannot forge the ids our archives hand out, so a message the user sends
 * loses every `<stanza-id/>` whose `by` is ours. A module of its own rather than MAM's hook,
 * because it stays on with archiving off: the ids handed out while it was on are still trusted
 * by clients. It announces nothing (nor did it before it was a module).
 */
export const STANZA_ID: Module = {
  name: "stanza-id",
  outbound: (_s, stanza: Element, ctx) => {
    if (stanza.name !== "message") return undefined;
    const stripped = stripStanzaIds(stanza, (by) => isLocal(by, ctx));
    return stripped === stanza ? undefined : { stanza: stripped };
  },
};
