/**
 * XEP-0060 subscriptions and affiliations, for a pubsub service (PEP keeps neither): subscribe
 * and unsubscribe (§6.1, §6.2), subscription options (§6.3), an entity's own subscriptions and
 * affiliations (§5.6, §5.7), their management by node owners (§8.8, §8.9), and the approval of
 * subscriptions to `authorize` nodes (§8.6). Each operation is a pure function to an engine
 * {@link Outcome}, like those of `engine.ts`.
 * @module
 */
import { childElements, elem, type Element } from "../xml/element.ts";
import { buildForm, type DataForm, findForm, formTypeField, parseForm } from "../xmpp/forms.ts";
import { bareJidOf, normalizeJid } from "../xmpp/jid.ts";
import { NS_DATA, NS_PUBSUB, NS_PUBSUB_OWNER } from "../xmpp/namespaces.ts";
import { accessRefusal, affiliationOf, isOwner, mayAccess, type Requester } from "./access.ts";
import { type PubsubError, refusal } from "./errors.ts";
import {
  eventOf,
  lastItemEvent,
  type Notification,
  type Outcome,
  type ServiceCtx,
} from "./engine.ts";
import {
  type Affiliation,
  nodeOf,
  type NodeSubscription,
  overQuota,
  parseBool,
  type PubsubData,
  type PubsubNode,
  type SubscriptionState,
  withNode,
} from "./node.ts";

/** The FORM_TYPE of subscription options (XEP-0060 §16.4.2). */
export const FORM_SUBSCRIBE_OPTIONS = "http://jabber.org/protocol/pubsub#subscribe_options";
/** The FORM_TYPE of a subscription approval (XEP-0060 §16.4.3). */
export const FORM_SUBSCRIBE_AUTHORIZATION =
  "http://jabber.org/protocol/pubsub#subscribe_authorization";

const FORBIDDEN = refusal("forbidden");
const NOT_FOUND = refusal("item-not-found");
const NODEID_REQUIRED = refusal("bad-request", "nodeid-required");
const JID_REQUIRED = refusal("bad-request", "jid-required");
const INVALID_JID = refusal("bad-request", "invalid-jid");
/** §6.2.3.2: `cancel`, not the condition's usual `wait`. */
const NOT_SUBSCRIBED: PubsubError = {
  ...refusal("unexpected-request", "not-subscribed"),
  type: "cancel",
};

const AFFILIATIONS: readonly Affiliation[] = [
  "owner",
  "publisher",
  "publish-only",
  "member",
  "none",
  "outcast",
];
const STATES: readonly (SubscriptionState | "none")[] = [
  "subscribed",
  "pending",
  "unconfigured",
  "none",
];

// --- reading a node's records ----------------------------------------------------------------

/** The affiliation of `bare` with `node` (an own property only); `none` when it has none. */
export function affiliationWith(node: PubsubNode, bare: string): Affiliation {
  const affs = node.affiliations;
  return affs !== undefined && Object.hasOwn(affs, bare) ? affs[bare] : "none";
}

/** The subscription of `jid` to `node`, if there is one. */
export function subscriptionOf(node: PubsubNode, jid: string): NodeSubscription | undefined {
  const subs = node.subscriptions;
  return subs !== undefined && Object.hasOwn(subs, jid) ? subs[jid] : undefined;
}

/** The bare JIDs that own `node`, in the order they became owners. */
export function ownersOf(node: PubsubNode): string[] {
  return Object.entries(node.affiliations ?? {}).filter(([, a]) => a === "owner").map(([j]) => j);
}

/**
 * Who hears about events of `node` (XEP-0060 §7.1.2.1): subscriptions in the `subscribed` state
 * whose options do not hold delivery back, in the order they were made.
 */
export function subscribersOf(node: PubsubNode): string[] {
  return Object.entries(node.subscriptions ?? {})
    .filter(([, s]) => s.state === "subscribed" && s.deliver !== false)
    .map(([jid]) => jid);
}

/** True when `bare` (or one of its full JIDs) holds an approved subscription to `node`. */
export function isSubscribed(node: PubsubNode, bare: string): boolean {
  return Object.entries(node.subscriptions ?? {}).some(([jid, s]) =>
    s.state === "subscribed" && bareJidOf(jid) === bare
  );
}

/** The records with `jid`'s entry replaced (undefined: removed), defined as own properties. */
function withEntry<T>(
  record: Readonly<Record<string, T>> | undefined,
  jid: string,
  value: T | undefined,
): Record<string, T> {
  const entries: [string, T][] = [];
  let seen = false;
  for (const [k, v] of Object.entries(record ?? {})) {
    if (k !== jid) entries.push([k, v]);
    else {
      seen = true;
      if (value !== undefined) entries.push([k, value]);
    }
  }
  if (!seen && value !== undefined) entries.push([jid, value]);
  return Object.fromEntries(entries);
}

/** The node with `jid`'s subscription replaced (undefined: removed). */
function withSubscription(
  node: PubsubNode,
  jid: string,
  sub: NodeSubscription | undefined,
): PubsubNode {
  return { ...node, subscriptions: withEntry(node.subscriptions, jid, sub) };
}

function subscriptionElement(
  name: string,
  jid: string,
  state: SubscriptionState | "none",
): Element {
  return elem("subscription", { node: name, jid, subscription: state });
}

function pubsubResult(children: readonly Element[], xmlns = NS_PUBSUB): Element {
  return elem("pubsub", { xmlns }, children);
}

/** The `<event/>` that tells `jid` of its subscription's new state (§8.6.3, §8.8.4). */
function subscriptionEvent(name: string, jid: string, state: SubscriptionState | "none") {
  return eventOf(subscriptionElement(name, jid, state));
}

/** The node and its name, or the refusal of a request for it. */
function nodeFor(
  data: PubsubData,
  el: Element,
): { readonly name: string; readonly node: PubsubNode } | { readonly error: PubsubError } {
  const name = el.attrs.node;
  if (name === undefined || name === "") return { error: NODEID_REQUIRED };
  const node = nodeOf(data, name);
  return node === undefined ? { error: NOT_FOUND } : { name, node };
}

/** The normalised `jid` attribute, or its refusal. */
function jidFor(el: Element): { readonly jid: string } | { readonly error: PubsubError } {
  if (el.attrs.jid === undefined) return { error: JID_REQUIRED };
  const jid = normalizeJid(el.attrs.jid);
  return jid === undefined ? { error: INVALID_JID } : { jid };
}

// --- subscription options --------------------------------------------------------------------

/** The options a form sets (§6.3.5), or undefined when a known field has a bad value. */
function optionsFromForm(form: DataForm): { readonly deliver?: boolean } | undefined {
  const v = form.byVar.get("pubsub#deliver")?.values[0];
  if (v === undefined) return {};
  const deliver = parseBool(v);
  return deliver === undefined ? undefined : { deliver };
}

/** The subscription options form of `sub` (§6.3.2). */
function optionsForm(sub: NodeSubscription): Element {
  return buildForm("form", [
    formTypeField(FORM_SUBSCRIBE_OPTIONS),
    {
      type: "boolean",
      var: "pubsub#deliver",
      label: "Enable delivery?",
      values: [sub.deliver === false ? "0" : "1"],
    },
  ]);
}

/** The form of an `<options/>` element that is a submitted subscription options form. */
function submittedOptions(optionsEl: Element | undefined): DataForm | undefined {
  const x = optionsEl === undefined ? undefined : findForm(optionsEl);
  return x === undefined ? undefined : parseForm(x);
}

// --- subscribe, unsubscribe ------------------------------------------------------------------

/**
 * The approval request a node owner gets for a subscription to an `authorize` node (§8.6.1):
 * a form to submit back with `pubsub#allow`.
 */
export function authorizationForm(name: string, jid: string): Element {
  return elem("x", { xmlns: NS_DATA, type: "form" }, [
    elem("title", {}, ["PubSub subscriber request"]),
    elem("instructions", {}, [
      "To approve this entity's subscription request, click the OK button. " +
      "To deny the request, click the cancel button.",
    ]),
    ...buildForm("form", [
      formTypeField(FORM_SUBSCRIBE_AUTHORIZATION),
      { type: "text-single", var: "pubsub#node", label: "Node ID", values: [name] },
      {
        type: "jid-single",
        var: "pubsub#subscriber_jid",
        label: "Subscriber Address",
        values: [jid],
      },
      {
        type: "boolean",
        var: "pubsub#allow",
        label: "Allow this JID to subscribe to this pubsub node?",
        values: ["false"],
      },
    ]).children,
  ]);
}

/**
 * XEP-0060 §6.1: `<subscribe node jid/>` by `requester` (a full JID), with `<options/>` if
 * any. The JID must be the requester's own (bare or full) unless the requester owns the node.
 * On an `authorize` node a requester without access gets a pending subscription and every
 * owner a request to approve it (`asks`). A new subscription gets the node's last item when
 * `send_last_published_item` says so (in `notifications`, to send after the result: §6.1.7).
 */
export function subscribe(
  data: PubsubData,
  subscribeEl: Element,
  optionsEl: Element | undefined,
  requester: string,
  who: Requester,
  ctx: ServiceCtx,
): Outcome & { readonly asks?: readonly Notification[] } {
  const found = nodeFor(data, subscribeEl);
  if ("error" in found) return found;
  const { name, node } = found;
  const j = jidFor(subscribeEl);
  if ("error" in j) return j;
  const { jid } = j;
  if (!isOwner(who) && bareJidOf(jid) !== bareJidOf(requester)) return { error: INVALID_JID };
  if (affiliationOf(who) === "outcast") return { error: FORBIDDEN };
  const allowed = mayAccess(node.config.accessModel, who, node.config.rosterGroupsAllowed);
  const pending = !allowed && node.config.accessModel === "authorize";
  if (!allowed && !pending) return { error: accessRefusal(node.config, who) };
  const form = submittedOptions(optionsEl);
  const options = form === undefined ? {} : optionsFromForm(form);
  if (options === undefined) return { error: refusal("bad-request", "invalid-options") };
  const before = subscriptionOf(node, jid);
  // Asking again changes nothing (and is not a new subscription to count or notify).
  if (before !== undefined && (before.state === "subscribed" || pending)) {
    return { result: pubsubResult([subscriptionElement(name, jid, before.state)]) };
  }
  if (before === undefined) {
    const subs = Object.keys(node.subscriptions ?? {});
    if (ctx.limits.subscriptions !== undefined && subs.length >= ctx.limits.subscriptions) {
      return { error: refusal("resource-constraint", undefined, "Too many subscriptions") };
    }
    const perJid = ctx.limits.subscriptionsPerJid;
    const bare = bareJidOf(jid);
    if (perJid !== undefined && subs.filter((s) => bareJidOf(s) === bare).length >= perJid) {
      // §6.1.3 (too many subscriptions): `wait`.
      return { error: { ...refusal("policy-violation", "too-many-subscriptions"), type: "wait" } };
    }
  }
  const state: SubscriptionState = pending ? "pending" : "subscribed";
  const sub: NodeSubscription = { ...options, state };
  const next = withNode(data, name, withSubscription(node, jid, sub));
  if (overQuota(data, next, ctx.limits)) {
    return { error: refusal("resource-constraint", undefined, ctx.quotaText) };
  }
  const result = pubsubResult([subscriptionElement(name, jid, state)]);
  if (pending) {
    const form = authorizationForm(name, jid);
    return { data: next, result, asks: ownersOf(node).map((to) => ({ to, event: form })) };
  }
  const last = lastItemEvent(name, node, { ...who, subscribed: true }, ctx.exposePublisher);
  return {
    data: next,
    result,
    notifications: last === undefined ? [] : [{ to: jid, event: eventOf(last) }],
  };
}

/** XEP-0060 §6.2: `<unsubscribe node jid/>`, by the subscriber or an owner. */
export function unsubscribe(
  data: PubsubData,
  unsubscribeEl: Element,
  requester: string,
  who: Requester,
): Outcome {
  const found = nodeFor(data, unsubscribeEl);
  if ("error" in found) return found;
  const { name, node } = found;
  const j = jidFor(unsubscribeEl);
  if ("error" in j) return j;
  const { jid } = j;
  if (!isOwner(who) && bareJidOf(jid) !== bareJidOf(requester)) return { error: FORBIDDEN };
  if (subscriptionOf(node, jid) === undefined) return { error: NOT_SUBSCRIBED };
  return {
    data: withNode(data, name, withSubscription(node, jid, undefined)),
    result: pubsubResult([subscriptionElement(name, jid, "none")]),
  };
}

/**
 * XEP-0060 §6.3: `<options node jid/>`: the subscription options form (get), or a submitted
 * one (set), for the subscriber or an owner.
 */
export function subscriptionOptions(
  data: PubsubData,
  optionsEl: Element,
  set: boolean,
  requester: string,
  who: Requester,
): Outcome {
  const found = nodeFor(data, optionsEl);
  if ("error" in found) return found;
  const { name, node } = found;
  const j = jidFor(optionsEl);
  if ("error" in j) return j;
  const { jid } = j;
  if (!isOwner(who) && bareJidOf(jid) !== bareJidOf(requester)) return { error: FORBIDDEN };
  const sub = subscriptionOf(node, jid);
  if (sub === undefined) return { error: NOT_SUBSCRIBED };
  if (!set) {
    return {
      result: pubsubResult([elem("options", { node: name, jid }, [optionsForm(sub)])]),
    };
  }
  const form = submittedOptions(optionsEl);
  if (form === undefined) return { error: refusal("bad-request", "invalid-options") };
  const options = optionsFromForm(form);
  if (options === undefined) return { error: refusal("bad-request", "invalid-options") };
  // A configured subscription is a subscription (§6.3.4 `unconfigured` ends here).
  const state = sub.state === "unconfigured" ? "subscribed" : sub.state;
  return { data: withNode(data, name, withSubscription(node, jid, { ...options, state })) };
}

// --- an entity's own records -----------------------------------------------------------------

/** The nodes a request is about: the one it names, or all of them. */
function nodesAsked(data: PubsubData, el: Element): [string, PubsubNode][] {
  const name = el.attrs.node;
  if (name === undefined) return Object.entries(data.nodes);
  const node = nodeOf(data, name);
  return node === undefined ? [] : [[name, node]];
}

/**
 * XEP-0060 §5.6: `<subscriptions [node]/>`: the subscriptions of the requester's bare JID and
 * its full JIDs.
 */
export function ownSubscriptions(data: PubsubData, el: Element, requester: string): Outcome {
  const bare = bareJidOf(requester);
  const out: Element[] = [];
  for (const [name, node] of nodesAsked(data, el)) {
    for (const [jid, sub] of Object.entries(node.subscriptions ?? {})) {
      if (bareJidOf(jid) === bare) out.push(subscriptionElement(name, jid, sub.state));
    }
  }
  return {
    result: pubsubResult([elem("subscriptions", { node: el.attrs.node }, out)]),
  };
}

/** XEP-0060 §5.7: `<affiliations [node]/>`: the requester's affiliations. */
export function ownAffiliations(data: PubsubData, el: Element, requester: string): Outcome {
  const bare = bareJidOf(requester) ?? "";
  const out: Element[] = [];
  for (const [name, node] of nodesAsked(data, el)) {
    const affiliation = affiliationWith(node, bare);
    if (affiliation !== "none") out.push(elem("affiliation", { node: name, affiliation }));
  }
  return {
    result: pubsubResult([elem("affiliations", { node: el.attrs.node }, out)]),
  };
}

// --- owners' management ----------------------------------------------------------------------

/** The `jid`/`affiliation|subscription` entries of an owner's set request, or a refusal. */
function entriesOf<T extends string>(
  el: Element,
  child: string,
  attr: string,
  allowed: readonly T[],
): [string, T][] | { readonly error: PubsubError } {
  const out = new Map<string, T>();
  for (const e of childElements(el).filter((c) => c.name === child)) {
    const jid = e.attrs.jid === undefined ? undefined : normalizeJid(e.attrs.jid);
    const value = e.attrs[attr] as T | undefined;
    if (jid === undefined || value === undefined || !allowed.includes(value)) {
      return { error: refusal("bad-request", undefined, `Bad ${child} entry`) };
    }
    out.set(jid, value);
  }
  return [...out];
}

/**
 * XEP-0060 §8.8: the owner's `<subscriptions node/>`: every subscription (get), or changes to
 * them (set): `none` removes one, and whoever's state changes is told (§8.8.4).
 */
export function manageSubscriptions(
  data: PubsubData,
  el: Element,
  set: boolean,
  who: Requester,
  ctx: ServiceCtx,
): Outcome {
  const found = nodeFor(data, el);
  if ("error" in found) return found;
  const { name, node } = found;
  if (!isOwner(who)) return { error: FORBIDDEN };
  if (!set) {
    const subs = Object.entries(node.subscriptions ?? {}).map(([jid, s]) =>
      elem("subscription", { jid, subscription: s.state })
    );
    return {
      result: pubsubResult([elem("subscriptions", { node: name }, subs)], NS_PUBSUB_OWNER),
    };
  }
  const entries = entriesOf(el, "subscription", "subscription", STATES);
  if ("error" in entries) return entries;
  let changed = node;
  const notifications: Notification[] = [];
  for (const [jid, state] of entries) {
    const before = subscriptionOf(changed, jid);
    if ((before?.state ?? "none") === state) continue;
    changed = withSubscription(
      changed,
      jid,
      state === "none" ? undefined : { ...before, state },
    );
    notifications.push({ to: jid, event: subscriptionEvent(name, jid, state) });
  }
  if (
    ctx.limits.subscriptions !== undefined &&
    Object.keys(changed.subscriptions ?? {}).length >
      Math.max(ctx.limits.subscriptions, Object.keys(node.subscriptions ?? {}).length)
  ) {
    return { error: refusal("resource-constraint", undefined, "Too many subscriptions") };
  }
  const next = withNode(data, name, changed);
  if (overQuota(data, next, ctx.limits)) {
    return { error: refusal("resource-constraint", undefined, ctx.quotaText) };
  }
  return { data: next, notifications };
}

/**
 * XEP-0060 §8.9: the owner's `<affiliations node/>`: every affiliation (get), or changes to them
 * (set): `none` removes one, an outcast loses its subscriptions (§4.1), and a node keeps at
 * least one owner (else `not-acceptable`, as §8.9.2.4 allows).
 */
export function manageAffiliations(
  data: PubsubData,
  el: Element,
  set: boolean,
  who: Requester,
  ctx: ServiceCtx,
): Outcome {
  const found = nodeFor(data, el);
  if ("error" in found) return found;
  const { name, node } = found;
  if (!isOwner(who)) return { error: FORBIDDEN };
  if (!set) {
    const affs = Object.entries(node.affiliations ?? {}).map(([jid, affiliation]) =>
      elem("affiliation", { jid, affiliation })
    );
    return {
      result: pubsubResult([elem("affiliations", { node: name }, affs)], NS_PUBSUB_OWNER),
    };
  }
  const entries = entriesOf(el, "affiliation", "affiliation", AFFILIATIONS);
  if ("error" in entries) return entries;
  let affiliations = node.affiliations ?? {};
  let subscriptions = node.subscriptions ?? {};
  for (const [full, affiliation] of entries) {
    // Affiliations are of bare JIDs (§4.1).
    const jid = bareJidOf(full) ?? full;
    affiliations = withEntry(affiliations, jid, affiliation === "none" ? undefined : affiliation);
    if (affiliation === "outcast") {
      subscriptions = Object.fromEntries(
        Object.entries(subscriptions).filter(([s]) => bareJidOf(s) !== jid),
      );
    }
  }
  if (!Object.values(affiliations).includes("owner")) {
    return { error: refusal("not-acceptable", undefined, "A node keeps at least one owner") };
  }
  const count = Object.keys(affiliations).length;
  if (
    ctx.limits.affiliations !== undefined &&
    count > Math.max(ctx.limits.affiliations, Object.keys(node.affiliations ?? {}).length)
  ) {
    return { error: refusal("resource-constraint", undefined, "Too many affiliations") };
  }
  const next = withNode(data, name, { ...node, affiliations, subscriptions });
  if (overQuota(data, next, ctx.limits)) {
    return { error: refusal("resource-constraint", undefined, ctx.quotaText) };
  }
  return { data: next };
}

/**
 * XEP-0060 §8.6.2: an owner's answer to a subscription request, the submitted
 * `pubsub#subscribe_authorization` form: `pubsub#allow` true subscribes the pending JID, false
 * drops the request; either way the JID is told. Undefined when the form is not such an answer,
 * the sender does not own the node, or nothing is pending (a message gets no error back).
 */
export function authorizationAnswer(
  data: PubsubData,
  x: Element,
  who: (node: PubsubNode) => Requester,
): { readonly data: PubsubData; readonly notifications: readonly Notification[] } | undefined {
  const form = parseForm(x);
  if (form.formType !== FORM_SUBSCRIBE_AUTHORIZATION || form.type !== "submit") return undefined;
  const name = form.byVar.get("pubsub#node")?.values[0];
  const raw = form.byVar.get("pubsub#subscriber_jid")?.values[0];
  const allow = parseBool(form.byVar.get("pubsub#allow")?.values[0] ?? "");
  const jid = raw === undefined ? undefined : normalizeJid(raw);
  if (name === undefined || jid === undefined || allow === undefined) return undefined;
  const node = nodeOf(data, name);
  if (node === undefined || !isOwner(who(node))) return undefined;
  const sub = subscriptionOf(node, jid);
  if (sub?.state !== "pending") return undefined;
  const changed = withSubscription(node, jid, allow ? { ...sub, state: "subscribed" } : undefined);
  return {
    data: withNode(data, name, changed),
    notifications: [{
      to: jid,
      event: subscriptionEvent(name, jid, allow ? "subscribed" : "none"),
    }],
  };
}
