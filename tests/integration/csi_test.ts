/** Client state indication (XEP-0352) and the server's caps (XEP-0115) with real clients. */
import assert from "node:assert/strict";
import { closeAll, connectPeer, type Peer, subscribeMutually, sync } from "./_peer.ts";
import { startTestServer, type TestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { NS_CAPS, NS_CSI } from "../../lib/xmpp/namespaces.ts";

const CS = "http://jabber.org/protocol/chatstates";

/** A peer that also records the stream features it was offered. */
async function connect(
  server: TestServer,
  username: string,
  resource: string,
): Promise<Peer & { readonly features: readonly XmppClient[] }> {
  const features: XmppClient[] = [];
  const peer = await connectPeer(server, username, resource, {
    beforeStart: (xmpp) =>
      xmpp.on("element", (el: XmppClient) => {
        if (el.name === "stream:features") features.push(el);
      }),
  });
  return { ...peer, features };
}

function from(jid: string) {
  return (st: XmppClient) => st.attrs.from === jid;
}

/** A stanza as a short description, for order assertions. */
function describe(st: XmppClient): string {
  if (st.is("presence")) return `presence ${st.getChildText("show") ?? st.attrs.type ?? ""}`;
  const body = st.getChildText("body");
  if (body !== null) return `body ${body}`;
  const state = st.getChildElements().find((c: XmppClient) => c.attrs.xmlns === CS);
  return `state ${state?.name}`;
}

Deno.test("csi: an inactive client gets collapsed updates when something matters", async () => {
  const server = await startTestServer();
  const peers: Peer[] = [];
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const alice = await connect(server, "alice", "a");
    const bob = await connect(server, "bob", "b");
    peers.push(alice, bob);

    // Both offers came in the features after authentication (the second <stream:features/>).
    const authed = bob.features.at(-1);
    assert.ok(authed.getChild("csi", NS_CSI) !== undefined, "no <csi/> stream feature");
    const caps = authed.getChild("c", NS_CAPS);
    assert.equal(caps.attrs.hash, "sha-1");
    assert.match(caps.attrs.ver, /^[A-Za-z0-9+/]{27}=$/);

    // Mutual subscription, so that Alice's presence updates reach Bob.
    await alice.xmpp.send(xml("presence"));
    await bob.xmpp.send(xml("presence"));
    await subscribeMutually(alice, bob);
    await sync(alice);
    await sync(bob);

    await bob.xmpp.send(xml("inactive", { xmlns: NS_CSI }));
    await sync(bob);
    const mark = bob.received.length;
    const fromAlice = () => bob.received.slice(mark).filter(from("alice@localhost/a"));

    for (const show of ["away", "xa", "dnd"]) {
      await alice.xmpp.send(xml("presence", {}, xml("show", {}, show)));
    }
    for (const state of ["composing", "paused"]) {
      await alice.xmpp.send(
        xml("message", { to: "bob@localhost", type: "chat" }, xml(state, { xmlns: CS })),
      );
    }
    await sync(alice);
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(fromAlice().map(describe), [], "stanzas reached an inactive client");

    // A message with a body matters: the latest presence and chat state come first, then it.
    await alice.xmpp.send(
      xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hello")),
    );
    await bob.waitFor((st) => st.getChildText("body") === "hello", "the message");
    assert.deepEqual(fromAlice().map(describe), ["presence dnd", "state paused", "body hello"]);

    // Still inactive: the next update waits until Bob is active again.
    await alice.xmpp.send(xml("presence", {}, xml("show", {}, "chat")));
    await sync(alice);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(fromAlice().length, 3);
    await bob.xmpp.send(xml("active", { xmlns: NS_CSI }));
    await sync(bob);
    assert.deepEqual(fromAlice().map(describe), [
      "presence dnd",
      "state paused",
      "body hello",
      "presence chat",
    ]);
  } finally {
    await closeAll(...peers);
    await server.stop();
  }
});
