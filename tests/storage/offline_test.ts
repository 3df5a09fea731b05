import assert from "node:assert/strict";
import { openKeyvalStore } from "../../lib/storage/file/datamanager.ts";
import { type FileListStore, openListStore } from "../../lib/storage/file/list_store.ts";
import { offlineStore, openOfflineStore } from "../../lib/storage/offline.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";

function msg(id: string): Element {
  return stanza("message", { from: "romeo@h/r", to: "juliet@h", type: "chat", id }, [
    elem("body", {}, [`body ${id}`]),
  ]);
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "offline-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("offline store: appends one message at a time, counts without reading, deletes", async () => {
  await withDir(async (dir) => {
    const list = openListStore<Element>(dir, "offline", { ffi: "off" });
    let appended = 0;
    const counted: FileListStore<Element> = {
      ...list,
      append: (host, user, items) => (appended += items.length, list.append(host, user, items)),
    };
    const store = offlineStore(counted);
    assert.deepEqual(await store.stat("h", "juliet"), { count: 0, bytes: 0 });
    await store.append("h", "juliet", msg("m1"));
    await store.append("h", "juliet", msg("m2"));
    // Each store wrote its own message only.
    assert.equal(appended, 2);
    const st = await store.stat("h", "juliet");
    assert.equal(st.count, 2);
    // At least the JSON of what is stored: a byte cap checked against it errs towards refusing.
    const json = JSON.stringify(msg("m1")).length + JSON.stringify(msg("m2")).length;
    assert.ok(st.bytes >= json, `${st.bytes} < ${json}`);
    assert.deepEqual((await store.all("h", "juliet")).map((m) => m.attrs.id), ["m1", "m2"]);
    await store.delete("h", "juliet");
    assert.deepEqual(await store.stat("h", "juliet"), { count: 0, bytes: 0 });
    assert.deepEqual(await store.all("h", "juliet"), []);
    await store.delete("h", "juliet");
  });
});

Deno.test("offline store: a legacy JSON array is moved into the list once, oldest first", async () => {
  await withDir(async (dir) => {
    await openKeyvalStore<Element[]>(dir, "offline").set("h", "juliet", [msg("old1"), msg("old2")]);
    const store = openOfflineStore(dir, { soleWriter: true, ffi: "off" });
    const st = await store.stat("h", "juliet");
    assert.equal(st.count, 2);
    await assert.rejects(Deno.stat(`${dir}/h/offline/juliet.json`));
    await store.append("h", "juliet", msg("new"));
    // Counted again (a reloaded account): the legacy messages are not moved twice.
    assert.equal((await store.stat("h", "juliet")).count, 3);
    assert.deepEqual(
      (await store.all("h", "juliet")).map((m) => m.attrs.id),
      ["old1", "old2", "new"],
    );
    // An empty legacy array only goes away.
    await openKeyvalStore<Element[]>(dir, "offline").set("h", "romeo", []);
    const fresh = openOfflineStore(dir, { ffi: "off" });
    assert.deepEqual(await fresh.stat("h", "romeo"), { count: 0, bytes: 0 });
    await assert.rejects(Deno.stat(`${dir}/h/offline/romeo.json`));
  });
});

Deno.test("offline store: a name no file can have holds nothing", async () => {
  await withDir(async (dir) => {
    const store = openOfflineStore(dir, { ffi: "off" });
    assert.deepEqual(await store.stat("h", "x".repeat(300)), { count: 0, bytes: 0 });
  });
});
