import assert from "node:assert/strict";
import { bound, HOST, run, show, stanzaEvent, testCtx } from "../_ctx.ts";
import type { Roster } from "../../lib/core/session.ts";
import { elem, stanza } from "../../lib/xml/element.ts";
import type { Output } from "../../lib/core/types.ts";

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
    if (o.kind === "account" && o.op.kind === "resource-caps") return [o];
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
  // The session remembers what it asked, and of whom.
  assert.deepEqual(session.caps, {
    node: NODE,
    ver: VER,
    hash: "sha-1",
    features: undefined,
    asked: [
      { id: "disco", to: FULL, from: USER },
      { id: "disco", to: FULL, from: CONTACT },
    ],
  });
});

Deno.test("caps: known caps need no question; the services send their last items", () => {
  const features = ["http://jabber.org/protocol/nick+notify"];
  const ctx = testCtx({ capsFeatures: (v) => v === VER ? features : undefined });
  const { session, outputs } = run(bound({ roster: ROSTER }), [stanzaEvent(capsPresence())], ctx);
  assert.deepEqual(capsOutputs(outputs), [
    "presence reflected",
    { kind: "account", bare: USER, op: { kind: "resource-caps", fullJid: FULL, features } },
    { kind: "account", bare: CONTACT, op: { kind: "resource-caps", fullJid: FULL, features } },
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
    { kind: "account", bare: CONTACT, op: { kind: "resource-caps", fullJid: FULL, features } },
  ]);
  assert.equal(outputs.length, 2);
  // The contact's question is answered and forgotten; the user's own is still open.
  assert.deepEqual(session.caps, {
    node: NODE,
    ver: VER,
    hash: "sha-1",
    features,
    asked: [{ id: "disco", to: FULL, from: USER }],
  });
  // The second answer, to the user's own service, is not learned again: the service is told.
  const own = run(session, [stanzaEvent(answerTo(USER, features))], testCtx());
  assert.deepEqual(show(own.outputs), [
    { kind: "account", bare: USER, op: { kind: "resource-caps", fullJid: FULL, features } },
  ]);
  assert.deepEqual(own.session.caps, { node: NODE, ver: VER, hash: "sha-1", features });
  // Every question answered: one more answer is one nobody asked for.
  const again = run(own.session, [stanzaEvent(answerTo(undefined, features))], testCtx());
  assert.deepEqual(again.outputs, []);
  assert.equal(again.session, own.session);
});

Deno.test("caps: an answer to another client's own caps query passes through", () => {
  const first = run(bound({ roster: ROSTER }), [stanzaEvent(capsPresence())], testCtx());
  const answer = stanza("iq", { type: "result", id: "disco", to: `${CONTACT}/orchard` }, [
    elem("query", { xmlns: "http://jabber.org/protocol/disco#info", node: `${NODE}#${VER}` }),
  ]);
  const { outputs } = run(first.session, [stanzaEvent(answer)], testCtx());
  assert.deepEqual(show(outputs).map((o) => o.kind), ["route"]);
});

function answerTo(
  to: string | undefined,
  features: readonly string[],
  attrs: { readonly id?: string; readonly ver?: string } = {},
) {
  return stanza("iq", { type: "result", id: attrs.id ?? "disco", to }, [
    elem(
      "query",
      { xmlns: "http://jabber.org/protocol/disco#info", node: `${NODE}#${attrs.ver ?? VER}` },
      features.map((f) => elem("feature", { var: f })),
    ),
  ]);
}

const WANTS_NICK = ["http://jabber.org/protocol/nick+notify"];

Deno.test("caps: an unsolicited answer teaches nothing and tells no service", () => {
  // Bound, no caps presence: nothing was asked.
  const s = bound({ roster: ROSTER });
  for (const to of [undefined, USER, HOST]) {
    const { session, outputs } = run(s, [stanzaEvent(answerTo(to, WANTS_NICK))], testCtx());
    assert.deepEqual(outputs, []);
    assert.equal(session, s);
  }
  // To a contact (whose service did not ask): an iq result like any other, routed unread.
  const { outputs } = run(s, [stanzaEvent(answerTo(CONTACT, WANTS_NICK))], testCtx());
  assert.deepEqual(show(outputs), [{
    kind: "route",
    xml: `<iq type="result" id="disco" to="${CONTACT}" from="${FULL}">` +
      `<query xmlns="http://jabber.org/protocol/disco#info" node="${NODE}#${VER}">` +
      `<feature var="http://jabber.org/protocol/nick+notify"/></query></iq>`,
  }]);
});

Deno.test("caps: only an answer with our id, about the caps asked, to the asker is learned", () => {
  const first = run(bound({ roster: ROSTER }), [stanzaEvent(capsPresence())], testCtx());
  const tries = [
    answerTo(USER, WANTS_NICK, { id: "other" }),
    // Another ver (a large answer nobody asked about would come this way).
    answerTo(USER, WANTS_NICK, { ver: "b3RoZXI=" }),
    // A service that did not ask (not a contact): routed as any result.
    answerTo(`stranger@${HOST}`, WANTS_NICK),
  ];
  for (const answer of tries) {
    const { session, outputs } = run(first.session, [stanzaEvent(answer)], testCtx());
    assert.ok(!outputs.some((o) => o.kind === "caps-learned" || o.kind === "account"));
    assert.equal(session, first.session);
  }
  const ok = run(first.session, [stanzaEvent(answerTo(undefined, WANTS_NICK))], testCtx());
  assert.deepEqual(capsOutputs(ok.outputs), [
    { kind: "caps-learned", ver: VER },
    {
      kind: "account",
      bare: USER,
      op: { kind: "resource-caps", fullJid: FULL, features: WANTS_NICK },
    },
  ]);
});

Deno.test("caps: new caps forget the questions about the old ones", () => {
  const first = run(bound({ roster: ROSTER }), [stanzaEvent(capsPresence())], testCtx());
  const second = run(first.session, [stanzaEvent(capsPresence("bmV3"))], testCtx());
  assert.deepEqual(second.session.caps?.asked, [
    { id: "disco", to: FULL, from: USER },
    { id: "disco", to: FULL, from: CONTACT },
  ]);
  const late = run(second.session, [stanzaEvent(answerTo(USER, WANTS_NICK))], testCtx());
  assert.deepEqual(late.outputs, []);
  const current = run(
    second.session,
    [stanzaEvent(answerTo(USER, WANTS_NICK, { ver: "bmV3" }))],
    testCtx(),
  );
  assert.deepEqual(capsOutputs(current.outputs), [
    { kind: "caps-learned", ver: "bmV3" },
    {
      kind: "account",
      bare: USER,
      op: { kind: "resource-caps", fullJid: FULL, features: WANTS_NICK },
    },
  ]);
  // Presence without caps forgets them all.
  const plain = run(second.session, [stanzaEvent(stanza("presence"))], testCtx());
  assert.equal(plain.session.caps, undefined);
});

Deno.test("caps: known caps ask nothing, so an answer then is unsolicited", () => {
  const ctx = testCtx({ capsFeatures: (v) => v === VER ? WANTS_NICK : undefined });
  const { session } = run(bound({ roster: ROSTER }), [stanzaEvent(capsPresence())], ctx);
  assert.deepEqual(session.caps, { node: NODE, ver: VER, hash: "sha-1", features: WANTS_NICK });
  const { outputs } = run(session, [stanzaEvent(answerTo(undefined, ["urn:x+notify"]))], ctx);
  assert.deepEqual(outputs, []);
});
