import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { LEASE_IDLE_MS, LEASE_MAX_MS } from "../../lib/storage/file/leases.ts";
import { encodePathPart, storeDir } from "../../lib/storage/file/datamanager.ts";
import { type CrashItem, TARGET } from "./_list_appender.ts";
import { readIndex, scanRaw } from "./_list_helpers.ts";

const HELPER = fromFileUrl(new URL("./_list_appender.ts", import.meta.url));
const CONFIG = fromFileUrl(new URL("../../deno.json", import.meta.url));

function listPath(dir: string): string {
  return join(storeDir(dir, TARGET.host, TARGET.store), `${encodePathPart(TARGET.user)}.list`);
}

/** Runs the helper in another process; its stdout, and how long it took in ms. */
async function helper(...args: string[]): Promise<{ out: string; ms: number }> {
  const t0 = performance.now();
  const res = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, HELPER, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  assert.equal(res.code, 0, new TextDecoder().decode(res.stderr));
  return { out: new TextDecoder().decode(res.stdout).trim(), ms };
}

function item(id: number): CrashItem {
  return { id, worker: 0, pad: "" };
}

Deno.test({
  name: "list store: another process deletes and appends while this one holds the lease",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "list-process-" });
    try {
      const store = openListStore<CrashItem>(dir, TARGET.store);
      const { host, user } = TARGET;
      // Idle lease: the other process waits for it to lapse, then deletes.
      await store.append(host, user, [0, 1, 2, 3, 4].map(item));
      assert.equal((await helper("delete", dir)).out, "deleted");
      await assert.rejects(Deno.stat(listPath(dir)), Deno.errors.NotFound);
      assert.equal(await store.count(host, user), 0);
      await store.append(host, user, [0, 1, 2].map(item));
      // The other process appends after this one's appends; this one sees them.
      assert.equal((await helper("add", dir, "100", "4")).out, "added");
      assert.deepEqual(
        (await store.range(host, user, 0, 100)).map((it) => it.id),
        [0, 1, 2, 100, 101, 102, 103],
      );
      await store.append(host, user, [item(5)]);
      assert.equal(await store.count(host, user), 8);

      // Busy lease: appends never pause, yet the delete gets in within the lease's limit.
      let running = true;
      let next = 1000;
      const appending = Promise.all([0, 1, 2].map(async () => {
        while (running) await store.append(host, user, [item(next++)]);
      }));
      await new Promise((r) => setTimeout(r, 50));
      const deleted = await helper("delete", dir);
      running = false;
      await appending;
      assert.equal(deleted.out, "deleted");
      // Process start-up (~100s of ms; seconds when the whole suite runs in parallel on two
      // cores: 8 s was seen) plus at most one lease.
      assert.ok(deleted.ms < LEASE_MAX_MS + 15_000, `delete took ${deleted.ms} ms`);
      const left = (await store.range(host, user, 0, 1e9)).map((it) => it.id);
      assert.ok(left.every((id) => id >= 1000), "nothing from before the delete survives");
      assert.deepEqual(left, [...left].sort((a, b) => a - b));
      assert.ok(left.length < next - 1000, "appends before the delete went with the list");
      // The file this process recreated after the delete is whole, and so is its index.
      await new Promise((r) => setTimeout(r, LEASE_IDLE_MS * 2));
      const { records, bad } = await scanRaw(listPath(dir));
      assert.deepEqual(bad, []);
      assert.deepEqual(records.map((r) => JSON.parse(r.json).id), left);
      assert.deepEqual(
        (await readIndex(listPath(dir).replace(/\.list$/, ".lidx"))).ends,
        records.map((r) => r.end),
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
