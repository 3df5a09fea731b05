/** PEP (XEP-0163) with real clients: caps-filtered notifications between mutual contacts. */
import assert from "node:assert/strict";
import { closeAll, connectPeer, presenceFrom, subscribeMutually, sync } from "./_peer.ts";
import { startTestServer, type TestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { verificationString } from "../../lib/modules/caps.ts";
import { NS_CAPS, NS_DISCO_INFO, NS_PUBSUB, NS_PUBSUB_EVENT } from "../../lib/xmpp/namespaces.ts";

const NS_NICK = "http://jabber.org/protocol/nick";
const CAPS_NODE = "https://test-client.example/";

const IDENTITY = { category: "client", type: "pc", name: "test" };
const FEATURES = [NS_DISCO_INFO, NS_CAPS, `${NS_NICK}+notify`];
const VER = verificationString({ identities: [IDENTITY], features: FEATURES, forms: [] });

/** A peer whose client answers caps questions, and the questions it was asked. */
async function connect(server: TestServer, username: string, resource: string) {
  const discoQuestions: XmppClient[] = [];
  const peer = await connectPeer(server, username, resource, {
    beforeStart: (xmpp) =>
      xmpp.iqCallee.get(NS_DISCO_INFO, "query", (ctx: XmppClient) => {
        discoQuestions.push(ctx.stanza);
        return xml("query", { xmlns: NS_DISCO_INFO, node: ctx.element.attrs.node }, [
          xml("identity", IDENTITY),
          ...FEATURES.map((f) => xml("feature", { var: f })),
        ]);
      }),
  });
  return { ...peer, discoQuestions };
}

Deno.test("a contact whose caps want the nick gets the owner's nickname notification", async () => {
  const server = await startTestServer();
  for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
  const alice = await connect(server, "alice", "a");
  const bob = await connect(server, "bob", "b");
  try {
    await alice.xmpp.send(xml("presence"));
    await bob.xmpp.send(xml("presence"));
    await subscribeMutually(alice, bob);

    // Bob's client says what it wants; both PEP services that hear it ask, once.
    await bob.xmpp.send(
      xml("presence", {}, xml("c", { xmlns: NS_CAPS, hash: "sha-1", node: CAPS_NODE, ver: VER })),
    );
    await alice.waitFor(
      (st) => presenceFrom("bob@localhost/b")(st) && st.getChild("c", NS_CAPS) !== undefined,
      "bob's caps",
    );
    for (let i = 0; i < 50 && bob.discoQuestions.length < 2; i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(bob.discoQuestions.map((q) => q.attrs.from).sort(), [
      "alice@localhost",
      "bob@localhost",
    ]);
    assert.ok(
      bob.discoQuestions.every((q) =>
        q.getChild("query", NS_DISCO_INFO).attrs.node === `${CAPS_NODE}#${VER}`
      ),
    );
    // A ping round trip: Bob's answers have been handled before Alice publishes.
    await sync(bob);

    const result = await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "set" },
        xml(
          "pubsub",
          { xmlns: NS_PUBSUB },
          xml(
            "publish",
            { node: NS_NICK },
            xml("item", { id: "current" }, xml("nick", { xmlns: NS_NICK }, "Alice")),
          ),
        ),
      ),
    );
    assert.equal(
      result.getChild("pubsub", NS_PUBSUB).getChild("publish").getChild("item").attrs.id,
      "current",
    );
    const event = await bob.waitFor(
      (st) => st.is("message") && st.getChild("event", NS_PUBSUB_EVENT) !== undefined,
      "nick notification",
    );
    assert.equal(event.attrs.from, "alice@localhost");
    assert.equal(event.attrs.type, "headline");
    const items = event.getChild("event", NS_PUBSUB_EVENT).getChild("items");
    assert.equal(items.attrs.node, NS_NICK);
    assert.equal(items.getChild("item").attrs.id, "current");
    assert.equal(items.getChild("item").getChildText("nick", NS_NICK), "Alice");
    // Alice's own client did not ask for nick notifications: it gets none.
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!alice.received.some((st) => st.is("message")));

    // A second resource of Bob with the same, now known, caps is not asked: it gets the last
    // published item at once.
    const phone = await connect(server, "bob", "phone");
    await phone.xmpp.send(
      xml("presence", {}, xml("c", { xmlns: NS_CAPS, hash: "sha-1", node: CAPS_NODE, ver: VER })),
    );
    const last = await phone.waitFor(
      (st) => st.is("message") && st.attrs.from === "alice@localhost",
      "last published nick",
    );
    assert.equal(
      last.getChild("event", NS_PUBSUB_EVENT).getChild("items").getChild("item").getChildText(
        "nick",
        NS_NICK,
      ),
      "Alice",
    );
    assert.equal(phone.discoQuestions.length, 0);
    await closeAll(phone);
  } finally {
    await closeAll(alice, bob);
    await server.stop();
  }
});
