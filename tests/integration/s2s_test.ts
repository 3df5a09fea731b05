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

async function startPair(extra: Readonly<Record<string, unknown>> = {}): Promise<Pair> {
  const pa = freePort();
  const pb = freePort();
  const server = (host: string, port: number, other: string, otherPort: number) =>
    startTestServer({
      hosts: [host],
      s2s_port: port,
      s2s: { hosts: { [other]: `127.0.0.1:${otherPort}` } },
      muc: { enabled: false },
      pubsub: { enabled: false },
      upload: { enabled: false },
      ...extra,
    });
  const a = await server("a.localhost", pa, "b.localhost", pb);
  const b = await server("b.localhost", pb, "a.localhost", pa);
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
  } finally {
    await loose.a.stop();
    await loose.b.stop();
  }
});
