/** The write-backlog rule and connection counting, with a fake sink and clock. */
import assert from "node:assert/strict";
import { createBacklogGuard, type DropReason } from "../../lib/transport/flow.ts";
import { createAdmission, createHandshakeThrottle } from "../../lib/shell/admission.ts";

function fixture() {
  const state = { backlog: 0, taken: 0, now: 0, drops: [] as DropReason[] };
  const guard = createBacklogGuard(
    () => ({ backlog: () => state.backlog, taken: () => state.taken }),
    100,
    (why) => state.drops.push(why),
    { stallMs: 50, graceMs: 500 },
    () => state.now,
  );
  return { state, guard };
}

Deno.test("one write over the limit that drains is no reason to drop", () => {
  const { state, guard } = fixture();
  state.backlog = 1000;
  guard.check();
  for (let t = 10; t <= 400; t += 10) {
    state.now = t;
    state.taken += 20;
    state.backlog -= 20;
    state.backlog += 5; // small writes meanwhile
    guard.check();
  }
  guard.stop();
  assert.deepEqual(state.drops, []);
});

Deno.test("a backlog that grows by another limit over the limit is dropped", () => {
  const { state, guard } = fixture();
  state.backlog = 150;
  guard.check();
  state.backlog = 250;
  guard.check();
  assert.deepEqual(state.drops, []);
  state.backlog = 251;
  guard.check();
  guard.check();
  assert.deepEqual(state.drops, ["growing"]);
});

Deno.test("a backlog over the limit with nothing taken is dropped after stallMs", () => {
  const { state, guard } = fixture();
  state.backlog = 150;
  guard.check();
  state.now = 49;
  guard.check();
  assert.deepEqual(state.drops, []);
  state.now = 50;
  guard.check();
  assert.deepEqual(state.drops, ["stalled"]);
});

Deno.test("a trickle reader over the limit is dropped after graceMs; under it, never", () => {
  const { state, guard } = fixture();
  state.backlog = 200;
  guard.check();
  for (let t = 40; t < 500; t += 40) {
    state.now = t;
    state.taken++;
    guard.check();
  }
  assert.deepEqual(state.drops, []);
  state.now = 500;
  state.taken++;
  guard.check();
  assert.deepEqual(state.drops, ["too slow"]);

  const other = fixture();
  other.state.backlog = 100;
  other.state.now = 10_000;
  other.guard.check();
  other.guard.stop();
  assert.deepEqual(other.state.drops, []);
});

Deno.test("admission counts per address, unauthenticated, and in all", () => {
  const a = createAdmission({ maxConnections: 4, maxConnectionsPerIp: 3, maxUnauthedPerIp: 2 });
  const t1 = a.admit("1.1.1.1");
  const t2 = a.admit("1.1.1.1");
  assert.ok(t1.ok && t2.ok);
  assert.deepEqual(a.admit("1.1.1.1"), {
    ok: false,
    reason: "too many unauthenticated connections from your address",
  });
  t1.ticket.authenticated();
  const t3 = a.admit("1.1.1.1");
  assert.ok(t3.ok);
  assert.equal(a.admit("1.1.1.1").ok, false); // three from this address
  const t4 = a.admit("constructor");
  assert.ok(t4.ok);
  assert.deepEqual(a.admit("2.2.2.2"), { ok: false, reason: "too many connections" });
  t2.ticket.release();
  t2.ticket.release(); // idempotent
  assert.deepEqual(a.counts("1.1.1.1"), { total: 3, ip: 2, unauthed: 1 });
  t1.ticket.release();
  t3.ticket.release();
  t4.ticket.release();
  assert.deepEqual(a.counts("1.1.1.1"), { total: 0, ip: 0, unauthed: 0 });
  assert.deepEqual(a.counts("constructor"), { total: 0, ip: 0, unauthed: 0 });
});

Deno.test("the handshake throttle refuses after maxFailures within the window", () => {
  const th = createHandshakeThrottle({ maxFailures: 2, windowMs: 100, maxKeys: 2 });
  th.recordFailure("__proto__", 0);
  assert.equal(th.isThrottled("__proto__", 1), false);
  th.recordFailure("__proto__", 1);
  assert.equal(th.isThrottled("__proto__", 2), true);
  assert.equal(th.isThrottled("__proto__", 101), false);
  // At maxKeys the oldest address goes.
  th.recordFailure("a", 0);
  th.recordFailure("a", 0);
  th.recordFailure("b", 0);
  th.recordFailure("c", 0);
  assert.equal(th.isThrottled("a", 1), false);
});
