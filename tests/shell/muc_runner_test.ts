/**
 * The MUC runner's queues over real stores: a room's messages are reduced and their archive
 * appends started while earlier ones are being synced, and go out in order once durable.
 */
import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import { startMucRunner } from "../../lib/shell/muc_runner.ts";
import { getLogger } from "../../lib/log.ts";
import type { ArchivedMessage } from "../../lib/core/archive.ts";
import { DEFAULT_MUC_LIMITS, type StoredRoom } from "../../lib/services/muc/mod.ts";
import { NS_MUC, NS_MUC_OWNER } from "../../lib/services/muc/namespaces.ts";
import { openKeyvalStore } from "../../lib/storage/file/datamanager.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { listArchiveStore } from "../../lib/storage/file/archive.ts";
import type { ArchiveStore } from "../../lib/storage/mod.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { NS_DATA, NS_MAM } from "../../lib/xmpp/namespaces.ts";

const ROOM = "room@conference.h";

async function withRunner(
  fn: (t: {
    submit: (el: Element) => void;
    routed: Element[];
    started: string[];
    release: (id: string) => void;
    archive: ArchiveStore;
  }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    const archive = listArchiveStore(
      openListStore<ArchivedMessage>(dir, "archive", { ffi: "off" }),
    );
    const started: string[] = [];
    const releases = new Map<string, () => void>();
    // Written at once, in the order called; answered when released, as a sync would be.
    const held: ArchiveStore = {
      ...archive,
      append: async (host, user, items) => {
        const written = archive.append(host, user, items);
        const id = items[0].stanza.attrs.id!;
        started.push(id);
        await new Promise<void>((r) => releases.set(id, r));
        return await written;
      },
    };
    const routed: Element[] = [];
    let n = 0;
    const runner = await startMucRunner({
      store: openKeyvalStore<StoredRoom>(dir, "muc_rooms", { soleWriter: true }),
      archive: held,
      ctx: {
        domain: "conference.h",
        now: () => 1_700_000_000_000 + n,
        newId: () => `id${n++}`,
        limits: DEFAULT_MUC_LIMITS,
        creation: "anyone",
        admins: new Set(),
        isLocal: () => true,
        archiving: true,
      },
      occupantKey: new Uint8Array(32),
      joinsPerSecond: 100,
      route: (el) => void routed.push(el),
      maxQueue: 256,
      log: getLogger("test"),
    });
    await fn({
      submit: (el) => void runner.submit(el),
      routed,
      started,
      release: (id) => releases.get(id)!(),
      archive,
    });
    for (const r of releases.values()) r();
    await runner.shutdown();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const groupchat = (id: string) =>
  stanza("message", { from: "romeo@h/r", to: ROOM, type: "groupchat", id }, [
    elem("body", {}, [id]),
  ]);

/**
 * Romeo joins ROOM, creating it, and accepts the default configuration (an instant room,
 * XEP-0045 §10.1.2); resolves once the room answered.
 */
async function instantRoom(
  submit: (el: Element) => unknown,
  routed: readonly Element[],
): Promise<void> {
  submit(stanza("presence", { from: "romeo@h/r", to: `${ROOM}/Romeo` }, [
    elem("x", { xmlns: NS_MUC }),
  ]));
  submit(stanza("iq", { from: "romeo@h/r", to: ROOM, type: "set", id: "cfg" }, [
    elem("query", { xmlns: NS_MUC_OWNER }, [elem("x", { xmlns: NS_DATA, type: "submit" })]),
  ]));
  await eventually(() => routed.some((el) => el.attrs.id === "cfg"), (ok) => ok);
}

/** The ids of the groupchat messages with a body the room sent out (not its subject). */
const broadcastIds = (routed: readonly Element[]) =>
  routed.filter((el) =>
    el.name === "message" && el.attrs.type === "groupchat" &&
    el.children.some((c) => typeof c !== "string" && c.name === "body")
  ).map((el) => el.attrs.id);

Deno.test("muc runner: a room's next message is archived before the last is durable; they go out in order", () =>
  withRunner(async ({ submit, routed, started, release }) => {
    await instantRoom(submit, routed);
    for (const id of ["g1", "g2", "g3"]) submit(groupchat(id));
    // All three appends are under way together...
    await eventually(() => started.length, (k) => k === 3);
    assert.deepEqual(started, ["g1", "g2", "g3"]);
    assert.equal(broadcastIds(routed).length, 0);
    // ...and none is broadcast before the ones before it.
    release("g2");
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(broadcastIds(routed).length, 0);
    release("g1");
    await eventually(() => broadcastIds(routed).length, (k) => k === 2);
    release("g3");
    await eventually(() => broadcastIds(routed).length, (k) => k === 3);
    assert.deepEqual(broadcastIds(routed), ["g1", "g2", "g3"]);
  }));

Deno.test("muc runner: the stanza after a room archive query waits for it, so the query sees only what came before", () =>
  withRunner(async ({ submit, routed, started, release }) => {
    await instantRoom(submit, routed);
    submit(groupchat("g1"));
    submit(stanza("iq", { from: "romeo@h/r", to: ROOM, type: "set", id: "q" }, [
      elem("query", { xmlns: NS_MAM, queryid: "q" }),
    ]));
    submit(groupchat("g2"));
    await eventually(() => started.length, (k) => k === 1);
    await new Promise((r) => setTimeout(r, 20));
    // g2 is not even reduced while the query waits for g1.
    assert.deepEqual(started, ["g1"]);
    release("g1");
    await eventually(() => started.length, (k) => k === 2);
    release("g2");
    await eventually(() => routed.some((el) => el.attrs.id === "q"), (ok) => ok);
    // The page: g1 alone.
    const results = routed.filter((el) =>
      el.name === "message" &&
      el.children.some((c) => typeof c !== "string" && c.name === "result")
    );
    assert.equal(results.length, 1);
    assert.match(JSON.stringify(results[0]), /g1/);
    assert.doesNotMatch(JSON.stringify(results[0]), /g2/);
  }));
