import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import { reduceAccount } from "../../lib/account/account.ts";
import { type AccountCtx, type AccountOutput, type AccountState } from "../../lib/core/types.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import type { AccountIqCtx } from "../../lib/core/types.ts";
import { onVcardIq, photoHash, withAvatarHash } from "../../lib/modules/vcard.ts";
import { EMPTY_ROSTER } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { bound, HOST, NOW, run, show, stanzaEvent, testCtx } from "../_ctx.ts";

const JULIET = `juliet@${HOST}`;
const BALCONY = `${JULIET}/balcony`;
const ROMEO = `romeo@${HOST}`;
const ORCHARD = `${ROMEO}/orchard`;
/** "hello" in base64, wrapped as clients wrap long BINVALs; SHA-1 of "hello" below. */
const PHOTO_B64 = "aGVs\n  bG8=";
const HELLO_SHA1 = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";

const SELF: AccountIqCtx = {
  bare: JULIET,
  self: true,
  now: NOW,
  limits: DEFAULT_LIMITS,
  newId: () => "id",
};
const OTHER: AccountIqCtx = {
  bare: JULIET,
  self: false,
  now: NOW,
  limits: DEFAULT_LIMITS,
  newId: () => "id",
};

function vcard(children: readonly Element[] = []): Element {
  return elem("vCard", { xmlns: "vcard-temp" }, children);
}

const FN = elem("FN", {}, ["Juliet Capulet"]);
const PHOTO = elem("PHOTO", {}, [
  elem("TYPE", {}, ["image/png"]),
  elem("BINVAL", {}, [PHOTO_B64]),
]);

function iq(type: "get" | "set", payload: Element, from = BALCONY, to?: string): Element {
  return stanza("iq", { type, id: "v1", from, to }, [payload]);
}

function replies(r: { readonly replies: readonly Element[] }): string[] {
  return r.replies.map(serializeTop);
}

Deno.test("vcard: the owner gets an empty vCard when none is stored", () => {
  const r = onVcardIq(undefined, iq("get", vcard()), vcard(), SELF);
  assert.deepEqual(replies(r), [
    `<iq type="result" id="v1" to="${BALCONY}"><vCard xmlns="vcard-temp"/></iq>`,
  ]);
  assert.equal("data" in r, false);
});

Deno.test("vcard: the owner's set is stored and acknowledged; no photo, no hash change", () => {
  const payload = vcard([FN]);
  const r = onVcardIq(undefined, iq("set", payload), payload, SELF);
  assert.deepEqual(replies(r), [`<iq type="result" id="v1" to="${BALCONY}"/>`]);
  assert.deepEqual(r.data, { vcard: payload, avatarHash: undefined });
  assert.deepEqual(r.outputs, []);
});

Deno.test("vcard: a set with a PHOTO announces the new avatar hash", () => {
  const payload = vcard([FN, PHOTO]);
  const r = onVcardIq(undefined, iq("set", payload), payload, SELF);
  assert.deepEqual(r.data, { vcard: payload, avatarHash: HELLO_SHA1 });
  assert.deepEqual(r.outputs, [{ kind: "avatar-hash", hash: HELLO_SHA1 }]);
  // Setting the same photo again changes nothing the sessions must hear about.
  const again = onVcardIq(r.data, iq("set", payload), payload, SELF);
  assert.deepEqual(again.outputs, []);
});

Deno.test("vcard: an empty set deletes the vCard and withdraws the hash", () => {
  const stored = { vcard: vcard([PHOTO]), avatarHash: HELLO_SHA1 };
  const r = onVcardIq(stored, iq("set", vcard()), vcard(), SELF);
  assert.equal("data" in r, true);
  assert.equal(r.data, undefined);
  assert.deepEqual(r.outputs, [{ kind: "avatar-hash", hash: undefined }]);
  assert.deepEqual(replies(r), [`<iq type="result" id="v1" to="${BALCONY}"/>`]);
});

Deno.test("vcard: anyone gets the stored vCard through the bare JID", () => {
  const stored = { vcard: vcard([FN]) };
  const r = onVcardIq(stored, iq("get", vcard(), ORCHARD, JULIET), vcard(), OTHER);
  assert.deepEqual(replies(r), [
    `<iq type="result" id="v1" from="${JULIET}" to="${ORCHARD}">` +
    `<vCard xmlns="vcard-temp"><FN>Juliet Capulet</FN></vCard></iq>`,
  ]);
});

Deno.test("vcard: another user's missing vCard is item-not-found (XEP-0054 §3.3)", () => {
  const r = onVcardIq(undefined, iq("get", vcard(), ORCHARD, JULIET), vcard(), OTHER);
  assert.deepEqual(replies(r), [
    `<iq type="error" id="v1" from="${JULIET}" to="${ORCHARD}"><error type="cancel">` +
    `<item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`,
  ]);
});

Deno.test("vcard: nobody but the owner sets it (forbidden), and nothing is stored", () => {
  // The module declares who may set; the account reducer refuses before the handler runs.
  const payload = vcard([FN]);
  const state = account({ vcard: undefined });
  const [after, out] = reduceAccount(
    state,
    { kind: "module-iq", iq: iq("set", payload, ORCHARD, JULIET) },
    accountCtx(),
  );
  assert.equal(after, state);
  assert.deepEqual(out.map((o) => o.kind === "route" ? serializeTop(o.stanza) : o.kind), [
    `<iq type="error" id="v1" from="${JULIET}" to="${ORCHARD}"><error type="auth">` +
    `<forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`,
  ]);
});

Deno.test("vcard: a vCard over the size cap is refused with not-acceptable", () => {
  const payload = vcard([elem("DESC", {}, ["x".repeat(DEFAULT_LIMITS.vcardBytes)])]);
  const r = onVcardIq(undefined, iq("set", payload), payload, SELF);
  assert.deepEqual(replies(r), [
    `<iq type="error" id="v1" to="${BALCONY}"><error type="modify">` +
    `<not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
    `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">` +
    `The vCard is larger than ${DEFAULT_LIMITS.vcardBytes} bytes</text></error></iq>`,
  ]);
  assert.equal("data" in r, false);
});

Deno.test("vcard: photoHash needs base64 BINVAL data", () => {
  assert.equal(photoHash(vcard([PHOTO])), HELLO_SHA1);
  assert.equal(photoHash(vcard([FN])), undefined);
  const ext = elem("PHOTO", {}, [elem("EXTVAL", {}, ["https://example.com/a.png"])]);
  assert.equal(photoHash(vcard([ext])), undefined);
  const bad = elem("PHOTO", {}, [elem("BINVAL", {}, ["not base64!"])]);
  assert.equal(photoHash(vcard([bad])), undefined);
});

Deno.test("vcard: withAvatarHash adds the hash, or an empty photo, unless the client gave one", () => {
  const x = (kids: Element[] = []) => elem("x", { xmlns: "vcard-temp:x:update" }, kids);
  const photo = (h: string) => elem("photo", {}, [h]);
  const show = elem("show", {}, ["away"]);
  assert.equal(
    serializeTop(withAvatarHash(stanza("presence", {}, [show]), "abc")),
    `<presence><show>away</show><x xmlns="vcard-temp:x:update"><photo>abc</photo></x></presence>`,
  );
  // The client does not know its avatar yet (XEP-0153 §4.2): the server fills it in.
  assert.equal(
    serializeTop(withAvatarHash(stanza("presence", {}, [x()]), "abc")),
    `<presence><x xmlns="vcard-temp:x:update"><photo>abc</photo></x></presence>`,
  );
  const given = stanza("presence", {}, [x([photo("mine")])]);
  assert.equal(withAvatarHash(given, "abc"), given);
  assert.equal(withAvatarHash(given, undefined), given);
  // No avatar: the server knows the vCard, so it says so with an empty photo (XEP-0153 §4.1).
  assert.equal(
    serializeTop(withAvatarHash(stanza("presence", {}, [show]), undefined)),
    `<presence><show>away</show><x xmlns="vcard-temp:x:update"><photo/></x></presence>`,
  );
  assert.equal(
    serializeTop(withAvatarHash(stanza("presence", {}, [x()]), undefined)),
    `<presence><x xmlns="vcard-temp:x:update"><photo/></x></presence>`,
  );
});

function accountCtx(online: readonly string[] = [BALCONY]): AccountCtx {
  return {
    now: () => NOW,
    newId: () => "id1",
    resourcesOf: (bare) =>
      bare === JULIET
        ? online.map((fullJid) => ({
          fullJid,
          resource: fullJid.slice(fullJid.indexOf("/") + 1),
          priority: 0,
          available: true,
          interested: true,
        }))
        : [],
    limits: { ...DEFAULT_LIMITS, offlineMessages: 10 },
    archive: { enabled: false, policy: "roster" },
    random: () => "rnd",
  };
}

function account(modules: Readonly<Record<string, unknown>> = {}): AccountState {
  return {
    bare: JULIET,
    exists: true,
    roster: EMPTY_ROSTER,
    offline: { count: 0, bytes: 0 },
    lastArchived: 0,
    modules,
  };
}

function shown(out: readonly AccountOutput[]): unknown[] {
  return out.map((o) =>
    o.kind === "route"
      ? { kind: o.kind, xml: serializeTop(o.stanza) }
      : o.kind === "store-module"
      ? { kind: o.kind, store: o.store, data: o.data === undefined ? undefined : "stored" }
      : o
  );
}

Deno.test("vcard: through the account, a set stores, tells the sessions, then answers", () => {
  const payload = vcard([PHOTO]);
  const [next, out] = reduceAccount(
    account(),
    { kind: "module-iq", iq: iq("set", payload) },
    accountCtx(),
  );
  assert.deepEqual(shown(out), [
    { kind: "store-module", store: "vcard", data: "stored" },
    // XEP-0398 §3.2: the photo is published over PEP as well (avatar.ts).
    { kind: "store-module", store: "pep", data: "stored" },
    { kind: "avatar-hash", hash: HELLO_SHA1 },
    { kind: "route", xml: `<iq type="result" id="v1" to="${BALCONY}"/>` },
  ]);
  assert.deepEqual(next.modules.vcard, { vcard: payload, avatarHash: HELLO_SHA1 });
});

Deno.test("vcard: a session that binds learns the stored avatar hash before its roster", () => {
  const s = account({ vcard: { vcard: vcard([PHOTO]), avatarHash: HELLO_SHA1 } });
  const [, out] = reduceAccount(s, { kind: "session-bound", fullJid: BALCONY }, accountCtx());
  assert.deepEqual(out, [
    { kind: "avatar-hash", to: BALCONY, hash: HELLO_SHA1 },
    { kind: "blocklist", to: BALCONY, blocklist: [] },
    { kind: "send-roster", to: BALCONY, roster: EMPTY_ROSTER },
  ]);
  // Without a vCard there is nothing to say.
  const [, none] = reduceAccount(
    account({ vcard: undefined }),
    { kind: "session-bound", fullJid: BALCONY },
    accountCtx(),
  );
  assert.deepEqual(none, [
    { kind: "blocklist", to: BALCONY, blocklist: [] },
    { kind: "send-roster", to: BALCONY, roster: EMPTY_ROSTER },
  ]);
});

Deno.test("vcard: the session keeps the hash and adds it to broadcast and directed presence", () => {
  const ctx = testCtx();
  const me = `user@${HOST}/res`;
  const { session, outputs } = run(bound(), [
    { kind: "avatar-hash", hash: "abc" },
    stanzaEvent(stanza("presence")),
    stanzaEvent(stanza("presence", { to: ROMEO })),
    stanzaEvent(stanza("presence", { type: "unavailable" })),
  ], ctx);
  const x = `<x xmlns="vcard-temp:x:update"><photo>abc</photo></x>`;
  assert.equal(session.avatarHash, "abc");
  assert.deepEqual(show(outputs), [
    { kind: "send", xml: `<presence from="${me}">${x}</presence>` },
    {
      kind: "account",
      bare: `user@${HOST}`,
      op: { kind: "initial-presence", fullJid: me, priority: 0 },
    },
    { kind: "route", xml: `<presence to="${ROMEO}" from="${me}">${x}</presence>` },
    { kind: "route", xml: `<presence type="unavailable" from="${me}" to="${ROMEO}"/>` },
    { kind: "send", xml: `<presence type="unavailable" from="${me}"/>` },
    { kind: "account", bare: `user@${HOST}`, op: { kind: "logout" } },
  ]);
});

Deno.test("vcard: a vCard iq from a session goes to the account, own or another's", () => {
  const ctx = testCtx();
  const own = stanza("iq", { type: "get", id: "v1" }, [vcard()]);
  const theirs = stanza("iq", { type: "get", id: "v2", to: JULIET }, [vcard()]);
  const { outputs } = run(bound(), [stanzaEvent(own), stanzaEvent(theirs)], ctx);
  assert.deepEqual(show(outputs), [
    {
      kind: "account",
      bare: `user@${HOST}`,
      op: {
        kind: "module-iq",
        iq: stanza("iq", { type: "get", id: "v1", from: `user@${HOST}/res` }, [
          vcard(),
        ]),
      },
    },
    {
      kind: "route",
      xml: `<iq type="get" id="v2" to="${JULIET}" from="user@${HOST}/res">` +
        `<vCard xmlns="vcard-temp"/></iq>`,
    },
  ]);
});
