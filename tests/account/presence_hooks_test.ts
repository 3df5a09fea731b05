/**
 * Presence runs the registry's presence hooks: what a hook changes (the presence, the session)
 * is what presence sends, its outputs go before the broadcast and its `after` outputs once the
 * broadcast is out; a module that is off takes no part. Then the server's own hooks (XEP-0153,
 * XEP-0012) with exact outputs.
 */
import assert from "node:assert/strict";
import { goodbyeOutputs, onOutboundPresence } from "../../lib/account/presence.ts";
import { reduceAccount } from "../../lib/account/account.ts";
import type { AccountState, Ctx, Module } from "../../lib/core/types.ts";
import { NO_OFFLINE } from "../../lib/core/types.ts";
import { EMPTY_ROSTER } from "../../lib/core/session.ts";
import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import { elem, stanza, withChildren } from "../../lib/xml/element.ts";
import { bound, HOST, NOW, show, testCtx } from "../_ctx.ts";

const USER = `user@${HOST}`;
const FULL = `${USER}/res`;

const note = (id: string) => stanza("message", { id, to: FULL });

/** Marks available presence and remembers it saw it (in `avatarHash`, which nothing else reads here). */
const MARK: Module = {
  name: "mark",
  presence: (s, presence) => {
    if (presence.attrs.type !== undefined) return undefined;
    return {
      presence: withChildren(presence, [...presence.children, elem("mark", { xmlns: "urn:t" })]),
      session: { ...s, avatarHash: "marked" },
      outputs: [{ kind: "send", stanza: note("before") }],
      after: [{ kind: "send", stanza: note("after") }],
    };
  },
};

/** Sees what the hook before it made of the session. */
const WITNESS: Module = {
  name: "witness",
  presence: (s, presence) =>
    presence.attrs.type === undefined
      ? { after: [{ kind: "send", stanza: note(`saw-${s.avatarHash}`) }] }
      : undefined,
};

/** A module that is off: its hook must not run. */
const OFF: Module = {
  name: "off",
  enabled: () => false,
  presence: () => ({ outputs: [{ kind: "send", stanza: note("off") }] }),
};

function ctxWith(modules: readonly Module[]): Ctx {
  return { ...testCtx(), modules };
}

Deno.test("presence hooks: run in order around the broadcast, each seeing the one before", () => {
  const [next, out] = onOutboundPresence(
    bound(),
    stanza("presence", { from: FULL }),
    ctxWith([OFF, MARK, WITNESS]),
  );
  const marked = `<presence from="${FULL}"><mark xmlns="urn:t"/></presence>`;
  assert.deepEqual(show(out), [
    { kind: "send", xml: `<message id="before" to="${FULL}"/>` },
    { kind: "send", xml: marked },
    {
      kind: "account",
      bare: USER,
      op: { kind: "initial-presence", fullJid: FULL, priority: 0 },
    },
    { kind: "send", xml: `<message id="after" to="${FULL}"/>` },
    { kind: "send", xml: `<message id="saw-marked" to="${FULL}"/>` },
  ]);
  assert.equal(next.avatarHash, "marked");
  assert.equal(next.presence?.children.length, 1);
});

Deno.test("presence hooks: without hooks presence is presence alone", () => {
  const [, out] = onOutboundPresence(bound(), stanza("presence", { from: FULL }), ctxWith([]));
  assert.deepEqual(show(out), [
    { kind: "send", xml: `<presence from="${FULL}"/>` },
    {
      kind: "account",
      bare: USER,
      op: { kind: "initial-presence", fullJid: FULL, priority: 0 },
    },
  ]);
});

Deno.test("presence hooks: XEP-0153 adds the avatar hash to directed available presence", () => {
  const to = `romeo@${HOST}`;
  const [, out] = onOutboundPresence(
    bound({ avatarHash: "abc" }),
    stanza("presence", { from: FULL, to }),
    testCtx(),
  );
  assert.deepEqual(show(out), [{
    kind: "route",
    xml: `<presence from="${FULL}" to="${to}">` +
      `<x xmlns="vcard-temp:x:update"><photo>abc</photo></x></presence>`,
  }]);
});

Deno.test("presence hooks: XEP-0012 records the logout with its status after the presence", () => {
  const available = stanza("presence", { from: FULL });
  const s = bound({ presence: available });
  const [, out] = onOutboundPresence(
    s,
    stanza("presence", { type: "unavailable", from: FULL }, [
      elem("status", { "xml:lang": "fr" }, ["Au revoir"]),
      elem("status", {}, ["Bye"]),
    ]),
    testCtx(),
  );
  assert.deepEqual(show(out).map((o) => o.kind === "send" ? { kind: o.kind } : o), [
    { kind: "send" },
    { kind: "account", bare: USER, op: { kind: "logout", status: "Bye" } },
  ]);
  // A session that ends without a word records a logout without status.
  assert.deepEqual(goodbyeOutputs(s, testCtx()), [
    { kind: "account", bare: USER, op: { kind: "logout" } },
  ]);
  // One that was never available has nothing to record.
  assert.deepEqual(goodbyeOutputs(bound(), testCtx()), []);
});

Deno.test("account logout hook: the last activity module stores the logout, read nowhere first", () => {
  const s: AccountState = {
    bare: USER,
    exists: true,
    roster: EMPTY_ROSTER,
    offline: NO_OFFLINE,
    lastArchived: 0,
    modules: {},
  };
  const ctx = {
    now: () => NOW,
    newId: () => "id",
    resourcesOf: () => [],
    limits: DEFAULT_LIMITS,
    archive: { enabled: false, policy: "roster" as const },
    random: () => "r",
  };
  const [next, out] = reduceAccount(s, { kind: "logout", status: "Bye" }, ctx);
  assert.deepEqual(out, [{
    kind: "store-module",
    store: "lastlog",
    data: { at: NOW, status: "Bye" },
  }]);
  assert.deepEqual(next.modules, { lastlog: { at: NOW, status: "Bye" } });
  const [, none] = reduceAccount({ ...s, exists: false }, { kind: "logout" }, ctx);
  assert.deepEqual(none, []);
});
