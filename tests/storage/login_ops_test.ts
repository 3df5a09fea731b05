/**
 * What a login costs the stores: the account read once (SASL), nothing read for what a user does
 * not have (offline messages), and concurrent keyval writes in one directory sharing their
 * directory fsyncs. File operations are counted by wrapping `Deno`'s, on real files.
 */
import assert from "node:assert/strict";
import { createAccountStore, openAccountStore } from "../../lib/storage/accounts.ts";
import {
  encodePathPart,
  openKeyvalStore,
  syncDirGrouped,
  writeFileAtomic,
} from "../../lib/storage/file/datamanager.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { LOG_FILE, openLogKeyvalStore } from "../../lib/storage/log_keyval.ts";
import { offlineStore, openOfflineStore } from "../../lib/storage/offline.ts";
import type { AccountRecord } from "../../lib/storage/accounts.ts";
import type { KeyvalStore } from "../../lib/storage/mod.ts";
import { elem, stanza } from "../../lib/xml/element.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "login-ops-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

type Fn = (...args: unknown[]) => unknown;
const OPS = [
  "open",
  "openSync",
  "readTextFile",
  "readTextFileSync",
  "readFile",
  "stat",
  "statSync",
  "rename",
  "renameSync",
] as const;

/** Runs `fn` with Deno's file calls counted by name and path; restores them after. */
async function counting<R>(
  fn: (calls: { name: string; path: string }[]) => Promise<R>,
): Promise<R> {
  const d = Deno as unknown as Record<string, Fn>;
  const saved = OPS.map((name) => [name, d[name]] as const);
  const calls: { name: string; path: string }[] = [];
  for (const [name, orig] of saved) {
    d[name] = (...args: unknown[]) => {
      calls.push({ name, path: String(args[0]) });
      return orig.apply(Deno, args);
    };
  }
  try {
    return await fn(calls);
  } finally {
    for (const [name, orig] of saved) d[name] = orig;
  }
}

function msg(id: string) {
  return stanza("message", { from: "romeo@h/r", to: "juliet@h", type: "chat", id }, [
    elem("body", {}, [`body ${id}`]),
  ]);
}

Deno.test("accounts: the load after a login's credential read finds the account without reading again, once", async () => {
  await withDir(async (dir) => {
    const store = openAccountStore(dir);
    await store.create("h", "juliet", "pw");
    await counting(async (calls) => {
      assert.ok((await store.getCredentials("h", "juliet")) !== undefined);
      assert.equal(calls.length, 1, "SASL reads the record");
      assert.equal(await store.exists("h", "juliet"), true);
      assert.equal(calls.length, 1, "the bind's account load does not read it again");
      assert.equal(await store.exists("h", "juliet"), true);
      assert.equal(calls.length, 2, "a later load reads the record");
    });
  });
});

Deno.test("accounts: a removed account is not vouched for, nor is one found missing", async () => {
  await withDir(async (dir) => {
    const store = openAccountStore(dir);
    await store.create("h", "juliet", "pw");
    await store.getCredentials("h", "juliet");
    await store.remove("h", "juliet");
    assert.equal(await store.exists("h", "juliet"), false);
    // Created by another process (the CLI) after a read found nothing: read, not remembered.
    assert.equal(await store.getCredentials("h", "romeo"), undefined);
    await openAccountStore(dir).create("h", "romeo", "pw");
    assert.equal(await store.exists("h", "romeo"), true);
  });
});

Deno.test("accounts: a credential read that overlaps a remove vouches for nothing", async () => {
  const values = new Map<string, AccountRecord>();
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let gated = false;
  const keyval: KeyvalStore<AccountRecord> = {
    async get(_h, u) {
      const v = values.get(u);
      if (gated) await gate;
      return v;
    },
    set: (_h, u, v) => Promise.resolve(void values.set(u, v)),
    delete: (_h, u) => Promise.resolve(void values.delete(u)),
    users: () => Promise.resolve([...values.keys()].sort()),
  };
  const store = createAccountStore(keyval, { decoyKey: () => Promise.resolve(new Uint8Array(32)) });
  await store.create("h", "juliet", "pw");
  gated = true;
  // The read finds the record, then the account goes before the read returns.
  const reading = store.getCredentials("h", "juliet");
  gated = false;
  await store.remove("h", "juliet");
  release();
  assert.ok((await reading) !== undefined);
  assert.equal(await store.exists("h", "juliet"), false);
});

Deno.test("offline store, sole writer: counting a user's messages when there are none costs no file operation", async () => {
  await withDir(async (dir) => {
    // A list left from before the store was opened is found by the listing.
    const before = openOfflineStore(dir, { ffi: "off" });
    await before.append("h", "romeo", msg("m0"));
    const store = openOfflineStore(dir, { soleWriter: true, ffi: "off" });
    assert.equal((await store.stat("h", "romeo")).count, 1);
    await counting(async (calls) => {
      assert.deepEqual(await store.stat("h", "juliet"), { count: 0, bytes: 0 });
      assert.deepEqual(await store.stat("h", "juliet"), { count: 0, bytes: 0 });
      assert.deepEqual(calls, []);
    });
    await store.append("h", "juliet", msg("m1"));
    assert.equal((await store.stat("h", "juliet")).count, 1);
    assert.equal((await store.all("h", "juliet")).length, 1);
    await store.delete("h", "juliet");
    await counting(async (calls) => {
      assert.deepEqual(await store.stat("h", "juliet"), { count: 0, bytes: 0 });
      assert.deepEqual(calls, []);
    });
    // Deleted by another process (the CLI's deluser): found gone, as before.
    await openOfflineStore(dir, { ffi: "off" }).delete("h", "romeo");
    assert.deepEqual(await store.stat("h", "romeo"), { count: 0, bytes: 0 });
    // Without soleWriter every count looks at the file.
    const shared = offlineStore(openListStore(dir, "offline", { ffi: "off" }));
    await counting(async (calls) => {
      await shared.stat("h", "juliet");
      assert.ok(calls.length > 0);
    });
  });
});

Deno.test("keyval store: concurrent writes in one directory share directory fsyncs and all land", async () => {
  await withDir(async (dir) => {
    const store = openKeyvalStore<{ at: number }>(dir, "lastlog", { soleWriter: true });
    await store.set("h", "warm", { at: 0 });
    const n = 40;
    const users = Array.from({ length: n }, (_, i) => `user${i}`);
    const storeDir = `${dir}/h/lastlog`;
    await counting(async (calls) => {
      await Promise.all(users.map((u, i) => store.set("h", u, { at: i })));
      const dirSyncs = calls.filter((c) => c.name === "open" && c.path === storeDir).length;
      assert.ok(dirSyncs >= 1, "the renames are made durable");
      assert.ok(dirSyncs < n, `${dirSyncs} directory syncs for ${n} writes`);
      // One create and one rename per write, no more.
      assert.equal(calls.filter((c) => c.name === "openSync").length, n);
      assert.equal(calls.filter((c) => c.name === "renameSync").length, n);
    });
    for (const [i, u] of users.entries()) assert.deepEqual(await store.get("h", u), { at: i });
    // Read back by a fresh store (no cache of ours in between).
    const fresh = openKeyvalStore<{ at: number }>(dir, "lastlog");
    assert.deepEqual(await fresh.get("h", "user7"), { at: 7 });
    assert.deepEqual(await fresh.users("h"), [...users, "warm"].sort());
    // No temp file is left behind.
    for await (const e of Deno.readDir(storeDir)) assert.ok(!e.name.startsWith("."), e.name);
  });
});

Deno.test("log keyval store: a logout's last activity creates no file, and concurrent logouts share appends and syncs", async () => {
  await withDir(async (dir) => {
    const store = openLogKeyvalStore<{ at: number }>(dir, "lastlog", { soleWriter: true });
    await store.set("h", "warm", { at: 0 });
    const n = 40;
    const users = Array.from({ length: n }, (_, i) => `user${i}`);
    const log = `${dir}/h/lastlog/${LOG_FILE}`;
    const proto = Deno.FsFile.prototype as unknown as Record<string, Fn>;
    const syncData = proto.syncData;
    let syncs = 0;
    proto.syncData = function (this: unknown, ...args: unknown[]) {
      syncs++;
      return syncData.apply(this, args);
    };
    try {
      await counting(async (calls) => {
        await Promise.all(users.map((u, i) => store.set("h", u, { at: i })));
        const opens = calls.filter((c) => c.name === "openSync");
        // One open of the existing log per append, and at most two appends: the first logout's
        // and one for all that came while its sync ran.
        assert.ok(opens.every((c) => c.path === log), JSON.stringify(opens));
        assert.ok(opens.length >= 1 && opens.length <= 2, `${opens.length} appends`);
        assert.equal(syncs, opens.length, "one fdatasync per append");
        // No temp file, no rename, no directory sync.
        assert.equal(calls.filter((c) => c.name.startsWith("rename")).length, 0);
        assert.equal(calls.filter((c) => c.name === "open").length, 0);
        // A logout reads nothing.
        assert.equal(calls.filter((c) => c.name.startsWith("read")).length, 0);
      });
    } finally {
      proto.syncData = syncData;
    }
    const fresh = openLogKeyvalStore<{ at: number }>(dir, "lastlog", { soleWriter: true });
    for (const [i, u] of users.entries()) assert.deepEqual(await fresh.get("h", u), { at: i });
  });
});

Deno.test("syncDirGrouped: a call made while a sync runs waits for a later one", async () => {
  await withDir(async (dir) => {
    const opened: number[] = [];
    await counting(async (calls) => {
      const first = syncDirGrouped(dir);
      const second = syncDirGrouped(dir);
      const third = syncDirGrouped(dir);
      assert.equal(second, third, "callers during one sync share the next");
      assert.notEqual(first, second);
      await Promise.all([first, second, third]);
      opened.push(calls.filter((c) => c.name === "open" && c.path === dir).length);
      // Nothing running: the next call starts its own.
      await syncDirGrouped(dir);
      opened.push(calls.filter((c) => c.name === "open" && c.path === dir).length);
    });
    assert.deepEqual(opened, [2, 3]);
    // A missing directory fails every caller that shares the sync.
    const gone = `${dir}/missing`;
    const a = syncDirGrouped(gone);
    const b = syncDirGrouped(gone);
    await assert.rejects(a);
    await assert.rejects(b);
  });
});

Deno.test("writeFileAtomic: a large value is written whole, and a failed write leaves no temp file", async () => {
  await withDir(async (dir) => {
    const big = new Uint8Array(200 * 1024).fill(0x61);
    await writeFileAtomic(dir, "big.json", big);
    assert.deepEqual(await Deno.readFile(`${dir}/big.json`), big);
    await assert.rejects(writeFileAtomic(`${dir}/missing`, "x.json", big));
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["big.json"]);
  });
});

Deno.test("encodePathPart: plain names pass as they are, the rest as before", () => {
  assert.equal(encodePathPart("juliet_2-x"), "juliet_2-x");
  assert.equal(encodePathPart("Juliet"), "%4Auliet");
  assert.equal(encodePathPart("con"), "%63on");
  assert.equal(encodePathPart("a.b"), "a%2Eb");
  assert.throws(() => encodePathPart(""));
  assert.throws(() => encodePathPart("a".repeat(241)));
  assert.equal(encodePathPart("a".repeat(240)), "a".repeat(240));
});
