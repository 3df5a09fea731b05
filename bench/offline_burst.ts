/**
 * A burst of messages to one absent user through the account hub, on real stores with the data
 * directory's journal: how long the account takes to store them (XEP-0160) and the CPU per
 * message. Shows what pipelining an account's appends does (lib/shell/account_hub.ts): run the
 * same file on a copy of the base to compare.
 * `deno run -A bench/offline_burst.ts [--messages N] [--rounds N] [--dir PATH]`
 * @module
 */
import { cpuUsage } from "node:process";
import { DEFAULT_LIMITS } from "../lib/limits.ts";
import { createAccountHub } from "../lib/shell/account_hub.ts";
import { createRegistry } from "../lib/shell/registry.ts";
import { getLogger } from "../lib/log.ts";
import { openAccountStore } from "../lib/storage/accounts.ts";
import { openKeyvalStore } from "../lib/storage/file/datamanager.ts";
import { openArchiveStore } from "../lib/storage/file/archive.ts";
import { openListJournal } from "../lib/storage/file/journal.ts";
import { openOfflineStore } from "../lib/storage/offline.ts";
import { elem, stanza } from "../lib/xml/element.ts";

function arg(name: string, dflt: number): number {
  const at = Deno.args.indexOf(name);
  return at >= 0 ? Number(Deno.args[at + 1]) : dflt;
}

const MESSAGES = arg("--messages", 2000);
const ROUNDS = arg("--rounds", 3);
const dirAt = Deno.args.indexOf("--dir");
const PARENT = dirAt >= 0 ? Deno.args[dirAt + 1] : "/var/tmp";

async function round(): Promise<{ wall: number; cpu: number }> {
  const dir = await Deno.makeTempDir({ dir: PARENT, prefix: "offline_burst_" });
  try {
    const journal = await openListJournal(dir);
    if (journal === undefined) throw new Error("no journal");
    const registry = createRegistry();
    const accounts = openAccountStore(dir);
    await accounts.create("h", "juliet", "pw");
    const hub = createAccountHub({
      accounts,
      rosters: openKeyvalStore(dir, "roster", { soleWriter: true }),
      offline: openOfflineStore(dir, { soleWriter: true }),
      archive: openArchiveStore(dir),
      prefs: openKeyvalStore(dir, "archive_prefs", { soleWriter: true }),
      openStore: (name) => openKeyvalStore(dir, name, { soleWriter: true }),
      registry,
      ctx: {
        now: () => Date.now(),
        newId: () => crypto.randomUUID(),
        resourcesOf: registry.resourcesOf,
        limits: { ...DEFAULT_LIMITS, offlineMessages: MESSAGES + 1 },
        archive: { enabled: false, policy: "always" },
        random: () => crypto.randomUUID().slice(0, 8),
      },
      route: () => {},
      log: getLogger("bench"),
    });
    const message = (i: number) =>
      stanza("message", { from: "romeo@h/r", to: "juliet@h", id: `m${i}`, type: "chat" }, [
        elem("body", {}, [`message ${i} of the burst, about as long as a chat line is`]),
      ]);
    // The account loaded and the code warm before the clock starts.
    await hub.submit("juliet@h", { kind: "incoming-message", stanza: message(-1) });
    const t0 = performance.now();
    const c0 = cpuUsage();
    const all = [];
    for (let i = 0; i < MESSAGES; i++) {
      all.push(hub.submit("juliet@h", { kind: "incoming-message", stanza: message(i) }));
    }
    await Promise.all(all);
    const c = cpuUsage(c0);
    const wall = performance.now() - t0;
    await hub.idle();
    await journal.close();
    return { wall, cpu: (c.user + c.system) / MESSAGES };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const rounds = [];
for (let r = 0; r < ROUNDS; r++) rounds.push(await round());
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(
  `messages=${MESSAGES}: stored in ${median(rounds.map((r) => r.wall)).toFixed(0)} ms ` +
    `[${rounds.map((r) => r.wall.toFixed(0)).join(" ")}], CPU µs/message ` +
    `${median(rounds.map((r) => r.cpu)).toFixed(1)} [${
      rounds.map((r) => r.cpu.toFixed(1)).join(" ")
    }]`,
);
