import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import {
  type AccountIqCtx,
  type AccountIqResult,
  type ResourceView,
} from "../../lib/reducers/types.ts";
import {
  BOOKMARKS_CONFIG,
  bookmarksFromLegacy,
  lastItemsFor,
  legacyBookmarks,
  NS_BOOKMARKS2,
  NS_PUBSUB,
  NS_PUBSUB_OWNER,
  onPubsubIq,
  onPubsubOwnerIq,
  type PepData,
  pepData,
} from "../../lib/reducers/pep.ts";
import type { AccountOutput } from "../../lib/reducers/account.ts";
import type { Roster, RosterItem } from "../../lib/session.ts";
import { elem, type Element, serialize, stanza } from "../../lib/xml/element.ts";
import { serializeTop } from "../../lib/reducers/stream_xml.ts";

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
  assert.match(got, /<field type="text-single" var="pubsub#max_items"><value>5<\/value><\/field>/);
  assert.match(got, /var="pubsub#access_model">.*<value>presence<\/value><\/field>/);
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
