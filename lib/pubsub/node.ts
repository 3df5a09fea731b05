/**
 * XEP-0060 nodes as data: the node and item records a service stores, the node configuration
 * and its `pubsub#node_config` form, and the byte accounting that keeps a service's data within
 * its bounds. Pure functions only; the engine (`engine.ts`) applies operations with them.
 * @module
 */
import { elem, type Element, serialize } from "../xml/element.ts";
import { bareJidOf } from "../xmpp/jid.ts";
import { utf8Bytes } from "../limits.ts";

/** The FORM_TYPE of node configuration (XEP-0060 §16.4.4). */
export const FORM_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config";
/** The FORM_TYPE of publish options (XEP-0060 §7.1.5). */
export const FORM_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";

/**
 * Who may see a node's items and get its notifications (XEP-0060 §4.5). PEP takes all but
 * `authorize` (an account's nodes have no subscriptions to approve); a pubsub service all five.
 */
export type AccessModel = "open" | "presence" | "whitelist" | "roster" | "authorize";

/** Who may publish (XEP-0060 §16.4.4 `pubsub#publish_model`). */
export type PublishModel = "publishers" | "subscribers" | "open";

/** An entity's affiliation with a node (XEP-0060 §4.1); `none` is never stored. */
export type Affiliation = "owner" | "publisher" | "publish-only" | "member" | "none" | "outcast";

/** The states of a subscription a service keeps (XEP-0060 §4.2); `none` is never stored. */
export type SubscriptionState = "subscribed" | "pending" | "unconfigured";

/** One subscription of a node, by the JID that is subscribed (full or bare, as asked). */
export interface NodeSubscription {
  readonly state: SubscriptionState;
  /** XEP-0060 §6.3 `pubsub#deliver`: false holds notifications back; absent means true. */
  readonly deliver?: boolean;
}

/** A node's configuration (the `pubsub#` fields we serve). */
export interface NodeConfig {
  readonly persistItems: boolean;
  readonly accessModel: AccessModel;
  readonly maxItems: number | "max";
  readonly sendLastPublishedItem: "never" | "on_sub" | "on_sub_and_presence";
  readonly notifyRetract: boolean;
  readonly notifyDelete: boolean;
  readonly title?: string;
  /**
   * XEP-0060 `pubsub#itemreply`: `publisher` puts the publisher's bare JID on each item sent
   * out (notifications and retrieval); absent means `none`, Prosody's default (`owner` is kept
   * when asked for, and sends out no JID either, as Prosody).
   */
  readonly itemreply?: "owner" | "publisher" | "none";
  // Absent, the fields below mean what PEP does (it takes no other value of the first three):
  // publishers publish, notifications with payloads, as headlines; no roster group allowed.
  readonly description?: string;
  /** `pubsub#type`: the payload's namespace, informational. */
  readonly type?: string;
  /** Absent means `publishers`: owners and publishers (for PEP: the account). */
  readonly publishModel?: PublishModel;
  /** `pubsub#roster_groups_allowed`, for the `roster` access model. */
  readonly rosterGroupsAllowed?: readonly string[];
  readonly deliverNotifications?: boolean;
  readonly deliverPayloads?: boolean;
  readonly notificationType?: "normal" | "headline";
}

/** The `pubsub#` field of each configuration option, for precondition errors. */
export const CONFIG_FIELDS: Readonly<Record<keyof NodeConfig, string>> = {
  persistItems: "persist_items",
  accessModel: "access_model",
  maxItems: "max_items",
  sendLastPublishedItem: "send_last_published_item",
  notifyRetract: "notify_retract",
  notifyDelete: "notify_delete",
  title: "title",
  itemreply: "itemreply",
  description: "description",
  type: "type",
  publishModel: "publish_model",
  rosterGroupsAllowed: "roster_groups_allowed",
  deliverNotifications: "deliver_notifications",
  deliverPayloads: "deliver_payloads",
  notificationType: "notification_type",
};

/** One published item. */
export interface PubsubItem {
  readonly id: string;
  readonly payload: Element;
  /** The full JID that published it (empty for items the service made up). */
  readonly publisher: string;
}

/**
 * A node: its configuration and items, oldest first. A pubsub service also keeps who is
 * affiliated and subscribed (PEP keeps neither: the account owns its nodes, and interest is
 * implicit). Both are keyed by peer-supplied JIDs: read them with `Object.hasOwn`.
 */
export interface PubsubNode {
  readonly config: NodeConfig;
  readonly items: readonly PubsubItem[];
  /** Affiliations other than `none`, by bare JID. */
  readonly affiliations?: Readonly<Record<string, Affiliation>>;
  /** Subscriptions by the JID subscribed, in the order they were made. */
  readonly subscriptions?: Readonly<Record<string, NodeSubscription>>;
}

/**
 * What a service stores: its nodes, by name. Node names are peer-supplied (`constructor` and
 * `__proto__` are names too): read `nodes` with {@link nodeOf}, never by indexing. This is the
 * stored JSON shape (PEP keeps it per account), so it must not change without a migration.
 */
export interface PubsubData {
  readonly nodes: Readonly<Record<string, PubsubNode>>;
  /**
   * What the nodes hold, in bytes ({@link nodeBytes} summed), kept up to date so that a publish
   * checks the byte bound without measuring everything; absent in data stored before it was.
   */
  readonly bytes?: number;
}

/**
 * The bounds of one service's data (for PEP: one account's), each with its `[limits]` key at
 * the adapter: nodes, items per node (also `max_items=max`), bytes of one item's payload, and
 * bytes of everything.
 */
export interface PubsubLimits {
  readonly nodes: number;
  readonly items: number;
  readonly itemBytes: number;
  readonly bytes: number;
  /** A service's bound on subscriptions per node (PEP keeps none); absent: unbounded. */
  readonly subscriptions?: number;
  /** A service's bound on one bare JID's subscriptions (its resources) per node. */
  readonly subscriptionsPerJid?: number;
  /** A service's bound on affiliations per node. */
  readonly affiliations?: number;
}

/** The stored data, or no nodes at all. */
export function pubsubData(data: unknown): PubsubData {
  if (typeof data !== "object" || data === null) return { nodes: {} };
  const { nodes, bytes } = data as { nodes?: unknown; bytes?: unknown };
  if (typeof nodes !== "object" || nodes === null) return { nodes: {} };
  return typeof bytes === "number"
    ? { nodes: nodes as PubsubData["nodes"], bytes }
    : { nodes: nodes as PubsubData["nodes"] };
}

/** The node called `name`, if there is one (an own property only). */
export function nodeOf(data: PubsubData, name: string): PubsubNode | undefined {
  return Object.hasOwn(data.nodes, name) ? data.nodes[name] : undefined;
}

/** The number of nodes. */
export function nodeCount(data: PubsubData): number {
  return Object.keys(data.nodes).length;
}

/** Items a node keeps: its `max_items`, never more than the service's bound. */
export function itemLimit(config: NodeConfig, limits: PubsubLimits): number {
  return config.maxItems === "max" ? limits.items : Math.min(config.maxItems, limits.items);
}

/**
 * The items after `item` was published: a republished id replaces its item and becomes the
 * newest (XEP-0060 §7.1.2), the oldest go past `max_items`, and nothing stays on a node that
 * does not persist items.
 */
export function itemsAfterPublish(
  node: PubsubNode,
  item: PubsubItem,
  limits: PubsubLimits,
): readonly PubsubItem[] {
  return node.config.persistItems
    ? [...node.items.filter((i) => i.id !== item.id), item].slice(-itemLimit(node.config, limits))
    : [];
}

// --- sizes -----------------------------------------------------------------------------------

/** The size of an item's payload as it travels (XEP-0060 §7.1.3.4 `payload-too-big`). */
export function payloadBytes(payload: Element): number {
  return utf8Bytes(serialize(payload));
}

/** What one stored item costs: its payload, id and publisher. */
function itemBytes(item: PubsubItem): number {
  return payloadBytes(item.payload) + utf8Bytes(item.id) + utf8Bytes(item.publisher);
}

/**
 * What a node costs without its items: the peer-chosen name and texts, and the JIDs of its
 * affiliations and subscriptions (absent on PEP nodes, which cost their name and title). A
 * service bounds how many of those a node has, so measuring them here stays bounded too.
 */
function overheadBytes(name: string, node: PubsubNode): number {
  const c = node.config;
  let n = utf8Bytes(name) + utf8Bytes(c.title ?? "");
  if (c.description !== undefined) n += utf8Bytes(c.description);
  if (c.type !== undefined) n += utf8Bytes(c.type);
  for (const g of c.rosterGroupsAllowed ?? []) n += utf8Bytes(g);
  // Each entry: its JID and a few bytes for the state it records.
  for (const jid of Object.keys(node.affiliations ?? {})) n += utf8Bytes(jid) + 8;
  for (const jid of Object.keys(node.subscriptions ?? {})) n += utf8Bytes(jid) + 8;
  return n;
}

/** What one node costs, items included. */
export function nodeBytes(name: string, node: PubsubNode): number {
  let n = overheadBytes(name, node);
  for (const item of node.items) n += itemBytes(item);
  return n;
}

/** What the data costs (measured once for data stored before it was counted). */
export function dataBytes(data: PubsubData): number {
  if (data.bytes !== undefined) return data.bytes;
  let n = 0;
  for (const [name, node] of Object.entries(data.nodes)) n += nodeBytes(name, node);
  return n;
}

/**
 * The change in bytes from `before` to `after` (either absent when the node is created or
 * deleted). Items are immutable and kept by reference, so only those that came or went are
 * measured: a publish measures the new item and the ones it pushed out, never the whole node.
 */
function nodeDelta(
  name: string,
  before: PubsubNode | undefined,
  after: PubsubNode | undefined,
): number {
  let d = (after === undefined ? 0 : overheadBytes(name, after)) -
    (before === undefined ? 0 : overheadBytes(name, before));
  const old = before?.items ?? [];
  const now = after?.items ?? [];
  const kept = new Set(now);
  const had = new Set(old);
  for (const i of old) if (!kept.has(i)) d -= itemBytes(i);
  for (const i of now) if (!had.has(i)) d += itemBytes(i);
  return d;
}

/**
 * The data with node `name` replaced (undefined: deleted), in place in the order, and its size
 * updated. Built with `Object.fromEntries`, which defines properties: assigning `nodes[name]`
 * would set the prototype for `__proto__` instead of keeping a node of that name.
 */
export function withNode(
  data: PubsubData,
  name: string,
  node: PubsubNode | undefined,
): PubsubData {
  const before = nodeOf(data, name);
  const entries: [string, PubsubNode][] = [];
  for (const [k, v] of Object.entries(data.nodes)) {
    if (k !== name) entries.push([k, v]);
    else if (node !== undefined) entries.push([k, node]);
  }
  if (before === undefined && node !== undefined) entries.push([name, node]);
  return {
    nodes: Object.fromEntries(entries),
    bytes: dataBytes(data) + nodeDelta(name, before, node),
  };
}

/**
 * True when a change from `before` to `after` (made by {@link withNode}) takes the data past
 * `limits.bytes`. A change that shrinks data already over the bound (after the bound was
 * lowered) is let through, so that freeing space always works.
 */
export function overQuota(before: PubsubData, after: PubsubData, limits: PubsubLimits): boolean {
  return after.bytes! > limits.bytes && after.bytes! > dataBytes(before);
}

// --- configuration forms ---------------------------------------------------------------------

/** An XEP-0004 boolean, or undefined when the value is not one. */
export function parseBool(v: string): boolean | undefined {
  return v === "1" || v === "true" ? true : v === "0" || v === "false" ? false : undefined;
}

/** What the optional options mean when absent (see {@link NodeConfig}). */
const OPTION_DEFAULTS: Partial<NodeConfig> = {
  itemreply: "none",
  publishModel: "publishers",
  rosterGroupsAllowed: [],
  deliverNotifications: true,
  deliverPayloads: true,
  notificationType: "headline",
};

/** The value of every option, the optional ones at their defaults. */
function optionOf(config: Partial<NodeConfig>, key: keyof NodeConfig): unknown {
  return config[key] ?? OPTION_DEFAULTS[key];
}

/** Lists (roster groups) compare by their values, the rest by identity. */
function sameOption(a: unknown, b: unknown): boolean {
  return Array.isArray(a) && Array.isArray(b)
    ? a.length === b.length && a.every((v, i) => v === b[i])
    : a === b;
}

/**
 * The first requested option that differs from the node's (XEP-0223 §3, XEP-0060 §7.1.5), or
 * undefined when every one matches.
 */
export function unmetPrecondition(
  config: NodeConfig,
  wanted: Partial<NodeConfig>,
): keyof NodeConfig | undefined {
  return (Object.keys(wanted) as (keyof NodeConfig)[]).find((k) =>
    !sameOption(optionOf(config, k), optionOf(wanted, k))
  );
}

/** True when every requested option equals the node's (XEP-0223 §3, XEP-0060 §7.1.5). */
export function preconditionsMet(config: NodeConfig, wanted: Partial<NodeConfig>): boolean {
  return unmetPrecondition(config, wanted) === undefined;
}

// --- items as they are sent out --------------------------------------------------------------

/**
 * An item as it is sent out, with its publisher when the node's `itemreply` says so or the
 * service exposes publishers (`expose`: Prosody's `expose_publisher`, which the conformance
 * scripts of a pubsub service assume).
 */
export function itemElement(item: PubsubItem, config: NodeConfig, expose = false): Element {
  const publisher = (expose || config.itemreply === "publisher") && item.publisher !== ""
    ? bareJidOf(item.publisher) ?? item.publisher
    : undefined;
  return elem("item", { id: item.id, publisher }, [item.payload]);
}
