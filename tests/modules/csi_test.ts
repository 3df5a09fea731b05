import assert from "node:assert/strict";
import { MAX_CSI_HELD } from "../../lib/modules/csi.ts";
import { reduce } from "../../lib/c2s/mod.ts";
import type { Event } from "../../lib/core/types.ts";
import type { Session } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { authed, bound, HOST, record, run, show, stanzaEvent, testCtx } from "../_ctx.ts";
import { NS_CSI } from "../../lib/xmpp/namespaces.ts";

const CS = "http://jabber.org/protocol/chatstates";
const ME = `user@${HOST}/res`;
const ROMEO = "romeo@example.com/pc";
const ROMEO_PHONE = "romeo@example.com/phone";
const MERCUTIO = "mercutio@example.com/pc";

const INACTIVE = stanzaEvent(elem("inactive", { xmlns: NS_CSI }));
const ACTIVE = stanzaEvent(elem("active", { xmlns: NS_CSI }));

function inbound(el: Element): Event {
  return { kind: "inbound", stanza: el };
}

function presence(from: string, show?: string, type?: string): Element {
  return stanza("presence", { from, to: ME, type }, [
    show !== undefined && elem("show", {}, [show]),
  ]);
}

function chatState(from: string, state: string, extra: readonly Element[] = []): Element {
  return stanza("message", { from, to: ME, type: "chat" }, [elem(state, { xmlns: CS }), ...extra]);
}

function chat(from: string, body: string): Element {
  return stanza("message", { from, to: ME, type: "chat" }, [
    elem("body", {}, [body]),
    elem("active", { xmlns: CS }),
  ]);
}

function sends(...els: Element[]) {
  return els.map((stanza) => ({ kind: "send", stanza }));
}

/** A bound session that already said `<inactive/>`, holding `held`. */
function inactive(held: readonly Element[] = []): Session {
  return bound({ csi: { held } });
}

// ---------------------------------------------------------------------------------------------
// The nonzas (XEP-0352 §4.2): no reply, only a flag.

Deno.test("csi: <inactive/> sets the flag, sends nothing", () => {
  const s = bound();
  const [next, out] = reduce(s, INACTIVE, testCtx());
  assert.deepEqual(out, []);
  assert.deepEqual(record(next), record({ ...s, csi: { held: [] } }));
});

Deno.test("csi: a second <inactive/> keeps what is held", () => {
  const s = inactive([presence(ROMEO, "away")]);
  const [next, out] = reduce(s, INACTIVE, testCtx());
  assert.deepEqual(out, []);
  assert.equal(next, s);
});

Deno.test("csi: <active/> on an active stream changes nothing", () => {
  const s = bound();
  const [next, out] = reduce(s, ACTIVE, testCtx());
  assert.deepEqual(out, []);
  assert.equal(next, s);
});

Deno.test("csi: the nonzas are accepted after authentication, before binding", () => {
  const ctx = testCtx();
  const { session, outputs } = run(authed(), [INACTIVE], ctx);
  assert.deepEqual(outputs, []);
  assert.deepEqual(session.csi?.held, []);
  const back = run(session, [ACTIVE], ctx);
  assert.deepEqual(back.outputs, []);
  assert.equal(back.session.csi, undefined);
});

Deno.test("csi: another element in the csi namespace is still an unsupported stanza type", () => {
  const { session, outputs } = run(
    bound(),
    [stanzaEvent(elem("csi", { xmlns: NS_CSI }))],
    testCtx(),
  );
  assert.equal(session.destroyed, true);
  assert.deepEqual(outputs.at(-1), {
    kind: "disconnect",
    error: { condition: "unsupported-stanza-type", text: "Unknown element <csi/>" },
  });
});

// ---------------------------------------------------------------------------------------------
// Delivery while active is unchanged; while inactive, collapsible stanzas are held.

Deno.test("csi: an active session gets every stanza at once", () => {
  const s = bound();
  const [next, out] = reduce(s, inbound(presence(ROMEO, "away")), testCtx());
  assert.deepEqual(out, sends(presence(ROMEO, "away")));
  assert.equal(next, s);
});

Deno.test("csi: presence updates keep only the latest per sender full JID, in arrival order", () => {
  const { session, outputs } = run(inactive(), [
    inbound(presence(ROMEO, "away")),
    inbound(presence(MERCUTIO, "xa")),
    inbound(presence(ROMEO_PHONE, "chat")),
    inbound(presence(ROMEO, "dnd")),
  ], testCtx());
  assert.deepEqual(outputs, []);
  assert.deepEqual(session.csi?.held, [
    presence(MERCUTIO, "xa"),
    presence(ROMEO_PHONE, "chat"),
    presence(ROMEO, "dnd"),
  ]);
});

Deno.test("csi: unavailable supersedes the same sender's available presence", () => {
  const { session, outputs } = run(inactive(), [
    inbound(presence(ROMEO, "away")),
    inbound(presence(ROMEO, undefined, "unavailable")),
  ], testCtx());
  assert.deepEqual(outputs, []);
  assert.deepEqual(session.csi?.held, [presence(ROMEO, undefined, "unavailable")]);
});

Deno.test("csi: chat-state-only messages keep only the latest per sender", () => {
  const thread = elem("thread", {}, ["t1"]);
  const noStore = elem("no-store", { xmlns: "urn:xmpp:hints" });
  const { session, outputs } = run(inactive(), [
    inbound(chatState(ROMEO, "composing")),
    inbound(chatState(MERCUTIO, "composing", [thread])),
    inbound(chatState(ROMEO, "paused", [thread, noStore])),
  ], testCtx());
  assert.deepEqual(outputs, []);
  assert.deepEqual(session.csi?.held, [
    chatState(MERCUTIO, "composing", [thread]),
    chatState(ROMEO, "paused", [thread, noStore]),
  ]);
});

Deno.test("csi: a sender's presence and chat state do not collapse into each other", () => {
  const { session, outputs } = run(inactive(), [
    inbound(presence(ROMEO, "away")),
    inbound(chatState(ROMEO, "gone")),
  ], testCtx());
  assert.deepEqual(outputs, []);
  assert.deepEqual(session.csi?.held, [presence(ROMEO, "away"), chatState(ROMEO, "gone")]);
});

// ---------------------------------------------------------------------------------------------
// What matters flushes the queue: the held stanzas first, then it. The session stays inactive.

const HELD = [presence(MERCUTIO, "xa"), chatState(ROMEO, "composing")];

const IMPORTANT: readonly { readonly name: string; readonly stanza: Element }[] = [
  { name: "a message with a body", stanza: chat(ROMEO, "hi") },
  {
    name: "a chat state with another payload (a receipt)",
    stanza: chatState(ROMEO, "active", [
      elem("received", { xmlns: "urn:xmpp:receipts", id: "m1" }),
    ]),
  },
  {
    name: "a message without any chat state",
    stanza: stanza("message", { from: ROMEO, to: ME }, [elem("subject", {}, ["news"])]),
  },
  {
    name: "an error message carrying a chat state",
    stanza: stanza("message", { from: ROMEO, to: ME, type: "error" }, [
      elem("composing", { xmlns: CS }),
    ]),
  },
  {
    name: "an iq",
    stanza: stanza("iq", { from: ROMEO, to: ME, type: "get", id: "p1" }, [
      elem("ping", { xmlns: "urn:xmpp:ping" }),
    ]),
  },
  {
    name: "a subscription request",
    stanza: stanza("presence", { from: "juliet@example.com", to: ME, type: "subscribe" }),
  },
  {
    name: "a presence error",
    stanza: stanza("presence", { from: MERCUTIO, to: ME, type: "error" }),
  },
];

for (const c of IMPORTANT) {
  Deno.test(`csi: ${c.name} flushes the held stanzas, then goes out`, () => {
    const [next, out] = reduce(inactive(HELD), inbound(c.stanza), testCtx());
    assert.deepEqual(out, sends(...HELD, c.stanza));
    assert.deepEqual(record(next), record(inactive([])));
  });
}

Deno.test("csi: <active/> sends what was held, in order, and clears the flag", () => {
  const [next, out] = reduce(inactive(HELD), ACTIVE, testCtx());
  assert.deepEqual(show(out), [
    {
      kind: "send",
      xml: `<presence from="${MERCUTIO}" to="${ME}"><show>xa</show></presence>`,
    },
    {
      kind: "send",
      xml: `<message from="${ROMEO}" to="${ME}" type="chat"><composing xmlns="${CS}"/></message>`,
    },
  ]);
  assert.deepEqual(record(next), record(bound()));
  // Active again: the next stanza goes straight out.
  const [, after] = reduce(next, inbound(chatState(ROMEO, "paused")), testCtx());
  assert.deepEqual(after, sends(chatState(ROMEO, "paused")));
});

// ---------------------------------------------------------------------------------------------
// The queue is bounded.

function fullQueue(): Element[] {
  return Array.from({ length: MAX_CSI_HELD }, (_, i) => presence(`c${i}@example.com/r`, "away"));
}

Deno.test(`csi: ${MAX_CSI_HELD} held stanzas are kept; one more flushes them all`, () => {
  const held = fullQueue();
  const extra = presence("late@example.com/r", "away");
  const [next, out] = reduce(inactive(held), inbound(extra), testCtx());
  assert.equal(out.length, MAX_CSI_HELD + 1);
  assert.deepEqual(out, sends(...held, extra));
  assert.deepEqual(next.csi, { held: [] });
});

Deno.test("csi: an update that collapses into a full queue does not flush it", () => {
  const held = fullQueue();
  const update = presence("c0@example.com/r", "dnd");
  const [next, out] = reduce(inactive(held), inbound(update), testCtx());
  assert.deepEqual(out, []);
  assert.deepEqual(next.csi?.held, [...held.slice(1), update]);
});

// ---------------------------------------------------------------------------------------------
// Ending the session drops what is held, like an unsent socket buffer.

Deno.test("csi: a session that ends while inactive does not send the held stanzas", () => {
  const ctx = testCtx();
  const [active, expected] = reduce(bound(), { kind: "disconnected", reason: "gone" }, ctx);
  const [next, out] = reduce(inactive(HELD), { kind: "disconnected", reason: "gone" }, ctx);
  assert.deepEqual(out, expected);
  assert.deepEqual(out, [{ kind: "unbind", fullJid: ME }, {
    kind: "disconnect",
    error: undefined,
  }]);
  assert.deepEqual(record(next), record(active));
});

Deno.test("csi: an unbound session still drops routed stanzas, inactive or not", () => {
  const s = authed({ csi: { held: [] } });
  const [next, out] = reduce(s, inbound(chat(ROMEO, "hi")), testCtx());
  assert.deepEqual(out, []);
  assert.equal(next, s);
});

Deno.test("csi: past csi_bytes the held stanzas are flushed, as at the count", () => {
  const ctx = testCtx({ limits: { csiBytes: 2048 } });
  const big = (from: string) => presence(from, "x".repeat(500));
  const { session, outputs } = run(inactive(), [
    inbound(big("a@example.com/r")),
    inbound(big("b@example.com/r")),
    inbound(big("c@example.com/r")),
  ], ctx);
  assert.deepEqual(outputs, []);
  assert.equal(session.csi?.held.length, 3);
  const [next, out] = reduce(session, inbound(big("d@example.com/r")), ctx);
  assert.deepEqual(
    out,
    sends(
      big("a@example.com/r"),
      big("b@example.com/r"),
      big("c@example.com/r"),
      big("d@example.com/r"),
    ),
  );
  assert.deepEqual(next.csi, { held: [] });
  // A collapsed update gives its predecessor's bytes back: no flush.
  const [same, none] = reduce(session, inbound(big("a@example.com/r")), ctx);
  assert.deepEqual(none, []);
  assert.equal(same.csi?.held.length, 3);
});
