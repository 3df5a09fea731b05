/**
 * Federation between two instances of this server on loopback (`a.localhost` and
 * `b.localhost`, each on its own ephemeral server-to-server port, found through `[s2s] hosts`):
 * TLS with the self-signed certificates each makes, dialback (XEP-0220) to authenticate, then
 * subscriptions, presence, messages and iq both ways; bounces when the other server is down;
 * `invalid-from` and the TLS rule on the server port.
 */
import assert from "node:assert/strict";
import { closeAll, connectPeer, type Peer, presenceFrom, subscribeMutually } from "./_peer.ts";
import { rawExchange, startTestServer, type TestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { verificationString } from "../../lib/modules/caps.ts";
import {
  NS_CAPS,
  NS_CARBONS,
  NS_DISCO_INFO,
  NS_FORWARD,
  NS_PUBSUB,
  NS_PUBSUB_EVENT,
} from "../../lib/xmpp/namespaces.ts";

/** A port free right now (the servers need each other's before either starts). */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface Pair {
  readonly a: TestServer;
  readonly b: TestServer;
}

async function startPair(
  extra: Readonly<Record<string, unknown>> = {},
  opts: { readonly mucOnA?: boolean } = {},
): Promise<Pair> {
  const pa = freePort();
  const pb = freePort();
  const server = (host: string, port: number, others: Record<string, number>, muc: boolean) =>
    startTestServer({
      hosts: [host],
      s2s_port: port,
      s2s: {
        hosts: Object.fromEntries(
          Object.entries(others).map(([domain, p]) => [domain, `127.0.0.1:${p}`]),
        ),
      },
      muc: muc ? { domain: `conference.${host}` } : { enabled: false },
      pubsub: { enabled: false },
      upload: { enabled: false },
      ...extra,
    });
  const mucA = opts.mucOnA === true;
  const a = await server("a.localhost", pa, { "b.localhost": pb }, mucA);
  const b = await server(
    "b.localhost",
    pb,
    { "a.localhost": pa, ...(mucA ? { "conference.a.localhost": pa } : {}) },
    false,
  );
  await a.accounts.create("a.localhost", "alice", "pw");
  await b.accounts.create("b.localhost", "bob", "pw");
  return { a, b };
}

async function online(server: TestServer, user: string, domain: string): Promise<Peer> {
  const p = await connectPeer(server, user, undefined, { domain });
  await p.xmpp.send(xml("presence"));
  return p;
}

function bodyIs(text: string): (st: XmppClient) => boolean {
  return (st) => st.is("message") && st.getChildText("body") === text;
}

Deno.test("s2s: two servers federate over TLS with dialback, both ways", async () => {
  const { a, b } = await startPair();
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  try {
    alice = await online(a, "alice", "a.localhost");
    bob = await online(b, "bob", "b.localhost");
    // RFC 6121 across servers: a request, its approval, a request back, its approval.
    await subscribeMutually(alice, bob);

    await alice.xmpp.send(
      xml("message", { to: "bob@b.localhost", type: "chat" }, xml("body", {}, "hi bob")),
    );
    const got = await bob.waitFor(bodyIs("hi bob"), "alice's message");
    assert.match(got.attrs.from, /^alice@a\.localhost\//);
    await bob.xmpp.send(
      xml("message", { to: alice.jid, type: "chat" }, xml("body", {}, "hi alice")),
    );
    const back = await alice.waitFor(bodyIs("hi alice"), "bob's reply");
    assert.match(back.attrs.from, /^bob@b\.localhost\//);

    // An iq to the other server itself, and its result back.
    const pong = await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "b.localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    assert.equal(pong.attrs.type, "result");
    assert.equal(pong.attrs.from, "b.localhost");

    // Presence: bob goes away and comes back, alice sees both.
    await bob.xmpp.send(xml("presence", {}, xml("show", {}, "away")));
    await alice.waitFor(
      (st) => presenceFrom(bob!.jid)(st) && st.getChildText("show") === "away",
      "bob's away presence",
    );
    const bobJid = bob.jid;
    await closeAll(bob);
    bob = undefined;
    await alice.waitFor(presenceFrom(bobJid, "unavailable"), "bob's unavailable presence");
  } finally {
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await a.stop();
    await b.stop();
  }
});

Deno.test("s2s: a user of another server joins a room, talks, and hears the room", async () => {
  const { a, b } = await startPair({}, { mucOnA: true });
  const room = "lounge@conference.a.localhost";
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  const mucX = () => xml("x", { xmlns: "http://jabber.org/protocol/muc" });
  const selfPresence = (nick: string) => (st: XmppClient) =>
    st.is("presence") && st.attrs.from === `${room}/${nick}` &&
    st.getChild("x", "http://jabber.org/protocol/muc#user")?.getChildren("status")
      .some((c: XmppClient) => c.attrs.code === "110");
  try {
    alice = await online(a, "alice", "a.localhost");
    bob = await online(b, "bob", "b.localhost");
    await alice.xmpp.send(xml("presence", { to: `${room}/Alice` }, mucX()));
    await alice.waitFor(selfPresence("Alice"), "alice's self-presence");
    // The new room is locked until its owner accepts the default configuration.
    await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "set", to: room },
        xml(
          "query",
          { xmlns: "http://jabber.org/protocol/muc#owner" },
          xml("x", { xmlns: "jabber:x:data", type: "submit" }),
        ),
      ),
    );
    // bob, on b.localhost, joins through federation (the room's domain authenticates by dialback).
    await bob.xmpp.send(xml("presence", { to: `${room}/Bob` }, mucX()));
    await bob.waitFor(selfPresence("Bob"), "bob's self-presence", 10000);
    await alice.waitFor(
      (st) => st.is("presence") && st.attrs.from === `${room}/Bob` && st.attrs.type === undefined,
      "bob's arrival",
    );
    await bob.xmpp.send(
      xml("message", { to: room, type: "groupchat" }, xml("body", {}, "hello room")),
    );
    const heard = await alice.waitFor(bodyIs("hello room"), "bob's groupchat");
    assert.equal(heard.attrs.from, `${room}/Bob`);
    await bob.waitFor(bodyIs("hello room"), "bob's own echo");
    await alice.xmpp.send(
      xml("message", { to: room, type: "groupchat" }, xml("body", {}, "welcome bob")),
    );
    const reply = await bob.waitFor(bodyIs("welcome bob"), "alice's groupchat");
    assert.equal(reply.attrs.from, `${room}/Alice`);
  } finally {
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await a.stop();
    await b.stop();
  }
});

Deno.test("s2s: both archives keep a chat across servers (XEP-0313)", async () => {
  const { a, b } = await startPair({ archive_policy: "always" });
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  try {
    alice = await online(a, "alice", "a.localhost");
    bob = await online(b, "bob", "b.localhost");
    await alice.xmpp.send(
      xml("message", { to: "bob@b.localhost", type: "chat" }, xml("body", {}, "archived?")),
    );
    await bob.waitFor(bodyIs("archived?"), "the message");
    for (const [peer, other] of [[alice, "bob@b.localhost"], [bob, "alice@a.localhost"]] as const) {
      const found: XmppClient[] = [];
      peer.xmpp.on("stanza", (st: XmppClient) => {
        if (st.getChild("result", "urn:xmpp:mam:2") !== undefined) found.push(st);
      });
      await peer.xmpp.iqCaller.request(
        xml("iq", { type: "set" }, xml("query", { xmlns: "urn:xmpp:mam:2", queryid: "q" })),
      );
      const bodies = found.map((st) =>
        st.getChild("result", "urn:xmpp:mam:2").getChild("forwarded").getChild("message")
      ).filter((m: XmppClient) => m.getChildText("body") === "archived?");
      assert.equal(bodies.length, 1, `${peer.jid}'s archive`);
      assert.ok(
        bodies[0].attrs.to.startsWith(other) || bodies[0].attrs.from.startsWith(other),
        bodies[0].toString(),
      );
    }
  } finally {
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await a.stop();
    await b.stop();
  }
});

Deno.test("s2s: PEP notifies a contact on another server whose caps want the node", async () => {
  const NS_NICK = "http://jabber.org/protocol/nick";
  const identity = { category: "client", type: "pc", name: "test" };
  const features = [NS_DISCO_INFO, NS_CAPS, `${NS_NICK}+notify`];
  const ver = verificationString({ identities: [identity], features, forms: [] });
  const node = "https://test-client.example/";
  const { a, b } = await startPair();
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  const asked: XmppClient[] = [];
  try {
    alice = await online(a, "alice", "a.localhost");
    bob = await connectPeer(b, "bob", "phone", {
      domain: "b.localhost",
      // bob's client answers caps questions, from his server and from alice's.
      beforeStart: (xmpp) =>
        xmpp.iqCallee.get(NS_DISCO_INFO, "query", (ctx: XmppClient) => {
          asked.push(ctx.stanza);
          return xml("query", { xmlns: NS_DISCO_INFO, node: ctx.element.attrs.node }, [
            xml("identity", identity),
            ...features.map((f) => xml("feature", { var: f })),
          ]);
        }),
    });
    await bob.xmpp.send(xml("presence"));
    await subscribeMutually(alice, bob);
    await bob.xmpp.send(
      xml("presence", {}, xml("c", { xmlns: NS_CAPS, hash: "sha-1", node, ver })),
    );
    await alice.waitFor(
      (st) => presenceFrom(bob!.jid)(st) && st.getChild("c", NS_CAPS) !== undefined,
      "bob's caps",
    );
    // alice's server asks bob's client, over federation, what the caps stand for.
    for (let i = 0; i < 100 && !asked.some((q) => q.attrs.from === "a.localhost"); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(asked.some((q) => q.attrs.from === "a.localhost"), "a.localhost never asked");
    // Its answer is back at a.localhost once a ping over the same link has come back.
    await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "b.localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    await alice.xmpp.iqCaller.request(
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
    const event = await bob.waitFor(
      (st) =>
        st.is("message") && st.attrs.from === "alice@a.localhost" &&
        st.getChild("event", NS_PUBSUB_EVENT) !== undefined,
      "alice's nick",
    );
    const nick = event.getChild("event", NS_PUBSUB_EVENT).getChild("items").getChild("item")
      .getChild("nick", NS_NICK);
    assert.equal(nick.text(), "Alice");
  } finally {
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await a.stop();
    await b.stop();
  }
});

Deno.test("s2s: carbons copy a chat with a contact on another server, both ways", async () => {
  const { a, b } = await startPair();
  const peers: Peer[] = [];
  const carbonOf = (kind: "sent" | "received", body: string) => (st: XmppClient) =>
    st.is("message") && st.attrs.from === "alice@a.localhost" &&
    st.getChild(kind, NS_CARBONS)?.getChild("forwarded", NS_FORWARD)?.getChild("message")
        ?.getChildText("body") === body;
  try {
    const phone = await connectPeer(a, "alice", "phone", { domain: "a.localhost" });
    const desk = await connectPeer(a, "alice", "desk", { domain: "a.localhost" });
    const bob = await online(b, "bob", "b.localhost");
    peers.push(phone, desk, bob);
    await phone.xmpp.send(xml("presence"));
    await desk.xmpp.send(xml("presence"));
    await desk.xmpp.iqCaller.request(
      xml("iq", { type: "set" }, xml("enable", { xmlns: NS_CARBONS })),
    );
    await bob.xmpp.send(
      xml("message", { to: "alice@a.localhost/phone", type: "chat" }, xml("body", {}, "in")),
    );
    await phone.waitFor(bodyIs("in"), "bob's message");
    const received = await desk.waitFor(carbonOf("received", "in"), "received carbon");
    assert.match(
      received.getChild("received", NS_CARBONS).getChild("forwarded", NS_FORWARD)
        .getChild("message").attrs.from,
      /^bob@b\.localhost\//,
    );
    await phone.xmpp.send(
      xml("message", { to: "bob@b.localhost", type: "chat" }, xml("body", {}, "out")),
    );
    await bob.waitFor(bodyIs("out"), "the phone's message");
    await desk.waitFor(carbonOf("sent", "out"), "sent carbon");
  } finally {
    await closeAll(...peers);
    await a.stop();
    await b.stop();
  }
});

Deno.test("s2s: a pre-approval (RFC 6121 §3.4) answers a remote contact's request at once", async () => {
  const { a, b } = await startPair();
  const peers: Peer[] = [];
  try {
    const alice = await online(a, "alice", "a.localhost");
    const bob = await online(b, "bob", "b.localhost");
    peers.push(alice, bob);
    // alice approves bob before he asks.
    await alice.xmpp.send(xml("presence", { to: "bob@b.localhost", type: "subscribed" }));
    await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "b.localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    await bob.xmpp.send(xml("presence", { to: "alice@a.localhost", type: "subscribe" }));
    await bob.waitFor(presenceFrom("alice@a.localhost", "subscribed"), "the approval");
    // alice was never asked, and bob now has her presence.
    assert.equal(await alice.never(presenceFrom("bob@b.localhost", "subscribe"), 300), true);
    await bob.waitFor(presenceFrom(alice.jid), "alice's presence");
  } finally {
    await closeAll(...peers);
    await a.stop();
    await b.stop();
  }
});

Deno.test("s2s: a message to a server that is down bounces with remote-server-not-found", async () => {
  const { a, b } = await startPair();
  await b.stop();
  let alice: Peer | undefined;
  try {
    alice = await online(a, "alice", "a.localhost");
    await alice.xmpp.send(
      xml("message", { to: "bob@b.localhost", type: "chat", id: "m1" }, xml("body", {}, "x")),
    );
    const err = await alice.waitFor(
      (st) => st.is("message") && st.attrs.type === "error" && st.attrs.id === "m1",
      "the bounce",
      10000,
    );
    assert.ok(err.getChild("error").getChild("remote-server-not-found"), err.toString());
    // An iq bounces the same way; presence is dropped.
    const iqErr = await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "b.localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    ).then(() => "no error", (e: { condition?: string }) => e.condition);
    assert.equal(iqErr, "remote-server-not-found");
  } finally {
    if (alice !== undefined) await closeAll(alice);
    await a.stop();
  }
});

Deno.test("s2s: the server port refuses stanzas before TLS, and a from nobody authenticated", async () => {
  const { a, b } = await startPair();
  try {
    const open = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' " +
      "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' " +
      "from='evil.example' to='a.localhost' version='1.0'>";
    const msg =
      "<message from='mallory@evil.example' to='alice@a.localhost'><body>x</body></message>";
    // TLS is required by default: a stanza (or a dialback key) first is a policy violation.
    const plain = await rawExchange(a.s2sPort!, open + msg);
    assert.match(
      plain.text,
      /<starttls xmlns=['"]urn:ietf:params:xml:ns:xmpp-tls['"]><required\/>/,
    );
    assert.match(plain.text, /<policy-violation /);
    assert.ok(plain.closed);
    // A header for a domain this server does not serve.
    const unknown = await rawExchange(
      a.s2sPort!,
      open.replace("to='a.localhost'", "to='c.example'"),
    );
    assert.match(unknown.text, /<host-unknown /);
  } finally {
    await a.stop();
    await b.stop();
  }
  // Without TLS required, an unauthenticated domain still cannot send.
  const loose = await startPair({ s2s_require_encryption: false });
  try {
    const open = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' " +
      "xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' " +
      "from='evil.example' to='a.localhost' version='1.0'>";
    const msg =
      "<message from='mallory@evil.example' to='alice@a.localhost'><body>x</body></message>";
    const r = await rawExchange(loose.a.s2sPort!, open + msg);
    assert.match(r.text, /<invalid-from /);
    assert.ok(r.closed);
    // Before any domain is authenticated, the client limit for unauthenticated streams holds.
    const big = msg.replace("<body>x</body>", `<body>${"x".repeat(20_000)}</body>`);
    const large = await rawExchange(loose.a.s2sPort!, open + big);
    assert.match(large.text, /<policy-violation /);
    assert.ok(large.closed);
  } finally {
    await loose.a.stop();
    await loose.b.stop();
  }
});
