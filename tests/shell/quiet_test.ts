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
