import assert from "node:assert/strict";
import { reduce } from "../../lib/c2s/mod.ts";
import type { Event } from "../../lib/core/types.ts";
import { EMPTY_ROSTER, type Roster, type Session } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { NS_VCARD_UPDATE } from "../../lib/xmpp/namespaces.ts";
import {
  authed,
  bound,
  fresh,
  HOST,
  NOW,
  record,
  run,
  show,
  stanzaEvent,
  testCtx,
} from "../_ctx.ts";

const ERR_NS = "urn:ietf:params:xml:ns:xmpp-streams";
const ME = `user@${HOST}/res`;
/** XEP-0012 §4: the account records when an available resource went. */
const LOGOUT = { kind: "account", bare: `user@${HOST}`, op: { kind: "logout" } } as const;
const ROMEO = "romeo@example.com";
/** The unavailable presence the server routes on the user's behalf to romeo. */
const UNAVAILABLE = `<presence type="unavailable" from="${ME}" to="${ROMEO}"/>`;

/**
 * XEP-0153 §4.1: the server knows the vCard, so a user without an avatar has an empty <photo/>
 * added to available presence (broadcast or directed), as element and as serialized.
 */
const NO_AVATAR = elem("x", { xmlns: NS_VCARD_UPDATE }, [elem("photo")]);
const NO_AVATAR_XML = `<x xmlns="${NS_VCARD_UPDATE}"><photo/></x>`;

/** A roster with one contact subscribed to the user's presence. */
const ROSTER: Roster = {
  ...EMPTY_ROSTER,
  items: { [ROMEO]: { jid: ROMEO, subscription: "from", groups: [] } },
};

function streamError(condition: string, text: string): string {
  return `<stream:error><${condition} xmlns="${ERR_NS}"/>` +
    `<text xmlns="${ERR_NS}" xml:lang="en">${text}</text></stream:error>`;
}

function presence(attrs: Readonly<Record<string, string>> = {}, priority?: string): Element {
  return stanza("presence", attrs, [priority !== undefined && elem("priority", {}, [priority])]);
}

/** A bound resource that sent available presence, with romeo subscribed to it. */
function available(over: Partial<Session> = {}): Session {
  return bound({ presence: stanza("presence", { from: ME }), roster: ROSTER, ...over });
}

// ---------------------------------------------------------------------------------------------
// Broadcast presence sets the resource's state (RFC 6121 §4.2, §4.4).

const PRIORITIES: readonly { readonly given?: string; readonly priority: number }[] = [
  { given: undefined, priority: 0 },
  { given: "5", priority: 5 },
  { given: " -3 ", priority: -3 },
  { given: "127", priority: 127 },
  { given: "200", priority: 127 },
  { given: "-128", priority: -128 },
  { given: "-500", priority: -128 },
  { given: "high", priority: 0 },
];

for (const c of PRIORITIES) {
  Deno.test(`presence: priority ${JSON.stringify(c.given)} -> ${c.priority}`, () => {
    const s = bound();
    const [next, out] = reduce(s, stanzaEvent(presence({}, c.given)), testCtx());
    const stamped = stanza("presence", { from: ME }, [
      c.given !== undefined && elem("priority", {}, [c.given]),
      NO_AVATAR,
    ]);
    // Nobody subscribed and no other resource: the presence only comes back to the sender,
    // and the account learns the initial presence's priority (offline messages need >= 0).
    assert.deepEqual(out, [
      { kind: "send", stanza: stamped },
      {
        kind: "account",
        bare: `user@${HOST}`,
        op: { kind: "initial-presence", fullJid: ME, priority: c.priority },
      },
    ]);
    assert.deepEqual(
      record(next),
      record({ ...s, presence: stamped, priority: c.priority, presenceAt: NOW }),
    );
  });
}

Deno.test("presence: <presence/> is stamped, routed to each subscriber, sent back, and kept", () => {
  const s = bound({ roster: ROSTER });
  const [next, out] = reduce(s, stanzaEvent(presence({ from: "mallory@example.com" })), testCtx());
  assert.deepEqual(show(out), [
    { kind: "route", xml: `<presence from="${ME}" to="${ROMEO}">${NO_AVATAR_XML}</presence>` },
    { kind: "send", xml: `<presence from="${ME}">${NO_AVATAR_XML}</presence>` },
    {
      kind: "account",
      bare: `user@${HOST}`,
      op: { kind: "initial-presence", fullJid: ME, priority: 0 },
    },
  ]);
  assert.deepEqual(next.presence, stanza("presence", { from: ME }, [NO_AVATAR]));
});

Deno.test("presence: unavailable resets presence, is routed to subscribers and sent back", () => {
  const s = available({ priority: 5 });
  const [next, out] = reduce(s, stanzaEvent(presence({ type: "unavailable" })), testCtx());
  assert.deepEqual(show(out), [
    { kind: "route", xml: UNAVAILABLE },
    { kind: "send", xml: `<presence type="unavailable" from="${ME}"/>` },
    LOGOUT,
  ]);
  assert.deepEqual(record(next), record({ ...s, presence: undefined }));
});

Deno.test("presence: a typed broadcast other than unavailable is ignored", () => {
  const s = available();
  const [next, out] = reduce(s, stanzaEvent(presence({ type: "subscribed" })), testCtx());
  assert.deepEqual(out, []);
  assert.equal(next, s);
});

Deno.test("presence: directed presence is routed, remembered, and leaves the broadcast alone", () => {
  const s = bound();
  const [next, out] = reduce(s, stanzaEvent(presence({ to: "Romeo@example.com" })), testCtx());
  assert.deepEqual(show(out), [{
    kind: "route",
    xml: `<presence to="romeo@${HOST}" from="${ME}">${NO_AVATAR_XML}</presence>`,
  }]);
  // RFC 6121 §4.6.3: the recipient must hear when this resource goes.
  assert.deepEqual(record(next), record({ ...s, directed: new Set([`romeo@${HOST}`]) }));
});

// ---------------------------------------------------------------------------------------------
// The destroy path: exact outputs for each way a session ends.

const ENDINGS: readonly {
  readonly name: string;
  readonly session: Session;
  readonly event: Event;
  readonly outputs: readonly unknown[];
}[] = [
  {
    name: "stream-close of an available resource: one unavailable, then unbind",
    session: available(),
    event: { kind: "stream-close" },
    outputs: [
      { kind: "close-stream" },
      { kind: "route", xml: UNAVAILABLE },
      LOGOUT,
      { kind: "unbind", fullJid: ME },
      { kind: "disconnect", error: undefined },
    ],
  },
  {
    name: "disconnected available resource: nothing written, unavailable routed",
    session: available(),
    event: { kind: "disconnected", reason: "reset by peer" },
    outputs: [
      { kind: "route", xml: UNAVAILABLE },
      LOGOUT,
      { kind: "unbind", fullJid: ME },
      { kind: "disconnect", error: undefined },
    ],
  },
  {
    name: "disconnected bound resource without presence: no unavailable",
    session: bound(),
    event: { kind: "disconnected", reason: "eof" },
    outputs: [{ kind: "unbind", fullJid: ME }, { kind: "disconnect", error: undefined }],
  },
  {
    name: "disconnected unbound session: neither unavailable nor unbind",
    session: authed(),
    event: { kind: "disconnected", reason: "eof" },
    outputs: [{ kind: "disconnect", error: undefined }],
  },
  {
    name: "disconnected before any header: nothing at all written",
    session: fresh(),
    event: { kind: "disconnected", reason: "eof" },
    outputs: [{ kind: "disconnect", error: undefined }],
  },
  {
    name: "shutdown of an available resource -> system-shutdown",
    session: available(),
    event: { kind: "shutdown" },
    outputs: [
      { kind: "close-stream", xml: streamError("system-shutdown", "The server is shutting down") },
      { kind: "route", xml: UNAVAILABLE },
      LOGOUT,
      { kind: "unbind", fullJid: ME },
      {
        kind: "disconnect",
        error: { condition: "system-shutdown", text: "The server is shutting down" },
      },
    ],
  },
  {
    name: "auth-timeout before any header -> header, connection-timeout",
    session: fresh(),
    event: { kind: "auth-timeout" },
    outputs: [
      {
        kind: "open-stream",
        header: { ns: "jabber:client", id: "id1", from: "example.com", version: "1.0", lang: "en" },
      },
      {
        kind: "close-stream",
        xml: streamError("connection-timeout", "Authentication took too long"),
      },
      {
        kind: "disconnect",
        error: { condition: "connection-timeout", text: "Authentication took too long" },
      },
    ],
  },
  {
    name: "auth-timeout of an opened, unauthenticated stream -> connection-timeout",
    session: { ...fresh(), notopen: false, streamId: "sid", host: HOST },
    event: { kind: "auth-timeout" },
    outputs: [
      {
        kind: "close-stream",
        xml: streamError("connection-timeout", "Authentication took too long"),
      },
      {
        kind: "disconnect",
        error: { condition: "connection-timeout", text: "Authentication took too long" },
      },
    ],
  },
  {
    name: "auth-timeout of an authenticated but unbound stream -> connection-timeout",
    session: authed(),
    event: { kind: "auth-timeout" },
    outputs: [
      {
        kind: "close-stream",
        xml: streamError("connection-timeout", "Authentication took too long"),
      },
      {
        kind: "disconnect",
        error: { condition: "connection-timeout", text: "Authentication took too long" },
      },
    ],
  },
  {
    name: "idle-timeout of an available resource -> connection-timeout",
    session: available(),
    event: { kind: "idle-timeout" },
    outputs: [
      { kind: "close-stream", xml: streamError("connection-timeout", "Idle for too long") },
      { kind: "route", xml: UNAVAILABLE },
      LOGOUT,
      { kind: "unbind", fullJid: ME },
      { kind: "disconnect", error: { condition: "connection-timeout", text: "Idle for too long" } },
    ],
  },
];

for (const c of ENDINGS) {
  Deno.test(`destroy: ${c.name}`, () => {
    const [next, out] = reduce(c.session, c.event, testCtx());
    assert.deepEqual(show(out), c.outputs);
    assert.deepEqual(
      record(next),
      record({ ...c.session, destroyed: true, presence: undefined, sasl: undefined }),
    );
  });
}

Deno.test("destroy: auth-timeout leaves a bound session alone", () => {
  for (const s of [bound(), available()]) {
    const [next, out] = reduce(s, { kind: "auth-timeout" }, testCtx());
    assert.equal(next, s);
    assert.deepEqual(out, []);
  }
});

Deno.test("destroy: an exchange in progress is dropped with the session", () => {
  const s: Session = {
    ...fresh(),
    notopen: false,
    streamId: "sid",
    host: HOST,
    sasl: { mechanism: "SCRAM-SHA-1", step: "await-credentials", username: "user", state: {} },
  };
  const [next] = reduce(s, { kind: "disconnected", reason: "eof" }, testCtx());
  assert.equal(next.sasl, undefined);
  assert.equal(next.destroyed, true);
});

Deno.test("destroy: after the end, further endings produce nothing more", () => {
  const { session, outputs } = run(available(), [
    { kind: "stream-close" },
    { kind: "disconnected", reason: "eof" },
    { kind: "shutdown" },
    { kind: "replaced" },
  ], testCtx());
  // Exactly one unavailable presence and one unbind over the whole life of the session.
  assert.equal(outputs.filter((o) => o.kind === "route").length, 1);
  assert.equal(outputs.filter((o) => o.kind === "unbind").length, 1);
  assert.equal(outputs.filter((o) => o.kind === "disconnect").length, 1);
  assert.equal(session.destroyed, true);
});
