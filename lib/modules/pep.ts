/**
 * Personal eventing (XEP-0163): every account is a small XEP-0060 service whose nodes are created
 * by publishing, with publish-options preconditions (XEP-0223), access models, and notifications
 * to the resources that asked for a node with `NODE+notify` in their entity capabilities
 * (XEP-0115). Native bookmarks (XEP-0402) are one such node; `legacyBookmarks` and
 * `bookmarksFromLegacy` convert to and from the XEP-0048 `<storage/>` element.
 * @module
 */
import { childElements, elem, type Element, serialize, text } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { buildForm, type DataForm, findForm, formTypeField, parseForm } from "../xmpp/forms.ts";
import { bareJidOf } from "../xmpp/jid.ts";
import { type Limits, utf8Bytes } from "../limits.ts";
import type { Roster } from "../core/session.ts";
import type { AccountOutput } from "../core/types.ts";
import type { AccountIqCtx, AccountIqResult, Module, ResourceView } from "../core/types.ts";
import {
  NS_BOOKMARKS2,
  NS_CLIENT,
  NS_LEGACY_BOOKMARKS,
  NS_PUBSUB,
  NS_PUBSUB_ERRORS,
  NS_PUBSUB_EVENT,
  NS_PUBSUB_OWNER,
} from "../xmpp/namespaces.ts";

const FORM_NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config";
const FORM_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";

/** The keyval store of PEP data. */
export const PEP_STORE = "pep";

/** Who may see a node's items and get its notifications (XEP-0060 §4.5). */
export type AccessModel = "open" | "presence" | "whitelist";

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
   * out (notifications and retrieval); absent means `owner`, the service's default.
   */
  readonly itemreply?: "owner" | "publisher";
}

/** One published item. */
export interface PepItem {
  readonly id: string;
  readonly payload: Element;
  /** The full JID that published it. */
  readonly publisher: string;
}

/** A node: its configuration and items, oldest first. */
export interface PepNode {
  readonly config: NodeConfig;
  readonly items: readonly PepItem[];
}

/**
 * What the `pep` store holds for an account. Node names are peer-supplied (`constructor` and
 * `__proto__` are names too): read `nodes` with {@link nodeOf}, never by indexing.
 */
export interface PepData {
  readonly nodes: Readonly<Record<string, PepNode>>;
  /**
   * What the nodes hold, in bytes ({@link nodeBytes} summed), kept up to date so that a publish
   * checks `limits.pepBytes` without measuring everything; absent in data stored before it was.
   */
  readonly bytes?: number;
}

/** XEP-0163 §4: presence access, one item, the last one sent to new subscribers (as Prosody). */
const DEFAULT_CONFIG: NodeConfig = {
  persistItems: true,
  accessModel: "presence",
  maxItems: 1,
  sendLastPublishedItem: "on_sub_and_presence",
  notifyRetract: true,
  notifyDelete: true,
};

/** The stored data, or no nodes at all. */
export function pepData(data: unknown): PepData {
  if (typeof data !== "object" || data === null) return { nodes: {} };
  const { nodes, bytes } = data as { nodes?: unknown; bytes?: unknown };
  if (typeof nodes !== "object" || nodes === null) return { nodes: {} };
  return typeof bytes === "number"
    ? { nodes: nodes as PepData["nodes"], bytes }
    : { nodes: nodes as PepData["nodes"] };
}

/** The node called `name`, if the account has one (an own property only). */
export function nodeOf(data: PepData, name: string): PepNode | undefined {
  return Object.hasOwn(data.nodes, name) ? data.nodes[name] : undefined;
}

/** The number of nodes. */
function nodeCount(data: PepData): number {
  return Object.keys(data.nodes).length;
}

/** Items a node keeps: its `max_items`, never more than the server's `pep_items`. */
function limitOf(config: NodeConfig, limits: Limits): number {
  return config.maxItems === "max" ? limits.pepItems : Math.min(config.maxItems, limits.pepItems);
}

// --- sizes -----------------------------------------------------------------------------------

/** The size of an item's payload as it travels (XEP-0060 §7.1.3.4 `payload-too-big`). */
function payloadBytes(payload: Element): number {
  return utf8Bytes(serialize(payload));
}

/** What one stored item costs: its payload, id and publisher. */
function itemBytes(item: PepItem): number {
  return payloadBytes(item.payload) + utf8Bytes(item.id) + utf8Bytes(item.publisher);
}

/** What a node costs without its items: the peer-chosen name and title. */
function overheadBytes(name: string, config: NodeConfig): number {
  return utf8Bytes(name) + utf8Bytes(config.title ?? "");
}

/** What one node costs, items included. */
export function nodeBytes(name: string, node: PepNode): number {
  let n = overheadBytes(name, node.config);
  for (const item of node.items) n += itemBytes(item);
  return n;
}

/** What the account's PEP data costs (measured once for data stored before it was counted). */
export function pepBytes(data: PepData): number {
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
function nodeDelta(name: string, before: PepNode | undefined, after: PepNode | undefined): number {
  let d = (after === undefined ? 0 : overheadBytes(name, after.config)) -
    (before === undefined ? 0 : overheadBytes(name, before.config));
  const old = before?.items ?? [];
  const now = after?.items ?? [];
  const kept = new Set(now);
  const had = new Set(old);
  for (const i of old) if (!kept.has(i)) d -= itemBytes(i);
  for (const i of now) if (!had.has(i)) d += itemBytes(i);
  return d;
}

// --- data forms ------------------------------------------------------------------------------

function parseBool(v: string): boolean | undefined {
  return v === "1" || v === "true" ? true : v === "0" || v === "false" ? false : undefined;
}

/**
 * The configuration changes a form asks for. Unknown fields are ignored (XEP-0060 §8.2.4 lets a
 * service keep its own set); a known field with a value we cannot take is an error.
 */
function configFromForm(
  form: DataForm,
  limits: Limits,
): { readonly changes: Partial<NodeConfig> } | { readonly error: string } {
  const changes: { -readonly [K in keyof NodeConfig]?: NodeConfig[K] } = {};
  for (const [key, { values }] of form.byVar) {
    const v = values[0] ?? "";
    switch (key) {
      case "pubsub#persist_items":
      case "pubsub#notify_retract":
      case "pubsub#notify_delete": {
        const b = parseBool(v);
        if (b === undefined) return { error: `${key} is not a boolean` };
        if (key === "pubsub#persist_items") changes.persistItems = b;
        else if (key === "pubsub#notify_retract") changes.notifyRetract = b;
        else changes.notifyDelete = b;
        break;
      }
      case "pubsub#access_model":
        if (v !== "open" && v !== "presence" && v !== "whitelist") {
          return { error: `Access model ${v} is not supported` };
        }
        changes.accessModel = v;
        break;
      case "pubsub#max_items": {
        if (v === "max") {
          changes.maxItems = "max";
          break;
        }
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1 || n > limits.pepItems) {
          return { error: `pubsub#max_items must be 1 to ${limits.pepItems} or max` };
        }
        changes.maxItems = n;
        break;
      }
      case "pubsub#send_last_published_item":
        if (v !== "never" && v !== "on_sub" && v !== "on_sub_and_presence") {
          return { error: `pubsub#send_last_published_item ${v} is not supported` };
        }
        changes.sendLastPublishedItem = v;
        break;
      case "pubsub#title":
        changes.title = v;
        break;
      case "pubsub#itemreply":
        if (v !== "owner" && v !== "publisher") {
          return { error: `pubsub#itemreply ${v} is not supported` };
        }
        changes.itemreply = v;
        break;
    }
  }
  return { changes };
}

/** The node configuration form (XEP-0060 §8.2), filled with `config`. */
function configForm(config: NodeConfig): Element {
  const bool = (b: boolean) => [b ? "1" : "0"];
  return buildForm("form", [
    formTypeField(FORM_NODE_CONFIG),
    {
      type: "text-single",
      var: "pubsub#title",
      values: config.title === undefined ? [] : [config.title],
    },
    { type: "text-single", var: "pubsub#max_items", values: [String(config.maxItems)] },
    { type: "boolean", var: "pubsub#persist_items", values: bool(config.persistItems) },
    {
      type: "list-single",
      var: "pubsub#access_model",
      values: [config.accessModel],
      options: ["open", "presence", "whitelist"],
    },
    {
      type: "list-single",
      var: "pubsub#send_last_published_item",
      values: [config.sendLastPublishedItem],
      options: ["never", "on_sub", "on_sub_and_presence"],
    },
    { type: "boolean", var: "pubsub#notify_retract", values: bool(config.notifyRetract) },
    { type: "boolean", var: "pubsub#notify_delete", values: bool(config.notifyDelete) },
    {
      type: "list-single",
      var: "pubsub#itemreply",
      values: [config.itemreply ?? "owner"],
      options: ["owner", "publisher"],
    },
  ]);
}

// --- access and recipients -------------------------------------------------------------------

/** True when `bare` may see the owner's node (the owner always may). */
function mayAccess(
  config: NodeConfig,
  owner: string,
  roster: Roster | undefined,
  bare: string,
): boolean {
  if (bare === owner) return true;
  switch (config.accessModel) {
    case "open":
      return true;
    case "presence": {
      const items = roster?.items;
      const sub = items !== undefined && Object.hasOwn(items, bare)
        ? items[bare].subscription
        : undefined;
      return sub === "from" || sub === "both";
    }
    case "whitelist":
      // Affiliations other than the owner's are not kept: the whitelist holds the owner only.
      return false;
  }
}

function accessError(iq: Element, config: NodeConfig): Element {
  return config.accessModel === "presence"
    ? errorReply(iq, "not-authorized", {
      extra: elem("presence-subscription-required", { xmlns: NS_PUBSUB_ERRORS }),
    })
    : errorReply(iq, "not-allowed", { extra: elem("closed-node", { xmlns: NS_PUBSUB_ERRORS }) });
}

function wantsNotify(r: ResourceView, node: string): boolean {
  return r.available && (r.features ?? []).includes(`${node}+notify`);
}

/** Who may hear about a node: the owner and, unless whitelisted, contacts with presence access. */
function audience(config: NodeConfig, owner: string, roster: Roster | undefined): string[] {
  const out = [owner];
  if (config.accessModel === "whitelist" || roster === undefined) return out;
  for (const [jid, item] of Object.entries(roster.items)) {
    if (jid === owner) continue;
    // Open nodes reach contacts too, but only those whose presence tells us their caps.
    if (item.subscription === "from" || item.subscription === "both") out.push(jid);
  }
  return out;
}

/** An event notification (XEP-0060 §7.1.2.1) from the owner to one resource. */
function eventMessage(owner: string, to: string, payload: Element): Element {
  return elem("message", { xmlns: NS_CLIENT, type: "headline", from: owner, to }, [
    elem("event", { xmlns: NS_PUBSUB_EVENT }, [payload]),
  ]);
}

/** Deliveries of an event: the owner's sessions directly (ahead of the iq reply), others routed. */
function notify(
  owner: string,
  to: readonly ResourceView[],
  payload: Element,
): AccountOutput[] {
  return to.map((r) => {
    const stanza = eventMessage(owner, r.fullJid, payload);
    return bareJidOf(r.fullJid) === owner
      ? { kind: "deliver" as const, to: r.fullJid, stanza }
      : { kind: "route" as const, stanza };
  });
}

/** The resources to notify about `node`. */
function recipients(
  node: string,
  config: NodeConfig,
  owner: string,
  ctx: AccountIqCtx,
): ResourceView[] {
  const resourcesOf = ctx.resourcesOf ?? (() => []);
  return audience(config, owner, ctx.roster).flatMap((bare) =>
    resourcesOf(bare).filter((r) => wantsNotify(r, node))
  );
}

/** An item as it is sent out, with its publisher when the node's `itemreply` says so. */
function itemElement(item: PepItem, config: NodeConfig): Element {
  const publisher = config.itemreply === "publisher" && item.publisher !== ""
    ? bareJidOf(item.publisher) ?? item.publisher
    : undefined;
  return elem("item", { id: item.id, publisher }, [item.payload]);
}

function itemsEvent(node: string, item: PepItem, config: NodeConfig): Element {
  return elem("items", { node }, [itemElement(item, config)]);
}

// --- operations ------------------------------------------------------------------------------

function pubsubResult(iq: Element, children: readonly Element[]): Element {
  return iqResult(iq, elem("pubsub", { xmlns: NS_PUBSUB }, children));
}

function pubsubError(
  iq: Element,
  condition: Parameters<typeof errorReply>[1],
  extra?: string,
  text?: string,
): Element {
  return errorReply(iq, condition, {
    text,
    extra: extra === undefined ? undefined : elem(extra, { xmlns: NS_PUBSUB_ERRORS }),
  });
}

/**
 * The data with node `name` replaced (undefined: deleted), in place in the order, and its size
 * updated. Built with `Object.fromEntries`, which defines properties: assigning `nodes[name]`
 * would set the prototype for `__proto__` instead of keeping a node of that name.
 */
function withNode(data: PepData, name: string, node: PepNode | undefined): PepData {
  const before = nodeOf(data, name);
  const entries: [string, PepNode][] = [];
  for (const [k, v] of Object.entries(data.nodes)) {
    if (k !== name) entries.push([k, v]);
    else if (node !== undefined) entries.push([k, node]);
  }
  if (before === undefined && node !== undefined) entries.push([name, node]);
  return {
    nodes: Object.fromEntries(entries),
    bytes: pepBytes(data) + nodeDelta(name, before, node),
  };
}

/** The refusal of a change that would take the account's PEP data past `limits.pepBytes`. */
function overQuota(before: PepData, after: PepData, limits: Limits): boolean {
  return after.bytes! > limits.pepBytes && after.bytes! > pepBytes(before);
}

function quotaError(iq: Element, limits: Limits): Element {
  return errorReply(iq, "resource-constraint", {
    text: `Personal eventing data is limited to ${limits.pepBytes} bytes`,
  });
}

/** XEP-0060 §7.1.3.4: an item larger than the service takes. */
function payloadTooBig(iq: Element, limits: Limits): Element {
  return pubsubError(
    iq,
    "not-acceptable",
    "payload-too-big",
    `An item's payload is limited to ${limits.pepItemBytes} bytes`,
  );
}

/** The value of every option, the optional ones at their defaults. */
function optionOf(config: Partial<NodeConfig>, key: keyof NodeConfig): unknown {
  return key === "itemreply" ? config.itemreply ?? "owner" : config[key];
}

/** True when every requested option equals the node's (XEP-0223 §3, XEP-0060 §7.1.5). */
function preconditionsMet(config: NodeConfig, wanted: Partial<NodeConfig>): boolean {
  return (Object.keys(wanted) as (keyof NodeConfig)[]).every((k) =>
    optionOf(config, k) === optionOf(wanted, k)
  );
}

function onPublish(
  data: PepData,
  iq: Element,
  publish: Element,
  options: Element | undefined,
  ctx: AccountIqCtx,
): AccountIqResult {
  if (!ctx.self) return { replies: [errorReply(iq, "forbidden")] };
  const name = publish.attrs.node;
  if (name === undefined || name === "") {
    return { replies: [pubsubError(iq, "bad-request", "nodeid-required")] };
  }
  const items = childElements(publish, NS_PUBSUB).filter((i) => i.name === "item");
  if (items.length !== 1) {
    return { replies: [pubsubError(iq, "bad-request", "item-required")] };
  }
  const payloads = childElements(items[0]);
  if (payloads.length !== 1) {
    return { replies: [pubsubError(iq, "bad-request", "invalid-payload")] };
  }
  if (payloadBytes(payloads[0]) > ctx.limits.pepItemBytes) {
    return { replies: [payloadTooBig(iq, ctx.limits)] };
  }
  let wanted: Partial<NodeConfig> = {};
  const x = options === undefined ? undefined : findForm(options);
  if (x !== undefined) {
    const form = parseForm(x);
    if (form.formType !== undefined && form.formType !== FORM_PUBLISH_OPTIONS) {
      return { replies: [pubsubError(iq, "bad-request", "invalid-options")] };
    }
    const parsed = configFromForm(form, ctx.limits);
    if ("error" in parsed) {
      return { replies: [pubsubError(iq, "bad-request", "invalid-options", parsed.error)] };
    }
    wanted = parsed.changes;
  }
  let node = nodeOf(data, name);
  if (node === undefined) {
    // XEP-0163 §3: publishing creates the node, configured by the publish-options.
    if (nodeCount(data) >= ctx.limits.pepNodes) {
      return { replies: [errorReply(iq, "resource-constraint", { text: "Too many nodes" })] };
    }
    node = { config: { ...DEFAULT_CONFIG, ...wanted }, items: [] };
  } else if (!preconditionsMet(node.config, wanted)) {
    return { replies: [pubsubError(iq, "conflict", "precondition-not-met")] };
  }
  const id = items[0].attrs.id ?? ctx.newId();
  const item: PepItem = { id, payload: payloads[0], publisher: iq.attrs.from ?? ctx.bare };
  // A republished id replaces its item and becomes the newest (XEP-0060 §7.1.2).
  const kept = node.config.persistItems
    ? [...node.items.filter((i) => i.id !== id), item].slice(-limitOf(node.config, ctx.limits))
    : [];
  const next = withNode(data, name, { ...node, items: kept });
  if (overQuota(data, next, ctx.limits)) return { replies: [quotaError(iq, ctx.limits)] };
  const outputs = notify(
    ctx.bare,
    recipients(name, node.config, ctx.bare, ctx),
    itemsEvent(name, item, node.config),
  );
  return {
    data: next,
    outputs,
    replies: [pubsubResult(iq, [elem("publish", { node: name }, [elem("item", { id })])])],
  };
}

function onRetract(
  data: PepData,
  iq: Element,
  retract: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  if (!ctx.self) return { replies: [errorReply(iq, "forbidden")] };
  const name = retract.attrs.node;
  if (name === undefined) return { replies: [pubsubError(iq, "bad-request", "nodeid-required")] };
  const node = nodeOf(data, name);
  if (node === undefined) return { replies: [errorReply(iq, "item-not-found")] };
  const ids = [
    ...new Set(
      childElements(retract, NS_PUBSUB)
        .filter((i) => i.name === "item" && i.attrs.id !== undefined)
        .map((i) => i.attrs.id),
    ),
  ];
  if (ids.length === 0) return { replies: [pubsubError(iq, "bad-request", "item-required")] };
  const present = new Set(node.items.map((i) => i.id));
  if (ids.some((id) => !present.has(id))) return { replies: [errorReply(iq, "item-not-found")] };
  const gone = new Set(ids);
  const items = node.items.filter((i) => !gone.has(i.id));
  const flag = retract.attrs.notify === undefined ? undefined : parseBool(retract.attrs.notify);
  const outputs = (flag ?? node.config.notifyRetract)
    ? notify(
      ctx.bare,
      recipients(name, node.config, ctx.bare, ctx),
      elem("items", { node: name }, ids.map((id) => elem("retract", { id }))),
    )
    : [];
  return { data: withNode(data, name, { ...node, items }), outputs, replies: [iqResult(iq)] };
}

function onItems(data: PepData, iq: Element, items: Element, ctx: AccountIqCtx): AccountIqResult {
  const name = items.attrs.node;
  if (name === undefined) return { replies: [pubsubError(iq, "bad-request", "nodeid-required")] };
  const node = nodeOf(data, name) ?? legacyNode(data, name);
  if (node === undefined) return { replies: [errorReply(iq, "item-not-found")] };
  const requester = iq.attrs.from === undefined ? ctx.bare : bareJidOf(iq.attrs.from) ?? "";
  if (!mayAccess(node.config, ctx.bare, ctx.roster, requester)) {
    return { replies: [accessError(iq, node.config)] };
  }
  const ids = new Set(
    childElements(items, NS_PUBSUB)
      .filter((i) => i.name === "item" && i.attrs.id !== undefined)
      .map((i) => i.attrs.id),
  );
  let chosen = ids.size > 0 ? node.items.filter((i) => ids.has(i.id)) : node.items;
  const max = items.attrs.max_items === undefined ? undefined : Number(items.attrs.max_items);
  if (max !== undefined && Number.isInteger(max) && max >= 0) {
    chosen = max === 0 ? [] : chosen.slice(-max);
  }
  return {
    replies: [
      pubsubResult(iq, [
        elem("items", { node: name }, chosen.map((i) => itemElement(i, node.config))),
      ]),
    ],
  };
}

function onCreate(
  data: PepData,
  iq: Element,
  create: Element,
  configure: Element | undefined,
  ctx: AccountIqCtx,
): AccountIqResult {
  if (!ctx.self) return { replies: [errorReply(iq, "forbidden")] };
  const name = create.attrs.node;
  // Instant nodes make no sense in PEP, where node names are the protocols' namespaces.
  if (name === undefined || name === "") {
    return { replies: [pubsubError(iq, "not-acceptable", "nodeid-required")] };
  }
  if (nodeOf(data, name) !== undefined) return { replies: [errorReply(iq, "conflict")] };
  if (nodeCount(data) >= ctx.limits.pepNodes) {
    return { replies: [errorReply(iq, "resource-constraint", { text: "Too many nodes" })] };
  }
  let config = DEFAULT_CONFIG;
  const form = configure === undefined ? undefined : findForm(configure);
  if (form !== undefined) {
    const parsed = configFromForm(parseForm(form), ctx.limits);
    if ("error" in parsed) {
      return { replies: [errorReply(iq, "not-acceptable", { text: parsed.error })] };
    }
    config = { ...config, ...parsed.changes };
  }
  const next = withNode(data, name, { config, items: [] });
  if (overQuota(data, next, ctx.limits)) return { replies: [quotaError(iq, ctx.limits)] };
  return { data: next, replies: [iqResult(iq)] };
}

function onAffiliations(data: PepData, iq: Element, ctx: AccountIqCtx): AccountIqResult {
  const own = ctx.self ? Object.keys(data.nodes) : [];
  return {
    replies: [
      pubsubResult(iq, [
        elem(
          "affiliations",
          {},
          own.map((node) => elem("affiliation", { node, affiliation: "owner" })),
        ),
      ]),
    ],
  };
}

/** `<pubsub xmlns="http://jabber.org/protocol/pubsub"/>` to an account (XEP-0060 §6, §7). */
export function onPubsubIq(
  stored: unknown,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  const data = pepData(stored);
  const kids = childElements(payload, NS_PUBSUB);
  const first = kids[0];
  if (first === undefined) return { replies: [errorReply(iq, "bad-request")] };
  const set = iq.attrs.type === "set";
  switch (set ? first.name : `get ${first.name}`) {
    case "publish":
      return onPublish(data, iq, first, kids.find((k) => k.name === "publish-options"), ctx);
    case "retract":
      return onRetract(data, iq, first, ctx);
    case "create":
      return onCreate(data, iq, first, kids.find((k) => k.name === "configure"), ctx);
    case "get items":
      return onItems(data, iq, first, ctx);
    case "get affiliations":
      return onAffiliations(data, iq, ctx);
    case "get subscriptions":
      // Interest is implicit (XEP-0163 §4): there are no explicit subscriptions to list.
      return { replies: [pubsubResult(iq, [elem("subscriptions")])] };
  }
  return {
    replies: [errorReply(iq, "feature-not-implemented", {
      extra: elem("unsupported", {
        xmlns: NS_PUBSUB_ERRORS,
        feature: first.name === "subscribe" ? "subscribe" : first.name,
      }),
    })],
  };
}

function onConfigure(
  data: PepData,
  iq: Element,
  configure: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  const name = configure.attrs.node;
  if (name === undefined) return { replies: [pubsubError(iq, "bad-request", "nodeid-required")] };
  const node = nodeOf(data, name);
  if (node === undefined) return { replies: [errorReply(iq, "item-not-found")] };
  if (iq.attrs.type === "get") {
    return {
      replies: [
        iqResult(
          iq,
          elem("pubsub", { xmlns: NS_PUBSUB_OWNER }, [
            elem("configure", { node: name }, [configForm(node.config)]),
          ]),
        ),
      ],
    };
  }
  const x = findForm(configure);
  if (x === undefined) return { replies: [errorReply(iq, "bad-request")] };
  const form = parseForm(x);
  // XEP-0060 §8.2.5: cancelling the form changes nothing.
  if (form.type === "cancel") return { replies: [iqResult(iq)] };
  const parsed = configFromForm(form, ctx.limits);
  if ("error" in parsed) {
    return { replies: [errorReply(iq, "not-acceptable", { text: parsed.error })] };
  }
  const config = { ...node.config, ...parsed.changes };
  const items = config.persistItems ? node.items.slice(-limitOf(config, ctx.limits)) : [];
  const next = withNode(data, name, { config, items });
  // Only a longer title can grow the data here.
  if (overQuota(data, next, ctx.limits)) return { replies: [quotaError(iq, ctx.limits)] };
  return { data: next, replies: [iqResult(iq)] };
}

function onDelete(data: PepData, iq: Element, del: Element, ctx: AccountIqCtx): AccountIqResult {
  const name = del.attrs.node;
  if (name === undefined) return { replies: [pubsubError(iq, "bad-request", "nodeid-required")] };
  const node = nodeOf(data, name);
  if (node === undefined) return { replies: [errorReply(iq, "item-not-found")] };
  const outputs = node.config.notifyDelete
    ? notify(
      ctx.bare,
      recipients(name, node.config, ctx.bare, ctx),
      elem("delete", { node: name }),
    )
    : [];
  return { data: withNode(data, name, undefined), outputs, replies: [iqResult(iq)] };
}

/** `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"/>`: the owner's node management. */
export function onPubsubOwnerIq(
  stored: unknown,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  if (!ctx.self) return { replies: [errorReply(iq, "forbidden")] };
  const data = pepData(stored);
  const first = childElements(payload, NS_PUBSUB_OWNER)[0];
  if (first?.name === "configure") return onConfigure(data, iq, first, ctx);
  if (first?.name === "delete" && iq.attrs.type === "set") return onDelete(data, iq, first, ctx);
  return { replies: [errorReply(iq, "feature-not-implemented")] };
}

/**
 * A resource of `fullJid` told us (through its caps) which nodes it wants: it gets the last item
 * of each of the owner's nodes it may see (XEP-0163 §4.3.4, XEP-0060 §12.11).
 */
export function lastItemsFor(
  stored: unknown,
  owner: string,
  roster: Roster,
  fullJid: string,
  features: readonly string[],
): AccountOutput[] {
  const bare = bareJidOf(fullJid);
  if (bare === undefined) return [];
  const wanted = new Set(features);
  const out: AccountOutput[] = [];
  for (const [name, node] of Object.entries(pepData(stored).nodes)) {
    const last = node.items.at(-1);
    if (last === undefined || node.config.sendLastPublishedItem === "never") continue;
    if (!wanted.has(`${name}+notify`)) continue;
    if (!mayAccess(node.config, owner, roster, bare)) continue;
    out.push(...notify(owner, [{ fullJid } as ResourceView], itemsEvent(name, last, node.config)));
  }
  return out;
}

/**
 * The PEP data after the server published `payload` as item `id` of node `name` on the owner's
 * behalf (XEP-0398: the vCard's photo as a User Avatar), and the notifications to send. A
 * missing node is created with the default configuration, as a client's publish would. The
 * account's bounds hold as for a client: undefined when they refuse the item.
 */
export function publishedByServer(
  stored: unknown,
  name: string,
  id: string,
  payload: Element,
  ctx: AccountIqCtx,
): { readonly data: PepData; readonly outputs: AccountOutput[] } | undefined {
  const data = pepData(stored);
  const existing = nodeOf(data, name);
  if (existing === undefined && nodeCount(data) >= ctx.limits.pepNodes) return undefined;
  if (payloadBytes(payload) > ctx.limits.pepItemBytes) return undefined;
  const node = existing ?? { config: DEFAULT_CONFIG, items: [] };
  const item: PepItem = { id, payload, publisher: ctx.bare };
  const items = node.config.persistItems
    ? [...node.items.filter((i) => i.id !== id), item].slice(-limitOf(node.config, ctx.limits))
    : [];
  const next = withNode(data, name, { ...node, items });
  if (overQuota(data, next, ctx.limits)) return undefined;
  return {
    data: next,
    outputs: notify(
      ctx.bare,
      recipients(name, node.config, ctx.bare, ctx),
      itemsEvent(name, item, node.config),
    ),
  };
}

// --- XEP-0048 compatibility ------------------------------------------------------------------

/** The XEP-0048 `<storage xmlns="storage:bookmarks"/>` built from the XEP-0402 node's items. */
export function legacyBookmarks(stored: unknown): Element {
  const node = nodeOf(pepData(stored), NS_BOOKMARKS2);
  const conferences = (node?.items ?? []).map((item) => {
    const c = item.payload;
    const nick = childElements(c, NS_BOOKMARKS2).find((k) => k.name === "nick");
    const password = childElements(c, NS_BOOKMARKS2).find((k) => k.name === "password");
    return elem("conference", {
      jid: item.id,
      name: c.attrs.name,
      autojoin: c.attrs.autojoin === "true" || c.attrs.autojoin === "1" ? "true" : undefined,
    }, [
      nick !== undefined && elem("nick", {}, [text(nick)]),
      password !== undefined && elem("password", {}, [text(password)]),
    ]);
  });
  return elem("storage", { xmlns: NS_LEGACY_BOOKMARKS }, conferences);
}

/** The XEP-0402 items (id = room JID) that a XEP-0048 `<storage/>` element describes. */
export function bookmarksFromLegacy(storage: Element): { id: string; payload: Element }[] {
  return childElements(storage, NS_LEGACY_BOOKMARKS)
    .filter((c) => c.name === "conference" && c.attrs.jid !== undefined)
    .map((c) => {
      const nick = childElements(c, NS_LEGACY_BOOKMARKS).find((k) => k.name === "nick");
      const password = childElements(c, NS_LEGACY_BOOKMARKS).find((k) => k.name === "password");
      const autojoin = c.attrs.autojoin === "true" || c.attrs.autojoin === "1";
      return {
        id: c.attrs.jid,
        payload: elem("conference", {
          xmlns: NS_BOOKMARKS2,
          name: c.attrs.name,
          autojoin: autojoin ? "true" : undefined,
        }, [
          nick !== undefined && elem("nick", {}, [text(nick)]),
          password !== undefined && elem("password", {}, [text(password)]),
        ]),
      };
    });
}

/** XEP-0402 §5.2: the bookmarks node's configuration. */
export const BOOKMARKS_CONFIG: NodeConfig = {
  ...DEFAULT_CONFIG,
  accessModel: "whitelist",
  maxItems: "max",
  sendLastPublishedItem: "never",
};

/**
 * The PEP data after a XEP-0048 client stored `<storage xmlns="storage:bookmarks"/>` in private
 * storage (XEP-0049): the XEP-0402 node holds exactly its conferences, and the events to send.
 * Undefined when the account's PEP bounds refuse them (a node too many, or `pep_bytes`).
 */
export function withLegacyBookmarks(
  stored: unknown,
  storage: Element,
  ctx: AccountIqCtx,
): { readonly data: PepData; readonly outputs: AccountOutput[] } | undefined {
  const data = pepData(stored);
  const before = nodeOf(data, NS_BOOKMARKS2);
  if (before === undefined && nodeCount(data) >= ctx.limits.pepNodes) return undefined;
  const config = before?.config ?? BOOKMARKS_CONFIG;
  const publisher = ctx.bare;
  // One item per room (XEP-0402 §3: the id is the room's JID); the last mention wins.
  const byRoom = new Map(bookmarksFromLegacy(storage).map((b) => [b.id, { ...b, publisher }]));
  const items = [...byRoom.values()].slice(-limitOf(config, ctx.limits));
  const next = withNode(data, NS_BOOKMARKS2, { config, items });
  if (overQuota(data, next, ctx.limits)) return undefined;
  const ids = new Set(items.map((i) => i.id));
  const gone = (before?.items ?? []).filter((i) => !ids.has(i.id)).map((i) => i.id);
  const to = recipients(NS_BOOKMARKS2, config, ctx.bare, ctx);
  const outputs = [
    ...items.flatMap((i) => notify(ctx.bare, to, itemsEvent(NS_BOOKMARKS2, i, config))),
    ...(gone.length === 0 ? [] : notify(
      ctx.bare,
      to,
      elem("items", { node: NS_BOOKMARKS2 }, gone.map((id) => elem("retract", { id }))),
    )),
  ];
  return { data: next, outputs };
}

/**
 * XEP-0048 §3 over PEP (XEP-0411 §4): a read of the legacy `storage:bookmarks` node that does
 * not exist is answered from the XEP-0402 node, as one item `current`.
 */
function legacyNode(data: PepData, name: string): PepNode | undefined {
  if (name !== NS_LEGACY_BOOKMARKS || nodeOf(data, NS_BOOKMARKS2) === undefined) return undefined;
  return {
    config: BOOKMARKS_CONFIG,
    items: [{ id: "current", payload: legacyBookmarks(data), publisher: "" }],
  };
}

/** The features a PEP service announces on accounts (XEP-0163 §6, XEP-0060 §10). */
const PEP_FEATURES: readonly string[] = [
  "access-open",
  "access-presence",
  "access-whitelist",
  "auto-create",
  "config-node",
  "create-nodes",
  "delete-nodes",
  "filtered-notifications",
  "item-ids",
  "last-published",
  "persistent-items",
  "publish",
  "publish-options",
  "retract-items",
  "retrieve-affiliations",
  "retrieve-items",
  "retrieve-subscriptions",
].map((f) => `${NS_PUBSUB}#${f}`);

/** The PEP module: per-account nodes in the `pep` store. */
export const PEP: Module = {
  name: "pep",
  // `urn:xmpp:bookmarks:1#compat` is announced by private storage, which does the conversion.
  accountFeatures: [NS_PUBSUB, ...PEP_FEATURES],
  // XEP-0163 §6: an account with a PEP service is also a pubsub/pep entity.
  accountIdentities: [{ category: "pubsub", type: "pep" }],
  account: {
    store: PEP_STORE,
    iq: {
      [`${NS_PUBSUB} pubsub`]: onPubsubIq,
      [`${NS_PUBSUB_OWNER} pubsub`]: onPubsubOwnerIq,
    },
  },
};
