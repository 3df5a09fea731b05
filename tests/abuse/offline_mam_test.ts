/**
 * Offline storage (XEP-0160) and the message archive (XEP-0313) against a real server, under
 * small `[limits]`: what one user can make the server store or read for them is bounded.
 * @module
 */
import assert from "node:assert/strict";
import { type TestServer, withServer } from "../integration/_server.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { type ArchivedMessage, newArchiveId } from "../../lib/core/archive.ts";
import { openKeyvalStore } from "../../lib/storage/file/datamanager.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { child, childElements, elem, type Element, stanza, text } from "../../lib/xml/element.ts";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const MAM = "urn:xmpp:mam:2";
const RSM = "http://jabber.org/protocol/rsm";

function chat(to: string, id: string, body: string): Element {
  return stanza("message", { xmlns: "jabber:client", to, type: "chat", id }, [
    elem("body", {}, [body]),
  ]);
}

/** Everything the client receives until the answer to a ping of its own. */
async function upToPing(c: RawClient): Promise<Element[]> {
  const id = `sync-${crypto.randomUUID()}`;
  c.send(stanza("iq", { xmlns: "jabber:client", type: "get", id, to: "localhost" }, [
    elem("ping", { xmlns: "urn:xmpp:ping" }),
  ]));
  const got: Element[] = [];
  for (;;) {
    const st = await c.next("the ping result");
    if (st.name === "iq" && st.attrs.id === id) return got;
    got.push(st);
  }
}

/** The stanza error condition of an error stanza, or undefined. */
function condition(el: Element): string | undefined {
  if (el.attrs.type !== "error") return undefined;
  const error = child(el, "error");
  return error === undefined ? undefined : childElements(error, STANZAS)[0]?.name;
}

async function client(server: TestServer, user: string, resource: string): Promise<RawClient> {
  const c = await RawClient.connect(server.c2sPort);
  await c.login(user, "pw");
  await c.bind(resource);
  return c;
}

/**
 * Sends `bodies` from alice to bob (offline), and returns the ids of the bounces alice got
 * with their conditions, once bob's account has handled every message.
 */
async function sendOffline(alice: RawClient, bodies: readonly string[]): Promise<string[]> {
  bodies.forEach((b, i) => alice.send(chat("bob@localhost", `m${i + 1}`, b)));
  // Bounces come back through bob's queue; give it time to go through every message.
  const bounces: string[] = [];
  for (let round = 0; round < 20; round++) {
    for (const st of await upToPing(alice)) {
      if (st.name === "message") bounces.push(`${st.attrs.id} ${condition(st)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return bounces;
}

/** Bob logs in, sends initial presence, and gets his offline messages (their ids). */
async function collectOffline(server: TestServer, expected: number): Promise<string[]> {
  const bob = await client(server, "bob", "b");
  try {
    bob.write("<presence/>");
    const ids: string[] = [];
    while (ids.length < expected) {
      const st = await bob.next("an offline message");
      if (st.name === "message") ids.push(st.attrs.id!);
    }
    // Nothing more comes.
    for (const st of await upToPing(bob)) {
      if (st.name === "message") ids.push(st.attrs.id!);
    }
    return ids;
  } finally {
    await bob.close();
  }
}

/** The non-blank lines (records) of a list file, or undefined when there is none. */
async function listRecords(path: string): Promise<number | undefined> {
  try {
    return (await Deno.readTextFile(path)).split("\n").filter((l) => l !== "").length;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
}

const OFFLINE = { require_encryption: false, limits: { offline_messages: 5, offline_bytes: 4096 } };

Deno.test("offline: past offline_bytes, messages bounce service-unavailable; the rest arrive once", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const alice = await client(server, "alice", "a");
    try {
      // Five messages of ~1.3 KB stored (stamps and archive id included): under the count
      // cap, but only three fit in 4096 bytes.
      const bounces = await sendOffline(alice, Array(5).fill("x".repeat(800)));
      assert.deepEqual(bounces, ["m4 service-unavailable", "m5 service-unavailable"]);
    } finally {
      await alice.close();
    }
    const list = `${server.dataDir}/localhost/offline/bob.list`;
    // Appended one at a time to a list; no JSON array is rewritten.
    assert.equal(await listRecords(list), 3);
    await assert.rejects(Deno.stat(`${server.dataDir}/localhost/offline/bob.json`));
    assert.ok((await Deno.stat(list)).size <= 4096, "the stored bytes stay under the cap");

    assert.deepEqual(await collectOffline(server, 3), ["m1", "m2", "m3"]);
    // Delivered: the list is gone, and the room with it is free again.
    assert.equal(await listRecords(list), undefined);
  }, OFFLINE);
});

Deno.test("offline: past offline_messages, messages bounce service-unavailable", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const alice = await client(server, "alice", "a");
    try {
      const bounces = await sendOffline(alice, Array(7).fill("hi"));
      assert.deepEqual(bounces, ["m6 service-unavailable", "m7 service-unavailable"]);
    } finally {
      await alice.close();
    }
    assert.deepEqual(await collectOffline(server, 5), ["m1", "m2", "m3", "m4", "m5"]);
  }, OFFLINE);
});

Deno.test("offline: messages stored as a JSON array before the upgrade are delivered, once", async () => {
  await withServer(["alice", "bob"], async (server) => {
    // What the server before the list store left: one JSON array per user in offline/<user>.json.
    const legacy = ["old1", "old2"].map((id) =>
      stanza("message", { from: "alice@localhost/a", to: "bob@localhost", type: "chat", id }, [
        elem("body", {}, ["from before"]),
        elem("delay", {
          xmlns: "urn:xmpp:delay",
          from: "localhost",
          stamp: "2024-01-01T00:00:00Z",
        }),
      ])
    );
    await openKeyvalStore(server.dataDir, "offline").set("localhost", "bob", legacy);
    const alice = await client(server, "alice", "a");
    try {
      // The legacy messages count against the caps, and the new one comes after them.
      assert.deepEqual(await sendOffline(alice, ["new"]), []);
    } finally {
      await alice.close();
    }
    await assert.rejects(Deno.stat(`${server.dataDir}/localhost/offline/bob.json`));
    assert.deepEqual(await collectOffline(server, 3), ["old1", "old2", "m1"]);
    // And not again at the next login.
    assert.deepEqual(await collectOffline(server, 0), []);
  }, OFFLINE);
});

// ---------------------------------------------------------------------------------------------
// MAM

interface Page {
  readonly ids: string[];
  readonly complete: boolean;
  readonly first?: string;
  readonly last?: string;
  readonly error?: string;
}

/** Runs a MAM query: a form of `fields`, an RSM set of `rsm`; the results and the fin. */
async function mamQuery(
  c: RawClient,
  fields: Readonly<Record<string, readonly string[]>>,
  rsm: readonly Element[] = [],
): Promise<Page> {
  const queryid = crypto.randomUUID();
  const form = elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    elem("field", { var: "FORM_TYPE", type: "hidden" }, [elem("value", {}, [MAM])]),
    ...Object.entries(fields).map(([v, values]) =>
      elem("field", { var: v }, values.map((x) => elem("value", {}, [x])))
    ),
  ]);
  const id = `q-${queryid}`;
  c.send(stanza("iq", { xmlns: "jabber:client", type: "set", id }, [
    elem("query", { xmlns: MAM, queryid }, [form, elem("set", { xmlns: RSM }, rsm)]),
  ]));
  const ids: string[] = [];
  for (;;) {
    const st = await c.next("the MAM results");
    const result = st.name === "message" ? child(st, "result", MAM) : undefined;
    if (result?.attrs.queryid === queryid) ids.push(result.attrs.id!);
    if (st.name !== "iq" || st.attrs.id !== id) continue;
    if (st.attrs.type === "error") return { ids, complete: false, error: condition(st) };
    const fin = child(st, "fin", MAM)!;
    const set = child(fin, "set", RSM);
    const first = set && child(set, "first");
    const last = set && child(set, "last");
    return {
      ids,
      complete: fin.attrs.complete === "true",
      first: first && text(first),
      last: last && text(last),
    };
  }
}

const T0 = Date.UTC(2024, 0, 1);

/** `n` archived messages of alice's with bob, one a second; those at `carol` are with carol. */
function archiveOf(n: number, carol: ReadonlySet<number>): ArchivedMessage[] {
  return Array.from({ length: n }, (_, i) => {
    const peer = carol.has(i) ? "carol@localhost/c" : "bob@localhost/b";
    const ts = T0 + i * 1000;
    return {
      id: newArchiveId(ts, `r${i}`),
      ts,
      peer,
      stanza: stanza(
        "message",
        { from: peer, to: "alice@localhost/a", type: "chat", id: `a${i}` },
        [
          elem("body", {}, [`#${i}`]),
        ],
      ),
    };
  });
}

const MAM_LIMITS = {
  require_encryption: false,
  limits: { mam_ids: 3, mam_scan: 100, mam_prefs_jids: 2 },
};

Deno.test("mam: a with that matches little reads at most mam_scan records a page, and paging on finds all", async () => {
  await withServer(["alice"], async (server) => {
    const items = archiveOf(250, new Set([150, 240]));
    await openListStore<ArchivedMessage>(server.dataDir, "archive", { ffi: "off" })
      .append("localhost", "alice", items);
    const alice = await client(server, "alice", "a");
    try {
      const w = { with: ["carol@localhost"] };
      // Forward: the first page stops after 100 records, empty but not complete, and names
      // the records it covered so that the client can go on after them.
      const p1 = await mamQuery(alice, w);
      assert.deepEqual(p1, {
        ids: [],
        complete: false,
        first: items[0].id,
        last: items[99].id,
      });
      const p2 = await mamQuery(alice, w, [elem("after", {}, [p1.last!])]);
      assert.deepEqual(p2, {
        ids: [items[150].id],
        complete: false,
        first: items[100].id,
        last: items[199].id,
      });
      const p3 = await mamQuery(alice, w, [elem("after", {}, [p2.last!])]);
      assert.deepEqual(p3, {
        ids: [items[240].id],
        complete: true,
        first: items[240].id,
        last: items[240].id,
      });

      // Backward from the end, the same way with <before/>.
      const found: string[] = [];
      let before: Element = elem("before");
      for (let pages = 0;; pages++) {
        assert.ok(pages < 10, "paging backward must end");
        const p = await mamQuery(alice, w, [before]);
        found.unshift(...p.ids);
        if (p.complete) break;
        before = elem("before", {}, [p.first!]);
      }
      assert.deepEqual(found, [items[150].id, items[240].id]);

      // A filter matching nothing at all: three bounded pages, then the end.
      let after: Element[] = [];
      let pages = 0;
      for (;;) {
        const p = await mamQuery(alice, { with: ["nobody@localhost"] }, after);
        pages++;
        assert.deepEqual(p.ids, []);
        if (p.complete) break;
        after = [elem("after", {}, [p.last!])];
      }
      assert.equal(pages, 3);
    } finally {
      await alice.close();
    }
  }, MAM_LIMITS);
});

Deno.test("mam: more ids than mam_ids is policy-violation; as many are fetched", async () => {
  await withServer(["alice"], async (server) => {
    const items = archiveOf(20, new Set());
    await openListStore<ArchivedMessage>(server.dataDir, "archive", { ffi: "off" })
      .append("localhost", "alice", items);
    const alice = await client(server, "alice", "a");
    try {
      const four = [items[1], items[5], items[9], items[13]].map((m) => m.id);
      const refused = await mamQuery(alice, { ids: four });
      assert.deepEqual(refused, { ids: [], complete: false, error: "policy-violation" });
      const three = await mamQuery(alice, { ids: four.slice(0, 3) });
      assert.deepEqual(three.ids, four.slice(0, 3));
      assert.equal(three.complete, true);
    } finally {
      await alice.close();
    }
  }, MAM_LIMITS);
});

Deno.test("mam: preferences past mam_prefs_jids are not-acceptable; prototype names are JIDs", async () => {
  await withServer(["alice"], async (server) => {
    const alice = await client(server, "alice", "a");
    try {
      const prefs = (id: string, always: readonly string[], never: readonly string[]) => {
        const list = (name: string, jids: readonly string[]) =>
          elem(name, {}, jids.map((j) => elem("jid", {}, [j])));
        alice.send(stanza("iq", { xmlns: "jabber:client", type: "set", id }, [
          elem("prefs", { xmlns: MAM, default: "roster" }, [
            list("always", always),
            list("never", never),
          ]),
        ]));
      };
      const answer = async (id: string) => {
        for (;;) {
          const st = await alice.next(`the answer to ${id}`);
          if (st.name === "iq" && st.attrs.id === id) return st;
        }
      };
      prefs("p1", ["constructor@x", "__proto__@x"], ["tostring@x"]);
      assert.equal(condition(await answer("p1")), "not-acceptable");
      prefs("p2", ["constructor@x", "__proto__@x"], []);
      const ok = await answer("p2");
      assert.equal(ok.attrs.type, "result");
      // Stored and read back as given.
      alice.send(stanza("iq", { xmlns: "jabber:client", type: "get", id: "p3" }, [
        elem("prefs", { xmlns: MAM }),
      ]));
      const got = child(await answer("p3"), "prefs", MAM)!;
      const jids = childElements(child(got, "always")!).map(text);
      assert.deepEqual(jids, ["constructor@x", "__proto__@x"]);
    } finally {
      await alice.close();
    }
  }, MAM_LIMITS);
});
