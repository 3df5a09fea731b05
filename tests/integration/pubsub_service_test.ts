/** The XEP-0060 service on pubsub.localhost with real clients, across a restart. */
import assert from "node:assert/strict";
import { configFromObject } from "../../lib/config.ts";
import { startServer } from "../../lib/shell/server.ts";
import { closeAll, connectPeer, errorOf, type Peer, subscribeMutually } from "./_peer.ts";
import type { TestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import {
  NS_DATA,
  NS_DISCO_ITEMS,
  NS_PUBSUB,
  NS_PUBSUB_EVENT,
  NS_PUBSUB_OWNER,
} from "../../lib/xmpp/namespaces.ts";

const FORM_SUBSCRIBE_AUTHORIZATION = "http://jabber.org/protocol/pubsub#subscribe_authorization";

const SERVICE = "pubsub.localhost";

/** A server on `dataDir` (kept across restarts) with admin@localhost as the service's admin. */
async function serverOn(dataDir: string): Promise<TestServer> {
  const server = await startServer(configFromObject({
    hosts: ["localhost"],
    data_dir: dataDir,
    interfaces: ["127.0.0.1"],
    c2s_port: 0,
    c2s_direct_tls_port: false,
    component_port: false,
    s2s_port: false,
    http: { http_port: false, https_port: false },
    log_level: "error",
    pubsub: { admins: ["admin@localhost"] },
  }, "test"));
  return { ...server, dataDir, stop: () => server.shutdown() };
}

function pubsubIq(type: "get" | "set", ...children: unknown[]) {
  return xml("iq", { type, to: SERVICE }, xml("pubsub", { xmlns: NS_PUBSUB }, ...children));
}

Deno.test("pubsub service: create, subscribe, publish with notification; nodes survive a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "pubsub-service-" });
  let server = await serverOn(dataDir);
  try {
    for (const u of ["admin", "bob"]) await server.accounts.create("localhost", u, "pw");
    const admin = await connectPeer(server, "admin", "a");
    const bob = await connectPeer(server, "bob", "b");
    // Notifications are headlines to the bare JID: they reach available resources only.
    await bob.xmpp.send(xml("presence"));

    // The host lists the service (XEP-0030 items).
    const items = await bob.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: NS_DISCO_ITEMS })),
    );
    const jids = items.getChild("query").getChildren("item").map((i: XmppClient) => i.attrs.jid);
    assert.ok(jids.includes(SERVICE), `disco#items: ${jids}`);

    // Only admins create nodes by default.
    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(pubsubIq("set", xml("create", { node: "news" })))),
      "forbidden",
    );
    await admin.xmpp.iqCaller.request(pubsubIq("set", xml("create", { node: "news" })));
    await bob.xmpp.iqCaller.request(
      pubsubIq("set", xml("subscribe", { node: "news", jid: "bob@localhost" })),
    );
    await admin.xmpp.iqCaller.request(pubsubIq(
      "set",
      xml(
        "publish",
        { node: "news" },
        xml("item", { id: "first" }, xml("entry", { xmlns: "urn:test" }, "hello")),
      ),
    ));
    const event = await bob.waitFor(
      (st) =>
        st.is("message") && st.attrs.from === SERVICE && st.getChild("event", NS_PUBSUB_EVENT),
      "the notification",
    );
    const item = event.getChild("event", NS_PUBSUB_EVENT).getChild("items").getChild("item");
    assert.equal(item.attrs.id, "first");
    assert.equal(item.getChild("entry", "urn:test").text(), "hello");
    await closeAll(admin, bob);
    await server.stop();

    server = await serverOn(dataDir);
    const again = await connectPeer(server, "bob", "b2");
    const stored = await again.xmpp.iqCaller.request(
      pubsubIq("get", xml("items", { node: "news" })),
    );
    const ids = stored.getChild("pubsub", NS_PUBSUB).getChild("items").getChildren("item")
      .map((i: XmppClient) => i.attrs.id);
    assert.deepEqual(ids, ["first"]);
    await closeAll(again);
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("pubsub service: switched off, its domain is not ours", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "pubsub-off-" });
  const server = await startServer(configFromObject({
    hosts: ["localhost"],
    data_dir: dataDir,
    interfaces: ["127.0.0.1"],
    c2s_port: 0,
    c2s_direct_tls_port: false,
    component_port: false,
    s2s_port: false,
    http: { http_port: false, https_port: false },
    log_level: "error",
    pubsub: { enabled: false },
  }, "test"));
  try {
    await server.accounts.create("localhost", "bob", "pw");
    const bob = await connectPeer(
      { ...server, dataDir, stop: () => server.shutdown() },
      "bob",
      "b",
    );
    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(pubsubIq("get", xml("items", { node: "news" })))),
      "remote-server-not-found",
    );
    await closeAll(bob);
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});

// --- the XEP-0060 use cases, each with real clients --------------------------------------------

function ownerIq(type: "get" | "set", ...children: unknown[]) {
  return xml("iq", { type, to: SERVICE }, xml("pubsub", { xmlns: NS_PUBSUB_OWNER }, ...children));
}

/** A submitted form of `formType` with one value per field. */
function submitForm(formType: string, fields: Readonly<Record<string, string>>) {
  return xml(
    "x",
    { xmlns: NS_DATA, type: "submit" },
    xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, formType)),
    ...Object.entries(fields).map(([v, value]) =>
      xml("field", { var: v }, xml("value", {}, value))
    ),
  );
}

const NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config";

/** Creates `node` as admin, configured by `fields`. */
async function createNode(admin: Peer, node: string, fields: Readonly<Record<string, string>>) {
  await admin.xmpp.iqCaller.request(pubsubIq(
    "set",
    xml("create", { node }),
    xml("configure", {}, submitForm(NODE_CONFIG, fields)),
  ));
}

function publishIq(node: string, id: string, text: string, options?: unknown) {
  return pubsubIq(
    "set",
    xml("publish", { node }, xml("item", { id }, xml("entry", { xmlns: "urn:test" }, text))),
    options === undefined ? undefined : xml("publish-options", {}, options),
  );
}

/** The form's fields, var to first value. */
function fieldsOf(x: XmppClient): Map<string, string | undefined> {
  return new Map(
    x.getChildren("field").map((f: XmppClient) => [f.attrs.var, f.getChildText("value")]),
  );
}

/** The stanza error of a refused request: condition, application condition, text. */
async function refusalOf(p: Promise<unknown>): Promise<[string, string | undefined, string]> {
  try {
    await p;
  } catch (e) {
    const err = e as { condition: string; text?: string; application?: { name: string } };
    return [err.condition, err.application?.name, err.text ?? ""];
  }
  return ["no error", undefined, ""];
}

/** The ids of the items of `node` as `peer` retrieves them. */
async function itemIds(peer: Peer, node: string): Promise<string[]> {
  const res = await peer.xmpp.iqCaller.request(pubsubIq("get", xml("items", { node })));
  return res.getChild("pubsub", NS_PUBSUB).getChild("items").getChildren("item")
    .map((i: XmppClient) => i.attrs.id);
}

/** Matches an event notification from the service whose payload `has` says so. */
function eventFrom(has: (event: XmppClient) => boolean): (st: XmppClient) => boolean {
  return (st) => {
    const event = st.is("message") && st.attrs.from === SERVICE
      ? st.getChild("event", NS_PUBSUB_EVENT)
      : undefined;
    return event !== undefined && has(event);
  };
}

/** A fresh server with admin and bob, both connected and available. */
async function withService(
  prefix: string,
  body: (admin: Peer, bob: Peer, server: TestServer) => Promise<void>,
): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix });
  const server = await serverOn(dataDir);
  try {
    for (const u of ["admin", "bob"]) await server.accounts.create("localhost", u, "pw");
    const admin = await connectPeer(server, "admin", "a");
    const bob = await connectPeer(server, "bob", "b");
    await admin.xmpp.send(xml("presence"));
    await bob.xmpp.send(xml("presence"));
    try {
      await body(admin, bob, server);
    } finally {
      await closeAll(admin, bob);
    }
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test("pubsub service: configure, max_items, preconditions, retract, purge, delete with redirect", async () => {
  await withService("pubsub-owner-", async (admin, bob) => {
    await admin.xmpp.iqCaller.request(pubsubIq("set", xml("create", { node: "feed" })));

    // The configuration form (Prosody's), with the defaults of a new node.
    const form0 = await admin.xmpp.iqCaller.request(
      ownerIq("get", xml("configure", { node: "feed" })),
    );
    const x0 = form0.getChild("pubsub", NS_PUBSUB_OWNER).getChild("configure").getChild(
      "x",
      NS_DATA,
    );
    assert.equal(x0.attrs.type, "form");
    const f0 = fieldsOf(x0);
    assert.equal(f0.get("FORM_TYPE"), NODE_CONFIG);
    assert.equal(f0.get("pubsub#max_items"), "20");
    assert.equal(f0.get("pubsub#access_model"), "open");
    assert.equal(f0.get("pubsub#itemreply"), "none");
    const range = x0.getChildren("field").find((f: XmppClient) =>
      f.attrs.var === "pubsub#max_items"
    ).getChild("validate").getChild("range");
    assert.deepEqual(range.attrs, { min: "1", max: "256" });
    // Only owners see it.
    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(ownerIq("get", xml("configure", { node: "feed" })))),
      "forbidden",
    );

    // Setting it: read back as set.
    await admin.xmpp.iqCaller.request(ownerIq(
      "set",
      xml(
        "configure",
        { node: "feed" },
        submitForm(NODE_CONFIG, { "pubsub#max_items": "2", "pubsub#title": "The feed" }),
      ),
    ));
    const form1 = await admin.xmpp.iqCaller.request(
      ownerIq("get", xml("configure", { node: "feed" })),
    );
    const f1 = fieldsOf(
      form1.getChild("pubsub", NS_PUBSUB_OWNER).getChild("configure").getChild("x", NS_DATA),
    );
    assert.equal(f1.get("pubsub#max_items"), "2");
    assert.equal(f1.get("pubsub#title"), "The feed");
    assert.deepEqual(
      await refusalOf(admin.xmpp.iqCaller.request(ownerIq(
        "set",
        xml("configure", { node: "feed" }, submitForm(NODE_CONFIG, { "pubsub#max_items": "0" })),
      ))),
      ["not-acceptable", undefined, "pubsub#max_items must be 1 to 256 or max"],
    );

    // max_items trims: the oldest go.
    await bob.xmpp.iqCaller.request(
      pubsubIq("set", xml("subscribe", { node: "feed", jid: "bob@localhost" })),
    );
    for (const id of ["a", "b", "c"]) {
      await admin.xmpp.iqCaller.request(publishIq("feed", id, `entry ${id}`));
    }
    await bob.waitFor(
      eventFrom((e) => e.getChild("items")?.getChild("item")?.attrs.id === "c"),
      "the notification of c",
    );
    assert.deepEqual(await itemIds(bob, "feed"), ["b", "c"]);

    // Publish-options are preconditions on an existing node: the text names the field.
    const whitelist = submitForm("http://jabber.org/protocol/pubsub#publish-options", {
      "pubsub#access_model": "whitelist",
    });
    assert.deepEqual(
      await refusalOf(admin.xmpp.iqCaller.request(publishIq("feed", "d", "entry d", whitelist))),
      ["conflict", "precondition-not-met", "Field does not match: access_model"],
    );
    const open = submitForm("http://jabber.org/protocol/pubsub#publish-options", {
      "pubsub#access_model": "open",
    });
    await admin.xmpp.iqCaller.request(publishIq("feed", "d", "entry d", open));
    assert.deepEqual(await itemIds(bob, "feed"), ["c", "d"]);

    // Retract with notify: subscribers hear of it.
    await admin.xmpp.iqCaller.request(pubsubIq(
      "set",
      xml("retract", { node: "feed", notify: "true" }, xml("item", { id: "c" })),
    ));
    await bob.waitFor(
      eventFrom((e) => e.getChild("items")?.getChild("retract")?.attrs.id === "c"),
      "the retraction",
    );
    assert.deepEqual(await itemIds(bob, "feed"), ["d"]);
    // Only publishers retract.
    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(
        pubsubIq("set", xml("retract", { node: "feed" }, xml("item", { id: "d" }))),
      )),
      "forbidden",
    );

    // Purge: every item goes, subscribers are told.
    await admin.xmpp.iqCaller.request(ownerIq("set", xml("purge", { node: "feed" })));
    await bob.waitFor(eventFrom((e) => e.getChild("purge")?.attrs.node === "feed"), "the purge");
    assert.deepEqual(await itemIds(bob, "feed"), []);

    // Delete with a redirect: subscribers get it, the node is gone.
    const uri = "xmpp:pubsub.localhost?;node=feed2";
    await admin.xmpp.iqCaller.request(
      ownerIq("set", xml("delete", { node: "feed" }, xml("redirect", { uri }))),
    );
    const deleted = await bob.waitFor(
      eventFrom((e) => e.getChild("delete")?.attrs.node === "feed"),
      "the deletion",
    );
    assert.equal(
      deleted.getChild("event", NS_PUBSUB_EVENT).getChild("delete").getChild("redirect").attrs.uri,
      uri,
    );
    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(pubsubIq("get", xml("items", { node: "feed" })))),
      "item-not-found",
    );
  });
});

Deno.test("pubsub service: access models refuse as XEP-0060 says; authorize asks the owner", async () => {
  await withService("pubsub-access-", async (admin, bob) => {
    for (const model of ["presence", "roster", "whitelist", "authorize"]) {
      await createNode(admin, model, { "pubsub#access_model": model });
      await admin.xmpp.iqCaller.request(publishIq(model, "one", model));
    }
    const subscribeTo = (node: string) =>
      bob.xmpp.iqCaller.request(
        pubsubIq("set", xml("subscribe", { node, jid: "bob@localhost" })),
      );
    const itemsOf = (node: string) =>
      bob.xmpp.iqCaller.request(pubsubIq("get", xml("items", { node })));
    const refusals: Record<string, [string, string]> = {
      presence: ["not-authorized", "presence-subscription-required"],
      roster: ["not-authorized", "not-in-roster-group"],
      whitelist: ["not-allowed", "closed-node"],
    };
    for (const [node, [condition, app]] of Object.entries(refusals)) {
      assert.deepEqual(await refusalOf(subscribeTo(node)), [condition, app, ""], node);
      assert.deepEqual(await refusalOf(itemsOf(node)), [condition, app, ""], node);
    }
    assert.deepEqual(await refusalOf(itemsOf("authorize")), [
      "not-authorized",
      "not-subscribed",
      "",
    ]);

    // Presence access follows the owner's roster: once bob has it, he may read.
    await subscribeMutually(admin, bob);
    assert.deepEqual(await itemIds(bob, "presence"), ["one"]);
    // A whitelist lets members in: the owner makes bob one.
    await admin.xmpp.iqCaller.request(ownerIq(
      "set",
      xml(
        "affiliations",
        { node: "whitelist" },
        xml("affiliation", { jid: "bob@localhost", affiliation: "member" }),
      ),
    ));
    assert.deepEqual(await itemIds(bob, "whitelist"), ["one"]);

    // Authorize: the subscription is pending and the owner is asked.
    const pending = await subscribeTo("authorize");
    assert.equal(
      pending.getChild("pubsub", NS_PUBSUB).getChild("subscription").attrs.subscription,
      "pending",
    );
    const ask = await admin.waitFor(
      (st) => st.is("message") && st.attrs.from === SERVICE && st.getChild("x", NS_DATA),
      "the approval request",
    );
    const asked = fieldsOf(ask.getChild("x", NS_DATA));
    assert.equal(asked.get("FORM_TYPE"), FORM_SUBSCRIBE_AUTHORIZATION);
    assert.equal(asked.get("pubsub#node"), "authorize");
    assert.equal(asked.get("pubsub#subscriber_jid"), "bob@localhost");
    assert.equal(asked.get("pubsub#allow"), "false");
    const owners = await admin.xmpp.iqCaller.request(
      ownerIq("get", xml("subscriptions", { node: "authorize" })),
    );
    assert.deepEqual(
      owners.getChild("pubsub", NS_PUBSUB_OWNER).getChild("subscriptions").getChildren(
        "subscription",
      ).map((s: XmppClient) => [s.attrs.jid, s.attrs.subscription]),
      [["bob@localhost", "pending"]],
    );
    // Still refused until the owner answers.
    assert.deepEqual((await refusalOf(itemsOf("authorize")))[1], "not-subscribed");
    await admin.xmpp.send(xml(
      "message",
      { to: SERVICE },
      submitForm(FORM_SUBSCRIBE_AUTHORIZATION, {
        "pubsub#node": "authorize",
        "pubsub#subscriber_jid": "bob@localhost",
        "pubsub#allow": "true",
      }),
    ));
    await bob.waitFor(
      eventFrom((e) => e.getChild("subscription")?.attrs.subscription === "subscribed"),
      "the approval",
    );
    assert.deepEqual(await itemIds(bob, "authorize"), ["one"]);
  });
});

Deno.test("pubsub service: owners manage affiliations and subscriptions; the last item on subscribe", async () => {
  await withService("pubsub-manage-", async (admin, bob) => {
    await createNode(admin, "news", { "pubsub#send_last_published_item": "on_sub" });
    await admin.xmpp.iqCaller.request(publishIq("news", "latest", "the latest"));

    // A new subscriber gets the last item, after the result.
    await bob.xmpp.iqCaller.request(
      pubsubIq("set", xml("subscribe", { node: "news", jid: "bob@localhost" })),
    );
    const last = await bob.waitFor(
      eventFrom((e) => e.getChild("items")?.getChild("item")?.attrs.id === "latest"),
      "the last item",
    );
    const item = last.getChild("event", NS_PUBSUB_EVENT).getChild("items").getChild("item");
    assert.equal(item.getChild("entry", "urn:test").text(), "the latest");
    // The service exposes publishers (Prosody's expose_publisher, as the conformance scripts).
    assert.equal(item.attrs.publisher, "admin@localhost");

    // The owner lists and changes subscriptions; the subscriber is told.
    const subsOf = async () =>
      (await admin.xmpp.iqCaller.request(ownerIq("get", xml("subscriptions", { node: "news" }))))
        .getChild("pubsub", NS_PUBSUB_OWNER).getChild("subscriptions").getChildren("subscription")
        .map((s: XmppClient) => [s.attrs.jid, s.attrs.subscription]);
    assert.deepEqual(await subsOf(), [["bob@localhost", "subscribed"]]);
    assert.equal(
      await errorOf(
        bob.xmpp.iqCaller.request(ownerIq("get", xml("subscriptions", { node: "news" }))),
      ),
      "forbidden",
    );
    await admin.xmpp.iqCaller.request(ownerIq(
      "set",
      xml(
        "subscriptions",
        { node: "news" },
        xml("subscription", { jid: "bob@localhost", subscription: "none" }),
      ),
    ));
    await bob.waitFor(
      eventFrom((e) => e.getChild("subscription")?.attrs.subscription === "none"),
      "the end of the subscription",
    );
    assert.deepEqual(await subsOf(), []);

    // Affiliations: bob becomes a publisher and may publish; his own list says so.
    const affsOf = async () =>
      (await admin.xmpp.iqCaller.request(ownerIq("get", xml("affiliations", { node: "news" }))))
        .getChild("pubsub", NS_PUBSUB_OWNER).getChild("affiliations").getChildren("affiliation")
        .map((a: XmppClient) => [a.attrs.jid, a.attrs.affiliation]);
    assert.deepEqual(await affsOf(), [["admin@localhost", "owner"]]);
    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(publishIq("news", "b1", "x"))),
      "forbidden",
    );
    const setAffiliation = (affiliation: string, jid = "bob@localhost") =>
      admin.xmpp.iqCaller.request(ownerIq(
        "set",
        xml("affiliations", { node: "news" }, xml("affiliation", { jid, affiliation })),
      ));
    await setAffiliation("publisher");
    assert.deepEqual(await affsOf(), [["admin@localhost", "owner"], [
      "bob@localhost",
      "publisher",
    ]]);
    await bob.xmpp.iqCaller.request(publishIq("news", "b1", "from bob"));
    const own = await bob.xmpp.iqCaller.request(pubsubIq("get", xml("affiliations")));
    assert.deepEqual(
      own.getChild("pubsub", NS_PUBSUB).getChild("affiliations").getChildren("affiliation")
        .map((a: XmppClient) => [a.attrs.node, a.attrs.affiliation]),
      [["news", "publisher"]],
    );
    // An outcast may not even read; the last owner cannot leave.
    await setAffiliation("outcast");
    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(pubsubIq("get", xml("items", { node: "news" })))),
      "forbidden",
    );
    assert.deepEqual(
      await refusalOf(setAffiliation("none", "admin@localhost")),
      ["not-acceptable", undefined, "A node keeps at least one owner"],
    );
  });
});
