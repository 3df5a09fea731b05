/**
 * The log-structured keyval store (lib/storage/log_keyval.ts): the keyval contract, reopening
 * after writes without a clean close, a cut last line, rewrites, values of the per-file store
 * beneath the log, another writer's appends and deletes, and SIGKILL while logouts are written.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { openKeyvalStore, storeDir } from "../../lib/storage/file/datamanager.ts";
import {
  formatLine,
  LOG_FILE,
  openLogKeyvalStore,
  parseLog,
} from "../../lib/storage/log_keyval.ts";
import { openModuleStore, openUserData } from "../../lib/storage/user_data.ts";
import { keyvalContract, type Open } from "./contract/contract.ts";

const HELPER = fromFileUrl(new URL("./_log_keyval_writer.ts", import.meta.url));
const CONFIG = fromFileUrl(new URL("../../deno.json", import.meta.url));

type At = { readonly at: number; readonly status?: string };

function inTempDir<S>(open: (dataDir: string) => S): Open<S> {
  return async () => {
    const dir = await Deno.makeTempDir({ prefix: "log-keyval-contract-" });
    return { store: open(dir), close: () => Deno.remove(dir, { recursive: true }) };
  };
}

keyvalContract(
  "log (sole writer)",
  inTempDir((dir) => openLogKeyvalStore<unknown>(dir, "kv", { soleWriter: true })),
);
keyvalContract(
  "log (sole writer, rewriting often)",
  inTempDir((dir) =>
    openLogKeyvalStore<unknown>(dir, "kv", { soleWriter: true, compactMinLines: 2 })
  ),
);
keyvalContract("log (other writer)", inTempDir((dir) => openLogKeyvalStore<unknown>(dir, "kv")));

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "log-keyval-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const logPath = (dir: string) => join(storeDir(dir, "h", "lastlog"), LOG_FILE);
const sole = (dir: string, compactMinLines?: number) =>
  openLogKeyvalStore<At>(dir, "lastlog", { soleWriter: true, compactMinLines });

/** What a fresh store (nothing cached) reads for each of `users`. */
async function freshValues(dir: string, users: readonly string[]) {
  const fresh = sole(dir);
  return Object.fromEntries(
    await Promise.all(users.map(async (u) => [u, await fresh.get("h", u)])),
  );
}

Deno.test("formatLine and parseLog: sets, deletes, a cut last line and damage", () => {
  const text = formatLine("a", JSON.stringify({ at: 1 })) + formatLine("b", "2") +
    formatLine("a", undefined) + "garbage\n" + formatLine('we"ird\n', "[1]");
  const whole = parseLog(text);
  assert.equal(whole.torn, false);
  assert.equal(whole.skipped, 1);
  assert.deepEqual(whole.lines, [
    { user: "a", json: '{"at":1}' },
    { user: "b", json: "2" },
    { user: "a", json: undefined },
    { user: 'we"ird\n', json: "[1]" },
  ]);
  // Every proper prefix of a line fails to parse: a cut line is never read as a value.
  const line = formatLine("u", JSON.stringify({ at: 17, status: "x]" }));
  for (let i = 1; i < line.length - 1; i++) {
    const cut = parseLog(line.slice(0, i));
    assert.deepEqual(cut.lines, [], line.slice(0, i));
    assert.equal(cut.torn, true);
  }
  assert.deepEqual(parseLog("").lines, []);
});

Deno.test("log keyval: values written without a clean close are read back by a new instance", async () => {
  await withDir(async (dir) => {
    const store = sole(dir);
    await Promise.all(["a", "b", "c"].map((u, i) => store.set("h", u, { at: i })));
    await store.set("h", "a", { at: 10, status: "Gone" });
    await store.delete("h", "b");
    // No close: the process could have been killed here.
    assert.deepEqual(await freshValues(dir, ["a", "b", "c"]), {
      a: { at: 10, status: "Gone" },
      b: undefined,
      c: { at: 2 },
    });
    assert.deepEqual(await sole(dir).users("h"), ["a", "c"]);
    assert.deepEqual(await openLogKeyvalStore<At>(dir, "lastlog").get("h", "a"), {
      at: 10,
      status: "Gone",
    });
  });
});

Deno.test("log keyval: a last line cut by a crash is skipped, and the next append starts a new line", async () => {
  await withDir(async (dir) => {
    await sole(dir).set("h", "a", { at: 1 });
    // An append cut short by the crash: never acknowledged.
    await Deno.writeTextFile(logPath(dir), '["z",{"at":', { append: true });
    const after = sole(dir);
    assert.equal(await after.get("h", "z"), undefined);
    assert.deepEqual(await after.get("h", "a"), { at: 1 });
    await after.set("h", "b", { at: 2 });
    assert.deepEqual(await freshValues(dir, ["a", "b", "z"]), {
      a: { at: 1 },
      b: { at: 2 },
      z: undefined,
    });
    const parsed = parseLog(await Deno.readTextFile(logPath(dir)));
    assert.equal(parsed.skipped, 1, "only the cut line");
    assert.equal(parsed.torn, false);
    // Another writer after a cut line does the same.
    await Deno.writeTextFile(logPath(dir), '["y"', { append: true });
    await openLogKeyvalStore<At>(dir, "lastlog").set("h", "c", { at: 3 });
    assert.deepEqual(await freshValues(dir, ["a", "b", "c", "y"]), {
      a: { at: 1 },
      b: { at: 2 },
      c: { at: 3 },
      y: undefined,
    });
  });
});

Deno.test("log keyval: the log is rewritten with the live values when it grows, and no temp file is left", async () => {
  await withDir(async (dir) => {
    const store = sole(dir, 16);
    for (let i = 0; i < 200; i++) await store.set("h", `u${i % 3}`, { at: i });
    await store.delete("h", "u2");
    const { lines } = parseLog(await Deno.readTextFile(logPath(dir)));
    assert.ok(lines.length <= 16 + 2, `${lines.length} lines for 2 live values`);
    assert.deepEqual(await freshValues(dir, ["u0", "u1", "u2"]), {
      u0: { at: 198 },
      u1: { at: 199 },
      u2: undefined,
    });
    const names = [...Deno.readDirSync(storeDir(dir, "h", "lastlog"))].map((e) => e.name);
    assert.deepEqual(names, [LOG_FILE]);
  });
});

Deno.test("log keyval: values of the per-file store are read beneath the log, deleted with it, and moved into it by the first append", async () => {
  await withDir(async (dir) => {
    const old = openKeyvalStore<At>(dir, "lastlog");
    for (const [i, u] of ["a", "b", "c", "d"].entries()) await old.set("h", u, { at: i });
    // The account removal's stores (the CLI's) delete a per-file value too.
    const data = openUserData(dir, ["lastlog"]);
    for (const kv of data.keyval) await kv.delete("h", "d");
    assert.equal(await old.get("h", "d"), undefined);
    const store = sole(dir);
    assert.deepEqual(await store.get("h", "a"), { at: 0 });
    assert.deepEqual(await store.users("h"), ["a", "b", "c"]);
    // A delete removes the per-file value; its line, the first append, moves the other
    // per-file values into the log and removes their files.
    await store.delete("h", "b");
    assert.equal(await old.get("h", "b"), undefined);
    assert.deepEqual(await old.users("h"), []);
    assert.deepEqual(await freshValues(dir, ["a", "c"]), { a: { at: 0 }, c: { at: 2 } });
    await store.set("h", "a", { at: 100 });
    assert.deepEqual(await freshValues(dir, ["a", "b", "c"]), {
      a: { at: 100 },
      b: undefined,
      c: { at: 2 },
    });
    for (let i = 0; i < 12; i++) await store.set("h", "e", { at: i });
    const names = [...Deno.readDirSync(storeDir(dir, "h", "lastlog"))].map((e) => e.name);
    assert.deepEqual(names, [LOG_FILE]);
    assert.deepEqual(await freshValues(dir, ["a", "b", "c", "d", "e"]), {
      a: { at: 100 },
      b: undefined,
      c: { at: 2 },
      d: undefined,
      e: { at: 11 },
    });
  });
});

Deno.test("log keyval: another process's delete is seen by the sole writer, and a rewrite does not bring it back", async () => {
  await withDir(async (dir) => {
    const store = sole(dir, 8);
    await store.set("h", "a", { at: 1 });
    await store.set("h", "b", { at: 2 });
    const res = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--config", CONFIG, HELPER, "delete", dir, "a"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(res.code, 0, new TextDecoder().decode(res.stderr));
    assert.equal(new TextDecoder().decode(res.stdout).trim(), "deleted");
    await store.set("h", "c", { at: 3 });
    assert.equal(await store.get("h", "a"), undefined);
    for (let i = 0; i < 20; i++) await store.set("h", "c", { at: 3 + i });
    assert.deepEqual(await freshValues(dir, ["a", "b", "c"]), {
      a: undefined,
      b: { at: 2 },
      c: { at: 22 },
    });
  });
});

Deno.test("log keyval: another writer's appends during the sole writer's rewrites are all kept", async () => {
  await withDir(async (dir) => {
    const store = sole(dir, 4);
    const other = openLogKeyvalStore<At>(dir, "lastlog");
    const users = Array.from({ length: 30 }, (_, i) => `w${i}`);
    await Promise.all([
      (async () => {
        for (let i = 0; i < 120; i++) await store.set("h", `s${i % 2}`, { at: i });
      })(),
      ...users.map((u, i) => other.set("h", u, { at: 1000 + i })),
    ]);
    const fresh = await freshValues(dir, [...users, "s0", "s1"]);
    for (const [i, u] of users.entries()) assert.deepEqual(fresh[u], { at: 1000 + i }, u);
    assert.deepEqual([fresh.s0, fresh.s1], [{ at: 118 }, { at: 119 }]);
    // The sole writer read them too.
    assert.deepEqual(await store.get("h", "w7"), { at: 1007 });
  });
});

Deno.test("openModuleStore: the last logout is kept in a log, other module stores in files", async () => {
  await withDir(async (dir) => {
    await openModuleStore<At>(dir, "lastlog", { soleWriter: true }).set("h", "a", { at: 1 });
    await openModuleStore<At>(dir, "vcard", { soleWriter: true }).set("h", "a", { at: 2 });
    await Deno.stat(logPath(dir));
    await Deno.stat(join(storeDir(dir, "h", "vcard"), "a.json"));
  });
});

Deno.test({
  name: "log keyval: SIGKILL while logouts are written loses none that was acknowledged",
  ignore: Deno.build.os === "windows",
  async fn() {
    await withDir(async (dir) => {
      for (let round = 0; round < 2; round++) {
        const child = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--config",
            CONFIG,
            HELPER,
            "logouts",
            dir,
            "40",
            "8",
            String(1 + round * 1e9),
          ],
          stdout: "piped",
          stderr: "null",
        }).spawn();
        // The newest acknowledged value of each user.
        const acked = new Map<string, number>();
        let buffered = "";
        const reader = child.stdout.getReader();
        const want = 300 + Math.floor(Math.random() * 300);
        let count = 0;
        while (count < want) {
          const { value, done } = await reader.read();
          if (done) break;
          buffered += new TextDecoder().decode(value);
          const lines = buffered.split("\n");
          buffered = lines.pop()!;
          for (const line of lines) {
            const [user, at] = line.split(" ");
            acked.set(user, Math.max(acked.get(user) ?? 0, Number(at)));
            count++;
          }
        }
        child.kill("SIGKILL");
        await child.status;
        await reader.cancel().catch(() => {});
        assert.ok(count >= want, `the writer stopped after ${count} acknowledgements`);
        const fresh = sole(dir);
        for (const [user, at] of acked) {
          const got = await fresh.get("h", user);
          // A later write that was not yet acknowledged may have landed too.
          assert.ok(got !== undefined && got.at >= at, `${user}: ${got?.at} < ${at}`);
        }
        const parsed = parseLog(await Deno.readTextFile(logPath(dir)));
        assert.ok(parsed.skipped <= round + 1, `${parsed.skipped} damaged lines`);
      }
    });
  },
});
