/**
 * The HTTPS port (`[http] https_port`) against a real server on ephemeral ports, trusting the
 * server's self-signed certificate (made on first start under `data_dir/certs`): XEP-0156
 * discovery lists `wss://`, and XMPP over a WebSocket on it counts as encrypted, so a login
 * passes with `require_encryption`.
 *
 * Deno's WebSocket client takes no custom CA, so the WebSocket here is a small raw one over
 * `Deno.startTls` with `caCerts`: the certificate is really checked (name `localhost`).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { startTestServer, type TestServer, withServer } from "./_server.ts";
import { clientFinalMessage, clientFirstMessage } from "../../lib/xmpp/scram.ts";
import { peerOf } from "../../lib/transport/http.ts";

const FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
const OPEN = `<open xmlns="${FRAMING}" to="localhost" version="1.0"/>`;
const HTTPS = { http: { http_port: 0, https_port: 0 } };

const enc = new TextEncoder();
const dec = new TextDecoder();

function b64(s: string): string {
  let bin = "";
  for (const b of enc.encode(s)) bin += String.fromCharCode(b);
  return btoa(bin);
}

function unb64(s: string): string {
  return dec.decode(Uint8Array.from(atob(s.trim()), (c) => c.charCodeAt(0)));
}

/** The self-signed certificate the server made for `localhost`. */
function certOf(server: TestServer): Promise<string> {
  return Deno.readTextFile(join(server.dataDir, "certs", "localhost.crt"));
}

/** A minimal RFC 6455 client: text messages only, which is all RFC 7395 uses. */
interface WssClient {
  send(text: string): Promise<void>;
  /** The next text message. */
  next(what: string): Promise<string>;
  close(): void;
}

async function wssConnect(port: number, ca: string): Promise<WssClient> {
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  // The name the certificate is checked against; no ALPN, so the server speaks HTTP/1.1.
  const conn = await Deno.startTls(tcp, { hostname: "localhost", caCerts: [ca] });
  const write = async (data: Uint8Array) => {
    for (let off = 0; off < data.length;) off += await conn.write(data.subarray(off));
  };
  let buf = new Uint8Array(0);
  const fill = async (): Promise<void> => {
    const chunk = new Uint8Array(16384);
    const n = await conn.read(chunk);
    if (n === null) throw new Error("the server closed the connection");
    const joined = new Uint8Array(buf.length + n);
    joined.set(buf);
    joined.set(chunk.subarray(0, n), buf.length);
    buf = joined;
  };
  const take = async (n: number): Promise<Uint8Array> => {
    while (buf.length < n) await fill();
    const out = buf.slice(0, n);
    buf = buf.slice(n);
    return out;
  };

  const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
  await write(enc.encode(
    `GET /xmpp-websocket HTTP/1.1\r\nHost: localhost:${port}\r\nUpgrade: websocket\r\n` +
      `Connection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      `Sec-WebSocket-Protocol: xmpp\r\n\r\n`,
  ));
  let end: number;
  while ((end = dec.decode(buf).indexOf("\r\n\r\n")) < 0) await fill();
  const head = dec.decode(await take(end + 4));
  assert.match(head, /^HTTP\/1\.1 101 /, head);
  assert.match(head, /\r\nsec-websocket-protocol: xmpp\r\n/i, head);

  const sendFrame = (opcode: number, payload: Uint8Array) => {
    const len = payload.length;
    const header = len < 126
      ? [0x80 | opcode, 0x80 | len]
      : len < 65536
      ? [0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]
      : (() => {
        throw new Error("frame too large for this test client");
      })();
    const mask = crypto.getRandomValues(new Uint8Array(4));
    const frame = new Uint8Array(header.length + 4 + len);
    frame.set(header);
    frame.set(mask, header.length);
    for (let i = 0; i < len; i++) frame[header.length + 4 + i] = payload[i] ^ mask[i & 3];
    return write(frame);
  };
  const next = async (what: string): Promise<string> => {
    let message: Uint8Array[] = [];
    for (;;) {
      const [b0, b1] = await take(2);
      let len = b1 & 0x7f;
      if (len === 126) {
        const l = await take(2);
        len = (l[0] << 8) | l[1];
      } else if (len === 127) {
        const l = await take(8);
        len = Number(new DataView(l.buffer).getBigUint64(0));
      }
      const payload = await take(len);
      const opcode = b0 & 0x0f;
      if (opcode === 8) throw new Error(`closed before ${what}`);
      if (opcode === 9) await sendFrame(10, payload);
      if (opcode !== 1 && opcode !== 0) continue;
      message.push(payload);
      if (b0 & 0x80) {
        const text = dec.decode(new Uint8Array(message.flatMap((p) => [...p])));
        message = [];
        return text;
      }
    }
  };
  const timed = (what: string) =>
    new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), 5000);
      next(what).then(resolve, reject).finally(() => clearTimeout(timer));
    });
  return {
    send: (text) => sendFrame(1, enc.encode(text)),
    next: timed,
    close() {
      try {
        conn.close();
      } catch {
        // already closed
      }
    },
  };
}

Deno.test("https: host-meta over HTTPS lists wss://, over HTTP ws://", async () => {
  await withServer([], async (server) => {
    assert.ok(server.httpsPort !== undefined && server.httpsPort !== server.httpPort);
    const client = Deno.createHttpClient({ caCerts: [await certOf(server)] });
    try {
      const xrd = await fetch(`https://localhost:${server.httpsPort}/.well-known/host-meta`, {
        client,
      });
      assert.equal(xrd.status, 200);
      assert.match(xrd.headers.get("content-type")!, /^application\/xrd\+xml/);
      assert.match(
        await xrd.text(),
        new RegExp(`href='wss://localhost:${server.httpsPort}/xmpp-websocket'`),
      );
      const json = await fetch(
        `https://localhost:${server.httpsPort}/.well-known/host-meta.json`,
        { client },
      );
      const { links } = await json.json() as { links: { rel: string; href: string }[] };
      assert.equal(
        links.find((l) => l.rel === "urn:xmpp:alt-connections:websocket")?.href,
        `wss://localhost:${server.httpsPort}/xmpp-websocket`,
      );
      // Whatever else discovery lists over HTTPS is secure too (BOSH: https://).
      for (const l of links) assert.match(l.href, /^(wss|https):\/\/localhost:/, l.href);
    } finally {
      client.close();
    }
    // The same routes in plain HTTP on the other port.
    const plain = await fetch(`http://127.0.0.1:${server.httpPort}/.well-known/host-meta.json`);
    const plainLinks = (await plain.json()).links as { rel: string; href: string }[];
    assert.equal(
      plainLinks.find((l) => l.rel === "urn:xmpp:alt-connections:websocket")?.href,
      `ws://127.0.0.1:${server.httpPort}/xmpp-websocket`,
    );
  }, HTTPS);
});

Deno.test("https: an untrusting client refuses the self-signed certificate", async () => {
  await withServer([], async (server) => {
    await assert.rejects(fetch(`https://localhost:${server.httpsPort}/.well-known/host-meta`));
  }, HTTPS);
});

Deno.test("https: a WebSocket over wss:// is encrypted and logs in with require_encryption", async () => {
  await withServer(["alice"], async (server) => {
    const c = await wssConnect(server.httpsPort!, await certOf(server));
    try {
      await c.send(OPEN);
      assert.match(await c.next("<open/>"), /^<open /);
      const features = await c.next("features");
      // Encrypted: SASL is offered (PLAIN too, as after TLS), and no STARTTLS on a WebSocket.
      assert.match(features, /<mechanism>SCRAM-SHA-256<\/mechanism>/);
      assert.match(features, /<mechanism>PLAIN<\/mechanism>/);
      assert.doesNotMatch(features, /starttls/);

      const clientFirst = clientFirstMessage("alice", b64(crypto.randomUUID()));
      await c.send(
        `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-256">` +
          `${b64(clientFirst)}</auth>`,
      );
      const challenge = await c.next("the SCRAM challenge");
      const serverFirst = /<challenge[^>]*>([^<]*)<\/challenge>/.exec(challenge)?.[1];
      assert.ok(serverFirst !== undefined, challenge);
      const final = clientFinalMessage({
        hash: "SHA-256",
        password: "pw",
        clientFirst,
        serverFirst: unb64(serverFirst),
      });
      await c.send(
        `<response xmlns="urn:ietf:params:xml:ns:xmpp-sasl">${b64(final.message)}</response>`,
      );
      const success = await c.next("success");
      const serverFinal = /<success[^>]*>([^<]*)<\/success>/.exec(success)?.[1];
      assert.equal(unb64(serverFinal ?? ""), final.expectedServerFinal, success);

      await c.send(OPEN);
      assert.match(await c.next("<open/> after the restart"), /^<open /);
      assert.match(await c.next("features after the restart"), /urn:ietf:params:xml:ns:xmpp-bind/);
      await c.send(
        `<iq xmlns="jabber:client" type="set" id="b1">` +
          `<bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>web</resource></bind></iq>`,
      );
      const bound = await c.next("the bind result");
      assert.match(bound, /type="result"/);
      assert.match(bound, /<jid>alice@localhost\/web<\/jid>/);
    } finally {
      c.close();
    }
  }, { ...HTTPS, require_encryption: true });
});

Deno.test("https: https_port = false serves no HTTPS", async () => {
  const server = await startTestServer({ http: { http_port: 0, https_port: false } });
  try {
    assert.equal(server.httpsPort, undefined);
    assert.notEqual(server.httpPort, undefined);
  } finally {
    await server.stop();
  }
});

Deno.test("https: a request over our HTTPS is secure unless a trusted proxy says otherwise", () => {
  const h = (init: Record<string, string> = {}) => new Headers(init);
  assert.deepEqual(peerOf(h(), "192.0.2.1", [], true), { ip: "192.0.2.1", secure: true });
  // Forwarded headers from anyone else change nothing.
  assert.deepEqual(peerOf(h({ "x-forwarded-proto": "http" }), "192.0.2.1", [], true), {
    ip: "192.0.2.1",
    secure: true,
  });
  // A trusted proxy that reached us over HTTPS: its word on the client's scheme counts ...
  const proxied = { "x-forwarded-for": "198.51.100.7" };
  assert.deepEqual(
    peerOf(h({ ...proxied, "x-forwarded-proto": "http" }), "10.0.0.1", ["10.0.0.1"], true),
    { ip: "198.51.100.7", secure: false },
  );
  // ... and without one, our own link is all there is.
  assert.deepEqual(peerOf(h(proxied), "10.0.0.1", ["10.0.0.1"], true), {
    ip: "198.51.100.7",
    secure: true,
  });
  // Over plain HTTP nothing changed: secure only when a trusted proxy says https.
  assert.deepEqual(peerOf(h(proxied), "10.0.0.1", ["10.0.0.1"]), {
    ip: "198.51.100.7",
    secure: false,
  });
});
