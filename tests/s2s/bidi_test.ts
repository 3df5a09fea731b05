/**
 * XEP-0288 bidirectional streams in the reducers (lib/s2s/inbound.ts, lib/s2s/outbound.ts),
 * output by output. Incoming: the feature offered before authentication (after TLS when it is
 * required), `<bidi/>` taken only then, the shell told per pair when our stanzas may go back
 * (after dialback's verdict; after the new header that follows SASL), only those pairs' stanzas
 * sent, everything else handed back (`unsent`). Outgoing: `<bidi/>` sent before our key or our
 * SASL EXTERNAL when offered, the remote's stanzas to us routed once ready and only from its
 * domain to ours, a `valid` for a pair we did not ask about ignored, the remote's own dialback
 * requests on our stream refused.
 */
import assert from "node:assert/strict";
import {
  newS2sIn,
  reduceS2sIn,
  type S2sInCtx,
  type S2sInEvent,
  type S2sInOutput,
  type S2sInSession,
} from "../../lib/s2s/inbound.ts";
import {
  newS2sOut,
  reduceS2sOut,
  type S2sOutCtx,
  type S2sOutEvent,
  type S2sOutOutput,
  type S2sOutSession,
} from "../../lib/s2s/outbound.ts";
import type { PeerCert } from "../../lib/xmpp/cert_names.ts";
import { dialbackKey } from "../../lib/xmpp/dialback.ts";
import { serializeTop, serializeTopIn } from "../../lib/xmpp/stream_xml.ts";
import { elem, type Element } from "../../lib/xml/element.ts";
import {
  NS_CLIENT,
  NS_DIALBACK,
  NS_SASL,
  NS_SERVER,
  NS_STREAMS,
  NS_TLS,
} from "../../lib/xmpp/namespaces.ts";

const GOOD: PeerCert = {
  trusted: true,
  names: { dns: ["b.example"], srv: [], xmpp: [], uri: [], cn: [] },
};

function shown(outputs: readonly (S2sInOutput | S2sOutOutput)[]): string[] {
  return outputs.map((o) => {
    switch (o.kind) {
      case "send":
        return `send ${serializeTopIn(o.stanza, NS_SERVER)}`;
      // With the stanza's namespace: the router takes the client namespace.
      case "route":
        return `route ${o.stanza.xmlns} ${serializeTop(o.stanza)}`;
      case "unsent":
        return `unsent ${o.stanza.xmlns} ${serializeTop(o.stanza)}`;
      case "open-stream":
        return `open-stream ${o.header.from ?? ""} ${o.header.to ?? ""}`;
      case "close-stream":
        return "close-stream" + (o.error === undefined ? "" : ` ${o.error.condition}`);
      case "authenticated":
        return `authenticated ${o.remote} ${o.local}${o.via === undefined ? "" : ` ${o.via}`}`;
      case "bidi":
        return `bidi ${o.remote} ${o.local}`;
      case "verify":
        return `verify ${o.remote} ${o.local}`;
      case "ready":
        return `ready${o.via === undefined ? "" : ` ${o.via}`}${o.bidi === true ? " bidi" : ""}`;
      case "failed":
        return `failed ${o.condition}`;
      default:
        return o.kind;
    }
  });
}

// --- incoming -----------------------------------------------------------------------------

const IN_CTX: S2sInCtx = {
  isLocal: (d) => d === "a.example" || d === "muc.a.example",
  tlsAvailable: true,
  requireEncryption: true,
  secureAuth: false,
  secret: "s3cret",
  newId: () => "sid1",
  maxDomains: 4,
  bidi: true,
};

function runIn(
  events: readonly S2sInEvent[],
  ctx: S2sInCtx = IN_CTX,
  start: S2sInSession = newS2sIn("192.0.2.1"),
): { readonly s: S2sInSession; readonly out: string[] } {
  let s = start;
  const out: string[] = [];
  for (const ev of events) {
    const [next, outputs] = reduceS2sIn(s, ev, ctx);
    s = next;
    out.push(...shown(outputs));
  }
  return { s, out };
}

const OPEN_IN: S2sInEvent = {
  kind: "stream-open",
  name: "stream",
  prefix: "stream",
  xmlns: NS_STREAMS,
  contentXmlns: NS_SERVER,
  attrs: { from: "b.example", to: "a.example", version: "1.0" },
};

function st<E>(el: Element): E {
  return { kind: "stanza", stanza: el } as E;
}

const BIDI_REQUEST = st<S2sInEvent>(elem("bidi", { xmlns: "urn:xmpp:bidi" }));
const DB_FEATURE = '<dialback xmlns="urn:xmpp:features:dialback"><errors/></dialback>';
const BIDI_FEATURE = '<bidi xmlns="urn:xmpp:features:bidi"/>';
const features = (inner: string) => `send <stream:features>${inner}</stream:features>`;

/** A stanza of ours for the shell to send, in the client namespace. */
function outbound(from: string, to: string): S2sInEvent {
  return {
    kind: "outbound",
    stanza: elem("message", { xmlns: NS_CLIENT, from, to, type: "chat" }, [
      elem("body", {}, ["hi"]),
    ]),
  };
}

function dbClaim(from: string, to: string): S2sInEvent {
  return st(elem("result", { xmlns: NS_DIALBACK, from, to }, ["k1"]));
}

const SENT_BACK = 'send <message from="a.example" to="b.example" type="chat"><body>hi</body>' +
  "</message>";
const UNSENT = (from: string) =>
  `unsent jabber:client <message from="${from}" to="b.example" type="chat">` +
  "<body>hi</body></message>";

Deno.test("s2s bidi in: the feature is offered after TLS when TLS is required, before it when not", () => {
  const required = runIn([OPEN_IN]);
  assert.deepEqual(required.out, [
    "open-stream a.example b.example",
    features('<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required/></starttls>'),
  ]);
  const tls = runIn([{ kind: "tls-done" }, OPEN_IN]);
  assert.deepEqual(tls.out, [
    "open-stream a.example b.example",
    features(DB_FEATURE + BIDI_FEATURE),
  ]);
  const plain = runIn([OPEN_IN], { ...IN_CTX, requireEncryption: false });
  assert.deepEqual(plain.out, [
    "open-stream a.example b.example",
    features('<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>' + DB_FEATURE + BIDI_FEATURE),
  ]);
  // Not configured: not offered.
  const off = runIn([{ kind: "tls-done" }, OPEN_IN], { ...IN_CTX, bidi: false });
  assert.deepEqual(off.out, ["open-stream a.example b.example", features(DB_FEATURE)]);
});

Deno.test("s2s bidi in: after <bidi/> and dialback, our stanzas for that pair go back over the stream", () => {
  const { s, out } = runIn([
    { kind: "tls-done" },
    OPEN_IN,
    BIDI_REQUEST,
    dbClaim("b.example", "a.example"),
    { kind: "verified", remote: "b.example", local: "a.example", valid: true },
    outbound("a.example", "b.example"),
    // Another local domain was not part of any pair b.example proved: the shell sends it
    // another way.
    outbound("muc.a.example", "b.example"),
  ]);
  assert.deepEqual(out.slice(2), [
    "verify b.example a.example",
    'send <db:result from="a.example" to="b.example" type="valid"/>',
    "authenticated b.example a.example",
    "bidi b.example a.example",
    SENT_BACK,
    UNSENT("muc.a.example"),
  ]);
  assert.deepEqual(s.bidiPairs, ["b.example a.example"]);
  // Each further pair is announced once, when it is proved.
  const more = runIn(
    [
      dbClaim("b.example", "muc.a.example"),
      { kind: "verified", remote: "b.example", local: "muc.a.example", valid: true },
      outbound("muc.a.example", "b.example"),
    ],
    IN_CTX,
    s,
  );
  assert.deepEqual(more.out, [
    "verify b.example muc.a.example",
    'send <db:result from="muc.a.example" to="b.example" type="valid"/>',
    "authenticated b.example muc.a.example",
    "bidi b.example muc.a.example",
    'send <message from="muc.a.example" to="b.example" type="chat"><body>hi</body></message>',
  ]);
});

Deno.test("s2s bidi in: with SASL EXTERNAL the pair is announced after the new stream's header", () => {
  const auth = st<S2sInEvent>(elem("auth", { xmlns: NS_SASL, mechanism: "EXTERNAL" }, ["="]));
  const { s, out } = runIn([{ kind: "tls-done", peer: GOOD }, OPEN_IN, BIDI_REQUEST, auth]);
  assert.deepEqual(out, [
    "open-stream a.example b.example",
    features(
      '<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>EXTERNAL</mechanism>' +
        "</mechanisms>" + DB_FEATURE + BIDI_FEATURE,
    ),
    'send <success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>',
    "reset-stream",
    "authenticated b.example a.example sasl-external",
  ]);
  // Between SASL success and the new header nothing of ours may go.
  assert.deepEqual(runIn([outbound("a.example", "b.example")], IN_CTX, s).out, [
    UNSENT("a.example"),
  ]);
  const after = runIn([OPEN_IN, outbound("a.example", "b.example")], IN_CTX, s);
  assert.deepEqual(after.out, [
    "open-stream a.example b.example",
    // Authenticated: neither EXTERNAL nor bidi again.
    features(DB_FEATURE),
    "bidi b.example a.example",
    SENT_BACK,
  ]);
});

Deno.test("s2s bidi in: <bidi/> after authenticating, unconfigured or before TLS is not taken", () => {
  const authed: S2sInEvent[] = [
    { kind: "tls-done" },
    OPEN_IN,
    dbClaim("b.example", "a.example"),
    { kind: "verified", remote: "b.example", local: "a.example", valid: true },
  ];
  const late = runIn([...authed, BIDI_REQUEST, outbound("a.example", "b.example")]);
  assert.deepEqual(late.out.slice(-2), ["authenticated b.example a.example", UNSENT("a.example")]);
  assert.equal(late.s.state, "open");
  assert.equal(late.s.bidi, undefined);

  const off = runIn(
    [authed[0], authed[1], BIDI_REQUEST, ...authed.slice(2), outbound("a.example", "b.example")],
    { ...IN_CTX, bidi: false },
  );
  assert.equal(off.out.at(-1), UNSENT("a.example"));
  assert.ok(!off.out.some((o) => o.startsWith("bidi ")));

  // Asked before TLS (allowed in plain text here), it does not survive STARTTLS (XEP-0288 §2.1).
  const plain = { ...IN_CTX, requireEncryption: false };
  const early = runIn([
    OPEN_IN,
    BIDI_REQUEST,
    st(elem("starttls", { xmlns: NS_TLS })),
    { kind: "tls-done" },
    OPEN_IN,
    ...authed.slice(2),
  ], plain);
  assert.ok(!early.out.some((o) => o.startsWith("bidi ")), early.out.join("\n"));
  assert.equal(early.s.bidi, undefined);
});

Deno.test("s2s bidi in: a closed stream hands our stanzas back", () => {
  const { s } = runIn([
    { kind: "tls-done" },
    OPEN_IN,
    BIDI_REQUEST,
    dbClaim("b.example", "a.example"),
    { kind: "verified", remote: "b.example", local: "a.example", valid: true },
    { kind: "disconnected" },
  ]);
  assert.equal(s.state, "closed");
  assert.deepEqual(runIn([outbound("a.example", "b.example")], IN_CTX, s).out, [
    UNSENT("a.example"),
  ]);
});

// --- outgoing -----------------------------------------------------------------------------

const OUT_CTX: S2sOutCtx = {
  secret: "s3cret",
  requireEncryption: true,
  maxVerifies: 2,
  bidi: true,
};

function runOut(
  events: readonly S2sOutEvent[],
  ctx: S2sOutCtx = OUT_CTX,
  start: S2sOutSession = newS2sOut("a.example", "b.example"),
): { readonly s: S2sOutSession; readonly out: string[] } {
  let s = start;
  const out: string[] = [];
  for (const ev of events) {
    const [next, outputs] = reduceS2sOut(s, ev, ctx);
    s = next;
    out.push(...shown(outputs));
  }
  return { s, out };
}

function openOut(id: string): S2sOutEvent {
  return {
    kind: "stream-open",
    name: "stream",
    prefix: "stream",
    xmlns: NS_STREAMS,
    contentXmlns: NS_SERVER,
    attrs: { from: "b.example", to: "a.example", id, version: "1.0" },
  };
}

function featuresEv(...children: Element[]): S2sOutEvent {
  return st(elem("features", { xmlns: NS_STREAMS }, children));
}

const BIDI_OFFER = elem("bidi", { xmlns: "urn:xmpp:features:bidi" });
const DIALBACK_OFFER = elem("dialback", { xmlns: "urn:xmpp:features:dialback" }, [
  elem("errors"),
]);
const EXTERNAL_OFFER = elem("mechanisms", { xmlns: NS_SASL }, [
  elem("mechanism", {}, ["EXTERNAL"]),
]);
/** Connected, STARTTLS, a new stream over TLS (the remote's certificate: `peer`). */
function toSecure(peer?: PeerCert): S2sOutEvent[] {
  return [
    { kind: "connected" },
    openOut("r1"),
    featuresEv(elem("starttls", { xmlns: NS_TLS }, [elem("required")]), BIDI_OFFER),
    st(elem("proceed", { xmlns: NS_TLS })),
    peer === undefined ? { kind: "tls-done" } : { kind: "tls-done", peer },
    openOut("r2"),
  ];
}

function answer(from: string, to: string, type: string): S2sOutEvent {
  return st(elem("result", { xmlns: NS_DIALBACK, from, to, type }));
}

function incoming(from: string, to: string): S2sOutEvent {
  return st(elem("message", { xmlns: NS_SERVER, from, to, type: "chat" }, [
    elem("body", {}, ["back"]),
  ]));
}

const KEY = dialbackKey("s3cret", "b.example", "a.example", "r2");
const SEND_BIDI = 'send <bidi xmlns="urn:xmpp:bidi"/>';
const ROUTED = 'route jabber:client <message from="bob@b.example/r" to="alice@a.example" ' +
  'type="chat"><body>back</body></message>';

Deno.test("s2s bidi out: <bidi/> after TLS, before our key; ready bidi; the remote's stanzas routed", () => {
  const { s, out } = runOut([
    ...toSecure(),
    featuresEv(DIALBACK_OFFER, BIDI_OFFER),
    answer("b.example", "a.example", "valid"),
    incoming("bob@b.example/r", "alice@a.example"),
  ]);
  assert.deepEqual(out, [
    "open-stream a.example b.example",
    // Before TLS (required here) the offer is not taken.
    'send <starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>',
    "starttls",
    "open-stream a.example b.example",
    SEND_BIDI,
    `send <db:result from="a.example" to="b.example">${KEY}</db:result>`,
    "ready bidi",
    ROUTED,
  ]);
  assert.equal(s.bidi, "on");
  // Only from the remote's domain to ours.
  const wrong = runOut([incoming("eve@c.example", "alice@a.example")], OUT_CTX, s);
  assert.deepEqual(wrong.out, [
    "close-stream invalid-from",
    "disconnect",
  ]);
  const elsewhere = runOut([incoming("bob@b.example", "x@elsewhere.example")], OUT_CTX, s);
  assert.deepEqual(elsewhere.out, ["close-stream invalid-from", "disconnect"]);
});

Deno.test("s2s bidi out: with SASL EXTERNAL <bidi/> goes before <auth/>, ready after the new stream", () => {
  const { s, out } = runOut([
    ...toSecure(GOOD),
    featuresEv(EXTERNAL_OFFER, DIALBACK_OFFER, BIDI_OFFER),
    st(elem("success", { xmlns: NS_SASL })),
    openOut("r3"),
    featuresEv(),
    incoming("bob@b.example/r", "alice@a.example"),
  ], { ...OUT_CTX, external: true, secureAuth: true });
  assert.deepEqual(out.slice(4), [
    SEND_BIDI,
    // base64("a.example")
    'send <auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="EXTERNAL">YS5leGFtcGxl</auth>',
    "reset-stream",
    "open-stream a.example b.example",
    "ready sasl-external bidi",
    ROUTED,
  ]);
  assert.equal(s.bidi, "on");
});

Deno.test("s2s bidi out: not offered, or not configured: no <bidi/>, the remote's stanzas end the link", () => {
  for (
    const [offer, ctx] of [
      [[DIALBACK_OFFER], OUT_CTX],
      [[DIALBACK_OFFER, BIDI_OFFER], { ...OUT_CTX, bidi: false }],
    ] as const
  ) {
    const { s, out } = runOut([
      ...toSecure(),
      featuresEv(...offer),
      answer("b.example", "a.example", "valid"),
      incoming("bob@b.example/r", "alice@a.example"),
    ], ctx);
    assert.ok(!out.includes(SEND_BIDI));
    assert.deepEqual(out.slice(-4), [
      `send <db:result from="a.example" to="b.example">${KEY}</db:result>`,
      "ready",
      "close-stream unsupported-stanza-type",
      "disconnect",
    ]);
    assert.equal(s.state, "closed");
  }
});

Deno.test("s2s bidi out: a valid result for a pair we did not ask about proves nothing (XEP-0288 §4)", () => {
  const { s, out } = runOut([
    ...toSecure(),
    featuresEv(DIALBACK_OFFER, BIDI_OFFER),
    answer("c.example", "a.example", "valid"),
    answer("b.example", "muc.a.example", "valid"),
    incoming("bob@b.example/r", "alice@a.example"),
  ]);
  assert.equal(s.state, "closed");
  assert.deepEqual(out.slice(-4), [
    `send <db:result from="a.example" to="b.example">${KEY}</db:result>`,
    // Still waiting for our own answer: a stanza now is unexpected, the link fails.
    "failed remote-server-not-found",
    "close-stream unsupported-stanza-type",
    "disconnect",
  ]);
});

Deno.test("s2s bidi out: the remote's dialback request on our stream is refused, the stream stays", () => {
  const { s, out } = runOut([
    ...toSecure(),
    featuresEv(DIALBACK_OFFER, BIDI_OFFER),
    answer("b.example", "a.example", "valid"),
    st(elem("result", { xmlns: NS_DIALBACK, from: "muc.b.example", to: "a.example" }, ["k"])),
  ]);
  assert.equal(s.state, "ready");
  assert.deepEqual(out.slice(-1), [
    'send <db:result from="a.example" to="muc.b.example" type="error"><error type="cancel">' +
    '<feature-not-implemented xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></db:result>',
  ]);
});
