import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import { reduceAccount } from "../../lib/account/account.ts";
import { type AccountCtx, type AccountState } from "../../lib/core/types.ts";
import { BOOKMARKS_CONFIG, legacyBookmarks } from "../../lib/modules/pep.ts";
import { onPrivateIq } from "../../lib/modules/private.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import type { AccountIqCtx } from "../../lib/core/types.ts";
import { EMPTY_ROSTER } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { HOST, NOW } from "../_ctx.ts";

const HAMLET = `hamlet@${HOST}`;
const DENMARK = `${HAMLET}/denmark`;
const MACBETH = `macbeth@${HOST}/castle`;
const NS = "jabber:iq:private";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

const SELF: AccountIqCtx = {
  bare: HAMLET,
  self: true,
  now: NOW,
  limits: DEFAULT_LIMITS,
  newId: () => "id",
};

function query(children: readonly Element[] = []): Element {
  return elem("query", { xmlns: NS }, children);
}

function iq(type: "get" | "set", payload: Element, from = DENMARK, to?: string): Element {
  return stanza("iq", { type, id: "p1", from, to }, [payload]);
}

const PREFS = elem("exodus", { xmlns: "exodus:prefs" }, [elem("defaultnick", {}, ["Hamlet"])]);
const EMPTY_PREFS = elem("exodus", { xmlns: "exodus:prefs" });
/** The roster group delimiter (XEP-0083), a common private fragment. */
const DELIMITER = elem("roster", { xmlns: "roster:delimiter" }, ["::"]);
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
  const both = onPrivateIq(stored, iq("set", query([DELIMITER])), query([DELIMITER]), SELF);
  assert.deepEqual(both.data, {
    "exodus:exodus:prefs": PREFS,
    "roster:roster:delimiter": DELIMITER,
  });
  const cleared = onPrivateIq(
    both.data,
    iq("set", query([EMPTY_PREFS])),
    query([EMPTY_PREFS]),
    SELF,
  );
  assert.deepEqual(cleared.data, { "roster:roster:delimiter": DELIMITER });
  const empty = elem("roster", { xmlns: "roster:delimiter" });
  const none = onPrivateIq(cleared.data, iq("set", query([empty])), query([empty]), SELF);
  // Nothing left: the store is deleted.
  assert.equal("data" in none, true);
  assert.equal(none.data, undefined);
});

Deno.test("private: another user's storage is forbidden, get or set", () => {
  // The module declares who may ask; the account reducer refuses before the handler runs.
  const state: AccountState = {
    bare: HAMLET,
    exists: true,
    roster: EMPTY_ROSTER,
    offline: { count: 0, bytes: 0 },
    lastArchived: 0,
    modules: { private: { "exodus:exodus:prefs": PREFS }, pep: undefined },
  };
  const ctx: AccountCtx = {
    now: () => NOW,
    newId: () => "id",
    resourcesOf: () => [],
    limits: DEFAULT_LIMITS,
    archive: { enabled: false, policy: "roster" },
    random: () => "rnd",
  };
  for (const type of ["get", "set"] as const) {
    const op = { kind: "module-iq" as const, iq: iq(type, query([PREFS]), MACBETH, HAMLET) };
    const [after, out] = reduceAccount(state, op, ctx);
    assert.equal(after, state);
    assert.deepEqual(
      out.map((o) => o.kind === "route" ? serializeTop(o.stanza) : o.kind),
      [error("forbidden", "auth", undefined, HAMLET)],
    );
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

Deno.test("private: a set past limits.privateBytes stores nothing", () => {
  const limits = { ...DEFAULT_LIMITS, privateBytes: 2048 };
  const ctx = { ...SELF, limits };
  // 2048 bytes exactly: `<notes xmlns="storage:rosternotes">` and `</notes>` are 43 bytes.
  const fits = elem("notes", { xmlns: "storage:rosternotes" }, ["x".repeat(2048 - 43)]);
  const ok = onPrivateIq(undefined, iq("set", query([fits])), query([fits]), ctx);
  assert.deepEqual(replies(ok), [`<iq type="result" id="p1" to="${DENMARK}"/>`]);
  assert.deepEqual(ok.data, { "notes:storage:rosternotes": fits });
  // One more fragment of any size goes past it.
  const r = onPrivateIq(ok.data, iq("set", query([DELIMITER])), query([DELIMITER]), ctx);
  assert.deepEqual(replies(r), [
    error("not-acceptable", "modify", "Private storage is limited to 2048 bytes"),
  ]);
  assert.equal("data" in r, false);
  // The default limit still takes what it did before.
  const big = elem("notes", { xmlns: "storage:rosternotes" }, ["x".repeat(4096)]);
  assert.equal(
    onPrivateIq(undefined, iq("set", query([big])), query([big]), SELF).data !== undefined,
    true,
  );
});

// --- XEP-0402 §5: XEP-0048 bookmarks in private storage are the PEP bookmarks -----------------

const ELSINORE = "elsinore@conference.example.com";
const PEP_BOOKMARK = elem("conference", { xmlns: "urn:xmpp:bookmarks:1", autojoin: "true" }, [
  elem("nick", {}, ["Hamlet"]),
]);
const PEP_WITH_BOOKMARKS = {
  nodes: {
    "urn:xmpp:bookmarks:1": {
      config: BOOKMARKS_CONFIG,
      items: [{ id: ELSINORE, payload: PEP_BOOKMARK, publisher: HAMLET }],
    },
  },
};

Deno.test("private: a get of storage:bookmarks reads the PEP bookmarks", () => {
  const wanted = elem("storage", { xmlns: "storage:bookmarks" });
  const r = onPrivateIq(
    // A private copy from before the conversion is shadowed by the PEP node.
    { "storage:storage:bookmarks": elem("storage", { xmlns: "storage:bookmarks" }) },
    iq("get", query([wanted])),
    query([wanted]),
    { ...SELF, also: { pep: PEP_WITH_BOOKMARKS } },
  );
  assert.deepEqual(replies(r), [
    `<iq type="result" id="p1" to="${DENMARK}"><query xmlns="${NS}">` +
    `<storage xmlns="storage:bookmarks"><conference jid="${ELSINORE}" autojoin="true">` +
    `<nick>Hamlet</nick></conference></storage></query></iq>`,
  ]);
  assert.equal("data" in r, false);
  assert.equal(r.alsoData, undefined);
});

Deno.test("private: without a PEP node, a copy stored before the conversion is still read", () => {
  const wanted = elem("storage", { xmlns: "storage:bookmarks" });
  const r = onPrivateIq(
    { "storage:storage:bookmarks": BOOKMARKS },
    iq("get", query([wanted])),
    query([wanted]),
    { ...SELF, also: {} },
  );
  assert.deepEqual(replies(r), [
    `<iq type="result" id="p1" to="${DENMARK}"><query xmlns="${NS}">` +
    `<storage xmlns="storage:bookmarks"><conference jid="${ELSINORE}" autojoin="true"/>` +
    `</storage></query></iq>`,
  ]);
});

Deno.test("private: a set of storage:bookmarks writes the PEP node, not private storage", () => {
  const r = onPrivateIq(
    { "exodus:exodus:prefs": PREFS },
    iq("set", query([BOOKMARKS])),
    query([BOOKMARKS]),
    { ...SELF, also: {} },
  );
  assert.deepEqual(replies(r), [`<iq type="result" id="p1" to="${DENMARK}"/>`]);
  // Private storage is untouched: nothing to write there.
  assert.equal("data" in r, false);
  assert.deepEqual(r.alsoData, {
    pep: {
      // The node's name, the item's id, publisher and payload, as PEP counts them.
      bytes: "urn:xmpp:bookmarks:1".length + ELSINORE.length + HAMLET.length +
        `<conference xmlns="urn:xmpp:bookmarks:1" autojoin="true"/>`.length,
      nodes: {
        "urn:xmpp:bookmarks:1": {
          config: BOOKMARKS_CONFIG,
          items: [{
            id: ELSINORE,
            payload: elem("conference", { xmlns: "urn:xmpp:bookmarks:1", autojoin: "true" }),
            publisher: HAMLET,
          }],
        },
      },
    },
  });
  assert.deepEqual(r.outputs, []);
});

Deno.test("private: a set of bookmarks drops the old private copy; clearing none creates none", () => {
  const r = onPrivateIq(
    { "storage:storage:bookmarks": BOOKMARKS },
    iq("set", query([BOOKMARKS])),
    query([BOOKMARKS]),
    { ...SELF, also: {} },
  );
  assert.equal("data" in r, true);
  assert.equal(r.data, undefined);
  const empty = elem("storage", { xmlns: "storage:bookmarks" });
  const none = onPrivateIq(undefined, iq("set", query([empty])), query([empty]), {
    ...SELF,
    also: {},
  });
  assert.deepEqual(replies(none), [`<iq type="result" id="p1" to="${DENMARK}"/>`]);
  assert.equal("data" in none, false);
  assert.equal(none.alsoData, undefined);
});

Deno.test("private: through the account, PEP bookmarks are stored, cached and notified", () => {
  const withCaps = {
    fullJid: DENMARK,
    resource: "denmark",
    priority: 0,
    available: true,
    interested: true,
    features: ["urn:xmpp:bookmarks:1+notify"],
  };
  const ctx: AccountCtx = {
    now: () => NOW,
    newId: () => "id",
    resourcesOf: (bare) => bare === HAMLET ? [withCaps] : [],
    limits: { ...DEFAULT_LIMITS, offlineMessages: 10 },
    archive: { enabled: false, policy: "roster" },
    random: () => "rnd",
  };
  const state: AccountState = {
    bare: HAMLET,
    exists: true,
    roster: EMPTY_ROSTER,
    offline: { count: 0, bytes: 0 },
    lastArchived: 0,
    modules: { private: undefined, pep: undefined },
  };
  const [next, out] = reduceAccount(
    state,
    { kind: "module-iq", iq: iq("set", query([BOOKMARKS])) },
    ctx,
  );
  const event = `<message type="headline" from="${HAMLET}" to="${DENMARK}">` +
    `<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="urn:xmpp:bookmarks:1">` +
    `<item id="${ELSINORE}"><conference xmlns="urn:xmpp:bookmarks:1" autojoin="true"/></item>` +
    `</items></event></message>`;
  assert.deepEqual(
    out.map((o) =>
      o.kind === "deliver" || o.kind === "route" ? `${o.kind} ${serializeTop(o.stanza)}` : o.kind
    ),
    [
      "store-module",
      `deliver ${event}`,
      `route <iq type="result" id="p1" to="${DENMARK}"/>`,
    ],
  );
  assert.deepEqual(out[0], { kind: "store-module", store: "pep", data: next.modules.pep });
  assert.deepEqual(legacyBookmarks(next.modules.pep), BOOKMARKS);
  assert.equal(next.modules.private, undefined);
});
