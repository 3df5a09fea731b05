import assert from "node:assert/strict";
import { MAX_PRIVATE_BYTES, onPrivateIq } from "../../lib/reducers/private.ts";
import { serializeTop } from "../../lib/reducers/stream_xml.ts";
import type { AccountIqCtx } from "../../lib/reducers/types.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { HOST, NOW } from "./_ctx.ts";

const HAMLET = `hamlet@${HOST}`;
const DENMARK = `${HAMLET}/denmark`;
const MACBETH = `macbeth@${HOST}/castle`;
const NS = "jabber:iq:private";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

const SELF: AccountIqCtx = { bare: HAMLET, self: true, now: NOW };
const OTHER: AccountIqCtx = { bare: HAMLET, self: false, now: NOW };

function query(children: readonly Element[] = []): Element {
  return elem("query", { xmlns: NS }, children);
}

function iq(type: "get" | "set", payload: Element, from = DENMARK, to?: string): Element {
  return stanza("iq", { type, id: "p1", from, to }, [payload]);
}

const PREFS = elem("exodus", { xmlns: "exodus:prefs" }, [elem("defaultnick", {}, ["Hamlet"])]);
const EMPTY_PREFS = elem("exodus", { xmlns: "exodus:prefs" });
const BOOKMARKS = elem("storage", { xmlns: "storage:bookmarks" }, [
  elem("conference", { jid: "elsinore@conference.example.com", autojoin: "true" }),
]);

function replies(r: { readonly replies: readonly Element[] }): string[] {
  return r.replies.map(serializeTop);
}

function error(condition: string, type: string, text?: string, from?: string): string {
  const t = text === undefined ? "" : `<text xmlns="${STANZAS}" xml:lang="en">${text}</text>`;
  const f = from === undefined ? "" : ` from="${from}"`;
  const to = from === undefined ? DENMARK : MACBETH;
  return `<iq type="error" id="p1"${f} to="${to}"><error type="${type}">` +
    `<${condition} xmlns="${STANZAS}"/>${t}</error></iq>`;
}

Deno.test("private: a get of nothing stored returns the requested element empty", () => {
  const r = onPrivateIq(undefined, iq("get", query([EMPTY_PREFS])), query([EMPTY_PREFS]), SELF);
  assert.deepEqual(replies(r), [
    `<iq type="result" id="p1" to="${DENMARK}">` +
    `<query xmlns="${NS}"><exodus xmlns="exodus:prefs"/></query></iq>`,
  ]);
  assert.equal("data" in r, false);
});

Deno.test("private: set then get round trip, keyed by name and namespace", () => {
  const set = onPrivateIq(undefined, iq("set", query([PREFS])), query([PREFS]), SELF);
  assert.deepEqual(replies(set), [`<iq type="result" id="p1" to="${DENMARK}"/>`]);
  assert.deepEqual(set.data, { "exodus:exodus:prefs": PREFS });
  const get = onPrivateIq(set.data, iq("get", query([EMPTY_PREFS])), query([EMPTY_PREFS]), SELF);
  assert.deepEqual(replies(get), [
    `<iq type="result" id="p1" to="${DENMARK}"><query xmlns="${NS}">` +
    `<exodus xmlns="exodus:prefs"><defaultnick>Hamlet</defaultnick></exodus></query></iq>`,
  ]);
});

Deno.test("private: a set keeps other fragments and stores each child; empty clears", () => {
  const stored = { "exodus:exodus:prefs": PREFS };
  const both = onPrivateIq(stored, iq("set", query([BOOKMARKS])), query([BOOKMARKS]), SELF);
  assert.deepEqual(both.data, {
    "exodus:exodus:prefs": PREFS,
    "storage:storage:bookmarks": BOOKMARKS,
  });
  const cleared = onPrivateIq(
    both.data,
    iq("set", query([EMPTY_PREFS])),
    query([EMPTY_PREFS]),
    SELF,
  );
  assert.deepEqual(cleared.data, { "storage:storage:bookmarks": BOOKMARKS });
  const empty = elem("storage", { xmlns: "storage:bookmarks" });
  const none = onPrivateIq(cleared.data, iq("set", query([empty])), query([empty]), SELF);
  // Nothing left: the store is deleted.
  assert.equal("data" in none, true);
  assert.equal(none.data, undefined);
});

Deno.test("private: another user's storage is forbidden, get or set", () => {
  for (const type of ["get", "set"] as const) {
    const r = onPrivateIq(
      { "exodus:exodus:prefs": PREFS },
      iq(type, query([PREFS]), MACBETH, HAMLET),
      query([PREFS]),
      OTHER,
    );
    assert.deepEqual(replies(r), [error("forbidden", "auth", undefined, HAMLET)]);
    assert.equal("data" in r, false);
  }
});

Deno.test("private: an empty query is not-acceptable (XEP-0049 §2.3)", () => {
  const r = onPrivateIq(undefined, iq("get", query()), query(), SELF);
  assert.deepEqual(replies(r), [error("not-acceptable", "modify", "No element to get or set")]);
});

Deno.test("private: reserved namespaces are refused with not-acceptable", () => {
  for (
    const el of [
      elem("vCard", { xmlns: "vcard-temp" }, [elem("FN", {}, ["Hamlet"])]),
      elem("query", { xmlns: "jabber:iq:roster" }),
      elem("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
      // Without a namespace of its own, the fragment is in jabber:iq:private.
      elem("prefs", { xmlns: NS }),
    ]
  ) {
    const r = onPrivateIq(undefined, iq("set", query([el])), query([el]), SELF);
    assert.deepEqual(replies(r), [error("not-acceptable", "modify", "The namespace is reserved")]);
    assert.equal("data" in r, false);
  }
});

Deno.test("private: a get of two namespaces at once is a bad request", () => {
  const payload = query([EMPTY_PREFS, elem("storage", { xmlns: "storage:bookmarks" })]);
  const r = onPrivateIq(undefined, iq("get", payload), payload, SELF);
  assert.deepEqual(replies(r), [error("bad-request", "modify", "Get one element at a time")]);
});

Deno.test("private: a set past the quota stores nothing", () => {
  const big = elem("notes", { xmlns: "storage:rosternotes" }, ["x".repeat(MAX_PRIVATE_BYTES)]);
  const r = onPrivateIq(undefined, iq("set", query([big])), query([big]), SELF);
  assert.deepEqual(replies(r), [
    error("not-acceptable", "modify", `Private storage is limited to ${MAX_PRIVATE_BYTES} bytes`),
  ]);
  assert.equal("data" in r, false);
});
