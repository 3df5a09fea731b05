/** `failedOpReplies`: what answers an account operation that could not be carried out. */
import assert from "node:assert/strict";
import { failedOpReplies } from "../../lib/account/account.ts";
import { type AccountOp, type AccountOutput } from "../../lib/core/types.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { EMPTY_ROSTER } from "../../lib/core/session.ts";
import { elem, stanza } from "../../lib/xml/element.ts";

const ERR = "urn:ietf:params:xml:ns:xmpp-stanzas";
const JULIET = "juliet@example.com";
const ROMEO = "romeo@example.com/orchard";

function shown(outputs: readonly AccountOutput[]): unknown[] {
  return outputs.map((o) =>
    o.kind === "route" || o.kind === "deliver" ? { ...o, stanza: serializeTop(o.stanza) } : o
  );
}

const pepGet = (type: string) =>
  stanza("iq", { type, id: "p1", from: ROMEO, to: JULIET }, [
    elem("pubsub", { xmlns: "http://jabber.org/protocol/pubsub" }, [
      elem("items", { node: "constructor" }),
    ]),
  ]);

Deno.test("failedOpReplies: an iq get or set gets internal-server-error, type cancel", () => {
  assert.deepEqual(shown(failedOpReplies({ kind: "module-iq", iq: pepGet("get") })), [{
    kind: "route",
    stanza: `<iq type="error" id="p1" from="${JULIET}" to="${ROMEO}">` +
      `<error type="cancel"><internal-server-error xmlns="${ERR}"/></error></iq>`,
  }]);
  const rosterSet = stanza("iq", { type: "set", id: "r1", from: `${JULIET}/balcony` }, [
    elem("query", { xmlns: "jabber:iq:roster" }),
  ]);
  const ops: AccountOp[] = [
    { kind: "roster-set", iq: rosterSet, change: { kind: "remove", jid: "constructor" } },
    { kind: "roster-get", iq: rosterSet },
    { kind: "mam-metadata", iq: rosterSet },
    { kind: "mam-prefs", iq: rosterSet },
    { kind: "remove-account", iq: rosterSet },
  ];
  for (const op of ops) {
    assert.deepEqual(shown(failedOpReplies(op)), [{
      kind: "route",
      stanza: `<iq type="error" id="r1" to="${JULIET}/balcony">` +
        `<error type="cancel"><internal-server-error xmlns="${ERR}"/></error></iq>`,
    }], op.kind);
  }
});

Deno.test("failedOpReplies: never an error for a result, an error, or an iq without a sender", () => {
  assert.deepEqual(failedOpReplies({ kind: "module-iq", iq: pepGet("result") }), []);
  assert.deepEqual(failedOpReplies({ kind: "module-iq", iq: pepGet("error") }), []);
  const anonymous = stanza("iq", { type: "get", id: "a" }, [
    elem("vCard", { xmlns: "vcard-temp" }),
  ]);
  assert.deepEqual(failedOpReplies({ kind: "module-iq", iq: anonymous }), []);
});

Deno.test("failedOpReplies: a message bounces to its sender, except errors and headlines", () => {
  const msg = (type?: string) =>
    stanza("message", { type, id: "m1", from: ROMEO, to: JULIET }, [elem("body", {}, ["hi"])]);
  const bounce = {
    kind: "route",
    stanza: `<message type="error" id="m1" from="${JULIET}" to="${ROMEO}">` +
      `<error type="cancel"><internal-server-error xmlns="${ERR}"/></error></message>`,
  };
  // outgoing-message: the sender's archive copy failed (issue 10): not delivered, and the sender
  // hears it.
  for (const kind of ["incoming-message", "outgoing-message", "offline-message"] as const) {
    for (const type of ["chat", "normal", undefined, "groupchat"]) {
      assert.deepEqual(shown(failedOpReplies({ kind, stanza: msg(type) })), [bounce]);
    }
    assert.deepEqual(failedOpReplies({ kind, stanza: msg("error") }), []);
    assert.deepEqual(failedOpReplies({ kind, stanza: msg("headline") }), []);
    const noSender = stanza("message", { type: "chat", to: JULIET });
    assert.deepEqual(failedOpReplies({ kind, stanza: noSender }), []);
  }
});

Deno.test("failedOpReplies: presence and the user's own bookkeeping are dropped", () => {
  const p = (type: string) =>
    stanza("presence", { type, from: "constructor@example.com", to: JULIET });
  const ops: AccountOp[] = [
    { kind: "inbound-subscription", stanza: p("subscribe") },
    { kind: "outbound-subscription", stanza: p("subscribed") },
    { kind: "probe", stanza: p("probe") },
    { kind: "initial-presence", fullJid: `${JULIET}/balcony`, priority: 0 },
    { kind: "resource-caps", fullJid: `${JULIET}/balcony`, features: ["toString+notify"] },
    { kind: "logout" },
  ];
  for (const op of ops) assert.deepEqual(failedOpReplies(op), [], op.kind);
});

Deno.test("failedOpReplies: a session waiting for its roster gets an empty one", () => {
  assert.deepEqual(failedOpReplies({ kind: "session-bound", fullJid: `${JULIET}/balcony` }), [
    { kind: "send-roster", to: `${JULIET}/balcony`, roster: EMPTY_ROSTER },
  ]);
});
