/**
 * The XEP-0060 engine: each operation is a pure function from the service's data, the request
 * element and who asks, to an {@link Outcome}: the new data, the result payload, and the
 * notifications to send as data (which JID gets which `<event/>`). It builds no stanza around
 * them and stores nothing: the adapter (PEP on accounts, a pubsub service on its own domain)
 * wraps results in iq replies, notifications in messages from its JID, and stores the data.
 *
 * Who may do what follows the requester's affiliation, the node's publish model and its access
 * model (`access.ts`); PEP's requester is the owner or nobody. What a pubsub service does beyond
 * PEP is switched on by the optional fields of {@link ServiceCtx}: absent, PEP's behaviour.
 * @module
 */
import { childElements, elem, type Element } from "../xml/element.ts";
import { type DataForm, findForm, parseForm } from "../xmpp/forms.ts";
import { NS_PUBSUB, NS_PUBSUB_EVENT, NS_PUBSUB_OWNER } from "../xmpp/namespaces.ts";
import {
  accessRefusal,
  isOwner,
  mayAccess,
  mayPublish,
  mayRetract,
  type Requester,
} from "./access.ts";
import { type PubsubError, refusal } from "./errors.ts";
import { configForm, type ConfigParse, parsePepConfig } from "./config.ts";
import {
  CONFIG_FIELDS,
  FORM_PUBLISH_OPTIONS,
  itemElement,
  itemLimit,
  itemsAfterPublish,
  type NodeConfig,
  nodeCount,
  nodeOf,
  overQuota,
  parseBool,
  payloadBytes,
  type PubsubData,
  type PubsubItem,
  type PubsubLimits,
  type PubsubNode,
  unmetPrecondition,
  withNode,
} from "./node.ts";

/** What the engine needs from the service it runs for. */
export interface ServiceCtx {
  readonly limits: PubsubLimits;
  /** The configuration of a node created without a form (and by auto-create). */
  readonly defaultConfig: NodeConfig;
  /** Publishing to a missing node creates it (XEP-0060 §7.1.4; XEP-0163 §3 makes it the rule). */
  readonly autoCreate: boolean;
  /** A fresh unique id (item ids the publisher left out). */
  readonly newId: () => string;
  /**
   * Who hears about an event of node `name`, in the order notifications go out. Called only
   * when there is something to tell.
   */
  readonly subscribers: (name: string, config: NodeConfig) => readonly string[];
  /** The text of the refusal of a change past `limits.bytes`. */
  readonly quotaText: string;
  /**
   * Reads a node configuration or publish-options form; absent: `parsePepConfig` (the values
   * PEP serves). A pubsub service reads every value (`parseNodeConfig`).
   */
  readonly parseConfig?: (form: DataForm, limits: PubsubLimits) => ConfigParse;
  /** Items sent out name their publisher whatever `itemreply` says (Prosody's option). */
  readonly exposePublisher?: boolean;
  /** `<create/>` without a node name makes an instant node named by `newId` (§8.1.2). */
  readonly instantNodes?: boolean;
  /** A `<redirect uri/>` in `<delete/>` is passed on in the notification (§8.4.1). */
  readonly deleteRedirect?: boolean;
}

/** One notification: `event` (a `pubsub#event` `<event/>`) goes to `to`. */
export interface Notification {
  readonly to: string;
  readonly event: Element;
}

/** What an accepted operation does. */
export interface Done {
  /** The service's data after it; absent when nothing changed. */
  readonly data?: PubsubData;
  /** The iq result's payload; absent for an empty result. */
  readonly result?: Element;
  /** The notifications to send; present (maybe empty) for operations that notify. */
  readonly notifications?: readonly Notification[];
}

/** The outcome of an operation: done, or refused (nothing changes). */
export type Outcome = Done | { readonly error: PubsubError };

const FORBIDDEN = refusal("forbidden");
const NOT_FOUND = refusal("item-not-found");
const NODEID_REQUIRED = refusal("bad-request", "nodeid-required");
const TOO_MANY_NODES = refusal("resource-constraint", undefined, "Too many nodes");

function parseConfigForm(form: DataForm, ctx: ServiceCtx): ConfigParse {
  return (ctx.parseConfig ?? parsePepConfig)(form, ctx.limits);
}

function quotaError(ctx: ServiceCtx): PubsubError {
  return refusal("resource-constraint", undefined, ctx.quotaText);
}

/** XEP-0060 §7.1.3.4: an item larger than the service takes. */
function payloadTooBig(limits: PubsubLimits): PubsubError {
  return refusal(
    "not-acceptable",
    "payload-too-big",
    `An item's payload is limited to ${limits.itemBytes} bytes`,
  );
}

/** The `<pubsub/>` payload of a result. */
function pubsubResult(children: readonly Element[], xmlns = NS_PUBSUB): Element {
  return elem("pubsub", { xmlns }, children);
}

/** The `<event/>` of a notification (XEP-0060 §7.1.2.1) carrying `payload`. */
export function eventOf(payload: Element): Element {
  return elem("event", { xmlns: NS_PUBSUB_EVENT }, [payload]);
}

/** The notifications of `payload` about node `name` to its subscribers. */
function notifyAll(
  name: string,
  config: NodeConfig,
  payload: Element,
  ctx: ServiceCtx,
): Notification[] {
  const event = eventOf(payload);
  return ctx.subscribers(name, config).map((to) => ({ to, event }));
}

/** The `<items/>` event payload of one published item (`expose`: see `itemElement`). */
export function itemsEvent(
  name: string,
  item: PubsubItem,
  config: NodeConfig,
  expose = false,
): Element {
  return elem("items", { node: name }, [itemElement(item, config, expose)]);
}

/** The `<items/>` event payload of retracted items (XEP-0060 §7.2.2.1). */
export function retractEvent(name: string, ids: readonly string[]): Element {
  return elem("items", { node: name }, ids.map((id) => elem("retract", { id })));
}

/** The ids of the `<item id/>` children of a request, once each, in order. */
function itemIds(el: Element): string[] {
  return [
    ...new Set(
      childElements(el, NS_PUBSUB)
        .filter((i) => i.name === "item" && i.attrs.id !== undefined)
        .map((i) => i.attrs.id),
    ),
  ];
}

/**
 * XEP-0060 §7.1: `<publish/>` with one item, and `<publish-options/>` (XEP-0060 §7.1.5) that
 * configure an auto-created node and are preconditions on an existing one. `publisher` is the
 * full JID that publishes, kept on the item.
 */
export function publish(
  data: PubsubData,
  publishEl: Element,
  options: Element | undefined,
  publisher: string,
  who: Requester,
  ctx: ServiceCtx,
): Outcome {
  const name = publishEl.attrs.node;
  // Refused before anything else is looked at (as PEP always has); a missing node's rights are
  // those the default configuration gives.
  const rights = (name === undefined ? undefined : nodeOf(data, name)?.config) ??
    ctx.defaultConfig;
  if (!mayPublish(rights, who)) return { error: FORBIDDEN };
  if (name === undefined || name === "") return { error: NODEID_REQUIRED };
  const items = childElements(publishEl, NS_PUBSUB).filter((i) => i.name === "item");
  if (items.length !== 1) return { error: refusal("bad-request", "item-required") };
  const payloads = childElements(items[0]);
  if (payloads.length !== 1) return { error: refusal("bad-request", "invalid-payload") };
  if (payloadBytes(payloads[0]) > ctx.limits.itemBytes) {
    return { error: payloadTooBig(ctx.limits) };
  }
  let wanted: Partial<NodeConfig> = {};
  const x = options === undefined ? undefined : findForm(options);
  if (x !== undefined) {
    const form = parseForm(x);
    if (form.formType !== undefined && form.formType !== FORM_PUBLISH_OPTIONS) {
      return { error: refusal("bad-request", "invalid-options") };
    }
    const parsed = parseConfigForm(form, ctx);
    if ("error" in parsed) {
      return { error: refusal("bad-request", "invalid-options", parsed.error) };
    }
    wanted = parsed.changes;
  }
  let node = nodeOf(data, name);
  if (node === undefined) {
    if (!ctx.autoCreate) return { error: NOT_FOUND };
    if (nodeCount(data) >= ctx.limits.nodes) return { error: TOO_MANY_NODES };
    // The publish-options configure the node it creates.
    node = { config: { ...ctx.defaultConfig, ...wanted }, items: [] };
  } else {
    const unmet = unmetPrecondition(node.config, wanted);
    if (unmet !== undefined) {
      // The text names the field, as Prosody's, so that a client knows what to change.
      const text = `Field does not match: ${CONFIG_FIELDS[unmet]}`;
      return { error: refusal("conflict", "precondition-not-met", text) };
    }
  }
  const id = items[0].attrs.id ?? ctx.newId();
  const item: PubsubItem = { id, payload: payloads[0], publisher };
  const next = withNode(data, name, { ...node, items: itemsAfterPublish(node, item, ctx.limits) });
  if (overQuota(data, next, ctx.limits)) return { error: quotaError(ctx) };
  return {
    data: next,
    result: pubsubResult([elem("publish", { node: name }, [elem("item", { id })])]),
    notifications: notifyAll(
      name,
      node.config,
      itemsEvent(name, item, node.config, ctx.exposePublisher),
      ctx,
    ),
  };
}

/**
 * An item the service itself publishes on the owner's behalf (PEP: the vCard's photo as an
 * avatar, XEP-0398), with the bounds a client's publish has; a missing node is created with the
 * default configuration. Undefined when the bounds refuse it.
 */
export function publishAsService(
  data: PubsubData,
  name: string,
  item: PubsubItem,
  ctx: ServiceCtx,
): { readonly data: PubsubData; readonly notifications: readonly Notification[] } | undefined {
  const existing = nodeOf(data, name);
  if (existing === undefined && nodeCount(data) >= ctx.limits.nodes) return undefined;
  if (payloadBytes(item.payload) > ctx.limits.itemBytes) return undefined;
  const node = existing ?? { config: ctx.defaultConfig, items: [] };
  const next = withNode(data, name, { ...node, items: itemsAfterPublish(node, item, ctx.limits) });
  if (overQuota(data, next, ctx.limits)) return undefined;
  return {
    data: next,
    notifications: notifyAll(
      name,
      node.config,
      itemsEvent(name, item, node.config, ctx.exposePublisher),
      ctx,
    ),
  };
}

/**
 * XEP-0060 §7.2: `<retract/>` of items by id (all must exist), notified when the request's
 * `notify` says so or, without it, when the node's `notify_retract` does.
 */
export function retract(
  data: PubsubData,
  retractEl: Element,
  who: Requester,
  ctx: ServiceCtx,
): Outcome {
  if (!mayRetract(who)) return { error: FORBIDDEN };
  const name = retractEl.attrs.node;
  if (name === undefined) return { error: NODEID_REQUIRED };
  const node = nodeOf(data, name);
  if (node === undefined) return { error: NOT_FOUND };
  const ids = itemIds(retractEl);
  if (ids.length === 0) return { error: refusal("bad-request", "item-required") };
  const present = new Set(node.items.map((i) => i.id));
  if (ids.some((id) => !present.has(id))) return { error: NOT_FOUND };
  const gone = new Set(ids);
  const items = node.items.filter((i) => !gone.has(i.id));
  const flag = retractEl.attrs.notify === undefined ? undefined : parseBool(retractEl.attrs.notify);
  return {
    data: withNode(data, name, { ...node, items }),
    notifications: (flag ?? node.config.notifyRetract)
      ? notifyAll(name, node.config, retractEvent(name, ids), ctx)
      : [],
  };
}

/**
 * XEP-0060 §6.5: `<items/>`: all items, those with the ids asked for, or the newest
 * `max_items` of them (oldest first), as the node's access model allows (`expose`: see
 * `itemElement`).
 */
export function items(
  data: PubsubData,
  itemsEl: Element,
  who: Requester,
  expose = false,
): Outcome {
  const name = itemsEl.attrs.node;
  if (name === undefined) return { error: NODEID_REQUIRED };
  const node = nodeOf(data, name);
  if (node === undefined) return { error: NOT_FOUND };
  if (!mayAccess(node.config.accessModel, who, node.config.rosterGroupsAllowed)) {
    return { error: accessRefusal(node.config, who) };
  }
  const ids = new Set(itemIds(itemsEl));
  let chosen = ids.size > 0 ? node.items.filter((i) => ids.has(i.id)) : node.items;
  const max = itemsEl.attrs.max_items === undefined ? undefined : Number(itemsEl.attrs.max_items);
  if (max !== undefined && Number.isInteger(max) && max >= 0) {
    chosen = max === 0 ? [] : chosen.slice(-max);
  }
  return {
    result: pubsubResult([
      elem("items", { node: name }, chosen.map((i) => itemElement(i, node.config, expose))),
    ]),
  };
}

/**
 * XEP-0060 §8.1: `<create node/>`, configured by the form of `<configure/>` if any. Instant
 * nodes (no name) are refused unless `ctx.instantNodes` (PEP names nodes after protocols);
 * an instant node's name is the result (§8.1.2). `who.owner` says the requester may create
 * nodes; `creator` (a service's: the requester's bare JID) becomes the node's owner.
 */
export function create(
  data: PubsubData,
  createEl: Element,
  configureEl: Element | undefined,
  who: Requester,
  ctx: ServiceCtx,
  creator?: string,
): Outcome {
  if (!isOwner(who)) return { error: FORBIDDEN };
  const instant = createEl.attrs.node === undefined || createEl.attrs.node === "";
  if (instant && !ctx.instantNodes) {
    return { error: refusal("not-acceptable", "nodeid-required") };
  }
  const name = instant ? ctx.newId() : createEl.attrs.node;
  if (nodeOf(data, name) !== undefined) return { error: refusal("conflict") };
  if (nodeCount(data) >= ctx.limits.nodes) return { error: TOO_MANY_NODES };
  let config = ctx.defaultConfig;
  const form = configureEl === undefined ? undefined : findForm(configureEl);
  if (form !== undefined) {
    const parsed = parseConfigForm(parseForm(form), ctx);
    if ("error" in parsed) return { error: refusal("not-acceptable", undefined, parsed.error) };
    config = { ...config, ...parsed.changes };
  }
  const node: PubsubNode = creator === undefined
    ? { config, items: [] }
    : { config, items: [], affiliations: Object.fromEntries([[creator, "owner"]]) };
  const next = withNode(data, name, node);
  if (overQuota(data, next, ctx.limits)) return { error: quotaError(ctx) };
  return instant
    ? { data: next, result: pubsubResult([elem("create", { node: name })]) }
    : { data: next };
}

/**
 * XEP-0060 §8.2.1: the configuration form of `<configure node/>`, for its owner
 * (`pubsub#max_items` validated against `limits.items`).
 */
export function configuration(
  data: PubsubData,
  configureEl: Element,
  who: Requester,
  limits: PubsubLimits,
): Outcome {
  if (!isOwner(who)) return { error: FORBIDDEN };
  const name = configureEl.attrs.node;
  if (name === undefined) return { error: NODEID_REQUIRED };
  const node = nodeOf(data, name);
  if (node === undefined) return { error: NOT_FOUND };
  return {
    result: pubsubResult(
      [elem("configure", { node: name }, [configForm(node.config, limits)])],
      NS_PUBSUB_OWNER,
    ),
  };
}

/**
 * XEP-0060 §8.2.4: `<configure node/>` with a submitted form. The items are trimmed to the new
 * `max_items` (all go when items stop persisting); a cancelled form changes nothing (§8.2.5).
 */
export function configure(
  data: PubsubData,
  configureEl: Element,
  who: Requester,
  ctx: ServiceCtx,
): Outcome {
  if (!isOwner(who)) return { error: FORBIDDEN };
  const name = configureEl.attrs.node;
  if (name === undefined) return { error: NODEID_REQUIRED };
  const node = nodeOf(data, name);
  if (node === undefined) return { error: NOT_FOUND };
  const x = findForm(configureEl);
  if (x === undefined) return { error: refusal("bad-request") };
  const form = parseForm(x);
  if (form.type === "cancel") return {};
  const parsed = parseConfigForm(form, ctx);
  if ("error" in parsed) return { error: refusal("not-acceptable", undefined, parsed.error) };
  const config = { ...node.config, ...parsed.changes };
  const kept = config.persistItems ? node.items.slice(-itemLimit(config, ctx.limits)) : [];
  const next = withNode(data, name, { ...node, config, items: kept });
  // Only a longer title can grow the data here.
  if (overQuota(data, next, ctx.limits)) return { error: quotaError(ctx) };
  return { data: next };
}

/**
 * XEP-0060 §8.4: `<delete node/>`, notified when the node's `notify_delete` says so, with the
 * `<redirect uri/>` the owner gave when `ctx.deleteRedirect`.
 */
export function deleteNode(
  data: PubsubData,
  deleteEl: Element,
  who: Requester,
  ctx: ServiceCtx,
): Outcome {
  if (!isOwner(who)) return { error: FORBIDDEN };
  const name = deleteEl.attrs.node;
  if (name === undefined) return { error: NODEID_REQUIRED };
  const node = nodeOf(data, name);
  if (node === undefined) return { error: NOT_FOUND };
  const uri = ctx.deleteRedirect
    ? childElements(deleteEl).find((c) => c.name === "redirect")?.attrs.uri
    : undefined;
  const redirect = uri === undefined ? [] : [elem("redirect", { uri })];
  return {
    data: withNode(data, name, undefined),
    notifications: node.config.notifyDelete
      ? notifyAll(name, node.config, elem("delete", { node: name }, redirect), ctx)
      : [],
  };
}

/**
 * XEP-0060 §8.5: `<purge node/>` removes every item. There is no `notify_purge` field: purging
 * removes items, so `notify_retract` decides whether subscribers hear of it (as ejabberd).
 */
export function purge(
  data: PubsubData,
  purgeEl: Element,
  who: Requester,
  ctx: ServiceCtx,
): Outcome {
  if (!isOwner(who)) return { error: FORBIDDEN };
  const name = purgeEl.attrs.node;
  if (name === undefined) return { error: NODEID_REQUIRED };
  const node = nodeOf(data, name);
  if (node === undefined) return { error: NOT_FOUND };
  return {
    data: withNode(data, name, { ...node, items: [] }),
    notifications: node.config.notifyRetract
      ? notifyAll(name, node.config, elem("purge", { node: name }), ctx)
      : [],
  };
}

/**
 * XEP-0060 §12.11 (`send_last_published_item`): the newest item of node `name` as an `<items/>`
 * event payload, for one who may see it; undefined when there is none to send.
 */
export function lastItemEvent(
  name: string,
  node: PubsubNode,
  who: Requester,
  expose = false,
): Element | undefined {
  const last = node.items.at(-1);
  if (last === undefined) return undefined;
  if (node.config.sendLastPublishedItem === "never") return undefined;
  if (!mayAccess(node.config.accessModel, who, node.config.rosterGroupsAllowed)) return undefined;
  return itemsEvent(name, last, node.config, expose);
}
