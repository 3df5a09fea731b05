import assert from "node:assert/strict";
import {
  type ArchivedMessage,
  type ArchiveQuery,
  DEFAULT_MAX,
  newArchiveId,
  type QueryPage,
  stamp,
} from "../../lib/core/archive.ts";
import { parseMamQuery, resultMessages } from "../../lib/modules/mam/protocol.ts";
import { listArchiveStore } from "../../lib/storage/file/archive.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import type { ArchiveEnds, ArchivePage, ListStore } from "../../lib/storage/mod.ts";
import { elem, stanza } from "../../lib/xml/element.ts";
import { NS_MAM } from "../../lib/xmpp/namespaces.ts";

/** A query through the archive store over `store`, a list store the tests watch. */
const runQuery = (
  store: ListStore<ArchivedMessage>,
  host: string,
  user: string,
  q: ArchiveQuery,
): Promise<ArchivePage> => listArchiveStore(store).query(host, user, q);
const archiveMetadata = (
  store: ListStore<ArchivedMessage>,
  host: string,
  user: string,
): Promise<ArchiveEnds> => listArchiveStore(store).metadata(host, user);

const HOST = "example.com";
const USER = "romeo";
const OWN = "romeo@example.com/orchard";
const PEERS = [
  "alice@a.example/phone",
  "bob@b.example",
  "alice@a.example/laptop",
  "carol@c.example",
];
const T_BASE = Date.UTC(2024, 0, 1, 12, 0, 0);

/**
 * 120 messages with three peers (alice from two resources). Every fourth message shares the
 * previous one's timestamp, so ids must be told apart among equal stamps, and steps alternate
 * between 400 ms and 1.3 s so some seconds hold two messages.
 */
function makeMessages(): ArchivedMessage[] {
  const out: ArchivedMessage[] = [];
  let ts = T_BASE;
  for (let i = 0; i < 120; i++) {
    if (i % 4 !== 3) ts += i % 2 === 0 ? 400 : 1300;
    const peer = PEERS[(i * 7 + (i >> 3)) % PEERS.length];
    const outgoing = i % 3 === 0;
    out.push({
      id: newArchiveId(ts, `r${i.toString().padStart(3, "0")}`),
      ts,
      peer,
      stanza: stanza("message", {
        to: outgoing ? peer : OWN,
        from: outgoing ? OWN : peer,
        type: "chat",
        id: `m${i}`,
      }, [elem("body", {}, [`message ${i}`])]),
    });
  }
  return out;
}

const MSGS = makeMessages();

function query(over: Partial<ArchiveQuery>): ArchiveQuery {
  return { max: DEFAULT_MAX, flip: false, ...over };
}

function matchesWith(m: ArchivedMessage, w: string): boolean {
  return w.includes("/") ? m.peer === w : m.peer.split("/")[0] === w;
}

/** The reference: the XEP-0313 rules applied to the whole array, one filter at a time. */
function oracle(q: ArchiveQuery): QueryPage | { error: "item-not-found" } {
  const pos = (id: string) => MSGS.findIndex((m) => m.id === id);
  const asked = [
    q.afterId,
    q.beforeId,
    q.after,
    typeof q.before === "string" ? q.before : undefined,
    ...(q.ids ?? []),
  ].filter((x) => x !== undefined);
  if (asked.some((id) => pos(id) < 0)) return { error: "item-not-found" };
  const set = MSGS.map((m, i) => ({ m, i })).filter(({ m, i }) =>
    (q.start === undefined || m.ts >= q.start) && (q.end === undefined || m.ts <= q.end) &&
    (q.afterId === undefined || i > pos(q.afterId)) &&
    (q.beforeId === undefined || i < pos(q.beforeId)) &&
    (q.ids === undefined || q.ids.includes(m.id)) &&
    (q.with === undefined || matchesWith(m, q.with))
  );
  const win = set.filter(({ i }) =>
    (q.after === undefined || i > pos(q.after)) &&
    (typeof q.before !== "string" || i < pos(q.before))
  );
  const backward = q.before !== undefined;
  const from = backward ? Math.max(0, win.length - q.max) : 0;
  const items = win.slice(from, from + q.max);
  return {
    items: items.map(({ m }) => m),
    complete: win.length <= q.max,
    count: set.length,
    firstIndex: items.length === 0 ? undefined : set.indexOf(items[0]),
  };
}

function page(r: QueryPage | { readonly error: "item-not-found" }): QueryPage {
  assert.ok(!("error" in r), "unexpected item-not-found");
  return r;
}

/** Compares with the oracle; count and firstIndex only where runQuery promises them. */
async function check(store: ListStore<ArchivedMessage>, q: ArchiveQuery): Promise<QueryPage> {
  const got = await runQuery(store, HOST, USER, q);
  const want = oracle(q);
  const label = JSON.stringify(q);
  if ("error" in want) {
    assert.deepEqual(got, want, label);
    return { items: [], complete: true };
  }
  const p = page(got);
  assert.deepEqual(p.items.map((m) => m.id), want.items.map((m) => m.id), label);
  assert.equal(p.complete, want.complete, label);
  if (q.with === undefined || q.ids !== undefined) {
    assert.equal(p.count, want.count, label);
    assert.equal(p.firstIndex, want.firstIndex, label);
  } else {
    assert.equal(p.count, undefined, label);
  }
  return p;
}

async function withArchive(
  fn: (store: ListStore<ArchivedMessage>) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "archive-" });
  try {
    const store = openListStore<ArchivedMessage>(dir, "archive");
    for (let i = 0; i < MSGS.length; i += 17) {
      await store.append(HOST, USER, MSGS.slice(i, i + 17));
    }
    await fn(store);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("archive: the stored messages come back whole", async () => {
  await withArchive(async (store) => {
    const p = page(await runQuery(store, HOST, USER, query({ max: 50 })));
    assert.deepEqual(p.items, MSGS.slice(0, 50));
  });
});

Deno.test("archive: paging forward with RSM after visits everything once, in order", async () => {
  await withArchive(async (store) => {
    const seen: string[] = [];
    let q = query({ max: 7 });
    for (let pages = 0;; pages++) {
      assert.ok(pages < 20, "paging does not end");
      const p = await check(store, q);
      assert.equal(p.firstIndex, seen.length);
      seen.push(...p.items.map((m) => m.id));
      if (p.complete) break;
      q = query({ max: 7, after: p.items[p.items.length - 1].id });
    }
    assert.deepEqual(seen, MSGS.map((m) => m.id));
    // The first page is not complete, and past the last item there is an empty complete page.
    assert.equal((await check(store, query({ max: 7 }))).complete, false);
    const past = await check(store, query({ max: 7, after: MSGS[MSGS.length - 1].id }));
    assert.deepEqual([past.items.length, past.complete], [0, true]);
  });
});

Deno.test("archive: paging backward from an empty before (the last page)", async () => {
  await withArchive(async (store) => {
    const last = await check(store, query({ max: 9, before: true }));
    assert.deepEqual(last.items, MSGS.slice(-9));
    assert.equal(last.complete, false);
    const seen: string[][] = [];
    let q = query({ max: 9, before: true });
    for (let pages = 0;; pages++) {
      assert.ok(pages < 20, "paging does not end");
      const p = await check(store, q);
      seen.unshift(p.items.map((m) => m.id));
      if (p.complete) break;
      q = query({ max: 9, before: p.items[0].id });
    }
    assert.deepEqual(seen.flat(), MSGS.map((m) => m.id));
    const before = await check(store, query({ max: 9, before: MSGS[0].id }));
    assert.deepEqual([before.items.length, before.complete], [0, true]);
    // A before page that reaches the start is complete even when it is full.
    const exact = await check(store, query({ max: 9, before: MSGS[9].id }));
    assert.deepEqual([exact.items.length, exact.complete], [9, true]);
  });
});

Deno.test("archive: start and end windows", async () => {
  await withArchive(async (store) => {
    const cases: Partial<ArchiveQuery>[] = [
      { start: MSGS[30].ts },
      { end: MSGS[30].ts },
      { start: MSGS[30].ts, end: MSGS[47].ts, max: 50 },
      { start: MSGS[31].ts + 1, end: MSGS[47].ts - 1 },
      { start: MSGS[47].ts, end: MSGS[31].ts },
      { start: T_BASE - 10_000, end: T_BASE },
      { start: MSGS[119].ts + 1 },
      { start: MSGS[50].ts, before: true, max: 5 },
      { end: MSGS[50].ts, before: true, max: 5 },
      { start: MSGS[10].ts, end: MSGS[90].ts, after: MSGS[5].id, max: 5 },
      { start: MSGS[10].ts, end: MSGS[90].ts, before: MSGS[100].id, max: 5 },
      { start: MSGS[10].ts, end: MSGS[20].ts, max: 0 },
    ];
    for (const c of cases) await check(store, query(c));
  });
});

Deno.test("archive: start and end from XEP-0082 stamps include the whole second", async () => {
  await withArchive(async (store) => {
    const form = (start: string, end: string) =>
      parseMamQuery(
        elem("query", { xmlns: NS_MAM }, [
          elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
            elem("field", { var: "FORM_TYPE" }, [elem("value", {}, [NS_MAM])]),
            elem("field", { var: "start" }, [elem("value", {}, [start])]),
            elem("field", { var: "end" }, [elem("value", {}, [end])]),
          ]),
        ]),
      );
    const first = MSGS[20];
    const last = MSGS[40];
    const parsed = form(stamp(first.ts), stamp(last.ts));
    assert.ok(!("error" in parsed));
    const p = await check(store, { ...parsed, max: 50 });
    // Every message whose stamp, as we send it, lies in the window is in it.
    const want = MSGS.filter((m) =>
      stamp(m.ts) >= stamp(first.ts) && stamp(m.ts) <= stamp(last.ts)
    );
    assert.deepEqual(p.items.map((m) => m.id), want.map((m) => m.id));
  });
});

Deno.test("archive: with filter, bare and full, both directions", async () => {
  await withArchive(async (store) => {
    for (const w of ["alice@a.example", "alice@a.example/laptop", "bob@b.example", "nobody@x"]) {
      const all = MSGS.filter((m) => matchesWith(m, w));
      const seen: string[] = [];
      let q = query({ with: w, max: 6 });
      for (let pages = 0;; pages++) {
        assert.ok(pages < 30, "paging does not end");
        const p = await check(store, q);
        seen.push(...p.items.map((m) => m.id));
        if (p.complete) break;
        q = query({ with: w, max: 6, after: p.items[p.items.length - 1].id });
      }
      assert.deepEqual(seen, all.map((m) => m.id), w);
      await check(store, query({ with: w, max: 6, before: true }));
      await check(store, query({ with: w, max: 6, before: MSGS[60].id }));
      await check(store, query({ with: w, start: MSGS[10].ts, end: MSGS[80].ts, max: 50 }));
      await check(store, query({ with: w, max: 0 }));
    }
    assert.ok(MSGS.some((m) => m.peer === "alice@a.example/laptop"));
    assert.ok(MSGS.some((m) => m.peer === "alice@a.example/phone"));
  });
});

Deno.test("archive: after-id, before-id and ids", async () => {
  await withArchive(async (store) => {
    // Ids among equal timestamps are told apart (messages 3 and 2 share one).
    assert.equal(MSGS[3].ts, MSGS[2].ts);
    const cases: Partial<ArchiveQuery>[] = [
      { afterId: MSGS[2].id },
      { afterId: MSGS[3].id, max: 3 },
      { beforeId: MSGS[3].id },
      { beforeId: MSGS[3].id, before: true, max: 2 },
      { afterId: MSGS[10].id, beforeId: MSGS[30].id, max: 50 },
      { afterId: MSGS[10].id, beforeId: MSGS[30].id, max: 5, after: MSGS[15].id },
      { afterId: MSGS[10].id, beforeId: MSGS[30].id, max: 5, before: true },
      { afterId: MSGS[30].id, beforeId: MSGS[10].id },
      { afterId: MSGS[119].id },
      { ids: [MSGS[3].id] },
      { ids: [MSGS[90].id, MSGS[2].id, MSGS[3].id, MSGS[40].id] },
      { ids: [MSGS[90].id, MSGS[2].id, MSGS[3].id, MSGS[40].id], max: 2 },
      { ids: [MSGS[90].id, MSGS[2].id, MSGS[3].id, MSGS[40].id], max: 2, before: true },
      { ids: [MSGS[90].id, MSGS[2].id, MSGS[3].id, MSGS[40].id], after: MSGS[3].id },
      { ids: [MSGS[90].id, MSGS[2].id, MSGS[40].id], start: MSGS[10].ts },
      { ids: [MSGS[90].id, MSGS[2].id, MSGS[40].id], with: MSGS[40].peer },
      { ids: [MSGS[2].id, MSGS[2].id] },
    ];
    for (const c of cases) await check(store, query(c));
    const one = page(await runQuery(store, HOST, USER, query({ ids: [MSGS[3].id] })));
    assert.deepEqual(one.items, [MSGS[3]]);
  });
});

Deno.test("archive: an unknown id is item-not-found, wherever it is given", async () => {
  await withArchive(async (store) => {
    const unknown = [
      "28482-98726-73623", // not one of our ids at all
      newArchiveId(MSGS[2].ts, "nope"), // a timestamp in the archive, another suffix
      newArchiveId(MSGS[119].ts + 5, "r000"), // past the end
      newArchiveId(T_BASE - 5, "r000"), // before the start
    ];
    for (const id of unknown) {
      for (
        const c of [
          { afterId: id },
          { beforeId: id },
          { ids: [MSGS[1].id, id] },
          { after: id },
          { before: id },
        ] as Partial<ArchiveQuery>[]
      ) {
        assert.deepEqual(await runQuery(store, HOST, USER, query(c)), { error: "item-not-found" });
      }
    }
  });
});

Deno.test("archive: flip-page sends the same page newest first", async () => {
  await withArchive(async (store) => {
    const cases: Partial<ArchiveQuery>[] = [
      { max: 5 },
      { max: 5, before: true },
      { max: 5, with: "bob@b.example" },
    ];
    for (const c of cases) {
      const plain = page(await runQuery(store, HOST, USER, query(c)));
      const q = query({ ...c, flip: true, queryId: "f" });
      const flipped = page(await runQuery(store, HOST, USER, q));
      assert.deepEqual(flipped, plain);
      const sent = resultMessages(flipped, q, OWN).map((m) => {
        const result = m.children[0];
        assert.ok(typeof result !== "string");
        return result.attrs.id;
      });
      assert.deepEqual(sent, plain.items.map((m) => m.id).reverse());
    }
  });
});

Deno.test("archive: random queries agree with the reference", async () => {
  await withArchive(async (store) => {
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const pick = () => MSGS[rand(MSGS.length)];
    const withs = ["alice@a.example", "alice@a.example/phone", "carol@c.example"];
    for (let i = 0; i < 300; i++) {
      const q: { -readonly [K in keyof ArchiveQuery]: ArchiveQuery[K] } = {
        max: rand(12),
        flip: false,
      };
      if (rand(3) === 0) q.start = pick().ts + rand(3) - 1;
      if (rand(3) === 0) q.end = pick().ts + rand(3) - 1;
      if (rand(4) === 0) q.afterId = pick().id;
      if (rand(4) === 0) q.beforeId = pick().id;
      if (rand(6) === 0) q.ids = [pick().id, pick().id, pick().id];
      if (rand(3) === 0) q.with = withs[rand(withs.length)];
      const dir = rand(4);
      if (dir === 1) q.after = pick().id;
      if (dir === 2) q.before = pick().id;
      if (dir === 3) q.before = true;
      await check(store, q);
    }
  });
});

Deno.test("archive metadata: first and last, or nothing", async () => {
  await withArchive(async (store) => {
    assert.deepEqual(await archiveMetadata(store, HOST, USER), {
      first: MSGS[0],
      last: MSGS[MSGS.length - 1],
    });
    assert.deepEqual(await archiveMetadata(store, HOST, "nobody"), {});
    const empty = page(await runQuery(store, HOST, "nobody", query({ before: true })));
    assert.deepEqual(empty, { items: [], complete: true, count: 0 });
  });
});

// ---------------------------------------------------------------------------------------------
// Bounds on what one query reads (issue 9): ids are found alone, filters stop at scanLimit.

/** The store, counting the records its `range` hands out (what a query reads in bulk). */
function counting(store: ListStore<ArchivedMessage>): {
  readonly store: ListStore<ArchivedMessage>;
  read: () => number;
} {
  let n = 0;
  return {
    store: {
      ...store,
      range: async (host, user, a, b) => {
        const items = await store.range(host, user, a, b);
        n += items.length;
        return items;
      },
    },
    read: () => n,
  };
}

Deno.test("archive: an id is read alone after the binary search, not with a chunk after it", async () => {
  await withArchive(async (store) => {
    const c = counting(store);
    // Twenty ids spread over the archive: before, each cost up to 256 records read in a row.
    const ids = MSGS.filter((_, i) => i % 6 === 0).map((m) => m.id);
    const p = page(await runQuery(c.store, HOST, USER, query({ ids, max: 50 })));
    assert.deepEqual(p.items.map((m) => m.id), ids);
    // Every fourth message shares its stamp with the one before: at most 1 + 2 reads each.
    assert.ok(c.read() <= ids.length * 3, `read ${c.read()} records for ${ids.length} ids`);
  });
});

Deno.test("archive: a filter matching nothing reads at most scanLimit records per query", async () => {
  await withArchive(async (store) => {
    const c = counting(store);
    const q = query({ with: "nobody@example.net", scanLimit: 50 });
    const first = page(await runQuery(c.store, HOST, USER, q));
    assert.equal(c.read(), 50);
    // An empty page that is not complete: its RSM set names the records the scan covered.
    assert.deepEqual(first.items, []);
    assert.equal(first.complete, false);
    assert.deepEqual(first.scanned, { first: MSGS[0].id, last: MSGS[49].id });
  });
});

Deno.test("archive: paging on after a bounded scan visits every match once, both ways", async () => {
  await withArchive(async (store) => {
    for (const w of ["carol@c.example", "alice@a.example/laptop", "nobody@example.net"]) {
      const want = MSGS.filter((m) => matchesWith(m, w)).map((m) => m.id);
      for (const backward of [false, true]) {
        const got: string[] = [];
        let cursor: string | undefined;
        let pages = 0;
        for (;;) {
          const c = counting(store);
          const q = backward
            ? query({ with: w, max: 7, scanLimit: 30, before: cursor ?? true })
            : query({ with: w, max: 7, scanLimit: 30, after: cursor });
          const p = page(await runQuery(c.store, HOST, USER, q));
          // The scan, and the lookup of the cursor (a record or two among equal stamps).
          assert.ok(c.read() <= 30 + 3, `a page read ${c.read()} records`);
          const ids = p.items.map((m) => m.id);
          if (backward) got.unshift(...ids);
          else got.push(...ids);
          pages++;
          assert.ok(pages <= MSGS.length, "paging must end");
          if (p.complete) break;
          // What a client does: go on from the RSM <first/> (backward) or <last/> (forward).
          const first = p.scanned?.first ?? ids[0];
          const last = p.scanned?.last ?? ids[ids.length - 1];
          cursor = backward ? first : last;
          assert.ok(cursor !== undefined, "an incomplete page must name where to go on");
        }
        assert.deepEqual(got, want, `${w} ${backward ? "backward" : "forward"}`);
      }
    }
  });
});
