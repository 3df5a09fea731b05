/**
 * XMPP over WebSocket (RFC 7395) and XEP-0156 discovery against a real server on ephemeral
 * ports: raw WebSocket clients for the framing and its errors, `@xmpp/client` for a login.
 */
import assert from "node:assert/strict";
import { type TestServer, withServer } from "./_server.ts";
import { client, xml } from "@xmpp/client";
import { RawClient } from "./_raw_client.ts";
import { child, elem as stanza, text } from "../../lib/xml/element.ts";

const FRAMING = "urn:ietf:params:xml:ns:xmpp-framing";
const OPEN = `<open xmlns="${FRAMING}" to="localhost" version="1.0"/>`;
const CLOSE = `<close xmlns="${FRAMING}"/>`;
const HTTP = { http: { http_port: 0 } };
const PLAIN_OK = { ...HTTP, require_encryption: false };

/** A raw WebSocket client that keeps every message it receives. */
interface WsClient {
  readonly ws: WebSocket;
  readonly messages: string[];
  send(text: string): void;
  /** The first message (from `from` on) that `pred` accepts. */
  until(what: string, pred: (m: string) => boolean, from?: number): Promise<string>;
  /** Resolves with the close code once the socket closed. */
  readonly closed: Promise<number>;
}

async function wsConnect(
  server: TestServer,
  init: { protocols?: string[]; headers?: Record<string, string> } = { protocols: ["xmpp"] },
): Promise<WsClient> {
  // Deno's WebSocket takes headers beside the subprotocols.
  const ws = new WebSocket(
    `ws://127.0.0.1:${server.httpPort}/xmpp-websocket`,
    init as unknown as string[],
  );
  const messages: string[] = [];
  const waiters = new Set<() => void>();
  ws.onmessage = (e) => {
    messages.push(String(e.data));
    for (const w of waiters) w();
  };
  const closed = new Promise<number>((resolve) => {
    ws.onclose = (e) => {
      resolve(e.code);
      for (const w of waiters) w();
    };
  });
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve();
    ws.onerror = () => reject(new Error("the WebSocket did not open"));
  });
  return {
    ws,
    messages,
    closed,
    send: (text) => ws.send(text),
    until(what, pred, from = 0) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = messages.slice(from).find(pred);
          if (hit !== undefined) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve(hit);
          } else if (ws.readyState === WebSocket.CLOSED) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`closed before ${what}; got ${messages.join(" | ")}`));
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`timed out waiting for ${what}; got ${messages.join(" | ")}`));
        }, 5000);
        waiters.add(check);
        check();
      });
    },
  };
}

/** A WebSocket upgrade request with whatever headers a test wants, answered with its status. */
async function upgradeStatus(server: TestServer, headers: Record<string, string>) {
  const res = await fetch(`http://127.0.0.1:${server.httpPort}/xmpp-websocket`, {
    headers: {
      connection: "Upgrade",
      upgrade: "websocket",
      "sec-websocket-version": "13",
      "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
      ...headers,
    },
  });
  await res.body?.cancel();
  return res.status;
}

Deno.test("websocket: <open/> is answered with <open/> and the features, <close/> with <close/>", async () => {
  await withServer([], async (server) => {
    const c = await wsConnect(server);
    assert.equal(c.ws.protocol, "xmpp");
    c.send(OPEN);
    const open = await c.until("<open/>", (m) => m.startsWith("<open "));
    assert.match(
      open,
      new RegExp(`^<open xmlns="${FRAMING}" id="[^"]+" from="localhost" version="1.0"`),
    );
    const features = await c.until("features", (m) => m.startsWith("<stream:features"));
    // Each message declares its namespaces (RFC 7395 §3.3.3).
    assert.match(features, /^<stream:features xmlns:stream="http:\/\/etherx.jabber.org\/streams">/);
    assert.match(features, /<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl">/);
    assert.match(features, /<mechanism>SCRAM-SHA-256<\/mechanism>/);
    // No STARTTLS on a WebSocket, and no PLAIN without TLS.
    assert.doesNotMatch(features, /starttls|PLAIN/);
    c.send(CLOSE);
    await c.until("<close/>", (m) => m === CLOSE);
    assert.equal(await c.closed, 1000);
    // Loopback not counted as encrypted: PLAIN is then hidden, as from any other machine.
  }, { ...PLAIN_OK, http: { http_port: 0, secure_loopback: false } });
});

Deno.test("websocket: a stanza is answered, one element per message", async () => {
  await withServer([], async (server) => {
    const c = await wsConnect(server);
    c.send(OPEN);
    await c.until("features", (m) => m.startsWith("<stream:features"));
    // Registration fields, asked before authentication: an answer in jabber:client, declared.
    c.send(`<iq xmlns="jabber:client" type="get" id="r1"><query xmlns="jabber:iq:register"/></iq>`);
    const answer = await c.until("the answer", (m) => m.includes('id="r1"'));
    assert.match(answer, /^<iq xmlns="jabber:client"/);
    c.ws.close();
    await c.closed;
  }, { ...PLAIN_OK, allow_registration: true });
});

Deno.test("websocket: with require_encryption, plain ws from another machine cannot log in", async () => {
  await withServer(["alice"], async (server) => {
    const c = await wsConnect(server);
    c.send(OPEN);
    const features = await c.until("features", (m) => m.startsWith("<stream:features"));
    assert.doesNotMatch(features, /mechanisms|starttls/);
    c.send(
      `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="SCRAM-SHA-256">biwsbj1hbGljZSxyPWFiYw==</auth>`,
    );
    await c.until("encryption-required", (m) => m.includes("<encryption-required/>"));
    c.ws.close();
    await c.closed;
    // secure_loopback off: a loopback peer is treated as any other.
  }, { http: { http_port: 0, secure_loopback: false } });
});

Deno.test("websocket: from this machine, plain ws logs in with require_encryption (localhost default)", async () => {
  await withServer(["alice"], async (server) => {
    const c = await wsConnect(server);
    c.send(OPEN);
    const features = await c.until("features", (m) => m.startsWith("<stream:features"));
    assert.match(features, /<mechanisms/);
    c.ws.close();
    await c.closed;
  }, HTTP);
});

Deno.test("websocket: encrypted only when a trusted proxy says https", async () => {
  const offered = async (server: TestServer, headers: Record<string, string>) => {
    const c = await wsConnect(server, { protocols: ["xmpp"], headers });
    c.send(OPEN);
    const features = await c.until("features", (m) => m.startsWith("<stream:features"));
    c.ws.close();
    await c.closed;
    return features;
  };
  // From a trusted proxy that terminated TLS: SASL is offered, PLAIN included.
  await withServer([], async (server) => {
    const f = await offered(server, {
      "x-forwarded-proto": "https",
      "x-forwarded-for": "192.0.2.7",
    });
    assert.match(f, /<mechanism>PLAIN<\/mechanism>/);
    assert.doesNotMatch(f, /starttls/);
    // The same proxy forwarding plain http: nothing to authenticate with.
    assert.doesNotMatch(await offered(server, { "x-forwarded-proto": "http" }), /mechanisms/);
  }, { http: { http_port: 0, trusted_proxies: ["127.0.0.1"] } });
  // The header from anyone else is not believed.
  await withServer([], async (server) => {
    assert.doesNotMatch(await offered(server, { "x-forwarded-proto": "https" }), /mechanisms/);
  }, HTTP);
});

Deno.test("websocket: a wrong or missing subprotocol, a foreign origin, a plain GET are refused", async () => {
  await withServer([], async (server) => {
    assert.equal(await upgradeStatus(server, { "sec-websocket-protocol": "chat" }), 400);
    assert.equal(await upgradeStatus(server, {}), 400);
    assert.equal(
      await upgradeStatus(server, {
        "sec-websocket-protocol": "xmpp",
        origin: "https://evil.example",
      }),
      403,
    );
    // An allowed origin and the page's own origin pass.
    assert.equal(
      await upgradeStatus(server, {
        "sec-websocket-protocol": "xmpp",
        origin: "https://chat.example.org",
      }),
      101,
    );
    assert.equal(
      await upgradeStatus(server, {
        "sec-websocket-protocol": "xmpp",
        origin: `http://127.0.0.1:${server.httpPort}`,
      }),
      101,
    );
    const plain = await fetch(`http://127.0.0.1:${server.httpPort}/xmpp-websocket`);
    await plain.body?.cancel();
    assert.equal(plain.status, 426);
    assert.equal(plain.headers.get("upgrade"), "websocket");
    // The Deno client refuses to open without the subprotocol it asked for.
    await assert.rejects(wsConnect(server, { protocols: ["chat"] }));
  }, { http: { http_port: 0, cors_origins: ["https://chat.example.org"] } });
});

Deno.test("websocket: a message over the stanza limit closes with policy-violation", async () => {
  await withServer([], async (server) => {
    const c = await wsConnect(server);
    c.send(OPEN);
    await c.until("features", (m) => m.startsWith("<stream:features"));
    const from = c.messages.length;
    c.send(
      `<message xmlns="jabber:client" to="a@localhost"><body>${"x".repeat(5000)}</body></message>`,
    );
    const err = await c.until("the stream error", (m) => m.startsWith("<stream:error"), from);
    assert.match(err, /<policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/);
    await c.until("<close/>", (m) => m === CLOSE, from);
    await c.closed;
  }, { ...PLAIN_OK, limits: { stanza_size_unauthed: 4096 } });
});

Deno.test("websocket: bad messages are stream errors", async () => {
  const errorFor = async (server: TestServer, message: string | Uint8Array) => {
    const c = await wsConnect(server);
    c.send(OPEN);
    await c.until("features", (m) => m.startsWith("<stream:features"));
    c.ws.send(message);
    const err = await c.until("the stream error", (m) => m.startsWith("<stream:error"));
    await c.closed;
    return /<([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-streams"/.exec(err)?.[1];
  };
  await withServer([], async (server) => {
    assert.equal(await errorFor(server, "<presence xmlns='jabber:client'/> text"), "bad-format");
    assert.equal(
      await errorFor(server, "<presence xmlns='jabber:client'/><presence xmlns='jabber:client'/>"),
      "bad-format",
    );
    assert.equal(await errorFor(server, "<presence xmlns='jabber:client'>"), "not-well-formed");
    assert.equal(await errorFor(server, new Uint8Array([60, 47, 62])), "bad-format");
    assert.equal(await errorFor(server, "<!-- c --><presence/>"), "restricted-xml");
  }, PLAIN_OK);
});

Deno.test("websocket: host-meta (XRD and JSON) lists the WebSocket endpoint", async () => {
  await withServer([], async (server) => {
    const base = `http://127.0.0.1:${server.httpPort}`;
    const xrd = await fetch(`${base}/.well-known/host-meta`);
    assert.equal(xrd.status, 200);
    assert.match(xrd.headers.get("content-type")!, /^application\/xrd\+xml/);
    assert.equal(xrd.headers.get("access-control-allow-origin"), "*");
    const text = await xrd.text();
    assert.match(text, /<XRD xmlns='http:\/\/docs.oasis-open.org\/ns\/xri\/xrd-1.0'>/);
    assert.match(
      text,
      new RegExp(
        `<Link rel='urn:xmpp:alt-connections:websocket' ` +
          `href='ws://127.0.0.1:${server.httpPort}/xmpp-websocket'/>`,
      ),
    );
    const json = await fetch(`${base}/.well-known/host-meta.json`);
    assert.equal(json.headers.get("content-type"), "application/json");
    assert.deepEqual(await json.json(), {
      links: [{
        rel: "urn:xmpp:alt-connections:websocket",
        href: `ws://127.0.0.1:${server.httpPort}/xmpp-websocket`,
      }, {
        rel: "urn:xmpp:alt-connections:xbosh",
        href: `http://127.0.0.1:${server.httpPort}/http-bind`,
      }],
    });
    const missing = await fetch(`${base}/nothing-here`);
    await missing.body?.cancel();
    assert.equal(missing.status, 404);
  }, HTTP);
  // Behind a proxy, the configured public URL.
  await withServer([], async (server) => {
    const res = await fetch(`http://127.0.0.1:${server.httpPort}/.well-known/host-meta.json`);
    assert.deepEqual((await res.json()).links[0].href, "wss://xmpp.example.org/xmpp-websocket");
  }, { http: { http_port: 0, public_url: "https://xmpp.example.org" } });
});

Deno.test("websocket: @xmpp/client logs in over ws:// and messages a TCP client", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const bob = await RawClient.online(server.c2sPort, "bob");
    const alice = client({
      service: `ws://127.0.0.1:${server.httpPort}/xmpp-websocket`,
      domain: "localhost",
      resource: "web",
      username: "alice",
      password: "pw",
    });
    // The package's reconnect would retry forever after the test ends.
    alice.reconnect.stop();
    alice.on("error", () => {});
    try {
      const online = new Promise((resolve) => alice.on("online", resolve));
      await alice.start();
      const jid = await online;
      assert.equal(String(jid), "alice@localhost/web");
      await alice.send(
        xml(
          "message",
          { to: "bob@localhost/r", type: "chat", id: "m1" },
          xml("body", {}, "hi bob"),
        ),
      );
      const got = await bob.until("alice's message", (el) => el.name === "message");
      assert.equal(got.attrs.from, "alice@localhost/web");
      assert.equal(text(child(got, "body")!), "hi bob");
      // And back, from the TCP client to the WebSocket one.
      const reply = new Promise<string>((resolve) =>
        alice.on("stanza", (el: { is(n: string): boolean; getChildText(n: string): string }) => {
          if (el.is("message")) resolve(el.getChildText("body"));
        })
      );
      bob.send(stanza("message", { to: "alice@localhost/web", type: "chat" }, [
        stanza("body", {}, ["hi alice"]),
      ]));
      assert.equal(await reply, "hi alice");
    } finally {
      await alice.stop().catch(() => {});
      bob.cut();
    }
  }, PLAIN_OK);
});
