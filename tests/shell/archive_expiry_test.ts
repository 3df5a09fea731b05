import assert from "node:assert/strict";
import { type ArchivedMessage, newArchiveId } from "../../lib/core/archive.ts";
import { expireArchives } from "../../lib/shell/archive_expiry.ts";
import { listArchiveStore } from "../../lib/storage/file/archive.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { stanza } from "../../lib/xml/element.ts";

const DAY = 86_400_000;

function message(ts: number, n: number): ArchivedMessage {
  return {
    id: newArchiveId(ts, `r${n}`),
    ts,
    peer: "bob@localhost/b",
    stanza: stanza("message", { type: "chat", to: "bob@localhost" }, [`${n}`]),
  };
}

Deno.test("archive expiry drops by age and by count, per user, and keeps the rest", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-expiry-" });
  try {
    const store = openListStore<ArchivedMessage>(dir, "archive");
    const now = Date.UTC(2026, 10, 26);
    // alice: 30 messages, one a day for 30 days; carol: 5 recent ones.
    await store.append(
      "localhost",
      "alice",
      Array.from({ length: 30 }, (_, i) => message(now - (30 - i) * DAY, i)),
    );
    await store.append(
      "localhost",
      "carol",
      Array.from({ length: 5 }, (_, i) => message(now - 1000 + i, i)),
    );
    const r = await expireArchives(listArchiveStore(store), ["localhost"], {
      now,
      expiresAfter: 7 * 86_400,
      maxItems: 4,
    });
    // alice: older than 7 days (23 of them) and then the count cap (keep the newest 4);
    // carol: only the count cap (drop 1).
    assert.deepEqual(r, { users: 2, removed: 26 + 1 });
    const alice = await store.range("localhost", "alice", 0, 100);
    assert.deepEqual(alice.map((m) => m.stanza.children[0]), ["26", "27", "28", "29"]);
    const carol = await store.range("localhost", "carol", 0, 100);
    assert.deepEqual(carol.map((m) => m.stanza.children[0]), ["1", "2", "3", "4"]);
    // A second pass has nothing left to do.
    assert.deepEqual(
      await expireArchives(listArchiveStore(store), ["localhost"], {
        now,
        expiresAfter: 7 * 86_400,
        maxItems: 4,
      }),
      { users: 0, removed: 0 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("archive expiry with never keeps old messages and still caps the count", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-expiry-" });
  try {
    const store = openListStore<ArchivedMessage>(dir, "archive");
    const now = Date.UTC(2026, 10, 26);
    await store.append(
      "localhost",
      "alice",
      Array.from({ length: 10 }, (_, i) => message(now - 400 * DAY + i, i)),
    );
    const r = await expireArchives(listArchiveStore(store), ["localhost"], {
      now,
      expiresAfter: Infinity,
      maxItems: 8,
    });
    assert.deepEqual(r, { users: 1, removed: 2 });
    assert.equal(await store.count("localhost", "alice"), 8);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
