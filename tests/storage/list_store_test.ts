import assert from "node:assert/strict";
import { crc32 } from "node:zlib";
import { join } from "node:path";
import {
  type ListStoreOptions,
  openListStore,
  WRITE_BEHIND_BYTES,
} from "../../lib/storage/file/list_store.ts";
import { openListJournal } from "../../lib/storage/file/journal.ts";
import { LEASE_IDLE_MS } from "../../lib/storage/file/leases.ts";
import { INDEX_HEADER_SIZE, INDEX_LAG, INDEX_VERSION } from "../../lib/storage/file/index.ts";
import { LIST_BLOCK } from "../../lib/storage/file/format.ts";
import { encodePathPart, storeDir } from "../../lib/storage/file/datamanager.ts";
import type { ShiftMethod } from "../../lib/storage/file/trim.ts";
import {
  collapseCapableDir,
  type Item,
  misplaced,
  prng,
  randomItems,
  readIndex,
  scanRaw,
} from "./_list_helpers.ts";

const HOST = "example.com";
const STORE = "archive";

function paths(dir: string, user: string) {
  const base = join(storeDir(dir, HOST, STORE), encodePathPart(user));
  return { list: `${base}.list`, idx: `${base}.lidx` };
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "list-store-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Appends `items` in random batches, some of them concurrently. */
async function appendRandomly(
  store: ReturnType<typeof openListStore<Item>>,
  user: string,
  items: readonly Item[],
  rand: () => number,
): Promise<void> {
  let i = 0;
  while (i < items.length) {
    // Several appends started together must land in call order (one queue per file).
    const group: Promise<void>[] = [];
    const concurrent = 1 + Math.floor(rand() * 4);
    for (let c = 0; c < concurrent && i < items.length; c++) {
      const n = 1 + Math.floor(rand() * 5);
      group.push(store.append(HOST, user, items.slice(i, i + n)));
      i += n;
    }
    await Promise.all(group);
  }
}

/** The invariants of the raw files against what was written. */
async function checkFiles(dir: string, user: string, expected: readonly Item[]): Promise<void> {
  const p = paths(dir, user);
  const { records, bad } = await scanRaw(p.list);
  assert.deepEqual(bad, [], "no damaged line");
  assert.deepEqual(misplaced(records), [], "no record crosses a block boundary needlessly");
  assert.deepEqual(records.map((r) => JSON.parse(r.json)), expected);
  const ends = records.map((r) => r.end);
  // While the writer's lease holds the file, the index may lag by fewer than INDEX_LAG entries.
  const lagging = await readIndex(p.idx);
  assert.equal(lagging.version, INDEX_VERSION);
  assert.deepEqual(lagging.ends, ends.slice(0, lagging.ends.length), "index is a prefix");
  assert.ok(ends.length - lagging.ends.length < INDEX_LAG, "index lags by less than INDEX_LAG");
  // Another instance that wants the file ends the lease, which writes the rest.
  assert.equal(await openListStore<Item>(dir, STORE).count(HOST, user), expected.length);
  const index = await readIndex(p.idx);
  assert.deepEqual(index.ends, ends, "index matches a full scan");
}

function lowerBoundOf(items: readonly Item[], k: number): number {
  const i = items.findIndex((it) => it.ts >= k);
  return i === -1 ? items.length : i;
}

Deno.test("list store: random items round-trip; layout, index, get/range/lowerBound", async () => {
  for (const seed of [1, 2, 3]) {
    await withDir(async (dir) => {
      const rand = prng(seed);
      const store = openListStore<Item>(dir, STORE);
      const items = randomItems(rand, 120, 0, 1000);
      await appendRandomly(store, "romeo", items, rand);
      await checkFiles(dir, "romeo", items);

      // A fresh instance reads the same through the index.
      const fresh = openListStore<Item>(dir, STORE);
      for (const s of [store, fresh]) {
        assert.equal(await s.count(HOST, "romeo"), items.length);
        assert.deepEqual(await s.range(HOST, "romeo", 0, items.length), items);
        for (let t = 0; t < 20; t++) {
          const i = Math.floor(rand() * (items.length + 2)) - 1;
          assert.deepEqual(await s.get(HOST, "romeo", i), items[i], `get(${i}) seed ${seed}`);
          const a = Math.floor(rand() * items.length);
          const b = a + Math.floor(rand() * 30);
          assert.deepEqual(await s.range(HOST, "romeo", a, b), items.slice(a, b));
          const k = items[0].ts - 1 + Math.floor(rand() * (items.at(-1)!.ts - items[0].ts + 3));
          assert.equal(
            await s.lowerBound(HOST, "romeo", k, (it) => it.ts),
            lowerBoundOf(items, k),
            `lowerBound(${k}) seed ${seed}`,
          );
        }
        assert.deepEqual(await s.stat(HOST, "romeo").then((st) => st.corrupt), []);
      }
    });
  }
});

Deno.test("list store: empty and missing lists, delete, users, bad input", async () => {
  await withDir(async (dir) => {
    const store = openListStore<Item>(dir, STORE);
    assert.equal(await store.count(HOST, "nobody"), 0);
    assert.equal(await store.get(HOST, "nobody", 0), undefined);
    assert.deepEqual(await store.range(HOST, "nobody", 0, 10), []);
    assert.equal(await store.lowerBound(HOST, "nobody", 5, (it) => it.ts), 0);
    assert.deepEqual(await store.shift(HOST, "nobody", 3), { method: "none" });
    assert.deepEqual(await store.users(HOST), []);
    await store.delete(HOST, "nobody");
    await assert.rejects(Deno.stat(paths(dir, "nobody").list), Deno.errors.NotFound);

    const items = randomItems(prng(7), 5, 0, 0);
    await store.append(HOST, "Juliet", items);
    await store.append(HOST, "romeo", items.slice(0, 2));
    await store.append(HOST, "romeo", []);
    assert.deepEqual(await store.users(HOST), ["Juliet", "romeo"]);
    assert.equal(await store.get(HOST, "romeo", 2), undefined);
    assert.deepEqual(await store.range(HOST, "Juliet", -5, 100), items);
    assert.deepEqual(await store.range(HOST, "Juliet", 3, 2), []);
    await assert.rejects(store.get(HOST, "romeo", 0.5), RangeError);
    await assert.rejects(store.range(HOST, "romeo", 0, NaN), RangeError);
    await assert.rejects(store.shift(HOST, "romeo", 1.5), RangeError);
    const loose = openListStore<unknown>(dir, STORE);
    await assert.rejects(loose.append(HOST, "romeo", [undefined]), TypeError);
    assert.equal(await store.count(HOST, "romeo"), 2, "a refused item appends nothing");

    await store.delete(HOST, "Juliet");
    assert.deepEqual(await store.users(HOST), ["romeo"]);
    assert.equal(await store.count(HOST, "Juliet"), 0);
    await assert.rejects(Deno.stat(paths(dir, "Juliet").idx), Deno.errors.NotFound);
    await store.append(HOST, "Juliet", items.slice(4));
    assert.deepEqual(await store.range(HOST, "Juliet", 0, 9), items.slice(4));
    const info = await Deno.stat(paths(dir, "Juliet").list);
    if (Deno.build.os !== "windows") assert.equal(info.mode! & 0o777, 0o600);
  });
});

Deno.test("list store: concurrent appenders share syncs and lose nothing", async () => {
  await withDir(async (dir) => {
    const store = openListStore<{ a: number; n: number }>(dir, STORE);
    const appenders = 32;
    const per = 10;
    await Promise.all(
      Array.from({ length: appenders }, async (_, a) => {
        for (let n = 0; n < per; n++) await store.append(HOST, "muc", [{ a, n }, { a, n: -1 }]);
      }),
    );
    const all = await store.range(HOST, "muc", 0, 1e9);
    assert.equal(all.length, appenders * per * 2);
    for (let a = 0; a < appenders; a++) {
      const mine = all.filter((x) => x.a === a);
      // Each append's two items stay adjacent and each appender's appends keep their order.
      assert.deepEqual(mine.map((x) => x.n), Array.from({ length: per }, (_, n) => [n, -1]).flat());
    }
    for (let i = 0; i < all.length; i += 2) assert.equal(all[i + 1].n, -1);
  });
});

async function shiftBoth(
  a: ReturnType<typeof openListStore<Item>>,
  b: ReturnType<typeof openListStore<Item>>,
  n: number,
): Promise<[ShiftMethod, ShiftMethod]> {
  const [ra, rb] = await Promise.all([a.shift(HOST, "u", n), b.shift(HOST, "u", n)]);
  return [ra.method, rb.method];
}

Deno.test("list store: shift by collapse and by copy give identical files and reads", async () => {
  const capable = await collapseCapableDir();
  if (capable === undefined) {
    console.log(
      "list store shift: no collapse-capable filesystem (ext4/xfs) or no FFI here; " +
        "checking that the copy fallback is used instead",
    );
  }
  const base = capable ?? await Deno.makeTempDir({ prefix: "list-store-" });
  try {
    const rand = prng(11);
    const viaCollapse = openListStore<Item>(join(base, "a"), STORE, { ffi: "auto" });
    const viaCopy = openListStore<Item>(join(base, "b"), STORE, { ffi: "off" });
    let model = randomItems(rand, 400, 0, 0);
    await viaCollapse.append(HOST, "u", model);
    await viaCopy.append(HOST, "u", model);
    const methods: ShiftMethod[] = [];
    let nextId = model.length;
    for (const n of [0, 1, 37, 3, 90, 1]) {
      const [ma, mb] = await shiftBoth(viaCollapse, viaCopy, n);
      methods.push(ma);
      model = model.slice(n);
      if (n === 0) assert.deepEqual([ma, mb], ["none", "none"]);
      else if (mb !== "blank") assert.equal(mb, "copy");
      if (n > 0 && mb === "copy") assert.equal(ma, capable ? "collapse" : "copy");
      if (mb === "blank") assert.equal(ma, "blank");

      const [fa, fb] = await Promise.all(
        [join(base, "a"), join(base, "b")].map((d) => Deno.readFile(paths(d, "u").list)),
      );
      assert.deepEqual(fa, fb, `list files byte-identical after shift(${n})`);
      for (const [d, s] of [[join(base, "a"), viaCollapse], [join(base, "b"), viaCopy]] as const) {
        await checkFiles(d, "u", model);
        assert.deepEqual(await s.range(HOST, "u", 0, 1e9), model);
        assert.equal(await s.count(HOST, "u"), model.length);
        // A fresh instance agrees (it reads the rewritten index).
        assert.deepEqual(await openListStore<Item>(d, STORE).get(HOST, "u", 0), model[0]);
      }
      const more = randomItems(rand, 15, nextId, model.at(-1)!.ts);
      nextId += more.length;
      await viaCollapse.append(HOST, "u", more);
      await viaCopy.append(HOST, "u", more);
      model = model.concat(more);
    }
    assert.ok(methods.includes(capable ? "collapse" : "copy"), `methods used: ${methods}`);
    assert.deepEqual(
      await Deno.readFile(paths(join(base, "a"), "u").list),
      await Deno.readFile(paths(join(base, "b"), "u").list),
      "identical after the appends that follow",
    );

    // Shifting everything leaves an empty, still usable list.
    const [ta, tb] = await shiftBoth(viaCollapse, viaCopy, 10_000);
    assert.deepEqual([ta, tb], ["truncate", "truncate"]);
    assert.equal(await viaCollapse.count(HOST, "u"), 0);
    assert.equal((await Deno.stat(paths(join(base, "a"), "u").list)).size, 0);
    await viaCollapse.append(HOST, "u", model.slice(0, 3));
    await checkFiles(join(base, "a"), "u", model.slice(0, 3));
  } finally {
    await Deno.remove(base, { recursive: true });
  }
});

Deno.test("list store: a damaged record in the middle is skipped and reported", async () => {
  await withDir(async (dir) => {
    const items = randomItems(prng(5), 60, 0, 0);
    await openListStore<Item>(dir, STORE).append(HOST, "u", items);
    const p = paths(dir, "u");
    const { records } = await scanRaw(p.list);
    const victim = 27;
    const bytes = await Deno.readFile(p.list);
    // Flip one byte of the JSON: the line stays a line, but its checksum no longer matches.
    bytes[records[victim].start + 10] ^= 0x01;
    await Deno.writeFile(p.list, bytes);
    const expected = items.filter((_, i) => i !== victim);

    // With the index in place, the damage shows when the record is read.
    const store = openListStore<Item>(dir, STORE);
    assert.equal(await store.count(HOST, "u"), items.length, "the index alone cannot tell");
    assert.deepEqual(await store.get(HOST, "u", victim), items[victim + 1]);
    assert.equal(await store.count(HOST, "u"), items.length - 1);
    const st = await store.stat(HOST, "u");
    assert.deepEqual(st.corrupt, [{
      offset: records[victim].start,
      length: records[victim].end - records[victim].start - 1,
      kind: "checksum",
    }]);
    assert.deepEqual(await store.range(HOST, "u", 0, 1000), expected);

    // Without an index, the rebuild on open finds it.
    await Deno.remove(p.idx);
    const again = openListStore<Item>(dir, STORE);
    assert.deepEqual((await again.stat(HOST, "u")).corrupt.map((c) => c.kind), ["checksum"]);
    assert.deepEqual(await again.range(HOST, "u", 0, 1000), expected);
    assert.deepEqual((await readIndex(p.idx)).ends.length, expected.length);

    // Appends go on after it; the damaged line is left where it is (it is not the tail).
    const more = randomItems(prng(6), 3, 100, 1e6);
    await again.append(HOST, "u", more);
    assert.deepEqual(await again.range(HOST, "u", 0, 1000), expected.concat(more));
    assert.deepEqual((await scanRaw(p.list)).bad, [records[victim].start]);
  });
});

Deno.test("list store: a torn tail is reported and truncated before the next append", async () => {
  await withDir(async (dir) => {
    const items = randomItems(prng(9), 30, 0, 0);
    await openListStore<Item>(dir, STORE).append(HOST, "u", items);
    const p = paths(dir, "u");
    const goodSize = (await Deno.stat(p.list)).size;
    // A record cut short by a crash: padding, then the first half of a line.
    const partial = new TextEncoder().encode('\n\n0badf00d {"id":999,"ts":1,"bo');
    const f = await Deno.open(p.list, { append: true });
    await f.write(partial);
    f.close();

    const store = openListStore<Item>(dir, STORE);
    assert.equal(await store.count(HOST, "u"), items.length);
    const st = await store.stat(HOST, "u");
    assert.equal(st.bytes, goodSize + partial.length);
    assert.deepEqual(st.corrupt, [{
      offset: goodSize + 2,
      length: partial.length - 2,
      kind: "torn",
    }]);
    assert.deepEqual(await store.range(HOST, "u", 0, 100), items);

    const more = randomItems(prng(10), 4, 30, 1e6);
    await store.append(HOST, "u", more);
    await checkFiles(dir, "u", items.concat(more));
    assert.deepEqual(
      await openListStore<Item>(dir, STORE).stat(HOST, "u").then((s) => s.corrupt),
      [],
    );
  });
});

Deno.test("list store: a missing, lagging, stale or other-version index is rebuilt", async () => {
  await withDir(async (dir) => {
    const items = randomItems(prng(13), 80, 0, 0);
    await openListStore<Item>(dir, STORE).append(HOST, "u", items);
    const p = paths(dir, "u");
    const good = await Deno.readFile(p.idx);
    const expectedEnds = (await scanRaw(p.list)).records.map((r) => r.end);
    assert.equal(good.length, INDEX_HEADER_SIZE + 8 * items.length);

    const damage: Record<string, () => Promise<void>> = {
      missing: () => Deno.remove(p.idx),
      lagging: () => Deno.writeFile(p.idx, good.subarray(0, INDEX_HEADER_SIZE + 8 * 50 + 3)),
      "other version": async () => {
        const copy = good.slice();
        new DataView(copy.buffer).setUint32(8, INDEX_VERSION + 1, true);
        await Deno.writeFile(p.idx, copy);
      },
      "past the end": async () => {
        const copy = new Uint8Array(good.length + 8);
        copy.set(good);
        new DataView(copy.buffer).setBigUint64(good.length, 1n << 40n, true);
        await Deno.writeFile(p.idx, copy);
      },
      "not increasing": async () => {
        const copy = good.slice();
        new DataView(copy.buffer).setBigUint64(INDEX_HEADER_SIZE + 8 * 10, 0n, true);
        await Deno.writeFile(p.idx, copy);
      },
      "off by some bytes": async () => {
        // Plausible numbers, but the last one does not end on a record.
        const copy = good.slice();
        const view = new DataView(copy.buffer);
        const at = copy.length - 8;
        view.setBigUint64(at, view.getBigUint64(at, true) - 5n, true);
        await Deno.writeFile(p.idx, copy);
      },
      "garbage": () => Deno.writeFile(p.idx, new TextEncoder().encode("not an index at all")),
    };
    for (const [name, apply] of Object.entries(damage)) {
      await apply();
      const store = openListStore<Item>(dir, STORE);
      assert.deepEqual(await store.range(HOST, "u", 0, 1000), items, name);
      assert.equal(
        await store.lowerBound(HOST, "u", items[40].ts, (it) => it.ts),
        lowerBoundOf(items, items[40].ts),
        name,
      );
      assert.deepEqual(await Deno.readFile(p.idx), good, `${name}: index rewritten as it was`);
      assert.deepEqual((await readIndex(p.idx)).ends, expectedEnds, name);
    }
  });
});

Deno.test("list store: two instances (as two processes would) see each other's changes", async () => {
  await withDir(async (dir) => {
    const a = openListStore<Item>(dir, STORE);
    const b = openListStore<Item>(dir, STORE, { ffi: "off" });
    const items = randomItems(prng(17), 40, 0, 0);
    await a.append(HOST, "u", items.slice(0, 20));
    assert.equal(await b.count(HOST, "u"), 20);
    await b.append(HOST, "u", items.slice(20));
    assert.deepEqual(await a.range(HOST, "u", 0, 100), items);
    await b.shift(HOST, "u", 25); // a copy: a new inode under the same name
    assert.deepEqual(await a.range(HOST, "u", 0, 100), items.slice(25));
    await a.append(HOST, "u", items.slice(0, 2));
    assert.deepEqual(await b.range(HOST, "u", 0, 100), items.slice(25).concat(items.slice(0, 2)));
    await a.delete(HOST, "u");
    assert.equal(await b.count(HOST, "u"), 0);
    // Interleaved appends from both never interleave inside a record.
    await Promise.all([
      a.append(HOST, "u", items.slice(0, 10)),
      b.append(HOST, "u", items.slice(10, 20)),
    ]);
    const got = await a.range(HOST, "u", 0, 100);
    assert.equal(got.length, 20);
    assert.deepEqual(
      got.map((x) => x.id).sort((x, y) => x - y),
      items.slice(0, 20).map((x) => x.id),
    );
    await checkFiles(dir, "u", got);
  });
});

Deno.test("list store: a record larger than a block starts on a boundary", async () => {
  await withDir(async (dir) => {
    const store = openListStore<{ s: string }>(dir, STORE);
    const big = { s: "y".repeat(3 * LIST_BLOCK) };
    await store.append(HOST, "u", [{ s: "a" }, big, { s: "b" }, big]);
    const { records } = await scanRaw(paths(dir, "u").list);
    assert.deepEqual(records.map((r) => r.start % LIST_BLOCK === 0), [true, true, false, true]);
    assert.deepEqual(await store.range(HOST, "u", 0, 4), [{ s: "a" }, big, { s: "b" }, big]);
  });
});

/** A list store with write-behind on `dir`, and the journal that makes it take effect. */
async function behindStore(dir: string, opts: ListStoreOptions = {}) {
  const journal = await openListJournal(dir, { checkpointMs: 1e9 });
  assert.ok(journal !== undefined);
  return { journal, store: openListStore<Item>(dir, STORE, { writeBehind: true, ...opts }) };
}

/** Records the list file holds on disk now, read around the store. */
async function onDisk(dir: string, user: string): Promise<unknown[]> {
  const { records, bad } = await scanRaw(paths(dir, user).list);
  assert.deepEqual(bad, [], "no damaged line");
  assert.deepEqual(misplaced(records), [], "block layout");
  return records.map((r) => JSON.parse(r.json));
}

Deno.test("list store, write-behind: reads see appends the file does not hold yet; a checkpoint writes them", async () => {
  await withDir(async (dir) => {
    const { journal, store } = await behindStore(dir);
    try {
      const items = randomItems(prng(5), 30, 0, 0).map((it) => ({
        ...it,
        body: it.body.slice(0, 300),
      }));
      for (const it of items.slice(0, 10)) await store.append(HOST, "u", [it]);
      // Acknowledged, in the journal; the list file holds at most a prefix of them (all of it
      // only if the lease ended meanwhile, after LEASE_IDLE_MS without an append).
      assert.ok((await Deno.stat(join(dir, ".list-journal-0"))).size > 0);
      const before = await onDisk(dir, "u");
      assert.deepEqual(before, items.slice(0, before.length));
      // A read is served every acknowledged item (what is held is written first).
      assert.deepEqual(await store.range(HOST, "u", 0, 100), items.slice(0, 10));
      assert.deepEqual(await store.get(HOST, "u", 9), items[9]);
      assert.deepEqual(await onDisk(dir, "u"), items.slice(0, 10));
      for (const it of items.slice(10)) await store.append(HOST, "u", [it]);
      const held = await onDisk(dir, "u");
      assert.deepEqual(held, items.slice(0, held.length));
      assert.ok(held.length >= 10);
      assert.equal(await store.count(HOST, "u"), 30);
      // A checkpoint writes and syncs what is held, then empties the journal.
      await store.append(HOST, "u", [items[0]]);
      await journal.checkpoint();
      assert.deepEqual(await onDisk(dir, "u"), [...items, items[0]]);
      assert.equal((await Deno.stat(join(dir, ".list-journal-0"))).size, 0);
      assert.equal((await Deno.stat(join(dir, ".list-journal-1"))).size, 0);
    } finally {
      await journal.close();
    }
  });
});

Deno.test("list store, write-behind: held bytes stay under the cap; a big batch is written at once", async () => {
  await withDir(async (dir) => {
    const { journal, store } = await behindStore(dir);
    try {
      const item = (id: number, size: number): Item => ({ id, ts: id, body: "b".repeat(size) });
      const all: Item[] = [];
      let written = 0;
      let lagged = 0;
      for (let i = 0; i < 200; i++) {
        const it = item(i, 50 + (i * 37) % 900);
        await store.append(HOST, "u", [it]);
        all.push(it);
        const disk = await onDisk(dir, "u");
        // Whatever the file lacks is a tail of what was acknowledged, never more than the cap
        // (plus the batch that crossed it).
        assert.deepEqual(disk, all.slice(0, disk.length));
        const held = all.slice(disk.length).reduce((n, x) => n + JSON.stringify(x).length + 10, 0);
        assert.ok(held <= WRITE_BEHIND_BYTES + 1000, `${held} bytes held`);
        written = Math.max(written, disk.length);
        if (disk.length < all.length) lagged++;
      }
      assert.ok(written > 0, "held bytes were written as the cap was reached");
      assert.ok(lagged > 0, "appends were held back");
      // One batch larger than the cap: on disk when acknowledged, after what was held.
      const big = [item(1000, 20_000), item(1001, 20_000)];
      await store.append(HOST, "u", big);
      assert.deepEqual(await onDisk(dir, "u"), [...all, ...big]);
      await checkFiles(dir, "u", [...all, ...big]);
    } finally {
      await journal.close();
    }
  });
});

Deno.test("list store, write-behind: random batches round-trip through shift, delete and another instance", async () => {
  await withDir(async (dir) => {
    const rand = prng(23);
    const items = randomItems(rand, 120, 0, 1000);
    const { journal, store } = await behindStore(dir, { ffi: "off" });
    try {
      await appendRandomly(store, "romeo", items.slice(0, 80), rand);
      // The shift settles the file: what was held goes first, then the head is cut.
      assert.deepEqual(await store.shift(HOST, "romeo", 30), { method: "copy" });
      assert.deepEqual(await store.range(HOST, "romeo", 0, 200), items.slice(30, 80));
      await appendRandomly(store, "romeo", items.slice(80), rand);
      // Another instance of this process ends the lease, which writes what was held.
      const other = openListStore<Item>(dir, STORE);
      assert.deepEqual(await other.range(HOST, "romeo", 0, 200), items.slice(30));
      assert.deepEqual(await onDisk(dir, "romeo"), items.slice(30));
      await appendRandomly(store, "romeo", items.slice(0, 10), rand);
      // A read writes what is held: then the file is as any other.
      assert.equal(await store.count(HOST, "romeo"), 100);
      await checkFiles(dir, "romeo", [...items.slice(30), ...items.slice(0, 10)]);
      // Held appends of a list that is then deleted do not come back.
      await store.append(HOST, "juliet", items.slice(0, 3));
      await store.delete(HOST, "juliet");
      assert.equal(await store.count(HOST, "juliet"), 0);
      await journal.checkpoint();
      await assert.rejects(Deno.stat(paths(dir, "juliet").list));
      await store.append(HOST, "juliet", items.slice(3, 4));
      assert.deepEqual(await store.range(HOST, "juliet", 0, 10), items.slice(3, 4));
    } finally {
      await journal.close();
    }
    // Closing the journal wrote everything it covered.
    assert.deepEqual(await onDisk(dir, "juliet"), items.slice(3, 4));
  });
});

Deno.test("list store: past the cached files' cap, evicted files are found again as they were", async () => {
  await withDir(async (dir) => {
    for (const writeBehind of [false, true]) {
      const journal = writeBehind ? await openListJournal(dir) : undefined;
      const store = openListStore<{ u: number; n: number }>(dir, `s${writeBehind}`, {
        writeBehind,
      });
      try {
        // 300 files, more than the cache keeps: one at a time, so that the first ones are
        // idle, and evicted (their leases end) as the last ones come; then all at once.
        for (let u = 0; u < 300; u++) await store.append(HOST, `u${u}`, [{ u, n: 0 }]);
        await Promise.all(
          Array.from({ length: 300 }, (_, u) => store.append(HOST, `u${u}`, [{ u, n: 1 }])),
        );
        // One file kept busy throughout stays found and in order.
        for (let n = 2; n < 40; n++) await store.append(HOST, "u7", [{ u: 7, n }]);
        for (const u of [0, 7, 150, 299]) {
          const want = Array.from({ length: u === 7 ? 40 : 2 }, (_, n) => ({ u, n }));
          assert.deepEqual(await store.range(HOST, `u${u}`, 0, 100), want, `u${u}`);
        }
        assert.equal((await store.users(HOST)).length, 300);
      } finally {
        await journal?.close();
      }
    }
  });
});

Deno.test("list store, write-behind: an append the journal refuses is undone; those before it stay", async () => {
  await withDir(async (dir) => {
    const { journal, store } = await behindStore(dir);
    const items = randomItems(prng(9), 6, 0, 0).map((it) => ({
      ...it,
      body: it.body.slice(0, 200),
    }));
    for (const it of items.slice(0, 5)) await store.append(HOST, "u", [it]);
    // Closing: the journal refuses commits from now on, while its last checkpoint runs.
    const closing = journal.close();
    await assert.rejects(store.append(HOST, "u", [items[5]]), /closed/);
    await closing;
    assert.deepEqual(await onDisk(dir, "u"), items.slice(0, 5));
    assert.deepEqual(await store.range(HOST, "u", 0, 10), items.slice(0, 5));
    // Without the journal the store writes and syncs each append itself.
    await store.append(HOST, "u", [items[5]]);
    assert.deepEqual(await onDisk(dir, "u"), items);
    assert.deepEqual(await store.range(HOST, "u", 0, 10), items);
  });
});

Deno.test("list store, write-behind: room for held bytes is made on disk first (blank lines), and cut as the lease ends", async () => {
  await withDir(async (dir) => {
    const { journal, store } = await behindStore(dir);
    try {
      const items = randomItems(prng(3), 20, 0, 0).map((it) => ({
        ...it,
        body: it.body.slice(0, 500),
      }));
      for (const it of items) await store.append(HOST, "u", [it]);
      const logical = (await store.stat(HOST, "u")).bytes;
      await store.append(HOST, "u", [items[0]]);
      // The file on disk already reaches past every acknowledged byte (a full disk or a size
      // limit would have refused the append), with blank lines where held bytes go.
      const disk = await Deno.readFile(paths(dir, "u").list);
      assert.ok(disk.length > logical + JSON.stringify(items[0]).length, `${disk.length}`);
      const { records, bad } = await scanRaw(paths(dir, "u").list);
      assert.deepEqual(bad, []);
      assert.deepEqual(records.map((r) => JSON.parse(r.json)), items.slice(0, records.length));
      // Another instance ends the lease: what was held is written, the rest of the room cut.
      const other = openListStore<Item>(dir, STORE);
      assert.deepEqual(await other.range(HOST, "u", 0, 100), [...items, items[0]]);
      const st = await other.stat(HOST, "u");
      assert.equal((await Deno.stat(paths(dir, "u").list)).size, st.bytes);
      assert.deepEqual(st.corrupt, []);
    } finally {
      await journal.close();
    }
  });
});

/**
 * Every file under `dir`, by path: its size, when it last changed, and a checksum of its bytes
 * (compact, so that a failure shows which file changed rather than all of their bytes).
 */
async function snapshot(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) {
      for (const [p, f] of await snapshot(path)) out.set(p, f);
    } else {
      const info = await Deno.stat(path);
      const sum = crc32(await Deno.readFile(path)).toString(16);
      out.set(path, `${info.size} bytes, crc ${sum}, mtime ${info.mtime?.getTime()}`);
    }
  }
  return out;
}

/** Items of about 200 bytes: many fit what write-behind holds, few an index lag. */
const smallItems = (n: number, first = 0): Item[] =>
  randomItems(prng(31 + first), n, first, 0).map((it) => ({ ...it, body: it.body.slice(0, 200) }));

Deno.test("list store: close ends every lease as its lapse would; nothing is written after it", async () => {
  await withDir(async (dir) => {
    // Plain (each append synced), and write-behind under the journal: both keep leases.
    const plainDir = join(dir, "plain");
    const behindDir = join(dir, "behind");
    const plain = openListStore<Item>(plainDir, STORE);
    const { journal, store: behind } = await behindStore(behindDir);
    try {
      const items = smallItems(20);
      for (const store of [plain, behind]) {
        for (const it of items) await store.append(HOST, "romeo", [it]);
        await store.append(HOST, "juliet", items.slice(0, 3));
      }
      // Still leased (unless a slow machine let a lease lapse meanwhile): the index lags, to be
      // written when the lease ends, and write-behind holds bytes back. Not asserted, since
      // only timing decides it; the checks after the close fail when the close leaves them.
      // Asked before the close: written, not refused.
      const last = [plain, behind].map((s) => s.append(HOST, "romeo", items.slice(0, 1)));
      await Promise.all([plain.close(), behind.close()]);
      await Promise.all(last);
      const want = [...items, items[0]];
      for (const d of [plainDir, behindDir]) {
        // What a lapsing lease writes is there: every item, the whole index, no room left.
        assert.deepEqual(await onDisk(d, "romeo"), want);
        const { records } = await scanRaw(paths(d, "romeo").list);
        assert.deepEqual((await readIndex(paths(d, "romeo").idx)).ends, records.map((r) => r.end));
        assert.equal((await Deno.stat(paths(d, "romeo").list)).size, records.at(-1)!.end);
        assert.deepEqual(await onDisk(d, "juliet"), items.slice(0, 3));
      }
      const stores = [storeDir(plainDir, HOST, STORE), storeDir(behindDir, HOST, STORE)];
      const before = await Promise.all(stores.map(snapshot));
      // Longer than a lease waits before it lapses: no timer is left to write.
      await new Promise((r) => setTimeout(r, 4 * LEASE_IDLE_MS));
      assert.deepEqual(await Promise.all(stores.map(snapshot)), before);
    } finally {
      await journal.close();
    }
  });
});

Deno.test("list store: every call after close is refused; close again is the same close", async () => {
  await withDir(async (dir) => {
    const store = openListStore<Item>(dir, STORE);
    const items = smallItems(3);
    await store.append(HOST, "romeo", items);
    const closing = store.close();
    assert.equal(store.close(), closing);
    // Refused at once, whether the close has finished or not.
    await assert.rejects(store.append(HOST, "romeo", items), /List store archive .* is closed/);
    await closing;
    const before = await snapshot(dir);
    const calls: (() => Promise<unknown>)[] = [
      () => store.append(HOST, "romeo", items),
      () => store.append(HOST, "juliet", items),
      () => store.count(HOST, "romeo"),
      () => store.get(HOST, "romeo", 0),
      () => store.range(HOST, "romeo", 0, 3),
      () => store.lowerBound(HOST, "romeo", 0, (it) => it.ts),
      () => store.stat(HOST, "romeo"),
      () => store.shift(HOST, "romeo", 1),
      () => store.delete(HOST, "romeo"),
      () => store.users(HOST),
    ];
    for (const call of calls) await assert.rejects(call(), /is closed/);
    assert.deepEqual(await snapshot(dir), before, "nothing written, nothing created");
    assert.deepEqual(await onDisk(dir, "romeo"), items);
  });
});

Deno.test("list store, write-behind: what was appended before close is read back by a fresh store, also after a crash right after it", async () => {
  await withDir(async (dir) => {
    const { journal, store } = await behindStore(dir);
    const items = smallItems(40);
    const journals = [0, 1].map((i) => join(dir, `.list-journal-${i}`));
    let left: Uint8Array[];
    try {
      for (const it of items.slice(0, 30)) await store.append(HOST, "romeo", [it]);
      await Promise.all(items.slice(30).map((it) => store.append(HOST, "romeo", [it])));
      await store.close();
      // In the list file now, not only in the journal (as another process would need it).
      assert.deepEqual(await onDisk(dir, "romeo"), items);
      // What a crash right after the close would leave of the journal: every entry.
      left = await Promise.all(journals.map((p) => Deno.readFile(p)));
      assert.ok(left.some((bytes) => bytes.length > 0));
    } finally {
      await journal.close();
    }
    // A clean stop (the journal's last checkpoint after the store's close): a fresh store
    // without the journal, as another process, reads every item.
    const fresh = openListStore<Item>(dir, STORE);
    assert.deepEqual(await fresh.range(HOST, "romeo", 0, 100), items);
    assert.deepEqual((await fresh.stat(HOST, "romeo")).corrupt, []);
    await fresh.close();
    // The crash instead: the next start replays those entries over the list file that the
    // close left, and finds it whole: nothing written twice, nothing torn.
    for (const [i, p] of journals.entries()) await Deno.writeFile(p, left[i]);
    const replayed = await openListJournal(dir, { checkpointMs: 1e9 });
    assert.ok(replayed !== undefined);
    try {
      assert.deepEqual(await onDisk(dir, "romeo"), items);
      const after = openListStore<Item>(dir, STORE, { writeBehind: true });
      assert.deepEqual(await after.range(HOST, "romeo", 0, 100), items);
      assert.deepEqual((await after.stat(HOST, "romeo")).corrupt, []);
      await after.close();
    } finally {
      await replayed.close();
    }
  });
});
