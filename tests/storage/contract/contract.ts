/**
 * The storage contract: what every backend of the interfaces in lib/storage/mod.ts must do,
 * one function per interface. A backend's test file (`file_test.ts`, later `sql_test.ts`)
 * calls each with a function that opens a fresh, empty store.
 * @module
 */
import assert from "node:assert/strict";
import {
  type ArchivedMessage,
  type ArchiveQuery,
  newArchiveId,
  type QueryPage,
} from "../../../lib/core/archive.ts";
import type {
  ArchivePage,
  ArchiveStore,
  KeyvalStore,
  ListStore,
  OfflineStore,
  SmStash,
} from "../../../lib/storage/mod.ts";
import { elem, type Element, stanza } from "../../../lib/xml/element.ts";

/** A fresh, empty store, and how to dispose of it. */
export interface Opened<S> {
  readonly store: S;
  readonly close: () => Promise<void>;
}

/** Opens a fresh, empty store. */
export type Open<S> = () => Promise<Opened<S>>;

const H = "example.com";
const H2 = "other.example";
/** User names that are also names of `Object.prototype` members. */
const PROTO_NAMES = ["constructor", "__proto__", "toString", "hasOwnProperty"];

function contractTest<S>(name: string, open: Open<S>, fn: (store: S) => Promise<void>): void {
  Deno.test(name, async () => {
    const { store, close } = await open();
    try {
      await fn(store);
    } finally {
      await close();
    }
  });
}

/** The {@link KeyvalStore} contract. */
export function keyvalContract(backend: string, open: Open<KeyvalStore<unknown>>): void {
  const t = (name: string, fn: (s: KeyvalStore<unknown>) => Promise<void>) =>
    contractTest(`${backend} keyval: ${name}`, open, fn);

  t("get of a missing value, set, get, overwrite", async (s) => {
    assert.equal(await s.get(H, "juliet"), undefined);
    await s.set(H, "juliet", { items: { "romeo@h": { name: "R" } }, n: 1 });
    assert.deepEqual(await s.get(H, "juliet"), { items: { "romeo@h": { name: "R" } }, n: 1 });
    await s.set(H, "juliet", [1, "two", null]);
    assert.deepEqual(await s.get(H, "juliet"), [1, "two", null]);
    assert.equal(await s.get(H2, "juliet"), undefined, "hosts are apart");
  });

  t("delete, and deleting a missing value", async (s) => {
    await s.set(H, "juliet", 1);
    await s.delete(H, "juliet");
    assert.equal(await s.get(H, "juliet"), undefined);
    await s.delete(H, "juliet");
    await s.delete(H, "nobody");
    assert.deepEqual(await s.users(H), []);
  });

  t("users of a host, sorted", async (s) => {
    assert.deepEqual(await s.users(H), []);
    for (const u of ["romeo", "juliet", "benvolio"]) await s.set(H, u, u);
    await s.set(H2, "mercutio", 1);
    assert.deepEqual(await s.users(H), ["benvolio", "juliet", "romeo"]);
    assert.deepEqual(await s.users(H2), ["mercutio"]);
  });

  t("prototype names are users like any other", async (s) => {
    assert.equal(await s.get(H, "constructor"), undefined);
    for (const u of PROTO_NAMES) await s.set(H, u, { u });
    for (const u of PROTO_NAMES) assert.deepEqual(await s.get(H, u), { u });
    assert.deepEqual(await s.users(H), [...PROTO_NAMES].sort());
    for (const u of PROTO_NAMES) await s.delete(H, u);
    assert.deepEqual(await s.users(H), []);
  });
}

/** The {@link ListStore} contract. */
export function listContract(backend: string, open: Open<ListStore<unknown>>): void {
  const t = (name: string, fn: (s: ListStore<unknown>) => Promise<void>) =>
    contractTest(`${backend} list: ${name}`, open, fn);
  const items = (from: number, to: number) =>
    Array.from({ length: to - from }, (_, i) => ({ n: from + i, k: Math.floor((from + i) / 3) }));

  t("append, count, get, range (clamped)", async (s) => {
    assert.equal(await s.count(H, "u"), 0);
    assert.equal(await s.get(H, "u", 0), undefined);
    assert.deepEqual(await s.range(H, "u", 0, 10), []);
    await s.append(H, "u", items(0, 5));
    await s.append(H, "u", []);
    await s.append(H, "u", items(5, 12));
    assert.equal(await s.count(H, "u"), 12);
    assert.deepEqual(await s.get(H, "u", 0), { n: 0, k: 0 });
    assert.deepEqual(await s.get(H, "u", 11), { n: 11, k: 3 });
    assert.equal(await s.get(H, "u", 12), undefined);
    assert.equal(await s.get(H, "u", -1), undefined);
    assert.deepEqual(await s.range(H, "u", 3, 6), items(3, 6));
    assert.deepEqual(await s.range(H, "u", -5, 100), items(0, 12));
    assert.deepEqual(await s.range(H, "u", 8, 4), []);
    assert.equal(await s.count(H2, "u"), 0, "hosts are apart");
  });

  t("lowerBound over a non-decreasing key", async (s) => {
    const key = (x: unknown) => (x as { k: number }).k;
    assert.equal(await s.lowerBound(H, "u", 0, key), 0);
    await s.append(H, "u", items(0, 12)); // keys 0 0 0 1 1 1 2 2 2 3 3 3
    assert.equal(await s.lowerBound(H, "u", -1, key), 0);
    assert.equal(await s.lowerBound(H, "u", 0, key), 0);
    assert.equal(await s.lowerBound(H, "u", 1, key), 3);
    assert.equal(await s.lowerBound(H, "u", 2.5, key), 9);
    assert.equal(await s.lowerBound(H, "u", 3, key), 9);
    assert.equal(await s.lowerBound(H, "u", 4, key), 12);
  });

  t("shift drops the oldest; appends follow", async (s) => {
    await s.shift(H, "u", 3);
    assert.equal(await s.count(H, "u"), 0);
    await s.append(H, "u", items(0, 10));
    await s.shift(H, "u", 0);
    assert.equal(await s.count(H, "u"), 10);
    await s.shift(H, "u", 4);
    assert.deepEqual(await s.range(H, "u", 0, 100), items(4, 10));
    await s.append(H, "u", items(10, 12));
    assert.deepEqual(await s.range(H, "u", 0, 100), items(4, 12));
    await s.shift(H, "u", 100);
    assert.equal(await s.count(H, "u"), 0);
    await s.append(H, "u", items(12, 13));
    assert.deepEqual(await s.range(H, "u", 0, 100), items(12, 13));
  });

  t("delete, users, and prototype names", async (s) => {
    await s.delete(H, "nobody");
    assert.deepEqual(await s.users(H), []);
    for (const u of ["romeo", ...PROTO_NAMES]) await s.append(H, u, [{ u }]);
    await s.append(H2, "juliet", [1]);
    assert.deepEqual(await s.users(H), ["romeo", ...PROTO_NAMES].sort());
    for (const u of PROTO_NAMES) {
      assert.equal(await s.count(H, u), 1);
      assert.deepEqual(await s.get(H, u, 0), { u });
    }
    await s.delete(H, "romeo");
    for (const u of PROTO_NAMES) await s.delete(H, u);
    assert.equal(await s.count(H, "romeo"), 0);
    assert.deepEqual(await s.users(H), []);
    assert.deepEqual(await s.users(H2), ["juliet"]);
  });
}

// ---- Archive ----

const T0 = Date.UTC(2024, 0, 1, 12);
const PEERS = ["alice@a.example/phone", "bob@b.example", "alice@a.example/laptop", "carol@c"];

/** 60 messages; every third shares the previous one's stamp. */
const MSGS: readonly ArchivedMessage[] = (() => {
  const out: ArchivedMessage[] = [];
  let ts = T0;
  for (let i = 0; i < 60; i++) {
    if (i % 3 !== 2) ts += 1000;
    const peer = PEERS[(i * 5 + (i >> 2)) % PEERS.length];
    out.push({
      id: newArchiveId(ts, `r${String(i).padStart(2, "0")}`),
      ts,
      peer,
      stanza: stanza("message", { from: peer, type: "chat", id: `m${i}` }, [
        elem("body", {}, [`message ${i}`]),
      ]),
    });
  }
  return out;
})();

const q = (over: Partial<ArchiveQuery>): ArchiveQuery => ({ max: 5, flip: false, ...over });
const ids = (ms: readonly ArchivedMessage[]) => ms.map((m) => m.id);

function page(p: ArchivePage): QueryPage {
  if ("error" in p) throw new Error(`unexpected ${p.error}`);
  return p;
}

/** The result set of a query's filters (RSM aside), straight from the definition. */
function expected(f: Partial<ArchiveQuery>): readonly ArchivedMessage[] {
  const pos = (id: string) => MSGS.findIndex((m) => m.id === id);
  return MSGS.filter((m, i) =>
    (f.start === undefined || m.ts >= f.start) && (f.end === undefined || m.ts <= f.end) &&
    (f.afterId === undefined || i > pos(f.afterId)) &&
    (f.beforeId === undefined || i < pos(f.beforeId)) &&
    (f.ids === undefined || f.ids.includes(m.id)) &&
    (f.with === undefined ||
      (f.with.includes("/") ? m.peer === f.with : m.peer.split("/")[0] === f.with))
  );
}

/**
 * Pages through a query the way a client does (RSM after the last, or before the first, of
 * each page, which a scan cut short names itself), checking each page; returns the items in
 * archive order and how many pages were cut short by the scan bound.
 */
async function pageThrough(
  s: ArchiveStore,
  f: Partial<ArchiveQuery>,
  backward: boolean,
): Promise<{ readonly items: readonly ArchivedMessage[]; readonly cut: number }> {
  const set = expected(f);
  const got: ArchivedMessage[] = [];
  let cursor: string | undefined;
  let cut = 0;
  for (let n = 0; n < 200; n++) {
    const rsm: Partial<ArchiveQuery> = backward ? { before: cursor ?? true } : { after: cursor };
    const p = page(await s.query(H, "u", q({ ...f, ...rsm })));
    assert.ok(p.items.length <= (f.max ?? 5), "at most max items");
    if (p.count !== undefined) assert.equal(p.count, set.length, "count");
    if (p.firstIndex !== undefined && p.items.length > 0) {
      assert.equal(set[p.firstIndex].id, p.items[0].id, "firstIndex");
    }
    if (backward) got.unshift(...p.items);
    else got.push(...p.items);
    if (p.complete) return { items: got, cut };
    if (p.scanned !== undefined) cut++;
    const edge = backward
      ? p.scanned?.first ?? p.items[0]?.id
      : p.scanned?.last ?? p.items.at(-1)?.id;
    assert.ok(edge !== undefined, "an incomplete page names where to go on");
    cursor = edge;
  }
  throw new Error("paging does not end");
}

/** The {@link ArchiveStore} contract. */
export function archiveContract(backend: string, open: Open<ArchiveStore>): void {
  const t = (name: string, fn: (s: ArchiveStore) => Promise<void>) =>
    contractTest(`${backend} archive: ${name}`, open, fn);
  const filled = (fn: (s: ArchiveStore) => Promise<void>) => async (s: ArchiveStore) => {
    await s.append(H, "u", MSGS.slice(0, 25));
    await s.append(H, "u", MSGS.slice(25));
    await fn(s);
  };
  const FILTERS: readonly Partial<ArchiveQuery>[] = [
    {},
    { with: "alice@a.example" },
    { with: "alice@a.example/laptop" },
    { with: "nobody@x" },
    { start: MSGS[10].ts, end: MSGS[40].ts },
    { start: MSGS[59].ts + 1 },
    { afterId: MSGS[7].id, beforeId: MSGS[50].id },
    { ids: [MSGS[30].id, MSGS[2].id, MSGS[2].id, MSGS[44].id] },
    { with: "bob@b.example", start: MSGS[5].ts, afterId: MSGS[8].id, beforeId: MSGS[55].id },
    { ids: [MSGS[1].id, MSGS[3].id, MSGS[4].id], with: "carol@c" },
  ];

  t("an empty archive: empty complete pages, no metadata", async (s) => {
    assert.deepEqual(await s.metadata(H, "u"), {});
    for (const before of [undefined, true] as const) {
      const p = page(await s.query(H, "u", q({ before })));
      assert.deepEqual([p.items, p.complete], [[], true]);
    }
    assert.deepEqual(await s.users(H), []);
  });

  t(
    "paging forward and backward through every filter gives the result set",
    filled(async (s) => {
      for (const f of FILTERS) {
        for (const backward of [false, true]) {
          const { items } = await pageThrough(s, f, backward);
          assert.deepEqual(ids(items), ids(expected(f)), `${JSON.stringify(f)} ${backward}`);
        }
      }
    }),
  );

  t(
    "RSM ids bound the page and may lie outside the filtered set",
    filled(async (s) => {
      const p = page(await s.query(H, "u", q({ start: MSGS[20].ts, after: MSGS[3].id })));
      assert.deepEqual(ids(p.items), ids(expected({ start: MSGS[20].ts }).slice(0, 5)));
      const b = page(await s.query(H, "u", q({ before: MSGS[12].id, max: 3 })));
      assert.deepEqual(ids(b.items), ids(MSGS.slice(9, 12)));
      assert.equal(b.complete, false);
      const last = page(await s.query(H, "u", q({ before: true, max: 3 })));
      assert.deepEqual(ids(last.items), ids(MSGS.slice(57)));
      const flipped = page(await s.query(H, "u", q({ before: true, max: 3, flip: true })));
      assert.deepEqual(ids(flipped.items), ids(MSGS.slice(57)), "flip is the caller's job");
    }),
  );

  t(
    "unknown ids are item-not-found",
    filled(async (s) => {
      const unknown = newArchiveId(MSGS[5].ts, "zz");
      for (
        const f of [
          { afterId: unknown },
          { beforeId: "not-an-archive-id" },
          { ids: [MSGS[1].id, unknown] },
          { after: unknown },
          { before: unknown },
        ]
      ) {
        assert.deepEqual(await s.query(H, "u", q(f)), { error: "item-not-found" });
      }
    }),
  );

  t(
    "the scan bound cuts a filtered page short, and paging resumes where it stopped",
    filled(async (s) => {
      const f = { with: "carol@c", scanLimit: 4, max: 10 };
      for (const backward of [false, true]) {
        const { items, cut } = await pageThrough(s, f, backward);
        assert.deepEqual(ids(items), ids(expected(f)));
        assert.ok(cut > 0, "some page was cut short");
      }
      // A page cut short before any match still moves on.
      const p = page(await s.query(H, "u", q({ with: "nobody@x", scanLimit: 4 })));
      assert.deepEqual(p.items, []);
      assert.equal(p.complete, false);
      assert.deepEqual(p.scanned, { first: MSGS[0].id, last: MSGS[3].id });
    }),
  );

  t(
    "metadata, and messages come back as they were stored",
    filled(async (s) => {
      const { first, last } = await s.metadata(H, "u");
      assert.deepEqual(first, MSGS[0]);
      assert.deepEqual(last, MSGS[59]);
      const p = page(await s.query(H, "u", q({ ids: [MSGS[17].id] })));
      assert.deepEqual(p.items, [MSGS[17]]);
    }),
  );

  t(
    "expire by age, then by count",
    filled(async (s) => {
      assert.equal(await s.expire(H, "u", { maxItems: 1000 }), 0);
      assert.equal(await s.expire(H, "u", { before: MSGS[10].ts, maxItems: 1000 }), 10);
      assert.equal((await s.metadata(H, "u")).first?.id, MSGS[10].id);
      assert.equal(await s.expire(H, "u", { before: MSGS[12].ts, maxItems: 20 }), 30);
      assert.equal((await s.metadata(H, "u")).first?.id, MSGS[40].id);
      const rest = page(await s.query(H, "u", q({ max: 100 })));
      assert.deepEqual(ids(rest.items), ids(MSGS.slice(40)));
      assert.equal(await s.expire(H, "nobody", { before: T0 * 2, maxItems: 0 }), 0);
    }),
  );

  t(
    "delete, users, and prototype names",
    filled(async (s) => {
      for (const u of PROTO_NAMES) await s.append(H, u, [MSGS[0]]);
      assert.deepEqual(await s.users(H), [...PROTO_NAMES, "u"].sort());
      for (const u of PROTO_NAMES) {
        assert.deepEqual(ids(page(await s.query(H, u, q({}))).items), [MSGS[0].id]);
      }
      await s.delete(H, "u");
      await s.delete(H, "nobody");
      assert.deepEqual(await s.metadata(H, "u"), {});
      for (const u of PROTO_NAMES) await s.delete(H, u);
      assert.deepEqual(await s.users(H), []);
    }),
  );
}

// ---- Offline messages and the stash of hibernating sessions ----

const msg = (n: number): Element =>
  stanza("message", { from: "romeo@h/r", to: "juliet@h", type: "chat" }, [
    elem("body", {}, [`offline ${n}`]),
  ]);

/** The {@link OfflineStore} contract. */
export function offlineContract(backend: string, open: Open<OfflineStore>): void {
  const t = (name: string, fn: (s: OfflineStore) => Promise<void>) =>
    contractTest(`${backend} offline: ${name}`, open, fn);

  t("stat, append, all in order, delete", async (s) => {
    assert.deepEqual(await s.stat(H, "juliet"), { count: 0, bytes: 0 });
    assert.deepEqual(await s.all(H, "juliet"), []);
    for (let i = 0; i < 3; i++) await s.append(H, "juliet", msg(i));
    const st = await s.stat(H, "juliet");
    assert.equal(st.count, 3);
    const json = [0, 1, 2].reduce((n, i) => n + JSON.stringify(msg(i)).length, 0);
    assert.ok(st.bytes >= json, "bytes are at least the JSON's size");
    assert.deepEqual(await s.all(H, "juliet"), [msg(0), msg(1), msg(2)]);
    await s.delete(H, "juliet");
    await s.delete(H, "juliet");
    assert.deepEqual(await s.stat(H, "juliet"), { count: 0, bytes: 0 });
    assert.deepEqual(await s.all(H, "juliet"), []);
  });

  t("prototype names, and a name no backend need store", async (s) => {
    for (const u of PROTO_NAMES) await s.append(H, u, msg(1));
    for (const u of PROTO_NAMES) {
      assert.equal((await s.stat(H, u)).count, 1);
      assert.deepEqual(await s.all(H, u), [msg(1)]);
      await s.delete(H, u);
      assert.equal((await s.stat(H, u)).count, 0);
    }
    assert.deepEqual(await s.stat(H, "x".repeat(3000)), { count: 0, bytes: 0 });
  });
}

/** The {@link SmStash} contract, with the offline store the stash recovers into. */
export function smStashContract(
  backend: string,
  open: Open<{ readonly stash: SmStash; readonly offline: OfflineStore }>,
): void {
  const t = (
    name: string,
    fn: (s: { readonly stash: SmStash; readonly offline: OfflineStore }) => Promise<void>,
  ) => contractTest(`${backend} sm stash: ${name}`, open, fn);

  t("append, drop, recover into offline storage", async ({ stash, offline }) => {
    await stash.append(H, "juliet", "s1", [msg(1), msg(2)]);
    await stash.append(H, "juliet", "s2", [msg(3)]);
    await stash.append(H, "juliet.capulet", "s3", [msg(4)]);
    await stash.drop(H, "juliet", "s2");
    await stash.drop(H, "juliet", "gone");
    assert.equal(await stash.recover([H], offline), 3);
    assert.deepEqual(await offline.all(H, "juliet"), [msg(1), msg(2)]);
    assert.deepEqual(await offline.all(H, "juliet.capulet"), [msg(4)]);
    assert.equal(await stash.recover([H], offline), 0, "recovered stashes are gone");
  });

  t("delete drops every stash of the user, and only theirs", async ({ stash, offline }) => {
    for (const u of ["juliet", "juliet.capulet", ...PROTO_NAMES]) {
      await stash.append(H, u, "s1", [msg(1)]);
      await stash.append(H, u, "s2", [msg(2)]);
    }
    await stash.delete(H, "juliet");
    for (const u of PROTO_NAMES) await stash.delete(H, u);
    await stash.delete(H, "nobody");
    assert.equal(await stash.recover([H], offline), 2);
    assert.deepEqual(await offline.all(H, "juliet.capulet"), [msg(1), msg(2)]);
    assert.deepEqual(await offline.all(H, "juliet"), []);
  });
}
