/** The XEP-0060 service on pubsub.localhost with real clients, across a restart. */
import assert from "node:assert/strict";
import { configFromObject } from "../../lib/config.ts";
import { startServer } from "../../lib/shell/server.ts";
import { closeAll, connectPeer, errorOf } from "./_peer.ts";
import type { TestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { NS_DISCO_ITEMS, NS_PUBSUB, NS_PUBSUB_EVENT } from "../../lib/xmpp/namespaces.ts";

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
