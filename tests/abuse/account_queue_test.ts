/**
 * The account queue against bad input (issue 9): one failing operation never drops its
 * neighbours, every operation that expects an answer gets exactly one, and a JID whose
 * localpart cannot be stored is answered `service-unavailable`.
 * @module
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import { getLogger } from "../../lib/log.ts";
import type { AccountOp } from "../../lib/core/types.ts";
import type { Event } from "../../lib/core/types.ts";
import { createAccountHub } from "../../lib/shell/account_hub.ts";
import type { Registry, SessionHandle } from "../../lib/shell/registry.ts";
import { openAccountStore } from "../../lib/storage/accounts.ts";
import {
  MAX_ENCODED_PART,
  openKeyvalStore,
  UnstorableNameError,
} from "../../lib/storage/file/datamanager.ts";
import { openArchiveStore } from "../../lib/storage/file/archive.ts";
import { openOfflineStore } from "../../lib/storage/offline.ts";
import { child, elem, type Element, serialize, stanza } from "../../lib/xml/element.ts";
import { NS_PUBSUB, NS_STANZA_ERRORS } from "../../lib/xmpp/namespaces.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { withServer } from "../integration/_server.ts";

const PROTO_NAMES = ["constructor", "__proto__", "toString", "hasOwnProperty"] as const;
/** Encodes to 241 characters: one past what a file name of the store can hold. */
const LONG_LOCAL = "a".repeat(MAX_ENCODED_PART + 1);

function errorCondition(el: Element): string | undefined {
  const error = child(el, "error");
  return error?.children.find((c): c is Element =>
    typeof c !== "string" && (c.xmlns === NS_STANZA_ERRORS || c.attrs.xmlns === NS_STANZA_ERRORS)
  )?.name;
}

async function online(port: number, user: string): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.login(user, "pw");
  await c.bind("r");
  c.write("<presence/>");
  await c.ping();
  return c;
}

Deno.test("abuse: PEP requests for prototype names to another user's JID drop none of the messages queued beside them", () =>
  withServer(["romeo", "juliet"], async (server) => {
    const romeo = await online(server.c2sPort, "romeo");
    const juliet = await online(server.c2sPort, "juliet");
    try {
      // Juliet's account archives and delivers each message, in her queue beside the requests.
      for (let i = 0; i < 300; i++) {
        if (i % 10 === 5) {
          const node = PROTO_NAMES[(i / 10 | 0) % PROTO_NAMES.length];
          romeo.write(
            `<iq type='get' id='pep${i}' to='juliet@localhost'><pubsub xmlns='${NS_PUBSUB}'>` +
              `<items node='${node}'/></pubsub></iq>`,
          );
        }
        romeo.write(
          `<message type='chat' id='m${i}' to='juliet@localhost'><body>${i}</body></message>`,
        );
      }
      const bodies = new Set<string>();
      while (bodies.size < 300) {
        const st = await juliet.next(`message ${bodies.size}`);
        if (st.name === "message" && st.attrs.type === "chat") {
          bodies.add(String(child(st, "body")?.children[0]));
        }
      }
      assert.equal(bodies.size, 300);
      // Each of the 30 requests got one answer, whatever it is.
      const answers = new Map<string, number>();
      while (answers.size < 30) {
        const st = await romeo.next(`answer ${answers.size}`);
        if (st.name === "iq" && st.attrs.id?.startsWith("pep")) {
          answers.set(st.attrs.id, (answers.get(st.attrs.id) ?? 0) + 1);
        }
      }
      await romeo.ping();
      assert.equal(answers.size, 30);
      assert.ok([...answers.values()].every((n) => n === 1));
    } finally {
      await romeo.close();
      await juliet.close();
    }
  }, { require_encryption: false }));

Deno.test("abuse: a message to a localpart too long to store bounces service-unavailable", () =>
  withServer(["romeo"], async (server) => {
    const romeo = await online(server.c2sPort, "romeo");
    try {
      const to = `${LONG_LOCAL}@localhost`;
      romeo.write(`<message type='chat' id='long1' to='${to}'><body>hi</body></message>`);
      romeo.write(`<iq type='get' id='long2' to='${to}'><vCard xmlns='vcard-temp'/></iq>`);
      // Nothing comes back for presence (RFC 6121 §8.5.1), and the queue goes on after it.
      romeo.write(`<presence type='subscribe' to='${to}'/>`);
      romeo.write(`<message type='chat' id='long3' to='${to}'><body>again</body></message>`);
      const got: Element[] = [];
      while (got.length < 3) {
        const st = await romeo.next(`bounce ${got.length}`);
        if (st.attrs.id?.startsWith("long")) got.push(st);
      }
      // Sorted: the two kinds of stanza need not come back in the order they were sent.
      assert.deepEqual(
        got.map((st) => [st.name, st.attrs.id, st.attrs.type, st.attrs.from, errorCondition(st)])
          .sort((a, b) => String(a[1]).localeCompare(String(b[1]))),
        [
          ["message", "long1", "error", to, "service-unavailable"],
          ["iq", "long2", "error", to, "service-unavailable"],
          ["message", "long3", "error", to, "service-unavailable"],
        ],
      );
      // No file was created for it anywhere.
      for await (const e of Deno.readDir(join(server.dataDir, "localhost"))) {
        if (!e.isDirectory) continue;
        for await (const f of Deno.readDir(join(server.dataDir, "localhost", e.name))) {
          assert.ok(!f.name.startsWith("aaaa"), `${e.name}/${f.name}`);
        }
      }
    } finally {
      await romeo.close();
    }
  }, { require_encryption: false }));

Deno.test("abuse: an account whose localpart cannot be stored cannot be created", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const accounts = openAccountStore(dir);
    await assert.rejects(accounts.create("localhost", LONG_LOCAL, "pw"), UnstorableNameError);
    assert.equal(await accounts.exists("localhost", LONG_LOCAL), false);
    assert.equal(await accounts.getCredentials("localhost", LONG_LOCAL), undefined);
    // A multi-byte name of far fewer characters encodes past the limit too.
    await assert.rejects(accounts.create("localhost", "é".repeat(41), "pw"), UnstorableNameError);
    // Nothing at all was written.
    const files: string[] = [];
    for await (const e of Deno.readDir(dir)) files.push(e.name);
    assert.ok(files.every((f) => f === "localhost"), files.join());
    await accounts.create("localhost", "a".repeat(MAX_ENCODED_PART), "pw");
    assert.equal(await accounts.exists("localhost", "a".repeat(MAX_ENCODED_PART)), true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- The property test: random operations into one account queue ----

/** mulberry32: small, seeded, good enough to pick test cases. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A generated op and what it expects: an answer to `from` with `id`, or nothing. */
interface Case {
  readonly op: AccountOp;
  /** For iqs: the id its one answer carries. For messages: the id it is stored or bounced with. */
  readonly id?: string;
  readonly kind: "iq" | "message" | "none";
}

const HOST = "h";
const OWNER = `juliet@${HOST}`;
const OWNER_FULL = `${OWNER}/r`;

function generate(rand: () => number, n: number): Case[] {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const names = [...PROTO_NAMES, "romeo", "storage:bookmarks", "urn:xmpp:avatar:data", "x"];
  // Element names must be XML names; the peer still picks them.
  const elemNames = [...PROTO_NAMES, "storage", "x"];
  const jid = () =>
    pick([
      `${pick(names)}@${HOST}`,
      `${pick(names)}@${HOST}/${pick(names)}`,
      `romeo@${HOST}/r`,
      pick(PROTO_NAMES),
      `${HOST}`,
    ]);
  const out: Case[] = [];
  for (let i = 0; i < n; i++) {
    const id = `op${i}`;
    const peer = rand() < 0.3 ? OWNER_FULL : jid();
    const node = pick(names);
    switch (Math.floor(rand() * 12)) {
      case 0:
      case 1: {
        const el = stanza(
          "message",
          { from: jid(), to: OWNER, id, type: pick(["chat", "normal"]) },
          [
            elem("body", {}, [`m${i}`]),
          ],
        );
        out.push({
          op: { kind: pick(["incoming-message", "offline-message"]), stanza: el },
          id,
          kind: "message",
        });
        break;
      }
      case 2: {
        const payload = elem("pubsub", { xmlns: NS_PUBSUB }, [
          pick([
            elem("items", { node }),
            elem("publish", { node }, [
              elem("item", { id: pick(names) }, [elem(pick(elemNames), { xmlns: pick(names) })]),
            ]),
            elem("retract", { node }, [elem("item", { id: pick(names) })]),
            elem("subscribe", { node, jid: peer }),
          ]),
        ]);
        const type = payload.children.some((c) => typeof c !== "string" && c.name === "items")
          ? "get"
          : "set";
        const iq = stanza("iq", { from: peer, to: OWNER, id, type }, [payload]);
        out.push({ op: { kind: "module-iq", iq }, id, kind: "iq" });
        break;
      }
      case 3: {
        const set = rand() < 0.5;
        const inner = elem(pick(elemNames), { xmlns: pick(names) }, set ? ["data"] : []);
        const iq = stanza("iq", { from: OWNER_FULL, to: OWNER, id, type: set ? "set" : "get" }, [
          elem("query", { xmlns: "jabber:iq:private" }, [inner]),
        ]);
        out.push({ op: { kind: "module-iq", iq }, id, kind: "iq" });
        break;
      }
      case 4: {
        const set = peer === OWNER_FULL && rand() < 0.5;
        const iq = stanza("iq", { from: peer, to: OWNER, id, type: set ? "set" : "get" }, [
          elem("vCard", { xmlns: "vcard-temp" }, set ? [elem("FN", {}, [node])] : []),
        ]);
        out.push({ op: { kind: "module-iq", iq }, id, kind: "iq" });
        break;
      }
      case 5: {
        const iq = stanza("iq", { from: OWNER_FULL, to: OWNER, id, type: "get" }, [
          elem("query", { xmlns: "jabber:iq:roster" }),
        ]);
        out.push({ op: { kind: "roster-get", iq }, id, kind: "iq" });
        break;
      }
      case 6: {
        const contact = `${pick(names)}@${HOST}`;
        const remove = rand() < 0.3;
        const iq = stanza("iq", { from: OWNER_FULL, to: OWNER, id, type: "set" }, [
          elem("query", { xmlns: "jabber:iq:roster" }, [
            elem(
              "item",
              remove ? { jid: contact, subscription: "remove" } : { jid: contact, name: node },
              [
                elem("group", {}, [pick(names)]),
              ],
            ),
          ]),
        ]);
        const change = remove
          ? { kind: "remove" as const, jid: contact }
          : { kind: "update" as const, jid: contact, name: node, groups: [pick(names)] };
        out.push({ op: { kind: "roster-set", iq, change }, id, kind: "iq" });
        break;
      }
      case 7: {
        const blocked = pick([pick(names), `${pick(names)}@${HOST}`]);
        const iq = stanza("iq", { from: OWNER_FULL, to: OWNER, id, type: "set" }, [
          elem(pick(["block", "unblock"]), { xmlns: "urn:xmpp:blocking" }, [
            elem("item", { jid: blocked }),
          ]),
        ]);
        out.push({ op: { kind: "module-iq", iq }, id, kind: "iq" });
        break;
      }
      case 8: {
        const type = pick(["subscribe", "subscribed", "unsubscribe", "unsubscribed"]);
        const from = `${pick(names)}@${HOST}`;
        out.push({
          op: {
            kind: "inbound-subscription",
            stanza: stanza("presence", { from, to: OWNER, type }),
          },
          kind: "none",
        });
        break;
      }
      case 9: {
        const type = pick(["subscribe", "subscribed", "unsubscribe", "unsubscribed"]);
        const to = `${pick(names)}@${HOST}`;
        out.push({
          op: {
            kind: "outbound-subscription",
            stanza: stanza("presence", { from: OWNER, to, type }),
          },
          kind: "none",
        });
        break;
      }
      case 10:
        out.push({
          op: {
            kind: "probe",
            stanza: stanza("presence", { from: jid(), to: OWNER, type: "probe" }),
          },
          kind: "none",
        });
        break;
      default: {
        // A namespace nobody serves, named like a prototype property.
        const iq = stanza("iq", { from: peer, to: OWNER, id, type: "get" }, [
          elem("query", { xmlns: pick(names) }),
        ]);
        out.push({ op: { kind: "module-iq", iq }, id, kind: "iq" });
      }
    }
  }
  return out;
}

/** A registry with nobody online, where whatever is given to a session is recorded. */
function recordingRegistry(received: Element[]): Registry {
  const handle: SessionHandle = {
    id: "recorder",
    session: () => {
      throw new Error("not a session");
    },
    dispatch: (ev: Event) => {
      if (ev.kind === "inbound") received.push(ev.stanza);
    },
    lastActivity: () => 0,
  };
  return {
    bind: () => undefined,
    unbind: () => {},
    get: () => handle,
    resourcesOf: () => [],
    connections: () => [],
    addConnection: () => {},
    removeConnection: () => {},
  };
}

Deno.test("abuse: random operations into one account queue each get exactly one answer", async () => {
  const seed = Number(Deno.env.get("ACCOUNT_QUEUE_SEED") ?? (Date.now() % 2 ** 31));
  console.log(`account queue property test seed: ${seed} (ACCOUNT_QUEUE_SEED=${seed} to repeat)`);
  const dir = await Deno.makeTempDir();
  try {
    const accounts = openAccountStore(dir);
    await accounts.create(HOST, "juliet", "pw");
    const sent: Element[] = [];
    const registry = recordingRegistry(sent);
    let ids = 0;
    const offline = openOfflineStore(dir, { soleWriter: true, ffi: "off" });
    const hub = createAccountHub({
      accounts,
      rosters: openKeyvalStore(dir, "roster", { soleWriter: true }),
      offline,
      archive: openArchiveStore(dir, { ffi: "off" }),
      prefs: openKeyvalStore(dir, "archive_prefs", { soleWriter: true }),
      openStore: (name) => openKeyvalStore(dir, name, { soleWriter: true }),
      registry,
      ctx: {
        now: () => 1_700_000_000_000,
        newId: () => `push${ids++}`,
        resourcesOf: registry.resourcesOf,
        limits: { ...DEFAULT_LIMITS, offlineMessages: 20 },
        archive: { enabled: true, policy: "always" },
        random: () => "r",
      },
      route: (el) => void sent.push(el),
      log: getLogger("test"),
    });
    const rounds = 3;
    for (let round = 0; round < rounds; round++) {
      const cases = generate(prng(seed + round), 200);
      sent.length = 0;
      await offline.delete(HOST, "juliet");
      for (const c of cases) hub.submit(OWNER, c.op);
      await hub.idle();
      assert.equal(hub.queueLength(OWNER), 0);

      const stored = new Map<string, number>();
      for (const m of await offline.all(HOST, "juliet")) {
        const id = m.attrs.id!;
        stored.set(id, (stored.get(id) ?? 0) + 1);
      }
      const answers = new Map<string, Element[]>();
      for (const el of sent) {
        const id = el.attrs.id;
        if (id === undefined || !id.startsWith("op")) continue;
        if (el.name === "message" && el.attrs.type !== "error") continue; // not an answer
        answers.set(id, [...answers.get(id) ?? [], el]);
      }
      const wrong: string[] = [];
      for (const c of cases) {
        if (c.kind === "none") continue;
        const got = answers.get(c.id!) ?? [];
        const kept = stored.get(c.id!) ?? 0;
        const total = got.length + kept;
        const original = c.op.kind === "roster-set" || c.op.kind === "module-iq" ||
            c.op.kind === "roster-get"
          ? c.op.iq
          : (c.op as { stanza: Element }).stanza;
        const okTo = got.every((g) => g.attrs.to === original.attrs.from);
        const okType = got.every((g) =>
          g.attrs.type === "error" || (c.kind === "iq" && g.attrs.type === "result")
        );
        if (total !== 1 || !okTo || !okType) {
          wrong.push(
            `${serialize(original)} -> ${got.map((g) => serialize(g)).join(" | ")} stored ${kept}`,
          );
        }
      }
      assert.deepEqual(wrong, [], `seed ${seed + round}`);
      const failed = sent.filter((el) => errorCondition(el) === "internal-server-error").length;
      console.log(`round ${round}: ${cases.length} ops, ${failed} answered internal-server-error`);
      // Presence expects no answer, and gets no error for itself either.
      assert.ok(sent.every((el) => !(el.name === "presence" && el.attrs.type === "error")));
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
