/**
 * The module contract: the session reducer runs whatever registry the context names, so a
 * module plugs in (or out) with no edit elsewhere, and a module that is off answers and
 * announces nothing.
 * @module
 */
import assert from "node:assert/strict";
import { childElements, elem, type Element, stanza } from "../../lib/xml/element.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { capsInputOf, verificationString } from "../../lib/modules/caps.ts";
import { BASE_MODULES, MODULES, withDerived } from "../../lib/modules/registry.ts";
import type { Ctx, Module, Output, ResourceView } from "../../lib/core/types.ts";
import type { Session } from "../../lib/core/session.ts";
import {
  NS_CARBONS,
  NS_DISCO_INFO,
  NS_FORWARD,
  NS_MAM,
  NS_STREAMS,
} from "../../lib/xmpp/namespaces.ts";
import {
  authed,
  bound,
  discoCapsVer,
  HOST,
  run,
  show,
  stanzaEvent,
  streamOpen,
  testCtx,
  type TestCtxOptions,
} from "../_ctx.ts";

const ME = `user@${HOST}`;
const RES = `${ME}/res`;
const PEER = `peer@${HOST}/x`;

function ctxWith(modules: readonly Module[] | undefined, opts: TestCtxOptions = {}): Ctx {
  return { ...testCtx(opts), modules };
}

/** The single stanza a reduction sent back to the client. */
function sent(outputs: readonly Output[]): Element {
  assert.equal(outputs.length, 1, JSON.stringify(show(outputs)));
  const out = outputs[0];
  assert.ok(out.kind === "send");
  return out.stanza;
}

/** The features of a disco#info reply. */
function features(reply: Element): string[] {
  const query = childElements(reply)[0];
  return childElements(query).filter((c) => c.name === "feature").map((c) => c.attrs.var ?? "");
}

function discoInfo(ctx: Ctx, to: string): Element {
  const get = stanza("iq", { type: "get", id: "d", to }, [elem("query", { xmlns: NS_DISCO_INFO })]);
  return sent(run(bound(), [stanzaEvent(get)], ctx).outputs);
}

/** The error condition of an error reply. */
function condition(reply: Element): string | undefined {
  const error = childElements(reply).find((c) => c.name === "error");
  return error === undefined ? undefined : childElements(error)[0]?.name;
}

/** XEP-0115 §5.4: the ver a client computes from a disco#info reply. */
function verOf(reply: Element): string {
  return verificationString(capsInputOf(childElements(reply)[0]));
}

/** The `<c/>` ver the stream features announce after authentication. */
function announcedVer(ctx: Ctx): string | undefined {
  const { outputs } = run(authed({ notopen: true }), [streamOpen()], ctx);
  const features =
    outputs.flatMap((o) =>
      o.kind === "send" && o.stanza.name === "features" && o.stanza.xmlns === NS_STREAMS
        ? [o.stanza]
        : []
    )[0];
  assert.ok(features !== undefined);
  return childElements(features).find((c) => c.name === "c")?.attrs.ver;
}

const MAM_QUERY = stanza("iq", { type: "set", id: "q1" }, [elem("query", { xmlns: NS_MAM })]);

Deno.test("mam off: the account's disco#info does not list it, and a query is service-unavailable", () => {
  const ctx = testCtx({ archiving: false });
  const info = discoInfo(ctx, ME);
  assert.ok(!features(info).includes(NS_MAM), serializeTop(info));
  const reply = sent(run(bound(), [stanzaEvent(MAM_QUERY)], ctx).outputs);
  assert.equal(reply.attrs.type, "error");
  assert.equal(condition(reply), "service-unavailable");
});

Deno.test("mam on: the account's disco#info lists it, and a query goes to the account", () => {
  const ctx = testCtx({ archiving: true });
  assert.ok(features(discoInfo(ctx, ME)).includes(NS_MAM));
  const { outputs } = run(bound(), [stanzaEvent(MAM_QUERY)], ctx);
  assert.equal(outputs.length, 1);
  const out = outputs[0];
  assert.ok(out.kind === "account" && out.op.kind === "mam-query", JSON.stringify(show(outputs)));
  assert.equal(out.bare, ME);
});

Deno.test("mam: the caps of what is announced follow the switch, and match disco both ways", () => {
  const off = testCtx({ archiving: false });
  const on = testCtx({ archiving: true });
  // The account's disco#info, hashed as a client would, differs with the module.
  assert.notEqual(verOf(discoInfo(off, ME)), verOf(discoInfo(on, ME)));
  // The server's own <c/> hashes the domain's disco#info under the same context, whatever it is.
  for (const ctx of [off, on]) assert.equal(announcedVer(ctx), discoCapsVer(ctx));
});

/** A module of this test alone: it marks what the user sends, and hides what they receive. */
const MARKER: Module = {
  name: "marker",
  hostFeatures: ["urn:example:marker"],
  outbound: (s, el) =>
    el.name !== "message" ? undefined : {
      stanza: { ...el, children: [...el.children, elem("marked", { xmlns: "urn:example" })] },
      session: { ...s, modules: { ...s.modules, marker: ((s.modules.marker as number) ?? 0) + 1 } },
    },
  inbound: (s, el) => el.attrs.from === PEER ? [s, []] : undefined,
  nonza: (s, el) => el.xmlns === "urn:example" && el.name === "ping" ? [s, []] : undefined,
  selfIq: {
    "urn:example query": (s, iq) => [s, [{ kind: "send", stanza: { ...iq, attrs: {} } }]],
  },
};

const CHAT = stanza("message", { type: "chat", to: PEER, id: "m1" }, [elem("body", {}, ["hi"])]);

Deno.test("contract: a module defined here runs through the reducer's hooks, with no edit elsewhere", () => {
  const ctx = ctxWith(withDerived([...BASE_MODULES, MARKER]));
  // Its outbound hook changed the message and kept a count in the session's module state.
  const out = run(bound(), [stanzaEvent(CHAT), stanzaEvent(CHAT)], ctx);
  assert.equal(out.session.modules.marker, 2);
  assert.deepEqual(show(out.outputs).map((o) => "xml" in o ? o.xml : o.kind), [
    `<message type="chat" to="${PEER}" id="m1" from="${RES}"><body>hi</body>` +
    `<marked xmlns="urn:example"/></message>`,
    `<message type="chat" to="${PEER}" id="m1" from="${RES}"><body>hi</body>` +
    `<marked xmlns="urn:example"/></message>`,
  ]);
  // Its inbound hook took what it wanted; the rest is written.
  const other = stanza("message", { from: `other@${HOST}/y`, to: RES });
  const inbound = run(bound(), [
    { kind: "inbound", stanza: stanza("message", { from: PEER, to: RES }) },
    { kind: "inbound", stanza: other },
  ], ctx);
  assert.deepEqual(inbound.outputs, [{ kind: "send", stanza: other }]);
  // Its nonza is no stream error.
  const nonza = run(bound(), [stanzaEvent(elem("ping", { xmlns: "urn:example" }))], ctx);
  assert.deepEqual(nonza.outputs, []);
  // Its iq handler answers; disco announces it.
  const iq = stanza("iq", { type: "get", id: "x" }, [elem("query", { xmlns: "urn:example" })]);
  assert.equal(sent(run(bound(), [stanzaEvent(iq)], ctx).outputs).name, "iq");
  assert.ok(features(discoInfo(ctx, HOST)).includes("urn:example:marker"));
  // And the server's registry knows nothing of it.
  const plain = testCtx();
  assert.equal(run(bound(), [stanzaEvent(CHAT)], plain).session.modules.marker, undefined);
  assert.ok(!features(discoInfo(plain, HOST)).includes("urn:example:marker"));
  assert.equal(
    condition(sent(run(bound(), [stanzaEvent(iq)], plain).outputs)),
    "service-unavailable",
  );
});

Deno.test("contract: a module that is off runs no hook, answers no iq and announces nothing", () => {
  const off: Module = { ...MARKER, enabled: () => false };
  const ctx = ctxWith(withDerived([...BASE_MODULES, off]));
  const out = run(bound(), [stanzaEvent(CHAT)], ctx);
  assert.equal(out.session.modules.marker, undefined);
  assert.deepEqual(show(out.outputs), [{
    kind: "route",
    xml: `<message type="chat" to="${PEER}" id="m1" from="${RES}"><body>hi</body></message>`,
  }]);
  const iq = stanza("iq", { type: "get", id: "x" }, [elem("query", { xmlns: "urn:example" })]);
  assert.equal(
    condition(sent(run(bound(), [stanzaEvent(iq)], ctx).outputs)),
    "service-unavailable",
  );
  assert.ok(!features(discoInfo(ctx, HOST)).includes("urn:example:marker"));
  // The server's caps hash what disco answers: the same as without the module.
  assert.equal(announcedVer(ctx), announcedVer(testCtx()));
  // Its nonza is nobody's: the stream ends.
  const nonza = run(bound(), [stanzaEvent(elem("ping", { xmlns: "urn:example" }))], ctx);
  assert.ok(nonza.outputs.some((o) => o.kind === "close-stream"));
});

/** Another resource of the user that enabled carbons, as the registry shows it. */
const PHONE: ResourceView = {
  fullJid: `${ME}/phone`,
  resource: "phone",
  priority: 0,
  available: true,
  interested: false,
  modules: { carbons: true },
};

const ENABLE = stanza("iq", { type: "set", id: "e1" }, [elem("enable", { xmlns: NS_CARBONS })]);
const FORGED = stanza("message", { to: ME, id: "f1" }, [
  elem("received", { xmlns: NS_CARBONS }, [
    elem("forwarded", { xmlns: NS_FORWARD }, [stanza("message", { from: PEER, to: ME })]),
  ]),
]);

/** What the session does with carbons under `ctx`: enable, send a chat, send a forged copy. */
function carbonsRun(ctx: Ctx): { session: Session; outputs: Output[] } {
  return run(bound(), [stanzaEvent(ENABLE), stanzaEvent(CHAT), stanzaEvent(FORGED)], ctx);
}

Deno.test("contract: carbons are all in their module: a registry without it has none of them", () => {
  const opts: TestCtxOptions = { resourcesOf: () => [PHONE] };
  // The server's registry, for comparison: enabled, copied, forged copies refused.
  const withCarbons = carbonsRun(ctxWith(undefined, opts));
  assert.equal(withCarbons.session.modules.carbons, true);
  const [enabled, routed, refused] = withCarbons.outputs;
  assert.ok(enabled.kind === "send" && enabled.stanza.attrs.type === "result");
  assert.ok(routed.kind === "route" && routed.then?.length === 1);
  assert.ok(refused.kind === "send" && condition(refused.stanza) === "not-acceptable");
  assert.ok(features(discoInfo(testCtx(), HOST)).includes(NS_CARBONS));
  assert.ok(MODULES.some((m) => m.name === "carbons"));

  // Without it: nothing to enable, no copies, a client's <received/> is a message like others.
  const ctx = ctxWith(withDerived(BASE_MODULES.filter((m) => m.name !== "carbons")), opts);
  const without = carbonsRun(ctx);
  assert.equal(without.session.modules.carbons, undefined);
  const [answer, plain, forged] = without.outputs;
  assert.equal(without.outputs.length, 3);
  assert.ok(answer.kind === "send" && condition(answer.stanza) === "service-unavailable");
  assert.ok(plain.kind === "route" && plain.then === undefined);
  assert.ok(forged.kind === "route" && forged.stanza.attrs.id === "f1");
  assert.ok(!features(discoInfo(ctx, HOST)).includes(NS_CARBONS));
  assert.notEqual(announcedVer(ctx), announcedVer(testCtx()));
});
