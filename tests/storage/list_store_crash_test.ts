import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { encodePathPart, storeDir } from "../../lib/storage/file/datamanager.ts";
import { type CrashItem, TARGET } from "./_list_appender.ts";
import { misplaced, prng, readIndex, scanRaw } from "./_list_helpers.ts";

const HELPER = fromFileUrl(new URL("./_list_appender.ts", import.meta.url));
const CONFIG = fromFileUrl(new URL("../../deno.json", import.meta.url));

function listPath(dir: string): string {
  return join(storeDir(dir, TARGET.host, TARGET.store), `${encodePathPart(TARGET.user)}.list`);
}

/** Reads lines from a stream until it ends; `onLine` sees each complete line. */
async function readLines(
  stream: ReadableStream<Uint8Array>,
  onLine: (line: string) => void,
): Promise<void> {
  const decoder = new TextDecoder();
  let buffered = "";
  for await (const chunk of stream) {
    buffered += decoder.decode(chunk, { stream: true });
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const line of lines) onLine(line);
  }
  // A last line without its newline was cut by the kill: not acknowledged.
}

Deno.test({
  name: "list store crash: SIGKILL at random moments loses no acknowledged item, shows no torn one",
  ignore: Deno.build.os === "windows",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "list-crash-" });
    try {
      const rand = prng(2024);
      const acked = new Set<number>();
      const runs = 50;
      let tornSeen = 0;
      for (let run = 0; run < runs; run++) {
        const child = new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--config", CONFIG, HELPER, "append", dir, String(run * 1e6), "4"],
          stdout: "piped",
          stderr: "piped",
        }).spawn();
        let first: () => void = () => {};
        const started = new Promise<void>((resolve) => first = resolve);
        const reading = readLines(child.stdout, (line) => {
          acked.add(Number(line));
          first();
        });
        const stderr = new Response(child.stderr).text();
        // The kill lands 20-200 ms after the first acknowledgement, mid-append more often than not.
        const early = await Promise.race([
          started.then(() => false),
          child.status.then(() => true),
        ]);
        if (early) assert.fail(`child exited before appending: ${await stderr}`);
        await new Promise((r) => setTimeout(r, 20 + Math.floor(rand() * 180)));
        child.kill("SIGKILL");
        const status = await child.status;
        await reading;
        await stderr;
        assert.equal(status.signal, "SIGKILL", `run ${run}`);

        // What a restarted server sees.
        const store = openListStore<CrashItem>(dir, TARGET.store);
        const items = await store.range(TARGET.host, TARGET.user, 0, 1e9);
        const ids = items.map((it) => it.id);
        const unique = new Set(ids);
        assert.equal(unique.size, ids.length, `run ${run}: an item appears twice`);
        const missing = [...acked].filter((id) => !unique.has(id));
        assert.deepEqual(missing, [], `run ${run}: acknowledged items lost`);
        for (let w = 0; w < 4; w++) {
          const mine = items.filter((it) => it.worker === w).map((it) => it.id);
          assert.deepEqual(mine, [...mine].sort((a, b) => a - b), `run ${run}: order`);
        }
        const st = await store.stat(TARGET.host, TARGET.user);
        assert.equal(st.count, items.length);
        assert.deepEqual(st.corrupt.filter((c) => c.kind !== "torn"), [], `run ${run}`);
        tornSeen += st.corrupt.length;
      }
      // The file as a whole: layout rule holds, and the index covers every record.
      const { records, bad } = await scanRaw(listPath(dir));
      assert.deepEqual(misplaced(records), []);
      const lastEnd = records.at(-1)!.end;
      assert.ok(bad.every((offset) => offset >= lastEnd), "damage only after the last record");
      const index = await readIndex(listPath(dir).replace(/\.list$/, ".lidx"));
      assert.deepEqual(index.ends, records.map((r) => r.end));
      assert.ok(acked.size > runs, `acknowledged ${acked.size} items over ${runs} runs`);
      console.log(
        `crash test: ${acked.size} acknowledged, ${records.length} stored, ` +
          `${tornSeen} torn tails seen and cut over ${runs} kills`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "list store: a full disk (RLIMIT_FSIZE → EFBIG) fails the append cleanly",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "list-full-" });
    try {
      // bash's `ulimit -f` counts KiB. SIGXFSZ is ignored so that writes past the limit fail
      // with EFBIG instead of killing the process; the ignore survives exec.
      const limitKiB = 64;
      const script = `trap '' XFSZ; ulimit -f ${limitKiB}; exec "$0" "$@"`;
      const out = await new Deno.Command("bash", {
        args: ["-c", script, Deno.execPath(), "run", "-A", "--config", CONFIG, HELPER, "fill", dir],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stderr = new TextDecoder().decode(out.stderr);
      assert.equal(out.code, 0, stderr);
      const report = JSON.parse(new TextDecoder().decode(out.stdout).trim());
      assert.match(report.error, /too large|EFBIG|No space/i);
      assert.equal(report.after, report.before, "no partial record left behind");
      assert.notEqual(report.again, "appended");
      assert.equal(report.afterAgain, report.before);
      assert.ok(report.before <= limitKiB * 1024 && report.before > limitKiB * 1024 - 4096);
      assert.equal(report.count, report.acked);
      assert.deepEqual(report.ids, Array.from({ length: report.acked }, (_, i) => i));

      // Space is back: the same list takes appends again and reads whole.
      const store = openListStore<CrashItem>(dir, TARGET.store);
      await store.append(TARGET.host, TARGET.user, [{ id: -1, worker: 0, pad: "after" }]);
      const items = await store.range(TARGET.host, TARGET.user, 0, 1e9);
      assert.deepEqual(items.map((it) => it.id), [...report.ids, -1]);
      const { records, bad } = await scanRaw(listPath(dir));
      assert.deepEqual(bad, []);
      assert.equal(records.length, report.acked + 1);
      assert.deepEqual((await store.stat(TARGET.host, TARGET.user)).corrupt, []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
