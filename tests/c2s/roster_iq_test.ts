import assert from "node:assert/strict";
import { reduce } from "../../lib/c2s/mod.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { bound, HOST, record, show, stanzaEvent, testCtx } from "../_ctx.ts";
import { NS_ROSTER } from "../../lib/xmpp/namespaces.ts";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const BARE = `user@${HOST}`;
const ME = `${BARE}/res`;

function rosterIq(
  type: string,
  items: readonly Element[] = [],
  attrs: Readonly<Record<string, string>> = {},
): Element {
  return stanza("iq", { type, id: "r1", ...attrs }, [elem("query", { xmlns: NS_ROSTER }, items)]);
}

function item(attrs: Readonly<Record<string, string>>, groups: readonly string[] = []): Element {
  return elem("item", attrs, groups.map((g) => elem("group", {}, [g])));
}

for (const to of [undefined, BARE, "USER@example.com"]) {
  Deno.test(`roster iq: get (to ${to}) makes the resource interested and asks the account`, () => {
    const s = bound();
    assert.equal(s.interested, false);
    const iq = rosterIq("get", [], to === undefined ? {} : { to });
    const [next, out] = reduce(s, stanzaEvent(iq), testCtx());
    const stamped = stanza("iq", { type: "get", id: "r1", ...(to ? { to: BARE } : {}), from: ME }, [
      elem("query", { xmlns: NS_ROSTER }),
    ]);
    assert.deepEqual(out, [{
      kind: "account",
      bare: BARE,
      op: { kind: "roster-get", iq: stamped },
    }]);
    assert.deepEqual(record(next), record({ ...s, interested: true }));
  });
}

const SET_ERRORS: readonly {
  readonly name: string;
  readonly items: readonly Element[];
  readonly condition: string;
  readonly type: string;
  readonly text: string;
}[] = [
  {
    name: "two items -> bad-request",
    items: [item({ jid: "romeo@example.com" }), item({ jid: "nurse@example.com" })],
    condition: "bad-request",
    type: "modify",
    text: "More than one item",
  },
  {
    name: "no item -> bad-request",
    items: [],
    condition: "bad-request",
    type: "modify",
    text: "No roster item",
  },
  {
    name: "the user's own JID -> not-allowed",
    items: [item({ jid: "User@Example.com" })],
    condition: "not-allowed",
    type: "cancel",
    text: "The roster cannot hold your own JID",
  },
  {
    name: "an empty group -> not-acceptable",
    items: [item({ jid: "romeo@example.com" }, [""])],
    condition: "not-acceptable",
    type: "modify",
    text: "A group name is empty",
  },
];

for (const c of SET_ERRORS) {
  Deno.test(`roster iq: set with ${c.name}, answered by the session`, () => {
    const s = bound();
    const [next, out] = reduce(s, stanzaEvent(rosterIq("set", c.items)), testCtx());
    assert.deepEqual(show(out), [{
      kind: "send",
      xml: `<iq type="error" id="r1" to="${ME}"><error type="${c.type}">` +
        `<${c.condition} xmlns="${STANZAS}"/>` +
        `<text xmlns="${STANZAS}" xml:lang="en">${c.text}</text></error></iq>`,
    }]);
    assert.equal(next, s);
  });
}

Deno.test("roster iq: a valid update set goes to the account with the parsed change", () => {
  const s = bound();
  const iq = rosterIq("set", [item({ jid: "Romeo@Example.com", name: "Romeo" }, ["Friends"])]);
  const [next, out] = reduce(s, stanzaEvent(iq), testCtx());
  assert.deepEqual(out, [{
    kind: "account",
    bare: BARE,
    op: {
      kind: "roster-set",
      iq: { ...iq, attrs: { ...iq.attrs, from: ME } },
      change: { kind: "update", jid: "romeo@example.com", name: "Romeo", groups: ["Friends"] },
    },
  }]);
  // A set does not make the resource interested: only a get does (RFC 6121 §2.1.6).
  assert.equal(next, s);
});

Deno.test("roster iq: a valid remove set goes to the account", () => {
  const s = bound();
  const iq = rosterIq("set", [item({ jid: "romeo@example.com", subscription: "remove" })]);
  const [, out] = reduce(s, stanzaEvent(iq), testCtx());
  assert.equal(out.length, 1);
  const [o] = out;
  assert.equal(o.kind, "account");
  assert.deepEqual(
    o.kind === "account" && o.op.kind === "roster-set" ? o.op.change : undefined,
    { kind: "remove", jid: "romeo@example.com" },
  );
});

Deno.test("roster iq: a roster query to another user's JID is routed, not handled as own", () => {
  for (const to of ["romeo@example.com", "romeo@example.com/orchard"]) {
    const s = bound();
    const [next, out] = reduce(s, stanzaEvent(rosterIq("get", [], { to })), testCtx());
    assert.deepEqual(show(out), [{
      kind: "route",
      xml: `<iq type="get" id="r1" to="${to}" from="${ME}"><query xmlns="${NS_ROSTER}"/></iq>`,
    }], to);
    assert.equal(next.interested, false, to);
  }
});

Deno.test("roster iq: results and errors from the client (push acks) are not roster requests", () => {
  const s = bound();
  for (const type of ["result", "error"]) {
    const [next, out] = reduce(s, stanzaEvent(rosterIq(type)), testCtx());
    assert.deepEqual(out, [], type);
    assert.equal(next, s, type);
  }
});

Deno.test("roster iq: a roster query to the server's domain is not the account's", () => {
  const s = bound();
  const [next, out] = reduce(s, stanzaEvent(rosterIq("get", [], { to: HOST })), testCtx());
  assert.deepEqual(show(out), [{
    kind: "send",
    xml: `<iq type="error" id="r1" from="${HOST}" to="${ME}">` +
      `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/></error></iq>`,
  }]);
  assert.equal(next, s);
});
