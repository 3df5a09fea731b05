/** Remote contacts' resources for PEP: presence tracked, caps asked once, only our answers learned. */
import assert from "node:assert/strict";
import { createCapsCache } from "../../lib/shell/caps_cache.ts";
import { createRemotePresence } from "../../lib/shell/remote_presence.ts";
import { verificationString } from "../../lib/modules/caps.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { NS_CAPS, NS_DISCO_INFO } from "../../lib/xmpp/namespaces.ts";

const NODE = "https://client.example/";
const IDENTITY = { category: "client", type: "pc" };
const FEATURES = [NS_DISCO_INFO, "urn:x:nick+notify"];
const VER = verificationString({ identities: [IDENTITY], features: FEATURES, forms: [] });
const LIMITS = { resources: 3, perBare: 2, questions: 2 };

function presence(from: string, attrs: Record<string, string> = {}, ver?: string): Element {
  return stanza("presence", { from, to: "alice@a.example", ...attrs }, [
    ver !== undefined && elem("c", { xmlns: NS_CAPS, hash: "sha-1", node: NODE, ver }),
  ]);
}

function answer(q: Element, features = FEATURES): Element {
  return stanza("iq", { type: "result", id: q.attrs.id, from: q.attrs.to, to: q.attrs.from }, [
    elem("query", { xmlns: NS_DISCO_INFO, node: `${NODE}#${VER}` }, [
      elem("identity", IDENTITY),
      ...features.map((f) => elem("feature", { var: f })),
    ]),
  ]);
}

function setup() {
  const caps = createCapsCache();
  const sent: Element[] = [];
  let n = 0;
  const rp = createRemotePresence(caps, (st) => sent.push(st), () => `${++n}`, LIMITS);
  return { caps, sent, rp };
}

Deno.test("remote presence: an available resource is tracked and its caps asked once", () => {
  const { sent, rp } = setup();
  assert.equal(rp.observe(presence("bob@b.example/phone", {}, VER)), false);
  assert.equal(rp.observe(presence("bob@b.example/laptop", {}, VER)), false);
  assert.equal(sent.length, 1);
  assert.deepEqual(sent[0].attrs, {
    type: "get",
    id: "caps-1",
    from: "a.example",
    to: "bob@b.example/phone",
  });
  assert.deepEqual(
    rp.resourcesOf("bob@b.example").map((r) => [r.fullJid, r.features]),
    [["bob@b.example/phone", undefined], ["bob@b.example/laptop", undefined]],
  );
  // Our answer is consumed and learned: the features now show.
  assert.equal(rp.observe(answer(sent[0])), true);
  assert.deepEqual(rp.resourcesOf("bob@b.example")[0].features, FEATURES);
  // Unavailable forgets the resource.
  rp.observe(presence("bob@b.example/phone", { type: "unavailable" }));
  assert.deepEqual(rp.resourcesOf("bob@b.example").map((r) => r.fullJid), [
    "bob@b.example/laptop",
  ]);
});

Deno.test("remote presence: answers nobody asked for, or from someone else, teach nothing", () => {
  const { caps, sent, rp } = setup();
  rp.observe(presence("bob@b.example/phone", {}, VER));
  const q = sent[0];
  // From another JID than the one asked: not ours to learn, routed on as usual.
  assert.equal(rp.observe({ ...answer(q), attrs: { ...answer(q).attrs, from: "eve@e/x" } }), false);
  // An id we never used.
  assert.equal(rp.observe({ ...answer(q), attrs: { ...answer(q).attrs, id: "caps-99" } }), false);
  assert.equal(caps.get(VER), undefined);
  // Features that do not hash to the ver are not kept.
  assert.equal(rp.observe(answer(q, ["urn:x:other"])), true);
  assert.equal(caps.get(VER), undefined);
});

Deno.test("remote presence: bounded per bare JID, in all, and in questions", () => {
  const { sent, rp } = setup();
  for (const r of ["a", "b", "c"]) rp.observe(presence(`bob@b.example/${r}`));
  assert.deepEqual(rp.resourcesOf("bob@b.example").map((r) => r.resource), ["b", "c"]);
  for (const u of ["carol", "dave"]) rp.observe(presence(`${u}@c.example/r`));
  assert.equal(rp.size().resources, 3);
  assert.deepEqual(rp.resourcesOf("bob@b.example").map((r) => r.resource), ["c"]);
  for (const v of ["v1", "v2", "v3"]) rp.observe(presence(`erin@e.example/${v}`, {}, v));
  assert.equal(sent.length, 3);
  assert.equal(rp.size().questions, 2);
  // Presence without a resource, or of another type, is not tracked.
  rp.observe(presence("f.example"));
  rp.observe(presence("frank@f.example/r", { type: "subscribe" }));
  assert.deepEqual(rp.resourcesOf("frank@f.example"), []);
});

Deno.test("remote presence: prototype names as users, resources and ids are plain keys", () => {
  const { rp } = setup();
  rp.observe(presence("constructor@b.example/__proto__"));
  assert.deepEqual(rp.resourcesOf("constructor@b.example").map((r) => r.resource), ["__proto__"]);
  assert.deepEqual(rp.resourcesOf("__proto__@b.example"), []);
  const iq = stanza("iq", { type: "result", id: "constructor", from: "x@y/z" }, []);
  assert.equal(rp.observe(iq), false);
});
