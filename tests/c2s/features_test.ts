import assert from "node:assert/strict";
import { streamFeatures } from "../../lib/c2s/features.ts";
import type { Session } from "../../lib/core/session.ts";
import { elem, serialize } from "../../lib/xml/element.ts";
import { markFixed, serializeTopIn } from "../../lib/xmpp/stream_xml.ts";
import { authed, fresh, testCtx } from "../_ctx.ts";

const mechanisms = (s: Session, ctx = testCtx()) =>
  serialize(streamFeatures(s, ctx)).match(/<mechanism>[^<]+/g)?.map((m) => m.slice(11)) ?? [];

Deno.test("features: one element per state and context, rebuilt for what differs", () => {
  const ctx = testCtx();
  const clear = fresh(false);
  // Same stage, TLS and binding types: the element built for the first is handed out again.
  assert.equal(streamFeatures(clear, ctx), streamFeatures({ ...fresh(false), id: "other" }, ctx));
  assert.deepEqual(mechanisms(clear, ctx), ["SCRAM-SHA-256", "SCRAM-SHA-1"]);
  // TLS, then TLS with a channel binding type: each its own answer.
  assert.deepEqual(mechanisms(fresh(true), ctx), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
  const cb = { ...fresh(true), channelBindings: { "tls-exporter": new Uint8Array([1]) } };
  assert.deepEqual(mechanisms(cb, ctx), [
    "SCRAM-SHA-256-PLUS",
    "SCRAM-SHA-1-PLUS",
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
    "PLAIN",
  ]);
  assert.match(serialize(streamFeatures(cb, ctx)), /<channel-binding type="tls-exporter"\/>/);
  // Authenticated: binding, not mechanisms; another context answers by its own settings.
  assert.match(serialize(streamFeatures(authed(), ctx)), /<bind /);
  assert.deepEqual(mechanisms(fresh(true), testCtx({ allowPlain: false })), [
    "SCRAM-SHA-256",
    "SCRAM-SHA-1",
  ]);
  assert.deepEqual(mechanisms(fresh(true), ctx), ["SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN"]);
});

Deno.test("features: a binding computed when read is offered without computing it", () => {
  let derived = 0;
  const channelBindings = Object.defineProperty({}, "tls-exporter", {
    enumerable: true,
    get: () => (derived++, new Uint8Array([7])),
  });
  const s = { ...fresh(true), channelBindings };
  assert.deepEqual(mechanisms(s).slice(0, 2), ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS"]);
  assert.match(serialize(streamFeatures(s, testCtx())), /<channel-binding type="tls-exporter"\/>/);
  assert.equal(derived, 0);
  // A type present with no value is not offered.
  const none = { ...fresh(true), channelBindings: { "tls-exporter": undefined } };
  assert.deepEqual(mechanisms(none).slice(0, 1), ["SCRAM-SHA-256"]);
});

Deno.test("stream_xml: a fixed element's kept text is its text, per stream namespace", () => {
  const build = () =>
    elem("features", { xmlns: "http://etherx.jabber.org/streams" }, [
      elem("bind", { xmlns: "urn:ietf:params:xml:ns:xmpp-bind" }),
      elem("x", { a: "1" }, ["t"]),
    ]);
  const fixed = markFixed(build());
  for (const ns of ["jabber:client", "jabber:component:accept", "jabber:client"]) {
    assert.equal(serializeTopIn(fixed, ns), serializeTopIn(build(), ns));
  }
  assert.equal(
    serializeTopIn(fixed, "jabber:client"),
    '<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/>' +
      '<x xmlns="http://etherx.jabber.org/streams" a="1">t</x></stream:features>',
  );
});
