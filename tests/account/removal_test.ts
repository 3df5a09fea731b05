/**
 * Account removal (XEP-0077 §3.2) as the account reducer decides it: the shell deletes and
 * answers with `account-removed`; who hears what, and which sessions end, is said here.
 */
import assert from "node:assert/strict";
import { failedOpReplies, reduceAccount } from "../../lib/account/account.ts";
import {
  type AccountCtx,
  type AccountOutput,
  type AccountState,
  NO_OFFLINE,
} from "../../lib/core/types.ts";
import { EMPTY_ROSTER } from "../../lib/core/session.ts";
import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import { elem, stanza } from "../../lib/xml/element.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { NOW } from "../_ctx.ts";

const JULIET = "juliet@example.com";
const BALCONY = `${JULIET}/balcony`;
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

function ctx(): AccountCtx {
  return {
    now: () => NOW,
    newId: () => "id",
    resourcesOf: () => [],
    limits: DEFAULT_LIMITS,
    archive: { enabled: false, policy: "roster" },
    random: () => "r",
  };
}

const existing: AccountState = {
  bare: JULIET,
  exists: true,
  roster: {
    version: "2",
    items: { "romeo@example.com": { jid: "romeo@example.com", subscription: "both", groups: [] } },
    pendingIn: {},
  },
  offline: { count: 2, bytes: 300 },
  lastArchived: 0,
  modules: { vcard: {} },
};

const remove = (attrs: Readonly<Record<string, string>> = { from: BALCONY }) =>
  stanza("iq", { type: "set", id: "bye", to: JULIET, ...attrs }, [
    elem("query", { xmlns: "jabber:iq:register" }, [elem("remove")]),
  ]);

/** Outputs with their stanzas serialized. */
function show(out: readonly AccountOutput[]): unknown[] {
  return out.map((o) => {
    if (o.kind === "route") return { kind: o.kind, xml: serializeTop(o.stanza) };
    if (o.kind === "end-sessions" && o.reply !== undefined) {
      return { kind: o.kind, to: o.reply.to, xml: serializeTop(o.reply.stanza) };
    }
    return o;
  });
}

Deno.test("removal: remove-account asks the shell to delete and changes nothing yet", () => {
  const iq = remove();
  const [next, out] = reduceAccount(existing, { kind: "remove-account", iq }, ctx());
  assert.equal(next, existing);
  assert.deepEqual(out, [{ kind: "delete-account", iq }]);
});

Deno.test("removal: once deleted, the requester gets its result and every session ends", () => {
  const [next, out] = reduceAccount(
    existing,
    { kind: "account-removed", iq: remove(), ok: true },
    ctx(),
  );
  assert.deepEqual(show(out), [{
    kind: "end-sessions",
    to: BALCONY,
    xml: `<iq type="result" id="bye" from="${JULIET}" to="${BALCONY}"/>`,
  }]);
  assert.deepEqual(next, {
    ...existing,
    exists: false,
    gone: true,
    roster: EMPTY_ROSTER,
    offline: NO_OFFLINE,
    modules: {},
  });
});

Deno.test("removal: a request without a sender still ends the sessions, answering nobody", () => {
  const iq = stanza("iq", { type: "set", id: "bye" });
  const [, out] = reduceAccount(existing, { kind: "account-removed", iq, ok: true }, ctx());
  assert.deepEqual(out, [{ kind: "end-sessions" }]);
});

Deno.test("removal: a failed deletion answers the requester alone, and the account stays", () => {
  const [next, out] = reduceAccount(
    existing,
    { kind: "account-removed", iq: remove(), ok: false },
    ctx(),
  );
  assert.equal(next, existing);
  assert.deepEqual(show(out), [{
    kind: "route",
    xml: `<iq type="error" id="bye" from="${JULIET}" to="${BALCONY}">` +
      `<error type="cancel"><internal-server-error xmlns="${STANZAS}"/></error></iq>`,
  }]);
});

Deno.test("removal: an account-removed op that could not be carried out is answered like the request", () => {
  const iq = remove();
  assert.deepEqual(
    failedOpReplies({ kind: "account-removed", iq, ok: true }),
    failedOpReplies({ kind: "remove-account", iq }),
  );
  assert.equal(failedOpReplies({ kind: "account-removed", iq, ok: true }).length, 1);
});
