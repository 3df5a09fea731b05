import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { CollapseError, collapseRange } from "../../lib/storage/file/fallocate.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { collapseCapableDir } from "./_list_helpers.ts";

const HELPER = fileURLToPath(new URL("./_list_appender.ts", import.meta.url));
const CONFIG = fileURLToPath(new URL("../../deno.json", import.meta.url));

/** Block `i` filled with the letter `a + i`, so where each byte came from is visible. */
function blocks(n: number): Uint8Array {
  const out = new Uint8Array(n * 4096);
  for (let i = 0; i < n; i++) out.fill(0x61 + i, i * 4096, (i + 1) * 4096);
  return out;
}

Deno.test("fallocate: collapseRange cuts whole blocks from the head on ext4/xfs", async () => {
  const dir = await collapseCapableDir();
  if (dir === undefined) {
    console.log("fallocate: no collapse-capable filesystem or no FFI here; skipped");
    // Then a file in the temp dir must be refused, not collapsed.
    const tmp = await Deno.makeTempFile();
    await Deno.writeFile(tmp, blocks(3));
    assert.notEqual(collapseRange(tmp, 4096), "ok");
    await Deno.remove(tmp);
    return;
  }
  try {
    const path = join(dir, "f");
    const data = blocks(5);
    await Deno.writeFile(path, data);
    assert.equal(collapseRange(path, 2 * 4096), "ok");
    assert.deepEqual(await Deno.readFile(path), data.subarray(2 * 4096));

    // What the filesystem refuses is "unsupported", never a throw: a length that is not a
    // multiple of the block size, or one reaching the end of the file.
    assert.equal(collapseRange(path, 100), "unsupported");
    assert.equal(collapseRange(path, 3 * 4096), "unsupported");
    assert.deepEqual(await Deno.readFile(path), data.subarray(2 * 4096), "refusals change nothing");

    // Real errors throw with errno (ENOENT = 2).
    assert.throws(
      () => collapseRange(join(dir, "missing"), 4096),
      (e: unknown) => e instanceof CollapseError && e.errno === 2,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "fallocate: tmpfs refuses, and the list store then copies",
  ignore: Deno.build.os !== "linux",
  async fn() {
    let onTmpfs: string | undefined;
    try {
      const out = await new Deno.Command("stat", { args: ["-f", "-c", "%T", "/dev/shm"] }).output();
      if (new TextDecoder().decode(out.stdout).trim() === "tmpfs") {
        onTmpfs = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "list-fallocate-" });
      }
    } catch {
      onTmpfs = undefined;
    }
    if (onTmpfs === undefined) {
      console.log("fallocate: no tmpfs at /dev/shm here; skipped");
      assert.equal(onTmpfs, undefined);
      return;
    }
    try {
      const path = join(onTmpfs, "f");
      await Deno.writeFile(path, blocks(3));
      const ffi = Deno.permissions.querySync({ name: "ffi" }).state === "granted";
      assert.equal(collapseRange(path, 4096), ffi ? "unsupported" : "unavailable");

      const store = openListStore<{ i: number; pad: string }>(onTmpfs, "archive");
      const items = Array.from({ length: 40 }, (_, i) => ({ i, pad: "z".repeat(300) }));
      await store.append("h", "u", items);
      assert.deepEqual(await store.shift("h", "u", 30), { method: "copy" });
      assert.deepEqual(await store.range("h", "u", 0, 100), items.slice(30));
    } finally {
      await Deno.remove(onTmpfs, { recursive: true });
    }
  },
});

Deno.test("fallocate: without --allow-ffi the answer is unavailable", async () => {
  const dir = await Deno.makeTempDir({ prefix: "list-fallocate-" });
  try {
    const path = join(dir, "f");
    await Deno.writeFile(path, blocks(3));
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-read",
        "--allow-write",
        "--allow-env",
        "--config",
        CONFIG,
        HELPER,
        "collapse",
        path,
        "4096",
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    assert.equal(new TextDecoder().decode(out.stdout).trim(), "unavailable");
    assert.equal((await Deno.stat(path)).size, 3 * 4096, "file untouched");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
