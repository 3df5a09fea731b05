/**
 * The OpenSSL engine (lib/transport/openssl.ts) against Deno's own TLS client (rustls) over
 * real loopback TCP: handshake, SNI choosing the certificate, ALPN, data both ways in records
 * of every size, the exporter, close_notify, and garbage refused with an error.
 * @module
 */
import assert from "node:assert/strict";
import {
  alpnWire,
  opensslAvailable,
  sslAccept,
  sslAlpn,
  type SslContexts,
  sslContexts,
  sslEncrypt,
  sslExportKeyingMaterial,
  sslFeed,
  sslFree,
  sslServerName,
  type SslSession,
  sslShutdown,
  sslVersion,
} from "../../lib/transport/openssl.ts";
import { x509Module } from "../../lib/transport/certs.ts";
import { makeCa, makeLeaf, type TestCa, type TestCert } from "../integration/_certs.ts";

// CI runs on Debian with libssl3; elsewhere (another OS, no libssl 3) the engine is absent.
const ignore = !opensslAvailable();

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** The server side of one connection: handshake, then plaintext to `got` until the end. */
interface ServerSide {
  readonly session: SslSession;
  readonly handshake: Promise<void>;
  readonly done: Promise<string | undefined>;
  readonly got: Uint8Array[];
  send(plain: Uint8Array): Promise<void>;
  shutdown(): Promise<void>;
}

function serve(conn: Deno.Conn, contexts: SslContexts, alpn?: readonly string[]): ServerSide {
  const session = sslAccept(contexts, alpn);
  const got: Uint8Array[] = [];
  let established!: () => void;
  const handshake = new Promise<void>((r) => established = r);
  const done = (async () => {
    const buf = new Uint8Array(4096);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) return undefined;
      const r = sslFeed(session, buf.subarray(0, n), (p) => got.push(p.slice()));
      if (r.out !== undefined) await writeAll(conn, r.out);
      if (r.error !== undefined) return r.error;
      if (session.established) established();
      if (session.peerClosed) return "closed";
    }
  })();
  return {
    session,
    handshake,
    done,
    got,
    async send(plain) {
      const sealed = sslEncrypt(session, plain);
      assert.ok(sealed !== undefined);
      await writeAll(conn, sealed);
    },
    async shutdown() {
      const bye = sslShutdown(session);
      assert.ok(bye !== undefined && bye.length > 0);
      await writeAll(conn, bye);
    },
  };
}

let ca: TestCa;
let certs: Map<string, TestCert>;

async function setup(): Promise<SslContexts> {
  ca ??= await makeCa();
  certs ??= new Map([
    ["a.test", await makeLeaf(ca, { cn: "a.test", dns: ["a.test"] })],
    ["b.test", await makeLeaf(ca, { cn: "b.test", dns: ["b.test"] })],
  ]);
  const contexts = sslContexts(certs);
  assert.ok(contexts !== undefined);
  return contexts;
}

async function pair(
  contexts: SslContexts,
  opts: { readonly hostname: string; readonly alpn?: readonly string[] },
  serverAlpn?: readonly string[],
): Promise<{ client: Deno.TlsConn; server: ServerSide; raw: Deno.Conn; close(): void }> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted = listener.accept();
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const raw = await accepted;
  listener.close();
  const server = serve(raw, contexts, serverAlpn);
  const client = await Deno.startTls(tcp, {
    hostname: opts.hostname,
    caCerts: [ca.certPem],
    alpnProtocols: opts.alpn ? [...opts.alpn] : undefined,
  });
  return {
    client,
    server,
    raw,
    close() {
      for (const c of [client, raw]) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
      sslFree(server.session);
    },
  };
}

/** Runs `fn` on a pair to a.test whose handshake is done on both sides, then closes it. */
async function withEstablished(
  fn: (p: Awaited<ReturnType<typeof pair>>) => void | Promise<void>,
) {
  const p = await pair(await setup(), { hostname: "a.test" });
  try {
    await p.client.handshake();
    await p.server.handshake;
    await fn(p);
  } finally {
    p.close();
  }
}

async function readExactly(conn: Deno.Conn, n: number): Promise<Uint8Array> {
  const out = new Uint8Array(n);
  let off = 0;
  while (off < n) {
    const got = await conn.read(out.subarray(off));
    assert.ok(got !== null, `closed after ${off} of ${n} bytes`);
    off += got;
  }
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

Deno.test({
  name: "openssl: SNI picks each host's certificate, ALPN settles, the exporter gives 32 bytes",
  ignore,
  async fn() {
    const contexts = await setup();
    for (const host of ["a.test", "b.test"]) {
      const p = await pair(contexts, { hostname: host, alpn: ["xmpp-client"] }, ["xmpp-client"]);
      try {
        // The client verifies the name against the CA's leaf: only the right one passes.
        const info = await p.client.handshake();
        await p.server.handshake;
        assert.equal(info.alpnProtocol, "xmpp-client");
        assert.equal(sslAlpn(p.server.session), "xmpp-client");
        assert.equal(sslServerName(p.server.session), host);
        assert.equal(sslVersion(p.server.session), "TLSv1.3");
        const exported = sslExportKeyingMaterial(p.server.session, 32, "EXPORTER-Channel-Binding");
        assert.equal(exported?.length, 32);
        assert.ok(exported!.some((b) => b !== 0));
      } finally {
        p.close();
      }
    }
  },
});

Deno.test({
  name: "openssl: TLS 1.3 ends its handshake without a session ticket, and the session works",
  ignore,
  async fn() {
    const contexts = await setup();
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const accepted = listener.accept();
    const tcp = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const raw = await accepted;
    listener.close();
    const s = sslAccept(contexts);
    const client = await Deno.startTls(tcp, { hostname: "a.test", caCerts: [ca.certPem] });
    try {
      const clientDone = client.handshake();
      // What the server sends in answer to each of the client's flights.
      const answers: (Uint8Array | undefined)[] = [];
      const buf = new Uint8Array(4096);
      while (!s.established) {
        const n = await raw.read(buf);
        assert.ok(n !== null, "closed during the handshake");
        const r = sslFeed(s, buf.subarray(0, n), () => {}, false);
        assert.equal(r.error, undefined);
        answers.push(r.out);
        if (r.out !== undefined) await writeAll(raw, r.out);
      }
      await clientDone;
      assert.equal(sslVersion(s), "TLSv1.3");
      // The server's flight answered the ClientHello; the client's Finished got nothing back:
      // no NewSessionTicket (each would cost every handshake an encrypted session).
      assert.ok(answers[0] !== undefined && answers[0].length > 0);
      assert.equal(answers.at(-1), undefined);
      // Data both ways on the session.
      await writeAll(client, new TextEncoder().encode("ping"));
      const got: Uint8Array[] = [];
      while (got.reduce((n, c) => n + c.length, 0) < 4) {
        const n = await raw.read(buf);
        assert.ok(n !== null);
        const r = sslFeed(s, buf.subarray(0, n), (p) => got.push(p.slice()));
        assert.equal(r.error, undefined);
        // Nothing for the peer after a record either (a ticket would come out here if late).
        assert.equal(r.out, undefined);
      }
      assert.equal(new TextDecoder().decode(concat(got)), "ping");
      await writeAll(raw, sslEncrypt(s, new TextEncoder().encode("pong"))!);
      assert.equal(new TextDecoder().decode(await readExactly(client, 4)), "pong");
    } finally {
      client.close();
      raw.close();
      sslFree(s);
    }
  },
});

/** An intermediate CA signed by `root`, itself able to sign leaves. */
async function makeIntermediate(root: TestCa): Promise<TestCa> {
  const x509 = await x509Module();
  const alg = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await crypto.subtle.generateKey(alg, true, ["sign", "verify"]);
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: "4a01",
    subject: "CN=XMPP Test Intermediate",
    issuer: root.cert.subject,
    notBefore: new Date(now - 86_400_000),
    notAfter: new Date(now + 30 * 86_400_000),
    signingAlgorithm: alg,
    publicKey: keys.publicKey,
    signingKey: root.keys.privateKey,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      await x509.AuthorityKeyIdentifierExtension.create(root.cert),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", cert, keys };
}

Deno.test({
  name: "openssl: the chain in the certificate file is sent (a client trusting the root accepts)",
  ignore,
  async fn() {
    await setup();
    const intermediate = await makeIntermediate(ca);
    const leaf = await makeLeaf(intermediate, { cn: "c.test", dns: ["c.test"] });
    const chained = sslContexts(
      new Map([["c.test", { certPem: leaf.certPem + intermediate.certPem, keyPem: leaf.keyPem }]]),
    );
    assert.ok(chained !== undefined);
    // The client knows only the root: the handshake passes only if the intermediate came too.
    const p = await pair(chained, { hostname: "c.test" });
    try {
      await p.client.handshake();
      await p.server.handshake;
      assert.equal(sslServerName(p.server.session), "c.test");
    } finally {
      p.close();
    }
    // Without it in the file, nothing adds it: the same client refuses the leaf.
    const bare = sslContexts(new Map([["c.test", { certPem: leaf.certPem, keyPem: leaf.keyPem }]]));
    const q = await pair(bare!, { hostname: "c.test" });
    try {
      await assert.rejects(() => q.client.handshake());
    } finally {
      q.close();
    }
  },
});

Deno.test({
  name: "openssl: no ALPN in common is no ALPN, not a failure",
  ignore,
  async fn() {
    const p = await pair(await setup(), { hostname: "a.test", alpn: ["h2"] }, ["xmpp-client"]);
    try {
      const info = await p.client.handshake();
      assert.equal(info.alpnProtocol, null);
      assert.equal(sslAlpn(p.server.session), undefined);
    } finally {
      p.close();
    }
  },
});

Deno.test({
  name: "openssl: data both ways, from one byte to many records, arrives whole and in order",
  ignore,
  async fn() {
    await withEstablished(async (p) => {
      const sizes = [1, 100, 4096, 16384, 16385, 100_000];
      let expected = 0;
      for (const size of sizes) {
        const data = crypto.getRandomValues(new Uint8Array(Math.min(size, 65536)));
        const msg = size <= 65536 ? data : concat([data, new Uint8Array(size - 65536).fill(7)]);
        // Server to client.
        await p.server.send(msg);
        assert.deepEqual(await readExactly(p.client, msg.length), msg);
        // Client to server.
        await writeAll(p.client, msg);
        expected += msg.length;
        while (p.server.got.reduce((n, c) => n + c.length, 0) < expected) {
          await new Promise((r) => setTimeout(r, 5));
        }
        assert.deepEqual(concat(p.server.got).subarray(expected - msg.length), msg);
      }
      // Our close_notify reaches the client as the end of the stream.
      await p.server.shutdown();
      assert.equal(await p.client.read(new Uint8Array(16)), null);
    });
  },
});

Deno.test({
  name: "openssl: the client's close_notify ends the session",
  ignore,
  async fn() {
    await withEstablished(async (p) => {
      await p.client.closeWrite();
      assert.equal(await p.server.done, "closed");
      assert.equal(p.server.session.peerClosed, true);
    });
  },
});

Deno.test({
  name: "openssl: bytes that are not TLS are a handshake error, and the session frees",
  ignore,
  async fn() {
    const contexts = await setup();
    const s = sslAccept(contexts);
    const r = sslFeed(
      s,
      new TextEncoder().encode("<stream:stream to='a.test'>\r\n".repeat(4)),
      () => {
        throw new Error("no plaintext before a handshake");
      },
    );
    assert.match(r.error ?? "", /^handshake: /);
    assert.equal(s.established, false);
    sslFree(s);
    sslFree(s); // twice is harmless
    assert.equal(s.ssl, null);
    // A freed session answers with an error, not a crash.
    assert.equal(sslFeed(s, new Uint8Array(5), () => {}).error, "session closed");
    assert.equal(sslEncrypt(s, new Uint8Array(5)), undefined);
  },
});

Deno.test({
  name: "openssl: a key that does not match the certificate is refused when contexts are made",
  ignore,
  async fn() {
    await setup();
    const a = certs.get("a.test")!;
    const b = certs.get("b.test")!;
    assert.throws(
      () => sslContexts(new Map([["a.test", { certPem: a.certPem, keyPem: b.keyPem }]])),
      /private key/,
    );
    assert.throws(
      () => sslContexts(new Map([["a.test", { certPem: "not a certificate", keyPem: a.keyPem }]])),
      /certificate/,
    );
  },
});

Deno.test("openssl: ALPN names in wire format", () => {
  assert.deepEqual(
    [...alpnWire(["xmpp-client", "h2"])],
    [11, ...new TextEncoder().encode("xmpp-client"), 2, ...new TextEncoder().encode("h2")],
  );
});

Deno.test({
  name: "openssl: garbage after the handshake is a read error; the session stays safe to free",
  ignore,
  async fn() {
    await withEstablished((p) => {
      // A record header claiming application data, then bytes no key decrypts.
      const forged = new Uint8Array([23, 3, 3, 0, 40, ...new Uint8Array(40).fill(0x41)]);
      const r = sslFeed(p.server.session, forged, () => {
        throw new Error("no plaintext from a forged record");
      });
      assert.match(r.error ?? "", /^read: /);
      // What OpenSSL says to the peer (a fatal alert) is there to send, or nothing.
      assert.ok(r.out === undefined || r.out.length > 0);
      assert.equal(sslEncrypt(p.server.session, new Uint8Array(3))?.length ?? 0, 0);
    });
  },
});
