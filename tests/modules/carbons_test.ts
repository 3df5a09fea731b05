import assert from "node:assert/strict";
import { isCopied, receivedCarbons } from "../../lib/modules/carbons.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import type { ResourceView } from "../../lib/core/types.ts";
import { messageDeliveries } from "../../lib/core/router.ts";
import { DELIVERY } from "../../lib/modules/registry.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { bound, HOST, run, show, stanzaEvent, testCtx } from "../_ctx.ts";
import { NS_CARBONS } from "../../lib/xmpp/namespaces.ts";

const ME = `user@${HOST}`;
const RES = `${ME}/res`;
const PHONE = `${ME}/phone`;
const DESK = `${ME}/desk`;
const PEER = `peer@${HOST}/x`;

function view(resource: string, over: Partial<ResourceView> = {}): ResourceView {
  return {
    fullJid: `${ME}/${resource}`,
    resource,
    priority: 0,
    available: true,
    interested: false,
    modules: { carbons: true },
    ...over,
  };
}

function chat(attrs: Record<string, string>, extra: readonly Element[] = []): Element {
  return stanza("message", { type: "chat", ...attrs }, [elem("body", {}, ["hi"]), ...extra]);
}

const BODY = "<body>hi</body>";

/** A forwarded message declares its namespace (XEP-0297), as it sits in another's. */
function inner(xml: string): string {
  return xml.replace(/^<message /, '<message xmlns="jabber:client" ');
}

Deno.test("carbons: enable and disable set the session flag, answered with a result", () => {
  const enable = stanza("iq", { type: "set", id: "e1" }, [elem("enable", { xmlns: NS_CARBONS })]);
  const disable = stanza("iq", { type: "set", id: "d1" }, [elem("disable", { xmlns: NS_CARBONS })]);
  const on = run(bound(), [stanzaEvent(enable)], testCtx());
  assert.equal(on.session.modules.carbons, true);
  assert.deepEqual(show(on.outputs), [{
    kind: "send",
    xml: `<iq type="result" id="e1" to="${RES}"/>`,
  }]);
  const off = run(on.session, [stanzaEvent(disable)], testCtx());
  assert.equal(off.session.modules.carbons, false);
  assert.deepEqual(show(off.outputs), [{
    kind: "send",
    xml: `<iq type="result" id="d1" to="${RES}"/>`,
  }]);
});

Deno.test("carbons: which messages are copied (XEP-0280 §6)", () => {
  const cases: [Element, boolean, boolean][] = [
    [chat({}), true, true],
    [stanza("message", { type: "chat" }), true, true],
    [stanza("message", {}, [elem("body", {}, ["x"])]), true, true],
    [stanza("message", { type: "normal" }), false, false],
    [stanza("message", { type: "headline" }, [elem("body", {}, ["x"])]), false, false],
    [stanza("message", { type: "groupchat" }, [elem("body", {}, ["x"])]), false, false],
    [chat({}, [elem("private", { xmlns: NS_CARBONS })]), false, false],
    [chat({}, [elem("no-copy", { xmlns: "urn:xmpp:hints" })]), false, false],
    [chat({}, [elem("received", { xmlns: NS_CARBONS })]), false, false],
    [chat({}, [elem("sent", { xmlns: NS_CARBONS })]), false, false],
    // A bounce of a message sent to a bare JID comes from that bare JID: copied when received.
    [stanza("message", { type: "error", from: "peer@example.com" }), false, true],
    [stanza("message", { type: "error", from: PEER }), false, false],
  ];
  for (const [el, outbound, inbound] of cases) {
    assert.equal(isCopied(el, true), outbound, `outbound ${serializeTop(el)}`);
    assert.equal(isCopied(el, false), inbound, `inbound ${serializeTop(el)}`);
  }
});

Deno.test("carbons: a sent chat is routed, then a sent copy for each other enabled resource", () => {
  const resources = [view("res"), view("phone"), view("desk", { modules: { carbons: false } })];
  const ctx = testCtx({ resourcesOf: () => resources });
  const { session, outputs } = run(bound({ modules: { carbons: true } }), [
    stanzaEvent(chat({ to: PEER, id: "m1" })),
  ], ctx);
  assert.equal(session.modules.carbons, true);
  const original = `<message type="chat" to="${PEER}" id="m1" from="${RES}">${BODY}</message>`;
  assert.deepEqual(show(outputs), [{ kind: "route", xml: original }]);
  // The copies follow the message past the sender's archive (issue 10: carbons in order).
  const route = outputs[0];
  assert.ok(route.kind === "route");
  assert.deepEqual(route.then?.map(serializeTop), [
    `<message from="${ME}" to="${PHONE}" type="chat"><sent xmlns="${NS_CARBONS}">` +
    `<forwarded xmlns="urn:xmpp:forward:0">${inner(original)}</forwarded></sent></message>`,
  ]);
});

Deno.test("carbons: a private sent message is routed without copies", () => {
  const ctx = testCtx({ resourcesOf: () => [view("res"), view("phone")] });
  const { outputs } = run(bound(), [
    stanzaEvent(chat({ to: PEER, id: "m1" }, [elem("private", { xmlns: NS_CARBONS })])),
  ], ctx);
  assert.equal(outputs.length, 1);
  assert.equal(outputs[0].kind, "route");
});

Deno.test("carbons: a client sending a carbon itself is refused (XEP-0280 §11)", () => {
  const forged = stanza("message", { to: ME, id: "f1" }, [
    elem("received", { xmlns: NS_CARBONS }, [
      elem("forwarded", { xmlns: "urn:xmpp:forward:0" }, [chat({ from: PEER, to: ME })]),
    ]),
  ]);
  const { outputs } = run(bound(), [stanzaEvent(forged)], testCtx());
  assert.equal(outputs.length, 1);
  const out = outputs[0];
  assert.equal(out.kind, "send");
  assert.match(
    serializeTop(out.kind === "send" ? out.stanza : forged),
    /^<message type="error" id="f1" from="user@example.com" to="user@example.com\/res">.*<not-acceptable /,
  );
});

Deno.test("carbons: a message to a full JID gives received copies to the other enabled resources", () => {
  const msg = chat({ from: PEER, to: RES, id: "m2" });
  const resources = [view("res"), view("phone"), view("desk", { available: false })];
  const out = messageDeliveries(msg, ME, "res", resources, DELIVERY);
  const xml = serializeTop(msg);
  assert.deepEqual(out.map((d) => d.kind === "deliver" ? [d.to, serializeTop(d.stanza)] : d), [
    [RES, xml],
    [
      PHONE,
      `<message from="${ME}" to="${PHONE}" type="chat"><received xmlns="${NS_CARBONS}">` +
      `<forwarded xmlns="urn:xmpp:forward:0">${inner(xml)}</forwarded></received></message>`,
    ],
  ]);
});

Deno.test("carbons: a bare-JID message that reached several resources is not copied to them", () => {
  const msg = chat({ from: PEER, to: ME });
  const resources = [view("res"), view("phone"), view("desk", { priority: -1 })];
  const out = messageDeliveries(msg, ME, undefined, resources, DELIVERY);
  // res and phone tie at the top priority and both get the message; desk gets a copy.
  assert.deepEqual(out.map((d) => d.kind === "deliver" ? d.to : d.kind), [RES, PHONE, DESK]);
  const copy = out[2];
  assert.ok(copy.kind === "deliver" && copy.stanza.children[0] !== undefined);
  assert.equal(receivedCarbons(msg, ME, [RES, PHONE, DESK], resources).length, 0);
});

Deno.test("carbons: a private message is not copied, and <private/> is removed on delivery", () => {
  const msg = chat({ from: PEER, to: RES }, [elem("private", { xmlns: NS_CARBONS })]);
  const out = messageDeliveries(msg, ME, "res", [view("res"), view("phone")], DELIVERY);
  assert.deepEqual(out.map((d) => d.kind === "deliver" ? [d.to, serializeTop(d.stanza)] : d), [
    [RES, `<message type="chat" from="${PEER}" to="${RES}">${BODY}</message>`],
  ]);
});
