import assert from "node:assert/strict";
import {
  type ArchivedMessage,
  type ArchivePrefs,
  type ArchiveQuery,
  DEFAULT_MAX,
  isArchivable,
  MAX_PAGE,
  newArchiveId,
  type QueryPage,
  shouldArchive,
  stamp,
  stripStanzaIds,
  tsOfArchiveId,
  withStanzaId,
} from "../../lib/core/archive.ts";
import {
  finResult,
  metadataElement,
  parseMamQuery,
  parsePrefs,
  prefsElement,
  resultMessages,
} from "../../lib/modules/mam/protocol.ts";
import { childElements, elem, type Element, serialize, stanza } from "../../lib/xml/element.ts";
import { mamMetadataAnswer, mamPageAnswer, reduceAccount } from "../../lib/account/account.ts";
import { type AccountCtx, type AccountState, NO_OFFLINE } from "../../lib/core/types.ts";
import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import { EMPTY_ROSTER } from "../../lib/core/session.ts";
import { createStreamParser } from "../../lib/xml/parser.ts";
import { NS_DELAY, NS_FORWARD, NS_MAM, NS_RSM, NS_SID } from "../../lib/xmpp/namespaces.ts";

/** Parses one element, written as the child of a client stanza. */
function xml(s: string): Element {
  const p = createStreamParser({ maxStanzaBytes: 1 << 20 });
  const events = p.push(new TextEncoder().encode(
    `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams"><iq>${s}</iq>`,
  ));
  const iq = events.find((e) => e.kind === "stanza");
  assert.ok(iq !== undefined && iq.kind === "stanza", `not parsed: ${s}`);
  return childElements(iq.stanza)[0];
}

/** A MAM query with a data form of `fields` (var, values) and optional extra children. */
function mamQuery(fields: ReadonlyArray<readonly [string, ...string[]]>, extra = ""): Element {
  const f = fields.map(([v, ...vals]) =>
    `<field var="${v}">${vals.map((x) => `<value>${x}</value>`).join("")}</field>`
  ).join("");
  return xml(
    `<query xmlns="${NS_MAM}" queryid="q9"><x xmlns="jabber:x:data" type="submit">` +
      `<field var="FORM_TYPE" type="hidden"><value>${NS_MAM}</value></field>${f}</x>${extra}</query>`,
  );
}

function parsed(q: Element): ArchiveQuery {
  const r = parseMamQuery(q);
  assert.ok(!("error" in r), `unexpected error: ${"error" in r ? r.text : ""}`);
  return r;
}

function refused(q: Element): string {
  const r = parseMamQuery(q);
  assert.ok("error" in r, "expected an error");
  assert.ok(r.text.length > 0);
  return r.error;
}

// XEP-0082 §3.2 DateTime examples and their instants.
const T0 = Date.UTC(1969, 6, 21, 2, 56, 15);

Deno.test("parseMamQuery: an empty query gets the defaults", () => {
  assert.deepEqual(parsed(xml(`<query xmlns="${NS_MAM}"/>`)), { max: DEFAULT_MAX, flip: false });
  assert.deepEqual(parsed(xml(`<query xmlns="${NS_MAM}" queryid="f27"/>`)), {
    queryId: "f27",
    max: DEFAULT_MAX,
    flip: false,
  });
});

Deno.test("parseMamQuery: every form field", () => {
  const q = parsed(mamQuery([
    ["with", "Juliet@Capulet.LIT"],
    ["start", "1969-07-21T02:56:15Z"],
    ["end", "1969-07-20T21:56:15.123-05:00"],
    ["after-id", "aaa"],
    ["before-id", "bbb"],
    ["ids", "i1", "i2", "i1"],
  ]));
  assert.deepEqual(q, {
    queryId: "q9",
    with: "juliet@capulet.lit",
    start: T0,
    end: T0 + 123,
    afterId: "aaa",
    beforeId: "bbb",
    ids: ["i1", "i2"],
    max: DEFAULT_MAX,
    flip: false,
  });
});

Deno.test("parseMamQuery: with keeps a full JID, normalised", () => {
  assert.equal(
    parsed(mamQuery([["with", "Romeo@Montague.LIT/Orchard"]])).with,
    "romeo@montague.lit/Orchard",
  );
});

Deno.test("parseMamQuery: an end without fraction covers its whole second; start rounds up", () => {
  assert.equal(parsed(mamQuery([["end", "1969-07-21T02:56:15Z"]])).end, T0 + 999);
  assert.equal(parsed(mamQuery([["start", "1969-07-21T02:56:15.0001Z"]])).start, T0 + 1);
  assert.equal(parsed(mamQuery([["end", "1969-07-21T02:56:15.0009Z"]])).end, T0);
  assert.equal(parsed(mamQuery([["start", "1969-07-21T04:56:15+02:00"]])).start, T0);
});

Deno.test("parseMamQuery: fields without a value are absent", () => {
  const q = parsed(mamQuery([["with"], ["start"], ["ids"]]));
  assert.deepEqual(q, { queryId: "q9", max: DEFAULT_MAX, flip: false });
});

Deno.test("parseMamQuery: RSM max, after, before, empty before, flip-page", () => {
  const rsm = (inner: string) => mamQuery([], `<set xmlns="${NS_RSM}">${inner}</set>`);
  assert.equal(parsed(rsm("<max>10</max>")).max, 10);
  assert.equal(parsed(rsm("<max>0</max>")).max, 0);
  assert.equal(parsed(rsm(`<max>${MAX_PAGE + 1}</max>`)).max, MAX_PAGE);
  assert.equal(parsed(rsm("<max>100000000000000000000000</max>")).max, MAX_PAGE);
  assert.equal(parsed(rsm("<after>x1</after>")).after, "x1");
  assert.equal(parsed(rsm("<before>x2</before>")).before, "x2");
  assert.equal(parsed(rsm("<before/>")).before, true);
  const both = parsed(rsm("<max>3</max><after>a</after><before>b</before>"));
  assert.deepEqual([both.max, both.after, both.before], [3, "a", "b"]);
  assert.equal(parsed(mamQuery([], "<flip-page/>")).flip, true);
  assert.equal(parsed(xml(`<query xmlns="${NS_MAM}"><flip-page/></query>`)).flip, true);
});

Deno.test("parseMamQuery: errors", () => {
  const cases: ReadonlyArray<readonly [string, Element]> = [
    ["bad-request", mamQuery([["with", "@bad"]])],
    ["bad-request", mamQuery([["start", "2010-06-07"]])],
    ["bad-request", mamQuery([["start", "2010-06-07T00:00:00"]])],
    ["bad-request", mamQuery([["start", "2010-13-07T00:00:00Z"]])],
    ["bad-request", mamQuery([["end", "2011-02-29T00:00:00Z"]])],
    ["bad-request", mamQuery([["end", "2010-06-07T24:00:00Z"]])],
    ["bad-request", mamQuery([["end", "2010-06-07T00:00:00+25:00"]])],
    ["bad-request", mamQuery([["with", "a@b", "c@d"]])],
    ["bad-request", mamQuery([["ids", "a", ""]])],
    ["bad-request", mamQuery([["with", "a@b"], ["with", "c@d"]])],
    ["feature-not-implemented", mamQuery([["include-groupchat", "true"]])],
    ["feature-not-implemented", mamQuery([["{urn:example}full-text", "x"]])],
    ["bad-request", mamQuery([], `<set xmlns="${NS_RSM}"><max>-1</max></set>`)],
    ["bad-request", mamQuery([], `<set xmlns="${NS_RSM}"><max>1.5</max></set>`)],
    ["bad-request", mamQuery([], `<set xmlns="${NS_RSM}"><max/></set>`)],
    ["bad-request", mamQuery([], `<set xmlns="${NS_RSM}"><after/></set>`)],
    ["feature-not-implemented", mamQuery([], `<set xmlns="${NS_RSM}"><index>3</index></set>`)],
    [
      "bad-request",
      xml(
        `<query xmlns="${NS_MAM}"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE">` +
          `<value>urn:xmpp:mam:1</value></field></x></query>`,
      ),
    ],
    [
      "bad-request",
      xml(`<query xmlns="${NS_MAM}"><x xmlns="jabber:x:data" type="submit"/></query>`),
    ],
    [
      "bad-request",
      xml(
        `<query xmlns="${NS_MAM}"><x xmlns="jabber:x:data" type="form"><field var="FORM_TYPE">` +
          `<value>${NS_MAM}</value></field></x></query>`,
      ),
    ],
  ];
  for (const [condition, q] of cases) assert.equal(refused(q), condition, serialize(q));
});

Deno.test("stamp: XEP-0082 DateTime at second precision, truncated", () => {
  assert.equal(stamp(T0), "1969-07-21T02:56:15Z");
  assert.equal(stamp(T0 + 999), "1969-07-21T02:56:15Z");
  assert.equal(stamp(Date.UTC(2010, 6, 10, 23, 8, 25)), "2010-07-10T23:08:25Z");
  assert.equal(stamp(0), "1970-01-01T00:00:00Z");
});

Deno.test("archive ids: embed the timestamp, sort by it, refuse what is not ours", () => {
  const stamps = [0, 1, 35, 36, Date.UTC(2010, 6, 10), Date.UTC(2025, 0, 1), 36 ** 9 - 1];
  for (const ts of stamps) {
    const id = newArchiveId(ts, "rnd");
    assert.equal(id.length, 9 + 3);
    assert.ok(id.endsWith("rnd"));
    assert.equal(tsOfArchiveId(id), ts);
  }
  const ids = stamps.map((ts) => newArchiveId(ts, "z"));
  assert.deepEqual([...ids].sort(), ids);
  assert.throws(() => newArchiveId(-1, "x"), RangeError);
  assert.throws(() => newArchiveId(36 ** 9, "x"), RangeError);
  assert.throws(() => newArchiveId(1.5, "x"), RangeError);
  assert.equal(tsOfArchiveId("short"), undefined);
  assert.equal(tsOfArchiveId("ABCDEFGHIJ"), undefined);
  assert.equal(tsOfArchiveId("28482-98726-73623"), undefined);
});

const ROMEO = "romeo@montague.lit/orchard";

function archived(ts: number, suffix: string, body: string): ArchivedMessage {
  return {
    id: newArchiveId(ts, suffix),
    ts,
    peer: "juliet@capulet.lit",
    stanza: stanza("message", {
      to: "juliet@capulet.lit",
      from: ROMEO,
      type: "chat",
      id: `m-${suffix}`,
      "xml:lang": "en",
    }, [elem("body", {}, [body])]),
  };
}

const A = archived(Date.UTC(2010, 6, 10, 23, 8, 25, 400), "a", "Hello");
const B = archived(Date.UTC(2010, 6, 10, 23, 9, 32), "b", "U there?");

function resultXml(item: ArchivedMessage, body: string, queryid: string | undefined): string {
  const qid = queryid === undefined ? "" : ` queryid="${queryid}"`;
  const m = item.stanza.attrs;
  return `<message to="${ROMEO}"><result xmlns="${NS_MAM}"${qid} id="${item.id}">` +
    `<forwarded xmlns="${NS_FORWARD}"><delay xmlns="${NS_DELAY}" stamp="${stamp(item.ts)}"/>` +
    `<message xmlns="jabber:client" to="${m.to}" from="${m.from}" type="chat" id="${m.id}"` +
    ` xml:lang="en"><body>${body}</body></message>` +
    `</forwarded></result></message>`;
}

Deno.test("resultMessages: XEP-0313 §4.2 shape, queryid echoed, chronological", () => {
  const q = parsed(xml(`<query xmlns="${NS_MAM}" queryid="f27"/>`));
  const out = resultMessages({ items: [A, B], complete: true }, q, ROMEO).map((e) => serialize(e));
  assert.deepEqual(out, [resultXml(A, "Hello", "f27"), resultXml(B, "U there?", "f27")]);
  assert.ok(out[0].includes('stamp="2010-07-10T23:08:25Z"'));
});

Deno.test("resultMessages: no queryid when none was given; flip-page reverses", () => {
  const q = parsed(xml(`<query xmlns="${NS_MAM}"><flip-page/></query>`));
  const out = resultMessages({ items: [A, B], complete: true }, q, ROMEO).map((e) => serialize(e));
  assert.deepEqual(out, [resultXml(B, "U there?", undefined), resultXml(A, "Hello", undefined)]);
});

Deno.test("finResult: complete, first with index, last, count", () => {
  const iq = stanza("iq", { type: "set", id: "juliet1", from: ROMEO });
  const q = parsed(xml(`<query xmlns="${NS_MAM}"/>`));
  const page: QueryPage = { items: [A, B], complete: true, count: 16, firstIndex: 0 };
  assert.equal(
    serialize(finResult(iq, page, q)),
    `<iq type="result" id="juliet1" to="${ROMEO}"><fin xmlns="${NS_MAM}" complete="true">` +
      `<set xmlns="${NS_RSM}"><first index="0">${A.id}</first><last>${B.id}</last>` +
      `<count>16</count></set></fin></iq>`,
  );
});

Deno.test("finResult: incomplete page without count; flip keeps first and last", () => {
  const iq = stanza("iq", { type: "set", id: "q2", from: ROMEO });
  const q = parsed(xml(`<query xmlns="${NS_MAM}"><flip-page/></query>`));
  assert.equal(
    serialize(finResult(iq, { items: [A, B], complete: false }, q)),
    `<iq type="result" id="q2" to="${ROMEO}"><fin xmlns="${NS_MAM}">` +
      `<set xmlns="${NS_RSM}"><first>${A.id}</first><last>${B.id}</last></set></fin></iq>`,
  );
});

Deno.test("finResult: an empty page has no first or last", () => {
  const iq = stanza("iq", { type: "set", id: "q3", from: ROMEO });
  const q = parsed(xml(`<query xmlns="${NS_MAM}"/>`));
  assert.equal(
    serialize(finResult(iq, { items: [], complete: true, count: 0 }, q)),
    `<iq type="result" id="q3" to="${ROMEO}"><fin xmlns="${NS_MAM}" complete="true">` +
      `<set xmlns="${NS_RSM}"><count>0</count></set></fin></iq>`,
  );
});

Deno.test("prefs: parse, render round trip, errors", () => {
  const p = parsePrefs(xml(
    `<prefs xmlns="${NS_MAM}" default="roster"><always><jid>Romeo@Montague.LIT</jid>` +
      `<jid>romeo@montague.lit</jid></always><never><jid>montague.lit</jid></never></prefs>`,
  ));
  assert.deepEqual(p, {
    default: "roster",
    always: ["romeo@montague.lit"],
    never: ["montague.lit"],
  });
  assert.equal(
    serialize(prefsElement(p as ArchivePrefs)),
    `<prefs xmlns="${NS_MAM}" default="roster"><always><jid>romeo@montague.lit</jid></always>` +
      `<never><jid>montague.lit</jid></never></prefs>`,
  );
  // The shape the conformance script sends and expects back.
  const empty = parsePrefs(
    xml(`<prefs xmlns="${NS_MAM}" default="always"><always/><never/></prefs>`),
  );
  assert.deepEqual(empty, { default: "always", always: [], never: [] });
  assert.equal(
    serialize(prefsElement(empty as ArchivePrefs)),
    `<prefs xmlns="${NS_MAM}" default="always"><always/><never/></prefs>`,
  );
  assert.deepEqual(parsePrefs(xml(`<prefs xmlns="${NS_MAM}" default="never"/>`)), {
    default: "never",
    always: [],
    never: [],
  });
  for (
    const bad of [
      `<prefs xmlns="${NS_MAM}"/>`,
      `<prefs xmlns="${NS_MAM}" default="sometimes"/>`,
      `<prefs xmlns="${NS_MAM}" default="always"><never><jid>@x</jid></never></prefs>`,
    ]
  ) {
    const r = parsePrefs(xml(bad));
    assert.ok("error" in r && r.error === "bad-request", bad);
  }
});

Deno.test("shouldArchive: never beats always, then the default", () => {
  const list = { always: ["a@x", "both@x"], never: ["n@x", "both@x"] };
  // [default, peer, in roster, archived]
  const table: ReadonlyArray<readonly [ArchivePrefs["default"], string, boolean, boolean]> = [
    ["always", "a@x", false, true],
    ["always", "n@x", true, false],
    ["always", "both@x", true, false],
    ["always", "other@x", false, true],
    ["never", "a@x", false, true],
    ["never", "n@x", true, false],
    ["never", "other@x", true, false],
    ["roster", "a@x", false, true],
    ["roster", "n@x", true, false],
    ["roster", "other@x", true, true],
    ["roster", "other@x", false, false],
  ];
  for (const [d, peer, inRoster, want] of table) {
    assert.equal(shouldArchive({ default: d, ...list }, peer, inRoster), want, `${d} ${peer}`);
  }
});

Deno.test("metadataElement: start and end, or empty", () => {
  assert.equal(
    serialize(metadataElement(A, B)),
    `<metadata xmlns="${NS_MAM}"><start id="${A.id}" timestamp="2010-07-10T23:08:25Z"/>` +
      `<end id="${B.id}" timestamp="2010-07-10T23:09:32Z"/></metadata>`,
  );
  assert.equal(serialize(metadataElement(undefined, undefined)), `<metadata xmlns="${NS_MAM}"/>`);
});

Deno.test("stripStanzaIds drops only ours; withStanzaId appends one", () => {
  const m = xml(
    `<message xmlns="jabber:client" to="a@b"><body>hi</body>` +
      `<stanza-id xmlns="${NS_SID}" by="romeo@montague.lit" id="forged"/>` +
      `<stanza-id xmlns="${NS_SID}" by="room@muc.example" id="theirs"/>` +
      `<stanza-id xmlns="urn:example" by="romeo@montague.lit" id="other-ns"/></message>`,
  );
  const stripped = stripStanzaIds(m, (by) => by === "romeo@montague.lit");
  assert.equal(
    serialize(stripped),
    `<message to="a@b"><body>hi</body>` +
      `<stanza-id xmlns="${NS_SID}" by="room@muc.example" id="theirs"/>` +
      `<stanza-id xmlns="urn:example" by="romeo@montague.lit" id="other-ns"/></message>`,
  );
  const noneOurs = stripStanzaIds(m, () => false);
  assert.equal(serialize(noneOurs), serialize(m));
  assert.equal(
    serialize(
      withStanzaId(xml(`<message xmlns="jabber:client"><body>hi</body></message>`), "r@m", "X1"),
    ),
    `<message><body>hi</body><stanza-id xmlns="${NS_SID}" by="r@m" id="X1"/></message>`,
  );
});

Deno.test("isArchivable: chat and normal messages with a body", () => {
  const table: ReadonlyArray<readonly [string, boolean]> = [
    [`<message xmlns="jabber:client" type="chat"><body>x</body></message>`, true],
    [`<message xmlns="jabber:client"><body>x</body></message>`, true],
    [`<message xmlns="jabber:client" type="normal"><body>x</body></message>`, true],
    [`<message xmlns="jabber:client" type="chat"><active xmlns="urn:x"/></message>`, false],
    [`<message xmlns="jabber:client" type="groupchat"><body>x</body></message>`, false],
    [`<message xmlns="jabber:client" type="headline"><body>x</body></message>`, false],
    [`<message xmlns="jabber:client" type="error"><body>x</body></message>`, false],
    [`<message xmlns="jabber:client"><body xmlns="urn:other">x</body></message>`, false],
  ];
  for (const [s, want] of table) assert.equal(isArchivable(xml(s)), want, s);
});

// ---------------------------------------------------------------------------------------------
// Bounds (issue 9): ids per query, records read per query, JIDs in the preferences.

Deno.test("finResult: a scan stopped by its bound names the records it covered, even for an empty page", () => {
  const iq = stanza("iq", { type: "set", id: "q4", from: ROMEO });
  const q = parsed(xml(`<query xmlns="${NS_MAM}"/>`));
  const scanned = { first: A.id, last: B.id };
  assert.equal(
    serialize(finResult(iq, { items: [], complete: false, scanned }, q)),
    `<iq type="result" id="q4" to="${ROMEO}"><fin xmlns="${NS_MAM}">` +
      `<set xmlns="${NS_RSM}"><first>${A.id}</first><last>${B.id}</last></set></fin></iq>`,
  );
});

Deno.test("prefs: JIDs that are Object.prototype's names are JIDs like others", () => {
  // As localparts (a domain cannot hold '_'; domains are lower-cased).
  const names = ["constructor@x", "__proto__@x", "toString@x", "hasOwnProperty@x"];
  const jids = (ns: readonly string[]) => ns.map((n) => `<jid>${n}</jid>`).join("");
  const p = parsePrefs(xml(
    `<prefs xmlns="${NS_MAM}" default="always"><always>${jids(names)}${jids(names)}</always>` +
      `<never><jid>valueOf@x</jid></never></prefs>`,
  ));
  assert.ok(!("error" in p));
  // Each once, in order (localparts case-folded); nothing inherited is taken for an entry.
  const folded = names.map((n) => n.toLowerCase());
  assert.deepEqual(p.always, folded);
  assert.deepEqual(p.never, ["valueof@x"]);
  assert.equal(shouldArchive({ ...p, default: "never" }, "__proto__@x", false), true);
  assert.equal(shouldArchive({ ...p, default: "never" }, "isprototypeof@x", false), false);
  assert.equal(shouldArchive(p, "valueof@x", true), false);
  // Round trip through the stored form (JSON) and the element.
  assert.deepEqual(JSON.parse(JSON.stringify(p)), p);
  assert.equal(
    serialize(prefsElement(p)),
    `<prefs xmlns="${NS_MAM}" default="always"><always>${jids(folded)}</always>` +
      `<never><jid>valueof@x</jid></never></prefs>`,
  );
});

/** The account reducer with Juliet's archive, under small MAM limits. */
function accountCtx(): AccountCtx {
  return {
    now: () => 1_700_000_000_000,
    newId: () => "id",
    resourcesOf: () => [],
    limits: { ...DEFAULT_LIMITS, mamIds: 3, mamScan: 100, mamPrefsJids: 2 },
    archive: { enabled: true, policy: "always" },
    random: () => "rnd",
  };
}

const JULIET_STATE: AccountState = {
  bare: "juliet@capulet.lit",
  exists: true,
  roster: EMPTY_ROSTER,
  offline: NO_OFFLINE,
  lastArchived: 0,
  modules: {},
};

Deno.test("account: more ids than limits.mamIds is policy-violation; the scan bound goes with the query", () => {
  const iq = stanza("iq", { type: "set", id: "q5", from: "juliet@capulet.lit/balcony" });
  const ids = (n: number) => [["ids", ...Array.from({ length: n }, (_, i) => `id${i}`)] as const];
  const over = parsed(mamQuery(ids(4)));
  const [s1, out1] = reduceAccount(
    JULIET_STATE,
    { kind: "mam-query", iq, query: over },
    accountCtx(),
  );
  assert.equal(s1, JULIET_STATE);
  assert.equal(out1.length, 1);
  assert.ok(out1[0].kind === "deliver");
  assert.equal(
    serialize(out1[0].stanza),
    `<iq type="error" id="q5" to="juliet@capulet.lit/balcony"><error type="modify">` +
      `<policy-violation xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
      `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">At most 3 ids per query` +
      `</text></error></iq>`,
  );
  const ok = parsed(mamQuery(ids(3)));
  const [, out2] = reduceAccount(JULIET_STATE, { kind: "mam-query", iq, query: ok }, accountCtx());
  assert.deepEqual(out2, [{ kind: "mam-query", iq, query: { ...ok, scanLimit: 100 } }]);
});

Deno.test("account: preferences with more JIDs than limits.mamPrefsJids are not-acceptable", () => {
  const iq = stanza("iq", { type: "set", id: "p1", from: "juliet@capulet.lit/balcony" });
  const prefs = parsePrefs(xml(
    `<prefs xmlns="${NS_MAM}" default="roster"><always><jid>a@x</jid><jid>b@x</jid></always>` +
      `<never><jid>c@x</jid></never></prefs>`,
  ));
  assert.ok(!("error" in prefs));
  const [s, out] = reduceAccount(JULIET_STATE, { kind: "mam-prefs", iq, prefs }, accountCtx());
  // Nothing stored or changed: only the error.
  assert.equal(s, JULIET_STATE);
  assert.equal(out.length, 1);
  assert.ok(out[0].kind === "deliver");
  assert.match(serialize(out[0].stanza), /<error type="modify"><not-acceptable /);
  // Two together fit.
  const two = { ...prefs, never: [] };
  const [s2, out2] = reduceAccount(
    JULIET_STATE,
    { kind: "mam-prefs", iq, prefs: two },
    accountCtx(),
  );
  assert.deepEqual(s2.prefs, two);
  assert.deepEqual(out2.map((o) => o.kind), ["store-prefs", "deliver"]);
});

Deno.test("account: a sent message is archived, then routed on, then its carbons", () => {
  const msg = stanza("message", {
    type: "chat",
    id: "m1",
    from: "juliet@capulet.lit/balcony",
    to: "romeo@montague.lit",
  }, [elem("body", {}, ["hi"])]);
  const copy = stanza("message", { from: "juliet@capulet.lit", to: "juliet@capulet.lit/phone" });
  const [s, out] = reduceAccount(
    JULIET_STATE,
    { kind: "outgoing-message", stanza: msg, then: [copy] },
    accountCtx(),
  );
  assert.equal(s.lastArchived, 1_700_000_000_000);
  // Issue 10: the archive append (durable before what follows runs) comes first.
  assert.deepEqual(out.map((o) => o.kind), ["archive-append", "route", "route"]);
  assert.ok(out[0].kind === "archive-append");
  assert.equal(out[0].item.peer, "romeo@montague.lit");
  assert.deepEqual(out.slice(1), [
    { kind: "route", stanza: msg, senderArchived: true },
    { kind: "route", stanza: copy },
  ]);
  // With a policy that keeps nothing, the message still goes on, marked as past the archive.
  const never = { ...JULIET_STATE, prefs: { default: "never" as const, always: [], never: [] } };
  const [, out2] = reduceAccount(never, { kind: "outgoing-message", stanza: msg }, accountCtx());
  assert.deepEqual(out2, [{ kind: "route", stanza: msg, senderArchived: true }]);
});

Deno.test("mam answers: results then fin to the asker, or the archive's error; metadata", () => {
  const iq = stanza("iq", { type: "set", id: "q1", from: "juliet@capulet.lit/balcony" });
  const to = "juliet@capulet.lit/balcony";
  const item = {
    id: "a1",
    ts: 1_700_000_000_000,
    peer: "romeo@montague.lit",
    stanza: stanza("message", { type: "chat", from: "romeo@montague.lit/o" }, [
      elem("body", {}, ["hi"]),
    ]),
  };
  const query = { queryId: "f27" } as ArchiveQuery;
  const out = mamPageAnswer(iq, query, { items: [item], complete: true, count: 1, firstIndex: 0 });
  assert.deepEqual(out.map((o) => o.kind === "deliver" && o.to), [to, to]);
  const shownOut = out.map((o) => o.kind === "deliver" ? serialize(o.stanza) : "");
  assert.match(
    shownOut[0],
    /^<message to="juliet@capulet\.lit\/balcony"><result xmlns="urn:xmpp:mam:2" queryid="f27" id="a1">/,
  );
  assert.equal(
    shownOut[1],
    `<iq type="result" id="q1" to="${to}"><fin xmlns="${NS_MAM}" complete="true">` +
      `<set xmlns="${NS_RSM}"><first index="0">a1</first><last>a1</last><count>1</count></set>` +
      "</fin></iq>",
  );
  const missing = mamPageAnswer(iq, query, { error: "item-not-found" });
  assert.equal(missing.length, 1);
  assert.ok(missing[0].kind === "deliver");
  assert.match(serialize(missing[0].stanza), /<error type="cancel"><item-not-found /);
  const meta = mamMetadataAnswer(iq, undefined, undefined);
  assert.ok(meta[0].kind === "deliver");
  assert.equal(
    serialize(meta[0].stanza),
    `<iq type="result" id="q1" to="${to}"><metadata xmlns="${NS_MAM}"/></iq>`,
  );
});
