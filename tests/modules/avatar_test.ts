import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import { reduceAccount } from "../../lib/account/account.ts";
import { type AccountCtx, type AccountOutput, type AccountState } from "../../lib/core/types.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { EMPTY_ROSTER } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { HOST, NOW } from "../_ctx.ts";
import { NS_AVATAR_DATA, NS_AVATAR_METADATA, NS_PUBSUB } from "../../lib/xmpp/namespaces.ts";

const JULIET = `juliet@${HOST}`;
const BALCONY = `${JULIET}/balcony`;
/** "hello" in base64, and its SHA-1: the XEP-0084 item id and the XEP-0153 hash. */
const HELLO_B64 = "aGVsbG8=";
const HELLO_SHA1 = "aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d";

function ctx(features: readonly string[] = []): AccountCtx {
  let n = 0;
  return {
    now: () => NOW,
    newId: () => `id${++n}`,
    resourcesOf: (bare) =>
      bare === JULIET
        ? [{
          fullJid: BALCONY,
          resource: "balcony",
          priority: 0,
          available: true,
          interested: true,
          features,
        }]
        : [],
    limits: { ...DEFAULT_LIMITS, offlineMessages: 10 },
    archive: { enabled: false, policy: "roster" },
    random: () => "rnd",
  };
}

function account(modules: Readonly<Record<string, unknown>>): AccountState {
  return {
    bare: JULIET,
    exists: true,
    roster: EMPTY_ROSTER,
    offline: { count: 0, bytes: 0 },
    lastArchived: 0,
    modules,
  };
}

function publish(node: string, id: string, payload: Element): Element {
  return stanza("iq", { type: "set", id: "p1", from: BALCONY }, [
    elem("pubsub", { xmlns: NS_PUBSUB }, [
      elem("publish", { node }, [elem("item", { id }, [payload])]),
    ]),
  ]);
}

function vcardSet(children: readonly Element[]): Element {
  return stanza("iq", { type: "set", id: "v1", from: BALCONY }, [
    elem("vCard", { xmlns: "vcard-temp" }, children),
  ]);
}

const FN = elem("FN", { xmlns: "vcard-temp" }, ["Juliet Capulet"]);
const PHOTO = elem("PHOTO", { xmlns: "vcard-temp" }, [
  elem("TYPE", { xmlns: "vcard-temp" }, ["image/png"]),
  elem("BINVAL", { xmlns: "vcard-temp" }, [HELLO_B64]),
]);
const DATA = elem("data", { xmlns: NS_AVATAR_DATA }, [HELLO_B64]);
const METADATA = elem("metadata", { xmlns: NS_AVATAR_METADATA }, [
  elem("info", { id: HELLO_SHA1, type: "image/png", bytes: "5" }),
]);

/** Outputs with stanzas serialized and stored data named by store. */
function shown(out: readonly AccountOutput[]): unknown[] {
  return out.map((o) =>
    o.kind === "route" || o.kind === "deliver"
      ? `${o.kind} ${serializeTop(o.stanza)}`
      : o.kind === "store-module"
      ? `store ${o.store}`
      : o
  );
}

function run(
  s: AccountState,
  iqs: readonly Element[],
  c: AccountCtx,
): { state: AccountState; out: AccountOutput[] } {
  let state = s;
  const out: AccountOutput[] = [];
  for (const iq of iqs) {
    const [next, more] = reduceAccount(state, { kind: "module-iq", iq }, c);
    state = next;
    out.push(...more);
  }
  return { state, out };
}

Deno.test("avatar: a PEP avatar publication sets the vCard PHOTO and the presence hash", () => {
  const c = ctx();
  const { state, out } = run(
    account({ vcard: { vcard: elem("vCard", { xmlns: "vcard-temp" }, [FN]) } }),
    [publish(NS_AVATAR_DATA, HELLO_SHA1, DATA), publish(NS_AVATAR_METADATA, HELLO_SHA1, METADATA)],
    c,
  );
  const result = (id: string, node: string) =>
    `route <iq type="result" id="p1" to="${BALCONY}"><pubsub xmlns="${NS_PUBSUB}">` +
    `<publish node="${node}"><item id="${id}"/></publish></pubsub></iq>`;
  assert.deepEqual(shown(out), [
    // The data alone changes nothing: the metadata says which image is the avatar.
    "store pep",
    result(HELLO_SHA1, NS_AVATAR_DATA),
    "store pep",
    "store vcard",
    { kind: "avatar-hash", hash: HELLO_SHA1 },
    result(HELLO_SHA1, NS_AVATAR_METADATA),
  ]);
  assert.deepEqual(state.modules.vcard, {
    vcard: elem("vCard", { xmlns: "vcard-temp" }, [FN, PHOTO]),
    avatarHash: HELLO_SHA1,
  });
});

Deno.test("avatar: metadata whose id is not the data's SHA-1, or an URL only, leaves the vCard", () => {
  const wrong = elem("metadata", { xmlns: NS_AVATAR_METADATA }, [
    elem("info", { id: "0000", type: "image/png", bytes: "5" }),
  ]);
  const remote = elem("metadata", { xmlns: NS_AVATAR_METADATA }, [
    elem("info", { id: HELLO_SHA1, type: "image/png", bytes: "5", url: "https://e.org/a.png" }),
  ]);
  for (const metadata of [wrong, remote]) {
    const { state, out } = run(
      account({ vcard: undefined }),
      [publish(NS_AVATAR_DATA, "0000", DATA), publish(NS_AVATAR_DATA, HELLO_SHA1, DATA)],
      ctx(),
    );
    const [after, more] = reduceAccount(
      state,
      { kind: "module-iq", iq: publish(NS_AVATAR_METADATA, "m", metadata) },
      ctx(),
    );
    assert.equal(after.modules.vcard, undefined);
    assert.deepEqual(shown([...out, ...more]).filter((o) => o === "store vcard"), []);
  }
});

Deno.test("avatar: empty metadata (avatar disabled) removes the PHOTO and the hash", () => {
  const s = account({
    vcard: { vcard: elem("vCard", { xmlns: "vcard-temp" }, [FN, PHOTO]), avatarHash: HELLO_SHA1 },
  });
  const { state, out } = run(
    s,
    [publish(NS_AVATAR_METADATA, "off", elem("metadata", { xmlns: NS_AVATAR_METADATA }))],
    ctx(),
  );
  assert.deepEqual(shown(out).slice(0, 3), [
    "store pep",
    "store vcard",
    { kind: "avatar-hash", hash: undefined },
  ]);
  assert.deepEqual(state.modules.vcard, {
    vcard: elem("vCard", { xmlns: "vcard-temp" }, [FN]),
    avatarHash: undefined,
  });
});

Deno.test("avatar: a vCard with a PHOTO is published to both PEP nodes, with notifications", () => {
  const { state, out } = run(
    account({ pep: undefined }),
    [vcardSet([FN, PHOTO])],
    ctx([`${NS_AVATAR_METADATA}+notify`]),
  );
  assert.deepEqual(shown(out), [
    "store vcard",
    "store pep",
    { kind: "avatar-hash", hash: HELLO_SHA1 },
    // §3.2: subscribers of the metadata node hear of the new avatar.
    `deliver <message type="headline" from="${JULIET}" to="${BALCONY}">` +
    `<event xmlns="http://jabber.org/protocol/pubsub#event"><items node="${NS_AVATAR_METADATA}">` +
    `<item id="${HELLO_SHA1}"><metadata xmlns="${NS_AVATAR_METADATA}">` +
    `<info id="${HELLO_SHA1}" type="image/png" bytes="5"/></metadata></item></items></event>` +
    `</message>`,
    `route <iq type="result" id="v1" to="${BALCONY}"/>`,
  ]);
  const pep = state.modules.pep as {
    nodes: Record<string, { items: { id: string; payload: Element }[] }>;
  };
  assert.deepEqual(pep.nodes[NS_AVATAR_DATA].items.map((i) => [i.id, i.payload]), [[
    HELLO_SHA1,
    DATA,
  ]]);
  assert.deepEqual(pep.nodes[NS_AVATAR_METADATA].items.map((i) => [i.id, i.payload]), [
    [HELLO_SHA1, METADATA],
  ]);
});

Deno.test("avatar: the same image both ways is published once, and removing it disables it", () => {
  const c = ctx();
  // PEP first, then a client sets the same photo in the vCard: PEP is not published again.
  const { state, out } = run(
    account({}),
    [
      publish(NS_AVATAR_DATA, HELLO_SHA1, DATA),
      publish(NS_AVATAR_METADATA, HELLO_SHA1, METADATA),
      vcardSet([PHOTO]),
    ],
    c,
  );
  assert.deepEqual(shown(out).slice(-2), [
    "store vcard",
    `route <iq type="result" id="v1" to="${BALCONY}"/>`,
  ]);
  // A vCard without the PHOTO publishes empty metadata (XEP-0084 §4.5).
  const [after, more] = reduceAccount(state, { kind: "module-iq", iq: vcardSet([FN]) }, c);
  assert.deepEqual(shown(more).slice(0, 3), [
    "store vcard",
    "store pep",
    { kind: "avatar-hash", hash: undefined },
  ]);
  const pep = after.modules.pep as { nodes: Record<string, { items: { payload: Element }[] }> };
  assert.deepEqual(
    pep.nodes[NS_AVATAR_METADATA].items.at(-1)?.payload,
    elem("metadata", { xmlns: NS_AVATAR_METADATA }),
  );
});
