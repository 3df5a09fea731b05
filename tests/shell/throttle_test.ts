/** The login throttle: per pair and per address it refuses, per account it only slows down. */
import assert from "node:assert/strict";
import { addressKey, createAuthThrottle, MAX_DELAY_MS } from "../../lib/shell/throttle.ts";

const WINDOW = 300_000;
const T0 = 1_700_000_000_000;

function defaults() {
  // The [auth] defaults.
  return createAuthThrottle({
    maxFailures: 5,
    maxFailuresPerAddress: 30,
    slowDownAfter: 5,
    windowMs: WINDOW,
  });
}

Deno.test("throttle: failures from many addresses slow an account down but never lock it", () => {
  const t = defaults();
  for (let i = 1; i <= 5; i++) t.record(`198.51.100.${i}`, "alice", false, T0 + i);
  // The right password from a sixth address is not refused (it used to be, for 300 s)...
  assert.equal(t.isThrottled("198.51.100.6", "alice", T0 + 10), false);
  // ...but answered late.
  assert.ok(t.delayMs("alice", T0 + 10) > 0);
  assert.equal(t.delayMs("bob", T0 + 10), 0);
  // Even after many more failures: slower, never refused.
  for (let i = 7; i <= 60; i++) t.record(`198.51.100.${i}`, "alice", false, T0 + i);
  assert.equal(t.isThrottled("198.51.100.200", "alice", T0 + 100), false);
  assert.equal(t.delayMs("alice", T0 + 100), MAX_DELAY_MS);
});

Deno.test("throttle: the delay starts at slowDownAfter, doubles, is capped, and expires", () => {
  const t = defaults();
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) {
    delays.push(t.delayMs("alice", T0));
    t.record(`203.0.113.${i}`, "alice", false, T0);
  }
  assert.deepEqual(delays, [0, 0, 0, 0, 0, 250, 500, 1000, 2000, 4000]);
  assert.equal(t.delayMs("alice", T0 + WINDOW), 0);
});

Deno.test("throttle: the (address, account) pair is refused past maxFailures", () => {
  const t = defaults();
  for (let i = 0; i < 4; i++) t.record("192.0.2.1", "alice", false, T0);
  assert.equal(t.isThrottled("192.0.2.1", "alice", T0), false);
  t.record("192.0.2.1", "alice", false, T0);
  assert.equal(t.isThrottled("192.0.2.1", "alice", T0), true);
  // Only that pair: the same address for another account, another address for this one.
  assert.equal(t.isThrottled("192.0.2.1", "bob", T0), false);
  assert.equal(t.isThrottled("192.0.2.1", undefined, T0), false);
  assert.equal(t.isThrottled("192.0.2.2", "alice", T0), false);
  // Until the failures leave the window.
  assert.equal(t.isThrottled("192.0.2.1", "alice", T0 + WINDOW), false);
});

Deno.test("throttle: an address is refused past maxFailuresPerAddress, whatever the account", () => {
  const t = defaults();
  for (let i = 0; i < 29; i++) t.record("192.0.2.1", `user${i}`, false, T0);
  assert.equal(t.isThrottled("192.0.2.1", "fresh", T0), false);
  t.record("192.0.2.1", "user29", false, T0);
  assert.equal(t.isThrottled("192.0.2.1", "fresh", T0), true);
  assert.equal(t.isThrottled("192.0.2.1", undefined, T0), true);
  assert.equal(t.isThrottled("192.0.2.2", "fresh", T0), false);
});

Deno.test("throttle: a success clears its pair only", () => {
  const t = createAuthThrottle({
    maxFailures: 2,
    maxFailuresPerAddress: 3,
    slowDownAfter: 2,
    windowMs: WINDOW,
  });
  t.record("192.0.2.1", "alice", false, T0);
  t.record("192.0.2.1", "alice", false, T0);
  assert.equal(t.isThrottled("192.0.2.1", "alice", T0), true);
  t.record("192.0.2.1", "alice", true, T0);
  assert.equal(t.isThrottled("192.0.2.1", "alice", T0), false);
  // The address and the account keep their counts: logging in to one's own account between
  // guesses at others must not reset anything but that pair.
  assert.ok(t.delayMs("alice", T0) > 0);
  t.record("192.0.2.1", "bob", false, T0);
  assert.equal(t.isThrottled("192.0.2.1", "carol", T0), true);
});

Deno.test("throttle: without an account only the address counts (registrations)", () => {
  const t = createAuthThrottle({ maxFailures: 2, windowMs: 60_000 });
  t.record("192.0.2.1", undefined, false, T0);
  assert.equal(t.isThrottled("192.0.2.1", undefined, T0), false);
  t.record("192.0.2.1", undefined, false, T0);
  assert.equal(t.isThrottled("192.0.2.1", undefined, T0), true);
  assert.equal(t.isThrottled("192.0.2.2", undefined, T0), false);
  assert.deepEqual(t.sizes(), { pairs: 0, addresses: 1, accounts: 0 });
});

Deno.test("throttle: past maxKeys the oldest entries are evicted, the newest kept", () => {
  const t = createAuthThrottle({
    maxFailures: 1,
    maxFailuresPerAddress: 1,
    slowDownAfter: 1,
    windowMs: WINDOW,
    maxKeys: 3,
  });
  for (let i = 1; i <= 4; i++) t.record(`192.0.2.${i}`, `user${i}`, false, T0 + i);
  // .1 failed again: it becomes the newest, so .2 is the oldest now.
  t.record("192.0.2.1", "user1", false, T0 + 5);
  t.record("192.0.2.5", "user5", false, T0 + 6);
  assert.deepEqual(t.sizes(), { pairs: 3, addresses: 3, accounts: 3 });
  for (const [i, kept] of [[1, true], [2, false], [3, false], [4, true], [5, true]] as const) {
    assert.equal(t.isThrottled(`192.0.2.${i}`, undefined, T0 + 7), kept, `address .${i}`);
    assert.equal(t.isThrottled("198.51.100.1", `user${i}`, T0 + 7), false);
    assert.equal(t.delayMs(`user${i}`, T0 + 7) > 0, kept, `account user${i}`);
  }
});

Deno.test("throttle: entries whose failures left the window are dropped", () => {
  const t = defaults();
  for (let i = 0; i < 100; i++) t.record(`192.0.2.${i}`, `user${i}`, false, T0);
  assert.deepEqual(t.sizes(), { pairs: 100, addresses: 100, accounts: 100 });
  t.record("198.51.100.1", "late", false, T0 + WINDOW);
  assert.deepEqual(t.sizes(), { pairs: 1, addresses: 1, accounts: 1 });
});

Deno.test("throttle: peer-chosen names are only keys, and long ones are kept short", () => {
  const t = defaults();
  for (const name of ["constructor", "__proto__", "toString", "x".repeat(1023)]) {
    for (let i = 0; i < 5; i++) t.record("192.0.2.1", name, false, T0);
    assert.equal(t.isThrottled("192.0.2.1", name, T0), true, name);
    assert.equal(t.delayMs(name, T0), 250, name);
  }
  assert.equal(t.isThrottled("192.0.2.1", "x".repeat(1022), T0), false);
});

Deno.test("throttle: IPv6 addresses count by /64, IPv4-mapped ones as IPv4", () => {
  assert.equal(addressKey("192.0.2.1"), "192.0.2.1");
  assert.equal(addressKey("::ffff:192.0.2.1"), "192.0.2.1");
  assert.equal(addressKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(addressKey("2001:db8:1:2::99"), "2001:db8:1:2::/64");
  assert.equal(addressKey("2001:0db8::1"), "2001:db8:0:0::/64");
  assert.equal(addressKey("::1"), "0:0:0:0::/64");
  assert.equal(addressKey("fe80::1%eth0"), "fe80:0:0:0::/64");
  const t = defaults();
  for (let i = 0; i < 5; i++) t.record(`2001:db8:1:2::${i}`, "alice", false, T0);
  assert.equal(t.isThrottled("2001:db8:1:2::ffff", "alice", T0), true);
  assert.equal(t.isThrottled("2001:db8:1:3::1", "alice", T0), false);
});
