/** The session phases, derived from the record's fields. */
import assert from "node:assert/strict";
import { newSession, phaseOf, type Session } from "../../lib/core/session.ts";

const fresh: Session = newSession("c1", { ip: "192.0.2.1", secure: true });
const authed: Session = { ...fresh, type: "c2s", notopen: false, username: "u", host: "h" };
const bound: Session = { ...authed, resource: "r", fullJid: "u@h/r" };
const sm = { inbound: 0, outbound: 0, unacked: [] };
const hibernating: Session = { ...bound, sm: { ...sm, id: "x", hibernating: true } };

Deno.test("phaseOf: a new session is unauthenticated", () => {
  assert.equal(phaseOf(fresh), "unauthenticated");
  // Still unauthenticated mid-SASL, with a username chosen but not proven.
  assert.equal(phaseOf({ ...fresh, username: "u", host: "h" }), "unauthenticated");
});

Deno.test("phaseOf: authenticated once SASL succeeded, bound once a resource is", () => {
  assert.equal(phaseOf(authed), "authenticated");
  assert.equal(phaseOf(bound), "bound");
  // Stream management enabled but the connection alive: still bound.
  assert.equal(phaseOf({ ...bound, sm: { ...sm, id: "x" } }), "bound");
});

Deno.test("phaseOf: hibernating while the connection is gone and the session waits", () => {
  assert.equal(phaseOf(hibernating), "hibernating");
  assert.equal(phaseOf({ ...bound, sm: { ...sm, hibernating: false } }), "bound");
});

Deno.test("phaseOf: a destroyed session has ended, whatever else it holds", () => {
  for (const s of [fresh, authed, bound, hibernating]) {
    assert.equal(phaseOf({ ...s, destroyed: true }), "ended");
  }
});
