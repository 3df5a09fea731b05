import assert from "node:assert/strict";
import { elem, type Element, serialize, stanza } from "../../lib/xml/element.ts";
import { findForm, parseForm } from "../../lib/xmpp/forms.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { NS_PUBSUB, NS_PUBSUB_OWNER } from "../../lib/xmpp/namespaces.ts";
import { accessRefusal, mayAccess, type Requester } from "../../lib/pubsub/access.ts";
import { errorStanza } from "../../lib/pubsub/errors.ts";
import {
  configuration,
  configure,
  create,
  deleteNode,
  type Done,
  items,
  lastItemEvent,
  type Outcome,
  publish,
  publishAsService,
  purge,
  retract,
  type ServiceCtx,
} from "../../lib/pubsub/engine.ts";
import {
  dataBytes,
  nodeBytes,
  type NodeConfig,
  type PubsubData,
  pubsubData,
} from "../../lib/pubsub/node.ts";

const SERVICE = "pubsub.example.com";
const OWNER: Requester = { owner: true, presenceSubscribed: false };
const CONTACT: Requester = { owner: false, presenceSubscribed: true };
const STRANGER: Requester = { owner: false, presenceSubscribed: false };
const NS_TUNE = "http://jabber.org/protocol/tune";
const EV = "http://jabber.org/protocol/pubsub#event";

const DEFAULTS: NodeConfig = {
  persistItems: true,
  accessModel: "presence",
  maxItems: 1,
  sendLastPublishedItem: "on_sub_and_presence",
  notifyRetract: true,
  notifyDelete: true,
};

function ctx(over: Partial<ServiceCtx> = {}): ServiceCtx {
  let n = 0;
  return {
    limits: { nodes: 4, items: 10, itemBytes: 256, bytes: 4096 },
    defaultConfig: DEFAULTS,
    autoCreate: true,
    newId: () => `gen${++n}`,
    subscribers: () => ["romeo@example.com/orchard", "juliet@example.com"],
    quotaText: "Data is limited",
    ...over,
  };
}

function tune(title: string): Element {
  return elem("tune", { xmlns: NS_TUNE }, [elem("title", {}, [title])]);
}

function publishEl(node: string, id: string | undefined, payload: Element): Element {
  return elem("publish", { xmlns: NS_PUBSUB, node }, [elem("item", { id }, [payload])]);
}

/** A `publish-options` (or node configuration) form with these fields. */
function form(formType: string, fields: Readonly<Record<string, string>>): Element {
  return elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    elem("field", { var: "FORM_TYPE", type: "hidden" }, [elem("value", {}, [formType])]),
    ...Object.entries(fields).map(([k, v]) => elem("field", { var: k }, [elem("value", {}, [v])])),
  ]);
}

function options(fields: Readonly<Record<string, string>>): Element {
  return elem("publish-options", { xmlns: NS_PUBSUB }, [
    form("http://jabber.org/protocol/pubsub#publish-options", fields),
  ]);
}

function done(o: Outcome): Done {
  assert.ok(!("error" in o), `refused: ${JSON.stringify(o)}`);
  return o;
}

/** An outcome with its elements serialized, for exact comparison. */
function shown(o: Outcome): unknown {
  if ("error" in o) return o;
  return {
    data: o.data === undefined ? undefined : shownData(o.data),
    result: o.result === undefined ? undefined : serialize(o.result, ""),
    notifications: o.notifications?.map((n) => [n.to, serialize(n.event, "")]),
  };
}

function shownData(d: PubsubData): unknown {
  return {
    bytes: d.bytes,
    nodes: Object.entries(d.nodes).map(([name, n]) => ({
      name,
      config: n.config,
      items: n.items.map((i) => [i.id, i.publisher, serialize(i.payload, "")]),
    })),
  };
}

/** Publishes each [node, id, title] in order, with the options given. */
function published(
  list: readonly [string, string, string][],
  opts?: Element,
  c = ctx(),
): PubsubData {
  let data = pubsubData(undefined);
  for (const [node, id, title] of list) {
    data = done(publish(data, publishEl(node, id, tune(title)), opts, "o@x/a", OWNER, c)).data!;
  }
  return data;
}

const TUNE_A = `<tune xmlns="${NS_TUNE}"><title>A</title></tune>`;

Deno.test("engine: publish creates the node, stores the item and notifies every subscriber", () => {
  const o = publish(
    pubsubData(undefined),
    publishEl(NS_TUNE, "t1", tune("A")),
    undefined,
    "owner@example.com/desk",
    OWNER,
    ctx(),
  );
  const event = `<event xmlns="${EV}"><items node="${NS_TUNE}"><item id="t1">${TUNE_A}</item>` +
    `</items></event>`;
  assert.deepEqual(shown(o), {
    data: {
      bytes: NS_TUNE.length + TUNE_A.length + "t1".length + "owner@example.com/desk".length,
      nodes: [{
        name: NS_TUNE,
        config: DEFAULTS,
        items: [["t1", "owner@example.com/desk", TUNE_A]],
      }],
    },
    result: `<pubsub xmlns="${NS_PUBSUB}"><publish node="${NS_TUNE}"><item id="t1"/></publish>` +
      `</pubsub>`,
    notifications: [["romeo@example.com/orchard", event], ["juliet@example.com", event]],
  });
});

Deno.test("engine: an item without id gets one; publish-options configure a new node", () => {
  const o = done(publish(
    pubsubData(undefined),
    publishEl(NS_TUNE, undefined, tune("A")),
    options({ "pubsub#access_model": "open", "pubsub#max_items": "3" }),
    "o@x/a",
    OWNER,
    ctx({ subscribers: () => [] }),
  ));
  assert.equal(
    serialize(o.result!, ""),
    `<pubsub xmlns="${NS_PUBSUB}"><publish node="${NS_TUNE}"><item id="gen1"/></publish></pubsub>`,
  );
  assert.deepEqual(o.data!.nodes[NS_TUNE].config, {
    ...DEFAULTS,
    accessModel: "open",
    maxItems: 3,
  });
  assert.deepEqual(o.notifications, []);
});

Deno.test("engine: max_items keeps the newest items; a republished id moves to the end", () => {
  const data = published([
    [NS_TUNE, "a", "1"],
    [NS_TUNE, "b", "2"],
    [NS_TUNE, "a", "3"],
    [NS_TUNE, "c", "4"],
  ], options({ "pubsub#max_items": "2" }));
  assert.deepEqual(data.nodes[NS_TUNE].items.map((i) => [i.id, serialize(i.payload, "")]), [
    ["a", `<tune xmlns="${NS_TUNE}"><title>3</title></tune>`],
    ["c", `<tune xmlns="${NS_TUNE}"><title>4</title></tune>`],
  ]);
  // The tracked size follows the trimming.
  assert.equal(data.bytes, dataBytes({ nodes: data.nodes }));
  // max is the service's bound on items.
  const max = published(
    [[NS_TUNE, "a", "1"], [NS_TUNE, "b", "2"], [NS_TUNE, "c", "3"]],
    options({ "pubsub#max_items": "max" }),
    ctx({ limits: { nodes: 4, items: 2, itemBytes: 256, bytes: 4096 } }),
  );
  assert.deepEqual(max.nodes[NS_TUNE].items.map((i) => i.id), ["b", "c"]);
  // Lowering max_items by configuration trims at once.
  const c = configure(
    data,
    elem("configure", { node: NS_TUNE }, [form("x", { "pubsub#max_items": "1" })]),
    OWNER,
    ctx(),
  );
  assert.deepEqual(done(c).data!.nodes[NS_TUNE].items.map((i) => i.id), ["c"]);
  assert.equal("notifications" in c, false);
});

Deno.test("engine: publish-options that differ from the node's are precondition-not-met", () => {
  const data = published([[NS_TUNE, "a", "1"]], options({ "pubsub#access_model": "open" }));
  const again = (fields: Record<string, string>) =>
    publish(data, publishEl(NS_TUNE, "b", tune("2")), options(fields), "o@x/a", OWNER, ctx());
  assert.ok("data" in again({ "pubsub#access_model": "open" }));
  // Options at their defaults match an absent optional field (itemreply is none by default, as
  // Prosody's; owner is another value).
  assert.ok("data" in again({ "pubsub#itemreply": "none" }));
  assert.ok(
    "data" in again({ "pubsub#deliver_payloads": "1", "pubsub#publish_model": "publishers" }),
  );
  assert.ok("error" in again({ "pubsub#itemreply": "owner" }));
  const refused = again({ "pubsub#access_model": "presence" });
  assert.ok("error" in refused);
  const iq = stanza("iq", { type: "set", id: "p1", from: "o@x/a", to: "o@x" });
  assert.equal(
    serializeTop(errorStanza(iq, refused.error)),
    `<iq type="error" id="p1" from="o@x" to="o@x/a"><error type="cancel">` +
      `<conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
      `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">` +
      `Field does not match: access_model</text>` +
      `<precondition-not-met xmlns="http://jabber.org/protocol/pubsub#errors"/></error></iq>`,
  );
  assert.deepEqual(refused, {
    error: {
      condition: "conflict",
      pubsub: "precondition-not-met",
      text: "Field does not match: access_model",
    },
  });
  // An option we cannot take is a bad request, not a failed precondition.
  assert.deepEqual(again({ "pubsub#access_model": "authorize" }), {
    error: {
      condition: "bad-request",
      pubsub: "invalid-options",
      text: "Access model authorize is not supported",
    },
  });
  // PEP takes Prosody's whole form, but refuses the values it does not serve.
  const invalid = (text: string) => ({
    error: { condition: "bad-request", pubsub: "invalid-options", text },
  });
  assert.deepEqual(
    again({ "pubsub#publish_model": "open" }),
    invalid("pubsub#publish_model open is not supported"),
  );
  assert.deepEqual(
    again({ "pubsub#deliver_payloads": "0" }),
    invalid("pubsub#deliver_payloads 0 is not supported"),
  );
  assert.deepEqual(
    again({ "pubsub#notification_type": "normal" }),
    invalid("pubsub#notification_type normal is not supported"),
  );
  assert.deepEqual(
    again({ "pubsub#itemreply": "anyone" }),
    invalid("Invalid value for pubsub#itemreply"),
  );
});

Deno.test("engine: publish refusals, in the order they are checked", () => {
  const empty = pubsubData(undefined);
  const c = ctx();
  const pub = (el: Element, who = OWNER, cc = c) => publish(empty, el, undefined, "o@x/a", who, cc);
  assert.deepEqual(pub(publishEl(NS_TUNE, "a", tune("A")), CONTACT), {
    error: { condition: "forbidden" },
  });
  assert.deepEqual(pub(publishEl("", "a", tune("A"))), {
    error: { condition: "bad-request", pubsub: "nodeid-required" },
  });
  assert.deepEqual(pub(elem("publish", { xmlns: NS_PUBSUB, node: NS_TUNE })), {
    error: { condition: "bad-request", pubsub: "item-required" },
  });
  assert.deepEqual(
    pub(
      elem("publish", { xmlns: NS_PUBSUB, node: NS_TUNE }, [elem("item", { id: "a" })]),
    ),
    {
      error: { condition: "bad-request", pubsub: "invalid-payload" },
    },
  );
  const big = elem("tune", { xmlns: NS_TUNE }, ["x".repeat(300)]);
  assert.deepEqual(pub(publishEl(NS_TUNE, "a", big)), {
    error: {
      condition: "not-acceptable",
      pubsub: "payload-too-big",
      text: "An item's payload is limited to 256 bytes",
    },
  });
  assert.deepEqual(pub(publishEl(NS_TUNE, "a", tune("A")), OWNER, ctx({ autoCreate: false })), {
    error: { condition: "item-not-found" },
  });
  const full = ctx({ limits: { nodes: 0, items: 10, itemBytes: 256, bytes: 4096 } });
  assert.deepEqual(pub(publishEl(NS_TUNE, "a", tune("A")), OWNER, full), {
    error: { condition: "resource-constraint", text: "Too many nodes" },
  });
  const small = ctx({ limits: { nodes: 4, items: 10, itemBytes: 256, bytes: 50 } });
  assert.deepEqual(pub(publishEl(NS_TUNE, "a", tune("A")), OWNER, small), {
    error: { condition: "resource-constraint", text: "Data is limited" },
  });
});

Deno.test("engine: access models decide who may read, with the refusal XEP-0060 names", () => {
  const table: [NodeConfig["accessModel"], Requester, boolean][] = [
    ["open", STRANGER, true],
    ["presence", STRANGER, false],
    ["presence", CONTACT, true],
    ["whitelist", CONTACT, false],
    ["whitelist", OWNER, true],
    ["presence", OWNER, true],
  ];
  for (const [model, who, ok] of table) assert.equal(mayAccess(model, who), ok, `${model}`);
  assert.deepEqual(accessRefusal({ ...DEFAULTS, accessModel: "presence" }), {
    condition: "not-authorized",
    pubsub: "presence-subscription-required",
  });
  assert.deepEqual(accessRefusal({ ...DEFAULTS, accessModel: "whitelist" }), {
    condition: "not-allowed",
    pubsub: "closed-node",
  });

  const data = published([[NS_TUNE, "a", "1"]]);
  const get = elem("items", { node: NS_TUNE });
  assert.deepEqual(items(data, get, STRANGER), {
    error: { condition: "not-authorized", pubsub: "presence-subscription-required" },
  });
  assert.equal(
    serialize(done(items(data, get, CONTACT)).result!, ""),
    `<pubsub xmlns="${NS_PUBSUB}"><items node="${NS_TUNE}"><item id="a">` +
      `<tune xmlns="${NS_TUNE}"><title>1</title></tune></item></items></pubsub>`,
  );
  const closed = published([[NS_TUNE, "a", "1"]], options({ "pubsub#access_model": "whitelist" }));
  assert.deepEqual(items(closed, get, CONTACT), {
    error: { condition: "not-allowed", pubsub: "closed-node" },
  });
  // The last item follows the same rule.
  assert.equal(lastItemEvent(NS_TUNE, closed.nodes[NS_TUNE], CONTACT), undefined);
  assert.equal(
    serialize(lastItemEvent(NS_TUNE, data.nodes[NS_TUNE], CONTACT)!, ""),
    `<items node="${NS_TUNE}"><item id="a"><tune xmlns="${NS_TUNE}"><title>1</title></tune>` +
      `</item></items>`,
  );
});

Deno.test("engine: items by id and max_items, newest last; a missing node is item-not-found", () => {
  const data = published(
    [[NS_TUNE, "a", "1"], [NS_TUNE, "b", "2"], [NS_TUNE, "c", "3"]],
    options({ "pubsub#max_items": "5" }),
  );
  const ids = (el: Element) =>
    (done(items(data, el, OWNER)).result!.children[0] as Element).children.map((i) =>
      (i as Element).attrs.id
    );
  assert.deepEqual(ids(elem("items", { node: NS_TUNE })), ["a", "b", "c"]);
  assert.deepEqual(ids(elem("items", { node: NS_TUNE, max_items: "2" })), ["b", "c"]);
  assert.deepEqual(ids(elem("items", { node: NS_TUNE, max_items: "0" })), []);
  assert.deepEqual(
    ids(elem("items", { xmlns: NS_PUBSUB, node: NS_TUNE }, [
      elem("item", { id: "c" }),
      elem("item", { id: "a" }),
      elem("item", { id: "zz" }),
    ])),
    ["a", "c"],
  );
  assert.deepEqual(items(data, elem("items", { node: "other" }), OWNER), {
    error: { condition: "item-not-found" },
  });
  assert.deepEqual(items(data, elem("items"), OWNER), {
    error: { condition: "bad-request", pubsub: "nodeid-required" },
  });
});

Deno.test("engine: retract notifies as the request or the node's notify_retract says", () => {
  const data = published(
    [[NS_TUNE, "a", "1"], [NS_TUNE, "b", "2"]],
    options({
      "pubsub#max_items": "5",
    }),
  );
  const req = (notify?: string, ids = ["a"]) =>
    elem(
      "retract",
      { xmlns: NS_PUBSUB, node: NS_TUNE, notify },
      ids.map((id) => elem("item", { id })),
    );
  const c = ctx({ subscribers: () => ["romeo@example.com/orchard"] });
  assert.deepEqual(shown(retract(data, req(), OWNER, c)), {
    data: shownData(done(retract(data, req("0"), OWNER, c)).data!),
    result: undefined,
    notifications: [[
      "romeo@example.com/orchard",
      `<event xmlns="${EV}"><items node="${NS_TUNE}"><retract id="a"/></items></event>`,
    ]],
  });
  assert.deepEqual(done(retract(data, req("false"), OWNER, c)).notifications, []);
  assert.deepEqual(
    done(retract(data, req(), OWNER, c)).data!.nodes[NS_TUNE].items.map((i) => i.id),
    [
      "b",
    ],
  );
  assert.deepEqual(retract(data, req(undefined, ["a", "zz"]), OWNER, c), {
    error: { condition: "item-not-found" },
  });
  assert.deepEqual(retract(data, req(undefined, []), OWNER, c), {
    error: { condition: "bad-request", pubsub: "item-required" },
  });
  assert.deepEqual(retract(data, req(), CONTACT, c), { error: { condition: "forbidden" } });
});

Deno.test("engine: purge empties the node and notifies unless notify_retract is off", () => {
  const data = published(
    [[NS_TUNE, "a", "1"], [NS_TUNE, "b", "2"]],
    options({
      "pubsub#max_items": "5",
    }),
  );
  const c = ctx({ subscribers: () => ["romeo@example.com/orchard"] });
  assert.deepEqual(shown(purge(data, elem("purge", { node: NS_TUNE }), OWNER, c)), {
    data: {
      bytes: NS_TUNE.length,
      nodes: [{ name: NS_TUNE, config: { ...DEFAULTS, maxItems: 5 }, items: [] }],
    },
    result: undefined,
    notifications: [[
      "romeo@example.com/orchard",
      `<event xmlns="${EV}"><purge node="${NS_TUNE}"/></event>`,
    ]],
  });
  const quiet = published([[NS_TUNE, "a", "1"]], options({ "pubsub#notify_retract": "0" }));
  assert.deepEqual(
    done(purge(quiet, elem("purge", { node: NS_TUNE }), OWNER, c)).notifications,
    [],
  );
  assert.deepEqual(purge(data, elem("purge", { node: "other" }), OWNER, c), {
    error: { condition: "item-not-found" },
  });
  assert.deepEqual(purge(data, elem("purge", { node: NS_TUNE }), CONTACT, c), {
    error: { condition: "forbidden" },
  });
});

Deno.test("engine: delete removes the node and notifies unless notify_delete is off", () => {
  const data = published([[NS_TUNE, "a", "1"], ["urn:other", "b", "2"]]);
  const c = ctx({ subscribers: (name) => name === NS_TUNE ? ["romeo@example.com/orchard"] : [] });
  assert.deepEqual(shown(deleteNode(data, elem("delete", { node: NS_TUNE }), OWNER, c)), {
    data: {
      bytes: nodeBytes("urn:other", data.nodes["urn:other"]),
      nodes: [{
        name: "urn:other",
        config: DEFAULTS,
        items: [["b", "o@x/a", `<tune xmlns="${NS_TUNE}"><title>2</title></tune>`]],
      }],
    },
    result: undefined,
    notifications: [[
      "romeo@example.com/orchard",
      `<event xmlns="${EV}"><delete node="${NS_TUNE}"/></event>`,
    ]],
  });
  const quiet = published([[NS_TUNE, "a", "1"]], options({ "pubsub#notify_delete": "false" }));
  assert.deepEqual(
    done(deleteNode(quiet, elem("delete", { node: NS_TUNE }), OWNER, c)).notifications,
    [],
  );
  assert.deepEqual(deleteNode(data, elem("delete", {}), OWNER, c), {
    error: { condition: "bad-request", pubsub: "nodeid-required" },
  });
});

Deno.test("engine: create with a configuration form; configuration reads it back", () => {
  const c = ctx();
  const cfg = elem("configure", {}, [
    form("http://jabber.org/protocol/pubsub#node_config", {
      "pubsub#title": "Tunes",
      "pubsub#access_model": "open",
    }),
  ]);
  const o = create(pubsubData(undefined), elem("create", { node: NS_TUNE }), cfg, OWNER, c);
  assert.deepEqual(shown(o), {
    data: {
      bytes: NS_TUNE.length + "Tunes".length,
      nodes: [{
        name: NS_TUNE,
        config: { ...DEFAULTS, title: "Tunes", accessModel: "open" },
        items: [],
      }],
    },
    result: undefined,
    notifications: undefined,
  });
  const data = done(o).data!;
  assert.deepEqual(create(data, elem("create", { node: NS_TUNE }), undefined, OWNER, c), {
    error: { condition: "conflict" },
  });
  assert.deepEqual(create(data, elem("create", {}), undefined, OWNER, c), {
    error: { condition: "not-acceptable", pubsub: "nodeid-required" },
  });
  const form0 = done(configuration(data, elem("configure", { node: NS_TUNE }), OWNER, c.limits))
    .result!;
  assert.equal(form0.xmlns, NS_PUBSUB_OWNER);
  const filled = parseForm(findForm(form0.children[0] as Element)!);
  const fields = new Map([...filled.byVar].map(([k, f]) => [k, f.values[0]]));
  assert.equal(fields.get("pubsub#title"), "Tunes");
  assert.equal(fields.get("pubsub#access_model"), "open");
  assert.equal(fields.get("pubsub#max_items"), "1");
  // Prosody's form: the range of max_items is the service's item bound; absent options show
  // what they mean.
  const validate = (form0.children[0] as Element).children.flatMap((x) =>
    typeof x === "string" ? [] : x.children
  ).find((f) => typeof f !== "string" && f.attrs.var === "pubsub#max_items") as Element;
  assert.equal(
    serialize(validate.children[0] as Element),
    `<validate xmlns="http://jabber.org/protocol/xdata-validate" datatype="pubsub:integer-or-max">` +
      `<range min="1" max="10"/></validate>`,
  );
  assert.equal(fields.get("pubsub#itemreply"), "none");
  assert.equal(fields.get("pubsub#publish_model"), "publishers");
  assert.equal(fields.get("pubsub#notification_type"), "headline");
  // A cancelled form changes nothing and stores nothing.
  const cancel = elem("configure", { node: NS_TUNE }, [
    elem("x", { xmlns: "jabber:x:data", type: "cancel" }),
  ]);
  assert.deepEqual(configure(data, cancel, OWNER, c), {});
});

Deno.test("engine: the service's own publish keeps the bounds and notifies", () => {
  const c = ctx({ subscribers: () => ["juliet@example.com/balcony"] });
  const item = { id: "h1", payload: tune("A"), publisher: "o@x" };
  const r = publishAsService(pubsubData(undefined), NS_TUNE, item, c);
  assert.ok(r !== undefined);
  assert.deepEqual(r.data.nodes[NS_TUNE], { config: DEFAULTS, items: [item] });
  assert.deepEqual(r.notifications.map((n) => [n.to, serialize(n.event, "")]), [[
    "juliet@example.com/balcony",
    `<event xmlns="${EV}"><items node="${NS_TUNE}"><item id="h1">${TUNE_A}</item></items></event>`,
  ]]);
  const full = ctx({ limits: { nodes: 0, items: 10, itemBytes: 256, bytes: 4096 } });
  assert.equal(publishAsService(pubsubData(undefined), NS_TUNE, item, full), undefined);
  const small = ctx({ limits: { nodes: 4, items: 10, itemBytes: 8, bytes: 4096 } });
  assert.equal(publishAsService(pubsubData(undefined), NS_TUNE, item, small), undefined);
});

Deno.test("engine: itemreply=publisher puts the publisher's bare JID on items sent out", () => {
  const c = ctx({ subscribers: () => [SERVICE] });
  const o = done(publish(
    pubsubData(undefined),
    publishEl(NS_TUNE, "a", tune("A")),
    options({ "pubsub#itemreply": "publisher" }),
    "owner@example.com/desk",
    OWNER,
    c,
  ));
  assert.deepEqual(o.notifications!.map((n) => serialize(n.event, "")), [
    `<event xmlns="${EV}"><items node="${NS_TUNE}">` +
    `<item id="a" publisher="owner@example.com">${TUNE_A}</item></items></event>`,
  ]);
});
