/**
 * Federation with certificates (XEP-0178) between two instances on loopback: a CA the test
 * makes signs `a.localhost` and `b.localhost`, each server trusts it through `[s2s] ca_file`,
 * and with `s2s_secure_auth = true` dialback is refused both ways, so a link that works was
 * authenticated with SASL EXTERNAL. A self-signed peer is refused then (the message bounces),
 * and XEP-0368 direct TLS (`tls://` targets, the direct TLS port with ALPN) carries the same.
 */
import assert from "node:assert/strict";
import tls from "node:tls";
import { closeAll, connectPeer, type Peer } from "./_peer.ts";
import { retryWhenPortTaken, startTestServer, type TestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { makeCa, makeLeaf, makeSelfSigned, type TestCert, writeCert } from "./_certs.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

interface Side {
  readonly host: string;
  /** Certificate (absent: the self-signed one the server makes). */
  readonly cert?: TestCert;
  readonly directTls?: boolean;
}

interface Pair {
  readonly a: TestServer;
  readonly b: TestServer;
  readonly dir: string;
  stop(): Promise<void>;
}

/**
 * Two servers that know each other's address; `caPem` is each one's ca_file. Their ports are
 * probed first, so a port taken meanwhile by another test means a new try.
 */
function startPair(sa: Side, sb: Side, caPem: string, extra = {}): Promise<Pair> {
  return retryWhenPortTaken(() => startPairOnce(sa, sb, caPem, extra));
}

async function startPairOnce(sa: Side, sb: Side, caPem: string, extra: object): Promise<Pair> {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-certs-" });
  const caFile = `${dir}/ca.pem`;
  await Deno.writeTextFile(caFile, caPem);
  const ports = new Map([sa, sb].map((s) => [s.host, { plain: freePort(), tls: freePort() }]));
  const start = async (me: Side, other: Side) => {
    const p = ports.get(me.host)!;
    const o = ports.get(other.host)!;
    return await startTestServer({
      hosts: [me.host],
      s2s_port: p.plain,
      s2s_direct_tls_port: p.tls,
      s2s_secure_auth: true,
      s2s: {
        hosts: {
          [other.host]: other.directTls ? `tls://127.0.0.1:${o.tls}` : `127.0.0.1:${o.plain}`,
        },
        ca_file: caFile,
      },
      ...(me.cert === undefined ? {} : { tls: await writeCert(dir, me.host, me.cert) }),
      muc: { enabled: false },
      pubsub: { enabled: false },
      upload: { enabled: false },
      ...extra,
    });
  };
  let a: TestServer | undefined;
  let b: TestServer;
  try {
    a = await start(sa, sb);
    b = await start(sb, sa);
  } catch (err) {
    await a?.stop();
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
  await a.accounts.create(sa.host, "alice", "pw");
  await b.accounts.create(sb.host, "bob", "pw");
  return {
    a,
    b,
    dir,
    async stop() {
      await a.stop();
      await b.stop();
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

/** Messages both ways: each link was authenticated. */
async function messagesBothWays(pair: Pair): Promise<void> {
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  try {
    alice = await online(pair.a, "alice", "a.localhost");
    bob = await online(pair.b, "bob", "b.localhost");
    await alice.xmpp.send(
      xml("message", { to: "bob@b.localhost", type: "chat" }, xml("body", {}, "hi bob")),
    );
    const got = await bob.waitFor(bodyIs("hi bob"), "alice's message", 10000);
    assert.match(got.attrs.from, /^alice@a\.localhost\//);
    await bob.xmpp.send(
      xml("message", { to: alice.jid, type: "chat" }, xml("body", {}, "hi alice")),
    );
    const back = await alice.waitFor(bodyIs("hi alice"), "bob's reply", 10000);
    assert.match(back.attrs.from, /^bob@b\.localhost\//);
    // An iq to the other server itself, and its result.
    const pong = await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "b.localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    assert.equal(pong.attrs.type, "result");
  } finally {
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
  }
}

Deno.test("s2s certs: CA-signed servers authenticate with SASL EXTERNAL both ways (no dialback allowed)", async () => {
  const ca = await makeCa();
  const pair = await startPair(
    { host: "a.localhost", cert: await makeLeaf(ca, { dns: ["a.localhost"] }) },
    // The other one names itself in an XmppAddr only (XEP-0178), no DNS-ID.
    { host: "b.localhost", cert: await makeLeaf(ca, { xmpp: ["b.localhost"] }) },
    ca.certPem,
  );
  try {
    await messagesBothWays(pair);
  } finally {
    await pair.stop();
  }
});

Deno.test("s2s certs: with s2s_secure_auth a self-signed peer gets no link, the message bounces", async () => {
  const ca = await makeCa();
  const pair = await startPair(
    { host: "a.localhost", cert: await makeLeaf(ca, { dns: ["a.localhost"] }) },
    { host: "b.localhost", cert: await makeSelfSigned({ dns: ["b.localhost"] }) },
    ca.certPem,
  );
  let alice: Peer | undefined;
  try {
    alice = await online(pair.a, "alice", "a.localhost");
    await alice.xmpp.send(
      xml("message", { to: "bob@b.localhost", type: "chat", id: "m1" }, xml("body", {}, "x")),
    );
    const err = await alice.waitFor(
      (st) => st.is("message") && st.attrs.type === "error" && st.attrs.id === "m1",
      "the bounce",
      10000,
    );
    assert.ok(err.getChild("error")?.getChild("remote-server-not-found"), err.toString());
  } finally {
    if (alice !== undefined) await closeAll(alice);
    await pair.stop();
  }
});

Deno.test("s2s certs: a CA-signed certificate for another name is not valid either", async () => {
  const ca = await makeCa();
  const pair = await startPair(
    { host: "a.localhost", cert: await makeLeaf(ca, { dns: ["a.localhost"] }) },
    { host: "b.localhost", cert: await makeLeaf(ca, { dns: ["c.localhost"] }) },
    ca.certPem,
  );
  let alice: Peer | undefined;
  try {
    alice = await online(pair.a, "alice", "a.localhost");
    const iqErr = await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "b.localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    ).then(() => "no error", (e: { condition?: string }) => e.condition);
    assert.equal(iqErr, "remote-server-not-found");
  } finally {
    if (alice !== undefined) await closeAll(alice);
    await pair.stop();
  }
});

Deno.test("s2s certs: XEP-0368 direct TLS both ways, with SASL EXTERNAL", async () => {
  const ca = await makeCa();
  const pair = await startPair(
    {
      host: "a.localhost",
      cert: await makeLeaf(ca, { dns: ["a.localhost"] }),
      directTls: true,
    },
    {
      host: "b.localhost",
      cert: await makeLeaf(ca, { srv: ["_xmpps-server.b.localhost"] }),
      directTls: true,
    },
    ca.certPem,
  );
  try {
    // The direct TLS port speaks TLS at once and agrees on ALPN xmpp-server.
    const alpn = await new Promise<string | false | null>((resolve, reject) => {
      const s = tls.connect({
        host: "127.0.0.1",
        port: pair.b.s2sDirectTlsPort!,
        servername: "b.localhost",
        ALPNProtocols: ["xmpp-server"],
        rejectUnauthorized: false,
      });
      s.once("secureConnect", () => {
        resolve(s.alpnProtocol);
        s.destroy();
      });
      s.once("error", reject);
    });
    assert.equal(alpn, "xmpp-server");
    await messagesBothWays(pair);
  } finally {
    await pair.stop();
  }
});

Deno.test("s2s certs: without s2s_secure_auth a self-signed peer still federates by dialback", async () => {
  const ca = await makeCa();
  const pair = await startPair(
    { host: "a.localhost", cert: await makeLeaf(ca, { dns: ["a.localhost"] }) },
    { host: "b.localhost" },
    ca.certPem,
    { s2s_secure_auth: false },
  );
  try {
    await messagesBothWays(pair);
  } finally {
    await pair.stop();
  }
});
