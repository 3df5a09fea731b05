/**
 * Child process for journal_test.ts: appends through the data directory's journal, then exits
 * without closing it, as a process that dies does. What the page cache holds then survives the
 * exit (the kernel keeps it); the parent takes it away by cutting the list files, as a power
 * loss would, down to no less than what the explicit checkpoint made durable.
 *
 * `append <dataDir>`: 3 users; 5 items each, a checkpoint, then 20 more each (some crossing a
 * 4096-byte block). Prints one JSON line: `{ checkpointed: {user: size}, acked: {user: ids} }`.
 *
 * `recreate <dataDir>`: user `gone` gets 5 items, is deleted, then gets 3 new items (`new-*`);
 * user `trimmed` gets 10 items, then the 4 oldest are shifted away, then 2 more. Prints the
 * ids each user holds when it exits, and the size of `trimmed` just after the shift.
 *
 * `behind <dataDir>`: as `append`, with the list store's write-behind: the appends after the
 * checkpoint are held by the process (not written to the list files) as it dies, some or all
 * of them; only the journal has them.
 * @module
 */
import { openListJournal } from "../../lib/storage/file/journal.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";

/** An item written by this helper. */
export interface JournalItem {
  readonly id: string;
  readonly pad: string;
}

/** The host and store every mode writes to. */
export const JOURNAL_TARGET = { host: "journal.example", store: "archive" } as const;

const { host, store: storeName } = JOURNAL_TARGET;

function item(id: string, n: number): JournalItem {
  // Sizes from a few bytes to over a block: padding and block-aligned records both occur.
  return { id, pad: "x".repeat((n * 797) % 5000) };
}

async function appendMode(dataDir: string, writeBehind: boolean): Promise<unknown> {
  const journal = await openListJournal(dataDir, { checkpointMs: 1e9 });
  if (journal === undefined) throw new Error("no journal");
  const store = openListStore<JournalItem>(dataDir, storeName, { writeBehind });
  const users = ["alice", "bob", "carol"];
  const acked: Record<string, string[]> = {};
  for (const u of users) acked[u] = [];
  let n = 0;
  const add = async (u: string, count: number) => {
    for (let i = 0; i < count; i++) {
      const it = item(`${u}-${n}`, n++);
      await store.append(host, u, [it]);
      acked[u].push(it.id);
    }
  };
  await Promise.all(users.map((u) => add(u, 5)));
  await journal.checkpoint();
  const checkpointed: Record<string, number> = {};
  for (const u of users) checkpointed[u] = (await store.stat(host, u)).bytes;
  // Concurrent appends to several files: batches of the journal hold entries of each.
  await Promise.all(users.map((u) => add(u, 20)));
  return { checkpointed, acked };
}

async function recreateMode(dataDir: string): Promise<unknown> {
  const journal = await openListJournal(dataDir, { checkpointMs: 1e9 });
  if (journal === undefined) throw new Error("no journal");
  const store = openListStore<JournalItem>(dataDir, storeName, { ffi: "off" });
  for (let i = 0; i < 5; i++) await store.append(host, "gone", [item(`old-${i}`, i)]);
  await store.delete(host, "gone");
  for (let i = 0; i < 3; i++) await store.append(host, "gone", [item(`new-${i}`, i + 7)]);
  for (let i = 0; i < 10; i++) await store.append(host, "trimmed", [item(`t-${i}`, i + 3)]);
  await store.shift(host, "trimmed", 4);
  const trimmedAfterShift = (await store.stat(host, "trimmed")).bytes;
  for (let i = 10; i < 12; i++) await store.append(host, "trimmed", [item(`t-${i}`, i + 3)]);
  const ids = async (u: string) => (await store.range(host, u, 0, 1e9)).map((it) => it.id);
  return { gone: await ids("gone"), trimmed: await ids("trimmed"), trimmedAfterShift };
}

if (import.meta.main) {
  const [mode, dataDir] = Deno.args;
  const report = mode === "append"
    ? await appendMode(dataDir, false)
    : mode === "behind"
    ? await appendMode(dataDir, true)
    : mode === "recreate"
    ? await recreateMode(dataDir)
    : undefined;
  if (report === undefined) throw new Error(`unknown mode ${mode}`);
  console.log(JSON.stringify(report));
  // Gone without a close: no last checkpoint.
  Deno.exit(0);
}
