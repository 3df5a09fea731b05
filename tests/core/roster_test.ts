import assert from "node:assert/strict";
import {
  contactsWith,
  itemBytes,
  itemElement,
  MAX_REQUEST_PAYLOAD_BYTES,
  parseRosterSet,
  pendingBytes,
  pendingPayload,
  pendingRequest,
  pendingRequestOf,
  removeItem,
  rosterItem,
  rosterOverflow,
  rosterPush,
  rosterQuery,
  rosterUsage,
  setPendingIn,
  setSubscription,
  updateItem,
} from "../../lib/core/roster.ts";
import {
  EMPTY_ROSTER,
  type PendingRequest,
  type Roster,
  type RosterItem,
} from "../../lib/core/session.ts";
import { elem, type Element, serialize } from "../../lib/xml/element.ts";
import { NS_ROSTER } from "../../lib/xmpp/namespaces.ts";

const OWN = "juliet@example.com";

const ROMEO: RosterItem = {
  jid: "romeo@example.net",
  name: "Romeo",
  subscription: "both",
  groups: ["Friends"],
};
const NURSE: RosterItem = {
  jid: "nurse@example.com",
  subscription: "to",
  ask: "subscribe",
  approved: true,
  groups: [],
};
const BENVOLIO: RosterItem = { jid: "benvolio@example.net", subscription: "from", groups: [] };
const MERCUTIO: RosterItem = { jid: "mercutio@example.com", subscription: "none", groups: [] };

const ROSTER: Roster = {
  version: "7",
  items: {
    [ROMEO.jid]: ROMEO,
    [NURSE.jid]: NURSE,
    [BENVOLIO.jid]: BENVOLIO,
    [MERCUTIO.jid]: MERCUTIO,
  },
  pendingIn: { "tybalt@example.org": true },
};

/** A roster set query holding these items. */
function setQuery(...items: Element[]): Element {
  return elem("query", { xmlns: NS_ROSTER }, items);
}

function item(attrs: Readonly<Record<string, string>>, groups: readonly string[] = []): Element {
  return elem("item", { xmlns: NS_ROSTER, ...attrs }, groups.map((g) => elem("group", {}, [g])));
}

Deno.test("rosterQuery without ver returns every item and the version", () => {
  const q = rosterQuery(ROSTER, undefined);
  assert.ok(q !== undefined);
  assert.equal(
    serialize(q),
    '<query xmlns="jabber:iq:roster" ver="7">' +
      '<item jid="romeo@example.net" name="Romeo" subscription="both"><group>Friends</group></item>' +
      '<item jid="nurse@example.com" subscription="to" ask="subscribe" approved="true"/>' +
      '<item jid="benvolio@example.net" subscription="from"/>' +
      '<item jid="mercutio@example.com" subscription="none"/>' +
      "</query>",
  );
});

Deno.test("rosterQuery with a stale or empty ver returns the whole roster", () => {
  for (const ver of ["6", "", "abc"]) {
    const q = rosterQuery(ROSTER, ver);
    assert.ok(q !== undefined, ver);
    assert.equal(q.attrs.ver, "7");
    assert.equal(q.children.length, 4);
  }
});

Deno.test("rosterQuery with the current ver returns undefined (XEP-0237 empty result)", () => {
  assert.equal(rosterQuery(ROSTER, "7"), undefined);
  // A roster never saved shows as version 1, as Prosody's does.
  assert.equal(rosterQuery(EMPTY_ROSTER, "1"), undefined);
});

Deno.test("rosterQuery of an empty roster is an empty query", () => {
  assert.equal(
    serialize(rosterQuery(EMPTY_ROSTER, undefined)!),
    '<query xmlns="jabber:iq:roster" ver="1"/>',
  );
});

Deno.test("itemElement renders attributes and groups exactly", () => {
  const cases: ReadonlyArray<readonly [RosterItem, string]> = [
    [MERCUTIO, '<item xmlns="jabber:iq:roster" jid="mercutio@example.com" subscription="none"/>'],
    [
      NURSE,
      '<item xmlns="jabber:iq:roster" jid="nurse@example.com" subscription="to" ask="subscribe"' +
      ' approved="true"/>',
    ],
    [
      { ...MERCUTIO, approved: false, name: 'M & "co" <x>', groups: ["A&B", "<C>"] },
      '<item xmlns="jabber:iq:roster" jid="mercutio@example.com" name="M &amp; &quot;co&quot;' +
      ' &lt;x&gt;" subscription="none"><group>A&amp;B</group><group>&lt;C&gt;</group></item>',
    ],
  ];
  for (const [it, xml] of cases) assert.equal(serialize(itemElement(it)), xml);
});

Deno.test("rosterPush carries one item and the roster's version", () => {
  const push = rosterPush(
    ROSTER,
    { kind: "item", item: ROMEO },
    "juliet@example.com/balcony",
    "p1",
  );
  assert.equal(
    serialize(push),
    '<iq type="set" id="p1" to="juliet@example.com/balcony">' +
      '<query xmlns="jabber:iq:roster" ver="7">' +
      '<item jid="romeo@example.net" name="Romeo" subscription="both"><group>Friends</group></item>' +
      "</query></iq>",
  );
});

Deno.test("rosterPush for a removal has subscription=remove and nothing else", () => {
  const push = rosterPush(
    ROSTER,
    { kind: "remove", jid: "romeo@example.net" },
    "juliet@example.com/r",
    "p2",
  );
  assert.equal(
    serialize(push),
    '<iq type="set" id="p2" to="juliet@example.com/r">' +
      '<query xmlns="jabber:iq:roster" ver="7">' +
      '<item jid="romeo@example.net" subscription="remove"/></query></iq>',
  );
});

Deno.test("parseRosterSet: the errors of RFC 6121 §2.3.3 and §2.5.3", () => {
  const long = "x".repeat(1025);
  const cases: ReadonlyArray<readonly [string, Element, string]> = [
    ["no item", setQuery(), "bad-request"],
    [
      "two items",
      setQuery(item({ jid: "a@example.net" }), item({ jid: "b@example.net" })),
      "bad-request",
    ],
    ["no jid", setQuery(item({ name: "x" })), "bad-request"],
    ["bad JID", setQuery(item({ jid: "a@b@example.net" })), "bad-request"],
    ["empty JID", setQuery(item({ jid: "" })), "bad-request"],
    ["full JID", setQuery(item({ jid: "romeo@example.net/orchard" })), "bad-request"],
    [
      "full JID remove",
      setQuery(item({ jid: "r@example.net/o", subscription: "remove" })),
      "bad-request",
    ],
    ["own JID", setQuery(item({ jid: OWN })), "not-allowed"],
    ["own JID, other case", setQuery(item({ jid: "Juliet@Example.COM" })), "not-allowed"],
    ["own JID remove", setQuery(item({ jid: OWN, subscription: "remove" })), "not-allowed"],
    ["empty group", setQuery(item({ jid: "a@example.net" }, ["ok", ""])), "not-acceptable"],
    ["duplicate group", setQuery(item({ jid: "a@example.net" }, ["G", "H", "G"])), "bad-request"],
    ["too long name", setQuery(item({ jid: "a@example.net", name: long })), "not-acceptable"],
    ["too long group", setQuery(item({ jid: "a@example.net" }, [long])), "not-acceptable"],
  ];
  for (const [label, query, condition] of cases) {
    const r = parseRosterSet(query, OWN);
    assert.equal(r.ok, false, label);
    if (!r.ok) {
      assert.equal(r.condition, condition, label);
      assert.ok(r.text.length > 0, label);
    }
  }
});

Deno.test("parseRosterSet: an update keeps only jid, name and groups, normalised", () => {
  const r = parseRosterSet(
    setQuery(
      item({
        jid: "Romeo@Example.NET",
        name: "Romeo",
        subscription: "both",
        ask: "subscribe",
        approved: "true",
      }, ["Friends", "Lovers"]),
    ),
    OWN,
  );
  assert.deepEqual(r, {
    ok: true,
    change: {
      kind: "update",
      jid: "romeo@example.net",
      name: "Romeo",
      groups: ["Friends", "Lovers"],
    },
  });
});

Deno.test("parseRosterSet: no name or an empty name gives no name; names at the cap pass", () => {
  const attrSets: ReadonlyArray<Readonly<Record<string, string>>> = [
    { jid: "a@example.net" },
    { jid: "a@example.net", name: "" },
  ];
  for (const attrs of attrSets) {
    assert.deepEqual(parseRosterSet(setQuery(item(attrs)), OWN), {
      ok: true,
      change: { kind: "update", jid: "a@example.net", groups: [] },
    });
  }
  // 1024 astral characters are 2048 UTF-16 units: the cap counts characters.
  const atCap = "😀".repeat(1024);
  const r = parseRosterSet(setQuery(item({ jid: "a@example.net", name: atCap }, [atCap])), OWN);
  assert.equal(r.ok, true);
});

Deno.test("parseRosterSet: subscription=remove asks for removal, other parts ignored", () => {
  assert.deepEqual(
    parseRosterSet(
      setQuery(item({ jid: "Romeo@example.net", subscription: "remove", name: "x" }, ["", ""])),
      OWN,
    ),
    { ok: true, change: { kind: "remove", jid: "romeo@example.net" } },
  );
});

Deno.test("parseRosterSet: domain JIDs are valid items; foreign children are ignored", () => {
  const query = elem("query", { xmlns: NS_ROSTER }, [
    elem("x", { xmlns: "urn:example:other" }),
    item({ jid: "gateway.example.org" }),
  ]);
  assert.deepEqual(parseRosterSet(query, OWN), {
    ok: true,
    change: { kind: "update", jid: "gateway.example.org", groups: [] },
  });
});

Deno.test("updateItem creates an item with subscription none and bumps the version", () => {
  const r = updateItem(EMPTY_ROSTER, "a@example.net", "A", ["G"]);
  assert.deepEqual(r.item, {
    jid: "a@example.net",
    name: "A",
    subscription: "none",
    groups: ["G"],
  });
  assert.deepEqual(r.roster, {
    version: "1",
    items: { "a@example.net": r.item },
    pendingIn: {},
  });
  assert.deepEqual(EMPTY_ROSTER, { version: "0", items: {}, pendingIn: {} });
});

Deno.test("updateItem keeps the subscription state and replaces name and groups", () => {
  const r = updateItem(ROSTER, NURSE.jid, "Nurse", ["Household"]);
  assert.deepEqual(r.item, {
    jid: NURSE.jid,
    name: "Nurse",
    subscription: "to",
    ask: "subscribe",
    approved: true,
    groups: ["Household"],
  });
  assert.equal(r.roster.version, "8");
  assert.deepEqual(r.roster.pendingIn, ROSTER.pendingIn);
  const cleared = updateItem(r.roster, NURSE.jid, undefined, []);
  assert.equal("name" in cleared.item, false);
  assert.deepEqual(cleared.item.groups, []);
  assert.equal(cleared.item.subscription, "to");
  assert.equal(cleared.roster.version, "9");
  // The input roster is untouched.
  assert.equal(ROSTER.items[NURSE.jid], NURSE);
});

Deno.test("versions are exact past the float range", () => {
  const r = updateItem(
    { ...EMPTY_ROSTER, version: "9007199254740993" },
    "a@example.net",
    undefined,
    [],
  );
  assert.equal(r.roster.version, "9007199254740994");
});

Deno.test("removeItem removes the item and its pending request, bumping the version", () => {
  const roster = setPendingIn(ROSTER, ROMEO.jid, true);
  const r = removeItem(roster, ROMEO.jid);
  assert.ok(r !== undefined);
  assert.equal(r.removed, ROMEO);
  assert.equal(r.roster.version, "9");
  assert.equal(ROMEO.jid in r.roster.items, false);
  assert.deepEqual(r.roster.pendingIn, { "tybalt@example.org": true });
});

Deno.test("removeItem of an unknown JID is undefined", () => {
  assert.equal(removeItem(ROSTER, "tybalt@example.org"), undefined);
  assert.equal(removeItem(ROSTER, "constructor"), undefined);
});

Deno.test("setSubscription changes an existing item, keeping name and groups", () => {
  const r = setSubscription(ROSTER, BENVOLIO.jid, { subscription: "both" }, false);
  assert.equal(r.changed, true);
  assert.deepEqual(r.item, { ...BENVOLIO, subscription: "both" });
  assert.equal(r.roster.version, "8");
  const r2 = setSubscription(ROSTER, NURSE.jid, { subscription: "both" }, false);
  // ask and approved are replaced, not merged: their absence clears them.
  assert.deepEqual(r2.item, { jid: NURSE.jid, subscription: "both", groups: [] });
  assert.equal(r2.changed, true);
});

Deno.test("setSubscription with the same fields changes nothing", () => {
  const r = setSubscription(
    ROSTER,
    NURSE.jid,
    { subscription: "to", ask: "subscribe", approved: true },
    true,
  );
  assert.equal(r.changed, false);
  assert.equal(r.roster, ROSTER);
  assert.equal(r.item, NURSE);
  // approved=false is the same as no approval.
  const r2 = setSubscription(ROSTER, ROMEO.jid, { subscription: "both", approved: false }, false);
  assert.equal(r2.changed, false);
  assert.equal(r2.roster, ROSTER);
});

Deno.test("setSubscription creates a missing item only when asked to", () => {
  const none = setSubscription(ROSTER, "paris@example.org", { subscription: "none" }, false);
  assert.deepEqual(none, { roster: ROSTER, item: undefined, changed: false });
  const made = setSubscription(
    ROSTER,
    "paris@example.org",
    { subscription: "none", ask: "subscribe" },
    true,
  );
  assert.equal(made.changed, true);
  assert.deepEqual(made.item, {
    jid: "paris@example.org",
    subscription: "none",
    ask: "subscribe",
    groups: [],
  });
  assert.equal(made.roster.items["paris@example.org"], made.item);
  assert.equal(made.roster.version, "8");
  // Creating with nothing pending still records the contact (the user asked for it).
  const plain = setSubscription(EMPTY_ROSTER, "paris@example.org", { subscription: "none" }, true);
  assert.equal(plain.changed, true);
  assert.equal(plain.roster.version, "1");
});

Deno.test("setPendingIn records and clears, bumping the version only on a change", () => {
  const on = setPendingIn(ROSTER, "paris@example.org", true);
  assert.deepEqual(on.pendingIn, { "tybalt@example.org": true, "paris@example.org": true });
  assert.equal(on.version, "8");
  assert.equal(setPendingIn(on, "paris@example.org", true), on);
  const off = setPendingIn(on, "tybalt@example.org", false);
  assert.deepEqual(off.pendingIn, { "paris@example.org": true });
  assert.equal(off.version, "9");
  assert.equal(setPendingIn(off, "constructor", false), off);
  assert.deepEqual(ROSTER.pendingIn, { "tybalt@example.org": true });
});

Deno.test("contactsWith selects by subscription", () => {
  assert.deepEqual(contactsWith(ROSTER, ["from", "both"]), [ROMEO.jid, BENVOLIO.jid]);
  assert.deepEqual(contactsWith(ROSTER, ["to", "both"]), [ROMEO.jid, NURSE.jid]);
  assert.deepEqual(contactsWith(ROSTER, ["none"]), [MERCUTIO.jid]);
  assert.deepEqual(contactsWith(ROSTER, []), []);
});

// ---------------------------------------------------------------------------------------------
// Issue 9: prototype names, bounds with a running tally, request payloads.

const PROTO_NAMES = ["constructor", "__proto__", "toString", "hasOwnProperty"] as const;

Deno.test("lookups by a prototype name find nothing in a roster without it", () => {
  const loaded: Roster = JSON.parse(JSON.stringify(ROSTER));
  for (const name of PROTO_NAMES) {
    for (const r of [ROSTER, EMPTY_ROSTER, loaded]) {
      assert.equal(rosterItem(r, name), undefined, name);
      assert.equal(pendingRequest(r, name), undefined, name);
    }
    assert.equal(removeItem(ROSTER, name), undefined);
    assert.equal(setSubscription(ROSTER, name, { subscription: "to" }, false).changed, false);
  }
});

Deno.test("prototype names are stored as own keys and survive a store and a load", () => {
  for (const name of PROTO_NAMES) {
    const { roster: added } = updateItem(ROSTER, name, "N", ["G"]);
    const asked = setPendingIn(added, name, { payload: [elem("status", {}, ["hi"])] });
    assert.ok(Object.hasOwn(asked.items, name), name);
    assert.ok(Object.hasOwn(asked.pendingIn, name), name);
    // The records' prototype is untouched by a "__proto__" key.
    assert.equal(Object.getPrototypeOf(asked.items), Object.prototype);
    assert.equal(Object.getPrototypeOf(asked.pendingIn), Object.prototype);
    const loaded: Roster = JSON.parse(JSON.stringify(asked));
    assert.deepEqual(rosterItem(loaded, name), {
      jid: name,
      name: "N",
      subscription: "none",
      groups: ["G"],
    });
    assert.deepEqual(pendingPayload(pendingRequest(loaded, name)!), [elem("status", {}, ["hi"])]);
    assert.deepEqual(rosterUsage(loaded), rosterUsage(asked));
    const sub = setSubscription(loaded, name, { subscription: "from" }, false);
    assert.equal(sub.item?.subscription, "from");
    const removed = removeItem(sub.roster, name)!;
    assert.equal(rosterItem(removed.roster, name), undefined);
    assert.equal(pendingRequest(removed.roster, name), undefined);
    assert.deepEqual(rosterUsage(removed.roster), rosterUsage(ROSTER));
  }
});

/** The usage of a roster counted from scratch (a JSON copy has no tally yet). */
function recounted(r: Roster) {
  return rosterUsage(JSON.parse(JSON.stringify(r)));
}

Deno.test("rosterUsage: the running tally equals a recount after any sequence of changes", () => {
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed % n;
  };
  const jids = ["a@x", "b@x", "é@x", "constructor", "__proto__", "toString"];
  let r: Roster = ROSTER;
  for (let step = 0; step < 500; step++) {
    const jid = jids[rand(jids.length)];
    switch (rand(5)) {
      case 0:
        r = updateItem(
          r,
          jid,
          rand(2) ? "ñame".repeat(rand(4)) : undefined,
          ["g", "h"].slice(rand(3)),
        ).roster;
        break;
      case 1:
        r = removeItem(r, jid)?.roster ?? r;
        break;
      case 2:
        r = setSubscription(r, jid, { subscription: "both" }, rand(2) === 0).roster;
        break;
      case 3:
        r = setPendingIn(
          r,
          jid,
          rand(2) ? true : { payload: [elem("nick", {}, ["n".repeat(rand(50))])] },
        );
        break;
      case 4:
        r = setPendingIn(r, jid, false);
        break;
    }
    assert.deepEqual(rosterUsage(r), recounted(r), `step ${step}`);
  }
});

Deno.test("rosterUsage counts items, pending requests and stored bytes", () => {
  const u = rosterUsage(ROSTER);
  assert.equal(u.items, 4);
  assert.equal(u.pending, 1);
  const itemsBytes = [ROMEO, NURSE, BENVOLIO, MERCUTIO].reduce((n, i) => n + itemBytes(i), 0);
  assert.equal(u.bytes, itemsBytes + pendingBytes("tybalt@example.org", true));
  // The JID twice (key and field), the name, each group, and the framing.
  assert.equal(itemBytes(ROMEO), 96 + 2 * 17 + 5 + (3 + 7));
  // Within the stored JSON's size, not far from it (no escapes here).
  const stored = new TextEncoder().encode(JSON.stringify(ROSTER)).length;
  assert.ok(u.bytes >= stored && u.bytes < stored * 2, `${u.bytes} vs ${stored}`);
  // A subscription change does not change the size.
  const sub = setSubscription(ROSTER, MERCUTIO.jid, { subscription: "both" }, false).roster;
  assert.equal(rosterUsage(sub).bytes, u.bytes);
});

Deno.test("rosterOverflow refuses growth past each bound and lets a roster shrink", () => {
  const u = rosterUsage(ROSTER);
  const limits = { rosterItems: 4, rosterBytes: u.bytes + 200, pendingSubscriptions: 1 };
  const added = updateItem(ROSTER, "paris@example.org", undefined, []).roster;
  assert.equal(rosterOverflow(ROSTER, added, limits), "items");
  assert.equal(rosterOverflow(ROSTER, added, { ...limits, rosterItems: 5 }), undefined);
  const asked = setPendingIn(ROSTER, "paris@example.org", true);
  assert.equal(rosterOverflow(ROSTER, asked, limits), "pending");
  const renamed = updateItem(ROSTER, ROMEO.jid, "R".repeat(206), ROMEO.groups).roster;
  assert.equal(rosterOverflow(ROSTER, renamed, limits), "bytes");
  assert.equal(rosterOverflow(ROSTER, ROSTER, limits), undefined);
  // Already past every bound: shrinking and changes in place pass.
  const tight = { rosterItems: 0, rosterBytes: 1024, pendingSubscriptions: 0 };
  assert.equal(rosterOverflow(ROSTER, removeItem(ROSTER, ROMEO.jid)!.roster, tight), undefined);
  assert.equal(
    rosterOverflow(ROSTER, setPendingIn(ROSTER, "tybalt@example.org", false), tight),
    undefined,
  );
  const sub = setSubscription(ROSTER, MERCUTIO.jid, { subscription: "to" }, false).roster;
  assert.equal(rosterOverflow(ROSTER, sub, tight), undefined);
});

Deno.test("pendingRequestOf keeps the child elements up to the per-request bound", () => {
  const nick = elem("nick", { xmlns: "http://jabber.org/protocol/nick" }, ["Romeo"]);
  const preauth = elem("preauth", { xmlns: "urn:xmpp:pars:0", token: "t0k" });
  const big = elem("x", { xmlns: "urn:example" }, ["y".repeat(MAX_REQUEST_PAYLOAD_BYTES)]);
  const presence = (children: Element[]) =>
    elem("presence", { xmlns: "jabber:client", type: "subscribe" }, children);
  assert.equal(pendingRequestOf(presence([])), true);
  // Text between children is not payload.
  assert.equal(pendingRequestOf(elem("presence", { type: "subscribe" }, ["\n  "])), true);
  assert.deepEqual(pendingRequestOf(presence([nick, preauth])), { payload: [nick, preauth] });
  // A child too big to keep is left out; the ones after it that fit are kept.
  assert.deepEqual(pendingRequestOf(presence([big, preauth])), { payload: [preauth] });
  assert.equal(pendingRequestOf(presence([big])), true);
  // Many small children stop at the bound.
  const many = Array.from({ length: 200 }, (_, i) => elem("status", {}, [`s${i}`.padEnd(40, ".")]));
  const kept = pendingRequestOf(presence(many));
  assert.ok(kept !== true);
  const bytes = new TextEncoder().encode(JSON.stringify(kept.payload)).length;
  assert.ok(bytes <= MAX_REQUEST_PAYLOAD_BYTES + kept.payload.length, `${bytes}`);
  assert.ok(kept.payload.length < 200 && kept.payload.length > 10);
});

Deno.test("pendingPayload: none for true (older stores) and for a malformed stored value", () => {
  assert.deepEqual(pendingPayload(true), []);
  assert.deepEqual(pendingPayload({ payload: "junk" } as unknown as PendingRequest), []);
  const status = elem("status", {}, ["hi"]);
  assert.deepEqual(pendingPayload({ payload: [status] }), [status]);
});

Deno.test("setPendingIn keeps the first stored request of a contact", () => {
  const first = setPendingIn(EMPTY_ROSTER, "paris@example.org", {
    payload: [elem("status", {}, ["first"])],
  });
  assert.equal(setPendingIn(first, "paris@example.org", true), first);
  assert.equal(setPendingIn(first, "paris@example.org", { payload: [] }), first);
});
