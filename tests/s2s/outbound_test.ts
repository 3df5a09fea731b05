/**
 * The outgoing server-to-server reducer (lib/s2s/outbound.ts), output by output: our header,
 * STARTTLS, a new header over TLS, our dialback key (XEP-0185) and the verdict, key checks queued
 * while the stream opens and their cap, timeouts, idle and a lost connection.
 */
import assert from "node:assert/strict";
import {
  newS2sOut,
  reduceS2sOut,
  type S2sOutCtx,
  type S2sOutEvent,
  type S2sOutOutput,
  type S2sOutSession,
  type VerifyRequest,
} from "../../lib/s2s/outbound.ts";
import { dialbackKey } from "../../lib/xmpp/dialback.ts";
import { serializeTopIn } from "../../lib/xmpp/stream_xml.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { NS_DIALBACK, NS_SERVER, NS_STREAMS, NS_TLS } from "../../lib/xmpp/namespaces.ts";

const CTX: S2sOutCtx = { secret: "s3cret", requireEncryption: true, maxVerifies: 2 };
const PLAIN: S2sOutCtx = { ...CTX, requireEncryption: false };

/** Outputs as text; stanzas serialized as they go on the wire of a server stream. */
function shown(outputs: readonly S2sOutOutput[]): string[] {
  return outputs.map((o) => {
    switch (o.kind) {
      case "send":
        return `send ${serializeTopIn(o.stanza, NS_SERVER)}`;
      case "open-stream":
        return `open-stream ${JSON.stringify(o.header)}`;
      case "close-stream":
        return "close-stream" +
          (o.error === undefined
            ? ""
            : ` ${o.error.condition}${o.error.text === undefined ? "" : `: ${o.error.text}`}`);
      case "failed":
        return `failed ${o.condition} (${o.why})`;
      case "verified":
        return `verified ${o.local} ${o.id} ${o.valid}`;
      case "starttls":
      case "ready":
      case "disconnect":
        return o.kind;
      default:
        // An output kind added after these tests were written shows in full.
        return JSON.stringify(o);
    }
  });
}

function run(
  events: readonly S2sOutEvent[],
  ctx: S2sOutCtx = CTX,
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

/** Runs `events` and returns only the outputs of the last one. */
function last(events: readonly S2sOutEvent[], ctx: S2sOutCtx = CTX) {
  const before = run(events.slice(0, -1), ctx);
  return run(events.slice(-1), ctx, before.s);
}

function open(
  id: string,
  version: string | null = "1.0",
  contentXmlns = NS_SERVER,
): S2sOutEvent {
  return {
    kind: "stream-open",
    name: "stream",
    prefix: "stream",
    xmlns: NS_STREAMS,
    contentXmlns,
    attrs: {
      from: "b.example",
      to: "a.example",
      id,
      ...(version === null ? {} : { version }),
    },
  };
}

function st(el: Element): S2sOutEvent {
  return { kind: "stanza", stanza: el };
}

function features(...children: Element[]): S2sOutEvent {
  return st(elem("features", { xmlns: NS_STREAMS }, children));
}

const TLS_FEATURES = features(elem("starttls", { xmlns: NS_TLS }, [elem("required")]));
const DB_FEATURES = features(
  elem("dialback", { xmlns: "urn:xmpp:features:dialback" }, [elem("errors")]),
);
const PROCEED = st(elem("proceed", { xmlns: NS_TLS }));

function dbAnswer(type: string): S2sOutEvent {
  return st(elem("result", { xmlns: NS_DIALBACK, from: "b.example", to: "a.example", type }));
}

const HEADER = 'open-stream {"ns":"jabber:server","id":"","from":"a.example","to":"b.example",' +
  '"version":"1.0","dialback":true}';
/** Our key for the stream b.example gave us the id `rid2` of. */
const KEY2 = dialbackKey("s3cret", "b.example", "a.example", "rid2");
const SEND_KEY2 = `send <db:result from="a.example" to="b.example">${KEY2}</db:result>`;
/** Everything up to our key sent over TLS. */
const TO_DIALBACK: readonly S2sOutEvent[] = [
  { kind: "connected" },
  open("rid1"),
  TLS_FEATURES,
  PROCEED,
  { kind: "tls-done" },
  open("rid2"),
  DB_FEATURES,
];
const TO_READY: readonly S2sOutEvent[] = [...TO_DIALBACK, dbAnswer("valid")];

function verifyEv(local: string, id: string, key: string): S2sOutEvent {
  return { kind: "verify", request: { local, id, key } };
}

Deno.test("s2s out: connected, header, STARTTLS, a new header over TLS, our key, valid", () => {
  const steps: [S2sOutEvent, string, string[]][] = [
    [{ kind: "connected" }, "opening", [HEADER]],
    [open("rid1"), "features", []],
    [TLS_FEATURES, "starttls", ['send <starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>']],
    [PROCEED, "starttls", ["starttls"]],
    [{ kind: "tls-done" }, "opening", [HEADER]],
    [open("rid2"), "features", []],
    [DB_FEATURES, "dialback", [SEND_KEY2]],
    [dbAnswer("valid"), "ready", ["ready"]],
  ];
  let s = newS2sOut("a.example", "b.example");
  assert.equal(s.state, "connecting");
  for (const [ev, state, out] of steps) {
    const [next, outputs] = reduceS2sOut(s, ev, CTX);
    assert.equal(next.state, state, JSON.stringify(ev));
    assert.deepEqual(shown(outputs), out, JSON.stringify(ev));
    s = next;
  }
  assert.equal(s.secure, true);
  assert.equal(s.streamId, "rid2");
  // The key is XEP-0185's, for the id of the stream over TLS (not the first one).
  assert.equal(KEY2, dialbackKey("s3cret", "b.example", "a.example", "rid2"));
  assert.notEqual(KEY2, dialbackKey("s3cret", "b.example", "a.example", "rid1"));
});

Deno.test("s2s out: once ready, stanzas go out in the server namespace; before, nothing", () => {
  const msg = stanza("message", { from: "u@a.example/r", to: "v@b.example", type: "chat" }, [
    elem("body", {}, ["hi"]),
  ]);
  assert.deepEqual(last([...TO_READY, { kind: "outbound", stanza: msg }]).out, [
    'send <message from="u@a.example/r" to="v@b.example" type="chat"><body>hi</body></message>',
  ]);
  const [, outputs] = reduceS2sOut(run(TO_READY).s, { kind: "outbound", stanza: msg }, CTX);
  const sent = (outputs[0] as { stanza: Element }).stanza;
  assert.equal(sent.xmlns, NS_SERVER);
  assert.equal((sent.children[0] as Element).xmlns, NS_SERVER);
  // The shell holds stanzas until `ready`; one given early is not sent.
  assert.deepEqual(last([...TO_DIALBACK, { kind: "outbound", stanza: msg }]).out, []);
});

Deno.test("s2s out: an invalid key fails the link and closes", () => {
  for (const type of ["invalid", "error"]) {
    const { s, out } = last([...TO_DIALBACK, dbAnswer(type)]);
    assert.equal(s.state, "closed");
    assert.deepEqual(out, [
      `failed remote-server-not-found (the remote server refused our dialback key (${type}))`,
      "close-stream",
      "disconnect",
    ]);
  }
  // A verdict before our key went out is ignored.
  const early = last([{ kind: "connected" }, open("rid1"), dbAnswer("valid")]);
  assert.equal(early.s.state, "features");
  assert.deepEqual(early.out, []);
});

Deno.test("s2s out: without TLS on offer, TLS required fails; allowed, dialback in plain text", () => {
  const plainFeatures = [{ kind: "connected" }, open("rid1"), DB_FEATURES] as const;
  const refused = last(plainFeatures);
  assert.equal(refused.s.state, "closed");
  assert.deepEqual(refused.out, [
    "failed remote-server-not-found (the remote server does not offer TLS)",
    "close-stream policy-violation: TLS is required",
    "disconnect",
  ]);
  const plain = last(plainFeatures, PLAIN);
  assert.equal(plain.s.state, "dialback");
  assert.equal(plain.s.secure, false);
  assert.deepEqual(plain.out, [
    `send <db:result from="a.example" to="b.example">${
      dialbackKey("s3cret", "b.example", "a.example", "rid1")
    }</db:result>`,
  ]);
  // TLS on offer is taken even when not required.
  assert.deepEqual(last([{ kind: "connected" }, open("rid1"), TLS_FEATURES], PLAIN).out, [
    'send <starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"/>',
  ]);
});

Deno.test("s2s out: a pre-1.0 server gets the key at once, unless TLS is required", () => {
  const old = last([{ kind: "connected" }, open("rid0", null)], PLAIN);
  assert.equal(old.s.state, "dialback");
  assert.deepEqual(old.out, [
    `send <db:result from="a.example" to="b.example">${
      dialbackKey("s3cret", "b.example", "a.example", "rid0")
    }</db:result>`,
  ]);
  assert.deepEqual(last([{ kind: "connected" }, open("rid0", null)]).out, [
    "failed remote-server-not-found (the remote server cannot do TLS (no version 1.0))",
    "close-stream policy-violation",
    "disconnect",
  ]);
});

Deno.test("s2s out: a header that is not a server stream, or a second one, ends the link", () => {
  assert.deepEqual(last([{ kind: "connected" }, open("rid1", "1.0", "jabber:client")]).out, [
    "failed remote-server-not-found (the remote server's stream is not a server stream)",
    "close-stream invalid-namespace",
    "disconnect",
  ]);
  assert.deepEqual(last([{ kind: "connected" }, open("rid1"), open("rid1")]).out, [
    "failed remote-server-not-found (a second stream header)",
    "close-stream",
    "disconnect",
  ]);
  assert.deepEqual(last([{ kind: "connected" }, DB_FEATURES]).out, [
    "failed remote-server-not-found (a stanza before the stream header)",
    "close-stream",
    "disconnect",
  ]);
});

Deno.test("s2s out: a stream error, a TLS failure or an unexpected element ends the link", () => {
  const streamError = st(elem("error", { xmlns: NS_STREAMS }, [
    elem("host-unknown", { xmlns: "urn:ietf:params:xml:ns:xmpp-streams" }),
  ]));
  assert.deepEqual(last([{ kind: "connected" }, open("rid1"), streamError]).out, [
    "failed remote-server-not-found (stream error from the remote server: host-unknown)",
    "close-stream",
    "disconnect",
  ]);
  assert.deepEqual(
    last([
      { kind: "connected" },
      open("rid1"),
      TLS_FEATURES,
      st(elem("failure", { xmlns: NS_TLS })),
    ])
      .out,
    ["failed remote-server-not-found (the remote server failed TLS)", "close-stream", "disconnect"],
  );
  // Once ready, nothing but dialback comes this way (no XEP-0288): no bounce, just the close.
  assert.deepEqual(
    last([
      ...TO_READY,
      st(elem("message", { xmlns: NS_SERVER, from: "v@b.example", to: "u@a.example" })),
    ])
      .out,
    ["close-stream unsupported-stanza-type", "disconnect"],
  );
  assert.deepEqual(last([...TO_READY, { kind: "parse-error", condition: "not-well-formed" }]).out, [
    "close-stream not-well-formed",
    "disconnect",
  ]);
});

Deno.test("s2s out: key checks wait for the stream, go out after our key, and are capped", () => {
  const v1 = verifyEv("a.example", "in1", "k1");
  const v2 = verifyEv("muc.a.example", "in2", "k2");
  const v3 = verifyEv("a.example", "in3", "k3");
  // Before the socket is up: queued, no output.
  const queued = run([v1, v2]);
  assert.equal(queued.s.state, "connecting");
  assert.deepEqual(queued.out, []);
  assert.deepEqual(
    queued.s.verifies,
    [
      { local: "a.example", id: "in1", key: "k1" },
      { local: "muc.a.example", id: "in2", key: "k2" },
    ] satisfies VerifyRequest[],
  );
  // The cap (maxVerifies = 2): a third is refused at once.
  const capped = run([v3], CTX, queued.s);
  assert.deepEqual(capped.out, ["verified a.example in3 false"]);
  assert.equal(capped.s.verifies.length, 2);
  // Flushed after our own key, in order, once the stream is open over TLS.
  const flushed = run(TO_DIALBACK, CTX, queued.s);
  assert.deepEqual(flushed.s.verifies, []);
  assert.deepEqual(flushed.out.slice(-3), [
    SEND_KEY2,
    'send <db:verify from="a.example" to="b.example" id="in1">k1</db:verify>',
    'send <db:verify from="muc.a.example" to="b.example" id="in2">k2</db:verify>',
  ]);
  // Once open, a check goes out at once, whatever the count.
  assert.deepEqual(run([v3], CTX, flushed.s).out, [
    'send <db:verify from="a.example" to="b.example" id="in3">k3</db:verify>',
  ]);
  assert.deepEqual(last([...TO_READY, v3]).out, [
    'send <db:verify from="a.example" to="b.example" id="in3">k3</db:verify>',
  ]);
});

Deno.test("s2s out: the remote's db:verify answers become verified outputs", () => {
  const answer = (type: string | undefined, attrs: Record<string, string> = {}) =>
    st(elem("verify", {
      xmlns: NS_DIALBACK,
      from: "b.example",
      to: "a.example",
      id: "in1",
      type,
      ...attrs,
    }));
  assert.deepEqual(last([...TO_READY, answer("valid")]).out, ["verified a.example in1 true"]);
  assert.deepEqual(last([...TO_READY, answer("invalid")]).out, ["verified a.example in1 false"]);
  assert.deepEqual(last([...TO_DIALBACK, answer(undefined)]).out, ["verified a.example in1 false"]);
  // Without an id or a `to` there is nobody to tell: ignored, the link stays.
  const noId = last([
    ...TO_READY,
    st(elem("verify", { xmlns: NS_DIALBACK, from: "b.example", to: "a.example", type: "valid" })),
  ]);
  assert.equal(noId.s.state, "ready");
  assert.deepEqual(noId.out, []);
});

Deno.test("s2s out: not ready in time fails with remote-server-timeout; ready, nothing", () => {
  const early = last([{ kind: "connected" }, open("rid1"), { kind: "timeout" }]);
  assert.equal(early.s.state, "closed");
  assert.deepEqual(early.out, [
    "failed remote-server-timeout (the remote server did not authenticate us in time)",
    "close-stream connection-timeout",
    "disconnect",
  ]);
  const ready = last([...TO_READY, { kind: "timeout" }]);
  assert.equal(ready.s.state, "ready");
  assert.deepEqual(ready.out, []);
  // Still connecting, with key checks queued: no stream to close, and each check fails.
  const connecting = run([verifyEv("a.example", "in1", "k1"), { kind: "timeout" }]);
  assert.deepEqual(connecting.out, [
    "failed remote-server-timeout (the remote server did not authenticate us in time)",
    "verified a.example in1 false",
    "disconnect",
  ]);
  assert.deepEqual(connecting.s.verifies, []);
});

Deno.test("s2s out: idle, shutdown, the remote's close and a lost connection", () => {
  assert.deepEqual(last([...TO_READY, { kind: "idle" }]).out, ["close-stream", "disconnect"]);
  assert.deepEqual(last([...TO_READY, { kind: "shutdown" }]).out, [
    "close-stream system-shutdown",
    "disconnect",
  ]);
  assert.deepEqual(last([...TO_READY, { kind: "stream-close" }]).out, [
    "close-stream",
    "disconnect",
  ]);
  // Ready and lost: nothing waits (the shell bounces its queue when the driver ends).
  assert.deepEqual(last([...TO_READY, { kind: "disconnected" }]).out, ["disconnect"]);
  // Lost while authenticating: the link failed; no stream to close on a dead socket.
  const lost = last([...TO_DIALBACK, verifyEv("a.example", "x", "k"), { kind: "disconnected" }]);
  assert.equal(lost.s.state, "closed");
  assert.deepEqual(lost.out, [
    "failed remote-server-not-found (the connection was lost)",
    "disconnect",
  ]);
  const lostEarly = last([{ kind: "connected" }, verifyEv("a.example", "x", "k"), {
    kind: "disconnected",
  }]);
  assert.deepEqual(lostEarly.out, [
    "failed remote-server-not-found (the connection was lost)",
    "verified a.example x false",
    "disconnect",
  ]);
});

Deno.test("s2s out: closed, a late key check is answered no and nothing else happens", () => {
  const closed = run([...TO_READY, { kind: "idle" }]).s;
  assert.equal(closed.state, "closed");
  assert.deepEqual(run([verifyEv("a.example", "late", "k")], CTX, closed).out, [
    "verified a.example late false",
  ]);
  assert.deepEqual(
    run([{ kind: "connected" }, { kind: "timeout" }, { kind: "disconnected" }], CTX, closed).out,
    [],
  );
});
