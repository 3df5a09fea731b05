import assert from "node:assert/strict";
import { createCapsCache } from "../../lib/shell/caps_cache.ts";
import { verificationString } from "../../lib/modules/caps.ts";
import { DEFAULT_LIMITS, utf8Bytes } from "../../lib/limits.ts";
import { elem, type Element, serialize } from "../../lib/xml/element.ts";
import { NS_DISCO_INFO } from "../../lib/xmpp/namespaces.ts";

/** A disco#info answer with `features`, and its verified ver. */
function answer(features: readonly string[]): { readonly ver: string; readonly query: Element } {
  const identity = { category: "client", type: "pc", name: "t" };
  const ver = verificationString({ identities: [identity], features, forms: [] });
  const query = elem("query", { xmlns: NS_DISCO_INFO, node: `https://c.example/#${ver}` }, [
    elem("identity", identity),
    ...features.map((f) => elem("feature", { var: f })),
  ]);
  return { ver, query };
}

function cost(a: { readonly ver: string }, features: readonly string[]): number {
  return utf8Bytes(a.ver) + features.reduce((n, f) => n + utf8Bytes(f), 0);
}

Deno.test("caps cache: a verified answer is kept, a wrong hash is not", () => {
  const cache = createCapsCache();
  const a = answer(["urn:a", "urn:b+notify"]);
  assert.equal(cache.learn("bm90IGl0", a.query), false);
  assert.deepEqual(cache.size(), { items: 0, bytes: 0 });
  assert.equal(cache.learn(a.ver, a.query), true);
  assert.deepEqual(cache.get(a.ver), ["urn:a", "urn:b+notify"]);
  assert.deepEqual(cache.size(), { items: 1, bytes: cost(a, ["urn:a", "urn:b+notify"]) });
  // Learning it again replaces it: nothing is counted twice.
  assert.equal(cache.learn(a.ver, a.query), true);
  assert.deepEqual(cache.size(), { items: 1, bytes: cost(a, ["urn:a", "urn:b+notify"]) });
});

Deno.test("caps cache: an answer over capsEntryBytes is not kept", () => {
  const cache = createCapsCache({ ...DEFAULT_LIMITS, capsEntryBytes: 1024 });
  const small = answer(["urn:small"]);
  const big = answer(Array.from({ length: 40 }, (_, i) => `urn:feature:${i}`));
  assert.ok(utf8Bytes(serialize(big.query)) > 1024);
  assert.ok(utf8Bytes(serialize(small.query)) <= 1024);
  assert.equal(cache.learn(big.ver, big.query), false);
  assert.equal(cache.get(big.ver), undefined);
  assert.equal(cache.learn(small.ver, small.query), true);
  assert.deepEqual(cache.size(), { items: 1, bytes: cost(small, ["urn:small"]) });
});

Deno.test("caps cache: past capsCacheItems the least recently used goes", () => {
  const cache = createCapsCache({ ...DEFAULT_LIMITS, capsCacheItems: 3 });
  const [a, b, c, d] = ["urn:a", "urn:b", "urn:c", "urn:d"].map((f) => answer([f]));
  for (const x of [a, b, c]) assert.equal(cache.learn(x.ver, x.query), true);
  // A hit on the oldest makes b the least recently used.
  assert.deepEqual(cache.get(a.ver), ["urn:a"]);
  assert.equal(cache.learn(d.ver, d.query), true);
  assert.equal(cache.size().items, 3);
  assert.equal(cache.get(b.ver), undefined);
  for (const x of [a, c, d]) assert.ok(cache.get(x.ver) !== undefined);
  assert.equal(cache.size().bytes, cost(a, ["urn:a"]) + cost(c, ["urn:c"]) + cost(d, ["urn:d"]));
});

Deno.test("caps cache: past capsCacheBytes the least recently used go, as many as needed", () => {
  const features = (tag: string) => Array.from({ length: 10 }, (_, i) => `urn:${tag}:${i}`);
  const answers = ["a", "b", "c", "d"].map((t) => ({ ...answer(features(t)), t }));
  const one = cost(answers[0], features("a"));
  const cache = createCapsCache({ ...DEFAULT_LIMITS, capsCacheBytes: 3 * one });
  for (const x of answers.slice(0, 3)) assert.equal(cache.learn(x.ver, x.query), true);
  assert.deepEqual(cache.size(), { items: 3, bytes: 3 * one });
  assert.equal(cache.learn(answers[3].ver, answers[3].query), true);
  assert.deepEqual(cache.size(), { items: 3, bytes: 3 * one });
  assert.equal(cache.get(answers[0].ver), undefined);
  // An entry larger than the whole cache is refused without emptying it.
  const huge = answer(Array.from({ length: 40 }, (_, i) => `urn:huge:${i}`));
  assert.equal(cache.learn(huge.ver, huge.query), false);
  assert.deepEqual(cache.size(), { items: 3, bytes: 3 * one });
});

Deno.test("caps cache: capsCacheItems = 0 keeps nothing", () => {
  const cache = createCapsCache({ ...DEFAULT_LIMITS, capsCacheItems: 0 });
  const a = answer(["urn:a"]);
  assert.equal(cache.learn(a.ver, a.query), false);
  assert.deepEqual(cache.size(), { items: 0, bytes: 0 });
});

Deno.test("caps cache: many answers stay within both bounds", () => {
  const limits = { ...DEFAULT_LIMITS, capsCacheItems: 50, capsCacheBytes: 4096 };
  const cache = createCapsCache(limits);
  for (let i = 0; i < 500; i++) {
    const a = answer(Array.from({ length: 1 + (i % 7) }, (_, j) => `urn:n${i}:${j}`));
    assert.equal(cache.learn(a.ver, a.query), true);
    const { items, bytes } = cache.size();
    assert.ok(items <= 50 && bytes <= 4096, `after ${i}: ${items} items, ${bytes} bytes`);
  }
  assert.ok(cache.size().items > 0);
});
