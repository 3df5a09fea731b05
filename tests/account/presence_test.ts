import assert from "node:assert/strict";
import { reduce } from "../../lib/c2s/mod.ts";
import type { ResourceView } from "../../lib/core/types.ts";
import type { Roster, RosterItem, Session } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { bound, HOST, NOW, record, show, stanzaEvent, testCtx } from "../_ctx.ts";

const BARE = `user@${HOST}`;
const ME = `${BARE}/res`;
const OTHER = `${BARE}/other`;
const IDLE = `${BARE}/idle`;
const FROM = "from@example.com";
const TO = "to@example.com";
const BOTH = "both@example.com";
const NONE = "none@example.com";
const STRANGER = "stranger@example.com/pc";

function item(jid: string, subscription: RosterItem["subscription"]): RosterItem {
  return { jid, subscription, groups: [] };
}

/** One contact per subscription state, in this order. */
const ROSTER: Roster = {
  version: "1",
  items: {
    [FROM]: item(FROM, "from"),
    [TO]: item(TO, "to"),
    [BOTH]: item(BOTH, "both"),
    [NONE]: { ...item(NONE, "none"), ask: "subscribe" },
  },
  pendingIn: {},
};

const OTHER_PRESENCE = stanza("presence", { from: OTHER }, [elem("show", {}, ["dnd"])]);

/**
 * The user's live resources as the registry shows them: this one (not yet available), another
 * available one with its presence, and a connected one that sent no presence.
 */
const RESOURCES: readonly ResourceView[] = [
  { fullJid: ME, resource: "res", priority: 0, available: false, interested: true },
  {
    fullJid: OTHER,
    resource: "other",
    priority: 0,
    available: true,
    interested: true,
    presence: OTHER_PRESENCE,
  },
  { fullJid: IDLE, resource: "idle", priority: 0, available: false, interested: false },
];

function ctx() {
  return testCtx({ resourcesOf: (bare) => bare === BARE ? RESOURCES : [] });
}

function session(over: Partial<Session> = {}): Session {
  return bound({ roster: ROSTER, ...over });
}

/** XEP-0153: what the server adds to the presence of a user without an avatar. */
const NO_AVATAR = elem("x", { xmlns: "vcard-temp:x:update" }, [elem("photo")]);

/** A session that already sent available presence. */
function available(over: Partial<Session> = {}): Session {
  return session({ presence: stanza("presence", { from: ME }), ...over });
}

function presence(attrs: Readonly<Record<string, string>> = {}, children: Element[] = []) {
  return stanza("presence", attrs, children);
}

Deno.test("presence: initial presence broadcasts, probes, learns other resources, tells the account", () => {
  const s = session();
  const sent = presence({}, [elem("priority", {}, ["3"])]);
  const [next, out] = reduce(s, stanzaEvent(sent), ctx());
  const p = (to: string) =>
    `<presence from="${ME}" to="${to}"><priority>3</priority><x xmlns="vcard-temp:x:update"><photo/></x></presence>`;
  assert.deepEqual(show(out), [
    // 1. Subscribers (from, both), 2. the user's other available resources, and itself.
    { kind: "route", xml: p(FROM) },
    { kind: "route", xml: p(BOTH) },
    { kind: "route", xml: p(OTHER) },
    {
      kind: "send",
      xml:
        `<presence from="${ME}"><priority>3</priority><x xmlns="vcard-temp:x:update"><photo/></x></presence>`,
    },
    // 3. Probes from the full JID to the contacts the user is subscribed to (to, both).
    { kind: "route", xml: `<presence type="probe" from="${ME}" to="${TO}"/>` },
    { kind: "route", xml: `<presence type="probe" from="${ME}" to="${BOTH}"/>` },
    // 4. The other available resource's presence, addressed to this one.
    { kind: "send", xml: `<presence from="${OTHER}" to="${ME}"><show>dnd</show></presence>` },
    // 5. Pending requests and offline messages come from the account.
    {
      kind: "account",
      bare: BARE,
      op: { kind: "initial-presence", fullJid: ME, priority: 3 },
    },
  ]);
  assert.deepEqual(
    record(next),
    record({
      ...s,
      presence: stanza("presence", { from: ME }, [elem("priority", {}, ["3"]), NO_AVATAR]),
      priority: 3,
      presenceAt: NOW,
    }),
  );
});

Deno.test("presence: an update is broadcast again without probes or an account op", () => {
  const s = available();
  const sent = presence({}, [elem("show", {}, ["away"])]);
  const [next, out] = reduce(s, stanzaEvent(sent), ctx());
  const p = (to: string) =>
    `<presence from="${ME}" to="${to}"><show>away</show><x xmlns="vcard-temp:x:update"><photo/></x></presence>`;
  assert.deepEqual(show(out), [
    { kind: "route", xml: p(FROM) },
    { kind: "route", xml: p(BOTH) },
    { kind: "route", xml: p(OTHER) },
    {
      kind: "send",
      xml:
        `<presence from="${ME}"><show>away</show><x xmlns="vcard-temp:x:update"><photo/></x></presence>`,
    },
  ]);
  assert.deepEqual(
    record(next),
    record({
      ...s,
      presence: stanza("presence", { from: ME }, [elem("show", {}, ["away"]), NO_AVATAR]),
      presenceAt: NOW,
    }),
  );
});

Deno.test("presence: unavailable reaches subscribers, other resources and directed, once each", () => {
  // Directed presence went to a stranger and to a subscriber: the subscriber hears it once.
  const s = available({ directed: new Set([STRANGER, BOTH]), priority: 4 });
  const [next, out] = reduce(s, stanzaEvent(presence({ type: "unavailable" })), ctx());
  const u = (to: string) => `<presence type="unavailable" from="${ME}" to="${to}"/>`;
  assert.deepEqual(show(out), [
    { kind: "route", xml: u(FROM) },
    { kind: "route", xml: u(BOTH) },
    { kind: "route", xml: u(OTHER) },
    { kind: "route", xml: u(STRANGER) },
    { kind: "send", xml: `<presence type="unavailable" from="${ME}"/>` },
    // XEP-0012 §4: the account records the logout.
    { kind: "account", bare: BARE, op: { kind: "logout" } },
  ]);
  assert.deepEqual(record(next), record({ ...s, presence: undefined, directed: new Set() }));
});

Deno.test("presence: unavailable without prior presence reaches only the directed recipients", () => {
  const s = session({ directed: new Set([STRANGER]) });
  const [next, out] = reduce(s, stanzaEvent(presence({ type: "unavailable" })), ctx());
  assert.deepEqual(show(out), [
    { kind: "route", xml: `<presence type="unavailable" from="${ME}" to="${STRANGER}"/>` },
  ]);
  assert.deepEqual(record(next), record({ ...s, directed: new Set() }));
});

Deno.test("presence: directed available presence is routed and remembered once", () => {
  const s = available();
  const sent = presence({ to: "Stranger@Example.com/pc" });
  const [once, out1] = reduce(s, stanzaEvent(sent), ctx());
  const xml =
    `<presence to="${STRANGER}" from="${ME}"><x xmlns="vcard-temp:x:update"><photo/></x></presence>`;
  assert.deepEqual(show(out1), [{ kind: "route", xml }]);
  assert.deepEqual(record(once), record({ ...s, directed: new Set([STRANGER]) }));
  const [twice, out2] = reduce(once, stanzaEvent(sent), ctx());
  assert.deepEqual(show(out2), [{ kind: "route", xml }]);
  assert.deepEqual(twice.directed, new Set([STRANGER]));
});

Deno.test("presence: past directed_presences, a new JID is refused with resource-constraint", () => {
  const c = testCtx({
    resourcesOf: (bare) => bare === BARE ? RESOURCES : [],
    limits: { directedPresences: 2 },
  });
  const s = available({ directed: new Set([STRANGER, NONE]) });
  const [next, out] = reduce(s, stanzaEvent(presence({ to: "late@example.com/x", id: "p1" })), c);
  assert.deepEqual(show(out), [{
    kind: "send",
    xml: `<presence type="error" id="p1" from="late@example.com/x" to="${ME}">` +
      `<error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
      `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">` +
      "Too many directed presences</text></error></presence>",
  }]);
  assert.equal(next, s);
  // A JID already remembered still gets updates, and the set is not copied for it.
  const [same, again] = reduce(s, stanzaEvent(presence({ to: STRANGER })), c);
  assert.deepEqual(again.map((o) => o.kind), ["route"]);
  assert.equal(same.directed, s.directed);
  // Once one is forgotten, there is room again.
  const [fewer] = reduce(s, stanzaEvent(presence({ type: "unavailable", to: NONE })), c);
  const [room, out2] = reduce(fewer, stanzaEvent(presence({ to: "late@example.com/x" })), c);
  assert.deepEqual(out2.map((o) => o.kind), ["route"]);
  assert.deepEqual(room.directed, new Set([STRANGER, "late@example.com/x"]));
});

Deno.test("presence: directed unavailable is routed and forgets the recipient", () => {
  const s = available({ directed: new Set([STRANGER, NONE]) });
  const [next, out] = reduce(
    s,
    stanzaEvent(presence({ type: "unavailable", to: STRANGER })),
    ctx(),
  );
  assert.deepEqual(show(out), [{
    kind: "route",
    xml: `<presence type="unavailable" to="${STRANGER}" from="${ME}"/>`,
  }]);
  // The broadcast state is untouched: only the directed list changes.
  assert.deepEqual(record(next), record({ ...s, directed: new Set([NONE]) }));
});

for (const type of ["subscribe", "subscribed", "unsubscribe", "unsubscribed"]) {
  Deno.test(`presence: ${type} goes to the account with bare from and to`, () => {
    const s = available();
    const [next, out] = reduce(
      s,
      stanzaEvent(presence({ type, to: "Romeo@Example.com/Orchard" })),
      ctx(),
    );
    assert.deepEqual(show(out), [{
      kind: "account",
      bare: BARE,
      op: {
        kind: "outbound-subscription",
        stanza: stanza("presence", { type, to: "romeo@example.com", from: BARE }),
      },
    }]);
    assert.equal(next, s);
  });
}

Deno.test("presence: a client's probe goes to the contact's account, from the full JID", () => {
  const s = available();
  const [next, out] = reduce(s, stanzaEvent(presence({ type: "probe", to: TO })), ctx());
  assert.deepEqual(show(out), [
    { kind: "route", xml: `<presence type="probe" to="${TO}" from="${ME}"/>` },
  ]);
  assert.equal(next, s);
});

Deno.test("presence: destroying an available session says goodbye to each recipient once", () => {
  const s = available({ directed: new Set([STRANGER, FROM]) });
  const [next, out] = reduce(s, { kind: "disconnected", reason: "eof" }, ctx());
  const u = (to: string) => `<presence type="unavailable" from="${ME}" to="${to}"/>`;
  assert.deepEqual(show(out), [
    { kind: "route", xml: u(FROM) },
    { kind: "route", xml: u(BOTH) },
    { kind: "route", xml: u(OTHER) },
    { kind: "route", xml: u(STRANGER) },
    { kind: "account", bare: BARE, op: { kind: "logout" } },
    { kind: "unbind", fullJid: ME },
    { kind: "disconnect", error: undefined },
  ]);
  assert.equal(next.destroyed, true);
  assert.deepEqual(next.directed, new Set());
  assert.equal(next.presence, undefined);
});

Deno.test("presence: destroying a session that only sent directed presence tells only those", () => {
  const s = session({ directed: new Set([STRANGER]) });
  const [, out] = reduce(s, { kind: "disconnected", reason: "eof" }, ctx());
  assert.deepEqual(show(out), [
    { kind: "route", xml: `<presence type="unavailable" from="${ME}" to="${STRANGER}"/>` },
    { kind: "unbind", fullJid: ME },
    { kind: "disconnect", error: undefined },
  ]);
});
