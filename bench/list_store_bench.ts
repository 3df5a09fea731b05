/**
 * The list store: durable append throughput (1 and 32 concurrent appenders on one list, to show
 * group commit; one appender on each of 40 lists, each syncing its own file and through the
 * journal, as the server appends), trimming the oldest half of an archive by collapse versus copy, and page latency.
 *
 * `deno run -A bench/list_store_bench.ts` prints a table for archives of 10^4, 10^5 and 10^6
 * items (the last needs ~600 MB of disk for a few seconds; about 15 s in all here); `--quick`
 * leaves out 10^6. Data goes to a temp dir (the system one, or `--dir <path>` to put it on a
 * given filesystem). `deno bench -A` runs two small cases only.
 * @module
 */
import { join } from "node:path";
import { cpuUsage } from "node:process";
import { encodePathPart, storeDir } from "../lib/storage/file/datamanager.ts";
import { type FileListStore, openListStore } from "../lib/storage/file/list_store.ts";
import { openListJournal } from "../lib/storage/file/journal.ts";
import type { ShiftMethod } from "../lib/storage/file/trim.ts";

interface Msg {
  readonly id: number;
  readonly ts: number;
  readonly from: string;
  readonly body: string;
}

const HOST = "bench.example";
const STORE = "archive";
const BODY = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " +
  "incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud " +
  "exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat.";

/** An item of about 300 bytes as stored; `ts` increases with `id`. */
function msg(id: number): Msg {
  return {
    id,
    ts: 1_700_000_000_000 + id * 1000,
    from: `user${id % 97}@bench.example/res`,
    body: BODY,
  };
}

function listFiles(dir: string, user: string): { list: string; idx: string } {
  const base = join(storeDir(dir, HOST, STORE), encodePathPart(user));
  return { list: `${base}.list`, idx: `${base}.lidx` };
}

async function build(store: FileListStore<Msg>, user: string, n: number): Promise<void> {
  const batch = 10_000;
  for (let i = 0; i < n; i += batch) {
    await store.append(
      HOST,
      user,
      Array.from({ length: Math.min(batch, n - i) }, (_, j) => msg(i + j)),
    );
  }
}

/**
 * Items per second with `appenders` concurrent callers, each awaiting one item at a time, and
 * this process's CPU time (user + system, all threads) per item in µs.
 */
async function appendRate(
  dir: string,
  appenders: number,
  seconds: number,
): Promise<{ rate: number; cpu: number }> {
  const store = openListStore<Msg>(dir, STORE);
  const user = `append${appenders}`;
  let done = 0;
  const stop = performance.now() + seconds * 1000;
  const cpu0 = cpuUsage();
  await Promise.all(Array.from({ length: appenders }, async () => {
    while (performance.now() < stop) {
      await store.append(HOST, user, [msg(done)]);
      done++;
    }
  }));
  const cpu = cpuUsage(cpu0);
  return { rate: done / seconds, cpu: (cpu.user + cpu.system) / done };
}

/**
 * {@link appendRate} with one appender on each of `users` lists, syncing each file (without the
 * journal) or through the data directory's journal; a new directory each.
 */
async function manyListsRate(
  parent: string,
  users: number,
  journal: boolean,
  seconds: number,
): Promise<{ rate: number; cpu: number }> {
  const dir = await Deno.makeTempDir({ dir: parent, prefix: journal ? "journal-" : "files-" });
  const j = journal ? await openListJournal(dir) : undefined;
  const store = openListStore<Msg>(dir, STORE);
  let done = 0;
  const stop = performance.now() + seconds * 1000;
  const cpu0 = cpuUsage();
  await Promise.all(Array.from({ length: users }, async (_, u) => {
    while (performance.now() < stop) {
      await store.append(HOST, `user${u}`, [msg(done)]);
      done++;
    }
  }));
  const cpu = cpuUsage(cpu0);
  await j?.close();
  return { rate: done / seconds, cpu: (cpu.user + cpu.system) / done };
}

interface TrimResult {
  readonly ms: number;
  readonly method: ShiftMethod;
}

/** Builds one archive of `n` items, copies it, and trims the oldest half of each copy. */
async function trim(dir: string, n: number): Promise<{ collapse: TrimResult; copy: TrimResult }> {
  const template = join(dir, `t${n}`);
  await build(openListStore<Msg>(template, STORE), "u", n);
  const results: Record<string, TrimResult> = {};
  for (const ffi of ["auto", "off"] as const) {
    const target = join(dir, `${ffi}${n}`);
    const from = listFiles(template, "u");
    const to = listFiles(target, "u");
    await Deno.mkdir(storeDir(target, HOST, STORE), { recursive: true });
    await Deno.copyFile(from.list, to.list);
    await Deno.copyFile(from.idx, to.idx);
    // A live archive is on disk already; unsynced pages would be written back inside the trim.
    const copied = await Deno.open(to.list, { read: true, write: true });
    await copied.sync();
    copied.close();
    const store = openListStore<Msg>(target, STORE, { ffi });
    if (await store.count(HOST, "u") !== n) throw new Error("archive not built"); // loads the index
    const t0 = performance.now();
    const { method } = await store.shift(HOST, "u", n / 2);
    results[ffi] = { ms: performance.now() - t0, method };
    const first = await store.get(HOST, "u", 0);
    if (first?.id !== n / 2) throw new Error(`trim kept the wrong items: first is ${first?.id}`);
    await Deno.remove(target, { recursive: true });
  }
  return { collapse: results.auto, copy: results.off };
}

/** Mean latency in ms of the newest 20 items, and of lowerBound(ts) + 20 items from there. */
async function pages(dir: string, n: number): Promise<{ newest: number; byTime: number }> {
  const store = openListStore<Msg>(join(dir, `t${n}`), STORE);
  const count = await store.count(HOST, "u");
  const rounds = 200;
  let t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    const page = await store.range(HOST, "u", count - 20, count);
    if (page.length !== 20) throw new Error("short page");
  }
  const newest = (performance.now() - t0) / rounds;
  t0 = performance.now();
  for (let i = 0; i < rounds; i++) {
    const want = Math.floor(Math.random() * (count - 20));
    const at = await store.lowerBound(HOST, "u", msg(want).ts, (m) => m.ts);
    const page = await store.range(HOST, "u", at, at + 20);
    if (page[0].id !== want) throw new Error("lowerBound found the wrong item");
  }
  return { newest, byTime: (performance.now() - t0) / rounds };
}

async function main(args: readonly string[]): Promise<void> {
  const at = args.indexOf("--dir");
  const parent = at >= 0 ? args[at + 1] : undefined;
  const sizes = args.includes("--quick") ? [1e4, 1e5] : [1e4, 1e5, 1e6];
  const dir = await Deno.makeTempDir({ dir: parent, prefix: "list-bench-" });
  try {
    const fs = await new Deno.Command("stat", { args: ["-f", "-c", "%T", dir] }).output()
      .then((o) => new TextDecoder().decode(o.stdout).trim(), () => "unknown");
    console.log(`list store benchmark in ${dir} (${fs}), Deno ${Deno.version.deno}\n`);

    console.log("| durable append (fdatasync per batch) | items/s | CPU µs/item |");
    console.log("|---|---:|---:|");
    for (const appenders of [1, 32]) {
      const { rate, cpu } = await appendRate(dir, appenders, 3);
      console.log(
        `| ${appenders} appender${appenders > 1 ? "s" : ""}, 1 item each | ${rate.toFixed(0)} | ` +
          `${cpu.toFixed(0)} |`,
      );
    }
    for (const journal of [false, true]) {
      const { rate, cpu } = await manyListsRate(dir, 40, journal, 3);
      const how = journal ? "through the journal" : "each file synced";
      console.log(`| 40 lists, 1 appender each, ${how} | ${rate.toFixed(0)} | ${cpu.toFixed(0)} |`);
    }

    console.log("\n| trim oldest half | collapse | copy |");
    console.log("|---|---:|---:|");
    for (const n of sizes) {
      const r = await trim(dir, n);
      console.log(
        `| ${n.toExponential(0)} items (~${Math.round(n * 300 / 1e6)} MB) | ` +
          `${r.collapse.ms.toFixed(1)} ms (${r.collapse.method}) | ${
            r.copy.ms.toFixed(1)
          } ms (${r.copy.method}) |`,
      );
    }

    const largest = sizes[sizes.length - 1];
    const p = await pages(dir, largest);
    console.log(`\n| reads on ${largest.toExponential(0)} items | mean latency |`);
    console.log("|---|---:|");
    console.log(`| newest page (last 20) | ${(p.newest * 1000).toFixed(0)} µs |`);
    console.log(`| time range (lowerBound + 20) | ${(p.byTime * 1000).toFixed(0)} µs |`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// Small cases for `deno bench`; the full table needs `deno run`.
let benchDir: string | undefined;
globalThis.addEventListener("unload", () => {
  if (benchDir !== undefined) Deno.removeSync(benchDir, { recursive: true });
});
async function benchStore(): Promise<FileListStore<Msg>> {
  benchDir ??= await Deno.makeTempDir({ prefix: "list-bench-" });
  return openListStore<Msg>(benchDir, STORE);
}

Deno.bench("list store: durable append of one item", async () => {
  await (await benchStore()).append(HOST, "one", [msg(1)]);
});

Deno.bench("list store: newest page of 20", async (b) => {
  const store = await benchStore();
  if (await store.count(HOST, "page") === 0) await build(store, "page", 10_000);
  b.start();
  await store.range(HOST, "page", 9_980, 10_000);
  b.end();
});

if (import.meta.main) await main(Deno.args);
