/** The IM core (RFC 6121) with real clients: subscriptions, presence, routing, offline. */
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "./_server.ts";
import { testClient, xml, type XmppClient } from "./_xmpp_client.ts";

const NS_ROSTER = "jabber:iq:roster";

/** A logged-in client that records every stanza it receives. */
interface Peer {
  readonly xmpp: XmppClient;
  readonly jid: string;
  readonly received: XmppClient[];
  /** Resolves with the first received stanza (past or future) matching `pred`. */
  waitFor(pred: (st: XmppClient) => boolean, what: string, ms?: number): Promise<XmppClient>;
  /** True when nothing matching `pred` arrives within `ms`. */
  never(pred: (st: XmppClient) => boolean, ms?: number): Promise<boolean>;
}

async function connect(
  server: TestServer,
  username: string,
  resource?: string,
): Promise<Peer> {
  const xmpp = testClient({ port: server.c2sPort, username, password: "pw", resource });
  const received: XmppClient[] = [];
  const waiters: { pred: (st: XmppClient) => boolean; resolve: (st: XmppClient) => void }[] = [];
  xmpp.on("stanza", (st: XmppClient) => {
    received.push(st);
    for (const w of [...waiters]) {
      if (w.pred(st)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(st);
      }
    }
  });
  const jid = String(await xmpp.start());
  return {
    xmpp,
    jid,
    received,
    waitFor(pred, what, ms = 5000) {
      const seen = received.find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${jid}: no ${what}`)), ms);
        waiters.push({
          pred,
          resolve: (st) => {
            clearTimeout(timer);
            resolve(st);
          },
        });
      });
    },
    async never(pred, ms = 500) {
      await new Promise((r) => setTimeout(r, ms));
      return !received.some(pred);
    },
  };
}

async function rosterOf(peer: Peer): Promise<Record<string, string>> {
  const res = await peer.xmpp.iqCaller.request(
    xml("iq", { type: "get" }, xml("query", { xmlns: NS_ROSTER })),
  );
  const out: Record<string, string> = {};
  for (const item of res.getChild("query", NS_ROSTER).getChildren("item")) {
    out[item.attrs.jid] = item.attrs.subscription + (item.attrs.ask ? "+ask" : "");
  }
  return out;
}

async function close(...peers: Peer[]): Promise<void> {
  for (const p of peers) await p.xmpp.stop().catch(() => {});
}

function presenceFrom(jid: string, type?: string) {
  return (st: XmppClient) => st.is("presence") && st.attrs.from === jid && st.attrs.type === type;
}

async function withServer(
  fn: (server: TestServer) => Promise<void>,
  settings: Readonly<Record<string, unknown>> = {},
): Promise<void> {
  const server = await startTestServer(settings);
  for (const u of ["alice", "bob", "carol"]) await server.accounts.create("localhost", u, "pw");
  try {
    await fn(server);
  } finally {
    await server.stop();
  }
}

Deno.test("mutual subscription reaches both, then presence flows both ways", async () => {
  await withServer(async (server) => {
    const alice = await connect(server, "alice", "a");
    const bob = await connect(server, "bob", "b");
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
    const again = await connect(server, "alice", "c");
    await again.xmpp.send(xml("presence"));
    await bob.waitFor(presenceFrom("alice@localhost/c"), "alice again");
    await again.waitFor(presenceFrom("bob@localhost/b"), "probe answer");
    await close(again, bob);
  });
});

Deno.test("a dropped connection still says unavailable to contacts", async () => {
  await withServer(async (server) => {
    const alice = await connect(server, "alice", "a");
    const bob = await connect(server, "bob", "b");
    await alice.xmpp.send(xml("presence"));
    await bob.xmpp.send(xml("presence"));
    await alice.xmpp.send(xml("presence", { to: "bob@localhost", type: "subscribe" }));
    await bob.waitFor(presenceFrom("alice@localhost", "subscribe"), "request");
    await bob.xmpp.send(xml("presence", { to: "alice@localhost", type: "subscribed" }));
    await alice.waitFor(presenceFrom("bob@localhost/b"), "bob's presence");
    // Bob's socket dies without a closing tag.
    bob.xmpp.socket.end();
    await alice.waitFor(presenceFrom("bob@localhost/b", "unavailable"), "unavailable");
    await close(alice, bob);
    // @xmpp/client enables resumable stream management (XEP-0198): Bob's session waits to be
    // resumed before it ends, for a second here.
  }, { limits: { sm_resume_timeout: 1 } });
});

Deno.test("bare-JID messages go to the highest non-negative priority", async () => {
  await withServer(async (server) => {
    const alice = await connect(server, "alice", "a");
    const high = await connect(server, "bob", "high");
    const low = await connect(server, "bob", "low");
    const neg = await connect(server, "bob", "neg");
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
    await close(alice, high, low, neg);
  });
});

Deno.test("offline messages are delivered with a delay stamp at the next login", async () => {
  await withServer(async (server) => {
    const alice = await connect(server, "alice", "a");
    await alice.xmpp.send(
      xml("message", { to: "carol@localhost", type: "chat", id: "m1" }, xml("body", {}, "later")),
    );
    // Ping so that the message has been handled before Carol logs in.
    await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    await new Promise((r) => setTimeout(r, 200));
    const stored = await Deno.readTextFile(`${server.dataDir}/localhost/offline/carol.json`);
    assert.match(stored, /later/);

    const carol = await connect(server, "carol", "c");
    assert.ok(await carol.never((st) => st.is("message"), 300), "not before initial presence");
    await carol.xmpp.send(xml("presence"));
    const msg = await carol.waitFor((st) => st.is("message"), "offline message");
    assert.equal(msg.attrs.from, "alice@localhost/a");
    assert.equal(msg.getChildText("body"), "later");
    const delay = msg.getChild("delay", "urn:xmpp:delay");
    assert.equal(delay.attrs.from, "localhost");
    assert.ok(Math.abs(Date.parse(delay.attrs.stamp) - Date.now()) < 60_000);
    await new Promise((r) => setTimeout(r, 200));
    await assert.rejects(Deno.stat(`${server.dataDir}/localhost/offline/carol.json`));
    await close(alice, carol);
  });
});

Deno.test("a message to a user who does not exist bounces with service-unavailable", async () => {
  await withServer(async (server) => {
    const alice = await connect(server, "alice", "a");
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
    await close(alice);
  });
});

Deno.test("a pending subscription request is redelivered at the next login", async () => {
  await withServer(async (server) => {
    const alice = await connect(server, "alice", "a");
    await alice.xmpp.send(xml("presence", { to: "carol@localhost", type: "subscribe" }));
    await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    await new Promise((r) => setTimeout(r, 200));
    const carol = await connect(server, "carol", "c");
    await carol.xmpp.send(xml("presence"));
    const req = await carol.waitFor(presenceFrom("alice@localhost", "subscribe"), "request");
    assert.equal(req.attrs.to, "carol@localhost");
    assert.deepEqual(await rosterOf(alice), { "carol@localhost": "none+ask" });
    await close(alice, carol);
  });
});
