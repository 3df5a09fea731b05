/**
 * The incoming server-to-server reducer (lib/s2s/inbound.ts), output by output: header checks,
 * features, STARTTLS, dialback claims and their verdicts (XEP-0220), answering `<db:verify/>`
 * with our secret (XEP-0185), piggybacking and its cap, and the `from`/`to` rule on stanzas.
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
import { dialbackKey } from "../../lib/xmpp/dialback.ts";
import { serializeTop, serializeTopIn } from "../../lib/xmpp/stream_xml.ts";
import { elem, type Element } from "../../lib/xml/element.ts";
import { NS_DIALBACK, NS_SERVER, NS_STREAMS, NS_TLS } from "../../lib/xmpp/namespaces.ts";

const LOCALS = new Set(["a.example", "muc.a.example"]);

const CTX: S2sInCtx = {
  isLocal: (d) => LOCALS.has(d),
  tlsAvailable: true,
  requireEncryption: false,
  secureAuth: false,
  secret: "s3cret",
  newId: () => "sid1",
  maxDomains: 2,
};

/** Outputs as text; stanzas serialized as they go on the wire of a server stream. */
function shown(outputs: readonly S2sInOutput[]): string[] {
  return outputs.map((o) => {
    switch (o.kind) {
      case "send":
        return `send ${serializeTopIn(o.stanza, NS_SERVER)}`;
      case "route":
        return `route ${serializeTop(o.stanza)}`;
      case "open-stream":
        return `open-stream ${JSON.stringify(o.header)}`;
      case "close-stream":
        return "close-stream" +
          (o.error === undefined
            ? ""
            : ` ${o.error.condition}${o.error.text === undefined ? "" : `: ${o.error.text}`}`);
      case "verify":
        return `verify ${o.remote} ${o.local} ${o.streamId} ${o.key}`;
      case "authenticated":
        return `authenticated ${o.remote} ${o.local}`;
      case "starttls":
      case "disconnect":
        return o.kind;
      default:
        // An output kind added after these tests were written shows in full.
        return JSON.stringify(o);
    }
  });
}

function run(
  events: readonly S2sInEvent[],
  ctx: S2sInCtx = CTX,
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

/** Runs `events` and returns only the outputs of the last one. */
function last(events: readonly S2sInEvent[], ctx: S2sInCtx = CTX) {
  const before = run(events.slice(0, -1), ctx);
  return run(events.slice(-1), ctx, before.s);
}

function open(
  attrs: Readonly<Record<string, string>>,
  contentXmlns = NS_SERVER,
  xmlns = NS_STREAMS,
): S2sInEvent {
  return { kind: "stream-open", name: "stream", prefix: "stream", xmlns, contentXmlns, attrs };
}

const OPEN = open({ from: "b.example", to: "a.example", version: "1.0" });

function st(el: Element): S2sInEvent {
  return { kind: "stanza", stanza: el };
}

function result(from: string, to: string, key: string): S2sInEvent {
  return st(elem("result", { xmlns: NS_DIALBACK, from, to }, [key]));
}

function verifyEl(from: string, to: string, id: string, key: string): S2sInEvent {
  return st(elem("verify", { xmlns: NS_DIALBACK, from, to, id }, [key]));
}

function verified(remote: string, local: string, valid: boolean): S2sInEvent {
  return { kind: "verified", remote, local, valid };
}

function message(from: string, to: string): S2sInEvent {
  return st(elem("message", { xmlns: NS_SERVER, from, to, type: "chat" }, [
    elem("body", {}, ["hi"]),
  ]));
}

const HEADER_ANON =
  'open-stream {"ns":"jabber:server","id":"sid1","version":"1.0","dialback":true}';
const HEADER =
  'open-stream {"ns":"jabber:server","id":"sid1","from":"a.example","to":"b.example",' +
  '"version":"1.0","dialback":true}';
const DIALBACK = '<dialback xmlns="urn:xmpp:features:dialback"><errors/></dialback>';
const STARTTLS = '<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>';
const STARTTLS_REQUIRED =
  '<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required/></starttls>';
const features = (inner: string) => `send <stream:features>${inner}</stream:features>`;
const REQUIRED: S2sInCtx = { ...CTX, requireEncryption: true };
/** b.example authenticated for a.example on a plain stream. */
const AUTHED = [
  OPEN,
  result("b.example", "a.example", "k1"),
  verified("b.example", "a.example", true),
];

Deno.test("s2s in: a header in the wrong stream namespace is refused after our own header", () => {
  const { s, out } = run([open({ to: "a.example" }, NS_SERVER, "urn:example:not-streams")]);
  assert.equal(s.state, "closed");
  assert.deepEqual(out, [HEADER_ANON, "close-stream invalid-namespace", "disconnect"]);
});

Deno.test("s2s in: a stream in the client namespace is not a server stream", () => {
  const { s, out } = run([open({ to: "a.example" }, "jabber:client")]);
  assert.equal(s.state, "closed");
  assert.deepEqual(out, [
    HEADER_ANON,
    "close-stream invalid-namespace: A server-to-server stream must be in jabber:server",
    "disconnect",
  ]);
});

Deno.test("s2s in: a header for a domain we do not serve (or none) gets host-unknown", () => {
  assert.deepEqual(run([open({ from: "b.example", to: "c.example" })]).out, [
    HEADER_ANON,
    "close-stream host-unknown: This server does not serve c.example",
    "disconnect",
  ]);
  assert.deepEqual(run([open({ from: "b.example" })]).out, [
    HEADER_ANON,
    "close-stream host-unknown: This server does not serve (no to)",
    "disconnect",
  ]);
  // A `to` that is no domain at all (stringprep fails) is unknown too.
  assert.equal(
    run([open({ to: "a b@example" })]).out[1].split(":")[0],
    "close-stream host-unknown",
  );
});

Deno.test("s2s in: features offer TLS (required or not) and dialback as the settings say", () => {
  // Plain text allowed: TLS offered, dialback usable at once.
  const plain = run([OPEN]);
  assert.equal(plain.s.state, "open");
  assert.equal(plain.s.streamId, "sid1");
  assert.deepEqual(plain.out, [HEADER, features(STARTTLS + DIALBACK)]);
  // TLS required: no dialback before it.
  assert.deepEqual(run([OPEN], REQUIRED).out, [HEADER, features(STARTTLS_REQUIRED)]);
  // No certificate: no TLS to offer.
  assert.deepEqual(run([OPEN], { ...CTX, tlsAvailable: false }).out, [HEADER, features(DIALBACK)]);
  // TLS done: dialback only.
  assert.deepEqual(run([OPEN], REQUIRED, newS2sIn("192.0.2.1", true)).out, [
    HEADER,
    features(DIALBACK),
  ]);
  // secure_auth: no dialback at all, even over TLS.
  assert.deepEqual(
    run([OPEN], { ...REQUIRED, secureAuth: true }, newS2sIn("192.0.2.1", true)).out,
    [HEADER, "send <stream:features/>"],
  );
  // A header without `from` is answered without `to`.
  assert.deepEqual(
    run([open({ to: "a.example", version: "1.0" })]).out[0],
    'open-stream {"ns":"jabber:server","id":"sid1","from":"a.example","version":"1.0","dialback":true}',
  );
});

Deno.test("s2s in: STARTTLS, then a new stream over TLS with dialback offered", () => {
  const starttls = st(elem("starttls", { xmlns: NS_TLS }));
  const a = run([OPEN, starttls], REQUIRED);
  assert.equal(a.s.state, "opening");
  assert.equal(a.s.secure, false);
  assert.deepEqual(a.out.slice(2), [
    'send <proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>',
    "starttls",
  ]);
  const b = run([{ kind: "tls-done" }, OPEN], REQUIRED, a.s);
  assert.equal(b.s.secure, true);
  assert.equal(b.s.state, "open");
  assert.deepEqual(b.out, [HEADER, features(DIALBACK)]);
  // A second STARTTLS, or one without a certificate, fails and closes.
  const again = run([starttls], REQUIRED, b.s);
  assert.equal(again.s.state, "closed");
  assert.deepEqual(again.out, [
    'send <failure xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>',
    "close-stream",
    "disconnect",
  ]);
  assert.deepEqual(last([OPEN, starttls], { ...CTX, tlsAvailable: false }).out, [
    'send <failure xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>',
    "close-stream",
    "disconnect",
  ]);
});

Deno.test("s2s in: a dialback claim asks the authoritative server; valid authenticates", () => {
  const claim = last([OPEN, result("b.example", "a.example", " k1\n")]);
  assert.deepEqual(claim.out, ["verify b.example a.example sid1 k1"]);
  assert.deepEqual(claim.s.pending, ["b.example a.example"]);
  assert.deepEqual(claim.s.authed, []);
  // The same claim again while it is checked: nothing new.
  assert.deepEqual(run([result("b.example", "a.example", "k1")], CTX, claim.s).out, []);
  const ok = run([verified("b.example", "a.example", true)], CTX, claim.s);
  assert.deepEqual(ok.out, [
    'send <db:result from="a.example" to="b.example" type="valid"/>',
    "authenticated b.example a.example",
  ]);
  assert.deepEqual(ok.s.pending, []);
  assert.deepEqual(ok.s.authed, ["b.example a.example"]);
  assert.equal(ok.s.state, "open");
  // Claimed again once authenticated: answered valid at once, no second check.
  assert.deepEqual(run([result("b.example", "a.example", "k2")], CTX, ok.s).out, [
    'send <db:result from="a.example" to="b.example" type="valid"/>',
  ]);
  // A verdict for a pair nobody asked about changes nothing.
  const stray = run([verified("c.example", "a.example", true)], CTX, ok.s);
  assert.deepEqual(stray.out, []);
  assert.deepEqual(stray.s, ok.s);
});

Deno.test("s2s in: invalid with nothing else authenticated closes with not-authorized", () => {
  const { s, out } = last([
    OPEN,
    result("b.example", "a.example", "k1"),
    verified("b.example", "a.example", false),
  ]);
  assert.equal(s.state, "closed");
  assert.deepEqual(s.pending, []);
  assert.deepEqual(out, [
    'send <db:result from="a.example" to="b.example" type="invalid"/>',
    "close-stream not-authorized: Dialback failed",
    "disconnect",
  ]);
});

Deno.test("s2s in: invalid beside an authenticated domain (or a pending one) keeps the stream", () => {
  const after = last([
    ...AUTHED,
    result("c.example", "a.example", "k2"),
    verified("c.example", "a.example", false),
  ]);
  assert.equal(after.s.state, "open");
  assert.deepEqual(after.s.authed, ["b.example a.example"]);
  assert.deepEqual(after.s.pending, []);
  assert.deepEqual(after.out, ['send <db:result from="a.example" to="c.example" type="invalid"/>']);
  // Two checks in flight, the first fails: the second may still succeed.
  const two = last([
    OPEN,
    result("b.example", "a.example", "k1"),
    result("c.example", "a.example", "k2"),
    verified("b.example", "a.example", false),
  ]);
  assert.equal(two.s.state, "open");
  assert.deepEqual(two.s.pending, ["c.example a.example"]);
  assert.deepEqual(two.out, ['send <db:result from="a.example" to="b.example" type="invalid"/>']);
});

Deno.test("s2s in: piggybacking a second domain, each pair checked alone", () => {
  const { s, out } = run([
    ...AUTHED,
    result("c.example", "a.example", "k2"),
    verified("c.example", "a.example", true),
    message("u@c.example/r", "v@a.example"),
  ]);
  assert.deepEqual(s.authed, ["b.example a.example", "c.example a.example"]);
  assert.deepEqual(out.slice(-4), [
    "verify c.example a.example sid1 k2",
    'send <db:result from="a.example" to="c.example" type="valid"/>',
    "authenticated c.example a.example",
    'route <message from="u@c.example/r" to="v@a.example" type="chat"><body>hi</body></message>',
  ]);
});

Deno.test("s2s in: claims beyond maxDomains get resource-constraint, an empty key bad-request", () => {
  const capped = last([
    ...AUTHED,
    result("c.example", "a.example", "k2"),
    result("d.example", "a.example", "k3"),
  ]);
  assert.equal(capped.s.state, "open");
  assert.deepEqual(capped.s.pending, ["c.example a.example"]);
  assert.deepEqual(capped.out, [
    'send <db:result from="a.example" to="d.example" type="error"><error type="cancel">' +
    '<resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></db:result>',
  ]);
  const empty = last([OPEN, result("b.example", "a.example", "  ")]);
  assert.equal(empty.s.state, "open");
  assert.deepEqual(empty.s.pending, []);
  assert.deepEqual(empty.out, [
    'send <db:result from="a.example" to="b.example" type="error"><error type="cancel">' +
    '<bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></db:result>',
  ]);
});

Deno.test("s2s in: a claim for a domain we do not serve, or without addresses, closes", () => {
  assert.deepEqual(last([OPEN, result("b.example", "c.example", "k1")]).out, [
    "close-stream host-unknown",
    "disconnect",
  ]);
  assert.deepEqual(
    last([OPEN, st(elem("result", { xmlns: NS_DIALBACK, to: "a.example" }, ["k"]))]).out,
    ["close-stream improper-addressing", "disconnect"],
  );
});

Deno.test("s2s in: dialback before TLS when TLS is required is a policy violation", () => {
  const { s, out } = last([OPEN, result("b.example", "a.example", "k1")], REQUIRED);
  assert.equal(s.state, "closed");
  assert.deepEqual(out, ["close-stream policy-violation: Use TLS first", "disconnect"]);
});

Deno.test("s2s in: secure_auth refuses dialback with not-authorized", () => {
  const ctx = { ...REQUIRED, secureAuth: true };
  const { s, out } = run(
    [OPEN, result("b.example", "a.example", "k1")],
    ctx,
    newS2sIn("192.0.2.1", true),
  );
  assert.equal(s.state, "closed");
  assert.deepEqual(out.slice(2), [
    "close-stream not-authorized: Dialback is not accepted here: authenticate with a certificate",
    "disconnect",
  ]);
});

Deno.test("s2s in: db:verify is answered valid or invalid by our secret", () => {
  // b.example's server got key K from us (a.example) on its stream "rid9", and asks.
  const key = dialbackKey("s3cret", "b.example", "a.example", "rid9");
  const good = last([OPEN, verifyEl("b.example", "a.example", "rid9", key)]);
  assert.equal(good.s.state, "open");
  assert.deepEqual(good.s.authed, []);
  assert.deepEqual(good.out, [
    'send <db:verify from="a.example" to="b.example" id="rid9" type="valid"/>',
  ]);
  // Case and surrounding white space do not matter (hex).
  assert.deepEqual(
    last([OPEN, verifyEl("b.example", "a.example", "rid9", ` ${key.toUpperCase()}\n`)]).out,
    [
      'send <db:verify from="a.example" to="b.example" id="rid9" type="valid"/>',
    ],
  );
  // Another stream id, another asker, another secret: invalid.
  for (
    const ev of [
      verifyEl("b.example", "a.example", "rid8", key),
      verifyEl("c.example", "a.example", "rid9", key),
      verifyEl(
        "b.example",
        "a.example",
        "rid9",
        dialbackKey("other", "b.example", "a.example", "rid9"),
      ),
      verifyEl("b.example", "a.example", "rid9", ""),
    ]
  ) {
    const bad = last([OPEN, ev]);
    const el = (ev as { stanza: Element }).stanza;
    assert.equal(bad.s.state, "open");
    assert.deepEqual(bad.out, [
      `send <db:verify from="a.example" to="${el.attrs.from}" id="${el.attrs.id}" type="invalid"/>`,
    ]);
  }
  // For a domain we do not serve, or without an id: the stream closes.
  assert.deepEqual(last([OPEN, verifyEl("b.example", "c.example", "rid9", key)]).out, [
    "close-stream host-unknown",
    "disconnect",
  ]);
  assert.deepEqual(
    last([
      OPEN,
      st(elem("verify", { xmlns: NS_DIALBACK, from: "b.example", to: "a.example" }, [key])),
    ])
      .out,
    ["close-stream improper-addressing", "disconnect"],
  );
});

Deno.test("s2s in: stanzas from an authenticated domain are routed in the client namespace", () => {
  const { s, out } = last([...AUTHED, message("u@b.example/r", "v@a.example")]);
  assert.equal(s.state, "open");
  assert.deepEqual(out, [
    'route <message from="u@b.example/r" to="v@a.example" type="chat"><body>hi</body></message>',
  ]);
  const routed = reduceS2sIn(
    run(AUTHED).s,
    message("u@b.example/r", "v@a.example"),
    CTX,
  )[1][0] as Extract<S2sInOutput, { kind: "route" }>;
  assert.equal(routed.stanza.xmlns, "jabber:client");
  assert.equal((routed.stanza.children[0] as Element).xmlns, "jabber:client");
});

Deno.test("s2s in: a stanza from a domain not authenticated (for that `to`) is invalid-from", () => {
  assert.deepEqual(last([OPEN, message("u@b.example", "v@a.example")]).out, [
    "close-stream invalid-from: b.example is not authenticated for a.example on this stream",
    "disconnect",
  ]);
  // b.example is authenticated for a.example only, not for our other domain.
  assert.deepEqual(last([...AUTHED, message("u@b.example", "room@muc.a.example")]).out, [
    "close-stream invalid-from: b.example is not authenticated for muc.a.example on this stream",
    "disconnect",
  ]);
  // A claim still being checked does not count.
  assert.deepEqual(
    last([OPEN, result("b.example", "a.example", "k1"), message("u@b.example", "v@a.example")]).out,
    [
      "close-stream invalid-from: b.example is not authenticated for a.example on this stream",
      "disconnect",
    ],
  );
});

Deno.test("s2s in: a stanza to a domain we do not serve is host-unknown; no address is improper", () => {
  assert.deepEqual(last([...AUTHED, message("u@b.example", "v@c.example")]).out, [
    "close-stream host-unknown",
    "disconnect",
  ]);
  assert.deepEqual(
    last([...AUTHED, st(elem("message", { xmlns: NS_SERVER, to: "v@a.example" }))]).out,
    ["close-stream improper-addressing", "disconnect"],
  );
});

Deno.test("s2s in: a stanza before TLS when TLS is required is a policy violation", () => {
  assert.deepEqual(last([OPEN, message("u@b.example", "v@a.example")], REQUIRED).out, [
    "close-stream policy-violation: Use TLS first",
    "disconnect",
  ]);
});

Deno.test("s2s in: out-of-order and unknown input closes the stream", () => {
  // A second header on an open stream, a stanza before any header.
  assert.deepEqual(last([OPEN, OPEN]).out, ["close-stream invalid-xml", "disconnect"]);
  assert.deepEqual(run([message("u@b.example", "v@a.example")]).out, [
    HEADER_ANON.replace('"sid1"', '""'),
    "close-stream invalid-xml",
    "disconnect",
  ]);
  assert.deepEqual(last([OPEN, st(elem("auth", { xmlns: "urn:example:x" }))]).out, [
    "close-stream unsupported-stanza-type",
    "disconnect",
  ]);
  assert.deepEqual(last([OPEN, { kind: "parse-error", condition: "not-well-formed" }]).out, [
    "close-stream not-well-formed",
    "disconnect",
  ]);
});

Deno.test("s2s in: timeouts, idle, shutdown, the peer's close and a lost connection", () => {
  assert.deepEqual(last([OPEN, { kind: "auth-timeout" }]).out, [
    "close-stream connection-timeout",
    "disconnect",
  ]);
  // Once a domain is authenticated the authentication deadline no longer applies.
  const kept = last([...AUTHED, { kind: "auth-timeout" }]);
  assert.equal(kept.s.state, "open");
  assert.deepEqual(kept.out, []);
  assert.deepEqual(last([...AUTHED, { kind: "idle" }]).out, ["close-stream", "disconnect"]);
  assert.deepEqual(last([...AUTHED, { kind: "stream-close" }]).out, ["close-stream", "disconnect"]);
  assert.deepEqual(last([...AUTHED, { kind: "shutdown" }]).out, [
    "close-stream system-shutdown",
    "disconnect",
  ]);
  const gone = last([...AUTHED, { kind: "disconnected" }]);
  assert.equal(gone.s.state, "closed");
  assert.deepEqual(gone.out, ["disconnect"]);
  // Closed: nothing more happens.
  assert.deepEqual(
    run([message("u@b.example", "v@a.example"), { kind: "shutdown" }], CTX, gone.s).out,
    [],
  );
});
