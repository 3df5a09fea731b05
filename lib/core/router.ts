/**
 * Who receives a stanza (RFC 6120 §10, RFC 6121 §8), as a pure function of a registry view.
 * Stanzas that concern a user's account rather than one session (subscriptions, probes,
 * messages nobody online can take) go to the account.
 * @module
 */
import { subscriptionTypeOf } from "./subscription.ts";
import type { AccountOp } from "./types.ts";
import type { DeliveryHooks, ResourceView } from "./types.ts";
import type { Element } from "../xml/element.ts";
import { errorReply, type StanzaErrorCondition } from "../xmpp/errors.ts";
import { bareJidOf, parseJid } from "../xmpp/jid.ts";
import { isArchivable } from "./archive.ts";

/** One delivery decided by the router. */
export type Delivery =
  | { readonly kind: "deliver"; readonly to: string; readonly stanza: Element }
  /** An error reply to the sender (route it again: its `to` is the sender). */
  | { readonly kind: "bounce"; readonly stanza: Element }
  /** Work for a local user's account. */
  | { readonly kind: "account"; readonly bare: string; readonly op: AccountOp }
  /** For the external component (XEP-0114) serving `domain`, which is connected. */
  | { readonly kind: "component"; readonly domain: string; readonly stanza: Element }
  /** For the in-process service (pubsub, MUC) on `domain`. */
  | { readonly kind: "service"; readonly domain: string; readonly stanza: Element }
  /**
   * An iq get or set to one of our domains from outside a client session (another server, a
   * component): the host's handlers answer it.
   */
  | { readonly kind: "host-iq"; readonly stanza: Element }
  /** For another server: federation (RFC 6120 s2s) carries it to `domain`. */
  | { readonly kind: "remote"; readonly domain: string; readonly stanza: Element };

/** What the router may consult. */
export interface RouterView {
  readonly hosts: readonly string[];
  /** Messages to and from local users pass through their accounts to be archived. */
  readonly archiving: boolean;
  /** True when an account answers iqs with this payload (`namespace name`) itself. */
  readonly accountIq?: (key: string) => boolean;
  readonly resourcesOf: (bareJid: string) => readonly ResourceView[];
  /** The modules' delivery hooks, in registry order. */
  readonly delivery: readonly DeliveryHooks[];
  /**
   * Whether `domain` is served by an external component (XEP-0114) and if it is connected;
   * undefined when it is no component's.
   */
  readonly componentFor?: (domain: string) => "connected" | "disconnected" | undefined;
  /** Whether `domain` is one of our in-process services (lib/services/). */
  readonly serviceFor?: (domain: string) => boolean;
  /** Federation is on: other domains are reached through their servers. */
  readonly federation?: boolean;
}

function bounce(
  stanza: Element,
  condition: StanzaErrorCondition = "service-unavailable",
): Delivery[] {
  const type = stanza.attrs.type;
  // Errors are never answered with errors, results never bounce (RFC 6120 §8.3.1), and
  // presence is never answered with an error by the router.
  if (type === "error" || (stanza.name === "iq" && type === "result")) return [];
  if (stanza.name === "presence") return [];
  return [{ kind: "bounce", stanza: errorReply(stanza, condition) }];
}

function deliverAll(stanza: Element, to: readonly ResourceView[]): Delivery[] {
  return to.map((r) => ({ kind: "deliver" as const, to: r.fullJid, stanza }));
}

/** A message to a bare JID (RFC 6121 §8.5.2.1.1, §8.5.2.2.1). */
function messageToBare(stanza: Element, bare: string, resources: readonly ResourceView[]) {
  const type = stanza.attrs.type ?? "normal";
  // RFC 6121 §8.5.2.1.1: an error to a bare JID is silently ignored, never delivered.
  if (type === "error") return [];
  if (type === "groupchat") return bounce(stanza);
  // One pass, no intermediate arrays: this runs for every message to a bare JID.
  const all = type === "headline" || type === "normal";
  let top = -1;
  for (const r of resources) if (r.available && r.priority > top) top = r.priority;
  if (top < 0) {
    if (type === "headline") return [];
    // Offline storage, or a bounce when the account does not exist: the account knows.
    return [{ kind: "account" as const, bare, op: { kind: "offline-message" as const, stanza } }];
  }
  // Chat goes to the most available resources (ties all get it); the rest to every candidate.
  const out: Delivery[] = [];
  for (const r of resources) {
    if (r.available && (all ? r.priority >= 0 : r.priority === top)) {
      out.push({ kind: "deliver", to: r.fullJid, stanza });
    }
  }
  return out;
}

function firstChild(el: Element): Element | undefined {
  for (const c of el.children) if (typeof c !== "string") return c;
  return undefined;
}

/** How far a stanza has come on its way. */
export interface RouteOptions {
  /**
   * The sender's archive copy of this message is durable: it goes on to its recipient. Until
   * then, an archivable message from a local user goes to the sender's account first, so that
   * nothing is delivered that the sender's archive could still lose.
   */
  readonly senderArchived?: boolean;
}

/** Deliveries for a stanza whose `from` is stamped and whose `to` is normalised. */
export function route(stanza: Element, view: RouterView, opts: RouteOptions = {}): Delivery[] {
  const to = stanza.attrs.to;
  if (to === undefined) return [];
  const jid = parseJid(to);
  if (jid === undefined) return bounce(stanza, "jid-malformed");
  // A service answers for its domain and every JID at it (rooms, occupants), whatever the type.
  if (view.serviceFor?.(jid.domain)) return [{ kind: "service", domain: jid.domain, stanza }];
  const component = view.componentFor?.(jid.domain);
  if (component === "connected") {
    return [{ kind: "component", domain: jid.domain, stanza }];
  }
  // A configured component that is away: as for a user who is gone, iq and message bounce
  // and presence is dropped (bounce() drops presence).
  if (component === "disconnected") return bounce(stanza);
  if (!view.hosts.includes(jid.domain)) {
    if (view.federation === true) {
      // XEP-0313: a message to another server is archived for its local sender first.
      const sender = stanza.name === "message" && !opts.senderArchived
        ? archivingSender(stanza, view)
        : undefined;
      if (sender !== undefined) {
        return [{ kind: "account", bare: sender, op: { kind: "outgoing-message", stanza } }];
      }
      return [{ kind: "remote", domain: jid.domain, stanza }];
    }
    // Federation off: other domains cannot be reached (RFC 6120 §10.4.3).
    return bounce(stanza, "remote-server-not-found");
  }
  if (jid.local === undefined) {
    // To the server itself: a local user's session answers those before routing; from
    // anyone else, the host's handlers do. Anything else (results, errors, presence) has
    // nowhere to go.
    if (stanza.name !== "iq") return [];
    const iqType = stanza.attrs.type;
    return iqType === "get" || iqType === "set" ? [{ kind: "host-iq", stanza }] : [];
  }
  // The JID cache's string (`local@domain`): the same one for every stanza to this user.
  const bare = bareJidOf(to)!;
  const resources = view.resourcesOf(bare);
  const type = stanza.attrs.type;

  if (stanza.name === "presence") {
    // Subscriptions and probes are the account's, whatever resource they name (RFC 6121 §3).
    if (subscriptionTypeOf(type) !== undefined) {
      return [{ kind: "account", bare, op: { kind: "inbound-subscription", stanza } }];
    }
    if (type === "probe") return [{ kind: "account", bare, op: { kind: "probe", stanza } }];
    if (jid.resource !== undefined) {
      const target = resources.find((r) => r.resource === jid.resource);
      return target === undefined ? [] : [{ kind: "deliver", to: target.fullJid, stanza }];
    }
    // RFC 6121 §8.5.2.1.1: to every available resource, whatever its priority.
    return deliverAll(stanza, resources.filter((r) => r.available));
  }

  if (stanza.name === "iq") {
    if (jid.resource === undefined) {
      // Answered by the server on the user's behalf (RFC 6121 §8.5.2.1.3): by the account's
      // stored data when a module keeps some for this payload, else service-unavailable.
      const payload = (type === "get" || type === "set") ? firstChild(stanza) : undefined;
      if (payload !== undefined && view.accountIq?.(`${payload.xmlns} ${payload.name}`)) {
        return [{ kind: "account", bare, op: { kind: "module-iq", iq: stanza } }];
      }
      // An answer to an iq the account sent (a push notification): the account's modules.
      if (type === "result" || type === "error") {
        return [{ kind: "account", bare, op: { kind: "iq-reply", iq: stanza } }];
      }
      return bounce(stanza);
    }
    const target = resources.find((r) => r.resource === jid.resource);
    return target === undefined
      ? bounce(stanza)
      : [{ kind: "deliver", to: target.fullJid, stanza }];
  }
  const sender = opts.senderArchived ? undefined : archivingSender(stanza, view);
  if (sender !== undefined) {
    // XEP-0313: the sender's copy first; the sender's account routes it on once it is durable.
    return [{ kind: "account", bare: sender, op: { kind: "outgoing-message", stanza } }];
  }
  if (view.archiving) {
    // The recipient's account archives before it delivers, and keeps messages in order.
    return [{ kind: "account", bare, op: { kind: "incoming-message", stanza } }];
  }
  return messageDeliveries(stanza, bare, jid.resource, resources, view.delivery);
}

/** The local sender (bare JID) whose archive may keep a copy of this message (XEP-0313). */
function archivingSender(stanza: Element, view: RouterView): string | undefined {
  if (!view.archiving || !isArchivable(stanza)) return undefined;
  const from = stanza.attrs.from === undefined ? undefined : parseJid(stanza.attrs.from);
  if (from?.local === undefined || !view.hosts.includes(from.domain)) return undefined;
  return `${from.local}@${from.domain}`;
}

/**
 * Where a message for a local user goes now (RFC 6121 §8.5.2, §8.5.3): `resource` is the one it
 * names, if any. Used by the router and, when archiving, by the recipient's account. The
 * modules' hooks screen it first (a screen's bounces replace every delivery, before anyone gets
 * it or a copy), then rewrite it, then add their copies for the resources it did not reach.
 */
export function messageDeliveries(
  stanza: Element,
  bare: string,
  resource: string | undefined,
  resources: readonly ResourceView[],
  hooks: readonly DeliveryHooks[],
): Delivery[] {
  for (const h of hooks) {
    const bounces = h.screen?.(stanza, bare, resources);
    if (bounces !== undefined) return bounces.map((b) => ({ kind: "bounce", stanza: b }));
  }
  let message = stanza;
  for (const h of hooks) if (h.rewrite !== undefined) message = h.rewrite(message);
  const out = plainDeliveries(message, bare, resource, resources);
  // Who the message itself reached, before any copy is added.
  let reached: string[] | undefined;
  for (const h of hooks) {
    if (h.copies === undefined) continue;
    if (reached === undefined) {
      reached = [];
      for (const d of out) if (d.kind === "deliver") reached.push(d.to);
    }
    for (const c of h.copies(stanza, bare, reached, resources)) {
      out.push({ kind: "deliver", to: c.to, stanza: c.stanza });
    }
  }
  return out;
}

function plainDeliveries(
  stanza: Element,
  bare: string,
  resource: string | undefined,
  resources: readonly ResourceView[],
): Delivery[] {
  if (resource !== undefined) {
    const target = resources.find((r) => r.resource === resource);
    if (target !== undefined) return [{ kind: "deliver", to: target.fullJid, stanza }];
    // RFC 6121 §8.5.3.2: the resource is gone.
    const mtype = stanza.attrs.type ?? "normal";
    if (mtype === "chat" || mtype === "normal") return messageToBare(stanza, bare, resources);
    if (mtype === "groupchat") return bounce(stanza);
    return [];
  }
  return messageToBare(stanza, bare, resources);
}
