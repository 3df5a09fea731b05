import assert from "node:assert/strict";
import { reduce } from "../../lib/c2s/mod.ts";
import { EMPTY_ROSTER, type Session } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { NS_BIND, NS_PING, NS_SESSION, NS_VCARD_UPDATE } from "../../lib/xmpp/namespaces.ts";
import { authed, bound, HOST, record, run, show, stanzaEvent, testCtx } from "../_ctx.ts";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const ERR_NS = "urn:ietf:params:xml:ns:xmpp-streams";
/**
 * XEP-0153 §4.1: the server knows the vCard, so a user without an avatar has an empty <photo/>
 * added to available presence, as element and as serialized.
 */
const NO_AVATAR = elem("x", { xmlns: NS_VCARD_UPDATE }, [elem("photo")]);
const NO_AVATAR_XML = `<x xmlns="${NS_VCARD_UPDATE}"><photo/></x>`;

function bindIq(resource?: string, attrs: Readonly<Record<string, string>> = {}): Element {
  return stanza("iq", { type: "set", id: "b1", ...attrs }, [
    elem("bind", { xmlns: NS_BIND }, [resource !== undefined && elem("resource", {}, [resource])]),
  ]);
}

function boundResult(id: string, fullJid: string): string {
  return `<iq type="result" id="${id}"><bind xmlns="${NS_BIND}"><jid>${fullJid}</jid></bind></iq>`;
}

// ---------------------------------------------------------------------------------------------
// Successful binds: register, answer, then load the roster, in that order.

const GOOD_BINDS: readonly {
  readonly name: string;
  readonly iq: Element;
  readonly resource: string;
}[] = [
  { name: "client-chosen resource", iq: bindIq("balcony"), resource: "balcony" },
  // OpaqueString (RFC 8265 §4.2): NFC, non-ASCII spaces mapped to U+0020.
  { name: "resource is NFC-normalised", iq: bindIq("Cafe\u0301"), resource: "Caf\u00e9" },
  { name: "non-ASCII space becomes a space", iq: bindIq("a\u00a0b"), resource: "a b" },
  { name: "no resource element: the server picks one", iq: bindIq(), resource: "id1" },
  { name: "empty resource: the server picks one", iq: bindIq(""), resource: "id1" },
  { name: "whitespace-only resource: the server picks one", iq: bindIq("  "), resource: "id1" },
];

for (const c of GOOD_BINDS) {
  Deno.test(`bind: ${c.name}`, () => {
    const s = authed();
    const fullJid = `user@${HOST}/${c.resource}`;
    const [next, out] = reduce(s, stanzaEvent(c.iq), testCtx());
    assert.deepEqual(show(out), [
      { kind: "bind", fullJid },
      { kind: "send", xml: boundResult("b1", fullJid) },
      { kind: "account", bare: `user@${HOST}`, op: { kind: "session-bound", fullJid } },
    ]);
    assert.deepEqual(record(next), record({ ...s, resource: c.resource, fullJid }));
  });
}

Deno.test("bind: the result carries only the id, not a client-supplied from or to", () => {
  const iq = bindIq("r", { from: "mallory@example.com/x", to: HOST });
  const [, out] = reduce(authed(), stanzaEvent(iq), testCtx());
  assert.deepEqual(show(out)[1], { kind: "send", xml: boundResult("b1", `user@${HOST}/r`) });
});

// ---------------------------------------------------------------------------------------------
// Refused binds leave the session untouched.

const BAD_BINDS: readonly {
  readonly name: string;
  readonly session: Session;
  readonly iq: Element;
  readonly xml: string;
}[] = [
  {
    name: "resource starting with a space -> bad-request",
    session: authed(),
    iq: bindIq(" lead"),
    xml: `<iq type="error" id="b1"><error type="modify"><bad-request xmlns="${STANZAS}"/>` +
      `<text xmlns="${STANZAS}" xml:lang="en">Invalid resource</text></error></iq>`,
  },
  {
    name: "resource over 1023 bytes -> bad-request",
    session: authed(),
    iq: bindIq("a".repeat(1024)),
    xml: `<iq type="error" id="b1"><error type="modify"><bad-request xmlns="${STANZAS}"/>` +
      `<text xmlns="${STANZAS}" xml:lang="en">Invalid resource</text></error></iq>`,
  },
  {
    name: "bind with type get -> bad-request",
    session: authed(),
    iq: stanza("iq", { type: "get", id: "b1" }, [elem("bind", { xmlns: NS_BIND })]),
    xml: `<iq type="error" id="b1"><error type="modify"><bad-request xmlns="${STANZAS}"/>` +
      "</error></iq>",
  },
  {
    name: "second bind on a bound stream -> not-allowed",
    session: bound(),
    iq: bindIq("other", { id: "b2" }),
    xml: `<iq type="error" id="b2" to="user@${HOST}/res"><error type="cancel">` +
      `<not-allowed xmlns="${STANZAS}"/></error></iq>`,
  },
];

for (const c of BAD_BINDS) {
  Deno.test(`bind: ${c.name}`, () => {
    const [next, out] = reduce(c.session, stanzaEvent(c.iq), testCtx());
    assert.deepEqual(show(out), [{ kind: "send", xml: c.xml }]);
    assert.equal(next, c.session);
  });
}

// ---------------------------------------------------------------------------------------------
// Another session bound the same full JID.

Deno.test("bind: replaced -> conflict stream error, unbind, disconnect", () => {
  const s = bound();
  const [next, out] = reduce(s, { kind: "replaced" }, testCtx());
  const text = "Replaced by a new session with the same resource";
  assert.deepEqual(show(out), [
    {
      kind: "close-stream",
      xml: `<stream:error><conflict xmlns="${ERR_NS}"/>` +
        `<text xmlns="${ERR_NS}" xml:lang="en">${text}</text></stream:error>`,
    },
    { kind: "unbind", fullJid: `user@${HOST}/res` },
    { kind: "disconnect", error: { condition: "conflict", text } },
  ]);
  assert.deepEqual(record(next), record({ ...s, destroyed: true }));
});

Deno.test("bind: replaced while available also broadcasts unavailable once", () => {
  const romeo = "romeo@example.com";
  const s = bound({
    presence: stanza("presence", { from: `user@${HOST}/res` }),
    roster: {
      ...EMPTY_ROSTER,
      items: { [romeo]: { jid: romeo, subscription: "both", groups: [] } },
    },
  });
  const [next, out] = reduce(s, { kind: "replaced" }, testCtx());
  assert.deepEqual(show(out).slice(1), [
    {
      kind: "route",
      xml: `<presence type="unavailable" from="user@${HOST}/res" to="${romeo}"/>`,
    },
    // XEP-0012 §4: the account records the logout.
    { kind: "account", bare: `user@${HOST}`, op: { kind: "logout" } },
    { kind: "unbind", fullJid: `user@${HOST}/res` },
    {
      kind: "disconnect",
      error: { condition: "conflict", text: "Replaced by a new session with the same resource" },
    },
  ]);
  assert.equal(next.presence, undefined);
  assert.equal(next.destroyed, true);
});

// ---------------------------------------------------------------------------------------------
// Before binding only bind and the legacy session iq are allowed.

const BEFORE_BIND: readonly { readonly name: string; readonly stanza: Element }[] = [
  { name: "message", stanza: stanza("message", { to: "romeo@example.com" }) },
  { name: "presence", stanza: stanza("presence") },
  {
    name: "ping iq",
    stanza: stanza("iq", { type: "get", id: "p1" }, [elem("ping", { xmlns: NS_PING })]),
  },
];

for (const c of BEFORE_BIND) {
  Deno.test(`bind: ${c.name} before bind -> not-authorized`, () => {
    const s = authed();
    const [next, out] = reduce(s, stanzaEvent(c.stanza), testCtx());
    const text = "Bind a resource first";
    assert.deepEqual(show(out), [
      {
        kind: "close-stream",
        xml: `<stream:error><not-authorized xmlns="${ERR_NS}"/>` +
          `<text xmlns="${ERR_NS}" xml:lang="en">${text}</text></stream:error>`,
      },
      { kind: "disconnect", error: { condition: "not-authorized", text } },
    ]);
    assert.deepEqual(record(next), record({ ...s, destroyed: true }));
  });
}

Deno.test("bind: the legacy session iq is answered before and after bind", () => {
  for (const s of [authed(), bound()]) {
    const iq = stanza("iq", { type: "set", id: "s1", to: HOST }, [
      elem("session", { xmlns: NS_SESSION }),
    ]);
    const [next, out] = reduce(s, stanzaEvent(iq), testCtx());
    const to = s.fullJid === undefined ? "" : ` to="${s.fullJid}"`;
    assert.deepEqual(show(out), [
      { kind: "send", xml: `<iq type="result" id="s1" from="${HOST}"${to}/>` },
    ]);
    assert.equal(next, s);
  }
});

Deno.test("bind: non-stanza elements after auth -> unsupported-stanza-type", () => {
  for (
    const [el, text] of [
      [elem("foo", { xmlns: "urn:example" }), "Unknown element <foo/>"],
      [elem("foo", { xmlns: "jabber:client" }), "Unknown stanza <foo/>"],
    ] as const
  ) {
    const [next, out] = reduce(bound(), stanzaEvent(el), testCtx());
    assert.deepEqual(show(out), [
      {
        kind: "close-stream",
        xml: `<stream:error><unsupported-stanza-type xmlns="${ERR_NS}"/>` +
          `<text xmlns="${ERR_NS}" xml:lang="en">${
            text.replace("<", "&lt;").replace(">", "&gt;")
          }</text></stream:error>`,
      },
      { kind: "unbind", fullJid: `user@${HOST}/res` },
      { kind: "disconnect", error: { condition: "unsupported-stanza-type", text } },
    ]);
    assert.equal(next.destroyed, true);
  }
});

// ---------------------------------------------------------------------------------------------
// Between binding and the roster's arrival, stanzas wait in order (presence needs the roster).

Deno.test("bind: stanzas before roster-loaded are held, then replayed in order", () => {
  const me = `user@${HOST}/res`;
  const romeo = "romeo@example.com";
  const s = bound({ roster: undefined });
  const msg = stanza("message", { to: romeo, id: "m1" }, [elem("body", {}, ["hi"])]);
  const ping = stanza("iq", { type: "get", id: "p1" }, [elem("ping", { xmlns: NS_PING })]);
  const pres = stanza("presence");
  const held = run(s, [stanzaEvent(msg), stanzaEvent(ping), stanzaEvent(pres)], testCtx());
  assert.deepEqual(held.outputs, []);
  assert.deepEqual(held.session.held, [msg, ping, pres]);
  assert.equal(held.session.roster, undefined);

  const roster = {
    ...EMPTY_ROSTER,
    version: "3",
    items: { [romeo]: { jid: romeo, subscription: "both" as const, groups: [] } },
  };
  const [next, out] = reduce(held.session, { kind: "roster-loaded", roster }, testCtx());
  assert.deepEqual(show(out), [
    { kind: "route", xml: `<message to="${romeo}" id="m1" from="${me}"><body>hi</body></message>` },
    { kind: "send", xml: `<iq type="result" id="p1" to="${me}"/>` },
    // The replayed presence sees the roster that just arrived: romeo is subscribed and probed.
    { kind: "route", xml: `<presence from="${me}" to="${romeo}">${NO_AVATAR_XML}</presence>` },
    { kind: "send", xml: `<presence from="${me}">${NO_AVATAR_XML}</presence>` },
    { kind: "route", xml: `<presence type="probe" from="${me}" to="${romeo}"/>` },
    {
      kind: "account",
      bare: `user@${HOST}`,
      op: { kind: "initial-presence", fullJid: me, priority: 0 },
    },
  ]);
  assert.deepEqual(next.held, []);
  assert.equal(next.roster, roster);
  assert.deepEqual(next.presence, stanza("presence", { from: me }, [NO_AVATAR]));
});

Deno.test("bind: a later roster-loaded (a roster change) replaces the roster, replays nothing", () => {
  const s = bound();
  const roster = { ...EMPTY_ROSTER, version: "9" };
  const [next, out] = reduce(s, { kind: "roster-loaded", roster }, testCtx());
  assert.deepEqual(out, []);
  assert.deepEqual(record(next), record({ ...s, roster }));
});

Deno.test("bind: 100 held stanzas are kept; the 101st is a resource-constraint stream error", () => {
  const msgs = Array.from(
    { length: 101 },
    (_, i) => stanza("message", { to: "romeo@example.com", id: `m${i}` }),
  );
  const full = run(bound({ roster: undefined }), msgs.slice(0, 100).map(stanzaEvent), testCtx());
  assert.deepEqual(full.outputs, []);
  assert.equal(full.session.held.length, 100);
  assert.equal(full.session.destroyed, false);

  const [next, out] = reduce(full.session, stanzaEvent(msgs[100]), testCtx());
  const text = "Too many stanzas before the roster";
  assert.deepEqual(show(out), [
    {
      kind: "close-stream",
      xml: `<stream:error><resource-constraint xmlns="${ERR_NS}"/>` +
        `<text xmlns="${ERR_NS}" xml:lang="en">${text}</text></stream:error>`,
    },
    { kind: "unbind", fullJid: `user@${HOST}/res` },
    { kind: "disconnect", error: { condition: "resource-constraint", text } },
  ]);
  assert.equal(next.destroyed, true);
  assert.deepEqual(next.held, []);
});

// ---------------------------------------------------------------------------------------------
// Resources per account (RFC 6120 §7.6.2.1), hibernating ones included: the registry lists them.

function bindCtx(resources: readonly string[], limit: number) {
  return testCtx({
    limits: { resourcesPerAccount: limit },
    resourcesOf: (bare) =>
      bare === `user@${HOST}`
        ? resources.map((r) => ({
          fullJid: `user@${HOST}/${r}`,
          resource: r,
          priority: 0,
          available: false,
          interested: false,
        }))
        : [],
  });
}

Deno.test("bind: past resources_per_account -> resource-constraint (wait), nothing bound", () => {
  const s = authed();
  const [next, out] = reduce(s, stanzaEvent(bindIq("third")), bindCtx(["a", "b"], 2));
  assert.equal(next, s);
  assert.deepEqual(show(out), [{
    kind: "send",
    xml: `<iq type="error" id="b1"><error type="wait">` +
      `<resource-constraint xmlns="${STANZAS}"/>` +
      `<text xmlns="${STANZAS}" xml:lang="en">Too many resources are bound for this account</text>` +
      `</error></iq>`,
  }]);
});

Deno.test("bind: at the bound, replacing a bound resource is still allowed", () => {
  const [next, out] = reduce(authed(), stanzaEvent(bindIq("b")), bindCtx(["a", "b"], 2));
  assert.equal(next.fullJid, `user@${HOST}/b`);
  assert.deepEqual(out[0], { kind: "bind", fullJid: `user@${HOST}/b` });
  const [under] = reduce(authed(), stanzaEvent(bindIq("c")), bindCtx(["a", "b"], 3));
  assert.equal(under.fullJid, `user@${HOST}/c`);
});
