import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import {
  type AccountCtx,
  type AccountOp,
  type AccountOutput,
  type AccountState,
  reduceAccount,
} from "../../lib/reducers/account.ts";
import { serializeTop } from "../../lib/reducers/stream_xml.ts";
import type { ResourceView } from "../../lib/reducers/types.ts";
import { EMPTY_ROSTER, type Roster, type RosterItem } from "../../lib/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { NOW } from "./_ctx.ts";

const NS_ROSTER = "jabber:iq:roster";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const JULIET = "juliet@example.com";
const BALCONY = `${JULIET}/balcony`;
const CHAMBER = `${JULIET}/chamber`;
const TOMB = `${JULIET}/tomb`;
const ROMEO = "romeo@example.com";
const ORCHARD = `${ROMEO}/orchard`;
const NURSE = "nurse@example.com";
/** XEP-0082 form of the fixed clock NOW (1 700 000 000 000 ms after the epoch). */
const STAMP = "2023-11-14T22:13:20Z";

/** Juliet's presence as each available resource last broadcast it. */
const BALCONY_PRESENCE = stanza("presence", { from: BALCONY, id: "p1" }, [
  elem("show", {}, ["away"]),
]);
const CHAMBER_PRESENCE = stanza("presence", { from: CHAMBER });

/**
 * Juliet's live resources: balcony is available and interested, chamber available but never
 * fetched the roster, tomb fetched the roster but sent no presence.
 */
const JULIET_RESOURCES: readonly ResourceView[] = [
  {
    fullJid: BALCONY,
    resource: "balcony",
    priority: 1,
    available: true,
    interested: true,
    presence: BALCONY_PRESENCE,
  },
  {
    fullJid: CHAMBER,
    resource: "chamber",
    priority: 0,
    available: true,
    interested: false,
    presence: CHAMBER_PRESENCE,
  },
  { fullJid: TOMB, resource: "tomb", priority: 0, available: false, interested: true },
];

/** A fixed AccountCtx: clock NOW, ids id1, id2 ..., Juliet online as above unless told. */
function ctx(
  over: { readonly online?: readonly ResourceView[]; readonly offlineLimit?: number } = {},
): AccountCtx {
  let ids = 0;
  const online = over.online ?? JULIET_RESOURCES;
  return {
    now: () => NOW,
    newId: () => `id${++ids}`,
    resourcesOf: (bare) => bare === JULIET ? online : [],
    limits: { ...DEFAULT_LIMITS, offlineMessages: over.offlineLimit ?? 2 },
    archive: { enabled: false, policy: "roster" },
    random: () => "rnd",
  };
}

function item(jid: string, over: Partial<RosterItem> = {}): RosterItem {
  return { jid, subscription: "none", groups: [], ...over };
}

function rosterOf(
  items: readonly RosterItem[],
  pendingIn: readonly string[] = [],
  version = "4",
): Roster {
  return {
    version,
    items: Object.fromEntries(items.map((i) => [i.jid, i])),
    pendingIn: Object.fromEntries(pendingIn.map((j) => [j, true as const])),
  };
}

function account(over: Partial<AccountState> = {}): AccountState {
  return {
    bare: JULIET,
    exists: true,
    roster: EMPTY_ROSTER,
    offline: [],
    lastArchived: 0,
    modules: {},
    ...over,
  };
}

/** Outputs with stanzas serialized, so expectations read as XML. */
function shown(out: readonly AccountOutput[]): unknown[] {
  return out.map((o) => {
    switch (o.kind) {
      case "deliver":
        return { kind: o.kind, to: o.to, xml: serializeTop(o.stanza) };
      case "route":
        return { kind: o.kind, xml: serializeTop(o.stanza) };
      case "store-offline":
        return { kind: o.kind, xml: o.messages.map(serializeTop) };
      default:
        return o;
    }
  });
}

function reduce(s: AccountState, op: AccountOp, c: AccountCtx = ctx()) {
  const [next, out] = reduceAccount(s, op, c);
  return { next, out: shown(out) };
}

function rosterIq(type: "get" | "set", query: Element, from = BALCONY): Element {
  return stanza("iq", { type, id: "r1", from }, [query]);
}

function query(attrs: Readonly<Record<string, string>> = {}, items: readonly Element[] = []) {
  return elem("query", { xmlns: NS_ROSTER, ...attrs }, items);
}

function presence(type: string, from: string, to: string): Element {
  return stanza("presence", { type, from, to });
}

const RESULT_TO_BALCONY = `<iq type="result" id="r1" to="${BALCONY}"/>`;

// ---------------------------------------------------------------------------------------------
// Binding and roster get (RFC 6121 §2.1.3, XEP-0237).

Deno.test("account: session-bound sends the block list and the roster to that session", () => {
  const roster = rosterOf([item(ROMEO, { subscription: "both" })]);
  const s = account({ roster });
  const { next, out } = reduce(s, { kind: "session-bound", fullJid: CHAMBER });
  assert.deepEqual(out, [
    { kind: "blocklist", to: CHAMBER, blocklist: [] },
    { kind: "send-roster", to: CHAMBER, roster },
  ]);
  assert.equal(next, s);
});

Deno.test("account: roster get returns every item with the version", () => {
  const s = account({
    roster: rosterOf([item(ROMEO, { name: "Romeo", subscription: "both", groups: ["Friends"] })]),
  });
  const { next, out } = reduce(s, { kind: "roster-get", iq: rosterIq("get", query()) });
  assert.deepEqual(out, [{
    kind: "deliver",
    to: BALCONY,
    xml: `<iq type="result" id="r1" to="${BALCONY}"><query xmlns="${NS_ROSTER}" ver="4">` +
      `<item jid="${ROMEO}" name="Romeo" subscription="both"><group>Friends</group></item>` +
      `</query></iq>`,
  }]);
  assert.equal(next, s);
});

Deno.test("account: roster get with a stale ver returns the whole roster", () => {
  const s = account({ roster: rosterOf([item(ROMEO)]) });
  const { out } = reduce(s, { kind: "roster-get", iq: rosterIq("get", query({ ver: "3" })) });
  assert.deepEqual(out, [{
    kind: "deliver",
    to: BALCONY,
    xml: `<iq type="result" id="r1" to="${BALCONY}"><query xmlns="${NS_ROSTER}" ver="4">` +
      `<item jid="${ROMEO}" subscription="none"/></query></iq>`,
  }]);
});

Deno.test("account: roster get with the current ver is an empty result (XEP-0237)", () => {
  const s = account({ roster: rosterOf([item(ROMEO)]) });
  const { next, out } = reduce(s, { kind: "roster-get", iq: rosterIq("get", query({ ver: "4" })) });
  assert.deepEqual(out, [{ kind: "deliver", to: BALCONY, xml: RESULT_TO_BALCONY }]);
  assert.equal(next, s);
});

// ---------------------------------------------------------------------------------------------
// Roster set (RFC 6121 §2.3, §2.5).

Deno.test("account: roster set update stores, then answers, then pushes to interested", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { subscription: "both" })]) });
  const iq = rosterIq("set", query({}, [elem("item", { jid: NURSE, name: "Nurse" })]));
  const [next, out] = reduceAccount(s, {
    kind: "roster-set",
    iq,
    change: { kind: "update", jid: NURSE, name: "Nurse", groups: ["Staff"] },
  }, ctx());
  const nurse: RosterItem = { jid: NURSE, subscription: "none", groups: ["Staff"], name: "Nurse" };
  const roster = rosterOf([item(ROMEO, { subscription: "both" }), nurse], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const push = (to: string, id: string) =>
    `<iq type="set" id="${id}" to="${to}"><query xmlns="${NS_ROSTER}" ver="5">` +
    `<item jid="${NURSE}" name="Nurse" subscription="none"><group>Staff</group></item>` +
    `</query></iq>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    // The result first: the client waits for the answer to what it sent.
    { kind: "deliver", to: BALCONY, xml: RESULT_TO_BALCONY },
    { kind: "deliver", to: BALCONY, xml: push(BALCONY, "id1") },
    { kind: "deliver", to: TOMB, xml: push(TOMB, "id2") },
  ]);
});

Deno.test("account: roster set update keeps the subscription state of an existing item", () => {
  const romeo = item(ROMEO, { subscription: "to", ask: undefined, approved: true });
  const s = account({ roster: rosterOf([romeo]) });
  const [next] = reduceAccount(s, {
    kind: "roster-set",
    iq: rosterIq("set", query()),
    change: { kind: "update", jid: ROMEO, groups: [] },
  }, ctx());
  assert.equal(next.roster.items[ROMEO].subscription, "to");
  assert.equal(next.roster.items[ROMEO].approved, true);
  assert.equal(next.roster.version, "5");
});

Deno.test("account: roster remove of a missing item -> item-not-found, nothing changes", () => {
  const s = account({ roster: rosterOf([item(ROMEO)]) });
  const { next, out } = reduce(s, {
    kind: "roster-set",
    iq: rosterIq("set", query()),
    change: { kind: "remove", jid: NURSE },
  });
  assert.deepEqual(out, [{
    kind: "deliver",
    to: BALCONY,
    xml: `<iq type="error" id="r1" to="${BALCONY}">` +
      `<error type="cancel"><item-not-found xmlns="${STANZAS}"/></error></iq>`,
  }]);
  assert.equal(next, s);
});

const REMOVALS: readonly {
  readonly name: string;
  readonly item: RosterItem;
  /** What is routed after the pushes (RFC 6121 §2.5.2). */
  readonly routed: readonly string[];
}[] = [
  {
    name: "both: unsubscribe, unsubscribed, unavailable from each available resource",
    item: item(ROMEO, { subscription: "both" }),
    routed: [
      `<presence type="unsubscribe" from="${JULIET}" to="${ROMEO}"/>`,
      `<presence type="unsubscribed" from="${JULIET}" to="${ROMEO}"/>`,
      `<presence type="unavailable" from="${BALCONY}" to="${ROMEO}"/>`,
      `<presence type="unavailable" from="${CHAMBER}" to="${ROMEO}"/>`,
    ],
  },
  {
    name: "from: unsubscribed and unavailable",
    item: item(ROMEO, { subscription: "from" }),
    routed: [
      `<presence type="unsubscribed" from="${JULIET}" to="${ROMEO}"/>`,
      `<presence type="unavailable" from="${BALCONY}" to="${ROMEO}"/>`,
      `<presence type="unavailable" from="${CHAMBER}" to="${ROMEO}"/>`,
    ],
  },
  {
    name: "to: unsubscribe only",
    item: item(ROMEO, { subscription: "to" }),
    routed: [`<presence type="unsubscribe" from="${JULIET}" to="${ROMEO}"/>`],
  },
  {
    name: "none with a pending request of the user: unsubscribe cancels it",
    item: item(ROMEO, { ask: "subscribe" }),
    routed: [`<presence type="unsubscribe" from="${JULIET}" to="${ROMEO}"/>`],
  },
  {
    name: "none: nothing routed",
    item: item(ROMEO),
    routed: [],
  },
];

Deno.test("account: roster remove with a pending request from the contact declines it", () => {
  const s = account({ roster: rosterOf([item(ROMEO), item(NURSE)], [ROMEO]) });
  const [next, out] = reduceAccount(s, {
    kind: "roster-set",
    iq: rosterIq("set", query()),
    change: { kind: "remove", jid: ROMEO },
  }, ctx());
  assert.deepEqual(next.roster.pendingIn, {});
  const routed = shown(out).filter((o) => (o as { kind: string }).kind === "route");
  // Declined, so the contact's side does not stay pending; no presence was shared, so no goodbye.
  assert.deepEqual(routed, [{
    kind: "route",
    xml: `<presence type="unsubscribed" from="${JULIET}" to="${ROMEO}"/>`,
  }]);
});

for (const c of REMOVALS) {
  Deno.test(`account: roster remove, ${c.name}`, () => {
    const s = account({ roster: rosterOf([c.item, item(NURSE)]) });
    const [next, out] = reduceAccount(s, {
      kind: "roster-set",
      iq: rosterIq("set", query()),
      change: { kind: "remove", jid: ROMEO },
    }, ctx());
    const roster = rosterOf([item(NURSE)], [], "5");
    assert.deepEqual(next, { ...s, roster });
    const push = (to: string, id: string) =>
      `<iq type="set" id="${id}" to="${to}"><query xmlns="${NS_ROSTER}" ver="5">` +
      `<item jid="${ROMEO}" subscription="remove"/></query></iq>`;
    assert.deepEqual(shown(out), [
      { kind: "store-roster", roster },
      { kind: "roster-changed", roster },
      { kind: "deliver", to: BALCONY, xml: RESULT_TO_BALCONY },
      { kind: "deliver", to: BALCONY, xml: push(BALCONY, "id1") },
      { kind: "deliver", to: TOMB, xml: push(TOMB, "id2") },
      ...c.routed.map((xml) => ({ kind: "route", xml })),
    ]);
  });
}

// ---------------------------------------------------------------------------------------------
// Outbound subscription stanzas (RFC 6121 §3.1.2, §3.1.5, §3.4).

function outbound(type: string, to = ROMEO): AccountOp {
  return { kind: "outbound-subscription", stanza: presence(type, JULIET, to) };
}

function pushOf(to: string, id: string, ver: string, itemXml: string): unknown {
  return {
    kind: "deliver",
    to,
    xml: `<iq type="set" id="${id}" to="${to}"><query xmlns="${NS_ROSTER}" ver="${ver}">` +
      `${itemXml}</query></iq>`,
  };
}

Deno.test("account: outbound subscribe creates the item with ask, pushes, routes from bare", () => {
  const s = account({ roster: rosterOf([]) });
  const [next, out] = reduceAccount(s, outbound("subscribe"), ctx());
  const roster = rosterOf([item(ROMEO, { ask: "subscribe" })], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const itemXml = `<item jid="${ROMEO}" subscription="none" ask="subscribe"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    pushOf(BALCONY, "id1", "5", itemXml),
    pushOf(TOMB, "id2", "5", itemXml),
    { kind: "route", xml: `<presence type="subscribe" from="${JULIET}" to="${ROMEO}"/>` },
  ]);
});

Deno.test("account: outbound subscribe repeated in None + Pending Out is routed, nothing stored", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { ask: "subscribe" })]) });
  const { next, out } = reduce(s, outbound("subscribe"));
  assert.deepEqual(out, [{
    kind: "route",
    xml: `<presence type="subscribe" from="${JULIET}" to="${ROMEO}"/>`,
  }]);
  assert.deepEqual(next, s);
});

Deno.test("account: outbound subscribed answering a request: item from, routed", () => {
  const s = account({ roster: rosterOf([], [ROMEO]) });
  const [next, out] = reduceAccount(s, outbound("subscribed"), ctx());
  const roster = rosterOf([item(ROMEO, { subscription: "from" })], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const itemXml = `<item jid="${ROMEO}" subscription="from"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    pushOf(BALCONY, "id1", "5", itemXml),
    pushOf(TOMB, "id2", "5", itemXml),
    // RFC 6121 §3.1.5: the new subscriber's account probes for the presence once it has
    // handled this (see "inbound subscribed"), so the presence cannot overtake it.
    { kind: "route", xml: `<presence type="subscribed" from="${JULIET}" to="${ROMEO}"/>` },
  ]);
});

Deno.test("account: outbound subscribed in To + Pending In: both, routed, then a probe", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { subscription: "to" })], [ROMEO]) });
  const [next, out] = reduceAccount(s, outbound("subscribed"), ctx());
  const roster = rosterOf([item(ROMEO, { subscription: "both" })], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const itemXml = `<item jid="${ROMEO}" subscription="both"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    pushOf(BALCONY, "id1", "5", itemXml),
    pushOf(TOMB, "id2", "5", itemXml),
    { kind: "route", xml: `<presence type="subscribed" from="${JULIET}" to="${ROMEO}"/>` },
    { kind: "route", xml: `<presence type="probe" from="${JULIET}" to="${ROMEO}"/>` },
  ]);
});

Deno.test("account: outbound subscribed with no request is a pre-approval, not routed", () => {
  const s = account({ roster: rosterOf([]) });
  const [next, out] = reduceAccount(s, outbound("subscribed"), ctx());
  const roster = rosterOf([item(ROMEO, { approved: true })], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const itemXml = `<item jid="${ROMEO}" subscription="none" approved="true"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    pushOf(BALCONY, "id1", "5", itemXml),
    pushOf(TOMB, "id2", "5", itemXml),
  ]);
});

Deno.test("account: outbound unsubscribed to a subscriber: none, routed, unavailable sent", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { subscription: "from" })]) });
  const [next, out] = reduceAccount(s, outbound("unsubscribed"), ctx());
  const roster = rosterOf([item(ROMEO)], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const itemXml = `<item jid="${ROMEO}" subscription="none"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    pushOf(BALCONY, "id1", "5", itemXml),
    pushOf(TOMB, "id2", "5", itemXml),
    { kind: "route", xml: `<presence type="unsubscribed" from="${JULIET}" to="${ROMEO}"/>` },
    { kind: "route", xml: `<presence type="unavailable" from="${BALCONY}" to="${ROMEO}"/>` },
    { kind: "route", xml: `<presence type="unavailable" from="${CHAMBER}" to="${ROMEO}"/>` },
  ]);
});

Deno.test("account: an outbound presence of another type changes nothing", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { subscription: "both" })]) });
  const { next, out } = reduce(s, outbound("probe"));
  assert.deepEqual(out, []);
  assert.equal(next, s);
});

// ---------------------------------------------------------------------------------------------
// Inbound subscription stanzas (RFC 6121 §3.1.3, §3.1.6, §3.2.3, §3.3.3).

function inbound(type: string, from = ORCHARD): AccountOp {
  return { kind: "inbound-subscription", stanza: presence(type, from, JULIET) };
}

Deno.test("account: inbound subscribe is stored, delivered to available, acknowledged", () => {
  const s = account({ roster: rosterOf([]) });
  const [next, out] = reduceAccount(s, inbound("subscribe"), ctx());
  // A pending request is not a roster item (no push), but it is saved with the roster, whose
  // version moves as Prosody's does.
  const roster = rosterOf([], [ROMEO], "5");
  assert.deepEqual(next, { ...s, roster });
  const request = `<presence type="subscribe" from="${ROMEO}" to="${JULIET}"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    { kind: "deliver", to: BALCONY, xml: request },
    { kind: "deliver", to: CHAMBER, xml: request },
    { kind: "route", xml: `<presence type="unavailable" from="${JULIET}" to="${ROMEO}"/>` },
  ]);
});

Deno.test("account: inbound subscribe repeated while pending is neither delivered nor stored", () => {
  const s = account({ roster: rosterOf([], [ROMEO]) });
  const { next, out } = reduce(s, inbound("subscribe"));
  assert.deepEqual(out, []);
  assert.deepEqual(next, s);
});

Deno.test("account: inbound subscribe from a subscriber is answered subscribed + presence", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { subscription: "from" })]) });
  const { next, out } = reduce(s, inbound("subscribe"));
  assert.deepEqual(out, [
    { kind: "route", xml: `<presence type="subscribed" from="${JULIET}" to="${ROMEO}"/>` },
    {
      kind: "route",
      xml: `<presence from="${BALCONY}" to="${ROMEO}"><show>away</show></presence>`,
    },
    { kind: "route", xml: `<presence from="${CHAMBER}" to="${ROMEO}"/>` },
  ]);
  assert.deepEqual(next, s);
});

Deno.test("account: inbound subscribe after a pre-approval is approved without delivery", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { approved: true })]) });
  const [next, out] = reduceAccount(s, inbound("subscribe"), ctx());
  const roster = rosterOf([item(ROMEO, { subscription: "from" })], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const itemXml = `<item jid="${ROMEO}" subscription="from"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    pushOf(BALCONY, "id1", "5", itemXml),
    pushOf(TOMB, "id2", "5", itemXml),
    { kind: "route", xml: `<presence type="subscribed" from="${JULIET}" to="${ROMEO}"/>` },
    {
      kind: "route",
      xml: `<presence from="${BALCONY}" to="${ROMEO}"><show>away</show></presence>`,
    },
    { kind: "route", xml: `<presence from="${CHAMBER}" to="${ROMEO}"/>` },
  ]);
});

Deno.test("account: inbound subscribed answering the user's request: to, pushed, delivered", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { ask: "subscribe" })]) });
  const [next, out] = reduceAccount(s, inbound("subscribed"), ctx());
  const roster = rosterOf([item(ROMEO, { subscription: "to" })], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const itemXml = `<item jid="${ROMEO}" subscription="to"/>`;
  const approval = `<presence type="subscribed" from="${ROMEO}" to="${JULIET}"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    // The presence first, then the push (Prosody's order), then a probe for the presence.
    { kind: "deliver", to: BALCONY, xml: approval },
    { kind: "deliver", to: CHAMBER, xml: approval },
    pushOf(BALCONY, "id1", "5", itemXml),
    pushOf(TOMB, "id2", "5", itemXml),
    { kind: "route", xml: `<presence type="probe" from="${JULIET}" to="${ROMEO}"/>` },
  ]);
});

Deno.test("account: an unsolicited inbound subscribed is dropped", () => {
  const s = account({ roster: rosterOf([]) });
  const { next, out } = reduce(s, inbound("subscribed"));
  assert.deepEqual(out, []);
  assert.deepEqual(next, s);
});

Deno.test("account: inbound unsubscribe from a subscriber: none, delivered, unavailable sent", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { subscription: "both" })]) });
  const [next, out] = reduceAccount(s, inbound("unsubscribe"), ctx());
  const roster = rosterOf([item(ROMEO, { subscription: "to" })], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const itemXml = `<item jid="${ROMEO}" subscription="to"/>`;
  const stanzaXml = `<presence type="unsubscribe" from="${ROMEO}" to="${JULIET}"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    { kind: "deliver", to: BALCONY, xml: stanzaXml },
    { kind: "deliver", to: CHAMBER, xml: stanzaXml },
    pushOf(BALCONY, "id1", "5", itemXml),
    pushOf(TOMB, "id2", "5", itemXml),
    { kind: "route", xml: `<presence type="unavailable" from="${BALCONY}" to="${ROMEO}"/>` },
    { kind: "route", xml: `<presence type="unavailable" from="${CHAMBER}" to="${ROMEO}"/>` },
  ]);
});

Deno.test("account: inbound unsubscribe withdrawing a request reveals no resource", () => {
  // The contact never saw the user's presence: no unavailable from the user's full JIDs.
  const s = account({ roster: rosterOf([], [ROMEO]) });
  const [next, out] = reduceAccount(s, inbound("unsubscribe"), ctx());
  const roster = rosterOf([], [], "5");
  assert.deepEqual(next, { ...s, roster });
  const stanzaXml = `<presence type="unsubscribe" from="${ROMEO}" to="${JULIET}"/>`;
  assert.deepEqual(shown(out), [
    { kind: "store-roster", roster },
    { kind: "roster-changed", roster },
    { kind: "deliver", to: BALCONY, xml: stanzaXml },
    { kind: "deliver", to: CHAMBER, xml: stanzaXml },
  ]);
});

Deno.test("account: inbound subscription stanzas for a non-existent account are dropped", () => {
  for (const type of ["subscribe", "subscribed", "unsubscribe", "unsubscribed"]) {
    const s = account({ exists: false, roster: rosterOf([item(ROMEO, { ask: "subscribe" })]) });
    const { next, out } = reduce(s, inbound(type));
    assert.deepEqual(out, [], type);
    assert.equal(next, s, type);
  }
});

// ---------------------------------------------------------------------------------------------
// Probes (RFC 6121 §4.3.2).

const PROBES: readonly {
  readonly name: string;
  readonly from: string;
  readonly roster: Roster;
  readonly exists?: boolean;
  readonly answered: boolean;
}[] = [
  {
    name: "from a contact with from",
    from: ORCHARD,
    roster: rosterOf([item(ROMEO, { subscription: "from" })]),
    answered: true,
  },
  {
    name: "from a contact with both",
    from: ORCHARD,
    roster: rosterOf([item(ROMEO, { subscription: "both" })]),
    answered: true,
  },
  {
    name: "from the user's own JID",
    from: `${JULIET}/other`,
    roster: rosterOf([]),
    answered: true,
  },
  {
    name: "from a contact with to",
    from: ORCHARD,
    roster: rosterOf([item(ROMEO, { subscription: "to" })]),
    answered: false,
  },
  {
    name: "from a contact with none and a request pending",
    from: ORCHARD,
    roster: rosterOf([item(ROMEO)], [ROMEO]),
    answered: false,
  },
  { name: "from a stranger", from: ORCHARD, roster: rosterOf([]), answered: false },
  {
    name: "for a non-existent account",
    from: ORCHARD,
    roster: rosterOf([item(ROMEO, { subscription: "both" })]),
    exists: false,
    answered: false,
  },
];

for (const c of PROBES) {
  Deno.test(`account: probe ${c.name} -> ${c.answered ? "presence of each resource" : "nothing"}`, () => {
    const s = account({ roster: c.roster, exists: c.exists ?? true });
    const { next, out } = reduce(s, {
      kind: "probe",
      stanza: presence("probe", c.from, JULIET),
    });
    // The answer goes to the full JID that probed, from each available resource.
    const expected = c.answered
      ? [
        {
          kind: "route",
          xml: `<presence from="${BALCONY}" to="${c.from}"><show>away</show></presence>`,
        },
        { kind: "route", xml: `<presence from="${CHAMBER}" to="${c.from}"/>` },
      ]
      : [];
    assert.deepEqual(out, expected);
    assert.equal(next, s);
  });
}

// ---------------------------------------------------------------------------------------------
// Offline messages (RFC 6121 §8.5.2.2, XEP-0160, XEP-0203).

function message(type?: string, id = "m1"): Element {
  return stanza("message", { from: ORCHARD, to: JULIET, id, type }, [elem("body", {}, ["hi"])]);
}

function delayed(type: string | undefined, id: string): string {
  const t = type === undefined ? "" : ` type="${type}"`;
  return `<message from="${ORCHARD}" to="${JULIET}" id="${id}"${t}><body>hi</body>` +
    `<delay xmlns="urn:xmpp:delay" from="example.com" stamp="${STAMP}"/></message>`;
}

for (const type of ["chat", "normal", undefined]) {
  Deno.test(`account: offline message of type ${type} is stored with a delay stamp`, () => {
    const s = account();
    const [next, out] = reduceAccount(s, { kind: "offline-message", stanza: message(type) }, ctx());
    assert.deepEqual(shown(out), [{ kind: "store-offline", xml: [delayed(type, "m1")] }]);
    assert.deepEqual(next.offline.map(serializeTop), [delayed(type, "m1")]);
  });
}

Deno.test("account: offline messages are appended in order, up to the cap", () => {
  const first = reduceAccount(
    account(),
    { kind: "offline-message", stanza: message("chat") },
    ctx(),
  );
  const second = reduceAccount(
    first[0],
    { kind: "offline-message", stanza: message("chat", "m2") },
    ctx(),
  );
  assert.deepEqual(shown(second[1]), [{
    kind: "store-offline",
    xml: [delayed("chat", "m1"), delayed("chat", "m2")],
  }]);
  // The cap (2 in this ctx) is reached: the next one bounces and nothing is stored.
  const { next, out } = reduce(second[0], {
    kind: "offline-message",
    stanza: message("chat", "m3"),
  });
  assert.deepEqual(out, [{
    kind: "route",
    xml: `<message type="error" id="m3" from="${JULIET}" to="${ORCHARD}">` +
      `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/>` +
      `<text xmlns="${STANZAS}" xml:lang="en">Offline storage is full</text></error></message>`,
  }]);
  assert.equal(next, second[0]);
});

Deno.test("account: a message for a non-existent account bounces service-unavailable", () => {
  const s = account({ exists: false });
  const { next, out } = reduce(s, { kind: "offline-message", stanza: message("chat") });
  assert.deepEqual(out, [{
    kind: "route",
    xml: `<message type="error" id="m1" from="${JULIET}" to="${ORCHARD}">` +
      `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/></error></message>`,
  }]);
  assert.equal(next, s);
});

Deno.test("account: an error message for a non-existent account is not bounced", () => {
  const s = account({ exists: false });
  const { next, out } = reduce(s, { kind: "offline-message", stanza: message("error") });
  assert.deepEqual(out, []);
  assert.equal(next, s);
});

Deno.test("account: offline headline and error messages are dropped", () => {
  for (const type of ["headline", "error"]) {
    const s = account();
    const { next, out } = reduce(s, { kind: "offline-message", stanza: message(type) });
    assert.deepEqual(out, [], type);
    assert.equal(next, s, type);
  }
});

Deno.test("account: an offline groupchat message bounces service-unavailable", () => {
  const s = account();
  const { next, out } = reduce(s, { kind: "offline-message", stanza: message("groupchat") });
  assert.deepEqual(out, [{
    kind: "route",
    xml: `<message type="error" id="m1" from="${JULIET}" to="${ORCHARD}">` +
      `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/></error></message>`,
  }]);
  assert.equal(next, s);
});

// ---------------------------------------------------------------------------------------------
// Initial presence (RFC 6121 §3.1.3, §4.2; XEP-0160).

const STORED = [message("chat", "m1"), message(undefined, "m2")];

Deno.test("account: initial presence delivers pending requests, then offline messages, then clears", () => {
  const s = account({ roster: rosterOf([], [ROMEO, NURSE]), offline: STORED });
  const [next, out] = reduceAccount(
    s,
    { kind: "initial-presence", fullJid: CHAMBER, priority: 0 },
    ctx(),
  );
  assert.deepEqual(shown(out), [
    {
      kind: "deliver",
      to: CHAMBER,
      xml: `<presence type="subscribe" from="${ROMEO}" to="${JULIET}"/>`,
    },
    {
      kind: "deliver",
      to: CHAMBER,
      xml: `<presence type="subscribe" from="${NURSE}" to="${JULIET}"/>`,
    },
    { kind: "deliver", to: CHAMBER, xml: serializeTop(STORED[0]) },
    { kind: "deliver", to: CHAMBER, xml: serializeTop(STORED[1]) },
    // Cleared only after delivery: a crash in between repeats messages, never loses them.
    { kind: "store-offline", xml: [] },
  ]);
  // Pending requests stay until answered; the offline store is empty.
  assert.deepEqual(next, { ...s, offline: [] });
});

Deno.test("account: initial presence with negative priority gets requests, not messages", () => {
  const s = account({ roster: rosterOf([], [ROMEO]), offline: STORED });
  const { next, out } = reduce(s, { kind: "initial-presence", fullJid: CHAMBER, priority: -1 });
  assert.deepEqual(out, [{
    kind: "deliver",
    to: CHAMBER,
    xml: `<presence type="subscribe" from="${ROMEO}" to="${JULIET}"/>`,
  }]);
  assert.equal(next, s);
});

Deno.test("account: initial presence with nothing waiting does nothing", () => {
  const s = account({ roster: rosterOf([item(ROMEO, { subscription: "both" })]) });
  const { next, out } = reduce(s, { kind: "initial-presence", fullJid: CHAMBER, priority: 5 });
  assert.deepEqual(out, []);
  assert.equal(next, s);
});
