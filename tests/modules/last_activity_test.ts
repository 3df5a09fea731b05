import { NO_OFFLINE } from "../../lib/core/types.ts";
import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import { reduceAccount } from "../../lib/account/account.ts";
import { type AccountCtx, type AccountState } from "../../lib/core/types.ts";
import { onLastIq } from "../../lib/modules/last_activity.ts";
import { MODULES } from "../../lib/modules/registry.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import type { AccountIqCtx, ResourceView } from "../../lib/core/types.ts";
import { EMPTY_ROSTER, type Roster } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { bound, HOST, NOW, run, show, stanzaEvent, testCtx } from "../_ctx.ts";

const JULIET = `juliet@${HOST}`;
const ROMEO = `romeo@${HOST}/orchard`;
const NURSE = `nurse@${HOST}/kitchen`;
const TYBALT = `tybalt@${HOST}/street`;
const NS = "jabber:iq:last";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

const ROSTER: Roster = {
  ...EMPTY_ROSTER,
  items: {
    [`romeo@${HOST}`]: { jid: `romeo@${HOST}`, subscription: "from", groups: [] },
    // Juliet sees the nurse's presence, not the other way round.
    [`nurse@${HOST}`]: { jid: `nurse@${HOST}`, subscription: "to", groups: [] },
  },
};

function query(from: string, type: "get" | "set" = "get"): Element {
  return stanza("iq", { type, id: "l1", from, to: JULIET }, [elem("query", { xmlns: NS })]);
}

function ictx(online: readonly ResourceView[] = [], self = false): AccountIqCtx {
  return {
    bare: JULIET,
    self,
    now: NOW,
    roster: ROSTER,
    resourcesOf: (bare) => bare === JULIET ? online : [],
    limits: DEFAULT_LIMITS,
    newId: () => "id",
  };
}

function answer(iq: Element, data: unknown, c: AccountIqCtx): string[] {
  return onLastIq(data, iq, elem("query", { xmlns: NS }), c).replies.map(serializeTop);
}

function error(to: string, condition: string, type = "cancel"): string {
  return `<iq type="error" id="l1" from="${JULIET}" to="${to}"><error type="${type}">` +
    `<${condition} xmlns="${STANZAS}"/></error></iq>`;
}

const RECORD = { at: NOW - 903_400, status: "Heading Home" };

Deno.test("last activity: a subscriber learns the seconds since logout and the status", () => {
  assert.deepEqual(answer(query(ROMEO), RECORD, ictx()), [
    `<iq type="result" id="l1" from="${JULIET}" to="${ROMEO}">` +
    `<query xmlns="${NS}" seconds="903">Heading Home</query></iq>`,
  ]);
  // The user themself may ask too; without a status the query is empty.
  assert.deepEqual(answer(query(`${JULIET}/balcony`), { at: NOW - 5000 }, ictx([], true)), [
    `<iq type="result" id="l1" from="${JULIET}" to="${JULIET}/balcony">` +
    `<query xmlns="${NS}" seconds="5"/></iq>`,
  ]);
});

Deno.test("last activity: while a resource is available the answer is 0 seconds", () => {
  const online: ResourceView = {
    fullJid: `${JULIET}/balcony`,
    resource: "balcony",
    priority: 0,
    available: true,
    interested: true,
  };
  assert.deepEqual(answer(query(ROMEO), RECORD, ictx([online])), [
    `<iq type="result" id="l1" from="${JULIET}" to="${ROMEO}"><query xmlns="${NS}" seconds="0"/></iq>`,
  ]);
  // Connected but not available (no presence sent) is not online.
  const hidden = { ...online, available: false };
  assert.deepEqual(answer(query(ROMEO), RECORD, ictx([hidden])).length, 1);
  assert.match(answer(query(ROMEO), RECORD, ictx([hidden]))[0], /seconds="903"/);
});

Deno.test("last activity: no presence subscription -> forbidden; no record -> unavailable", () => {
  // §4: only those allowed to see the presence; 'to' is the wrong direction, strangers too. The
  // account reducer refuses them from the module's declared access, before the handler runs.
  const asked = (iq: Element) => {
    const state = { ...account(), modules: { lastlog: RECORD } };
    const [after, out] = reduceAccount(state, { kind: "module-iq", iq }, accountCtx());
    assert.equal(after, state);
    return out.map((o) => o.kind === "route" ? serializeTop(o.stanza) : o.kind);
  };
  assert.deepEqual(asked(query(NURSE)), [error(NURSE, "forbidden", "auth")]);
  assert.deepEqual(asked(query(TYBALT)), [error(TYBALT, "forbidden", "auth")]);
  assert.match(asked(query(ROMEO))[0], /seconds="903"/);
  assert.deepEqual(answer(query(ROMEO), undefined, ictx()), [
    error(ROMEO, "service-unavailable"),
  ]);
  assert.deepEqual(answer(query(ROMEO, "set"), RECORD, ictx()), [
    error(ROMEO, "service-unavailable"),
  ]);
});

function accountCtx(): AccountCtx {
  return {
    now: () => NOW,
    newId: () => "id",
    resourcesOf: () => [],
    limits: { ...DEFAULT_LIMITS, offlineMessages: 10 },
    archive: { enabled: false, policy: "roster" },
    random: () => "rnd",
  };
}

function account(exists = true): AccountState {
  return {
    bare: JULIET,
    exists,
    roster: ROSTER,
    offline: NO_OFFLINE,
    lastArchived: 0,
    modules: {},
  };
}

Deno.test("last activity: the account records a logout and answers from the cache", () => {
  const [s, out] = reduceAccount(account(), { kind: "logout", status: "Gone" }, accountCtx());
  assert.deepEqual(out, [
    { kind: "store-module", store: "lastlog", data: { at: NOW, status: "Gone" } },
  ]);
  const [, answered] = reduceAccount(s, { kind: "module-iq", iq: query(ROMEO) }, accountCtx());
  assert.deepEqual(
    answered.map((o) => o.kind === "route" ? serializeTop(o.stanza) : o.kind),
    [
      `<iq type="result" id="l1" from="${JULIET}" to="${ROMEO}">` +
      `<query xmlns="${NS}" seconds="0">Gone</query></iq>`,
    ],
  );
  // An account that no longer exists records nothing.
  const gone = account(false);
  assert.deepEqual(reduceAccount(gone, { kind: "logout" }, accountCtx()), [gone, []]);
});

Deno.test("last activity: an unavailable presence hands its status to the account", () => {
  const { outputs } = run(bound(), [
    stanzaEvent(stanza("presence")),
    stanzaEvent(
      stanza("presence", { type: "unavailable" }, [
        elem("status", { "xml:lang": "fr" }, ["Parti"]),
        elem("status", {}, ["Heading Home"]),
      ]),
    ),
  ], testCtx());
  assert.deepEqual(show(outputs).at(-1), {
    kind: "account",
    bare: `user@${HOST}`,
    op: { kind: "logout", status: "Heading Home" },
  });
  assert.equal(show(outputs).filter((o) => o.kind === "account").length, 2);
});

Deno.test("disco: accounts announce pubsub/pep, last activity and the compatibility rows", () => {
  const { outputs } = run(bound(), [
    stanzaEvent(
      stanza("iq", { type: "get", id: "d1", to: `user@${HOST}` }, [
        elem("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
      ]),
    ),
  ], testCtx());
  const xml = show(outputs).map((o) => "xml" in o ? o.xml : "").join("");
  assert.match(
    xml,
    /<identity category="account" type="registered"\/><identity category="pubsub" type="pep"\/>/,
  );
  for (const f of [NS, "urn:xmpp:pep-vcard-conversion:0", "urn:xmpp:bookmarks:1#compat"]) {
    assert.ok(xml.includes(`<feature var="${f}"/>`), f);
  }
  // Each is announced by exactly one registered module (disco derives from the registry).
  for (const f of [NS, "urn:xmpp:pep-vcard-conversion:0", "urn:xmpp:bookmarks:1#compat"]) {
    assert.equal(MODULES.filter((m) => (m.accountFeatures ?? []).includes(f)).length, 1, f);
  }
});
