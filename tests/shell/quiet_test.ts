import assert from "node:assert/strict";
import { createQuietWatch } from "../../lib/shell/quiet.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("quiet watch: calls back once for a quiet key, never for a busy or forgotten one", async () => {
  const w = createQuietWatch(100);
  const calls: string[] = [];
  const quiet = {}, busy = {}, gone = {};
  w.touch(quiet, () => calls.push("quiet"));
  w.touch(gone, () => calls.push("gone"));
  w.forget(gone);
  for (let i = 0; i < 30; i++) {
    w.touch(busy, () => calls.push("busy"));
    await sleep(10);
  }
  assert.deepEqual(calls, ["quiet"]);
  await sleep(300);
  assert.deepEqual(calls, ["quiet", "busy"]);
  w.stop();
});

Deno.test("quiet watch: tells once when the last busy key went quiet", async () => {
  let allQuiet = 0;
  const w = createQuietWatch(50, () => allQuiet++);
  const a = {}, b = {};
  w.touch(a, () => {});
  for (let i = 0; i < 10; i++) {
    w.touch(b, () => {});
    await sleep(10);
  }
  assert.equal(allQuiet, 0);
  await sleep(250);
  assert.equal(allQuiet, 1);
  w.touch(a, () => {});
  await sleep(250);
  assert.equal(allQuiet, 2);
  w.stop();
});

Deno.test("quiet watch: tells when the last connection went away, not only quiet", async () => {
  let allQuiet = 0;
  const w = createQuietWatch(50, () => allQuiet++);
  // A burst of logins that all logged out: every key is forgotten before it could go quiet.
  const keys = Array.from({ length: 5 }, () => ({}));
  for (const k of keys) w.touch(k, () => assert.fail("a forgotten key never goes quiet"));
  await sleep(10);
  for (const k of keys) w.forget(k);
  await sleep(250);
  assert.equal(allQuiet, 1);
  // Nothing happened since: no second call.
  await sleep(150);
  assert.equal(allQuiet, 1);
  // A connection that ends without sending anything counts as activity too.
  w.forget({});
  await sleep(250);
  assert.equal(allQuiet, 2);
  w.stop();
});

Deno.test("quiet watch: no call while keys come and go faster than a period", async () => {
  let allQuiet = 0;
  const w = createQuietWatch(60, () => allQuiet++);
  for (let i = 0; i < 15; i++) {
    const k = {};
    w.touch(k, () => {});
    await sleep(10);
    w.forget(k);
  }
  assert.equal(allQuiet, 0);
  await sleep(300);
  assert.equal(allQuiet, 1);
  w.stop();
});

Deno.test("quiet watch: runs the idle call again when asked, unless activity came first", async () => {
  const calls: number[] = [];
  // The first call puts its work off by 60 ms; the second is done.
  const w = createQuietWatch(30, (again) => {
    calls.push(calls.length);
    if (calls.length === 1) again(60);
  });
  w.touch({}, () => {});
  await sleep(300);
  assert.deepEqual(calls, [0, 1]);
  await sleep(200);
  assert.deepEqual(calls, [0, 1], "done: not called again");
  w.stop();

  // Activity before the put-off call cancels it; the next quiet spell calls anew.
  let n = 0;
  const v = createQuietWatch(20, (again) => {
    if (n++ === 0) again(300);
  });
  v.touch({}, () => {});
  await sleep(150);
  assert.equal(n, 1);
  const k = {};
  v.touch(k, () => {});
  v.forget(k);
  await sleep(450);
  assert.equal(n, 2, "called for the new spell, and the cancelled call never came");
  v.stop();
});
