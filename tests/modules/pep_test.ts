import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import {
  type AccountIqCtx,
  type AccountIqResult,
  type ResourceView,
} from "../../lib/core/types.ts";
import {
  BOOKMARKS_CONFIG,
  bookmarksFromLegacy,
  lastItemsFor,
  legacyBookmarks,
  nodeBytes,
  onDiscoItems,
  onPubsubIq,
  onPubsubOwnerIq,
  pepBytes,
  type PepData,
  pepData,
} from "../../lib/modules/pep.ts";
import type { AccountOutput } from "../../lib/core/types.ts";
import type { Roster, RosterItem } from "../../lib/core/session.ts";
import { elem, type Element, serialize, stanza } from "../../lib/xml/element.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { NS_BOOKMARKS2, NS_PUBSUB, NS_PUBSUB_OWNER } from "../../lib/xmpp/namespaces.ts";

const OWNER = "juliet@example.com";
const BALCONY = `${OWNER}/balcony`;
const ROMEO = "romeo@example.com";
const ORCHARD = `${ROMEO}/orchard`;
const NICK = "http://jabber.org/protocol/nick";

function rosterWith(items: readonly RosterItem[]): Roster {
  return { version: "1", items: Object.fromEntries(items.map((i) => [i.jid, i])), pendingIn: {} };
}

const MUTUAL = rosterWith([{ jid: ROMEO, subscription: "both", groups: [] }]);

function view(fullJid: string, features?: readonly string[]): ResourceView {
  return {
    fullJid,
    resource: fullJid.split("/")[1],
    priority: 0,
    available: true,
    interested: true,
    features,
  };
}

function ctx(over: Partial<AccountIqCtx> = {}): AccountIqCtx {
  let n = 0;
  return {
    bare: OWNER,
    self: true,
    now: 0,
    limits: DEFAULT_LIMITS,
    newId: () => `gen${++n}`,
    roster: MUTUAL,
    resourcesOf: () => [],
    ...over,
  };
}

function iq(type: "get" | "set", payload: Element, from = BALCONY): Element {
  return stanza("iq", { type, id: "q1", from, to: OWNER }, [payload]);
}

function pubsub(children: readonly Element[], xmlns = NS_PUBSUB): Element {
  return elem("pubsub", { xmlns }, children);
}

function nick(name: string): Element {
  return elem("nick", { xmlns: NICK }, [name]);
}

function publish(node: string, id: string | undefined, payload: Element, options?: Element) {
  return pubsub([
    elem("publish", { node }, [elem("item", { id }, [payload])]),
    options !== undefined && elem("publish-options", {}, [options]),
  ].filter((x): x is Element => x !== false));
}

function optionsForm(fields: Readonly<Record<string, string>>): Element {
  return elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    elem("field", { var: "FORM_TYPE", type: "hidden" }, [
      elem("value", {}, ["http://jabber.org/protocol/pubsub#publish-options"]),
    ]),
    ...Object.entries(fields).map(([k, v]) => elem("field", { var: k }, [elem("value", {}, [v])])),
  ]);
}

function run(data: unknown, el: Element, c = ctx()): AccountIqResult {
  const payload = el.children[0] as Element;
  return payload.xmlns === NS_PUBSUB_OWNER
    ? onPubsubOwnerIq(data, el, payload, c)
    : onPubsubIq(data, el, payload, c);
}

function xml(r: AccountIqResult): string[] {
  return r.replies.map((e) => serializeTop(e));
}

function outs(o: readonly AccountOutput[] | undefined): unknown[] {
  return (o ?? []).map((x) =>
    x.kind === "deliver"
      ? { kind: x.kind, to: x.to, xml: serializeTop(x.stanza) }
      : x.kind === "route"
      ? { kind: x.kind, xml: serializeTop(x.stanza) }
      : x
  );
}

/** Publishes in order, returning the data after the last. */
function published(items: readonly [string, string, string][], options?: Element): PepData {
  let data: unknown = undefined;
  for (const [node, id, name] of items) {
    data = run(data, iq("set", publish(node, id, nick(name), options))).data;
  }
  return pepData(data);
}

Deno.test("pep: publish creates the node and notifies +notify resources, owner first", () => {
  const c = ctx({
    resourcesOf: (bare) =>
      bare === OWNER
        ? [view(BALCONY, [`${NICK}+notify`]), view(`${OWNER}/tomb`, [])]
        : bare === ROMEO
        ? [view(ORCHARD, [`${NICK}+notify`])]
        : [],
  });
  const r = run(undefined, iq("set", publish(NICK, "current", nick("J"))), c);
  const event = (to: string) =>
    `<message type="headline" from="${OWNER}" to="${to}">` +
    `<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="${NICK}">` +
    `<item id="current"><nick xmlns="${NICK}">J</nick></item></items></event></message>`;
  assert.deepEqual(outs(r.outputs), [
    { kind: "deliver", to: BALCONY, xml: event(BALCONY) },
    { kind: "route", xml: event(ORCHARD) },
  ]);
  assert.deepEqual(xml(r), [
    `<iq type="result" id="q1" from="${OWNER}" to="${BALCONY}">` +
    `<pubsub xmlns="${NS_PUBSUB}"><publish node="${NICK}"><item id="current"/></publish>` +
    `</pubsub></iq>`,
  ]);
  const data = pepData(r.data);
  assert.equal(data.nodes[NICK].config.accessModel, "presence");
  assert.deepEqual(data.nodes[NICK].items.map((i) => i.id), ["current"]);
});

Deno.test("pep: an item without id gets a generated one", () => {
  const r = run(undefined, iq("set", publish(NICK, undefined, nick("J"))));
  assert.deepEqual(pepData(r.data).nodes[NICK].items.map((i) => i.id), ["gen1"]);
  assert.match(xml(r)[0], /<item id="gen1"\/>/);
});

Deno.test("pep: a contact may not publish to the owner's service", () => {
  const r = run(undefined, iq("set", publish(NICK, "a", nick("R")), ORCHARD), ctx({ self: false }));
  assert.equal(r.data, undefined);
  assert.match(xml(r)[0], /<forbidden /);
});

Deno.test("pep: max_items keeps the newest items; a republished id moves to the end", () => {
  const options = optionsForm({ "pubsub#max_items": "2" });
  const data = published([
    [NICK, "a", "1"],
    [NICK, "b", "2"],
    [NICK, "a", "3"],
    [NICK, "c", "4"],
  ], options);
  assert.deepEqual(data.nodes[NICK].items.map((i) => [i.id, serialize(i.payload)]), [
    ["a", `<nick xmlns="${NICK}">3</nick>`],
    ["c", `<nick xmlns="${NICK}">4</nick>`],
  ]);
});

Deno.test("pep: the default node keeps one item; max_items=max keeps up to the server cap", () => {
  assert.equal(published([[NICK, "a", "1"], [NICK, "b", "2"]]).nodes[NICK].items.length, 1);
  const max = optionsForm({ "pubsub#max_items": "max" });
  const data = published([[NICK, "a", "1"], [NICK, "b", "2"], [NICK, "c", "3"]], max);
  assert.equal(data.nodes[NICK].config.maxItems, "max");
  assert.equal(data.nodes[NICK].items.length, 3);
});

Deno.test("pep: publish-options that differ from the node's config fail the precondition", () => {
  const data = published([[NICK, "a", "1"]], optionsForm({ "pubsub#access_model": "open" }));
  const same = run(
    data,
    iq(
      "set",
      publish(
        NICK,
        "b",
        nick("2"),
        optionsForm({
          "pubsub#access_model": "open",
        }),
      ),
    ),
  );
  assert.ok(same.data !== undefined);
  const other = run(
    data,
    iq(
      "set",
      publish(
        NICK,
        "b",
        nick("2"),
        optionsForm({
          "pubsub#access_model": "whitelist",
        }),
      ),
    ),
  );
  assert.equal(other.data, undefined);
  assert.deepEqual(xml(other), [
    `<iq type="error" id="q1" from="${OWNER}" to="${BALCONY}"><error type="cancel">` +
    `<conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
    `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">` +
    `Field does not match: access_model</text>` +
    `<precondition-not-met xmlns="http://jabber.org/protocol/pubsub#errors"/></error></iq>`,
  ]);
});

Deno.test("pep: an invalid publish option is a bad request", () => {
  const r = run(
    undefined,
    iq(
      "set",
      publish(
        NICK,
        "a",
        nick("1"),
        optionsForm({
          "pubsub#max_items": "lots",
        }),
      ),
    ),
  );
  assert.equal(r.data, undefined);
  assert.match(xml(r)[0], /<bad-request .*<invalid-options /);
});

Deno.test("pep: items: all, by id, max_items, missing node", () => {
  const options = optionsForm({ "pubsub#max_items": "10" });
  const data = published([[NICK, "a", "1"], [NICK, "b", "2"], [NICK, "c", "3"]], options);
  const ids = (payload: Element) =>
    [...xml(run(data, iq("get", pubsub([payload]))))[0].matchAll(/item id="(\w+)"/g)].map((m) =>
      m[1]
    );
  assert.deepEqual(ids(elem("items", { node: NICK })), ["a", "b", "c"]);
  assert.deepEqual(ids(elem("items", { node: NICK, max_items: "2" })), ["b", "c"]);
  assert.deepEqual(ids(elem("items", { node: NICK }, [elem("item", { id: "b" })])), ["b"]);
  const missing = run(data, iq("get", pubsub([elem("items", { node: "storage:bookmarks" })])));
  assert.deepEqual(xml(missing), [
    `<iq type="error" id="q1" from="${OWNER}" to="${BALCONY}"><error type="cancel">` +
    `<item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`,
  ]);
});

Deno.test("pep: access models decide who may read items", () => {
  const get = (data: PepData, from: string, roster: Roster) =>
    xml(run(
      data,
      iq("get", pubsub([elem("items", { node: NICK })]), from),
      ctx({
        self: false,
        roster,
      }),
    ))[0];
  const presence = published([[NICK, "a", "1"]]);
  assert.match(get(presence, ORCHARD, MUTUAL), /type="result"/);
  assert.match(
    get(presence, ORCHARD, rosterWith([])),
    /<not-authorized .*<presence-subscription-required /,
  );
  const open = published([[NICK, "a", "1"]], optionsForm({ "pubsub#access_model": "open" }));
  assert.match(get(open, "mercutio@example.net/x", rosterWith([])), /type="result"/);
  const whitelist = published(
    [[NICK, "a", "1"]],
    optionsForm({ "pubsub#access_model": "whitelist" }),
  );
  assert.match(get(whitelist, ORCHARD, MUTUAL), /<not-allowed .*<closed-node /);
});

Deno.test("pep: whitelisted nodes notify only the owner", () => {
  const c = ctx({
    resourcesOf: (bare) =>
      bare === OWNER ? [view(BALCONY, [`${NICK}+notify`])] : [view(ORCHARD, [`${NICK}+notify`])],
  });
  const r = run(
    undefined,
    iq("set", publish(NICK, "a", nick("1"), optionsForm({ "pubsub#access_model": "whitelist" }))),
    c,
  );
  assert.deepEqual((r.outputs ?? []).map((o) => o.kind === "deliver" ? o.to : o.kind), [BALCONY]);
});

Deno.test("pep: the roster access model lets contacts in allowed groups read and hear", () => {
  const TYBALT = "tybalt@example.com";
  const roster = rosterWith([
    { jid: ROMEO, subscription: "both", groups: ["Friends"] },
    { jid: TYBALT, subscription: "both", groups: ["Capulets"] },
  ]);
  const c = ctx({
    roster,
    resourcesOf: (bare) => [view(`${bare}/x`, [`${NICK}+notify`])],
  });
  const options = optionsForm({
    "pubsub#access_model": "roster",
    "pubsub#roster_groups_allowed": "Friends",
  });
  const r = run(undefined, iq("set", publish(NICK, "a", nick("1"), options)), c);
  assert.deepEqual(pepData(r.data).nodes[NICK].config.rosterGroupsAllowed, ["Friends"]);
  assert.deepEqual(
    (r.outputs ?? []).map((o) =>
      o.kind === "deliver" ? o.to : o.kind === "route" ? o.stanza.attrs.to : o.kind
    ),
    [`${OWNER}/x`, `${ROMEO}/x`],
  );
  const get = (from: string) =>
    xml(run(r.data, iq("get", pubsub([elem("items", { node: NICK })]), from), {
      ...c,
      self: false,
    }))[0];
  assert.match(get(ORCHARD), /type="result"/);
  assert.match(get(`${TYBALT}/x`), /<not-authorized .*<not-in-roster-group /);
  assert.deepEqual(
    outs(lastItemsFor(r.data, OWNER, roster, `${TYBALT}/x`, [`${NICK}+notify`])),
    [],
  );
  assert.equal(lastItemsFor(r.data, OWNER, roster, ORCHARD, [`${NICK}+notify`]).length, 1);
});

Deno.test("pep: deliver_notifications=0 keeps the item and tells nobody", () => {
  const c = ctx({ resourcesOf: (bare) => [view(`${bare}/x`, [`${NICK}+notify`])] });
  const options = optionsForm({ "pubsub#deliver_notifications": "0" });
  const r = run(undefined, iq("set", publish(NICK, "a", nick("1"), options)), c);
  assert.deepEqual(r.outputs, []);
  assert.deepEqual(pepData(r.data).nodes[NICK].items.map((i) => i.id), ["a"]);
});

Deno.test("pep: disco#items lists the nodes the requester may see, named by their titles", () => {
  const titled = run(
    published([[NICK, "a", "1"], ["urn:example:secret", "s", "x"]]),
    iq(
      "set",
      pubsub([
        elem("configure", { node: NICK }, [
          elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
            elem("field", { var: "pubsub#title" }, [elem("value", {}, ["Nicks"])]),
          ]),
        ]),
      ], NS_PUBSUB_OWNER),
    ),
  ).data;
  const secret = run(
    titled,
    iq(
      "set",
      publish(
        "urn:example:secret",
        "s",
        nick("x"),
        optionsForm({ "pubsub#access_model": "presence" }),
      ),
    ),
  ).data;
  const closed = run(
    secret,
    iq(
      "set",
      pubsub([elem("configure", { node: "urn:example:secret" }, [
        elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
          elem("field", { var: "pubsub#access_model" }, [elem("value", {}, ["whitelist"])]),
        ]),
      ])], NS_PUBSUB_OWNER),
    ),
  ).data;
  const query = elem("query", { xmlns: "http://jabber.org/protocol/disco#items" });
  const ask = (from: string, q = query) =>
    xml(onDiscoItems(closed, iq("get", q, from), q, ctx({ self: bareOf(from) === OWNER })));
  assert.deepEqual(ask(BALCONY), [
    `<iq type="result" id="q1" from="${OWNER}" to="${BALCONY}">` +
    `<query xmlns="http://jabber.org/protocol/disco#items">` +
    `<item jid="${OWNER}" node="${NICK}" name="Nicks"/>` +
    `<item jid="${OWNER}" node="urn:example:secret"/></query></iq>`,
  ]);
  assert.deepEqual(ask(ORCHARD), [
    `<iq type="result" id="q1" from="${OWNER}" to="${ORCHARD}">` +
    `<query xmlns="http://jabber.org/protocol/disco#items">` +
    `<item jid="${OWNER}" node="${NICK}" name="Nicks"/></query></iq>`,
  ]);
  assert.deepEqual(ask("mercutio@example.net/x"), [
    `<iq type="result" id="q1" from="${OWNER}" to="mercutio@example.net/x">` +
    `<query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
  ]);
  const withNode = elem("query", { xmlns: "http://jabber.org/protocol/disco#items", node: NICK });
  assert.match(ask(BALCONY, withNode)[0], /<item-not-found /);
});

function bareOf(jid: string): string {
  return jid.split("/")[0];
}

Deno.test("pep: retract removes the item and notifies when asked", () => {
  const options = optionsForm({ "pubsub#max_items": "5" });
  const data = published([[NICK, "a", "1"], [NICK, "b", "2"]], options);
  const c = ctx({ resourcesOf: (b) => b === OWNER ? [view(BALCONY, [`${NICK}+notify`])] : [] });
  const r = run(
    data,
    iq(
      "set",
      pubsub([elem("retract", { node: NICK, notify: "1" }, [elem("item", { id: "a" })])]),
    ),
    c,
  );
  assert.deepEqual(pepData(r.data).nodes[NICK].items.map((i) => i.id), ["b"]);
  assert.deepEqual(outs(r.outputs), [{
    kind: "deliver",
    to: BALCONY,
    xml: `<message type="headline" from="${OWNER}" to="${BALCONY}">` +
      `<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="${NICK}">` +
      `<retract id="a"/></items></event></message>`,
  }]);
  assert.deepEqual(xml(r), [`<iq type="result" id="q1" from="${OWNER}" to="${BALCONY}"/>`]);
  const missing = run(
    data,
    iq("set", pubsub([elem("retract", { node: NICK }, [elem("item", { id: "zz" })])])),
  );
  assert.match(xml(missing)[0], /<item-not-found /);
});

Deno.test("pep: configure get and set, delete", () => {
  const options = optionsForm({ "pubsub#max_items": "5" });
  const data = published([[NICK, "a", "1"], [NICK, "b", "2"]], options);
  const got =
    xml(run(data, iq("get", pubsub([elem("configure", { node: NICK })], NS_PUBSUB_OWNER))))[0];
  // Prosody's node configuration form, as the pubsub service's (pubsub_config.scs).
  assert.equal(
    got,
    `<iq type="result" id="q1" from="${OWNER}" to="${BALCONY}">` +
      `<pubsub xmlns="${NS_PUBSUB_OWNER}"><configure node="${NICK}">${pepForm("5", "none")}` +
      `</configure></pubsub></iq>`,
  );
  const form = elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    elem("field", { var: "pubsub#max_items" }, [elem("value", {}, ["1"])]),
  ]);
  const set = run(
    data,
    iq("set", pubsub([elem("configure", { node: NICK }, [form])], NS_PUBSUB_OWNER)),
  );
  assert.deepEqual(pepData(set.data).nodes[NICK].items.map((i) => i.id), ["b"]);
  assert.equal(pepData(set.data).nodes[NICK].config.maxItems, 1);
  const deleted = run(data, iq("set", pubsub([elem("delete", { node: NICK })], NS_PUBSUB_OWNER)));
  assert.deepEqual(pepData(deleted.data).nodes, {});
  assert.deepEqual(xml(deleted), [`<iq type="result" id="q1" from="${OWNER}" to="${BALCONY}"/>`]);
});

Deno.test("pep: last items go to a resource that gained interest, as access allows", () => {
  const data = published([[NICK, "a", "1"], ["urn:example:secret", "s", "x"]]);
  const out = lastItemsFor(data, OWNER, MUTUAL, ORCHARD, [
    `${NICK}+notify`,
    "urn:example:secret+notify",
  ]);
  assert.equal(out.length, 2);
  assert.deepEqual(out.map((o) => o.kind), ["route", "route"]);
  assert.deepEqual(lastItemsFor(data, OWNER, rosterWith([]), ORCHARD, [`${NICK}+notify`]), []);
  assert.deepEqual(lastItemsFor(data, OWNER, MUTUAL, ORCHARD, ["urn:other+notify"]), []);
  const own = lastItemsFor(data, OWNER, MUTUAL, BALCONY, [`${NICK}+notify`]);
  assert.deepEqual(own.map((o) => o.kind === "deliver" ? o.to : o.kind), [BALCONY]);
});

Deno.test("pep: XEP-0048 bookmarks convert to and from the XEP-0402 node", () => {
  const storage = elem("storage", { xmlns: "storage:bookmarks" }, [
    elem("conference", { jid: "play@conference.example", name: "Play", autojoin: "true" }, [
      elem("nick", {}, ["JC"]),
    ]),
  ]);
  const items = bookmarksFromLegacy(storage);
  assert.deepEqual(items.map((i) => [i.id, serialize(i.payload)]), [[
    "play@conference.example",
    `<conference xmlns="${NS_BOOKMARKS2}" name="Play" autojoin="true"><nick>JC</nick></conference>`,
  ]]);
  const data: PepData = {
    nodes: {
      [NS_BOOKMARKS2]: {
        config: BOOKMARKS_CONFIG,
        items: items.map((i) => ({ ...i, publisher: BALCONY })),
      },
    },
  };
  assert.equal(serialize(legacyBookmarks(data)), serialize(storage));
  // The legacy PEP node reads the same bookmarks.
  const r = run(data, iq("get", pubsub([elem("items", { node: "storage:bookmarks" })])));
  assert.match(xml(r)[0], /<item id="current"><storage xmlns="storage:bookmarks">/);
});

// --- Peer-supplied names (issue 9): node names and item ids are never prototype keys ----------

const PROTO_NAMES = ["constructor", "toString", "hasOwnProperty", "__proto__", "valueOf"];

function notFound(to = BALCONY): string {
  return `<iq type="error" id="q1" from="${OWNER}" to="${to}"><error type="cancel">` +
    `<item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`;
}

Deno.test("pep: a node named after a prototype property is unknown until published", () => {
  const data = published([[NICK, "a", "1"]]);
  const contact = ctx({ self: false });
  for (const node of PROTO_NAMES) {
    // Another user's request (the reproduction of issue 9) and the owner's own.
    const items = pubsub([elem("items", { node })]);
    assert.deepEqual(xml(run(data, iq("get", items, ORCHARD), contact)), [notFound(ORCHARD)]);
    assert.deepEqual(xml(run(undefined, iq("get", items, ORCHARD), contact)), [notFound(ORCHARD)]);
    assert.deepEqual(xml(run(data, iq("get", items))), [notFound()]);
    const retract = pubsub([elem("retract", { node }, [elem("item", { id: "a" })])]);
    assert.deepEqual(xml(run(data, iq("set", retract))), [notFound()]);
    const owner = (child: Element) => pubsub([child], NS_PUBSUB_OWNER);
    assert.deepEqual(xml(run(data, iq("get", owner(elem("configure", { node }))))), [notFound()]);
    const form = elem("x", { xmlns: "jabber:x:data", type: "submit" });
    assert.deepEqual(xml(run(data, iq("set", owner(elem("configure", { node }, [form]))))), [
      notFound(),
    ]);
    assert.deepEqual(xml(run(data, iq("set", owner(elem("delete", { node }))))), [notFound()]);
  }
});

Deno.test("pep: prototype names work as node names and item ids, and survive storage", () => {
  for (const node of PROTO_NAMES) {
    const withNick = published([[NICK, "a", "1"]]);
    const r = run(withNick, iq("set", publish(node, node, nick("P"))));
    assert.deepEqual(xml(r), [
      `<iq type="result" id="q1" from="${OWNER}" to="${BALCONY}">` +
      `<pubsub xmlns="${NS_PUBSUB}"><publish node="${node}"><item id="${node}"/></publish>` +
      `</pubsub></iq>`,
    ]);
    // Stored as JSON and read back: the node is an own property, the prototype untouched.
    const data = pepData(JSON.parse(JSON.stringify(r.data)));
    assert.deepEqual(Object.keys(data.nodes), [NICK, node]);
    assert.equal(Object.getPrototypeOf(data.nodes), Object.prototype);
    const got = run(data, iq("get", pubsub([elem("items", { node })])));
    assert.deepEqual(xml(got), [
      `<iq type="result" id="q1" from="${OWNER}" to="${BALCONY}">` +
      `<pubsub xmlns="${NS_PUBSUB}"><items node="${node}"><item id="${node}">` +
      `<nick xmlns="${NICK}">P</nick></item></items></pubsub></iq>`,
    ]);
    // Item ids: another prototype name is not an item of the node.
    const other = node === "toString" ? "valueOf" : "toString";
    const byId = run(
      data,
      iq("get", pubsub([elem("items", { node }, [elem("item", { id: other })])])),
    );
    assert.match(xml(byId)[0], new RegExp(`<items node="${node}"/>`));
    const retractOther = pubsub([elem("retract", { node }, [elem("item", { id: other })])]);
    assert.deepEqual(xml(run(data, iq("set", retractOther))), [notFound()]);
    const retract = pubsub([elem("retract", { node }, [elem("item", { id: node })])]);
    assert.deepEqual(pepData(run(data, iq("set", retract)).data).nodes[node].items, []);
    // Creating it again conflicts; deleting it leaves the other node.
    const create = pubsub([elem("create", { node })]);
    assert.match(xml(run(data, iq("set", create)))[0], /<conflict /);
    const deleted = run(data, iq("set", pubsub([elem("delete", { node })], NS_PUBSUB_OWNER)));
    assert.deepEqual(Object.keys(pepData(deleted.data).nodes), [NICK]);
    assert.equal(pepData(deleted.data).bytes, pepData(withNick).bytes);
    // A resource that wants the node gets its last item.
    const last = lastItemsFor(data, OWNER, MUTUAL, ORCHARD, [`${node}+notify`]);
    assert.equal(last.length, 1);
  }
});

Deno.test("pep: create and configure nodes named after prototype properties", () => {
  for (const node of PROTO_NAMES) {
    const created = run(undefined, iq("set", pubsub([elem("create", { node })])));
    assert.deepEqual(xml(created), [`<iq type="result" id="q1" from="${OWNER}" to="${BALCONY}"/>`]);
    assert.deepEqual(Object.keys(pepData(created.data).nodes), [node]);
    const form = elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
      elem("field", { var: "pubsub#title" }, [elem("value", {}, ["T"])]),
    ]);
    const set = run(
      created.data,
      iq("set", pubsub([elem("configure", { node }, [form])], NS_PUBSUB_OWNER)),
    );
    assert.deepEqual(xml(set), [`<iq type="result" id="q1" from="${OWNER}" to="${BALCONY}"/>`]);
    assert.equal(pepData(set.data).nodes[node].config.title, "T");
  }
});

// --- Bounds from ctx.limits (issue 9) --------------------------------------------------------

function limited(limits: Partial<typeof DEFAULT_LIMITS>): AccountIqCtx {
  return ctx({ limits: { ...DEFAULT_LIMITS, ...limits } });
}

function errorXml(condition: string, type: string, extra = "", text?: string): string {
  const t = text === undefined
    ? ""
    : `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">${text}</text>`;
  return `<iq type="error" id="q1" from="${OWNER}" to="${BALCONY}"><error type="${type}">` +
    `<${condition} xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>${t}${extra}</error></iq>`;
}

Deno.test("pep: limits.pepNodes caps the nodes, by publish and by create", () => {
  const c = limited({ pepNodes: 2 });
  let data: unknown = undefined;
  for (const node of ["urn:a", "urn:b"]) {
    data = run(data, iq("set", publish(node, "x", nick("1"))), c).data;
  }
  const tooMany = errorXml("resource-constraint", "wait", "", "Too many nodes");
  const third = run(data, iq("set", publish("urn:c", "x", nick("1"))), c);
  assert.deepEqual(xml(third), [tooMany]);
  assert.equal("data" in third, false);
  assert.deepEqual(xml(run(data, iq("set", pubsub([elem("create", { node: "urn:c" })])), c)), [
    tooMany,
  ]);
  // An existing node still takes items.
  assert.ok(run(data, iq("set", publish("urn:a", "y", nick("2"))), c).data !== undefined);
});

Deno.test("pep: limits.pepItems is max_items=max and the most a node may ask for", () => {
  const c = limited({ pepItems: 3 });
  let data: unknown = undefined;
  const max = optionsForm({ "pubsub#max_items": "max" });
  for (const id of ["a", "b", "c", "d", "e"]) {
    data = run(data, iq("set", publish(NICK, id, nick(id), max)), c).data;
  }
  assert.deepEqual(pepData(data).nodes[NICK].items.map((i) => i.id), ["c", "d", "e"]);
  const four = run(
    undefined,
    iq("set", publish(NICK, "a", nick("1"), optionsForm({ "pubsub#max_items": "4" }))),
    c,
  );
  assert.deepEqual(xml(four), [
    errorXml(
      "bad-request",
      "modify",
      `<invalid-options xmlns="http://jabber.org/protocol/pubsub#errors"/>`,
      "pubsub#max_items must be 1 to 3 or max",
    ),
  ]);
});

Deno.test("pep: an item over limits.pepItemBytes is payload-too-big (XEP-0060 §7.1.3.4)", () => {
  const c = limited({ pepItemBytes: 1024 });
  // `<nick xmlns="http://jabber.org/protocol/nick">` and `</nick>` are 53 bytes.
  const fits = run(undefined, iq("set", publish(NICK, "a", nick("x".repeat(1024 - 53)))), c);
  assert.match(xml(fits)[0], /type="result"/);
  const r = run(fits.data, iq("set", publish(NICK, "b", nick("x".repeat(1024 - 52)))), c);
  assert.deepEqual(xml(r), [
    errorXml(
      "not-acceptable",
      "modify",
      `<payload-too-big xmlns="http://jabber.org/protocol/pubsub#errors"/>`,
      "An item's payload is limited to 1024 bytes",
    ),
  ]);
  assert.equal("data" in r, false);
  assert.deepEqual(r.outputs, undefined);
});

Deno.test("pep: a publish past limits.pepBytes is resource-constraint; freeing space helps", () => {
  const c = limited({ pepBytes: 4096, pepItemBytes: 1024 });
  const max = optionsForm({ "pubsub#max_items": "max" });
  const big = (id: string) => publish(NICK, id, nick("x".repeat(900)), max);
  let data: unknown = undefined;
  let accepted = 0;
  let refused: AccountIqResult | undefined;
  for (let i = 0; i < 10 && refused === undefined; i++) {
    const r = run(data, iq("set", big(`i${i}`)), c);
    if ("data" in r) {
      data = r.data;
      accepted++;
    } else refused = r;
  }
  // Each item costs 953 bytes of payload, 2 of id and 26 of publisher: four fit in 4096.
  assert.equal(accepted, 4);
  assert.deepEqual(xml(refused!), [
    errorXml(
      "resource-constraint",
      "wait",
      "",
      "Personal eventing data is limited to 4096 bytes",
    ),
  ]);
  assert.equal(pepData(data).bytes, NICK.length + 4 * (953 + 2 + BALCONY.length));
  // Republishing an id replaces its item: the total does not grow.
  assert.ok("data" in run(data, iq("set", big("i0")), c));
  // Retracting one makes room for another.
  const retract = pubsub([elem("retract", { node: NICK }, [elem("item", { id: "i1" })])]);
  const freed = run(data, iq("set", retract), c).data;
  assert.ok("data" in run(freed, iq("set", big("i9")), c));
});

Deno.test("pep: the tracked size always equals the measured size", () => {
  const c = limited({ pepItems: 4 });
  let data: unknown = undefined;
  let seed = 7;
  const rand = (n: number) => (seed = (seed * 1103515245 + 12345) % 2147483648) % n;
  const nodes = ["urn:a", "urn:b", "__proto__", "constructor"];
  for (let step = 0; step < 300; step++) {
    const node = nodes[rand(nodes.length)];
    const id = `i${rand(6)}`;
    const op = rand(6);
    const payload = op === 0
      ? publish(node, id, nick("y".repeat(rand(50))), optionsForm({ "pubsub#max_items": "3" }))
      : op === 1
      ? pubsub([elem("retract", { node }, [elem("item", { id })])])
      : op === 2
      ? pubsub([elem("delete", { node })], NS_PUBSUB_OWNER)
      : op === 3
      ? pubsub([
        elem("configure", { node }, [
          elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
            elem("field", { var: "pubsub#title" }, [elem("value", {}, ["t".repeat(rand(9))])]),
            elem("field", { var: "pubsub#max_items" }, [elem("value", {}, [String(1 + rand(4))])]),
          ]),
        ]),
      ], NS_PUBSUB_OWNER)
      : publish(node, id, nick("z".repeat(rand(80))));
    const r = run(data, iq("set", payload), c);
    if ("data" in r) data = r.data;
    const stored = pepData(JSON.parse(JSON.stringify(data ?? {})));
    const measured = pepBytes({ nodes: stored.nodes });
    assert.equal(stored.bytes ?? 0, measured, `step ${step}`);
  }
});

Deno.test("pep: data stored before sizes were tracked is measured once", () => {
  const old = { nodes: pepData(published([[NICK, "a", "1"]])).nodes };
  const r = run(old, iq("set", publish("urn:b", "b", nick("2"))));
  assert.equal(pepData(r.data).bytes, pepBytes({ nodes: pepData(r.data).nodes }));
  assert.equal(
    pepData(r.data).bytes,
    nodeBytes(NICK, old.nodes[NICK]) + "urn:b".length + 1 + BALCONY.length +
      `<nick xmlns="${NICK}">2</nick>`.length,
  );
});

// --- pubsub#itemreply (XEP-0060 §16.4.4) ----------------------------------------------------

Deno.test("pep: itemreply=publisher puts the publisher's bare JID on notifications and items", () => {
  const c = ctx({
    resourcesOf: (bare) => bare === ROMEO ? [view(ORCHARD, [`${NICK}+notify`])] : [],
  });
  const options = optionsForm({ "pubsub#itemreply": "publisher" });
  const r = run(undefined, iq("set", publish(NICK, "current", nick("J"), options)), c);
  assert.deepEqual(outs(r.outputs), [{
    kind: "route",
    xml: `<message type="headline" from="${OWNER}" to="${ORCHARD}">` +
      `<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="${NICK}">` +
      `<item id="current" publisher="${OWNER}"><nick xmlns="${NICK}">J</nick></item>` +
      `</items></event></message>`,
  }]);
  assert.equal(pepData(r.data).nodes[NICK].config.itemreply, "publisher");
  const got = run(r.data, iq("get", pubsub([elem("items", { node: NICK })]), ORCHARD), {
    ...c,
    self: false,
  });
  assert.deepEqual(xml(got), [
    `<iq type="result" id="q1" from="${OWNER}" to="${ORCHARD}">` +
    `<pubsub xmlns="${NS_PUBSUB}"><items node="${NICK}">` +
    `<item id="current" publisher="${OWNER}"><nick xmlns="${NICK}">J</nick></item>` +
    `</items></pubsub></iq>`,
  ]);
  // The last item sent on interest carries it too.
  assert.deepEqual(outs(lastItemsFor(r.data, OWNER, MUTUAL, ORCHARD, [`${NICK}+notify`])), [{
    kind: "route",
    xml: `<message type="headline" from="${OWNER}" to="${ORCHARD}">` +
      `<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="${NICK}">` +
      `<item id="current" publisher="${OWNER}"><nick xmlns="${NICK}">J</nick></item>` +
      `</items></event></message>`,
  }]);
});

Deno.test("pep: itemreply is none by default, shown in the form, and set by the config form", () => {
  const data = published([[NICK, "a", "1"]]);
  const items = xml(run(data, iq("get", pubsub([elem("items", { node: NICK })]))))[0];
  assert.match(items, /<item id="a"><nick /);
  const form =
    xml(run(data, iq("get", pubsub([elem("configure", { node: NICK })], NS_PUBSUB_OWNER))))[0];
  assert.ok(form.includes(pepForm("1", "none")));
  // The default meets a precondition of none (Prosody's default), not one of owner.
  const same = run(
    data,
    iq("set", publish(NICK, "b", nick("2"), optionsForm({ "pubsub#itemreply": "none" }))),
  );
  assert.ok("data" in same);
  const owner = run(
    data,
    iq("set", publish(NICK, "b", nick("2"), optionsForm({ "pubsub#itemreply": "owner" }))),
  );
  assert.match(xml(owner)[0], /Field does not match: itemreply/);
  const submit = elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    elem("field", { var: "pubsub#itemreply" }, [elem("value", {}, ["publisher"])]),
  ]);
  const set = run(
    data,
    iq("set", pubsub([elem("configure", { node: NICK }, [submit])], NS_PUBSUB_OWNER)),
  );
  const after = xml(run(set.data, iq("get", pubsub([elem("items", { node: NICK })]))))[0];
  assert.match(after, new RegExp(`<item id="a" publisher="${OWNER}">`));
  const bad = elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    elem("field", { var: "pubsub#itemreply" }, [elem("value", {}, ["anyone"])]),
  ]);
  assert.deepEqual(
    xml(run(data, iq("set", pubsub([elem("configure", { node: NICK }, [bad])], NS_PUBSUB_OWNER)))),
    [errorXml("not-acceptable", "modify", "", "Invalid value for pubsub#itemreply")],
  );
  // Prosody's form sent back as it came (pubsub_preconditions.scs submits itemreply=none) is
  // taken; the values PEP does not serve are refused.
  const itemreply = run(
    set.data,
    iq(
      "set",
      pubsub(
        [elem("configure", { node: NICK }, [submitted("pubsub#itemreply", "none")])],
        NS_PUBSUB_OWNER,
      ),
    ),
  );
  assert.equal(pepData(itemreply.data).nodes[NICK].config.itemreply, "none");
  assert.deepEqual(
    xml(
      run(
        data,
        iq(
          "set",
          pubsub(
            [elem("configure", { node: NICK }, [submitted("pubsub#publish_model", "open")])],
            NS_PUBSUB_OWNER,
          ),
        ),
      ),
    ),
    [errorXml("not-acceptable", "modify", "", "pubsub#publish_model open is not supported")],
  );
});

/** A submitted node configuration form of one field. */
function submitted(field: string, value: string): Element {
  return elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    elem("field", { var: field }, [elem("value", {}, [value])]),
  ]);
}

/** PEP's node configuration form (Prosody's) with the default configuration but `max_items`. */
function pepForm(maxItems: string, itemreply: string): string {
  const option = (v: string, label = v) => `<option label="${label}"><value>${v}</value></option>`;
  const field = (v: string, type: string, label: string | undefined, inner = "") =>
    `<field var="${v}" type="${type}"${label === undefined ? "" : ` label="${label}"`}` +
    (inner === "" ? "/>" : `>${inner}</field>`);
  const value = (v: string) => `<value>${v}</value>`;
  return `<x xmlns="jabber:x:data" type="form">` +
    field(
      "FORM_TYPE",
      "hidden",
      undefined,
      value("http://jabber.org/protocol/pubsub#node_config"),
    ) +
    field("pubsub#title", "text-single", "Title") +
    field("pubsub#description", "text-single", "Description") +
    field(
      "pubsub#type",
      "text-single",
      "The type of node data, usually specified by the namespace of the payload (if any)",
    ) +
    field(
      "pubsub#max_items",
      "text-single",
      "Max # of items to persist",
      `<validate xmlns="http://jabber.org/protocol/xdata-validate" datatype="pubsub:integer-or-max">` +
        `<range min="1" max="256"/></validate>${value(maxItems)}`,
    ) +
    field("pubsub#persist_items", "boolean", "Persist items to storage", value("1")) +
    field(
      "pubsub#access_model",
      "list-single",
      "Specify the subscriber model",
      ["authorize", "open", "presence", "roster", "whitelist"].map((m) => option(m)).join("") +
        value("presence"),
    ) +
    field("pubsub#roster_groups_allowed", "list-multi", "Roster groups allowed to subscribe") +
    field(
      "pubsub#publish_model",
      "list-single",
      "Specify the publisher model",
      ["publishers", "subscribers", "open"].map((m) => option(m)).join("") + value("publishers"),
    ) +
    field(
      "pubsub#send_last_published_item",
      "list-single",
      undefined,
      ["never", "on_sub", "on_sub_and_presence"].map((m) => option(m)).join("") +
        value("on_sub_and_presence"),
    ) +
    field(
      "pubsub#deliver_notifications",
      "boolean",
      "Whether to deliver event notifications",
      value("1"),
    ) +
    field(
      "pubsub#deliver_payloads",
      "boolean",
      "Whether to deliver payloads with event notifications",
      value("1"),
    ) +
    field(
      "pubsub#notification_type",
      "list-single",
      "Specify the delivery style for notifications",
      option("normal", "Messages of type normal") +
        option("headline", "Messages of type headline") +
        value("headline"),
    ) +
    field(
      "pubsub#notify_delete",
      "boolean",
      "Whether to notify subscribers when the node is deleted",
      value("1"),
    ) +
    field(
      "pubsub#notify_retract",
      "boolean",
      "Whether to notify subscribers when items are removed from the node",
      value("1"),
    ) +
    field(
      "pubsub#itemreply",
      "list-single",
      "Specify whose JID to include as the publisher of items",
      option("owner", "Include the node owner&apos;s JID") +
        option("publisher", "Include the item publisher&apos;s JID") +
        option("none", "Don&apos;t include any JID with items") + value(itemreply),
    ) +
    `</x>`;
}
