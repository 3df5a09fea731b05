/** The external component reducer (XEP-0114): header, handshake, stanzas both ways. */
import assert from "node:assert/strict";
import {
  type ComponentCtx,
  type ComponentEvent,
  type ComponentOutput,
  type ComponentSession,
  handshakeDigest,
  handshakeMatches,
  NEW_COMPONENT,
  reduceComponent,
} from "../../lib/component/component.ts";
import { serializeTop, serializeTopIn } from "../../lib/xmpp/stream_xml.ts";
import { elem, type Element } from "../../lib/xml/element.ts";
import { NS_CLIENT, NS_COMPONENT, NS_STREAMS } from "../../lib/xmpp/namespaces.ts";

const CTX: ComponentCtx = {
  secretOf: (d) => (d === "gw.localhost" ? "s3cret" : undefined),
  isConnected: () => false,
  newId: () => "sid1",
};

function open(to: string, contentXmlns = NS_COMPONENT): ComponentEvent {
  return {
    kind: "stream-open",
    name: "stream",
    prefix: "stream",
    xmlns: NS_STREAMS,
    contentXmlns,
    attrs: { to },
  };
}

function stanza(el: Element): ComponentEvent {
  return { kind: "stanza", stanza: el };
}

function handshake(value: string): ComponentEvent {
  return stanza(elem("handshake", { xmlns: NS_COMPONENT }, [value]));
}

/** Outputs as text, stanzas serialized in the component namespace. */
function shown(outputs: readonly ComponentOutput[]): string[] {
  return outputs.map((o) =>
    o.kind === "send"
      ? `send ${serializeTopIn(o.stanza, NS_COMPONENT)}`
      : o.kind === "open-stream"
      ? `open-stream ${JSON.stringify(o.header)}`
      : o.kind === "close-stream"
      ? "close-stream" + (o.error === undefined ? "" : ` ${o.error.condition}: ${o.error.text}`)
      : o.kind === "route"
      ? `route ${serializeTop(o.stanza)}`
      : o.kind === "disconnect" || o.kind === "handshake-failed"
      ? o.kind
      : `${o.kind} ${o.domain}`
  );
}

function run(
  events: readonly ComponentEvent[],
  ctx = CTX,
): { readonly s: ComponentSession; readonly out: string[] } {
  let s = NEW_COMPONENT;
  const out: string[] = [];
  for (const ev of events) {
    const [next, outputs] = reduceComponent(s, ev, ctx);
    s = next;
    out.push(...shown(outputs));
  }
  return { s, out };
}

const HEADER = 'open-stream {"ns":"jabber:component:accept","id":"sid1","from":"gw.localhost"}';
const OK = handshake(handshakeDigest("sid1", "s3cret"));

/** Closing the stream with an error (the transport writes the error, then the close). */
function streamError(condition: string, text: string): string {
  return `close-stream ${condition}: ${text}`;
}

Deno.test("the handshake digest is hex SHA-1 of stream id and secret (XEP-0114 §3)", () => {
  // Computed independently: printf abcdef | sha1sum.
  assert.equal(handshakeDigest("abc", "def"), "1f8ac10f23c5b5bc1167bda84b833e5c057a77d2");
});

Deno.test("a right handshake registers the domain and answers <handshake/>", () => {
  const { s, out } = run([open("gw.localhost"), OK]);
  assert.deepEqual(s, { state: "ready", streamId: "sid1", domain: "gw.localhost" });
  assert.deepEqual(out, [HEADER, "register gw.localhost", "send <handshake/>"]);
});

Deno.test("the digest is accepted in upper case too", () => {
  const { s } = run([
    open("gw.localhost"),
    handshake(handshakeDigest("sid1", "s3cret").toUpperCase()),
  ]);
  assert.equal(s.state, "ready");
});

Deno.test("a wrong handshake closes with not-authorized", () => {
  const { s, out } = run([open("gw.localhost"), handshake("00")]);
  assert.equal(s.state, "closed");
  assert.deepEqual(out, [
    HEADER,
    "handshake-failed",
    streamError("not-authorized", "Wrong handshake"),
    "disconnect",
  ]);
});

Deno.test("a throttled address is refused without its secret being checked", () => {
  let asked = 0;
  const ctx: ComponentCtx = {
    ...CTX,
    secretOf: (d) => {
      asked++;
      return CTX.secretOf(d);
    },
    handshakeThrottled: () => true,
  };
  const { s, out } = run([open("gw.localhost"), OK], ctx);
  assert.equal(s.state, "closed");
  // Once for the header's domain, never for the handshake; no failure is recorded either.
  assert.equal(asked, 1);
  assert.deepEqual(out, [
    HEADER,
    streamError(
      "not-authorized",
      "Too many wrong handshakes from your address; try again later",
    ),
    "disconnect",
  ]);
});

Deno.test("the handshake comparison takes whole digests of equal length only", () => {
  const right = handshakeDigest("sid1", "s3cret");
  assert.equal(handshakeMatches(right, right), true);
  assert.equal(handshakeMatches(right.slice(0, 39) + "x", right), false);
  assert.equal(handshakeMatches(right.slice(0, 20), right), false);
  assert.equal(handshakeMatches("", right), false);
  assert.equal(handshakeMatches(right + "00", right), false);
});

Deno.test("an unknown component domain closes with host-unknown", () => {
  const { s, out } = run([open("other.localhost")]);
  assert.equal(s.state, "closed");
  assert.deepEqual(out, [
    'open-stream {"ns":"jabber:component:accept","id":"sid1","from":"other.localhost"}',
    streamError("host-unknown", "No component is configured for other.localhost"),
    "disconnect",
  ]);
});

Deno.test("a client namespace on the component port is invalid-namespace", () => {
  const { s, out } = run([open("gw.localhost", NS_CLIENT)]);
  assert.equal(s.state, "closed");
  assert.equal(
    out[1],
    streamError("invalid-namespace", "A component stream must be in " + NS_COMPONENT),
  );
});

Deno.test("a second connection for a connected domain is refused with conflict", () => {
  const { s, out } = run([open("gw.localhost"), OK], { ...CTX, isConnected: () => true });
  assert.equal(s.state, "closed");
  assert.equal(out[1], streamError("conflict", "The component is already connected"));
  assert.ok(!out.some((o) => o.startsWith("register")));
});

Deno.test("stanzas before the handshake close the stream", () => {
  const msg = elem("message", { xmlns: NS_COMPONENT, from: "a@gw.localhost", to: "u@localhost" });
  const { s, out } = run([open("gw.localhost"), stanza(msg)]);
  assert.equal(s.state, "closed");
  assert.equal(out[1], streamError("not-authorized", "Handshake first"));
});

Deno.test("a stanza from the component is routed in the client namespace", () => {
  const msg = elem("message", { xmlns: NS_COMPONENT, from: "a@gw.localhost", to: "u@localhost" }, [
    elem("body", {}, ["hi"]),
  ]);
  const { s, out } = run([open("gw.localhost"), OK, stanza(msg)]);
  assert.equal(s.state, "ready");
  assert.equal(
    out.at(-1),
    'route <message from="a@gw.localhost" to="u@localhost"><body>hi</body></message>',
  );
});

Deno.test("a from outside the component's domain is invalid-from", () => {
  for (const from of [undefined, "a@localhost", "gw.localhost.evil", "x@other.localhost"]) {
    const msg = elem("message", { xmlns: NS_COMPONENT, from, to: "u@localhost" });
    const { s, out } = run([open("gw.localhost"), OK, stanza(msg)]);
    assert.equal(s.state, "closed", String(from));
    assert.deepEqual(out.slice(3), [
      streamError("invalid-from", "The from address must be at gw.localhost"),
      "unregister gw.localhost",
      "disconnect",
    ]);
  }
});

Deno.test("a stanza routed to the component is written in its namespace", () => {
  const msg = elem("message", { xmlns: NS_CLIENT, from: "u@localhost/r", to: "a@gw.localhost" }, [
    elem("body", {}, ["hi"]),
    elem("x", { xmlns: "urn:example" }),
  ]);
  const { out } = run([open("gw.localhost"), OK, { kind: "inbound", stanza: msg }]);
  assert.equal(
    out.at(-1),
    'send <message from="u@localhost/r" to="a@gw.localhost"><body>hi</body>' +
      '<x xmlns="urn:example"/></message>',
  );
});

Deno.test("a disconnect unregisters; a closed session swallows late input", () => {
  const { s, out } = run([open("gw.localhost"), OK, { kind: "disconnected" }, OK]);
  assert.equal(s.state, "closed");
  assert.deepEqual(out.slice(3), ["unregister gw.localhost", "disconnect"]);
});

Deno.test("a handshake that takes too long times out; a ready one does not", () => {
  assert.equal(run([open("gw.localhost"), { kind: "handshake-timeout" }]).s.state, "closed");
  assert.equal(run([open("gw.localhost"), OK, { kind: "handshake-timeout" }]).s.state, "ready");
});
