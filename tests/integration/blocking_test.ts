/** Blocking (XEP-0191) in both directions, with real clients. */
import assert from "node:assert/strict";
import {
  closeAll,
  connectPeer,
  type Peer,
  presenceFrom,
  rosterOf,
  subscribeMutually,
} from "./_peer.ts";
import { startTestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { NS_BLOCKING } from "../../lib/xmpp/namespaces.ts";

function body(text: string) {
  return (st: XmppClient) => st.is("message") && st.getChildText("body") === text;
}

function errorFrom(jid: string, condition: string) {
  return (st: XmppClient) =>
    st.is("message") && st.attrs.type === "error" && st.attrs.from === jid &&
    st.getChild("error")?.getChild(condition) !== undefined;
}

Deno.test("blocking: a blocked contact can neither write nor be written to, until unblocked", async () => {
  const server = await startTestServer();
  for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
  const peers: Peer[] = [];
  try {
    const alice = await connectPeer(server, "alice", "a");
    const alice2 = await connectPeer(server, "alice", "a2");
    const bob = await connectPeer(server, "bob", "b");
    peers.push(alice, alice2, bob);
    for (const p of peers) await p.xmpp.send(xml("presence"));
    await subscribeMutually(alice, bob);
    // The second resource fetched the list: it is told of changes.
    await rosterOf(alice2);
    const empty = await alice2.xmpp.iqCaller.request(
      xml("iq", { type: "get" }, xml("blocklist", { xmlns: NS_BLOCKING })),
    );
    assert.equal(empty.getChild("blocklist", NS_BLOCKING).children.length, 0);

    await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "set" },
        xml("block", { xmlns: NS_BLOCKING }, xml("item", { jid: "bob@localhost" })),
      ),
    );
    // Bob sees Alice go; Alice's other resource gets the push.
    await bob.waitFor(presenceFrom("alice@localhost/a", "unavailable"), "alice/a going");
    await bob.waitFor(presenceFrom("alice@localhost/a2", "unavailable"), "alice/a2 going");
    await alice2.waitFor(
      (st) =>
        st.is("iq") && st.attrs.type === "set" && st.getChild("block", NS_BLOCKING) !== undefined,
      "block push",
    );
    const list = await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get" }, xml("blocklist", { xmlns: NS_BLOCKING })),
    );
    assert.deepEqual(
      list.getChild("blocklist", NS_BLOCKING).getChildren("item").map((i: XmppClient) =>
        i.attrs.jid
      ),
      ["bob@localhost"],
    );

    // Alice -> Bob: refused with <blocked/>.
    await alice.xmpp.send(
      xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "hello?")),
    );
    const refused = await alice.waitFor(errorFrom("bob@localhost", "not-acceptable"), "refusal");
    assert.ok(refused.getChild("error").getChild("blocked", "urn:xmpp:blocking:errors"));
    // Bob -> Alice: bounced, and never delivered to either of Alice's resources.
    await bob.xmpp.send(
      xml("message", { to: "alice@localhost", type: "chat" }, xml("body", {}, "ohai")),
    );
    await bob.waitFor(errorFrom("alice@localhost", "service-unavailable"), "bounce");
    // Bob's iq to Alice's resource is answered with service-unavailable.
    await assert.rejects(
      bob.xmpp.iqCaller.request(
        xml(
          "iq",
          { type: "get", to: "alice@localhost/a" },
          xml("ping", { xmlns: "urn:xmpp:ping" }),
        ),
      ),
      (e: { condition?: string }) => e.condition === "service-unavailable",
    );

    await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "set" },
        xml("unblock", { xmlns: NS_BLOCKING }, xml("item", { jid: "bob@localhost" })),
      ),
    );
    const back = await bob.waitFor(presenceFrom("alice@localhost/a"), "alice back");
    assert.ok(back.getChild("delay", "urn:xmpp:delay"));
    await bob.xmpp.send(
      xml("message", { to: "alice@localhost/a", type: "chat" }, xml("body", {}, "again")),
    );
    await alice.waitFor(body("again"), "message after unblock");
    await alice.xmpp.send(
      xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "yes")),
    );
    await bob.waitFor(body("yes"), "answer after unblock");
    assert.equal(alice.received.filter(body("ohai")).length, 0);
    assert.equal(alice2.received.filter(body("ohai")).length, 0);
    assert.equal(bob.received.filter(body("hello?")).length, 0);
  } finally {
    await closeAll(...peers);
    await server.stop();
  }
});
