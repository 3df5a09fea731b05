/** Message carbons (XEP-0280) between two resources of one user, with real clients. */
import assert from "node:assert/strict";
import { closeAll, connectPeer } from "./_peer.ts";
import { startTestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { NS_CARBONS, NS_FORWARD } from "../../lib/xmpp/namespaces.ts";

function carbonOf(kind: "sent" | "received", body: string) {
  return (st: XmppClient) =>
    st.is("message") && st.attrs.from === "alice@localhost" &&
    st.getChild(kind, NS_CARBONS)?.getChild("forwarded", NS_FORWARD)?.getChild("message")
        ?.getChildText("body") === body;
}

Deno.test("carbons: the other resource gets received and sent copies, private ones excepted", async () => {
  const server = await startTestServer();
  for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
  const peers = [];
  try {
    const phone = await connectPeer(server, "alice", "phone");
    const desk = await connectPeer(server, "alice", "desk");
    const bob = await connectPeer(server, "bob", "b");
    peers.push(phone, desk, bob);
    for (const p of peers) await p.xmpp.send(xml("presence"));
    // Only the desk enables carbons.
    await desk.xmpp.iqCaller.request(
      xml("iq", { type: "set" }, xml("enable", { xmlns: NS_CARBONS })),
    );

    // Received: Bob writes to Alice's phone; the desk gets a copy.
    await bob.xmpp.send(
      xml("message", { to: "alice@localhost/phone", type: "chat" }, xml("body", {}, "to phone")),
    );
    await phone.waitFor((st) => st.is("message") && st.getChildText("body") === "to phone", "msg");
    const received = await desk.waitFor(carbonOf("received", "to phone"), "received carbon");
    assert.equal(received.attrs.to, "alice@localhost/desk");
    const inner = received.getChild("received", NS_CARBONS).getChild("forwarded", NS_FORWARD)
      .getChild("message");
    assert.equal(inner.attrs.from, "bob@localhost/b");

    // Sent: the phone writes to Bob; the desk gets a sent copy.
    await phone.xmpp.send(
      xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "from phone")),
    );
    await bob.waitFor((st) => st.getChildText("body") === "from phone", "phone's message");
    const sent = await desk.waitFor(carbonOf("sent", "from phone"), "sent carbon");
    assert.equal(
      sent.getChild("sent", NS_CARBONS).getChild("forwarded", NS_FORWARD).getChild("message")
        .attrs.to,
      "bob@localhost",
    );

    // Private: neither direction is copied; the recipient does not see <private/>.
    await phone.xmpp.send(
      xml("message", { to: "bob@localhost", type: "chat" }, [
        xml("body", {}, "secret out"),
        xml("private", { xmlns: NS_CARBONS }),
      ]),
    );
    const secret = await bob.waitFor((st) => st.getChildText("body") === "secret out", "secret");
    assert.equal(secret.getChild("private", NS_CARBONS), undefined);
    await bob.xmpp.send(
      xml("message", { to: "alice@localhost/phone", type: "chat" }, [
        xml("body", {}, "secret in"),
        xml("private", { xmlns: NS_CARBONS }),
      ]),
    );
    await phone.waitFor((st) => st.getChildText("body") === "secret in", "secret in");
    // A marker after the private ones: once its copy is here, theirs would have been too.
    await bob.xmpp.send(
      xml("message", { to: "alice@localhost/phone", type: "chat" }, xml("body", {}, "marker")),
    );
    await desk.waitFor(carbonOf("received", "marker"), "marker carbon");
    assert.equal(desk.received.filter(carbonOf("sent", "secret out")).length, 0);
    assert.equal(desk.received.filter(carbonOf("received", "secret in")).length, 0);
    // The phone never enabled carbons: it got no copies at all.
    assert.equal(
      phone.received.filter((st: XmppClient) => st.getChild("received", NS_CARBONS)).length,
      0,
    );
  } finally {
    await closeAll(...peers);
    await server.stop();
  }
});
