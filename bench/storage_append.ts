/**
 * Micro-benchmark of the archive's append path as msg-archive drives it: one appender on each
 * of 40 lists (an account queue awaits each append), through the data directory's journal,
 * with items shaped like the server's `ArchivedMessage` (xmppbench's 64-character bodies).
 * Prints CPU µs per append (user + system, all threads) and, apart, what encoding an item
 * costs. `deno run -A bench/storage_append.ts [--appends N] [--lists N] [--rounds N]
 * [--dir PATH]`; run the same file on a copy of the base to compare.
 * @module
 */
import { cpuUsage } from "node:process";
import { openListStore } from "../lib/storage/file/list_store.ts";
import { openListJournal } from "../lib/storage/file/journal.ts";
import { encodeRecord } from "../lib/storage/file/format.ts";

const HOST = "bench.example";

function arg(name: string, dflt: number): number {
  const at = Deno.args.indexOf(name);
  return at >= 0 ? Number(Deno.args[at + 1]) : dflt;
}

const APPENDS = arg("--appends", 20_000);
const LISTS = arg("--lists", 40);
const ROUNDS = arg("--rounds", 5);
const dirAt = Deno.args.indexOf("--dir");
const PARENT = dirAt >= 0 ? Deno.args[dirAt + 1] : "/var/tmp";

/** An item as lib/account/account.ts archives an xmppbench message. */
function item(n: number, user: number): unknown {
  const ts = 1_790_000_000_000 + n;
  const peer = `u${user ^ 1}@${HOST}/xb`;
  return {
    id: `${ts.toString(36).padStart(9, "0")}${(n * 7919).toString(36).padStart(7, "0")}`,
    ts,
    peer,
    stanza: {
      name: "message",
      xmlns: "jabber:client",
      attrs: { to: `u${user ^ 1}@${HOST}`, type: "chat", id: `m${user}-${n}`, from: peer },
      children: [
        {
          name: "body",
          xmlns: "jabber:client",
          attrs: {},
          children: [`xb ${user} ${n} ${(ts / 1000).toFixed(3)} ${"x".repeat(24)}`],
        },
        { name: "request", xmlns: "urn:xmpp:receipts", attrs: {}, children: [] },
      ],
    },
  };
}

/** CPU time (µs) of this process's main thread, from /proc (Linux). */
function mainThreadCpu(): number {
  const stat = Deno.readTextFileSync(`/proc/self/task/${Deno.pid}/stat`);
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime, fields 14 and 15, in clock ticks (100 per second).
  return (Number(f[11]) + Number(f[12])) * 10_000;
}

async function round(): Promise<{ cpu: number; main: number; wall: number }> {
  const dir = await Deno.makeTempDir({ dir: PARENT, prefix: "storage_append_" });
  try {
    const journal = await openListJournal(dir);
    if (journal === undefined) throw new Error("no journal");
    // Options the base does not know are ignored there.
    const store = openListStore<unknown>(dir, "archive", { writeBehind: true } as never);
    // Warm-up: every list created and leased, the code compiled.
    await Promise.all(
      Array.from({ length: LISTS }, (_, u) => store.append(HOST, `u${u}`, [item(0, u)])),
    );
    let next = 0;
    const t0 = performance.now();
    const c0 = cpuUsage();
    const m0 = mainThreadCpu();
    await Promise.all(Array.from({ length: LISTS }, async (_, u) => {
      while (next < APPENDS) {
        const n = next++;
        await store.append(HOST, `u${u}`, [item(n, u)]);
      }
    }));
    const c = cpuUsage(c0);
    const main = mainThreadCpu() - m0;
    const wall = performance.now() - t0;
    await journal.close();
    return {
      cpu: (c.user + c.system) / APPENDS,
      main: main / APPENDS,
      wall: wall * 1000 / APPENDS,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function encodeCost(): number {
  const items = Array.from({ length: 1000 }, (_, i) => item(i, i % 40));
  let bytes = 0;
  for (let i = 0; i < 20_000; i++) bytes += encodeRecord(items[i % 1000]).length;
  const t0 = performance.now();
  for (let i = 0; i < 100_000; i++) bytes += encodeRecord(items[i % 1000]).length;
  const t = performance.now() - t0;
  if (bytes === 0) throw new Error("nothing encoded");
  return t * 1000 / 100_000;
}

const cpus: number[] = [];
const mains: number[] = [];
const walls: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const { cpu, main, wall } = await round();
  cpus.push(cpu);
  mains.push(main);
  walls.push(wall);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  `appends=${APPENDS} lists=${LISTS}: CPU µs/append median ${median(cpus).toFixed(2)} ` +
    `[${cpus.map((c) => c.toFixed(1)).join(" ")}], main thread ${median(mains).toFixed(2)} ` +
    `[${mains.map((c) => c.toFixed(1)).join(" ")}], wall µs/append ${median(walls).toFixed(2)}; ` +
    `encodeRecord ${encodeCost().toFixed(2)} µs`,
);
