/**
 * What the engine gained for a pubsub service: affiliations in the access rules, the optional
 * `ServiceCtx` switches (each off for PEP), and the byte accounting of affiliations and
 * subscriptions. PEP's behaviour with the switches off is `engine_test.ts`'s.
 */
import assert from "node:assert/strict";
import { elem, serialize } from "../../lib/xml/element.ts";
import { NS_PUBSUB, NS_PUBSUB_OWNER } from "../../lib/xmpp/namespaces.ts";
import {
  accessRefusal,
  mayAccess,
  mayPublish,
  mayRetract,
  type Requester,
} from "../../lib/pubsub/access.ts";
import {
  configure,
  create,
  deleteNode,
  type Done,
  publish,
  type ServiceCtx,
} from "../../lib/pubsub/engine.ts";
import {
  type AccessModel,
  type Affiliation,
  nodeBytes,
  type NodeConfig,
  type PubsubData,
  unmetPrecondition,
} from "../../lib/pubsub/node.ts";
import { refusal } from "../../lib/pubsub/errors.ts";

const CONFIG: NodeConfig = {
  persistItems: true,
  accessModel: "open",
  maxItems: 5,
  sendLastPublishedItem: "never",
  notifyRetract: true,
  notifyDelete: true,
};

function ctx(over: Partial<ServiceCtx> = {}): ServiceCtx {
  let n = 0;
  return {
    limits: { nodes: 4, items: 10, itemBytes: 256, bytes: 4096 },
    defaultConfig: CONFIG,
    autoCreate: false,
    newId: () => `gen${++n}`,
    subscribers: () => ["juliet@example.com"],
    quotaText: "Data is limited",
    ...over,
  };
}

function as(affiliation: Affiliation, extra: Partial<Requester> = {}): Requester {
  return { owner: false, presenceSubscribed: false, affiliation, ...extra };
}

const OWNER: Requester = { owner: true, presenceSubscribed: false };

Deno.test("access: affiliations come before the access model (XEP-0060 §4.1, §4.5)", () => {
  const models: AccessModel[] = ["open", "presence", "roster", "authorize", "whitelist"];
  for (const model of models) {
    for (const aff of ["owner", "publisher", "member"] as const) {
      assert.equal(mayAccess(model, as(aff)), true, `${model} ${aff}`);
    }
    assert.equal(mayAccess(model, as("outcast", { presenceSubscribed: true })), false, model);
  }
  assert.equal(mayAccess("open", as("none")), true);
  assert.equal(mayAccess("whitelist", as("publish-only")), false);
  assert.equal(mayAccess("presence", as("none", { presenceSubscribed: true })), true);
  assert.equal(mayAccess("roster", as("none", { rosterGroups: ["Staff"] }), ["Staff"]), true);
  assert.equal(mayAccess("roster", as("none", { rosterGroups: ["Friends"] }), ["Staff"]), false);
  assert.equal(mayAccess("authorize", as("none", { subscribed: true })), true);
  assert.equal(mayAccess("authorize", as("none")), false);
  assert.deepEqual(
    accessRefusal({ ...CONFIG, accessModel: "open" }, as("outcast")),
    refusal("forbidden"),
  );
  assert.deepEqual(
    accessRefusal({ ...CONFIG, accessModel: "roster" }),
    refusal("not-authorized", "not-in-roster-group"),
  );
  assert.deepEqual(
    accessRefusal({ ...CONFIG, accessModel: "authorize" }),
    refusal("not-authorized", "not-subscribed"),
  );
});

Deno.test("access: who publishes and retracts, by affiliation and publish model", () => {
  for (const aff of ["owner", "publisher", "publish-only"] as const) {
    assert.equal(mayPublish(CONFIG, as(aff)), true, aff);
  }
  for (const aff of ["member", "none", "outcast"] as const) {
    assert.equal(mayPublish(CONFIG, as(aff)), false, aff);
  }
  assert.equal(mayPublish({ ...CONFIG, publishModel: "open" }, as("none")), true);
  assert.equal(mayPublish({ ...CONFIG, publishModel: "open" }, as("outcast")), false);
  assert.equal(mayPublish({ ...CONFIG, publishModel: "subscribers" }, as("none")), false);
  assert.equal(
    mayPublish({ ...CONFIG, publishModel: "subscribers" }, as("none", { subscribed: true })),
    true,
  );
  // PEP's requester: the account or nobody.
  assert.equal(mayPublish(CONFIG, OWNER), true);
  assert.equal(mayPublish(CONFIG, { owner: false, presenceSubscribed: true }), false);
  assert.deepEqual(
    (["owner", "publisher", "publish-only", "member"] as const).map((a) => mayRetract(as(a))),
    [true, true, false, false],
  );
});

Deno.test("engine: instant nodes, the creator as owner, configure keeps affiliations", () => {
  const empty: PubsubData = { nodes: {} };
  const instant = elem("create", { xmlns: NS_PUBSUB });
  assert.deepEqual(create(empty, instant, undefined, OWNER, ctx()), {
    error: refusal("not-acceptable", "nodeid-required"),
  });
  const done = create(empty, instant, undefined, OWNER, ctx({ instantNodes: true }), "a@b") as Done;
  assert.equal(
    serialize(done.result!),
    `<pubsub xmlns="${NS_PUBSUB}"><create node="gen1"/></pubsub>`,
  );
  assert.deepEqual(done.data!.nodes.gen1.affiliations, { "a@b": "owner" });
  const form = elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    elem("field", { var: "pubsub#title" }, [elem("value", {}, ["T"])]),
  ]);
  const configured = configure(
    done.data!,
    elem("configure", { xmlns: NS_PUBSUB_OWNER, node: "gen1" }, [form]),
    OWNER,
    ctx(),
  ) as Done;
  assert.equal(configured.data!.nodes.gen1.config.title, "T");
  assert.deepEqual(configured.data!.nodes.gen1.affiliations, { "a@b": "owner" });
});

Deno.test("engine: delete redirects only when the service asks; precondition texts name the field", () => {
  const data: PubsubData = { nodes: { n: { config: CONFIG, items: [] } } };
  const del = elem("delete", { xmlns: NS_PUBSUB_OWNER, node: "n" }, [
    elem("redirect", { uri: "xmpp:x?;node=m" }),
  ]);
  const plain = deleteNode(data, del, OWNER, ctx()) as Done;
  assert.equal(
    serialize(plain.notifications![0].event),
    `<event xmlns="http://jabber.org/protocol/pubsub#event"><delete node="n"/></event>`,
  );
  const redirected = deleteNode(data, del, OWNER, ctx({ deleteRedirect: true })) as Done;
  assert.equal(
    serialize(redirected.notifications![0].event),
    `<event xmlns="http://jabber.org/protocol/pubsub#event"><delete node="n"><redirect uri="xmpp:x?;node=m"/></delete></event>`,
  );
  const pub = elem("publish", { xmlns: NS_PUBSUB, node: "n" }, [
    elem("item", { id: "1" }, [elem("p", { xmlns: "urn:p" })]),
  ]);
  const options = elem("publish-options", { xmlns: NS_PUBSUB }, [
    elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
      elem("field", { var: "pubsub#max_items" }, [elem("value", {}, ["3"])]),
    ]),
  ]);
  assert.deepEqual(publish(data, pub, options, "a@b/c", OWNER, ctx()), {
    error: refusal("conflict", "precondition-not-met", "Field does not match: max_items"),
  });
});

Deno.test("node: lists compare by value in preconditions; affiliations and subscriptions cost bytes", () => {
  const config: NodeConfig = { ...CONFIG, rosterGroupsAllowed: ["A", "B"] };
  assert.equal(unmetPrecondition(config, { rosterGroupsAllowed: ["A", "B"] }), undefined);
  assert.equal(unmetPrecondition(config, { rosterGroupsAllowed: ["A"] }), "rosterGroupsAllowed");
  const bare = nodeBytes("n", { config: CONFIG, items: [] });
  assert.equal(bare, 1);
  const withRecords = nodeBytes("n", {
    config: CONFIG,
    items: [],
    affiliations: { "a@b": "owner" },
    subscriptions: { "c@d/e": { state: "subscribed" } },
  });
  assert.equal(withRecords, 1 + (3 + 8) + (5 + 8));
});
