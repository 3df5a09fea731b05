/** The IM core (RFC 6121) with real clients: subscriptions, presence, routing, offline. */
import assert from "node:assert/strict";
import { closeAll, connectPeer, presenceFrom, rosterOf, sync } from "./_peer.ts";
import { withServer } from "./_server.ts";
import { eventually } from "../_eventually.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";

const USERS = ["alice", "bob", "carol"];

Deno.test("mutual subscription reaches both, then presence flows both ways", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    const bob = await connectPeer(server, "bob", "b");
    await rosterOf(alice);
    await rosterOf(bob);
    await alice.xmpp.send(xml("presence"));
    await bob.xmpp.send(xml("presence"));

    // Alice asks, Bob approves and asks back, Alice approves.
    await alice.xmpp.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    const req = await bob.waitFor(presenceFrom("alice@localhost", "subscribe"), "request");
    assert.equal(req.attrs.to, "bob@localhost");
    await bob.xmpp.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    await alice.waitFor(presenceFrom("bob@localhost", "subscribed"), "approval");
    // Approving sends Bob's presence to Alice.
    await alice.waitFor(presenceFrom("bob@localhost/b"), "bob's presence");
    await bob.xmpp.send(xml("presence", { to: "alice@localhost", type: "subscribe" }));
    await alice.waitFor(presenceFrom("bob@localhost", "subscribe"), "request back");
    await alice.xmpp.send(xml("presence", { to: "bob@localhost", type: "subscribed" }));
    await bob.waitFor(presenceFrom("alice@localhost/a"), "alice's presence");

    assert.deepEqual(await rosterOf(alice), { "bob@localhost": "both" });
    assert.deepEqual(await rosterOf(bob), { "alice@localhost": "both" });
    // Each interested resource got pushes along the way.
    assert.ok(alice.received.some((st) => st.is("iq") && st.attrs.type === "set"));

    // A presence update reaches the contact.
    await alice.xmpp.send(xml("presence", {}, xml("show", {}, "away")));
    const away = await bob.waitFor(
      (st) => presenceFrom("alice@localhost/a")(st) && st.getChildText("show") === "away",
      "away",
    );
    assert.equal(away.attrs.to, "bob@localhost");

    // Logging out: Bob hears Alice go, exactly once.
    await alice.xmpp.stop();
    await bob.waitFor(presenceFrom("alice@localhost/a", "unavailable"), "unavailable");
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(bob.received.filter(presenceFrom("alice@localhost/a", "unavailable")).length, 1);

    // Logging in again: Bob sees her come back, and she learns Bob's presence by probe.
    const again = await connectPeer(server, "alice", "c");
    await again.xmpp.send(xml("presence"));
    await bob.waitFor(presenceFrom("alice@localhost/c"), "alice again");
    await again.waitFor(presenceFrom("bob@localhost/b"), "probe answer");
    await closeAll(again, bob);
  });
});

Deno.test("a dropped connection still says unavailable to contacts", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    const bob = await connectPeer(server, "bob", "b");
    await alice.xmpp.send(xml("presence"));
    await bob.xmpp.send(xml("presence"));
    await alice.xmpp.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    await bob.waitFor(presenceFrom("alice@localhost", "subscribe"), "request");
    await bob.xmpp.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    await alice.waitFor(presenceFrom("bob@localhost/b"), "bob's presence");
    // Bob's socket dies without a closing tag.
    bob.xmpp.socket.end();
    await alice.waitFor(presenceFrom("bob@localhost/b", "unavailable"), "unavailable");
    await closeAll(alice, bob);
    // @xmpp/client enables resumable stream management (XEP-0198): Bob's session waits to be
    // resumed before it ends, for a second here.
  }, { limits: { sm_resume_timeout: 1 } });
});

Deno.test("bare-JID messages go to the highest non-negative priority", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    const high = await connectPeer(server, "bob", "high");
    const low = await connectPeer(server, "bob", "low");
    const neg = await connectPeer(server, "bob", "neg");
    await high.xmpp.send(xml("presence", {}, xml("priority", {}, "5")));
    await low.xmpp.send(xml("presence", {}, xml("priority", {}, "1")));
    await neg.xmpp.send(xml("presence", {}, xml("priority", {}, "-1")));
    // Each sees the others come online (own resources get each other's presence).
    await high.waitFor(presenceFrom("bob@localhost/neg"), "neg's presence");
    await alice.xmpp.send(
      xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "to the top")),
    );
    const got = await high.waitFor((st) => st.is("message"), "message");
    assert.equal(got.attrs.from, "alice@localhost/a");
    assert.equal(got.getChildText("body"), "to the top");
    const notLow = (st: XmppClient) => st.is("message");
    assert.ok(await low.never(notLow));
    assert.ok(await neg.never(notLow, 50));
    await closeAll(alice, high, low, neg);
  });
});

Deno.test("offline messages are delivered with a delay stamp at the next login", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    await alice.xmpp.send(
      xml("message", { to: "carol@localhost", type: "chat", id: "m1" }, xml("body", {}, "later")),
    );
    // Ping, then wait until the message is stored (it is archived for Alice first, which a
    // ping does not wait for) before Carol logs in.
    await sync(alice);
    // Appended to the user's offline list (XEP-0160), not a rewritten JSON file.
    const stored = await eventually(
      () => Deno.readTextFile(`${server.dataDir}/localhost/offline/carol.list`).catch(() => ""),
      (text) => /later/.test(text),
    );
    assert.match(stored, /later/);

    const carol = await connectPeer(server, "carol", "c");
    assert.ok(await carol.never((st) => st.is("message"), 300), "not before initial presence");
    await carol.xmpp.send(xml("presence"));
    const msg = await carol.waitFor((st) => st.is("message"), "offline message");
    assert.equal(msg.attrs.from, "alice@localhost/a");
    assert.equal(msg.getChildText("body"), "later");
    const delay = msg.getChild("delay", "urn:xmpp:delay");
    assert.equal(delay.attrs.from, "localhost");
    assert.ok(Math.abs(Date.parse(delay.attrs.stamp) - Date.now()) < 60_000);
    // Delivered, the list is deleted as a whole.
    const gone = await eventually(
      () =>
        Deno.stat(`${server.dataDir}/localhost/offline/carol.list`).then(() => false, () => true),
      (g) => g,
    );
    assert.ok(gone, "the offline list is deleted");
    await closeAll(alice, carol);
  });
});

Deno.test("a message to a user who does not exist bounces with service-unavailable", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    await alice.xmpp.send(
      xml("message", { to: "nobody@localhost", type: "chat", id: "x1" }, xml("body", {}, "hi")),
    );
    const err = await alice.waitFor(
      (st) => st.is("message") && st.attrs.type === "error",
      "error",
    );
    assert.equal(err.attrs.id, "x1");
    assert.equal(err.attrs.from, "nobody@localhost");
    assert.ok(err.getChild("error").getChild("service-unavailable"));
    await alice.xmpp.send(
      xml("message", { to: "someone@elsewhere.example", id: "x2" }, xml("body", {}, "hi")),
    );
    const remote = await alice.waitFor((st) => st.attrs.id === "x2", "remote error");
    assert.ok(remote.getChild("error").getChild("remote-server-not-found"));
    await closeAll(alice);
  });
});

Deno.test("a pending subscription request is redelivered at the next login", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    await alice.xmpp.send(xml("presence", { to: "carol@localhost", type: "subscribe" }));
    await sync(alice);
    await new Promise((r) => setTimeout(r, 200));
    const carol = await connectPeer(server, "carol", "c");
    await carol.xmpp.send(xml("presence"));
    const req = await carol.waitFor(presenceFrom("alice@localhost", "subscribe"), "request");
    assert.equal(req.attrs.to, "carol@localhost");
    assert.deepEqual(await rosterOf(alice), { "carol@localhost": "none+ask" });
    await closeAll(alice, carol);
  });
});
