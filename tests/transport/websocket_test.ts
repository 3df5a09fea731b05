import assert from "node:assert/strict";
import {
  createMessageParser,
  parseMessage,
  WS_CLOSE,
  wsFrame,
} from "../../lib/transport/websocket.ts";
import {
  hostMetaJson,
  hostMetaXrd,
  originAllowed,
  peerOf,
  webSocketUrl,
} from "../../lib/transport/http.ts";
import { elem } from "../../lib/xml/element.ts";
import { NS_CLIENT, NS_FRAMING, NS_STREAMS } from "../../lib/xmpp/namespaces.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("wsFrame: <open/>, stanzas with their namespace, an error then <close/>", () => {
  assert.deepEqual(
    wsFrame({
      kind: "open-stream",
      header: { ns: NS_CLIENT, id: "i<1", from: "localhost", version: "1.0", lang: "en" },
    }, NS_CLIENT),
    [`<open xmlns="${NS_FRAMING}" id="i&lt;1" from="localhost" version="1.0" xml:lang="en"/>`],
  );
  // A stanza built without a namespace is in the content namespace, and says so.
  assert.deepEqual(
    wsFrame(
      { kind: "send", stanza: elem("message", { to: "a@b" }, [elem("body", {}, ["x"])]) },
      NS_CLIENT,
    ),
    [`<message xmlns="jabber:client" to="a@b"><body>x</body></message>`],
  );
  assert.deepEqual(
    wsFrame({
      kind: "send",
      stanza: elem("features", { xmlns: NS_STREAMS }, [elem("bind", { xmlns: "urn:x" })]),
    }, NS_CLIENT),
    [`<stream:features xmlns:stream="${NS_STREAMS}"><bind xmlns="urn:x"/></stream:features>`],
  );
  assert.deepEqual(wsFrame({ kind: "close-stream" }, NS_CLIENT), [WS_CLOSE]);
  const [err, close] = wsFrame(
    { kind: "close-stream", error: { condition: "policy-violation" } },
    NS_CLIENT,
  );
  assert.equal(
    err,
    `<stream:error xmlns:stream="${NS_STREAMS}">` +
      `<policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-streams"/></stream:error>`,
  );
  assert.equal(close, WS_CLOSE);
});

Deno.test("parseMessage: <open/>, <close/>, a stanza, whitespace", () => {
  const open = parseMessage(
    enc(`<open xmlns="${NS_FRAMING}" to="localhost" version="1.0"/>`),
    1000,
  );
  assert.deepEqual(open, {
    kind: "stream-open",
    name: "stream",
    prefix: "stream",
    xmlns: NS_STREAMS,
    contentXmlns: NS_CLIENT,
    attrs: { to: "localhost", version: "1.0" },
  });
  assert.deepEqual(parseMessage(enc(`<close xmlns="${NS_FRAMING}"/>`), 1000), {
    kind: "stream-close",
  });
  const m = parseMessage(
    enc(`<message xmlns="jabber:client" to="a@b"><body>x</body></message>`),
    1000,
  );
  assert.equal(m?.kind, "stanza");
  if (m?.kind === "stanza") {
    assert.equal(m.stanza.xmlns, NS_CLIENT);
    assert.equal(m.stanza.attrs.to, "a@b");
  }
  // A client that leaves out the content namespace is read as it meant.
  const bare = parseMessage(enc(`<presence/>`), 1000);
  assert.equal(bare?.kind === "stanza" && bare.stanza.xmlns, NS_CLIENT);
  assert.equal(parseMessage(enc("  \n"), 1000), undefined);
});

Deno.test("parseMessage: one complete element per message, within the limits", () => {
  const condition = (s: string, max = 1000) => {
    const ev = parseMessage(enc(s), max, 4);
    return ev?.kind === "error" ? ev.condition : ev?.kind;
  };
  assert.equal(condition("<a/><b/>"), "bad-format");
  assert.equal(condition("<a/> text"), "bad-format");
  assert.equal(condition("text"), "bad-format");
  assert.equal(condition("<a>"), "not-well-formed");
  assert.equal(condition("<a/><b"), "not-well-formed");
  assert.equal(condition("</stream:stream>"), "not-well-formed");
  assert.equal(condition("<a/></x>"), "not-well-formed");
  // An XML declaration (which §3.3.3 says not to send) is not at the start of the document.
  assert.equal(condition("<?xml version='1.0'?><a/>"), "not-well-formed");
  assert.equal(condition("<!DOCTYPE a><a/>"), "restricted-xml");
  assert.equal(condition("<x:a/>"), "bad-namespace-prefix");
  assert.equal(condition(`<a>${"y".repeat(100)}</a>`, 50), "policy-violation");
  assert.equal(condition("<a><b><c><d><e/></d></c></b></a>"), "policy-violation");
  assert.equal(condition("<a><b><c><d/></c></b></a>"), "stanza");
});

Deno.test("the message parser is dead after an error and follows the raised limit", () => {
  const p = createMessageParser({ maxStanzaBytes: 20 });
  assert.equal(p.push(enc("<presence/>"))[0].kind, "stanza");
  p.setMaxStanzaBytes(100);
  assert.equal(p.push(enc(`<a>${"y".repeat(50)}</a>`))[0].kind, "stanza");
  assert.equal(p.push(enc("<a>"))[0].kind, "error");
  assert.deepEqual(p.push(enc("<presence/>")), []);
});

Deno.test("peerOf: forwarded headers only from trusted proxies", () => {
  const h = (o: Record<string, string>) => new Headers(o);
  const fwd = h({ "x-forwarded-for": "198.51.100.9, 192.0.2.7", "x-forwarded-proto": "https" });
  assert.deepEqual(peerOf(fwd, "203.0.113.1", []), { ip: "203.0.113.1", secure: false });
  assert.deepEqual(peerOf(fwd, "10.0.0.1", ["10.0.0.1"]), { ip: "192.0.2.7", secure: true });
  // A chain of trusted proxies: the rightmost address that is not one of them.
  assert.deepEqual(peerOf(fwd, "10.0.0.1", ["10.0.0.1", "192.0.2.7"]), {
    ip: "198.51.100.9",
    secure: true,
  });
  assert.deepEqual(peerOf(h({ "x-forwarded-proto": "http" }), "::ffff:10.0.0.1", ["10.0.0.1"]), {
    ip: "10.0.0.1",
    secure: false,
  });
  // Garbage in X-Forwarded-For is not an address.
  assert.deepEqual(peerOf(h({ "x-forwarded-for": "evil" }), "10.0.0.1", ["10.0.0.1"]), {
    ip: "10.0.0.1",
    secure: false,
  });
});

Deno.test("originAllowed: none, same origin, listed, any", () => {
  assert.equal(originAllowed(null, "h:1", []), true);
  assert.equal(originAllowed("http://h:1", "h:1", []), true);
  assert.equal(originAllowed("https://evil.example", "h:1", []), false);
  assert.equal(originAllowed("null", "h:1", []), false);
  assert.equal(
    originAllowed("https://Chat.Example.org", "h:1", ["https://chat.example.org"]),
    true,
  );
  assert.equal(originAllowed("https://evil.example", "h:1", ["*"]), true);
});

Deno.test("discovery documents and URLs", () => {
  const peer = { ip: "1.2.3.4", secure: false };
  const h = new Headers({ host: "example.org:5280" });
  const opts = { defaultHost: "localhost" };
  assert.equal(webSocketUrl(h, peer, opts, 5280), "ws://example.org:5280/xmpp-websocket");
  assert.equal(
    webSocketUrl(h, { ...peer, secure: true }, opts, 5280),
    "wss://example.org:5280/xmpp-websocket",
  );
  assert.equal(
    webSocketUrl(new Headers({ host: "bad host<" }), peer, opts, 5280),
    "ws://localhost:5280/xmpp-websocket",
  );
  assert.equal(
    webSocketUrl(h, peer, { ...opts, publicUrl: "https://x.org/xmpp/" }, 5280),
    "wss://x.org/xmpp/xmpp-websocket",
  );
  assert.match(hostMetaXrd("ws://a/'"), /href='ws:\/\/a\/&apos;'/);
  assert.deepEqual(JSON.parse(hostMetaJson("ws://a/x")), {
    links: [{ rel: "urn:xmpp:alt-connections:websocket", href: "ws://a/x" }],
  });
});
