/** PEP (XEP-0163) with real clients: caps-filtered notifications between mutual contacts. */
import assert from "node:assert/strict";
import { startTestServer } from "./_server.ts";
import { testClient, xml, type XmppClient } from "./_xmpp_client.ts";
import { verificationString } from "../../lib/reducers/caps.ts";

const NS_CAPS = "http://jabber.org/protocol/caps";
const NS_DISCO_INFO = "http://jabber.org/protocol/disco#info";
const NS_PUBSUB = "http://jabber.org/protocol/pubsub";
const NS_EVENT = "http://jabber.org/protocol/pubsub#event";
const NS_NICK = "http://jabber.org/protocol/nick";
const CAPS_NODE = "https://test-client.example/";

const IDENTITY = { category: "client", type: "pc", name: "test" };
const FEATURES = [NS_DISCO_INFO, NS_CAPS, `${NS_NICK}+notify`];
const VER = verificationString({ identities: [IDENTITY], features: FEATURES, forms: [] });

/** A logged-in client that records what it receives and answers caps questions. */
async function connect(port: number, username: string, resource: string) {
  const xmpp = testClient({ port, username, password: "pw", resource });
  const received: XmppClient[] = [];
  const discoQuestions: XmppClient[] = [];
  xmpp.on("stanza", (st: XmppClient) => received.push(st));
  xmpp.iqCallee.get(NS_DISCO_INFO, "query", (ctx: XmppClient) => {
    discoQuestions.push(ctx.stanza);
    return xml("query", { xmlns: NS_DISCO_INFO, node: ctx.element.attrs.node }, [
      xml("identity", IDENTITY),
      ...FEATURES.map((f) => xml("feature", { var: f })),
    ]);
  });
  await xmpp.start();
  async function waitFor(pred: (st: XmppClient) => boolean, what: string): Promise<XmppClient> {
    for (let i = 0; i < 100; i++) {
      const hit = received.find(pred);
      if (hit !== undefined) return hit;
      await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`${username}: no ${what}`);
  }
  return { xmpp, received, discoQuestions, waitFor };
}

function presenceFrom(jid: string, type?: string) {
  return (st: XmppClient) => st.is("presence") && st.attrs.from === jid && st.attrs.type === type;
}

Deno.test("a contact whose caps want the nick gets the owner's nickname notification", async () => {
  const server = await startTestServer();
  for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
  const alice = await connect(server.c2sPort, "alice", "a");
  const bob = await connect(server.c2sPort, "bob", "b");
  try {
    await alice.xmpp.send(xml("presence"));
    await bob.xmpp.send(xml("presence"));
    // Mutual subscription.
    await alice.xmpp.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    await bob.waitFor(presenceFrom("alice@localhost", "subscribe"), "request");
    await bob.xmpp.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    await bob.xmpp.send(xml("presence", { to: "alice@localhost", type: "subscribe" }));
    await alice.waitFor(presenceFrom("bob@localhost", "subscribe"), "request back");
    await alice.xmpp.send(xml("presence", { to: "bob@localhost", type: "subscribed" }));
    await bob.waitFor(presenceFrom("alice@localhost/a"), "alice's presence");

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
    await bob.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );

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
      (st) => st.is("message") && st.getChild("event", NS_EVENT) !== undefined,
      "nick notification",
    );
    assert.equal(event.attrs.from, "alice@localhost");
    assert.equal(event.attrs.type, "headline");
    const items = event.getChild("event", NS_EVENT).getChild("items");
    assert.equal(items.attrs.node, NS_NICK);
    assert.equal(items.getChild("item").attrs.id, "current");
    assert.equal(items.getChild("item").getChildText("nick", NS_NICK), "Alice");
    // Alice's own client did not ask for nick notifications: it gets none.
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(!alice.received.some((st) => st.is("message")));

    // A second resource of Bob with the same, now known, caps is not asked: it gets the last
    // published item at once.
    const phone = await connect(server.c2sPort, "bob", "phone");
    await phone.xmpp.send(
      xml("presence", {}, xml("c", { xmlns: NS_CAPS, hash: "sha-1", node: CAPS_NODE, ver: VER })),
    );
    const last = await phone.waitFor(
      (st) => st.is("message") && st.attrs.from === "alice@localhost",
      "last published nick",
    );
    assert.equal(
      last.getChild("event", NS_EVENT).getChild("items").getChild("item").getChildText(
        "nick",
        NS_NICK,
      ),
      "Alice",
    );
    assert.equal(phone.discoQuestions.length, 0);
    await phone.xmpp.stop().catch(() => {});
  } finally {
    await alice.xmpp.stop().catch(() => {});
    await bob.xmpp.stop().catch(() => {});
    await server.stop();
  }
});
