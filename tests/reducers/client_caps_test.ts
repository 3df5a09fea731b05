import assert from "node:assert/strict";
import { bound, HOST, run, show, stanzaEvent, testCtx } from "./_ctx.ts";
import type { Roster } from "../../lib/session.ts";
import { elem, stanza } from "../../lib/xml/element.ts";
import type { Output } from "../../lib/reducers/types.ts";

const USER = `user@${HOST}`;
const FULL = `${USER}/res`;
const CONTACT = `romeo@${HOST}`;
const NODE = "https://client.example/";
const VER = "abc=";
const Q = `<query xmlns="http://jabber.org/protocol/disco#info" node="${NODE}#${VER}"/>`;

const ROSTER: Roster = {
  version: "3",
  items: {
    [CONTACT]: { jid: CONTACT, subscription: "both", groups: [] },
    "tybalt@elsewhere.example": {
      jid: "tybalt@elsewhere.example",
      subscription: "both",
      groups: [],
    },
  },
  pendingIn: {},
};

function capsPresence(ver = VER) {
  return stanza("presence", {}, [
    elem("c", { xmlns: "http://jabber.org/protocol/caps", hash: "sha-1", node: NODE, ver }),
  ]);
}

/** The outputs that concern caps, in order, with the reflection of the presence as a marker. */
function capsOutputs(out: readonly Output[]): unknown[] {
  return show(out).flatMap((o): unknown[] => {
    if (o.kind === "send" && o.xml.startsWith("<presence")) return ["presence reflected"];
    if (o.kind === "send" && o.xml.includes("disco#info")) return [o.xml];
    if (o.kind === "account" && o.op.kind === "pep-caps") return [o];
    if (o.kind === "caps-learned") return [{ kind: o.kind, ver: o.ver }];
    return [];
  });
}

function question(from: string): string {
  return `<iq type="get" id="disco" from="${from}" to="${FULL}">${Q}</iq>`;
}

Deno.test("caps: unknown caps are asked by the user's service first, then local contacts'", () => {
  const { session, outputs } = run(
    bound({ roster: ROSTER }),
    [stanzaEvent(capsPresence())],
    testCtx(),
  );
  assert.deepEqual(capsOutputs(outputs), [
    question(USER),
    "presence reflected",
    // Only local contacts have a PEP service here to ask.
    question(CONTACT),
  ]);
  assert.deepEqual(session.caps, { node: NODE, ver: VER, hash: "sha-1", features: undefined });
});

Deno.test("caps: known caps need no question; the services send their last items", () => {
  const features = ["http://jabber.org/protocol/nick+notify"];
  const ctx = testCtx({ capsFeatures: (v) => v === VER ? features : undefined });
  const { session, outputs } = run(bound({ roster: ROSTER }), [stanzaEvent(capsPresence())], ctx);
  assert.deepEqual(capsOutputs(outputs), [
    "presence reflected",
    { kind: "account", bare: USER, op: { kind: "pep-caps", fullJid: FULL, features } },
    { kind: "account", bare: CONTACT, op: { kind: "pep-caps", fullJid: FULL, features } },
  ]);
  assert.deepEqual(session.caps?.features, features);
  // The same caps again (a status change) change nothing.
  const again = run(session, [stanzaEvent(capsPresence())], ctx);
  assert.deepEqual(capsOutputs(again.outputs), ["presence reflected"]);
});

Deno.test("caps: the answer is learned and sent to the service that asked", () => {
  const first = run(bound({ roster: ROSTER }), [stanzaEvent(capsPresence())], testCtx());
  const answer = stanza("iq", { type: "result", id: "disco", to: CONTACT }, [
    elem("query", { xmlns: "http://jabber.org/protocol/disco#info", node: `${NODE}#${VER}` }, [
      elem("feature", { var: "http://jabber.org/protocol/nick+notify" }),
    ]),
  ]);
  const { session, outputs } = run(first.session, [stanzaEvent(answer)], testCtx());
  const features = ["http://jabber.org/protocol/nick+notify"];
  assert.deepEqual(capsOutputs(outputs), [
    { kind: "caps-learned", ver: VER },
    { kind: "account", bare: CONTACT, op: { kind: "pep-caps", fullJid: FULL, features } },
  ]);
  assert.equal(outputs.length, 2);
  assert.deepEqual(session.caps?.features, features);
});

Deno.test("caps: an answer to another client's own caps query passes through", () => {
  const first = run(bound({ roster: ROSTER }), [stanzaEvent(capsPresence())], testCtx());
  const answer = stanza("iq", { type: "result", id: "disco", to: `${CONTACT}/orchard` }, [
    elem("query", { xmlns: "http://jabber.org/protocol/disco#info", node: `${NODE}#${VER}` }),
  ]);
  const { outputs } = run(first.session, [stanzaEvent(answer)], testCtx());
  assert.deepEqual(show(outputs).map((o) => o.kind), ["route"]);
});
