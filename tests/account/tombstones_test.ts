import { NO_OFFLINE } from "../../lib/core/types.ts";
import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import { reduceAccount } from "../../lib/account/account.ts";
import { type AccountCtx, type AccountOutput, type AccountState } from "../../lib/core/types.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { tombstoneStands } from "../../lib/core/tombstones.ts";
import { EMPTY_ROSTER } from "../../lib/core/session.ts";
import { elem, stanza } from "../../lib/xml/element.ts";
import { NOW } from "../_ctx.ts";

const JULIET = "juliet@example.com";
const ROMEO = "romeo@example.com";
const ORCHARD = `${ROMEO}/orchard`;
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const GONE = `<error type="cancel"><gone xmlns="${STANZAS}"/>` +
  `<text xmlns="${STANZAS}" xml:lang="en">User deleted</text></error>`;

function ctx(): AccountCtx {
  let ids = 0;
  return {
    now: () => NOW,
    newId: () => `id${++ids}`,
    resourcesOf: () => [],
    limits: { ...DEFAULT_LIMITS, offlineMessages: 10 },
    archive: { enabled: false, policy: "roster" },
    random: () => "r",
  };
}

function state(over: Partial<AccountState> = {}): AccountState {
  return {
    bare: JULIET,
    exists: false,
    roster: EMPTY_ROSTER,
    offline: NO_OFFLINE,
    lastArchived: 0,
    modules: {},
    ...over,
  };
}

type Shown = { readonly kind: string; readonly to?: string; readonly xml?: string };

function show(out: readonly AccountOutput[]): Shown[] {
  return out.map((o) =>
    o.kind === "deliver"
      ? { kind: o.kind, to: o.to, xml: serializeTop(o.stanza) }
      : o.kind === "route"
      ? { kind: o.kind, xml: serializeTop(o.stanza) }
      : { kind: o.kind }
  );
}

Deno.test("tombstones: stand until the expiry, forever with Infinity", () => {
  assert.equal(tombstoneStands(undefined, NOW, 60), false);
  assert.equal(tombstoneStands({ removed: NOW - 59_000 }, NOW, 60), true);
  assert.equal(tombstoneStands({ removed: NOW - 60_000 }, NOW, 60), false);
  assert.equal(tombstoneStands({ removed: 0 }, NOW, Infinity), true);
});

Deno.test("tombstones: remove-account asks the shell to delete; once deleted the state is empty", () => {
  const item = { jid: ROMEO, subscription: "both" as const, groups: [] };
  const iq = stanza("iq", { type: "set", id: "bye", from: `${JULIET}/balcony` });
  const s = state({
    exists: true,
    roster: { version: "3", items: { [ROMEO]: item }, pendingIn: {} },
    offline: { count: 1, bytes: 100 },
    modules: { vcard: {} },
  });
  const [asked, out] = reduceAccount(s, { kind: "remove-account", iq }, ctx());
  assert.deepEqual(out, [{ kind: "delete-account", iq }]);
  assert.equal(asked, s);
  const [next] = reduceAccount(asked, { kind: "account-removed", iq, ok: true }, ctx());
  assert.deepEqual(
    next,
    state({ exists: false, gone: true, roster: EMPTY_ROSTER, offline: NO_OFFLINE, modules: {} }),
  );
});

Deno.test("tombstones: a probe from a session gets gone and unsubscribed, to that session", () => {
  const probe = stanza("presence", { type: "probe", from: ORCHARD, to: JULIET });
  const [next, out] = reduceAccount(state({ gone: true }), { kind: "probe", stanza: probe }, ctx());
  assert.deepEqual(show(out), [
    {
      kind: "deliver",
      to: ORCHARD,
      xml: `<presence type="error" from="${JULIET}" to="${ORCHARD}">${GONE}</presence>`,
    },
    {
      kind: "deliver",
      to: ORCHARD,
      xml: `<presence type="unsubscribed" from="${JULIET}" to="${ROMEO}"/>`,
    },
  ]);
  assert.deepEqual(next, state({ gone: true }));
});

Deno.test("tombstones: a subscription request is refused through the router", () => {
  const subscribe = stanza("presence", { type: "subscribe", from: ROMEO, to: JULIET });
  const [, out] = reduceAccount(
    state({ gone: true }),
    { kind: "inbound-subscription", stanza: subscribe },
    ctx(),
  );
  assert.deepEqual(show(out), [
    {
      kind: "route",
      xml: `<presence type="error" from="${JULIET}" to="${ROMEO}">${GONE}</presence>`,
    },
    { kind: "route", xml: `<presence type="unsubscribed" from="${JULIET}" to="${ROMEO}"/>` },
  ]);
});

Deno.test("tombstones: other subscription stanzas, and accounts never created, get nothing", () => {
  const unsubscribe = stanza("presence", { type: "unsubscribe", from: ROMEO, to: JULIET });
  assert.deepEqual(
    reduceAccount(
      state({ gone: true }),
      { kind: "inbound-subscription", stanza: unsubscribe },
      ctx(),
    )[1],
    [],
  );
  const probe = stanza("presence", { type: "probe", from: ORCHARD, to: JULIET });
  assert.deepEqual(reduceAccount(state(), { kind: "probe", stanza: probe }, ctx())[1], []);
});

Deno.test("tombstones: a message to a removed account bounces with service-unavailable", () => {
  const msg = stanza("message", { type: "chat", from: ORCHARD, to: JULIET }, [
    elem("body", {}, ["hi"]),
  ]);
  const [, out] = reduceAccount(
    state({ gone: true }),
    { kind: "offline-message", stanza: msg },
    ctx(),
  );
  assert.deepEqual(show(out), [{
    kind: "route",
    xml: `<message type="error" from="${JULIET}" to="${ORCHARD}"><error type="cancel">` +
      `<service-unavailable xmlns="${STANZAS}"/></error></message>`,
  }]);
});
