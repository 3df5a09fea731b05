import assert from "node:assert/strict";
import { reduce } from "../../lib/c2s/mod.ts";
import type { Ctx, Event } from "../../lib/core/types.ts";
import type { Session } from "../../lib/core/session.ts";
import { elem, stanza } from "../../lib/xml/element.ts";
import type { StreamErrorCondition } from "../../lib/xmpp/errors.ts";
import { NS_TLS } from "../../lib/xmpp/namespaces.ts";
import {
  authed,
  authedExtrasXml,
  bound,
  fresh,
  HOST,
  ourHeader,
  record,
  run,
  show,
  stanzaEvent,
  streamOpen,
  testCtx,
} from "../_ctx.ts";

const STREAMS = "http://etherx.jabber.org/streams";
const ERR_NS = "urn:ietf:params:xml:ns:xmpp-streams";

function streamError(condition: string, text: string): string {
  return `<stream:error><${condition} xmlns="${ERR_NS}"/>` +
    `<text xmlns="${ERR_NS}" xml:lang="en">${text}</text></stream:error>`;
}

const LIMITS_UNAUTHED =
  '<limits xmlns="urn:xmpp:stream-limits:0"><max-bytes>10000</max-bytes><idle-seconds>300</idle-seconds></limits>';
const LIMITS_AUTHED =
  '<limits xmlns="urn:xmpp:stream-limits:0"><max-bytes>262144</max-bytes><idle-seconds>300</idle-seconds></limits>';

function mechanisms(...names: string[]): string {
  return '<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl">' +
    names.map((n) => `<mechanism>${n}</mechanism>`).join("") + "</mechanisms>";
}

// ---------------------------------------------------------------------------------------------
// Stream header checks (RFC 6120 §4.9.3): every bad header gets our header (none was sent
// yet), the stream error, the closing tag, and a disconnect; the session ends.

interface BadHeaderCase {
  readonly name: string;
  readonly session?: Session;
  readonly ctx?: Ctx;
  readonly event: Event;
  readonly condition: StreamErrorCondition;
  readonly text: string;
}

const BAD_HEADERS: readonly BadHeaderCase[] = [
  {
    name: "wrong root namespace",
    event: streamOpen(undefined, { xmlns: "jabber:client" }),
    condition: "invalid-namespace",
    text: "The stream element must be in " + STREAMS,
  },
  {
    name: "wrong root element name",
    event: streamOpen(undefined, { name: "stream2" }),
    condition: "invalid-namespace",
    text: "The stream element must be in " + STREAMS,
  },
  {
    name: "wrong content namespace",
    event: streamOpen(undefined, { contentXmlns: "jabber:server" }),
    condition: "invalid-namespace",
    text: "The default namespace must be jabber:client",
  },
  {
    name: "prefix other than stream",
    event: streamOpen(undefined, { prefix: "s" }),
    condition: "bad-namespace-prefix",
    text: "The stream element must use prefix 'stream'",
  },
  {
    name: "no prefix",
    event: streamOpen(undefined, { prefix: "" }),
    condition: "bad-namespace-prefix",
    text: "The stream element must use prefix 'stream'",
  },
  {
    name: "missing version",
    event: streamOpen({ to: HOST }),
    condition: "unsupported-version",
    text: "Only XMPP 1.0 streams are supported",
  },
  {
    name: "version 0.9",
    event: streamOpen({ to: HOST, version: "0.9" }),
    condition: "unsupported-version",
    text: "Only XMPP 1.0 streams are supported",
  },
  {
    name: "version 2.0",
    event: streamOpen({ to: HOST, version: "2.0" }),
    condition: "unsupported-version",
    text: "Only XMPP 1.0 streams are supported",
  },
  {
    name: "no to",
    event: streamOpen({ version: "1.0" }),
    condition: "improper-addressing",
    text: "The stream header needs a 'to' address",
  },
  {
    name: "empty to",
    event: streamOpen({ to: "", version: "1.0" }),
    condition: "improper-addressing",
    text: "The stream header needs a 'to' address",
  },
  {
    name: "unknown host",
    event: streamOpen({ to: "other.example", version: "1.0" }),
    condition: "host-unknown",
    text: "This server does not serve other.example",
  },
  {
    name: "restarted stream names another served host",
    // After STARTTLS: the host is known, our new header was not sent yet.
    session: { ...fresh(true), host: HOST },
    ctx: testCtx({ hosts: [HOST, "other.example"] }),
    event: streamOpen({ to: "other.example", version: "1.0" }),
    condition: "host-unknown",
    text: "The restarted stream names another host",
  },
];

for (const c of BAD_HEADERS) {
  Deno.test(`stream: ${c.name} -> ${c.condition}`, () => {
    const s = c.session ?? fresh();
    const [next, out] = reduce(s, c.event, c.ctx ?? testCtx());
    assert.deepEqual(show(out), [
      { kind: "open-stream", header: ourHeader("id1") },
      { kind: "close-stream", xml: streamError(c.condition, c.text) },
      { kind: "disconnect", error: { condition: c.condition, text: c.text } },
    ]);
    assert.deepEqual(record(next), record({ ...s, destroyed: true }));
  });
}

Deno.test("stream: version 1.1 is accepted as XMPP 1.x", () => {
  const [next, out] = reduce(fresh(), streamOpen({ to: HOST, version: "1.1" }), testCtx());
  assert.equal(next.notopen, false);
  assert.equal(next.destroyed, false);
  assert.equal(out.length, 2);
  assert.deepEqual(out[0], { kind: "open-stream", header: ourHeader("id1") });
});

Deno.test("stream: the to address is normalised before the host check", () => {
  const [next, out] = reduce(
    fresh(),
    streamOpen({ to: "EXAMPLE.com.", version: "1.0" }),
    testCtx(),
  );
  assert.equal(next.host, HOST);
  assert.deepEqual(out[0], { kind: "open-stream", header: ourHeader("id1") });
});

// ---------------------------------------------------------------------------------------------
// Good headers: our header, then the features for the session's state.

Deno.test("stream: good header before TLS offers STARTTLS and SCRAM, not PLAIN", () => {
  const s = fresh();
  const [next, out] = reduce(
    s,
    streamOpen({ to: HOST, version: "1.0", "xml:lang": "de" }),
    testCtx(),
  );
  assert.deepEqual(show(out), [
    { kind: "open-stream", header: ourHeader("id1") },
    {
      kind: "send",
      xml: '<stream:features><starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>' +
        mechanisms("SCRAM-SHA-256", "SCRAM-SHA-1") + LIMITS_UNAUTHED + "</stream:features>",
    },
  ]);
  assert.deepEqual(
    record(next),
    record({ ...s, notopen: false, streamId: "id1", host: HOST, lang: "de" }),
  );
});

Deno.test("stream: encryption required: STARTTLS with <required/>, no mechanisms", () => {
  const [, out] = reduce(fresh(), streamOpen(), testCtx({ requireEncryption: true }));
  assert.deepEqual(show(out), [
    { kind: "open-stream", header: ourHeader("id1") },
    {
      kind: "send",
      xml: '<stream:features><starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required/>' +
        "</starttls>" + LIMITS_UNAUTHED + "</stream:features>",
    },
  ]);
});

Deno.test("stream: no certificate: no STARTTLS offered", () => {
  const [, out] = reduce(fresh(), streamOpen(), testCtx({ tlsAvailable: false }));
  assert.deepEqual(show(out)[1], {
    kind: "send",
    xml: "<stream:features>" + mechanisms("SCRAM-SHA-256", "SCRAM-SHA-1") + LIMITS_UNAUTHED +
      "</stream:features>",
  });
});

const FEATURES_AFTER_TLS: readonly {
  readonly name: string;
  readonly session: Session;
  readonly ctx: Ctx;
  readonly xml: string;
}[] = [
  {
    name: "with tls-server-end-point: -PLUS first, the binding type advertised, PLAIN last",
    session: { ...fresh(true), channelBindings: { "tls-server-end-point": new Uint8Array([1]) } },
    ctx: testCtx(),
    xml: mechanisms(
      "SCRAM-SHA-256-PLUS",
      "SCRAM-SHA-1-PLUS",
      "SCRAM-SHA-256",
      "SCRAM-SHA-1",
      "PLAIN",
    ) +
      '<sasl-channel-binding xmlns="urn:xmpp:sasl-cb:0">' +
      '<channel-binding type="tls-server-end-point"/></sasl-channel-binding>',
  },
  {
    name: "without channel bindings: no -PLUS and no sasl-channel-binding",
    session: { ...fresh(true), channelBindings: {} },
    ctx: testCtx(),
    xml: mechanisms("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"),
  },
  {
    name: "an unset binding type is not advertised",
    session: {
      ...fresh(true),
      channelBindings: { "tls-exporter": undefined, "tls-server-end-point": new Uint8Array([1]) },
    },
    ctx: testCtx(),
    xml: mechanisms(
      "SCRAM-SHA-256-PLUS",
      "SCRAM-SHA-1-PLUS",
      "SCRAM-SHA-256",
      "SCRAM-SHA-1",
      "PLAIN",
    ) +
      '<sasl-channel-binding xmlns="urn:xmpp:sasl-cb:0">' +
      '<channel-binding type="tls-server-end-point"/></sasl-channel-binding>',
  },
  {
    name: "PLAIN disabled by configuration",
    session: { ...fresh(true), channelBindings: {} },
    ctx: testCtx({ allowPlain: false }),
    xml: mechanisms("SCRAM-SHA-256", "SCRAM-SHA-1"),
  },
  {
    name: "encryption required and in place: mechanisms offered",
    session: { ...fresh(true), channelBindings: {} },
    ctx: testCtx({ requireEncryption: true }),
    xml: mechanisms("SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"),
  },
];

for (const c of FEATURES_AFTER_TLS) {
  Deno.test(`stream: features after TLS ${c.name}`, () => {
    const [, out] = reduce(c.session, streamOpen(), c.ctx);
    assert.deepEqual(show(out), [
      { kind: "open-stream", header: ourHeader("id1") },
      { kind: "send", xml: "<stream:features>" + c.xml + LIMITS_UNAUTHED + "</stream:features>" },
    ]);
  });
}

Deno.test("stream: features after authentication: bind, optional session, larger limit", () => {
  const s = authed({ notopen: true, streamId: undefined });
  const [next, out] = reduce(s, streamOpen(), testCtx());
  assert.deepEqual(show(out), [
    { kind: "open-stream", header: ourHeader("id1") },
    {
      kind: "send",
      xml: '<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/>' +
        '<session xmlns="urn:ietf:params:xml:ns:xmpp-session"><optional/></session>' +
        LIMITS_AUTHED + authedExtrasXml(testCtx()) + "</stream:features>",
    },
  ]);
  assert.deepEqual(record(next), record({ ...s, notopen: false, streamId: "id1" }));
});

Deno.test("stream: XEP-0478 limits carry the configured values", () => {
  const opts = { maxStanzaSizeUnauthed: 5000, maxStanzaSize: 65536, idleSeconds: 60 };
  const limits = (max: number) =>
    `<limits xmlns="urn:xmpp:stream-limits:0"><max-bytes>${max}</max-bytes>` +
    "<idle-seconds>60</idle-seconds></limits>";
  const [, before] = reduce(fresh(), streamOpen(), testCtx({ ...opts, tlsAvailable: false }));
  assert.deepEqual(show(before)[1], {
    kind: "send",
    xml: "<stream:features>" + mechanisms("SCRAM-SHA-256", "SCRAM-SHA-1") + limits(5000) +
      "</stream:features>",
  });
  const [, after] = reduce(
    authed({ notopen: true, streamId: undefined }),
    streamOpen(),
    testCtx(opts),
  );
  assert.deepEqual(show(after)[1], {
    kind: "send",
    xml: '<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/>' +
      '<session xmlns="urn:ietf:params:xml:ns:xmpp-session"><optional/></session>' +
      limits(65536) + authedExtrasXml(testCtx(opts)) + "</stream:features>",
  });
});

Deno.test("stream: a second header on an open stream is not-well-formed", () => {
  const ctx = testCtx();
  const { session, outputs } = run(fresh(), [streamOpen(), streamOpen()], ctx);
  assert.deepEqual(show(outputs.slice(2)), [
    { kind: "close-stream", xml: streamError("not-well-formed", "A second stream header") },
    { kind: "disconnect", error: { condition: "not-well-formed", text: "A second stream header" } },
  ]);
  assert.equal(session.destroyed, true);
});

// ---------------------------------------------------------------------------------------------
// STARTTLS (RFC 6120 §5.4).

const STARTTLS = stanzaEvent(elem("starttls", { xmlns: NS_TLS }));

Deno.test("starttls: proceed, upgrade, reset; then the restarted stream offers -PLUS", () => {
  const ctx = testCtx();
  const opened = run(fresh(), [streamOpen()], ctx).session;
  const [afterTls, out] = reduce(opened, STARTTLS, ctx);
  assert.deepEqual(show(out), [
    { kind: "send", xml: '<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>' },
    { kind: "starttls" },
    { kind: "reset-stream", authenticated: false },
  ]);
  assert.deepEqual(record(afterTls), record({ ...opened, notopen: true, streamId: undefined }));

  const cb = new Uint8Array([9, 9, 9]);
  const [secured, none] = reduce(afterTls, {
    kind: "tls-done",
    channelBindings: { "tls-server-end-point": cb },
  }, ctx);
  assert.deepEqual(none, []);
  assert.deepEqual(
    record(secured),
    record({ ...afterTls, secure: true, channelBindings: { "tls-server-end-point": cb } }),
  );

  const [restarted, out2] = reduce(secured, streamOpen(), ctx);
  assert.equal(restarted.streamId, "id2");
  assert.deepEqual(show(out2), [
    { kind: "open-stream", header: ourHeader("id2") },
    {
      kind: "send",
      xml: "<stream:features>" +
        mechanisms(
          "SCRAM-SHA-256-PLUS",
          "SCRAM-SHA-1-PLUS",
          "SCRAM-SHA-256",
          "SCRAM-SHA-1",
          "PLAIN",
        ) +
        '<sasl-channel-binding xmlns="urn:xmpp:sasl-cb:0">' +
        '<channel-binding type="tls-server-end-point"/></sasl-channel-binding>' +
        LIMITS_UNAUTHED + "</stream:features>",
    },
  ]);
});

for (
  const c of [
    { name: "already secure", session: fresh(true), ctx: testCtx() },
    { name: "no certificate", session: fresh(), ctx: testCtx({ tlsAvailable: false }) },
  ]
) {
  Deno.test(`starttls: ${c.name} -> failure and close`, () => {
    const opened = run(c.session, [streamOpen()], c.ctx).session;
    const [next, out] = reduce(opened, STARTTLS, c.ctx);
    assert.deepEqual(show(out), [
      { kind: "send", xml: '<failure xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>' },
      { kind: "close-stream" },
      { kind: "disconnect", error: undefined },
    ]);
    assert.deepEqual(record(next), record({ ...opened, destroyed: true }));
  });
}

// ---------------------------------------------------------------------------------------------
// Stream ends.

Deno.test("stream: the client's closing tag is answered with ours", () => {
  const s = authed();
  const [next, out] = reduce(s, { kind: "stream-close" }, testCtx());
  assert.deepEqual(out, [
    { kind: "close-stream", error: undefined },
    { kind: "disconnect", error: undefined },
  ]);
  assert.deepEqual(record(next), record({ ...s, destroyed: true }));
});

Deno.test("stream: a parse error before any header still gets a header first", () => {
  const [next, out] = reduce(fresh(), {
    kind: "parse-error",
    condition: "restricted-xml",
    text: "No comments",
  }, testCtx());
  assert.deepEqual(show(out), [
    { kind: "open-stream", header: ourHeader("id1") },
    { kind: "close-stream", xml: streamError("restricted-xml", "No comments") },
    { kind: "disconnect", error: { condition: "restricted-xml", text: "No comments" } },
  ]);
  assert.equal(next.destroyed, true);
});

// ---------------------------------------------------------------------------------------------
// A destroyed session is terminal: every event leaves it untouched and produces nothing
// (the h11 "illegal event" table).

const EVERY_EVENT: readonly Event[] = [
  streamOpen(),
  stanzaEvent(stanza("message", { to: "other@example.com" }, [elem("body", {}, ["hi"])])),
  STARTTLS,
  { kind: "stream-close" },
  { kind: "parse-error", condition: "not-well-formed" },
  { kind: "tls-done", channelBindings: {} },
  { kind: "inbound", stanza: stanza("message", { from: "other@example.com" }) },
  { kind: "credentials-loaded", username: "user", credentials: undefined },
  { kind: "roster-loaded", roster: { version: "1", items: {}, pendingIn: {} } },
  { kind: "idle-timeout" },
  { kind: "replaced" },
  { kind: "auth-timeout" },
  { kind: "disconnected", reason: "reset by peer" },
  { kind: "shutdown" },
];

for (
  const [name, s] of [
    ["fresh", { ...fresh(), destroyed: true }],
    ["bound", { ...bound(), destroyed: true }],
  ] as const
) {
  for (const ev of EVERY_EVENT) {
    const what = ev.kind === "stanza" ? `<${ev.stanza.name}/>` : ev.kind;
    Deno.test(`destroyed (${name}) session swallows ${what}`, () => {
      const [next, out] = reduce(s, ev, testCtx());
      assert.equal(next, s);
      assert.deepEqual(out, []);
    });
  }
}

Deno.test("stream: events with nothing to act on leave the session untouched", () => {
  const ctx = testCtx();
  for (
    const [s, ev] of [
      // No exchange is waiting for credentials.
      [authed(), { kind: "credentials-loaded", username: "user", credentials: undefined }],
      // Inbound stanzas only reach bound resources.
      [authed(), { kind: "inbound", stanza: stanza("message", { from: "a@example.com" }) }],
      // A bound session outlives the authentication timer.
      [bound(), { kind: "auth-timeout" }],
    ] as const
  ) {
    const [next, out] = reduce(s, ev, ctx);
    assert.equal(next, s, ev.kind);
    assert.deepEqual(out, [], ev.kind);
  }
});
