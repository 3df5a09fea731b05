/**
 * Personal eventing (XEP-0163): every account is a small XEP-0060 service, run by the engine of
 * `lib/pubsub/`, whose nodes are created by publishing, with publish-options preconditions
 * (XEP-0223), access models, Prosody's node configuration form (`lib/pubsub/config.ts`, the
 * pubsub service's too: clients see one form wherever they configure a node), and notifications to the resources that asked for a node with
 * `NODE+notify` in their entity capabilities (XEP-0115). What is PEP's own lives here: the
 * account's store, addressing by the account's bare JID, who hears about a node (the account's
 * contacts' interested resources), the default configuration, and the bookmarks compatibility:
 * native bookmarks (XEP-0402) are one node; `legacyBookmarks` and `bookmarksFromLegacy` convert
 * to and from the XEP-0048 `<storage/>` element.
 * @module
 */
import { childElements, elem, type Element, text } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { bareJidOf } from "../xmpp/jid.ts";
import type { Limits } from "../limits.ts";
import type { Roster } from "../core/session.ts";
import type { AccountOutput } from "../core/types.ts";
import type { AccountIqCtx, AccountIqResult, Module, ResourceView } from "../core/types.ts";
import {
  NS_BOOKMARKS2,
  NS_CLIENT,
  NS_DISCO_ITEMS,
  NS_LEGACY_BOOKMARKS,
  NS_PUBSUB,
  NS_PUBSUB_OWNER,
} from "../xmpp/namespaces.ts";
import { mayAccess, type Requester } from "../pubsub/access.ts";
import { errorStanza } from "../pubsub/errors.ts";
import {
  configuration,
  configure,
  create,
  deleteNode,
  eventOf,
  items as retrieveItems,
  itemsEvent,
  lastItemEvent,
  type Notification,
  type Outcome,
  publish,
  publishAsService,
  retract,
  retractEvent,
  type ServiceCtx,
} from "../pubsub/engine.ts";
import {
  dataBytes,
  itemLimit,
  type NodeConfig,
  nodeCount,
  nodeOf,
  overQuota,
  type PubsubData,
  pubsubData,
  type PubsubLimits,
  type PubsubNode,
  withNode,
} from "../pubsub/node.ts";

export { nodeBytes, nodeOf } from "../pubsub/node.ts";

/** The keyval store of PEP data. */
export const PEP_STORE = "pep";

/** What the `pep` store holds for an account: the engine's data, as stored since PEP began. */
export type PepData = PubsubData;

/** The stored data, or no nodes at all. */
export const pepData: (data: unknown) => PepData = pubsubData;

/** What the account's PEP data costs (measured once for data stored before it was counted). */
export const pepBytes: (data: PepData) => number = dataBytes;

/** XEP-0163 §4: presence access, one item, the last one sent to new subscribers (as Prosody). */
const DEFAULT_CONFIG: NodeConfig = {
  persistItems: true,
  accessModel: "presence",
  maxItems: 1,
  sendLastPublishedItem: "on_sub_and_presence",
  notifyRetract: true,
  notifyDelete: true,
};

/** The `pep_*` bounds, for each account's service. */
function pepLimits(limits: Limits): PubsubLimits {
  return {
    nodes: limits.pepNodes,
    items: limits.pepItems,
    itemBytes: limits.pepItemBytes,
    bytes: limits.pepBytes,
  };
}

// --- who asks, who hears ---------------------------------------------------------------------

/** What access models know of `bare` on the account `owner`: its roster subscription, groups. */
function requesterOf(owner: string, roster: Roster | undefined, bare: string): Requester {
  const items = roster?.items;
  const item = items !== undefined && Object.hasOwn(items, bare) ? items[bare] : undefined;
  const sub = item?.subscription;
  return {
    owner: bare === owner,
    presenceSubscribed: sub === "from" || sub === "both",
    rosterGroups: item?.groups ?? [],
  };
}

/** The account's own resources own its nodes; nobody else may publish or manage them. */
function selfOf(ctx: AccountIqCtx): Requester {
  return { owner: ctx.self, presenceSubscribed: false };
}

function wantsNotify(r: ResourceView, node: string): boolean {
  return r.available && (r.features ?? []).includes(`${node}+notify`);
}

/**
 * Who may hear about a node: the owner and the contacts with presence access whom the access
 * model lets see it (all of them on open and presence nodes, those in an allowed group on
 * roster nodes, none on whitelist nodes).
 */
function audience(config: NodeConfig, owner: string, roster: Roster | undefined): string[] {
  const out = [owner];
  if (roster === undefined) return out;
  for (const [jid, item] of Object.entries(roster.items)) {
    if (jid === owner) continue;
    // Open nodes reach contacts too, but only those whose presence tells us their caps.
    if (item.subscription !== "from" && item.subscription !== "both") continue;
    const who = requesterOf(owner, roster, jid);
    if (mayAccess(config.accessModel, who, config.rosterGroupsAllowed)) out.push(jid);
  }
  return out;
}

/**
 * The resources to notify about `node` (XEP-0163 §4: interest is `NODE+notify` in caps); none
 * when the node's `pubsub#deliver_notifications` is off.
 */
function recipients(node: string, config: NodeConfig, ctx: AccountIqCtx): string[] {
  if (config.deliverNotifications === false) return [];
  const resourcesOf = ctx.resourcesOf ?? (() => []);
  return audience(config, ctx.bare, ctx.roster).flatMap((bare) =>
    resourcesOf(bare).filter((r) => wantsNotify(r, node)).map((r) => r.fullJid)
  );
}

/** The engine's view of the account's service. */
function serviceOf(ctx: AccountIqCtx): ServiceCtx {
  return {
    limits: pepLimits(ctx.limits),
    defaultConfig: DEFAULT_CONFIG,
    autoCreate: true,
    newId: () => ctx.newId(),
    subscribers: (name, config) => recipients(name, config, ctx),
    quotaText: `Personal eventing data is limited to ${ctx.limits.pepBytes} bytes`,
  };
}

/**
 * Deliveries of notifications, each a headline from the account (XEP-0060 §7.1.2.1): the
 * owner's sessions directly (ahead of the iq reply), others routed.
 */
function notify(owner: string, notifications: readonly Notification[]): AccountOutput[] {
  return notifications.map(({ to, event }) => {
    const stanza = elem("message", { xmlns: NS_CLIENT, type: "headline", from: owner, to }, [
      event,
    ]);
    return bareJidOf(to) === owner
      ? { kind: "deliver" as const, to, stanza }
      : { kind: "route" as const, stanza };
  });
}

/** The same event payload to each of `to`. */
function notifyEach(owner: string, to: readonly string[], payload: Element): AccountOutput[] {
  const event = eventOf(payload);
  return notify(owner, to.map((jid) => ({ to: jid, event })));
}

/** The account's answer to `iq` from the engine's outcome. */
function answer(iq: Element, outcome: Outcome, owner: string): AccountIqResult {
  if ("error" in outcome) return { replies: [errorStanza(iq, outcome.error)] };
  const { data, result, notifications } = outcome;
  return {
    ...(data === undefined ? {} : { data }),
    ...(notifications === undefined ? {} : { outputs: notify(owner, notifications) }),
    replies: [iqResult(iq, result)],
  };
}

// --- the account's iq handlers ---------------------------------------------------------------

function onItems(data: PepData, iq: Element, items: Element, ctx: AccountIqCtx): AccountIqResult {
  const name = items.attrs.node;
  const legacy = name === undefined || nodeOf(data, name) !== undefined
    ? undefined
    : legacyNode(data, name);
  // The legacy node is only ever read: it joins the data the engine reads, never the stored.
  const view = legacy === undefined
    ? data
    : { nodes: { ...data.nodes, [NS_LEGACY_BOOKMARKS]: legacy } };
  const requester = iq.attrs.from === undefined ? ctx.bare : bareJidOf(iq.attrs.from) ?? "";
  const who = requesterOf(ctx.bare, ctx.roster, requester);
  return answer(iq, retrieveItems(view, items, who), ctx.bare);
}

function onAffiliations(data: PepData, iq: Element, ctx: AccountIqCtx): AccountIqResult {
  const own = ctx.self ? Object.keys(data.nodes) : [];
  const affiliations = own.map((node) => elem("affiliation", { node, affiliation: "owner" }));
  return {
    replies: [
      iqResult(iq, elem("pubsub", { xmlns: NS_PUBSUB }, [elem("affiliations", {}, affiliations)])),
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
    case "publish": {
      const options = kids.find((k) => k.name === "publish-options");
      const publisher = iq.attrs.from ?? ctx.bare;
      const outcome = publish(data, first, options, publisher, selfOf(ctx), serviceOf(ctx));
      return answer(iq, outcome, ctx.bare);
    }
    case "retract":
      return answer(iq, retract(data, first, selfOf(ctx), serviceOf(ctx)), ctx.bare);
    case "create": {
      const configureEl = kids.find((k) => k.name === "configure");
      return answer(iq, create(data, first, configureEl, selfOf(ctx), serviceOf(ctx)), ctx.bare);
    }
    case "get items":
      return onItems(data, iq, first, ctx);
    case "get affiliations":
      return onAffiliations(data, iq, ctx);
    case "get subscriptions":
      // Interest is implicit (XEP-0163 §4): there are no explicit subscriptions to list.
      return {
        replies: [iqResult(iq, elem("pubsub", { xmlns: NS_PUBSUB }, [elem("subscriptions")]))],
      };
  }
  return {
    replies: [errorStanza(iq, {
      condition: "feature-not-implemented",
      pubsub: "unsupported",
      feature: first.name,
    })],
  };
}

/** `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"/>`: the owner's node management. */
export function onPubsubOwnerIq(
  stored: unknown,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  const data = pepData(stored);
  const first = childElements(payload, NS_PUBSUB_OWNER)[0];
  if (first?.name === "configure") {
    const outcome = iq.attrs.type === "get"
      ? configuration(data, first, selfOf(ctx), pepLimits(ctx.limits))
      : configure(data, first, selfOf(ctx), serviceOf(ctx));
    return answer(iq, outcome, ctx.bare);
  }
  if (first?.name === "delete" && iq.attrs.type === "set") {
    return answer(iq, deleteNode(data, first, selfOf(ctx), serviceOf(ctx)), ctx.bare);
  }
  return { replies: [errorReply(iq, "feature-not-implemented")] };
}

/**
 * XEP-0030 disco#items on an account (XEP-0060 §5.2, as Prosody): the nodes the requester may
 * see, each named by its `pubsub#title`; the owner sees them all. Items of a node are not
 * browsed (`item-not-found`, as for any node of an account).
 */
export function onDiscoItems(
  stored: unknown,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  if (payload.attrs.node !== undefined) return { replies: [errorReply(iq, "item-not-found")] };
  const requester = iq.attrs.from === undefined ? ctx.bare : bareJidOf(iq.attrs.from) ?? "";
  const who = requesterOf(ctx.bare, ctx.roster, requester);
  const visible = Object.entries(pepData(stored).nodes).filter(([, node]) =>
    mayAccess(node.config.accessModel, who, node.config.rosterGroupsAllowed)
  );
  const items = visible.map(([node, { config }]) =>
    elem("item", { jid: ctx.bare, node, name: config.title })
  );
  return { replies: [iqResult(iq, elem("query", { xmlns: NS_DISCO_ITEMS }, items))] };
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
  const who = requesterOf(owner, roster, bare);
  const out: AccountOutput[] = [];
  for (const [name, node] of Object.entries(pepData(stored).nodes)) {
    if (!wanted.has(`${name}+notify`)) continue;
    const payload = lastItemEvent(name, node, who);
    if (payload !== undefined) out.push(...notifyEach(owner, [fullJid], payload));
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
  const item = { id, payload, publisher: ctx.bare };
  const done = publishAsService(pepData(stored), name, item, serviceOf(ctx));
  return done === undefined
    ? undefined
    : { data: done.data, outputs: notify(ctx.bare, done.notifications) };
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
  const limits = pepLimits(ctx.limits);
  const before = nodeOf(data, NS_BOOKMARKS2);
  if (before === undefined && nodeCount(data) >= limits.nodes) return undefined;
  const config = before?.config ?? BOOKMARKS_CONFIG;
  const publisher = ctx.bare;
  // One item per room (XEP-0402 §3: the id is the room's JID); the last mention wins.
  const byRoom = new Map(bookmarksFromLegacy(storage).map((b) => [b.id, { ...b, publisher }]));
  const items = [...byRoom.values()].slice(-itemLimit(config, limits));
  const next = withNode(data, NS_BOOKMARKS2, { config, items });
  if (overQuota(data, next, limits)) return undefined;
  const ids = new Set(items.map((i) => i.id));
  const gone = (before?.items ?? []).filter((i) => !ids.has(i.id)).map((i) => i.id);
  const to = recipients(NS_BOOKMARKS2, config, ctx);
  const outputs = [
    ...items.flatMap((i) => notifyEach(ctx.bare, to, itemsEvent(NS_BOOKMARKS2, i, config))),
    ...(gone.length === 0 ? [] : notifyEach(ctx.bare, to, retractEvent(NS_BOOKMARKS2, gone))),
  ];
  return { data: next, outputs };
}

/**
 * XEP-0048 §3 over PEP (XEP-0411 §4): a read of the legacy `storage:bookmarks` node that does
 * not exist is answered from the XEP-0402 node, as one item `current`.
 */
function legacyNode(data: PepData, name: string): PubsubNode | undefined {
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
  "access-roster",
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
      // The account's items are its nodes: answered here rather than by disco, which keeps no
      // account data (and so answered for contacts too, by what each may see).
      [`${NS_DISCO_ITEMS} query`]: onDiscoItems,
    },
    // Only the owner configures, deletes and purges its nodes; others' requests are forbidden.
    access: { [`${NS_PUBSUB_OWNER} pubsub`]: { get: "self", set: "self", refusal: "forbidden" } },
    onCaps: lastItemsFor,
  },
};
