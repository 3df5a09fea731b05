/**
 * A resource's presence sent again (RFC 6121 §4.3.2 probes, new subscribers, unblocked
 * contacts), shared by the account reducer and the blocking module.
 * @module
 */
import { elem, type Element, withAttrs, withChildren } from "../xml/element.ts";
import { formatDateTime } from "../xmpp/datetime.ts";
import { NS_DELAY } from "../xmpp/namespaces.ts";
import type { ResourceView } from "./types.ts";

/**
 * A resource's current presence sent again later (to a new subscriber, a probe, an unblocked
 * contact): XEP-0203 stamps it with when it was set, as Prosody does.
 */
export function resentPresence(r: ResourceView, to: string): Element | undefined {
  if (r.presence === undefined) return undefined;
  const el = withAttrs(r.presence, { from: r.fullJid, to, id: undefined });
  if (r.presenceAt === undefined) return el;
  const host = r.fullJid.slice(r.fullJid.indexOf("@") + 1).split("/")[0];
  const stamp = formatDateTime(r.presenceAt);
  return withChildren(el, [...el.children, elem("delay", { xmlns: NS_DELAY, from: host, stamp })]);
}
