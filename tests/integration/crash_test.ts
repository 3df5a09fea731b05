/**
 * End-to-end durability (issue 10): two pairs of clients send each other messages with receipt
 * requests at full speed while the server is killed with SIGKILL at random moments and started
 * again on the same data. Every message a recipient got must then be in both archives (the
 * sender's and the recipient's) exactly once, in the order it was sent, and every list file must
 * keep the block invariant. `CRASH_CYCLES` sets the number of kills (default 3; `deno task
 * bench:crash` runs many more and prints the counts).
 * @module
 */
import assert from "node:assert/strict";
import { openAccountStore } from "../../lib/storage/accounts.ts";
import { openListStore } from "../../lib/storage/list_store.ts";
import type { ArchivedMessage } from "../../lib/mam.ts";
import { child, elem, stanza, text } from "../../lib/xml/element.ts";
import { RawClient } from "./_raw_client.ts";
import { type ServerProcess, startServerProcess, writeConfig } from "./_process.ts";
import { misplaced, prng, scanRaw } from "../storage/_list_helpers.ts";

const PAIRS: readonly (readonly [string, string])[] = [["alice", "bob"], ["carol", "dave"]];
const USERS = PAIRS.flat();

/** What one run of kills found. */
export interface CrashReport {
  readonly cycles: number;
  readonly sent: number;
  readonly delivered: number;
  /** Delivered messages missing from the sender's / recipient's archive. */
  readonly missingSender: number;
  readonly missingRecipient: number;
  /** Archive entries that appear more than once. */
  readonly duplicates: number;
  /** Archives whose messages from one sender are out of order. */
  readonly outOfOrder: number;
  /** List records that cross a block boundary. */
  readonly misplaced: number;
}

/** One client's loop: sends `<user>-<n>` to its peer, reads what comes, until stopped. */
function runClient(
  c: RawClient,
  user: string,
  peer: string,
  next: { n: number },
  delivered: Set<string>,
  sent: Set<string>,
): { stop(): void; done: Promise<void> } {
  let stopped = false;
  const reading = (async () => {
    while (!c.closed) {
      const ev = await c.event(500);
      if (ev?.kind !== "stanza") continue;
      const st = ev.stanza;
      if (st.name !== "message") continue;
      const body = child(st, "body");
      if (body !== undefined) {
        delivered.add(text(body));
        // Answer the receipt request as a client would (XEP-0184).
        const id = st.attrs.id;
        if (id !== undefined && st.attrs.from !== undefined) {
          c.send(stanza("message", { to: st.attrs.from, id: `r-${id}` }, [
            elem("received", { xmlns: "urn:xmpp:receipts", id }),
          ]));
        }
      }
    }
  })();
  const writing = (async () => {
    while (!stopped && !c.closed) {
      for (let i = 0; i < 5; i++) {
        const id = `${user}-${next.n++}`;
        sent.add(id);
        c.send(stanza("message", { to: `${peer}@localhost`, type: "chat", id }, [
          elem("body", {}, [id]),
          elem("request", { xmlns: "urn:xmpp:receipts" }),
        ]));
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    stop: () => {
      stopped = true;
    },
    done: Promise.all([reading, writing]).then(() => {}),
  };
}

async function connect(port: number, user: string): Promise<RawClient> {
  const c = await RawClient.connect(port);
  await c.login(user, "pw");
  await c.bind("r");
  c.send(stanza("presence", {}));
  return c;
}

/** Kills the server `cycles` times at random moments under load; checks the archives. */
export async function crashRun(
  opts: { readonly cycles: number; readonly seed: number; readonly onCycle?: (i: number) => void },
): Promise<CrashReport> {
  const rand = prng(opts.seed);
  const dir = await Deno.makeTempDir({ prefix: "xmpp-crash-" });
  const dataDir = `${dir}/data`;
  const accounts = openAccountStore(dataDir);
  for (const u of USERS) await accounts.create("localhost", u, "pw");
  const config = await writeConfig(dataDir, [`archive_policy = "always"`]);
  const delivered = new Set<string>();
  const sent = new Set<string>();
  const counters = new Map(USERS.map((u) => [u, { n: 0 }]));
  let server: ServerProcess | undefined;
  try {
    for (let cycle = 0; cycle < opts.cycles; cycle++) {
      server = await startServerProcess(config);
      const clients = await Promise.all(USERS.map((u) => connect(server!.port, u)));
      const loops = clients.map((c, i) => {
        const user = USERS[i];
        const peer = PAIRS.flatMap(([a, b]) => a === user ? [b] : b === user ? [a] : [])[0];
        return runClient(c, user, peer, counters.get(user)!, delivered, sent);
      });
      await new Promise((r) => setTimeout(r, 150 + rand() * 900));
      await server.kill();
      for (const l of loops) l.stop();
      for (const c of clients) c.cut();
      await Promise.all(loops.map((l) => l.done));
      opts.onCycle?.(cycle);
    }
    // A last clean start and stop: recovery at open, then nothing in flight.
    server = await startServerProcess(config);
    await server.stop();
    server = undefined;

    const archive = openListStore<ArchivedMessage>(dataDir, "archive");
    let missingSender = 0;
    let missingRecipient = 0;
    let duplicates = 0;
    let outOfOrder = 0;
    let crossing = 0;
    /** Per archive owner: body -> count, and the order of each sender's sequence numbers. */
    const seen = new Map<string, Map<string, number>>();
    for (const u of USERS) {
      const items = await archive.range("localhost", u, 0, await archive.count("localhost", u));
      const counts = new Map<string, number>();
      const lastSeq = new Map<string, number>();
      let disordered = false;
      for (const item of items) {
        const body = child(item.stanza, "body");
        if (body === undefined) continue;
        const id = text(body);
        counts.set(id, (counts.get(id) ?? 0) + 1);
        const dash = id.lastIndexOf("-");
        const from = id.slice(0, dash);
        const seq = Number(id.slice(dash + 1));
        if (seq <= (lastSeq.get(from) ?? -1)) disordered = true;
        lastSeq.set(from, seq);
      }
      for (const n of counts.values()) if (n > 1) duplicates += n - 1;
      if (disordered) outOfOrder++;
      seen.set(u, counts);
      const { records } = await scanRaw(`${dataDir}/localhost/archive/${u}.list`);
      crossing += misplaced(records).length;
    }
    for (const id of delivered) {
      const sender = id.slice(0, id.lastIndexOf("-"));
      const recipient = PAIRS.flatMap(([a, b]) => a === sender ? [b] : b === sender ? [a] : [])[0];
      if ((seen.get(sender)?.get(id) ?? 0) === 0) missingSender++;
      if ((seen.get(recipient)?.get(id) ?? 0) === 0) missingRecipient++;
    }
    return {
      cycles: opts.cycles,
      sent: sent.size,
      delivered: delivered.size,
      missingSender,
      missingRecipient,
      duplicates,
      outOfOrder,
      misplaced: crossing,
    };
  } finally {
    await server?.kill();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(config).catch(() => {});
  }
}

Deno.test({
  name: "SIGKILL under load: every delivered message is in both archives once, in order",
  // TODO(#10): the sender's copy is archived beside the delivery, not before it.
  ignore: true,
}, async () => {
  const cycles = Number(Deno.env.get("CRASH_CYCLES") ?? "3");
  const seed = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 100000);
  const r = await crashRun({ cycles, seed });
  const why = `seed ${seed}: ${JSON.stringify(r)}`;
  assert.ok(r.delivered > 0, why);
  assert.equal(r.missingSender, 0, why);
  assert.equal(r.missingRecipient, 0, why);
  assert.equal(r.duplicates, 0, why);
  assert.equal(r.outOfOrder, 0, why);
  assert.equal(r.misplaced, 0, why);
});
