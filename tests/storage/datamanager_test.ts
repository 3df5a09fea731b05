import assert from "node:assert/strict";
import { join } from "node:path";
import {
  decodePathPart,
  encodePathPart,
  MAX_ENCODED_PART,
  openKeyvalStore,
  removeTempFiles,
  StoreCorruptError,
  storeDir,
  TEMP_PREFIX,
  UnstorableNameError,
} from "../../lib/storage/file/datamanager.ts";

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out.sort();
}

/** Every file and directory under `root`, relative, sorted. */
async function walk(root: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(root, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    out.push(rel);
    if (e.isDirectory) out.push(...await walk(root, rel));
  }
  return out.sort();
}

Deno.test("datamanager: set/get/delete round trip in DATA/<host>/<store>/<user>.json", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<{ n: number; s: string }>(dir, "roster");
    assert.equal(await store.get("example.com", "juliet"), undefined);
    await store.set("example.com", "juliet", { n: 1, s: "one" });
    assert.deepEqual(await store.get("example.com", "juliet"), { n: 1, s: "one" });
    const path = join(dir, "example%2Ecom", "roster", "juliet.json");
    assert.deepEqual(JSON.parse(await Deno.readTextFile(path)), { n: 1, s: "one" });

    await store.set("example.com", "juliet", { n: 2, s: "two" });
    assert.deepEqual(await store.get("example.com", "juliet"), { n: 2, s: "two" });
    assert.deepEqual(await store.users("example.com"), ["juliet"]);

    await store.delete("example.com", "juliet");
    assert.equal(await store.get("example.com", "juliet"), undefined);
    await store.delete("example.com", "juliet"); // idempotent
    await store.delete("nowhere.example", "nobody"); // not even the directory exists
    assert.deepEqual(await store.users("example.com"), []);
    assert.deepEqual(await store.users("nowhere.example"), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: atomic writes leave no temp file and private permissions", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<number[]>(dir, "data");
    await Promise.all(Array.from({ length: 20 }, (_, i) => store.set("h", `u${i % 4}`, [i])));
    const files = await listFiles(storeDir(dir, "h", "data"));
    assert.deepEqual(files, ["u0.json", "u1.json", "u2.json", "u3.json"]);
    for (let u = 0; u < 4; u++) {
      const value = await store.get("h", `u${u}`);
      assert.ok(value !== undefined && value[0] % 4 === u);
    }
    if (Deno.build.os !== "windows") {
      const info = await Deno.stat(join(storeDir(dir, "h", "data"), "u0.json"));
      assert.equal(info.mode! & 0o777, 0o600);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: a failed write keeps the old value and removes its temp file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<string>(dir, "s");
    await store.set("h", "ok", "kept");
    const sdir = storeDir(dir, "h", "s");
    // A directory where the value file should go makes the rename fail.
    await Deno.mkdir(join(sdir, "blocked.json", "inner"), { recursive: true });
    await assert.rejects(store.set("h", "blocked", "value"));
    assert.deepEqual(await listFiles(sdir), ["blocked.json", "ok.json"]);
    assert.equal(await store.get("h", "ok"), "kept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: encodePathPart keeps every part inside its folder", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["juliet", "juliet"],
    ["../evil", "%2E%2E%2Fevil"],
    ["a/b", "a%2Fb"],
    ["a\\b", "a%5Cb"],
    ["..", "%2E%2E"],
    ["CON", "%43%4F%4E"],
    ["con", "%63on"],
    ["lpt1", "%6Cpt1"],
    ["100%", "100%25"],
    ["über", "%C3%BCber"],
    ["日本", "%E6%97%A5%E6%9C%AC"],
    ["a b", "a%20b"],
    ["x_y-z", "x_y-z"],
  ];
  for (const [part, encoded] of cases) {
    assert.equal(encodePathPart(part), encoded, part);
    assert.match(encoded, /^[a-z0-9_%A-F-]+$/);
    assert.equal(decodePathPart(encoded), part, encoded);
  }
  // Case-folding filesystems cannot merge two users.
  assert.notEqual(encodePathPart("Juliet").toLowerCase(), encodePathPart("juliet").toLowerCase());
  assert.throws(() => encodePathPart(""), RangeError);
  assert.throws(() => encodePathPart("\u00e9".repeat(100)), RangeError);
  // Names encodePathPart would never produce are not decoded.
  for (const bad of ["", ".tmp-1234", "%61", "%2e", "%zz", "%C3", "A", "a.b"]) {
    assert.equal(decodePathPart(bad), undefined, bad);
  }
});

Deno.test("datamanager: hostile names stay in the store folder and users() decodes them", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<string>(dir, "accounts");
    const names = ["../evil", "a/b", "CON", "con", "über", "日本", "Juliet", "juliet", ".hidden"];
    for (const name of names) await store.set("example.com", name, `value of ${name}`);
    for (const name of names) {
      assert.equal(await store.get("example.com", name), `value of ${name}`);
    }
    assert.deepEqual(await store.users("example.com"), [...names].sort());
    // Nothing was written outside <dir>/<host>/<store>.
    const all = await walk(dir);
    assert.ok(all.every((p) => p === "example%2Ecom" || p.startsWith("example%2Ecom/accounts")));
    assert.equal((await listFiles(storeDir(dir, "example.com", "accounts"))).length, names.length);

    // A host name that tries to escape is contained too.
    await store.set("../..", "x", "y");
    assert.equal(await store.get("../..", "x"), "y");
    assert.deepEqual(await listFiles(dir), ["%2E%2E%2F%2E%2E", "example%2Ecom"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: users() ignores stray files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<number>(dir, "s");
    await store.set("h", "alice", 1);
    const sdir = storeDir(dir, "h", "s");
    await Deno.writeTextFile(join(sdir, ".tmp-deadbeef"), "partial");
    await Deno.writeTextFile(join(sdir, "notes.txt"), "x");
    await Deno.writeTextFile(join(sdir, "Bad.json"), "1");
    await Deno.mkdir(join(sdir, "dir.json"));
    assert.deepEqual(await store.users("h"), ["alice"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: corrupt JSON throws an error naming the file", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<number>(dir, "s");
    await store.set("h", "bob", 1);
    const path = join(storeDir(dir, "h", "s"), "bob.json");
    await Deno.writeTextFile(path, '{"truncated":');
    await assert.rejects(store.get("h", "bob"), (err: unknown) => {
      assert.ok(err instanceof StoreCorruptError);
      assert.equal(err.path, path);
      assert.ok(err.message.includes(path));
      return true;
    });
    // Overwriting a corrupt value repairs it.
    await store.set("h", "bob", 2);
    assert.equal(await store.get("h", "bob"), 2);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: stores and hosts are separate", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const a = openKeyvalStore<string>(dir, "a");
    const b = openKeyvalStore<string>(dir, "b");
    await a.set("one.example", "u", "a1");
    await b.set("one.example", "u", "b1");
    await a.set("two.example", "u", "a2");
    assert.equal(await a.get("one.example", "u"), "a1");
    assert.equal(await b.get("one.example", "u"), "b1");
    assert.equal(await a.get("two.example", "u"), "a2");
    assert.equal(await b.get("two.example", "u"), undefined);
    await assert.rejects(a.set("h", "u", undefined as unknown as string), TypeError);
    assert.throws(() => openKeyvalStore(dir, ""), RangeError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: soleWriter keeps values, deletes and misses exact", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<number>(dir, "vcard", { soleWriter: true });
    assert.equal(await store.get("h", "a"), undefined); // no directory yet
    await store.set("h", "a", 1);
    assert.equal(await store.get("h", "a"), 1);
    assert.equal(await store.get("h", "b"), undefined);
    await store.delete("h", "a");
    assert.equal(await store.get("h", "a"), undefined);
    await store.set("h", "a", 2);
    assert.equal(await store.get("h", "a"), 2);
    // Values stored before the store was opened are found through the listing.
    const again = openKeyvalStore<number>(dir, "vcard", { soleWriter: true });
    assert.equal(await again.get("h", "a"), 2);
    assert.equal(await again.get("h", "zz"), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: soleWriter lists a host once, so a missing value costs no lookup", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const sole = openKeyvalStore<string>(dir, "roster", { soleWriter: true });
    const other = openKeyvalStore<string>(dir, "roster");
    assert.equal(await sole.get("h", "juliet"), undefined); // lists the host
    // A write by someone else after the listing is not looked for: that is the contract.
    await other.set("h", "juliet", "written behind its back");
    assert.equal(await sole.get("h", "juliet"), undefined);
    // Without the option every read looks at the file (accounts, which the CLI writes).
    assert.equal(await other.get("h", "juliet"), "written behind its back");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: soleWriter reads a file deleted behind its back as missing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<string>(dir, "offline", { soleWriter: true });
    await store.set("h", "romeo", "queued");
    // The CLI's deluser removes files while the server runs.
    await openKeyvalStore<string>(dir, "offline").delete("h", "romeo");
    assert.equal(await store.get("h", "romeo"), undefined);
    assert.equal(await store.get("h", "romeo"), undefined);
    await store.set("h", "romeo", "again");
    assert.equal(await store.get("h", "romeo"), "again");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: soleWriter sees writes that overlap the first listing", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<number>(dir, "lastlog", { soleWriter: true });
    const users = Array.from({ length: 10 }, (_, i) => `u${i}`);
    // Reads, writes and deletes all start before the listing of the host is done.
    await Promise.all([
      ...users.map((u, i) => store.set("h", u, i)),
      ...users.map((u) => store.get("h", u)),
      store.delete("h", "u9"),
    ]);
    const found = await Promise.all(users.map((u) => store.get("h", u)));
    // u9's delete may run before or after its write: both outcomes are consistent.
    const onDisk = (await store.users("h")).includes("u9");
    assert.deepEqual(found, [0, 1, 2, 3, 4, 5, 6, 7, 8, onDisk ? 9 : undefined]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: a store directory removed behind a store's back is made again", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const soleWriter of [false, true]) {
      const store = openKeyvalStore<string>(dir, "s", { soleWriter });
      await store.set("h", "a", "one");
      await Deno.remove(join(dir, "h"), { recursive: true });
      await store.set("h", "a", "two");
      assert.equal(await store.get("h", "a"), "two");
      assert.deepEqual(await listFiles(storeDir(dir, "h", "s")), ["a.json"]);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: a user name too long to be a file name has no value and cannot get one", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const store = openKeyvalStore<string>(dir, "roster", { soleWriter: true });
    const long = "a".repeat(MAX_ENCODED_PART + 1);
    // Reads and deletes answer as for a user without a file (no file can exist for it) ...
    assert.equal(await store.get("h", long), undefined);
    await store.delete("h", long);
    assert.equal(await openKeyvalStore<string>(dir, "roster").get("h", "é".repeat(41)), undefined);
    // ... and a write is refused, with an error of its own.
    await assert.rejects(store.set("h", long, "v"), UnstorableNameError);
    await assert.rejects(store.set("h", "", "v"), UnstorableNameError);
    assert.deepEqual(await walk(dir), []);
    // The longest name that fits is stored as any other.
    await store.set("h", "a".repeat(MAX_ENCODED_PART), "v");
    assert.equal(await store.get("h", "a".repeat(MAX_ENCODED_PART)), "v");
    // The host is configuration, not a peer's choice: a bad one still throws.
    await assert.rejects(store.get("", "juliet"), UnstorableNameError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("datamanager: removeTempFiles removes what writes cut short left, and nothing else", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await removeTempFiles(join(dir, "missing")), 0);
    const store = openKeyvalStore<string>(dir, "roster");
    await store.set("example.com", "juliet", "kept");
    await store.set("other.example", "romeo", "kept too");
    // What a crash between the write of a temp file and its rename leaves behind, in a keyval
    // store and in a list store's directory (its copy during a shift).
    const roster = storeDir(dir, "example.com", "roster");
    await Deno.writeTextFile(join(roster, `${TEMP_PREFIX}0123456789abcdef`), '{"half');
    const archive = storeDir(dir, "other.example", "archive");
    await Deno.mkdir(archive, { recursive: true });
    await Deno.writeTextFile(join(archive, `${TEMP_PREFIX}${crypto.randomUUID()}`), "x\n");
    await Deno.writeTextFile(join(archive, "romeo.list"), "");
    // Not a temp file: a directory and a file that merely contain the word.
    await Deno.mkdir(join(roster, `${TEMP_PREFIX}dir`));
    await Deno.writeTextFile(join(roster, "x.tmp-1.json"), "{}");

    assert.equal(await removeTempFiles(dir), 2);
    assert.deepEqual(await walk(dir), [
      "example%2Ecom",
      "example%2Ecom/roster",
      "example%2Ecom/roster/.tmp-dir",
      "example%2Ecom/roster/juliet.json",
      "example%2Ecom/roster/x.tmp-1.json",
      "other%2Eexample",
      "other%2Eexample/archive",
      "other%2Eexample/archive/romeo.list",
      "other%2Eexample/roster",
      "other%2Eexample/roster/romeo.json",
    ]);
    assert.equal(await store.get("example.com", "juliet"), "kept");
    assert.equal(await removeTempFiles(dir), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
