import { NS_SM } from "../../lib/xmpp/namespaces.ts";
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
import { openListStore } from "../../lib/storage/file/list_store.ts";
import type { ArchivedMessage } from "../../lib/core/archive.ts";
import { child, childElements, elem, stanza, text } from "../../lib/xml/element.ts";
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

async function connect(server: ServerProcess, user: string): Promise<RawClient> {
  const c = await RawClient.connect(server.port);
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
      const clients = await Promise.all(USERS.map((u) => connect(server!, u)));
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

/** A fresh data dir with accounts, and its server configuration. */
async function crashSetup(users: readonly string[], extra: readonly string[]) {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-crash-" });
  const dataDir = `${dir}/data`;
  const accounts = openAccountStore(dataDir);
  for (const u of users) await accounts.create("localhost", u, "pw");
  return { dir, dataDir, config: await writeConfig(dataDir, extra) };
}

/** Bodies of the messages a client receives until `count` came or nothing did for `ms`. */
async function bodies(c: RawClient, count: number, ms = 3000): Promise<string[]> {
  const got: string[] = [];
  while (got.length < count) {
    const ev = await c.event(ms);
    if (ev === undefined) break;
    if (ev.kind !== "stanza" || ev.stanza.name !== "message") continue;
    const body = child(ev.stanza, "body");
    if (body !== undefined) got.push(text(body));
  }
  return got;
}

Deno.test("SIGKILL while a session hibernates (XEP-0198): its messages reach offline storage, resumption gets item-not-found", async () => {
  // Archiving off: nothing but the hibernating session holds the messages.
  const { dir, config } = await crashSetup(["alice", "bob"], ["archive_enabled = false"]);
  let server: ServerProcess | undefined = await startServerProcess(config);
  try {
    const bob = await connect(server, "bob");
    bob.write(`<enable xmlns='${NS_SM}' resume='true'/>`);
    const enabled = await bob.until("enabled", (el) => el.name === "enabled");
    await bob.ping();
    bob.cut(); // the connection drops: the session hibernates
    const alice = await connect(server, "alice");
    for (let i = 0; i < 20; i++) {
      alice.send(stanza("message", { to: "bob@localhost/r", type: "chat", id: `h${i}` }, [
        elem("body", {}, [`h${i}`]),
      ]));
    }
    await alice.ping();
    // Long enough for the session to stash what it was sent (each is an fdatasync).
    await new Promise((r) => setTimeout(r, 1000));
    await server.kill();
    alice.cut();

    server = await startServerProcess(config);
    assert.match(server.log(), /Moved 20 messages of sessions that were waiting to be resumed/);
    const again = await RawClient.connect(server.port);
    await again.login("bob", "pw");
    again.write(`<resume xmlns='${NS_SM}' previd='${enabled.attrs.id}' h='0'/>`);
    const failed = await again.next("resume answer");
    assert.equal(failed.name, "failed");
    assert.deepEqual(childElements(failed).map((e) => e.name), ["item-not-found"]);
    await again.bind("r2");
    again.send(stanza("presence", {}));
    const got = await bodies(again, 20);
    assert.deepEqual(got, Array.from({ length: 20 }, (_, i) => `h${i}`));
    again.cut();
  } finally {
    await server?.kill();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(config).catch(() => {});
  }
});

Deno.test("SIGKILL after <a/> (XEP-0198): every acknowledged message is in both archives", async () => {
  const seed = Number(Deno.env.get("CRASH_SEED") ?? Date.now() % 100000);
  const rand = prng(seed);
  const { dir, dataDir, config } = await crashSetup(["alice", "bob"], [
    `archive_policy = "always"`,
  ]);
  let server: ServerProcess | undefined;
  /** Every id some `<a h/>` covered. */
  const acknowledged: string[] = [];
  try {
    let next = 0;
    for (let cycle = 0; cycle < 3; cycle++) {
      server = await startServerProcess(config);
      const alice = await connect(server, "alice");
      alice.write(`<enable xmlns='${NS_SM}'/>`);
      await alice.until("enabled", (el) => el.name === "enabled");
      // h counts this stream's stanzas: the initial presence first, then the messages.
      const ids: string[] = ["(presence)"];
      let h = 0;
      let stop = false;
      const reading = (async () => {
        while (!alice.closed) {
          const ev = await alice.event(500);
          if (ev?.kind === "stanza" && ev.stanza.name === "a") {
            h = Math.max(h, Number(ev.stanza.attrs.h));
          }
        }
      })();
      const writing = (async () => {
        while (!stop && !alice.closed) {
          for (let i = 0; i < 5; i++) {
            const id = `a-${next++}`;
            ids.push(id);
            // To an offline user: the recipient's side is the archive and offline storage.
            alice.send(stanza("message", { to: "bob@localhost", type: "chat", id }, [
              elem("body", {}, [id]),
            ]));
          }
          alice.write(`<r xmlns='${NS_SM}'/>`);
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await new Promise((r) => setTimeout(r, 200 + rand() * 600));
      await server.kill();
      stop = true;
      alice.cut();
      await Promise.all([reading, writing]);
      acknowledged.push(...ids.slice(1, h));
    }
    server = await startServerProcess(config);
    await server.stop();
    server = undefined;
    assert.ok(acknowledged.length > 0, `seed ${seed}: nothing acknowledged`);
    const archive = openListStore<ArchivedMessage>(dataDir, "archive");
    const idsOf = async (u: string) =>
      new Set(
        (await archive.range("localhost", u, 0, await archive.count("localhost", u)))
          .map((i) => text(child(i.stanza, "body")!)),
      );
    const [alices, bobs] = [await idsOf("alice"), await idsOf("bob")];
    const missing = acknowledged.filter((id) => !alices.has(id) || !bobs.has(id));
    assert.deepEqual(missing, [], `seed ${seed}: ${acknowledged.length} acknowledged`);
  } finally {
    await server?.kill();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(config).catch(() => {});
  }
});

Deno.test({
  name: "a full disk for the sender's archive: the sender gets an error, nothing is delivered",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const { dir, dataDir, config } = await crashSetup(["alice", "bob"], [
      `archive_policy = "always"`,
    ]);
    // Alice's archive is just under the largest file the server may write (64 KiB): her next
    // append fails with EFBIG, as on a full disk, while Bob's small archive still takes his.
    const archive = openListStore<ArchivedMessage>(dataDir, "archive", { ffi: "off" });
    const filler = "x".repeat(3900);
    for (let i = 0; i < 15; i++) {
      await archive.append("localhost", "alice", [{
        id: `old${i}`,
        ts: 1_000 + i,
        peer: "bob@localhost",
        stanza: stanza("message", { type: "chat", to: "bob@localhost" }, [
          elem("body", {}, [filler]),
        ]),
      }]);
    }
    const before = await archive.count("localhost", "alice");
    let server: ServerProcess | undefined = await startServerProcess(config, { maxFileKiB: 64 });
    try {
      const bob = await connect(server, "bob");
      await bob.ping();
      const alice = await connect(server, "alice");
      alice.send(stanza("message", { to: "bob@localhost", type: "chat", id: "m1" }, [
        elem("body", {}, ["lost?"]),
      ]));
      const bounce = await alice.until("message", (el) => el.name === "message");
      assert.equal(bounce.attrs.type, "error");
      assert.equal(bounce.attrs.id, "m1");
      const error = child(bounce, "error")!;
      assert.deepEqual(childElements(error).map((e) => e.name), ["internal-server-error"]);
      // Nothing reached Bob: a ping round trip later he has had no message.
      assert.deepEqual(await bodies(bob, 1, 500), []);
      alice.cut();
      bob.cut();
      await server.stop();
      server = undefined;
      // Neither archive holds it: not delivered half-archived.
      assert.equal(await archive.count("localhost", "alice"), before);
      const bobs = await archive.range("localhost", "bob", 0, 100);
      assert.deepEqual(bobs.map((i) => i.stanza.attrs.id), []);
    } finally {
      await server?.kill();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      await Deno.remove(config).catch(() => {});
    }
  },
});
