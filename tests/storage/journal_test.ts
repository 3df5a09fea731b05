import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { encodePathPart, storeDir } from "../../lib/storage/file/datamanager.ts";
import {
  decodeEntries,
  encodeEntry,
  listJournalFor,
  openListJournal,
} from "../../lib/storage/file/journal.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { JOURNAL_TARGET, type JournalItem } from "./_journal_writer.ts";
import { misplaced, scanRaw } from "./_list_helpers.ts";

const HELPER = fromFileUrl(new URL("./_journal_writer.ts", import.meta.url));
const CONFIG = fromFileUrl(new URL("../../deno.json", import.meta.url));
const { host, store: storeName } = JOURNAL_TARGET;

function listPath(dir: string, user: string): string {
  return join(storeDir(dir, host, storeName), `${encodePathPart(user)}.list`);
}

/** Runs the writer in a child that exits without closing the journal; its JSON report. */
async function runWriter(mode: string, dir: string): Promise<Record<string, unknown>> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, HELPER, mode, dir],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout).trim());
}

async function ids(dir: string, user: string): Promise<string[]> {
  const store = openListStore<JournalItem>(dir, storeName);
  return (await store.range(host, user, 0, 1e9)).map((it) => it.id);
}

Deno.test("journal entries: decoded in order; a damaged or cut entry ends the journal", () => {
  const bytes = (s: string) => new TextEncoder().encode(s);
  const a = encodeEntry("data", 0, 12, 0, "h/archive/a.list", bytes("one\n"));
  const b = encodeEntry("barrier", 1, 0, 0, "h/archive/b.list", new Uint8Array(0));
  const c = encodeEntry("data", 2, 13, 4096, "h/archive/ü.list", bytes("three\n"));
  const all = new Uint8Array([...a, ...b, ...c]);
  const decoded = decodeEntries(all);
  assert.deepEqual(
    decoded.map((e) => [e.kind, e.seq, e.ino, e.start, e.path, new TextDecoder().decode(e.bytes)]),
    [
      ["data", 0, 12, 0, "h/archive/a.list", "one\n"],
      ["barrier", 1, 0, 0, "h/archive/b.list", ""],
      ["data", 2, 13, 4096, "h/archive/ü.list", "three\n"],
    ],
  );
  // Cut inside the last entry: the two before it stand.
  assert.deepEqual(decodeEntries(all.subarray(0, all.length - 3)).map((e) => e.seq), [0, 1]);
  // One flipped byte in the second: only the first stands, even though the third is whole.
  const flipped = all.slice();
  flipped[a.length + 12] ^= 0xff;
  assert.deepEqual(decodeEntries(flipped).map((e) => e.seq), [0]);
  assert.deepEqual(decodeEntries(new Uint8Array(0)), []);
});

Deno.test({
  name: "journal: after a power loss cut the list files' unsynced tails, replay restores " +
    "every acknowledged item, in order, in the block layout",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "journal-" });
    try {
      const report = await runWriter("append", dir) as {
        checkpointed: Record<string, number>;
        acked: Record<string, string[]>;
      };
      // What a power loss can leave of each file's unsynced tail: none of it (alice), a part
      // (bob, with an index that now points past the end), or a part and then zeros (carol:
      // the size reached the disk, the data did not).
      const cuts: Record<string, (synced: number, size: number) => number> = {
        alice: (synced) => synced,
        bob: (synced, size) => synced + Math.floor((size - synced) / 3),
        carol: (synced, size) => synced + Math.floor((size - synced) / 2),
      };
      for (const [user, cut] of Object.entries(cuts)) {
        const path = listPath(dir, user);
        const size = (await Deno.stat(path)).size;
        const synced = report.checkpointed[user];
        assert.ok(synced > 0 && synced < size, `${user}: ${synced} of ${size} synced`);
        const keep = cut(synced, size);
        const f = await Deno.open(path, { write: true });
        await f.truncate(keep);
        if (user === "carol") await f.truncate(size);
        f.close();
      }
      // The loss is real: without the journal, items are missing.
      for (const user of Object.keys(cuts)) {
        const seen = await ids(dir, user);
        assert.ok(seen.length < report.acked[user].length, `${user}: lost before replay`);
      }

      const journal = await openListJournal(dir);
      assert.ok(journal !== undefined);
      assert.equal(listJournalFor(dir), journal);
      await journal.close();
      assert.equal(listJournalFor(dir), undefined);
      for (const name of [".list-journal-0", ".list-journal-1"]) {
        assert.equal((await Deno.stat(join(dir, name))).size, 0, `${name} emptied`);
      }
      await assertReplayed(dir, Object.keys(cuts), report.acked);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

/** After replay, each list holds exactly what was acknowledged, checksummed and block-aligned. */
async function assertReplayed(
  dir: string,
  users: readonly string[],
  acked: Readonly<Record<string, readonly string[]>>,
): Promise<void> {
  const store = openListStore<JournalItem>(dir, storeName);
  for (const user of users) {
    assert.deepEqual(await ids(dir, user), acked[user], `${user} after replay`);
    const st = await store.stat(host, user);
    assert.deepEqual(st.corrupt.filter((c) => c.kind === "checksum"), [], user);
    const { records } = await scanRaw(listPath(dir, user));
    assert.deepEqual(misplaced(records), [], `${user}: block layout`);
  }
}

Deno.test({
  name: "journal: a process that dies holding write-behind appends loses none: replay writes " +
    "them back, after a power loss too",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "journal-" });
    try {
      const report = await runWriter("behind", dir) as {
        checkpointed: Record<string, number>;
        acked: Record<string, string[]>;
      };
      const users = Object.keys(report.acked);
      // What the list files hold is a prefix of what was acknowledged; what they lack was held
      // by the process when it died.
      let lacking = 0;
      for (const user of users) {
        const { records } = await scanRaw(listPath(dir, user));
        const there = records.map((r) => (JSON.parse(r.json) as JournalItem).id);
        assert.deepEqual(there, report.acked[user].slice(0, there.length), user);
        assert.ok(there.length >= 5, `${user}: the checkpointed items are there`);
        lacking += report.acked[user].length - there.length;
      }
      assert.ok(lacking > 0, "appends were held back from the list files");
      // And a power loss: alice's file loses all it had past the checkpoint.
      const alice = await Deno.open(listPath(dir, "alice"), { write: true });
      await alice.truncate(report.checkpointed.alice);
      alice.close();

      const journal = await openListJournal(dir);
      assert.ok(journal !== undefined);
      await journal.close();
      await assertReplayed(dir, users, report.acked);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "journal: a deleted list and a shifted one are not brought back from before the " +
    "delete or the shift; what came after is",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "journal-" });
    try {
      const report = await runWriter("recreate", dir) as {
        gone: string[];
        trimmed: string[];
        trimmedAfterShift: number;
      };
      assert.deepEqual(report.gone, ["new-0", "new-1", "new-2"]);
      assert.deepEqual(report.trimmed, ["t-4", "t-5", "t-6", "t-7", "t-8", "t-9", "t-10", "t-11"]);
      // Both lose what came after their last sync: the re-created list all of it, the shifted
      // one its last two appends.
      await Deno.truncate(listPath(dir, "gone"), 0);
      await Deno.truncate(listPath(dir, "trimmed"), report.trimmedAfterShift);
      assert.equal((await ids(dir, "trimmed")).length, 6);

      const journal = await openListJournal(dir);
      assert.ok(journal !== undefined);
      await journal.close();
      assert.deepEqual(await ids(dir, "gone"), report.gone);
      assert.deepEqual(await ids(dir, "trimmed"), report.trimmed);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("journal: one process owns it; a second open of it in this process shares it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "journal-" });
  try {
    const first = await openListJournal(dir);
    const second = await openListJournal(dir);
    assert.ok(first !== undefined);
    assert.equal(second, first);
    const store = openListStore<JournalItem>(dir, storeName);
    await store.append(host, "u", [{ id: "a", pad: "" }]);
    // Journal bytes written: the append went through it.
    const size0 = (await Deno.stat(join(dir, ".list-journal-0"))).size;
    assert.ok(size0 > 0);
    await first.close();
    // Still open for the second holder.
    await store.append(host, "u", [{ id: "b", pad: "" }]);
    assert.ok((await Deno.stat(join(dir, ".list-journal-0"))).size > size0);
    // Another process cannot take it while this one holds it.
    const other = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { openListJournal } from ${
          JSON.stringify(new URL("../../lib/storage/file/journal.ts", import.meta.url).href)
        };
         console.log(String(await openListJournal(${JSON.stringify(dir)})));`,
      ],
      stdout: "piped",
    }).output();
    assert.equal(new TextDecoder().decode(other.stdout).trim(), "undefined");
    await second!.close();
    // A checkpoint on close: the journal is empty and the list holds both.
    assert.equal((await Deno.stat(join(dir, ".list-journal-0"))).size, 0);
    assert.deepEqual(await ids(dir, "u"), ["a", "b"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("journal: an entry committed as the previous batch resolves is flushed too", async () => {
  const dir = await Deno.makeTempDir({ prefix: "journal-" });
  try {
    const journal = await openListJournal(dir);
    assert.ok(journal !== undefined);
    // Each commit is made in the continuation of the one before, the turn its batch resolves.
    const chain = (async () => {
      for (let i = 0; i < 20; i++) {
        await journal.commit("h/archive/u.list", 0, i, new Uint8Array([0x0a]));
      }
      return "all flushed";
    })();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const stuck = new Promise<string>((r) => timer = setTimeout(() => r("stuck"), 10_000));
    assert.equal(await Promise.race([chain, stuck]), "all flushed");
    clearTimeout(timer);
    await journal.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("journal: entries written after a checkpoint, or after a replay at start, are found by the next replay", async () => {
  const dir = await Deno.makeTempDir({ prefix: "journal-" });
  try {
    const bytes = new TextEncoder().encode("x\n");
    const decoded = async () => {
      const seqs: number[] = [];
      for (const name of [".list-journal-0", ".list-journal-1"]) {
        seqs.push(...decodeEntries(await Deno.readFile(join(dir, name))).map((e) => e.seq));
      }
      return seqs.sort((a, b) => a - b);
    };
    const first = await openListJournal(dir, { checkpointMs: 1e9 });
    assert.ok(first !== undefined);
    for (let i = 0; i < 3; i++) await first.commit("h/archive/u.list", 0, i * 2, bytes);
    // Both files emptied in turn: what follows must start at their beginning, not after a
    // hole where the emptied entries were (replay stops at a zero length).
    await first.checkpoint();
    await first.commit("h/archive/u.list", 0, 6, bytes);
    await first.checkpoint();
    await first.commit("h/archive/u.list", 0, 8, bytes);
    await first.commit("h/archive/u.list", 0, 10, bytes);
    assert.deepEqual(await decoded(), [4, 5]);
    await first.close();
    // Replay at the next start reads the files to their end, then empties them: the same.
    await Deno.writeFile(
      join(dir, ".list-journal-0"),
      encodeEntry("data", 0, 0, 0, "h/archive/v.list", bytes),
    );
    const second = await openListJournal(dir, { checkpointMs: 1e9 });
    assert.ok(second !== undefined);
    await second.commit("h/archive/u.list", 0, 12, bytes);
    assert.deepEqual(await decoded(), [0]);
    await second.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
