import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import { reduceAccount } from "../../lib/account/account.ts";
import {
  type AccountCtx,
  type AccountOutput,
  type AccountState,
  NO_OFFLINE,
} from "../../lib/core/types.ts";
import { isBlocked } from "../../lib/modules/blocking.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import type { ResourceView } from "../../lib/core/types.ts";
import { messageDeliveries } from "../../lib/core/router.ts";
import { DELIVERY } from "../../lib/modules/registry.ts";
import { EMPTY_ROSTER, type Roster } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { bound, HOST, NOW, run, show, stanzaEvent, testCtx } from "../_ctx.ts";
import { NS_BLOCKING } from "../../lib/xmpp/namespaces.ts";

const ME = `user@${HOST}`;
const RES = `${ME}/res`;
const PHONE = `${ME}/phone`;
const ROMEO = `romeo@${HOST}`;
const ORCHARD = `${ROMEO}/orchard`;
const STAMP = new Date(NOW).toISOString().replace(/\.\d{3}Z$/, "Z");

const ROSTER: Roster = {
  ...EMPTY_ROSTER,
  items: { [ROMEO]: { jid: ROMEO, subscription: "both", groups: [] } },
};

function view(resource: string, over: Partial<ResourceView> = {}): ResourceView {
  return {
    fullJid: `${ME}/${resource}`,
    resource,
    priority: 0,
    available: true,
    interested: true,
    blocklistInterested: true,
    presence: stanza("presence", { from: `${ME}/${resource}` }),
    presenceAt: NOW,
    ...over,
  };
}

/**
 * `res` asked for the block list but never for the roster; `phone` asked for the roster only:
 * pushes follow the block list request (XEP-0191 §3.3), not roster interest.
 */
const RESOURCES = [
  view("res", { interested: false }),
  view("phone", { blocklistInterested: false }),
];

function accountCtx(resources: readonly ResourceView[] = RESOURCES): AccountCtx {
  let ids = 0;
  return {
    now: () => NOW,
    newId: () => `id${++ids}`,
    resourcesOf: (bare) => bare === ME ? resources : [],
    limits: { ...DEFAULT_LIMITS, offlineMessages: 100 },
    archive: { enabled: false, policy: "roster" },
    random: () => "r",
  };
}

function account(blocklist?: readonly string[]): AccountState {
  return {
    bare: ME,
    exists: true,
    roster: ROSTER,
    offline: NO_OFFLINE,
    lastArchived: 0,
    modules: { blocklist },
  };
}

function blockingIq(type: "get" | "set", name: string, jids: readonly string[]): Element {
  return stanza("iq", { type, id: "b1", from: RES }, [
    elem(name, { xmlns: NS_BLOCKING }, jids.map((jid) => elem("item", { jid }))),
  ]);
}

/** The serialized stanza of the first output (a route). */
function firstXml(out: readonly AccountOutput[]): string {
  const o = out[0];
  return o.kind === "route" || o.kind === "deliver" ? serializeTop(o.stanza) : "";
}

function shown(out: readonly AccountOutput[]) {
  return out.map((o) =>
    o.kind === "route" || o.kind === "deliver" ? { ...o, stanza: serializeTop(o.stanza) } : o
  );
}

Deno.test("blocking: items cover JIDs as XEP-0016 matches", () => {
  assert.equal(isBlocked([ROMEO], ORCHARD), true);
  assert.equal(isBlocked([ROMEO], ROMEO), true);
  assert.equal(isBlocked([ORCHARD], `${ROMEO}/other`), false);
  assert.equal(isBlocked([ORCHARD], ORCHARD), true);
  assert.equal(isBlocked(["example.org"], "anyone@example.org/r"), true);
  assert.equal(isBlocked(["example.org"], "anyone@example.com"), false);
  assert.equal(isBlocked([], ROMEO), false);
  assert.equal(isBlocked(undefined, ROMEO), false);
});

Deno.test("blocking: a get returns the list", () => {
  const [, out] = reduceAccount(
    account([ROMEO]),
    { kind: "module-iq", iq: blockingIq("get", "blocklist", []) },
    accountCtx(),
  );
  assert.deepEqual(shown(out), [{
    kind: "route",
    stanza: `<iq type="result" id="b1" to="${RES}"><blocklist xmlns="${NS_BLOCKING}">` +
      `<item jid="${ROMEO}"/></blocklist></iq>`,
  }]);
});

Deno.test("blocking: a block stores, updates sessions, answers, pushes, and goes dark", () => {
  const [next, out] = reduceAccount(
    account(),
    { kind: "module-iq", iq: blockingIq("set", "block", [ROMEO]) },
    accountCtx(),
  );
  assert.deepEqual(next.modules.blocklist, [ROMEO]);
  assert.deepEqual(shown(out), [
    { kind: "store-module", store: "blocklist", data: [ROMEO] },
    { kind: "blocklist", blocklist: [ROMEO] },
    { kind: "route", stanza: `<iq type="result" id="b1" to="${RES}"/>` },
    {
      kind: "deliver",
      to: RES,
      stanza: `<iq type="set" id="id1" to="${RES}"><block xmlns="${NS_BLOCKING}">` +
        `<item jid="${ROMEO}"/></block></iq>`,
    },
    {
      kind: "route",
      stanza: `<presence type="unavailable" from="${RES}" to="${ROMEO}"/>`,
    },
    {
      kind: "route",
      stanza: `<presence type="unavailable" from="${PHONE}" to="${ROMEO}"/>`,
    },
  ]);
});

Deno.test("blocking: a block without items is a bad request; a bad JID is malformed", () => {
  for (const [jids, condition] of [[[], "bad-request"], [["@bad"], "jid-malformed"]] as const) {
    const s = account();
    const [next, out] = reduceAccount(
      s,
      { kind: "module-iq", iq: blockingIq("set", "block", jids) },
      accountCtx(),
    );
    assert.equal(next, s);
    assert.equal(out.length, 1);
    assert.match(firstXml(out), new RegExp(`<${condition} `));
  }
});

Deno.test("blocking: unblock all empties the list and shows the presence again", () => {
  const [next, out] = reduceAccount(
    account([ROMEO, "other@example.org"]),
    { kind: "module-iq", iq: blockingIq("set", "unblock", []) },
    accountCtx([view("res")]),
  );
  assert.equal(next.modules.blocklist, undefined);
  assert.deepEqual(shown(out), [
    { kind: "store-module", store: "blocklist", data: undefined },
    { kind: "blocklist", blocklist: [] },
    { kind: "route", stanza: `<iq type="result" id="b1" to="${RES}"/>` },
    {
      kind: "deliver",
      to: RES,
      stanza: `<iq type="set" id="id1" to="${RES}"><unblock xmlns="${NS_BLOCKING}"/></iq>`,
    },
    {
      kind: "route",
      stanza: `<presence from="${RES}" to="${ROMEO}">` +
        `<delay xmlns="urn:xmpp:delay" from="${HOST}" stamp="${STAMP}"/></presence>`,
    },
  ]);
});

Deno.test("blocking: someone else's blocking iq is not served", () => {
  const iq = stanza("iq", { type: "get", id: "x", from: `other@${HOST}/r`, to: ME }, [
    elem("blocklist", { xmlns: NS_BLOCKING }),
  ]);
  const [, out] = reduceAccount(account(), { kind: "module-iq", iq }, accountCtx());
  assert.match(firstXml(out), /<service-unavailable /);
});

Deno.test("blocking: the account bounces messages and drops presence from a blocked JID", () => {
  const msg = stanza("message", { type: "chat", from: ORCHARD, to: ME, id: "m" }, [
    elem("body", {}, ["hi"]),
  ]);
  for (const kind of ["incoming-message", "offline-message"] as const) {
    const [, out] = reduceAccount(account([ROMEO]), { kind, stanza: msg }, accountCtx());
    assert.deepEqual(shown(out), [{
      kind: "route",
      stanza: `<message type="error" id="m" from="${ME}" to="${ORCHARD}"><error type="cancel">` +
        `<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`,
    }]);
  }
  const sub = stanza("presence", { type: "subscribe", from: ROMEO, to: ME });
  const [s2, out2] = reduceAccount(
    account([ROMEO]),
    { kind: "inbound-subscription", stanza: sub },
    accountCtx(),
  );
  assert.deepEqual(out2, []);
  assert.deepEqual(s2.roster, ROSTER);
  const probe = stanza("presence", { type: "probe", from: ORCHARD, to: ME });
  assert.deepEqual(
    reduceAccount(account([ROMEO]), { kind: "probe", stanza: probe }, accountCtx())[1],
    [],
  );
});

Deno.test("blocking: the router bounces a blocked sender's message once, with no copies", () => {
  const msg = stanza("message", { type: "chat", from: ORCHARD, to: ME, id: "m" });
  const resources = RESOURCES.map((r) => ({
    ...r,
    blocklist: [ROMEO],
    modules: { carbons: true },
  }));
  const out = messageDeliveries(msg, ME, undefined, resources, DELIVERY);
  assert.equal(out.length, 1);
  assert.equal(out[0].kind, "bounce");
});

Deno.test("blocking: the session refuses messages and iqs to a blocked JID, drops presence", () => {
  const s = bound({ blocklist: [ROMEO] });
  const msg = stanza("message", { type: "chat", to: ORCHARD, id: "m" }, [
    elem("body", {}, ["x"]),
  ]);
  const { outputs } = run(s, [stanzaEvent(msg)], testCtx());
  assert.deepEqual(show(outputs), [{
    kind: "send",
    xml: `<message type="error" id="m" from="${ORCHARD}" to="${RES}"><error type="cancel">` +
      `<not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
      `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">You have blocked this JID</text>` +
      `<blocked xmlns="urn:xmpp:blocking:errors"/></error></message>`,
  }]);
  const directed = stanza("presence", { to: ROMEO });
  assert.deepEqual(run(s, [stanzaEvent(directed)], testCtx()).outputs, []);
  // Broadcast presence skips the blocked contact but reaches the others.
  const roster: Roster = {
    ...EMPTY_ROSTER,
    items: {
      [ROMEO]: { jid: ROMEO, subscription: "both", groups: [] },
      [`ann@${HOST}`]: { jid: `ann@${HOST}`, subscription: "from", groups: [] },
    },
  };
  const { outputs: bcast } = run(
    bound({ blocklist: [ROMEO], roster }),
    [stanzaEvent(stanza("presence"))],
    testCtx(),
  );
  const routed = bcast.flatMap((o) => o.kind === "route" ? [o.stanza.attrs.to] : []);
  assert.deepEqual(routed, [`ann@${HOST}`]);
});

Deno.test("blocking: inbound iqs from a blocked JID bounce, presence is dropped", () => {
  const s = bound({ blocklist: [ROMEO] });
  const iq = stanza("iq", { type: "get", id: "q", from: ORCHARD, to: RES }, [
    elem("query", { xmlns: "jabber:iq:version" }),
  ]);
  const { outputs } = run(s, [{ kind: "inbound", stanza: iq }], testCtx());
  assert.equal(outputs.length, 1);
  assert.equal(outputs[0].kind, "route");
  const pres = stanza("presence", { from: ORCHARD, to: RES });
  assert.deepEqual(run(s, [{ kind: "inbound", stanza: pres }], testCtx()).outputs, []);
  // Anyone else still gets through.
  const other = stanza("presence", { from: `ann@${HOST}/a`, to: RES });
  assert.deepEqual(show(run(s, [{ kind: "inbound", stanza: other }], testCtx()).outputs), [{
    kind: "send",
    xml: `<presence from="ann@${HOST}/a" to="${RES}"/>`,
  }]);
});

Deno.test("blocking: the session keeps the list it is sent", () => {
  const { session } = run(bound(), [{ kind: "blocklist", blocklist: [ROMEO] }], testCtx());
  assert.deepEqual(session.blocklist, [ROMEO]);
});

// ---------------------------------------------------------------------------------------------
// Bounds (issue 9): an indexed list, O(1) per stanza, capped in items and bytes.

/** A list whose element reads are counted: what a check costs in the size of the list. */
function counted(list: readonly string[]): { list: readonly string[]; reads: () => number } {
  let reads = 0;
  const proxy = new Proxy(list as string[], {
    get(target, key, receiver) {
      if (typeof key === "string" && /^\d+$/.test(key)) reads++;
      return Reflect.get(target, key, receiver);
    },
  });
  return { list: proxy, reads: () => reads };
}

const MANY = Array.from({ length: 2000 }, (_, i) => `u${i}@example.org`);

Deno.test("blocking: checks read the list once (to index it), not once per stanza", () => {
  const { list, reads } = counted([...MANY, ROMEO]);
  assert.equal(isBlocked(list, ORCHARD), true);
  const indexing = reads();
  for (let i = 0; i < 100; i++) {
    assert.equal(isBlocked(list, ORCHARD), true);
    assert.equal(isBlocked(list, `ann@${HOST}/a`), false);
  }
  assert.equal(reads(), indexing);
  // The session's copy: every stanza it sends or receives is checked without reading the list.
  const s = bound({ blocklist: list });
  const msg = (i: number) =>
    stanza("message", { type: "chat", to: `ann@${HOST}`, id: `m${i}` }, [elem("body", {}, ["x"])]);
  run(s, Array.from({ length: 50 }, (_, i) => stanzaEvent(msg(i))), testCtx());
  const pres = stanza("presence", { from: `ann@${HOST}/a`, to: RES });
  run(s, Array.from({ length: 50 }, () => ({ kind: "inbound" as const, stanza: pres })), testCtx());
  assert.equal(reads(), indexing);
});

Deno.test("blocking: the account's screen reads its stored list once, not once per stanza", () => {
  const { list, reads } = counted([...MANY, ROMEO]);
  const state = account(list);
  const msg = (from: string) =>
    stanza("message", { type: "chat", from, to: ME, id: "m" }, [elem("body", {}, ["hi"])]);
  reduceAccount(state, { kind: "offline-message", stanza: msg(ORCHARD) }, accountCtx());
  const indexing = reads();
  for (let i = 0; i < 50; i++) {
    const [, out] = reduceAccount(
      state,
      { kind: "offline-message", stanza: msg(ORCHARD) },
      accountCtx(),
    );
    assert.match(firstXml(out), /<service-unavailable /);
  }
  assert.equal(reads(), indexing);
});

Deno.test("blocking: items match full JID, bare JID, domain and domain/resource only", () => {
  const list = [`a@x.org/r`, `b@x.org`, `y.org`, `z.org/r`];
  const cases: readonly [string, boolean][] = [
    ["a@x.org/r", true],
    ["a@x.org/other", false],
    ["a@x.org", false],
    ["b@x.org", true],
    ["b@x.org/any", true],
    ["c@x.org", false],
    ["y.org", true],
    ["anyone@y.org/r", true],
    ["z.org/r", true],
    ["z.org", false],
    ["someone@z.org/r", false],
    ["x.org", false],
  ];
  for (const [jid, blocked] of cases) assert.equal(isBlocked(list, jid), blocked, jid);
});

Deno.test("blocking: a block past blocklist_items is resource-constraint, nothing stored", () => {
  const ctx = { ...accountCtx(), limits: { ...DEFAULT_LIMITS, blocklistItems: 3 } };
  const s = account(["a@example.org", "b@example.org"]);
  const [next, out] = reduceAccount(
    s,
    { kind: "module-iq", iq: blockingIq("set", "block", ["c@example.org", "d@example.org"]) },
    ctx,
  );
  assert.equal(next, s);
  assert.equal(out.length, 1);
  assert.match(firstXml(out), /<error type="wait"><resource-constraint /);
  // Up to the cap is fine, and blocking what is already blocked adds nothing.
  const [full] = reduceAccount(
    s,
    { kind: "module-iq", iq: blockingIq("set", "block", ["c@example.org", "a@example.org"]) },
    ctx,
  );
  assert.deepEqual(full.modules.blocklist, ["a@example.org", "b@example.org", "c@example.org"]);
  const [again, out2] = reduceAccount(
    full,
    { kind: "module-iq", iq: blockingIq("set", "block", ["b@example.org"]) },
    ctx,
  );
  assert.deepEqual(again.modules.blocklist, full.modules.blocklist);
  assert.ok(out2.some((o) => o.kind === "route" && o.stanza.attrs.type === "result"));
});

Deno.test("blocking: a block past blocklist_bytes is resource-constraint, nothing stored", () => {
  const ctx = { ...accountCtx(), limits: { ...DEFAULT_LIMITS, blocklistBytes: 1024 } };
  const long = (i: number) => `${"x".repeat(200)}${i}@example.org`;
  const s = account([long(1), long(2), long(3), long(4)]);
  const [next, out] = reduceAccount(
    s,
    { kind: "module-iq", iq: blockingIq("set", "block", [long(5)]) },
    ctx,
  );
  assert.equal(next, s);
  assert.match(firstXml(out), /<resource-constraint /);
});

Deno.test("blocking: a blocklist get marks the session for pushes; a roster get does not", () => {
  const get = stanza("iq", { type: "get", id: "g" }, [elem("blocklist", { xmlns: NS_BLOCKING })]);
  const { session, outputs } = run(bound(), [stanzaEvent(get)], testCtx());
  assert.equal(session.blocklistInterested, true);
  assert.deepEqual(outputs.map((o) => o.kind), ["account"]);
  const roster = stanza("iq", { type: "get", id: "r" }, [
    elem("query", { xmlns: "jabber:iq:roster" }),
  ]);
  assert.notEqual(run(bound(), [stanzaEvent(roster)], testCtx()).session.blocklistInterested, true);
  // A block request alone does not ask for pushes either (XEP-0191 §3.3: "requested the list").
  const block = stanza("iq", { type: "set", id: "b" }, [
    elem("block", { xmlns: NS_BLOCKING }, [elem("item", { jid: ROMEO })]),
  ]);
  assert.notEqual(run(bound(), [stanzaEvent(block)], testCtx()).session.blocklistInterested, true);
});
