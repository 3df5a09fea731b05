/**
 * Who receives a stanza (RFC 6120 §10, RFC 6121 §8), as a pure function of a registry view.
 * This is the part the foundation needs; the IM core extends it.
 * @module
 */
import type { ResourceView } from "./reducers/types.ts";
import type { Element } from "./xml/element.ts";
import { errorReply } from "./xmpp/errors.ts";
import { parseJid } from "./xmpp/jid.ts";

/** One delivery decided by the router. */
export type Delivery =
  | { readonly kind: "deliver"; readonly to: string; readonly stanza: Element }
  /** An error reply to the sender's session (routed back to `stanza.attrs.to`). */
  | { readonly kind: "bounce"; readonly stanza: Element };

/** What the router may consult. */
export interface RouterView {
  readonly hosts: readonly string[];
  readonly resourcesOf: (bareJid: string) => readonly ResourceView[];
}

function bounce(stanza: Element): Delivery[] {
  const type = stanza.attrs.type;
  // Errors are never answered with errors, results never bounce (RFC 6120 §8.3.1).
  if (type === "error" || (stanza.name === "iq" && type === "result")) return [];
  if (stanza.name === "presence") return [];
  return [{ kind: "bounce", stanza: errorReply(stanza, "service-unavailable") }];
}

/** Deliveries for a stanza whose `from` is already stamped. */
export function route(stanza: Element, view: RouterView): Delivery[] {
  const from = stanza.attrs.from!;
  const to = stanza.attrs.to;
  if (to === undefined) {
    // Presence without 'to' is a broadcast: for now, to the user's own available resources.
    if (stanza.name !== "presence") return [];
    const bare = from.split("/")[0];
    return view.resourcesOf(bare).filter((r) => r.available || r.fullJid === from).map((r) => ({
      kind: "deliver" as const,
      to: r.fullJid,
      stanza,
    }));
  }
  const jid = parseJid(to);
  if (jid === undefined) return [];
  if (jid.local === undefined || !view.hosts.includes(jid.domain)) return bounce(stanza);
  const bare = `${jid.local}@${jid.domain}`;
  const resources = view.resourcesOf(bare);
  if (jid.resource !== undefined) {
    const target = resources.find((r) => r.resource === jid.resource);
    if (target !== undefined) return [{ kind: "deliver", to: target.fullJid, stanza }];
    if (stanza.name !== "message") return bounce(stanza);
  }
  if (stanza.name === "iq") return bounce(stanza);
  if (stanza.name === "presence") {
    // RFC 6121 §8.5.2.1.1: presence to a bare JID goes to every available resource, whatever
    // its priority; with none available it is dropped (bounce never answers presence).
    return resources.filter((r) => r.available).map((r) => ({
      kind: "deliver" as const,
      to: r.fullJid,
      stanza,
    }));
  }
  const candidates = resources.filter((r) => r.available && r.priority >= 0);
  if (candidates.length === 0) return bounce(stanza);
  const top = Math.max(...candidates.map((r) => r.priority));
  return candidates.filter((r) => r.priority === top).map((r) => ({
    kind: "deliver" as const,
    to: r.fullJid,
    stanza,
  }));
}
