import { DEFAULT_LIMITS, type Limits } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import { reduceAccount } from "../../lib/account/account.ts";
import {
  type AccountCtx,
  type AccountOp,
  type AccountOutput,
  type AccountState,
  NO_OFFLINE,
  offlineSize,
} from "../../lib/core/types.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import {
  itemBytes,
  MAX_REQUEST_PAYLOAD_BYTES,
  pendingBytes,
  pendingRequest,
  pendingRequestOf,
  rosterItem,
  rosterUsage,
} from "../../lib/core/roster.ts";
import type { ResourceView } from "../../lib/core/types.ts";
import { EMPTY_ROSTER, type Roster, type RosterItem } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { bareJidOf } from "../../lib/xmpp/jid.ts";
import { NOW } from "../_ctx.ts";
import { NS_ROSTER } from "../../lib/xmpp/namespaces.ts";

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
    offline: NO_OFFLINE,
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
        return o.action === "append"
          ? { kind: o.kind, action: o.action, xml: serializeTop(o.message) }
          : o;
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
    assert.deepEqual(shown(out), [{
      kind: "store-offline",
      action: "append",
      xml: delayed(type, "m1"),
    }]);
    // Only the tally stays with the account: one message, its stored size.
    const stored = (out[0] as { readonly message: Element }).message;
    assert.deepEqual(next.offline, { count: 1, bytes: offlineSize(stored) });
  });
}

const FULL_TEXT = `<text xmlns="${STANZAS}" xml:lang="en">Offline storage is full</text>`;

Deno.test("account: offline messages are appended one at a time, up to the count cap", () => {
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
  // Each store appends the new message alone: nothing already stored is written again.
  assert.deepEqual(shown(second[1]), [{
    kind: "store-offline",
    action: "append",
    xml: delayed("chat", "m2"),
  }]);
  assert.equal(second[0].offline.count, 2);
  // The cap (2 in this ctx) is reached: the next one bounces and nothing is stored.
  const { next, out } = reduce(second[0], {
    kind: "offline-message",
    stanza: message("chat", "m3"),
  });
  assert.deepEqual(out, [{
    kind: "route",
    xml: `<message type="error" id="m3" from="${JULIET}" to="${ORCHARD}">` +
      `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/>${FULL_TEXT}</error></message>`,
  }]);
  assert.equal(next, second[0]);
});

Deno.test("account: an offline message past limits.offlineBytes bounces service-unavailable", () => {
  // Every message below has the same size once stamped (ids m1, m2, m3).
  const one =
    reduceAccount(account(), { kind: "offline-message", stanza: message("chat") }, ctx())[0]
      .offline.bytes;
  // Room for two messages of this size, not three; the count cap is far away.
  const c: AccountCtx = {
    ...ctx(),
    limits: { ...DEFAULT_LIMITS, offlineMessages: 100, offlineBytes: 2 * one + one - 1 },
  };
  let s = account();
  for (const id of ["m1", "m2"]) {
    const [next, out] = reduceAccount(
      s,
      { kind: "offline-message", stanza: message("chat", id) },
      c,
    );
    assert.equal(out.length, 1);
    assert.equal(out[0].kind, "store-offline");
    s = next;
  }
  assert.deepEqual(s.offline, { count: 2, bytes: 2 * one });
  const { next, out } = reduce(s, { kind: "offline-message", stanza: message("chat", "m3") }, c);
  assert.deepEqual(out, [{
    kind: "route",
    xml: `<message type="error" id="m3" from="${JULIET}" to="${ORCHARD}">` +
      `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/>${FULL_TEXT}</error></message>`,
  }]);
  assert.equal(next, s);
  // The tally loaded with the account counts: a store already over the cap refuses at once.
  const loaded = account({ offline: { count: 0, bytes: 3 * one } });
  const refused = reduce(loaded, { kind: "offline-message", stanza: message("chat") }, c);
  assert.equal(refused.out.length, 1);
  assert.equal((refused.out[0] as { kind: string }).kind, "route");
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

const STORED = { count: 2, bytes: 600 };

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
    // The shell reads the stored messages, delivers them and only then deletes them: a crash
    // in between repeats messages, never loses them.
    { kind: "store-offline", action: "deliver", to: CHAMBER },
  ]);
  // Pending requests stay until answered; the offline store is empty.
  assert.deepEqual(next, { ...s, offline: NO_OFFLINE });
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

// ---------------------------------------------------------------------------------------------
// Peer-supplied keys that are Object.prototype's names (issue 9): every lookup is an own one.

/** Contact JIDs that are also names of Object.prototype's members. */
const PROTO_NAMES = ["constructor", "__proto__", "toString", "hasOwnProperty"] as const;

function limitedCtx(limits: Partial<Limits>): AccountCtx {
  const c = ctx();
  return { ...c, limits: { ...c.limits, ...limits } };
}

Deno.test("account: roster set, subscribe and remove work for prototype-named contacts", () => {
  for (const jid of PROTO_NAMES) {
    const s = account({ roster: rosterOf([]) });
    const set = reduce(s, {
      kind: "roster-set",
      iq: rosterIq("set", query({}, [elem("item", { jid })])),
      change: { kind: "update", jid, groups: [] },
    });
    assert.deepEqual(set.out.slice(2, 3), [{
      kind: "deliver",
      to: BALCONY,
      xml: RESULT_TO_BALCONY,
    }]);
    assert.deepEqual(Object.keys(set.next.roster.items), [jid], jid);
    assert.deepEqual(rosterItem(set.next.roster, jid), item(jid));

    const [sub, subOut] = reduceAccount(s, outbound("subscribe", jid), ctx());
    assert.deepEqual(rosterItem(sub.roster, jid), item(jid, { ask: "subscribe" }), jid);
    assert.deepEqual(shown(subOut).at(-1), {
      kind: "route",
      xml: `<presence type="subscribe" from="${JULIET}" to="${jid}"/>`,
    });
    // Survives a store and a load: JSON keeps "__proto__" as an own key.
    const loaded: Roster = JSON.parse(JSON.stringify(sub.roster));
    assert.deepEqual(rosterItem(loaded, jid), item(jid, { ask: "subscribe" }), jid);
    assert.deepEqual(rosterUsage(loaded), rosterUsage(sub.roster));

    // Removing a contact that is not there is item-not-found, not Object.prototype's member.
    const removeMissing = reduce(s, {
      kind: "roster-set",
      iq: rosterIq("set", query()),
      change: { kind: "remove", jid },
    });
    assert.deepEqual(removeMissing.out, [{
      kind: "deliver",
      to: BALCONY,
      xml: `<iq type="error" id="r1" to="${BALCONY}"><error type="cancel">` +
        `<item-not-found xmlns="${STANZAS}"/></error></iq>`,
    }], jid);
    const removed = reduce(sub, {
      kind: "roster-set",
      iq: rosterIq("set", query()),
      change: { kind: "remove", jid },
    });
    assert.deepEqual(removed.next.roster.items, {}, jid);
  }
});

Deno.test("account: subscription stanzas from prototype-named contacts follow the tables", () => {
  // "__proto__" is no JID (it is dropped); "toString" is the domain "tostring".
  assert.deepEqual(PROTO_NAMES.map(bareJidOf), [
    "constructor",
    undefined,
    "tostring",
    "hasownproperty",
  ]);
  for (const jid of ["constructor", "tostring", "hasownproperty"]) {
    const s = account({ roster: rosterOf([]) });
    // Unsolicited subscribed / unsubscribe / unsubscribed: nothing to do, nothing thrown.
    for (const type of ["subscribed", "unsubscribe", "unsubscribed"]) {
      const { next, out } = reduce(s, inbound(type, jid));
      assert.deepEqual(out, [], `${type} from ${jid}`);
      assert.deepEqual(next, s);
    }
    // A request is stored as an own key and delivered.
    const [asked, out] = reduceAccount(s, inbound("subscribe", jid), ctx());
    assert.deepEqual(Object.keys(asked.roster.pendingIn), [jid]);
    assert.equal(pendingRequest(asked.roster, jid), true);
    assert.deepEqual(shown(out).slice(2), [
      {
        kind: "deliver",
        to: BALCONY,
        xml: `<presence type="subscribe" from="${jid}" to="${JULIET}"/>`,
      },
      {
        kind: "deliver",
        to: CHAMBER,
        xml: `<presence type="subscribe" from="${jid}" to="${JULIET}"/>`,
      },
      { kind: "route", xml: `<presence type="unavailable" from="${JULIET}" to="${jid}"/>` },
    ]);
    // Redelivered at the next initial presence, and withdrawn by the contact's unsubscribe.
    const initial = reduce(asked, { kind: "initial-presence", fullJid: CHAMBER, priority: 0 });
    assert.deepEqual(initial.out, [{
      kind: "deliver",
      to: CHAMBER,
      xml: `<presence type="subscribe" from="${jid}" to="${JULIET}"/>`,
    }]);
    const withdrawn = reduce(asked, inbound("unsubscribe", jid));
    assert.deepEqual(withdrawn.next.roster.pendingIn, {});
    // The user approves: subscription from, routed.
    const approved = reduce(asked, outbound("subscribed", jid));
    assert.deepEqual(rosterItem(approved.next.roster, jid), item(jid, { subscription: "from" }));
    assert.deepEqual(approved.next.roster.pendingIn, {});
    // A probe from a contact with no subscription gets nothing.
    const probe = reduce(s, {
      kind: "probe",
      stanza: stanza("presence", { type: "probe", from: jid, to: JULIET }),
    });
    assert.deepEqual(probe.out, [], jid);
  }
  const s = account({ roster: rosterOf([]) });
  for (const type of ["subscribe", "subscribed", "unsubscribe", "unsubscribed", "probe"]) {
    const op: AccountOp = type === "probe"
      ? { kind: "probe", stanza: presence("probe", "__proto__", JULIET) }
      : inbound(type, "__proto__");
    assert.deepEqual(reduce(s, op).out, [], type);
  }
});

// ---------------------------------------------------------------------------------------------
// Roster bounds: limits.rosterItems, limits.rosterBytes, limits.pendingSubscriptions.

Deno.test("account: a roster set past roster_items is resource-constraint and changes nothing", () => {
  const s = account({ roster: rosterOf([item(ROMEO), item(NURSE)]) });
  const c = limitedCtx({ rosterItems: 2 });
  const add = reduceAccount(s, {
    kind: "roster-set",
    iq: rosterIq("set", query({}, [elem("item", { jid: "tybalt@example.com" })])),
    change: { kind: "update", jid: "tybalt@example.com", groups: [] },
  }, c);
  assert.equal(add[0], s);
  assert.deepEqual(shown(add[1]), [{
    kind: "deliver",
    to: BALCONY,
    xml: `<iq type="error" id="r1" to="${BALCONY}"><error type="wait">` +
      `<resource-constraint xmlns="${STANZAS}"/>` +
      `<text xmlns="${STANZAS}" xml:lang="en">The roster is full</text></error></iq>`,
  }]);
  // An item already there can still be renamed at the cap.
  const [renamed] = reduceAccount(s, {
    kind: "roster-set",
    iq: rosterIq("set", query({}, [elem("item", { jid: ROMEO, name: "R" })])),
    change: { kind: "update", jid: ROMEO, name: "R", groups: [] },
  }, c);
  assert.deepEqual(rosterItem(renamed.roster, ROMEO), item(ROMEO, { name: "R" }));
});

Deno.test("account: a roster set past roster_bytes is resource-constraint; shrinking passes", () => {
  const s = account({ roster: rosterOf([item(ROMEO)]) });
  const fits = rosterUsage(s.roster).bytes + itemBytes(item(NURSE, { groups: ["a".repeat(100)] }));
  const c = limitedCtx({ rosterBytes: fits });
  const set = (groups: string[]) =>
    reduceAccount(s, {
      kind: "roster-set",
      iq: rosterIq("set", query({}, [elem("item", { jid: NURSE })])),
      change: { kind: "update", jid: NURSE, groups },
    }, c);
  // Exactly at the cap is accepted ...
  const [atCap] = set(["a".repeat(100)]);
  assert.equal(rosterUsage(atCap.roster).bytes, fits);
  // ... one byte more is not.
  const [same, out] = set(["a".repeat(101)]);
  assert.equal(same, s);
  assert.deepEqual(shown(out), [{
    kind: "deliver",
    to: BALCONY,
    xml: `<iq type="error" id="r1" to="${BALCONY}"><error type="wait">` +
      `<resource-constraint xmlns="${STANZAS}"/>` +
      `<text xmlns="${STANZAS}" xml:lang="en">The roster is too large</text></error></iq>`,
  }]);
  // A roster already past a lowered cap can still shrink.
  const over = account({ roster: atCap.roster });
  const [shrunk] = reduceAccount(over, {
    kind: "roster-set",
    iq: rosterIq("set", query({}, [elem("item", { jid: NURSE })])),
    change: { kind: "update", jid: NURSE, groups: ["a"] },
  }, limitedCtx({ rosterBytes: 1024 }));
  assert.deepEqual(rosterItem(shrunk.roster, NURSE), item(NURSE, { groups: ["a"] }));
});

Deno.test("account: an outbound subscribe past roster_items is refused to the user, nothing changes", () => {
  const s = account({ roster: rosterOf([item(NURSE)]) });
  const [next, out] = reduceAccount(s, outbound("subscribe"), limitedCtx({ rosterItems: 1 }));
  assert.equal(next, s);
  const error = `<presence type="error" from="${ROMEO}" to="${JULIET}"><error type="wait">` +
    `<resource-constraint xmlns="${STANZAS}"/>` +
    `<text xmlns="${STANZAS}" xml:lang="en">The roster is full</text></error></presence>`;
  // The session hands the stanza over from the bare JID: every resource hears of it.
  assert.deepEqual(shown(out), [
    { kind: "deliver", to: BALCONY, xml: error },
    { kind: "deliver", to: CHAMBER, xml: error },
    { kind: "deliver", to: TOMB, xml: error },
  ]);
  // From a full JID, only that resource does.
  const fromBalcony: AccountOp = {
    kind: "outbound-subscription",
    stanza: presence("subscribed", BALCONY, ROMEO),
  };
  const [, out2] = reduceAccount(s, fromBalcony, limitedCtx({ rosterItems: 1 }));
  assert.deepEqual(shown(out2), [{
    kind: "deliver",
    to: BALCONY,
    xml: `<presence type="error" from="${ROMEO}" to="${BALCONY}"><error type="wait">` +
      `<resource-constraint xmlns="${STANZAS}"/>` +
      `<text xmlns="${STANZAS}" xml:lang="en">The roster is full</text></error></presence>`,
  }]);
  // A subscribe to a contact already in the roster still goes out at the cap.
  const [again, out3] = reduceAccount(
    s,
    outbound("subscribe", NURSE),
    limitedCtx({ rosterItems: 1 }),
  );
  assert.deepEqual(rosterItem(again.roster, NURSE), item(NURSE, { ask: "subscribe" }));
  assert.deepEqual(shown(out3).at(-1), {
    kind: "route",
    xml: `<presence type="subscribe" from="${JULIET}" to="${NURSE}"/>`,
  });
});

Deno.test("account: an inbound subscribe past pending_subscriptions is refused, nothing stored", () => {
  const s = account({ roster: rosterOf([], [NURSE]) });
  const [next, out] = reduceAccount(s, {
    kind: "inbound-subscription",
    stanza: stanza("presence", { type: "subscribe", from: ORCHARD, to: JULIET, id: "s1" }),
  }, limitedCtx({ pendingSubscriptions: 1 }));
  assert.equal(next, s);
  assert.deepEqual(shown(out), [{
    kind: "route",
    xml: `<presence type="error" id="s1" from="${JULIET}" to="${ORCHARD}"><error type="wait">` +
      `<resource-constraint xmlns="${STANZAS}"/><text xmlns="${STANZAS}" xml:lang="en">` +
      `Too many subscription requests are waiting</text></error></presence>`,
  }]);
  // The requests already waiting are unaffected, and answering one makes room.
  const [room] = reduceAccount(
    s,
    outbound("unsubscribed", NURSE),
    limitedCtx({
      pendingSubscriptions: 1,
    }),
  );
  const [stored] = reduceAccount(
    room,
    inbound("subscribe"),
    limitedCtx({ pendingSubscriptions: 1 }),
  );
  assert.deepEqual(Object.keys(stored.roster.pendingIn), [ROMEO]);
});

Deno.test("account: pending requests count in roster_bytes", () => {
  const s = account({ roster: rosterOf([]) });
  const el = stanza("presence", { type: "subscribe", from: ORCHARD, to: JULIET }, [
    elem("status", {}, ["x".repeat(200)]),
  ]);
  const bytes = pendingBytes(ROMEO, pendingRequestOf(el));
  const [fit] = reduceAccount(
    s,
    { kind: "inbound-subscription", stanza: el },
    limitedCtx({
      rosterBytes: bytes,
    }),
  );
  assert.equal(rosterUsage(fit.roster).bytes, bytes);
  const [refused, out] = reduceAccount(
    s,
    { kind: "inbound-subscription", stanza: el },
    limitedCtx({
      rosterBytes: bytes - 1,
    }),
  );
  assert.equal(refused, s);
  assert.deepEqual(
    shown(out).map((o) => (o as { xml: string }).xml.includes("resource-constraint")),
    [
      true,
    ],
  );
});

// ---------------------------------------------------------------------------------------------
// RFC 6121 §3.1.3: a stored request keeps its payload and is redelivered with it.

const PREAUTH = elem("preauth", { xmlns: "urn:xmpp:pars:0", token: "3e2b9a" });
const NICK = elem("nick", { xmlns: "http://jabber.org/protocol/nick" }, ["Romeo"]);
const STATUS = elem("status", {}, ["Let me in"]);

Deno.test("account: an inbound subscribe keeps its payload and initial presence redelivers it", () => {
  const s = account({ roster: rosterOf([]) });
  const request = stanza("presence", { type: "subscribe", from: ORCHARD, to: JULIET }, [
    STATUS,
    NICK,
    PREAUTH,
  ]);
  const [asked] = reduceAccount(s, { kind: "inbound-subscription", stanza: request }, ctx());
  assert.deepEqual(asked.roster.pendingIn, {
    [ROMEO]: { payload: [request.children[0], request.children[1], request.children[2]] },
  });
  // What the store writes, the store reads back.
  const loaded = account({ roster: JSON.parse(JSON.stringify(asked.roster)) });
  const { out } = reduce(loaded, { kind: "initial-presence", fullJid: CHAMBER, priority: 0 });
  assert.deepEqual(out, [{
    kind: "deliver",
    to: CHAMBER,
    xml: `<presence type="subscribe" from="${ROMEO}" to="${JULIET}"><status>Let me in</status>` +
      `<nick xmlns="http://jabber.org/protocol/nick">Romeo</nick>` +
      `<preauth xmlns="urn:xmpp:pars:0" token="3e2b9a"/></presence>`,
  }]);
});

Deno.test("account: a request stored as `true` by an older server still loads and redelivers", () => {
  const stored = `{"version":"7","items":{},"pendingIn":{"${ROMEO}":true}}`;
  const s = account({ roster: JSON.parse(stored) });
  const { out } = reduce(s, { kind: "initial-presence", fullJid: CHAMBER, priority: -1 });
  assert.deepEqual(out, [{
    kind: "deliver",
    to: CHAMBER,
    xml: `<presence type="subscribe" from="${ROMEO}" to="${JULIET}"/>`,
  }]);
  // Approving it works as for any request.
  const approved = reduce(s, outbound("subscribed"));
  assert.deepEqual(approved.next.roster.pendingIn, {});
  assert.deepEqual(rosterItem(approved.next.roster, ROMEO), item(ROMEO, { subscription: "from" }));
});

Deno.test("account: a request's payload past the per-request bound keeps what fits", () => {
  const big = elem("x", { xmlns: "urn:example:big" }, ["y".repeat(MAX_REQUEST_PAYLOAD_BYTES)]);
  const request = stanza("presence", { type: "subscribe", from: ORCHARD, to: JULIET }, [
    big,
    NICK,
  ]);
  const [asked] = reduceAccount(
    account(),
    { kind: "inbound-subscription", stanza: request },
    ctx(),
  );
  assert.deepEqual(pendingRequest(asked.roster, ROMEO), { payload: [request.children[1]] });
  // Still delivered whole the first time: the bound is on what is kept.
  const onlyBig = stanza("presence", { type: "subscribe", from: ORCHARD, to: JULIET }, [big]);
  const [bare] = reduceAccount(account(), { kind: "inbound-subscription", stanza: onlyBig }, ctx());
  assert.equal(pendingRequest(bare.roster, ROMEO), true);
});
