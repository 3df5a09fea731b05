/**
 * Child process for list_store_crash_test.ts.
 *
 * `append <dataDir> <firstId> <workers>`: `workers` loops append 1-3 items each, forever,
 * and write each item's id to stdout (one per line) only after its append resolved, i.e.
 * once it is durable. The parent kills this process at a random moment.
 *
 * `fill <dataDir>`: run under a file-size limit; appends ~700-byte items until an append
 * fails, then reports as one JSON line what it saw.
 *
 * `collapse <path> <len>`: prints what `collapseRange` answers (run without `--allow-ffi`).
 *
 * `delete <dataDir>`: deletes the list, as the CLI's `deluser` does, and prints `deleted`.
 *
 * `add <dataDir> <firstId> <n>`: appends items `firstId`... one at a time, prints `added`.
 * @module
 */
import { collapseRange } from "../../lib/storage/file/fallocate.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";

/** An item written by this helper. */
export interface CrashItem {
  readonly id: number;
  readonly worker: number;
  readonly pad: string;
}

/** The host, store and user every mode writes to. */
export const TARGET = { host: "crash.example", store: "archive", user: "u" } as const;

const out = Deno.stdout;
const encoder = new TextEncoder();

async function say(line: string): Promise<void> {
  // Unbuffered: what the parent reads before the kill is exactly what was acknowledged.
  const bytes = encoder.encode(`${line}\n`);
  let done = 0;
  while (done < bytes.length) done += await out.write(bytes.subarray(done));
}

async function appendForever(dataDir: string, firstId: number, workers: number): Promise<void> {
  const store = openListStore<CrashItem>(dataDir, TARGET.store);
  let next = firstId;
  await Promise.all(Array.from({ length: workers }, async (_, worker) => {
    for (;;) {
      const n = 1 + Math.floor(Math.random() * 3);
      const items = Array.from({ length: n }, () => ({
        id: next++,
        worker,
        pad: "p".repeat(Math.floor(Math.random() * 2000)),
      }));
      await store.append(TARGET.host, TARGET.user, items);
      await say(items.map((it) => it.id).join("\n"));
    }
  }));
}

async function fill(dataDir: string): Promise<void> {
  const store = openListStore<CrashItem>(dataDir, TARGET.store);
  const path = `${dataDir}/crash%2Eexample/archive/u.list`;
  let acked = 0;
  for (let id = 0;; id++) {
    const before = await Deno.stat(path).then((s) => s.size, () => 0);
    try {
      await store.append(TARGET.host, TARGET.user, [{ id, worker: 0, pad: "f".repeat(700) }]);
      acked++;
    } catch (err) {
      const after = (await Deno.stat(path)).size;
      // A second try fails the same way and still leaves nothing behind.
      let again = "appended";
      try {
        await store.append(TARGET.host, TARGET.user, [{ id, worker: 0, pad: "g".repeat(700) }]);
      } catch (e) {
        again = e instanceof Error ? e.message : String(e);
      }
      const afterAgain = (await Deno.stat(path)).size;
      const items = await store.range(TARGET.host, TARGET.user, 0, 1e9);
      await say(JSON.stringify({
        error: err instanceof Error ? err.message : String(err),
        again,
        acked,
        before,
        after,
        afterAgain,
        count: await store.count(TARGET.host, TARGET.user),
        ids: items.map((it) => it.id),
      }));
      return;
    }
  }
}

if (import.meta.main) {
  const [mode, dataDir, ...rest] = Deno.args;
  if (mode === "append") await appendForever(dataDir, Number(rest[0]), Number(rest[1]));
  else if (mode === "fill") await fill(dataDir);
  else if (mode === "delete") {
    await openListStore(dataDir, TARGET.store, { ffi: "off" }).delete(TARGET.host, TARGET.user);
    await say("deleted");
  } else if (mode === "add") {
    const store = openListStore<CrashItem>(dataDir, TARGET.store);
    const first = Number(rest[0]);
    for (let id = first; id < first + Number(rest[1]); id++) {
      await store.append(TARGET.host, TARGET.user, [{ id, worker: 0, pad: "" }]);
    }
    await say("added");
  } else if (mode === "collapse") await say(collapseRange(dataDir, Number(rest[0])));
  else throw new Error(`unknown mode ${mode}`);
}
