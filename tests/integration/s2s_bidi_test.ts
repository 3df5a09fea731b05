/**
 * XEP-0288 bidirectional server-to-server streams between two of our instances on loopback.
 * Each server reaches the other through a counting TCP proxy of the test (`[s2s] hosts`), so
 * the test sees every connection: with certificates (SASL EXTERNAL) one connection, opened by
 * a.localhost, carries b.localhost's stanzas back too, and b.localhost's proxy refuses every
 * connection; with dialback b.localhost opens one connection only to check a.localhost's key,
 * which the test then cuts and blocks, and b.localhost's replies still arrive over a's stream.
 */
import assert from "node:assert/strict";
import { closeAll, connectPeer, type Peer } from "./_peer.ts";
import { retryWhenPortTaken, startTestServer, type TestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { makeCa, makeLeaf, type TestCert, writeCert } from "./_certs.ts";
import { type Proxy, startProxy } from "./_proxy.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface Pair {
  readonly a: TestServer;
  readonly b: TestServer;
  /** What a.localhost connects through, to b.localhost. */
  readonly toB: Proxy;
  /** What b.localhost connects through, to a.localhost. */
  readonly toA: Proxy;
  stop(): Promise<void>;
}

/**
 * a.localhost and b.localhost, each reaching the other through a proxy; with `certs`, both
 * trust a test CA and refuse dialback (`s2s_secure_auth`). `blockToA`: b's proxy refuses all.
 */
function startPair(
  certs: { readonly ca: string; readonly a: TestCert; readonly b: TestCert } | undefined,
  blockToA = false,
): Promise<Pair> {
  // The ports are probed first: one taken meanwhile by another test means a new try.
  return retryWhenPortTaken(() => startPairOnce(certs, blockToA));
}

async function startPairOnce(
  certs: { readonly ca: string; readonly a: TestCert; readonly b: TestCert } | undefined,
  blockToA: boolean,
): Promise<Pair> {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-bidi-" });
  const portA = freePort();
  const portB = freePort();
  const toA = startProxy(portA, blockToA);
  const toB = startProxy(portB);
  if (certs !== undefined) await Deno.writeTextFile(`${dir}/ca.pem`, certs.ca);
  const start = async (host: string, port: number, other: string, via: Proxy) =>
    await startTestServer({
      hosts: [host],
      s2s_port: port,
      s2s: {
        hosts: { [other]: `127.0.0.1:${via.port}` },
        ...(certs === undefined ? {} : { ca_file: `${dir}/ca.pem` }),
      },
      ...(certs === undefined ? {} : {
        s2s_secure_auth: true,
        tls: await writeCert(dir, host, host === "a.localhost" ? certs.a : certs.b),
      }),
      muc: { enabled: false },
      pubsub: { enabled: false },
      upload: { enabled: false },
    });
  let a: TestServer | undefined;
  let b: TestServer;
  try {
    a = await start("a.localhost", portA, "b.localhost", toB);
    b = await start("b.localhost", portB, "a.localhost", toA);
  } catch (err) {
    await a?.stop();
    await toA.close();
    await toB.close();
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  await a.accounts.create("a.localhost", "alice", "pw");
  await b.accounts.create("b.localhost", "bob", "pw");
  return {
    a,
    b,
    toA,
    toB,
    async stop() {
      await a.stop();
      await b.stop();
      await toA.close();
      await toB.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

async function online(server: TestServer, user: string, domain: string): Promise<Peer> {
  const p = await connectPeer(server, user, undefined, { domain });
  await p.xmpp.send(xml("presence"));
  return p;
}

function bodyIs(text: string): (st: XmppClient) => boolean {
  return (st) => st.is("message") && st.getChildText("body") === text;
}

async function ping(p: Peer, to: string): Promise<string> {
  const res = await p.xmpp.iqCaller.request(
    xml("iq", { type: "get", to }, xml("ping", { xmlns: "urn:xmpp:ping" })),
  );
  return res.attrs.type;
}

Deno.test("s2s bidi: with certificates one connection carries both directions", async () => {
  const ca = await makeCa();
  const pair = await startPair(
    {
      ca: ca.certPem,
      a: await makeLeaf(ca, { dns: ["a.localhost"] }),
      b: await makeLeaf(ca, { dns: ["b.localhost"] }),
    },
    // b.localhost cannot connect to a.localhost at all: what reaches alice comes over a's stream.
    true,
  );
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  try {
    alice = await online(pair.a, "alice", "a.localhost");
    bob = await online(pair.b, "bob", "b.localhost");
    await alice.xmpp.send(
      xml("message", { to: "bob@b.localhost", type: "chat" }, xml("body", {}, "hi bob")),
    );
    await bob.waitFor(bodyIs("hi bob"), "alice's message", 10000);
    await bob.xmpp.send(
      xml("message", { to: alice.jid, type: "chat" }, xml("body", {}, "hi alice")),
    );
    const back = await alice.waitFor(bodyIs("hi alice"), "bob's reply over a's stream", 10000);
    assert.match(back.attrs.from, /^bob@b\.localhost\//);
    // iqs to each server itself, each way, and their results.
    assert.equal(await ping(alice, "b.localhost"), "result");
    assert.equal(await ping(bob, "a.localhost"), "result");
    assert.equal(pair.toB.count(), 1, "a.localhost opened one connection");
    assert.equal(pair.toA.count(), 0, "b.localhost opened none");
  } finally {
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await pair.stop();
  }
});

Deno.test("s2s bidi: with dialback the key check has its own connection, stanzas use a's", async () => {
  const pair = await startPair(undefined);
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  try {
    alice = await online(pair.a, "alice", "a.localhost");
    bob = await online(pair.b, "bob", "b.localhost");
    await alice.xmpp.send(
      xml("message", { to: "bob@b.localhost", type: "chat" }, xml("body", {}, "hi bob")),
    );
    await bob.waitFor(bodyIs("hi bob"), "alice's message", 10000);
    // b.localhost checked a.localhost's key over a connection of its own (XEP-0288 §2.2: not
    // the one the claim came on). Cut it and refuse any other.
    assert.equal(pair.toA.count(), 1, "b.localhost's key check connection");
    pair.toA.block();
    await bob.xmpp.send(
      xml("message", { to: alice.jid, type: "chat" }, xml("body", {}, "hi alice")),
    );
    const back = await alice.waitFor(bodyIs("hi alice"), "bob's reply over a's stream", 10000);
    assert.match(back.attrs.from, /^bob@b\.localhost\//);
    assert.equal(await ping(bob, "a.localhost"), "result");
    assert.equal(await ping(alice, "b.localhost"), "result");
    assert.equal(pair.toB.count(), 1, "a.localhost opened one connection");
    assert.equal(pair.toA.count(), 1, "b.localhost opened only the key check's");
  } finally {
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await pair.stop();
  }
});
