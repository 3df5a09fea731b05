import assert from "node:assert/strict";
import { join } from "node:path";
import { verifyPassword } from "../../lib/xmpp/scram.ts";
import {
  AccountExistsError,
  AccountMissingError,
  DECOY_KEY_FILE,
  loadDecoyKey,
  openAccountStore,
} from "../../lib/storage/accounts.ts";
import { storeDir } from "../../lib/storage/file/datamanager.ts";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("accounts: create, exists, getCredentials", () =>
  withDir(async (dir) => {
    const created = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
    const accounts = openAccountStore(dir, { now: () => created });
    assert.equal(await accounts.exists("example.com", "juliet"), false);
    assert.equal(await accounts.getCredentials("example.com", "juliet"), undefined);

    await accounts.create("example.com", "juliet", "s3cret");
    assert.equal(await accounts.exists("example.com", "juliet"), true);
    assert.equal(await accounts.exists("other.example", "juliet"), false);
    const creds = await accounts.getCredentials("example.com", "juliet");
    assert.ok(creds?.["SHA-1"] && creds["SHA-256"]);
    assert.equal(creds["SHA-256"].iterations, 4096);
    assert.equal(verifyPassword("s3cret", creds), true);
    assert.equal(verifyPassword("wrong", creds), false);

    const file = join(storeDir(dir, "example.com", "accounts"), "juliet.json");
    const record = JSON.parse(await Deno.readTextFile(file));
    assert.deepEqual(Object.keys(record).sort(), ["created", "scram"]);
    assert.equal(record.created, created.toISOString());

    await assert.rejects(accounts.create("example.com", "juliet", "other"), AccountExistsError);
    assert.equal(
      verifyPassword("s3cret", (await accounts.getCredentials("example.com", "juliet"))!),
      true,
    );
  }));

Deno.test("accounts: concurrent creates of one account: exactly one wins", () =>
  withDir(async (dir) => {
    const accounts = openAccountStore(dir);
    const results = await Promise.allSettled(
      ["one", "two", "three"].map((pw) => accounts.create("h", "romeo", pw)),
    );
    const fulfilled = results.filter((r) => r.status === "fulfilled");
    assert.equal(fulfilled.length, 1);
    for (const r of results) {
      if (r.status === "rejected") assert.ok(r.reason instanceof AccountExistsError);
    }
    assert.equal(verifyPassword("one", (await accounts.getCredentials("h", "romeo"))!), true);
  }));

Deno.test("accounts: setPassword replaces the credentials and keeps created", () =>
  withDir(async (dir) => {
    let clock = new Date(Date.UTC(2020, 5, 1));
    const accounts = openAccountStore(dir, { iterations: 5000, now: () => clock });
    await assert.rejects(accounts.setPassword("h", "nurse", "x"), AccountMissingError);
    await accounts.create("h", "nurse", "old password");
    const before = await accounts.getCredentials("h", "nurse");
    clock = new Date(Date.UTC(2021, 5, 1));
    await accounts.setPassword("h", "nurse", "new password");
    const after = (await accounts.getCredentials("h", "nurse"))!;
    assert.equal(verifyPassword("old password", after), false);
    assert.equal(verifyPassword("new password", after), true);
    assert.equal(after["SHA-256"]!.iterations, 5000);
    assert.notEqual(after["SHA-256"]!.salt, before!["SHA-256"]!.salt);
    const file = join(storeDir(dir, "h", "accounts"), "nurse.json");
    assert.equal(JSON.parse(await Deno.readTextFile(file)).created, "2020-06-01T00:00:00.000Z");
  }));

Deno.test("accounts: remove", () =>
  withDir(async (dir) => {
    const accounts = openAccountStore(dir);
    await assert.rejects(accounts.remove("h", "tybalt"), AccountMissingError);
    await accounts.create("h", "tybalt", "pw");
    await accounts.create("h", "mercutio", "pw");
    await accounts.remove("h", "tybalt");
    assert.equal(await accounts.exists("h", "tybalt"), false);
    assert.equal(await accounts.exists("h", "mercutio"), true);
    await assert.rejects(accounts.remove("h", "tybalt"), AccountMissingError);
    // The name is free again.
    await accounts.create("h", "tybalt", "pw2");
    assert.equal(verifyPassword("pw2", (await accounts.getCredentials("h", "tybalt"))!), true);
  }));

Deno.test("accounts: no file under the data directory contains the password", () =>
  withDir(async (dir) => {
    const accounts = openAccountStore(dir);
    const passwords = ["first-Pa55word!", "second-Pa55word!"];
    await accounts.create("example.com", "juliet", passwords[0]);
    await accounts.create("example.com", "romeo", passwords[0]);
    await accounts.setPassword("example.com", "romeo", passwords[1]);
    let files = 0;
    async function scan(path: string): Promise<void> {
      for await (const e of Deno.readDir(path)) {
        const child = join(path, e.name);
        if (e.isDirectory) await scan(child);
        else {
          files++;
          const bytes = new TextDecoder("latin1").decode(await Deno.readFile(child));
          for (const pw of passwords) {
            assert.ok(!bytes.includes(pw), `${child} contains a password`);
            assert.ok(!bytes.includes(btoa(pw)), `${child} contains a base64 password`);
          }
        }
      }
    }
    await scan(dir);
    assert.equal(files, 2);
  }));

Deno.test("accounts: iterations below 4096 are refused", () =>
  withDir(async (dir) => {
    const accounts = openAccountStore(dir, { iterations: 1 });
    await assert.rejects(accounts.create("h", "u", "pw"), RangeError);
    assert.equal(await accounts.exists("h", "u"), false);
  }));

Deno.test("accounts: decoys for unknown names are stable across restarts and shaped like accounts", () =>
  withDir(async (dir) => {
    const accounts = openAccountStore(dir, { iterations: 5000 });
    await accounts.create("h", "real", "pw");
    const real = (await accounts.getCredentials("h", "real"))!;
    const decoy = await accounts.decoyCredentials("h", "ghost");
    for (const hash of ["SHA-1", "SHA-256"] as const) {
      assert.equal(decoy[hash]!.salt.length, real[hash]!.salt.length);
      assert.equal(decoy[hash]!.iterations, real[hash]!.iterations);
      assert.equal(decoy[hash]!.iterations, 5000);
    }
    assert.deepEqual(await accounts.decoyCredentials("h", "ghost"), decoy);
    assert.notDeepEqual(await accounts.decoyCredentials("h", "ghost2"), decoy);
    assert.notDeepEqual(await accounts.decoyCredentials("other", "ghost"), decoy);
    // The secret is kept in the data directory, private to the server's user.
    const info = await Deno.stat(join(dir, DECOY_KEY_FILE));
    assert.equal(info.size, 32);
    if (Deno.build.os !== "windows") assert.equal(info.mode! & 0o077, 0);
    const reopened = openAccountStore(dir, { iterations: 5000 });
    assert.deepEqual(await reopened.decoyCredentials("h", "ghost"), decoy);
  }));

Deno.test("accounts: concurrent first uses agree on one decoy secret; a corrupt one is refused", () =>
  withDir(async (dir) => {
    for (let round = 0; round < 20; round++) {
      await Deno.remove(join(dir, DECOY_KEY_FILE)).catch(() => {});
      const keys = await Promise.all([loadDecoyKey(dir), loadDecoyKey(dir), loadDecoyKey(dir)]);
      assert.deepEqual(keys[1], keys[0]);
      assert.deepEqual(keys[2], keys[0]);
    }
    // No temp file is left behind.
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, [DECOY_KEY_FILE]);
    await Deno.writeFile(join(dir, DECOY_KEY_FILE), new Uint8Array(5));
    await assert.rejects(loadDecoyKey(dir), /expected 32 bytes/);
  }));
