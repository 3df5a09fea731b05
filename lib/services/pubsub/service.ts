/**
 * A XEP-0060 publish-subscribe service on its own domain (`pubsub.<host>`), as a pure reducer:
 * `reducePubsub(state, stanza, ctx)` takes a stanza addressed to the service (its `from`
 * stamped by the router with the sender's full JID) and returns the new state and what to do:
 * stanzas to route (replies, notifications, approval requests, all from the service's domain),
 * node records to store, or a roster to load first. The operations are those of the engine of
 * `lib/pubsub/` (shared with PEP), switched to a service's behaviour: instant nodes,
 * affiliations and subscriptions, every access and publish model, publishers exposed on items.
 *
 * Service admins (bare JIDs from the configuration) own every node. Who may create nodes is
 * the `create` policy: admins only by default, as Prosody (the conformance scripts expect a
 * plain local user to be refused).
 *
 * The `presence` and `roster` access models ask a node owner's roster. The reducer reads
 * rosters through `ctx.rosterOf`, which answers only from what the wiring holds; when a local
 * owner's roster is not held, the reducer changes nothing and returns a `need-roster` output
 * with the stanza: the wiring loads the rosters and reduces the same stanza again.
 * @module
 */
import { childElements, elem, type Element, stanza } from "../../xml/element.ts";
import { errorReply, iqResult } from "../../xmpp/errors.ts";
import { bareJidOf } from "../../xmpp/jid.ts";
import {
  NS_DATA,
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_PUBSUB,
  NS_PUBSUB_EVENT,
  NS_PUBSUB_OWNER,
} from "../../xmpp/namespaces.ts";
import { EMPTY_ROSTER, type Roster } from "../../core/session.ts";
import { mayAccess, type Requester } from "../../pubsub/access.ts";
import { errorStanza, refusal } from "../../pubsub/errors.ts";
import {
  configure,
  create,
  deleteNode,
  items as retrieveItems,
  type Notification,
  type Outcome,
  publish,
  purge,
  retract,
  type ServiceCtx,
} from "../../pubsub/engine.ts";
import {
  dataBytes,
  type NodeConfig,
  nodeOf,
  type PubsubData,
  pubsubData,
  type PubsubLimits,
  type PubsubNode,
} from "../../pubsub/node.ts";
import {
  affiliationWith,
  authorizationAnswer,
  isSubscribed,
  manageAffiliations,
  manageSubscriptions,
  ownAffiliations,
  ownersOf,
  ownSubscriptions,
  subscribe,
  subscribersOf,
  subscriptionOptions,
  unsubscribe,
} from "../../pubsub/subscriptions.ts";
import { configForm, parseNodeConfig } from "../../pubsub/config.ts";
import { SERVICE_DEFAULT_CONFIG } from "./config.ts";

// --- state, context, outputs -----------------------------------------------------------------

/**
 * The service's data: its nodes (configuration, items, affiliations, subscriptions) in the
 * engine's shape, and the storage key of each node. Each node is stored as its own record
 * ({@link StoredNode}) under a key the service made when the node was created (never the
 * peer-chosen node name, which may not fit a file name).
 */
export interface ServiceState {
  readonly data: PubsubData;
  /** Node name → storage key. */
  readonly keys: ReadonlyMap<string, string>;
}

/** One node as stored: its name and its record. */
export interface StoredNode {
  readonly name: string;
  readonly node: PubsubNode;
}

/** A service without nodes. */
export const EMPTY_SERVICE: ServiceState = { data: { nodes: {}, bytes: 0 }, keys: new Map() };

/** The bounds of a service: the engine's, every one set. */
export type ServiceLimits = Required<PubsubLimits>;

/**
 * The defaults of the service's bounds (for `[limits]` keys the wiring may add): 1000 nodes
 * of at most 256 items (Prosody's `max_items` bound, which the configuration form shows) of
 * 128 KiB, 64 MiB in all, 1000 subscriptions and affiliations per node, and 10 subscriptions
 * per bare JID per node (one per resource, bounded so that one user cannot fill a node).
 */
export const DEFAULT_SERVICE_LIMITS: ServiceLimits = {
  nodes: 1000,
  items: 256,
  itemBytes: 128 * 1024,
  bytes: 64 * 1024 * 1024,
  subscriptions: 1000,
  subscriptionsPerJid: 10,
  affiliations: 1000,
};

/** Who may create nodes: service admins, also local users, or anyone. */
export type CreatePolicy = "admins" | "local" | "anyone";

/** What the service reads; nothing here does IO. */
export interface PubsubServiceCtx {
  /** The service's domain (`pubsub.<host>`): the `from` of everything it sends. */
  readonly domain: string;
  /** A fresh unique id (instant node names, item ids, message ids, storage keys). */
  readonly newId: () => string;
  /** Bare JIDs that may do everything (the configuration's `admins`). */
  readonly admins: ReadonlySet<string>;
  readonly limits: ServiceLimits;
  readonly create: CreatePolicy;
  /** True for a bare JID of one of our hosts (a local user, whose roster we can read). */
  readonly isLocal: (bare: string) => boolean;
  /**
   * A local user's roster, if the wiring holds it (undefined: not loaded, which makes the
   * reducer ask for it). A user without a roster (or an account) has the empty roster.
   */
  readonly rosterOf: (bare: string) => Roster | undefined;
}

/** What the wiring does for the service. */
export type PubsubOutput =
  /** Send a stanza (from the service's domain) through the router. */
  | { readonly kind: "route"; readonly stanza: Element }
  /** Persist a node's record under `key`; undefined deletes it. */
  | { readonly kind: "store"; readonly key: string; readonly value: StoredNode | undefined }
  /**
   * Load the rosters of these local users, then reduce `stanza` again with `rosterOf`
   * answering for them. Nothing else was done.
   */
  | { readonly kind: "need-roster"; readonly owners: readonly string[]; readonly stanza: Element };

/** One step of the service. */
export type PubsubStep = readonly [ServiceState, readonly PubsubOutput[]];

/**
 * The state from the stored records (what `store` outputs wrote, by key). A record that is not
 * a node is skipped; the byte count is measured once here.
 */
export function loadService(records: Iterable<readonly [string, unknown]>): ServiceState {
  const nodes: [string, PubsubNode][] = [];
  const keys = new Map<string, string>();
  for (const [key, value] of records) {
    if (typeof value !== "object" || value === null) continue;
    const { name, node } = value as { name?: unknown; node?: unknown };
    if (typeof name !== "string" || typeof node !== "object" || node === null) continue;
    if (keys.has(name)) continue;
    nodes.push([name, node as PubsubNode]);
    keys.set(name, key);
  }
  // No count is stored with the nodes: measured once here.
  const data = pubsubData({ nodes: Object.fromEntries(nodes) });
  return { data: { nodes: data.nodes, bytes: dataBytes(data) }, keys };
}

// --- who asks --------------------------------------------------------------------------------

/** A requester's view of a node, or the local owners whose rosters it needs first. */
type Who = { readonly who: Requester } | { readonly needs: readonly string[] };

/**
 * What the access rules know of `from` on `node`: admin or affiliation, subscription, and (when
 * `withRoster` and the node's access model reads rosters) the owners' roster entries for it.
 */
function whoOn(
  node: PubsubNode | undefined,
  from: string,
  ctx: PubsubServiceCtx,
  withRoster: boolean,
): Who {
  const bare = bareJidOf(from) ?? from;
  const affiliation = node === undefined ? "none" : affiliationWith(node, bare);
  const base: Requester = {
    owner: ctx.admins.has(bare) || affiliation === "owner",
    presenceSubscribed: false,
    affiliation,
    subscribed: node !== undefined && isSubscribed(node, bare),
  };
  const model = node?.config.accessModel;
  if (!withRoster || node === undefined || (model !== "presence" && model !== "roster")) {
    return { who: base };
  }
  if (base.owner || affiliation !== "none") return { who: base };
  let presenceSubscribed = false;
  const rosterGroups: string[] = [];
  const needs: string[] = [];
  for (const owner of ownersOf(node).filter(ctx.isLocal)) {
    const roster = ctx.rosterOf(owner);
    if (roster === undefined) {
      needs.push(owner);
      continue;
    }
    const item = Object.hasOwn(roster.items, bare) ? roster.items[bare] : undefined;
    if (item === undefined) continue;
    if (item.subscription === "from" || item.subscription === "both") presenceSubscribed = true;
    rosterGroups.push(...item.groups);
  }
  return needs.length > 0 ? { needs } : { who: { ...base, presenceSubscribed, rosterGroups } };
}

/** The engine's view of the service, with node `name`'s subscribers from `data`. */
function engineCtx(data: PubsubData, ctx: PubsubServiceCtx): ServiceCtx {
  return {
    limits: ctx.limits,
    defaultConfig: SERVICE_DEFAULT_CONFIG,
    autoCreate: false,
    newId: ctx.newId,
    subscribers: (name, config) => {
      const node = nodeOf(data, name);
      return node === undefined || config.deliverNotifications === false ? [] : subscribersOf(node);
    },
    quotaText: `The pubsub service holds at most ${ctx.limits.bytes} bytes`,
    parseConfig: parseNodeConfig,
    exposePublisher: true,
    instantNodes: true,
    deleteRedirect: true,
  };
}

// --- outputs ---------------------------------------------------------------------------------

function route(s: Element): PubsubOutput {
  return { kind: "route", stanza: s };
}

/**
 * A notification as a message from the service (XEP-0060 §7.1.2.1): of the node's
 * `notification_type`, its items without payloads when `deliver_payloads` is off.
 */
function notificationMessage(
  n: Notification,
  config: NodeConfig | undefined,
  ctx: PubsubServiceCtx,
): Element {
  const payload = config?.deliverPayloads === false ? withoutPayloads(n.event) : n.event;
  return stanza("message", {
    from: ctx.domain,
    to: n.to,
    type: config?.notificationType ?? "headline",
    id: ctx.newId(),
  }, [payload]);
}

/** An `<event/>` whose `<items/>` carry item ids (and publishers) only. */
function withoutPayloads(event: Element): Element {
  if (event.xmlns !== NS_PUBSUB_EVENT) return event;
  return elem(
    "event",
    { xmlns: NS_PUBSUB_EVENT },
    childElements(event).map((items) =>
      items.name !== "items" ? items : elem(
        "items",
        items.attrs,
        childElements(items).map((i) => i.name === "item" ? elem("item", i.attrs) : i),
      )
    ),
  );
}

/** A request for an owner's answer (§8.6.1): a normal message carrying the form. */
function askMessage(n: Notification, ctx: PubsubServiceCtx): Element {
  return stanza("message", { from: ctx.domain, to: n.to, id: ctx.newId() }, [n.event]);
}

/** The records to store for what changed between `before` and `after`, and the new keys. */
function stores(
  state: ServiceState,
  after: PubsubData,
  ctx: PubsubServiceCtx,
): [ReadonlyMap<string, string>, PubsubOutput[]] {
  const before = state.data;
  const out: PubsubOutput[] = [];
  // Copied only when a node comes or goes (the state's map is never changed in place).
  let keys: Map<string, string> | undefined;
  // Nodes are kept by reference: only those that changed differ (O(nodes) reference checks).
  for (const [name, node] of Object.entries(after.nodes)) {
    if (nodeOf(before, name) === node) continue;
    let key = (keys ?? state.keys).get(name);
    if (key === undefined) {
      key = ctx.newId();
      (keys ??= new Map(state.keys)).set(name, key);
    }
    out.push({ kind: "store", key, value: { name, node } });
  }
  for (const name of Object.keys(before.nodes)) {
    if (nodeOf(after, name) !== undefined) continue;
    const key = (keys ?? state.keys).get(name);
    if (key === undefined) continue;
    (keys ??= new Map(state.keys)).delete(name);
    out.push({ kind: "store", key, value: undefined });
  }
  return [keys ?? state.keys, out];
}

/**
 * The step of an engine outcome for `iq`: the data stored, notifications (about `name`, whose
 * configuration says how they go out) routed ahead of the result, or after it (`resultFirst`:
 * the last item of a new subscription follows the subscription, §6.1.7).
 */
function answer(
  state: ServiceState,
  iq: Element,
  outcome: Outcome & { readonly asks?: readonly Notification[] },
  ctx: PubsubServiceCtx,
  config: NodeConfig | undefined,
  resultFirst = false,
): PubsubStep {
  if ("error" in outcome) return [state, [route(errorStanza(iq, outcome.error))]];
  let next = state;
  const out: PubsubOutput[] = [];
  if (outcome.data !== undefined) {
    const [keys, stored] = stores(state, outcome.data, ctx);
    next = { data: outcome.data, keys };
    out.push(...stored);
  }
  const notes = (outcome.notifications ?? []).map((n) =>
    route(notificationMessage(n, config, ctx))
  );
  const asks = (outcome.asks ?? []).map((n) => route(askMessage(n, ctx)));
  const reply = route(iqResult(iq, outcome.result));
  out.push(...(resultFirst ? [reply, ...notes] : [...notes, reply]), ...asks);
  return [next, out];
}

function fail(state: ServiceState, iq: Element, condition: Parameters<typeof refusal>[0]) {
  return [state, [route(errorReply(iq, condition))]] as const;
}

// --- the reducer -----------------------------------------------------------------------------

/**
 * Reduces one stanza addressed to the service (`to` its domain, `from` the sender's full JID):
 * iqs get their answer; a message may be an owner's answer to a subscription request;
 * everything else is dropped. Errors and results addressed to the service are never answered.
 */
export function reducePubsub(
  state: ServiceState,
  s: Element,
  ctx: PubsubServiceCtx,
): PubsubStep {
  const from = s.attrs.from;
  if (from === undefined || s.attrs.type === "error") return [state, []];
  if (s.name === "message") return onMessage(state, s, from, ctx);
  if (s.name !== "iq" || (s.attrs.type !== "get" && s.attrs.type !== "set")) return [state, []];
  const payloads = childElements(s);
  if (payloads.length !== 1) return fail(state, s, "bad-request");
  const payload = payloads[0];
  const set = s.attrs.type === "set";
  if (payload.name === "query" && !set) {
    if (payload.xmlns === NS_DISCO_INFO) return discoInfo(state, s, payload);
    if (payload.xmlns === NS_DISCO_ITEMS) return discoItems(state, s, payload, from, ctx);
  }
  if (payload.name === "pubsub" && payload.xmlns === NS_PUBSUB) {
    return onPubsub(state, s, payload, from, set, ctx);
  }
  if (payload.name === "pubsub" && payload.xmlns === NS_PUBSUB_OWNER) {
    return onOwner(state, s, payload, from, set, ctx);
  }
  return fail(state, s, "service-unavailable");
}

function unsupported(state: ServiceState, iq: Element, feature: string): PubsubStep {
  return [state, [
    route(
      errorStanza(iq, { condition: "feature-not-implemented", pubsub: "unsupported", feature }),
    ),
  ]];
}

/** Who may create nodes under the `create` policy. */
function mayCreate(bare: string, ctx: PubsubServiceCtx): boolean {
  return ctx.admins.has(bare) || ctx.create === "anyone" ||
    (ctx.create === "local" && ctx.isLocal(bare));
}

/** `<pubsub xmlns="http://jabber.org/protocol/pubsub"/>` (XEP-0060 §5 to §7). */
function onPubsub(
  state: ServiceState,
  iq: Element,
  payload: Element,
  from: string,
  set: boolean,
  ctx: PubsubServiceCtx,
): PubsubStep {
  const kids = childElements(payload, NS_PUBSUB);
  const first = kids[0];
  if (first === undefined) return fail(state, iq, "bad-request");
  const { data } = state;
  const svc = engineCtx(data, ctx);
  const name = first.attrs.node;
  const node = name === undefined ? undefined : nodeOf(data, name);
  const sibling = (n: string) => kids.find((k) => k.name === n);
  const plain = (): Requester => (whoOn(node, from, ctx, false) as { who: Requester }).who;
  switch (`${set ? "set" : "get"} ${first.name}`) {
    case "set create": {
      const bare = bareJidOf(from) ?? from;
      const who: Requester = { owner: mayCreate(bare, ctx), presenceSubscribed: false };
      const outcome = create(data, first, sibling("configure"), who, svc, bare);
      return answer(state, iq, outcome, ctx, undefined);
    }
    case "set publish": {
      const outcome = publish(data, first, sibling("publish-options"), from, plain(), svc);
      return answer(state, iq, outcome, ctx, node?.config);
    }
    case "set retract":
      return answer(state, iq, retract(data, first, plain(), svc), ctx, node?.config);
    case "set subscribe": {
      const w = whoOn(node, from, ctx, true);
      if ("needs" in w) return [state, [{ kind: "need-roster", owners: w.needs, stanza: iq }]];
      const outcome = subscribe(data, first, sibling("options"), from, w.who, svc);
      return answer(state, iq, outcome, ctx, node?.config, true);
    }
    case "set unsubscribe":
      return answer(state, iq, unsubscribe(data, first, from, plain()), ctx, undefined);
    case "get options":
    case "set options":
      return answer(
        state,
        iq,
        subscriptionOptions(data, first, set, from, plain()),
        ctx,
        undefined,
      );
    case "get items": {
      const w = whoOn(node, from, ctx, true);
      if ("needs" in w) return [state, [{ kind: "need-roster", owners: w.needs, stanza: iq }]];
      return answer(state, iq, retrieveItems(data, first, w.who, true), ctx, undefined);
    }
    case "get subscriptions":
      return answer(state, iq, ownSubscriptions(data, first, from), ctx, undefined);
    case "get affiliations":
      return answer(state, iq, ownAffiliations(data, first, from), ctx, undefined);
  }
  return unsupported(state, iq, first.name);
}

/** `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"/>` (XEP-0060 §8). */
function onOwner(
  state: ServiceState,
  iq: Element,
  payload: Element,
  from: string,
  set: boolean,
  ctx: PubsubServiceCtx,
): PubsubStep {
  const first = childElements(payload, NS_PUBSUB_OWNER)[0];
  if (first === undefined) return fail(state, iq, "bad-request");
  const { data } = state;
  const svc = engineCtx(data, ctx);
  const name = first.attrs.node;
  const node = name === undefined ? undefined : nodeOf(data, name);
  const who = (whoOn(node, from, ctx, false) as { who: Requester }).who;
  switch (`${set ? "set" : "get"} ${first.name}`) {
    case "get configure":
      return answer(state, iq, configurationOf(data, first, who, ctx), ctx, undefined);
    case "set configure":
      return answer(state, iq, configure(data, first, who, svc), ctx, node?.config);
    case "get default":
      return answer(
        state,
        iq,
        {
          result: elem("pubsub", { xmlns: NS_PUBSUB_OWNER }, [
            elem("default", {}, [configForm(SERVICE_DEFAULT_CONFIG, ctx.limits)]),
          ]),
        },
        ctx,
        undefined,
      );
    case "set delete":
      return answer(state, iq, deleteNode(data, first, who, svc), ctx, node?.config);
    case "set purge":
      return answer(state, iq, purge(data, first, who, svc), ctx, node?.config);
    case "get subscriptions":
    case "set subscriptions":
      return answer(state, iq, manageSubscriptions(data, first, set, who, svc), ctx, undefined);
    case "get affiliations":
    case "set affiliations":
      return answer(state, iq, manageAffiliations(data, first, set, who, svc), ctx, undefined);
  }
  return unsupported(state, iq, first.name);
}

/** XEP-0060 §8.2.1: the service's configuration form of a node, for its owners. */
function configurationOf(
  data: PubsubData,
  configureEl: Element,
  who: Requester,
  ctx: PubsubServiceCtx,
): Outcome {
  const name = configureEl.attrs.node;
  if (name === undefined) return { error: refusal("bad-request", "nodeid-required") };
  const node = nodeOf(data, name);
  if (node === undefined) return { error: refusal("item-not-found") };
  if (!who.owner) return { error: refusal("forbidden") };
  return {
    result: elem("pubsub", { xmlns: NS_PUBSUB_OWNER }, [
      elem("configure", { node: name }, [configForm(node.config, ctx.limits)]),
    ]),
  };
}

/** A message to the service: an owner's answer to a subscription request (§8.6.2), or nothing. */
function onMessage(
  state: ServiceState,
  msg: Element,
  from: string,
  ctx: PubsubServiceCtx,
): PubsubStep {
  const x = childElements(msg, NS_DATA).find((c) => c.name === "x");
  if (x === undefined) return [state, []];
  const done = authorizationAnswer(
    state.data,
    x,
    (node) => (whoOn(node, from, ctx, false) as { who: Requester }).who,
  );
  if (done === undefined) return [state, []];
  const [keys, stored] = stores(state, done.data, ctx);
  return [
    { data: done.data, keys },
    [...stored, ...done.notifications.map((n) => route(notificationMessage(n, undefined, ctx)))],
  ];
}

// --- service discovery -----------------------------------------------------------------------

/** The features the service announces (XEP-0060 §10). */
export const SERVICE_FEATURES: readonly string[] = [
  NS_DISCO_INFO,
  NS_DISCO_ITEMS,
  NS_PUBSUB,
  ...[
    "access-authorize",
    "access-open",
    "access-presence",
    "access-roster",
    "access-whitelist",
    "config-node",
    "create-and-configure",
    "create-nodes",
    "delete-items",
    "delete-nodes",
    "instant-nodes",
    "item-ids",
    "last-published",
    "manage-subscriptions",
    "member-affiliation",
    "meta-data",
    "modify-affiliations",
    "multi-items",
    "outcast-affiliation",
    "persistent-items",
    "publish",
    "publish-only-affiliation",
    "publish-options",
    "publisher-affiliation",
    "purge-nodes",
    "retract-items",
    "retrieve-affiliations",
    "retrieve-default",
    "retrieve-items",
    "retrieve-subscriptions",
    "subscribe",
    "subscription-notifications",
    "subscription-options",
  ].map((f) => `${NS_PUBSUB}#${f}`),
];

function feature(v: string): Element {
  return elem("feature", { var: v });
}

/** XEP-0060 §5.1, §5.3, §5.4: the service's identity and features, or a node's meta-data. */
function discoInfo(
  state: ServiceState,
  iq: Element,
  query: Element,
): PubsubStep {
  const name = query.attrs.node;
  if (name === undefined) {
    return [state, [route(iqResult(
      iq,
      elem("query", { xmlns: NS_DISCO_INFO }, [
        elem("identity", { category: "pubsub", type: "service", name: "Publish-Subscribe" }),
        ...SERVICE_FEATURES.map(feature),
      ]),
    ))]];
  }
  const node = nodeOf(state.data, name);
  if (node === undefined) return fail(state, iq, "item-not-found");
  const c = node.config;
  const field = (v: string, values: readonly string[], type?: string) =>
    elem("field", { var: v, type }, values.map((x) => elem("value", {}, [x])));
  const meta = elem("x", { xmlns: NS_DATA, type: "result" }, [
    field("FORM_TYPE", ["http://jabber.org/protocol/pubsub#meta-data"], "hidden"),
    field("pubsub#title", c.title === undefined ? [] : [c.title]),
    field("pubsub#description", c.description === undefined ? [] : [c.description]),
    field("pubsub#type", c.type === undefined ? [] : [c.type]),
    field("pubsub#access_model", [c.accessModel]),
    field("pubsub#publish_model", [c.publishModel ?? "publishers"]),
    field("pubsub#max_items", [String(c.maxItems)]),
    field("pubsub#owner", ownersOf(node), "jid-multi"),
  ]);
  return [state, [route(iqResult(
    iq,
    elem("query", { xmlns: NS_DISCO_INFO, node: name }, [
      elem("identity", { category: "pubsub", type: "leaf" }),
      feature(NS_PUBSUB),
      meta,
    ]),
  ))]];
}

/**
 * XEP-0060 §5.2, §5.5: the nodes (those the requester may see with what is known now: a
 * listing loads no roster), or a node's items by id (access checked as for retrieval).
 */
function discoItems(
  state: ServiceState,
  iq: Element,
  query: Element,
  from: string,
  ctx: PubsubServiceCtx,
): PubsubStep {
  const name = query.attrs.node;
  const result = (node: string | undefined, kids: Element[]) =>
    [state, [route(iqResult(iq, elem("query", { xmlns: NS_DISCO_ITEMS, node }, kids)))]] as const;
  if (name === undefined) {
    const kids: Element[] = [];
    for (const [n, node] of Object.entries(state.data.nodes)) {
      const w = whoOn(
        node,
        from,
        { ...ctx, rosterOf: (o) => ctx.rosterOf(o) ?? EMPTY_ROSTER },
        true,
      );
      if (!("who" in w)) continue;
      if (!mayAccess(node.config.accessModel, w.who, node.config.rosterGroupsAllowed)) continue;
      kids.push(elem("item", { jid: ctx.domain, node: n, name: node.config.title }));
    }
    return result(undefined, kids);
  }
  const node = nodeOf(state.data, name);
  if (node === undefined) return fail(state, iq, "item-not-found");
  const w = whoOn(node, from, ctx, true);
  if ("needs" in w) return [state, [{ kind: "need-roster", owners: w.needs, stanza: iq }]];
  if (!mayAccess(node.config.accessModel, w.who, node.config.rosterGroupsAllowed)) {
    return [state, [route(errorStanza(iq, refusal("forbidden")))]];
  }
  return result(name, node.items.map((i) => elem("item", { jid: ctx.domain, name: i.id })));
}
