/** Deleting an account: its data goes before its record (issue 9). */
import assert from "node:assert/strict";
import { join } from "node:path";
import type { Tombstone } from "../../lib/core/tombstones.ts";
import {
  AccountMissingError,
  type AccountStore,
  openAccountStore,
} from "../../lib/storage/accounts.ts";
import { openKeyvalStore, storeDir } from "../../lib/storage/file/datamanager.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { openTombstoneStore, removeAccount } from "../../lib/storage/tombstones.ts";
import { openUserData } from "../../lib/storage/user_data.ts";

const NOW = 1_700_000_000_000;

/** Every file under `dir` whose name starts with `user.`, relative. */
async function filesOf(dir: string, user: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix === "" ? e.name : `${prefix}/${e.name}`;
    if (e.isDirectory) out.push(...await filesOf(dir, user, rel));
    else if (e.name.startsWith(`${user}.`)) out.push(rel);
  }
  return out.sort();
}

async function withAccount(
  fn: (dir: string, accounts: AccountStore) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const accounts = openAccountStore(dir);
    await accounts.create("h", "juliet", "pw");
    await openKeyvalStore(dir, "roster").set("h", "juliet", { items: {} });
    await openKeyvalStore(dir, "vcard").set("h", "juliet", { fn: "Juliet" });
    await openListStore(dir, "archive", { ffi: "off" }).append("h", "juliet", [{ n: 1 }]);
    await openListStore(dir, "offline", { ffi: "off" }).append("h", "juliet", [{ n: 2 }]);
    await fn(dir, accounts);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("account removal: every store of the data is gone before the account record goes", () =>
  withAccount(async (dir, accounts) => {
    assert.deepEqual(await filesOf(dir, "juliet"), [
      "h/accounts/juliet.json",
      "h/archive/juliet.lidx",
      "h/archive/juliet.list",
      "h/offline/juliet.lidx",
      "h/offline/juliet.list",
      "h/roster/juliet.json",
      "h/vcard/juliet.json",
    ]);
    const leftWhenRecordWent: string[][] = [];
    const tombstones = openTombstoneStore(dir);
    const tombstoneWhenRecordWent: (Tombstone | undefined)[] = [];
    const watched: AccountStore = {
      ...accounts,
      remove: async (host, user) => {
        leftWhenRecordWent.push(await filesOf(dir, user));
        tombstoneWhenRecordWent.push(await tombstones.get(host, user));
        await accounts.remove(host, user);
      },
    };
    await removeAccount(
      { accounts: watched, tombstones, data: openUserData(dir, ["vcard"]) },
      "h",
      "juliet",
      NOW,
    );
    assert.deepEqual(leftWhenRecordWent, [["h/accounts/juliet.json", "h/tombstones/juliet.json"]]);
    assert.deepEqual(tombstoneWhenRecordWent, [{ removed: NOW }]);
    assert.deepEqual(await filesOf(dir, "juliet"), ["h/tombstones/juliet.json"]);
  }));

Deno.test("account removal: a crash before the record goes leaves the account, without data, to retry", () =>
  withAccount(async (dir, accounts) => {
    const tombstones = openTombstoneStore(dir);
    const crashing: AccountStore = {
      ...accounts,
      remove: () => Promise.reject(new Error("power cut")),
    };
    const deps = { accounts: crashing, tombstones, data: openUserData(dir, ["vcard"]) };
    await assert.rejects(removeAccount(deps, "h", "juliet", NOW), /power cut/);
    // The name stays taken (account and tombstone), and no data waits for a later account.
    assert.deepEqual(await filesOf(dir, "juliet"), [
      "h/accounts/juliet.json",
      "h/tombstones/juliet.json",
    ]);
    await removeAccount({ ...deps, accounts }, "h", "juliet", NOW + 1);
    assert.deepEqual(await filesOf(dir, "juliet"), ["h/tombstones/juliet.json"]);
    assert.equal(await accounts.exists("h", "juliet"), false);
  }));

Deno.test("account removal: a missing account is refused before anything is touched", () =>
  withAccount(async (dir, accounts) => {
    const tombstones = openTombstoneStore(dir);
    const deps = { accounts, tombstones, data: openUserData(dir, ["vcard"]) };
    await assert.rejects(removeAccount(deps, "h", "romeo", NOW), AccountMissingError);
    assert.equal(await tombstones.get("h", "romeo"), undefined);
    assert.equal((await filesOf(dir, "juliet")).length, 7);
    await assert.rejects(Deno.stat(storeDir(dir, "h", "tombstones")), Deno.errors.NotFound);
  }));
