import { DEFAULT_LIMITS } from "../../lib/limits.ts";
import assert from "node:assert/strict";
import { eventually } from "../_eventually.ts";
import { createAccountHub, PIPELINE_MAX } from "../../lib/shell/account_hub.ts";
import { createRegistry } from "../../lib/shell/registry.ts";
import { getLogger } from "../../lib/log.ts";
import { type ArchivedMessage, type ArchivePrefs, newArchiveId } from "../../lib/core/archive.ts";
import type { AccountOp, Event } from "../../lib/core/types.ts";
import { newSession, type Roster, type Session } from "../../lib/core/session.ts";
import { openAccountStore } from "../../lib/storage/accounts.ts";
import { openKeyvalStore } from "../../lib/storage/file/datamanager.ts";
import { openListStore } from "../../lib/storage/file/list_store.ts";
import { listArchiveStore, openArchiveStore } from "../../lib/storage/file/archive.ts";
import { openOfflineStore } from "../../lib/storage/offline.ts";
import type { ArchiveStore } from "../../lib/storage/mod.ts";
import { elem, type Element, stanza, withAttrs } from "../../lib/xml/element.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";

const NOW = 1_700_000_000_000;

Deno.test("account hub: the archive's newest stamp is read before the first archived message, not at load", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const accounts = openAccountStore(dir);
    await accounts.create("h", "juliet", "secret");
    const list = openListStore<ArchivedMessage>(dir, "archive", { ffi: "off" });
    const archive = listArchiveStore(list);
    // An item stamped later than the clock: new stamps must not go below it.
    const future = NOW + 60_000;
    const old = stanza("message", { to: "romeo@h", type: "chat" }, [elem("body", {}, ["hi"])]);
    await archive.append("h", "juliet", [
      { id: newArchiveId(future, "x"), ts: future, peer: "romeo@h", stanza: old },
    ]);
    let reads = 0;
    const counted: ArchiveStore = {
      ...archive,
      metadata: (host, user) => (reads++, archive.metadata(host, user)),
    };
    const registry = createRegistry();
    const hub = createAccountHub({
      accounts,
      rosters: openKeyvalStore(dir, "roster", { soleWriter: true }),
      offline: openOfflineStore(dir, { soleWriter: true, ffi: "off" }),
      archive: counted,
      prefs: openKeyvalStore(dir, "archive_prefs", { soleWriter: true }),
      openStore: (name) => openKeyvalStore(dir, name, { soleWriter: true }),
      registry,
      ctx: {
        now: () => NOW,
        newId: () => "id",
        resourcesOf: registry.resourcesOf,
        limits: { ...DEFAULT_LIMITS, offlineMessages: 100 },
        archive: { enabled: true, policy: "always" },
        random: () => "r",
      },
      route: () => {},
      log: getLogger("test"),
    });
    const rosterGet = stanza("iq", { type: "get", id: "1", from: "juliet@h/r" }, [
      elem("query", { xmlns: "jabber:iq:roster" }),
    ]);
    hub.submit("juliet@h", { kind: "roster-get", iq: rosterGet });
    await hub.idle();
    assert.equal(reads, 0);

    const sent = stanza("message", { from: "juliet@h/r", to: "romeo@h", type: "chat" }, [
      elem("body", {}, ["again"]),
    ]);
    hub.submit("juliet@h", { kind: "outgoing-message", stanza: sent });
    hub.submit("juliet@h", { kind: "outgoing-message", stanza: sent });
    await hub.idle();
    assert.equal(reads, 1);
    const items = await list.range("h", "juliet", 0, 10);
    assert.deepEqual(items.map((i) => i.ts), [future, future, future]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- One failing operation never drops its neighbours ----

const ERR = "urn:ietf:params:xml:ns:xmpp-stanzas";

/** A hub over real stores in `dir`, recording what it routes; `over` replaces deps. */
function testHub(
  dir: string,
  over: Partial<Parameters<typeof createAccountHub>[0]> = {},
) {
  const routed: string[] = [];
  const registry = createRegistry();
  const deps = {
    accounts: openAccountStore(dir),
    rosters: openKeyvalStore<Roster>(dir, "roster", { soleWriter: true }),
    offline: openOfflineStore(dir, { soleWriter: true, ffi: "off" }),
    archive: openArchiveStore(dir, { ffi: "off" }),
    prefs: openKeyvalStore<ArchivePrefs>(dir, "archive_prefs", { soleWriter: true }),
    openStore: (name: string) => openKeyvalStore<unknown>(dir, name, { soleWriter: true }),
    registry,
    ctx: {
      now: () => NOW,
      newId: () => "id",
      resourcesOf: registry.resourcesOf,
      limits: { ...DEFAULT_LIMITS, offlineMessages: 100 },
      archive: { enabled: false, policy: "always" as const },
      random: () => "r",
    },
    route: (el: Element) => void routed.push(serializeTop(el)),
    log: getLogger("test"),
    ...over,
  };
  return { hub: createAccountHub(deps), routed, deps };
}

/** {@link testHub} with archiving on and no session online. */
function archivingHub(dir: string, over: Partial<Parameters<typeof createAccountHub>[0]> = {}) {
  return testHub(dir, {
    ...over,
    ctx: {
      now: () => NOW,
      newId: () => "id",
      resourcesOf: () => [],
      limits: DEFAULT_LIMITS,
      archive: { enabled: true, policy: "always" },
      random: () => "r",
    },
  });
}

const chat = (id: string, from = "romeo@h/r") =>
  stanza("message", { from, to: "juliet@h", id, type: "chat" }, [elem("body", {}, [id])]);
const vcardGet = (id: string) =>
  stanza("iq", { type: "get", id, from: "romeo@h/r", to: "juliet@h" }, [
    elem("vCard", { xmlns: "vcard-temp" }),
  ]);
const rosterSet = (id: string, jid: string) =>
  stanza("iq", { type: "set", id, from: "juliet@h/r", to: "juliet@h" }, [
    elem("query", { xmlns: "jabber:iq:roster" }, [elem("item", { jid })]),
  ]);
const iqError = (id: string, to: string) =>
  `<iq type="error" id="${id}" from="juliet@h" to="${to}">` +
  `<error type="cancel"><internal-server-error xmlns="${ERR}"/></error></iq>`;

async function storedIds(dir: string): Promise<string[]> {
  const stored = await openOfflineStore(dir, { ffi: "off" }).all("h", "juliet");
  return stored.map((m) => m.attrs.id!);
}

async function withTemp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("account hub: an op whose reducer throws gets internal-server-error and the queue goes on", () =>
  withTemp(async (dir) => {
    const { hub, routed, deps } = testHub(dir);
    await deps.accounts.create("h", "juliet", "pw");
    hub.submit("juliet@h", { kind: "offline-message", stanza: chat("m1") });
    // A change the reducer cannot read: it throws.
    const bad = { kind: "roster-set", iq: rosterSet("bad", "x@h"), change: undefined } as const;
    hub.submit("juliet@h", bad as unknown as AccountOp);
    hub.submit("juliet@h", { kind: "offline-message", stanza: chat("m2") });
    await hub.idle();
    assert.deepEqual(routed, [iqError("bad", "juliet@h/r")]);
    assert.deepEqual(await storedIds(dir), ["m1", "m2"]);
    assert.equal(hub.queueLength("juliet@h"), 0);
  }));

Deno.test("account hub: a kept place holds the ops behind it until filled; a given-up one lets them go", () =>
  withTemp(async (dir) => {
    const { hub, deps } = testHub(dir);
    await deps.accounts.create("h", "juliet", "pw");
    // m1 keeps its place (it is on its way through its sender's archive); m2 arrives after.
    const place = hub.reserve("juliet@h");
    const m2 = hub.submit("juliet@h", { kind: "offline-message", stanza: chat("m2") });
    let m2Done = false;
    m2.then(() => (m2Done = true));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(m2Done, false, "m2 waits behind the kept place");
    // The kept place is at the head of the queue, being waited on; m2 is queued.
    assert.equal(hub.queueLength("juliet@h"), 1);
    await place.fill({ kind: "offline-message", stanza: chat("m1") });
    await m2;
    assert.deepEqual(await storedIds(dir), ["m1", "m2"]);

    // Given up: what queued behind it goes on; a fill after that still runs, at the end.
    const dropped = hub.reserve("juliet@h");
    const m3 = hub.submit("juliet@h", { kind: "offline-message", stanza: chat("m3") });
    dropped.cancel();
    await m3;
    await dropped.fill({ kind: "offline-message", stanza: chat("m4") });
    await hub.idle();
    assert.deepEqual(await storedIds(dir), ["m1", "m2", "m3", "m4"]);
    assert.equal(hub.queueLength("juliet@h"), 0);
  }));

Deno.test("account hub: an account that cannot be loaded answers each queued op, then loads again", () =>
  withTemp(async (dir) => {
    const accounts = openAccountStore(dir);
    await accounts.create("h", "juliet", "pw");
    let failures = 3;
    const { hub, routed } = testHub(dir, {
      accounts: {
        ...accounts,
        exists: (host, user) =>
          failures-- > 0 ? Promise.reject(new Error("disk on fire")) : accounts.exists(host, user),
      },
    });
    hub.submit("juliet@h", { kind: "offline-message", stanza: chat("m1") });
    hub.submit("juliet@h", { kind: "module-iq", iq: vcardGet("v1") });
    hub.submit("juliet@h", {
      kind: "probe",
      stanza: stanza("presence", { type: "probe", from: "romeo@h", to: "juliet@h" }),
    });
    hub.submit("juliet@h", { kind: "offline-message", stanza: chat("m2") });
    await hub.idle();
    assert.deepEqual(routed, [
      `<message type="error" id="m1" from="juliet@h" to="romeo@h/r">` +
      `<error type="cancel"><internal-server-error xmlns="${ERR}"/></error></message>`,
      iqError("v1", "romeo@h/r"),
    ]);
    // The probe was the third failure (dropped: presence); the fourth op found the account.
    assert.deepEqual(await storedIds(dir), ["m2"]);
  }));

Deno.test("account hub: a store that fails answers its op once, and the cache is read again", () =>
  withTemp(async (dir) => {
    const rosters = openKeyvalStore<Roster>(dir, "roster", { soleWriter: true });
    let fail = true;
    const { hub, routed, deps } = testHub(dir, {
      rosters: {
        ...rosters,
        set: (host, user, value) => {
          if (!fail) return rosters.set(host, user, value);
          fail = false;
          return Promise.reject(new Error("disk full"));
        },
      },
    });
    await deps.accounts.create("h", "juliet", "pw");
    const update = (jid: string) => ({ kind: "update" as const, jid, groups: [] });
    hub.submit("juliet@h", {
      kind: "roster-set",
      iq: rosterSet("r1", "a@h"),
      change: update("a@h"),
    });
    hub.submit("juliet@h", {
      kind: "roster-set",
      iq: rosterSet("r2", "b@h"),
      change: update("b@h"),
    });
    await hub.idle();
    // r1 got its error and nothing else (its result would have gone to the session).
    assert.deepEqual(routed, [iqError("r1", "juliet@h/r")]);
    // What failed to be stored is not kept as if it were.
    const stored = await rosters.get("h", "juliet");
    assert.deepEqual(Object.keys(stored?.items ?? {}), ["b@h"]);
  }));

Deno.test("account hub: a JID whose localpart cannot be stored is answered as one without an account", () =>
  withTemp(async (dir) => {
    const { hub, routed } = archivingHub(dir);
    const long = `${"a".repeat(241)}@h`;
    hub.submit(long, { kind: "incoming-message", stanza: withAttrs(chat("m1"), { to: long }) });
    hub.submit(long, { kind: "module-iq", iq: withAttrs(vcardGet("v1"), { to: long }) });
    await hub.idle();
    const unavailable = (name: string, id: string) =>
      `<${name} type="error" id="${id}" from="${long}" to="romeo@h/r">` +
      `<error type="cancel"><service-unavailable xmlns="${ERR}"/></error></${name}>`;
    assert.deepEqual(routed, [unavailable("message", "m1"), unavailable("iq", "v1")]);
  }));

Deno.test("account hub: removing an account deletes its data before the account record, and a failure answers once", () =>
  withTemp(async (dir) => {
    const accounts = openAccountStore(dir);
    await accounts.create("h", "juliet", "pw");
    const vcards = openKeyvalStore<unknown>(dir, "vcard");
    await vcards.set("h", "juliet", { photo: "x" });
    const seen: unknown[] = [];
    let fail = false;
    const { hub, routed } = testHub(dir, {
      accounts,
      removeAccount: async (host, user) => {
        // What is left of the account's module data when the record goes.
        seen.push(await vcards.get(host, user));
        if (fail) throw new Error("disk on fire");
        await accounts.remove(host, user);
      },
    });
    const remove = (id: string) =>
      stanza("iq", { type: "set", id, from: "juliet@h/r", to: "juliet@h" }, [
        elem("query", { xmlns: "jabber:iq:register" }, [elem("remove")]),
      ]);
    fail = true;
    hub.submit("juliet@h", { kind: "remove-account", iq: remove("x1") });
    await hub.idle();
    assert.deepEqual(routed, [iqError("x1", "juliet@h/r")]);
    assert.equal(await accounts.exists("h", "juliet"), true);
    fail = false;
    await vcards.set("h", "juliet", { photo: "y" });
    hub.submit("juliet@h", { kind: "remove-account", iq: remove("x2") });
    await hub.idle();
    assert.deepEqual(seen, [undefined, undefined]);
    assert.equal(await accounts.exists("h", "juliet"), false);
    assert.deepEqual(routed, [iqError("x1", "juliet@h/r")]);
  }));

Deno.test("account hub: a removed account's sessions all end, bound or not; the requester's result first", () =>
  withTemp(async (dir) => {
    const accounts = openAccountStore(dir);
    await accounts.create("h", "juliet", "pw");
    const { hub, routed, deps } = testHub(dir, {
      accounts,
      removeAccount: (host, user) => accounts.remove(host, user),
    });
    const events: [string, Event][] = [];
    const connect = (id: string, over: Partial<Session>) => {
      const s: Session = {
        ...newSession(id, { ip: "192.0.2.1", secure: true }),
        type: "c2s",
        host: "h",
        username: "juliet",
        ...over,
      };
      deps.registry.addConnection({
        id,
        session: () => s,
        dispatch: (ev) => void events.push([id, ev]),
        lastActivity: () => NOW,
      });
    };
    connect("requester", { resource: "r", fullJid: "juliet@h/r" });
    connect("phone", { resource: "phone", fullJid: "juliet@h/phone" });
    connect("unbound", {});
    connect("ended", { resource: "old", fullJid: "juliet@h/old", destroyed: true });
    connect("romeo", { username: "romeo", resource: "r", fullJid: "romeo@h/r" });
    hub.submit("juliet@h", {
      kind: "remove-account",
      iq: stanza("iq", { type: "set", id: "bye", from: "juliet@h/r", to: "juliet@h" }, [
        elem("query", { xmlns: "jabber:iq:register" }, [elem("remove")]),
      ]),
    });
    await hub.idle();
    assert.equal(await accounts.exists("h", "juliet"), false);
    assert.deepEqual(routed, []);
    assert.deepEqual(
      events.map(([id, ev]) => [
        id,
        ev.kind,
        ev.kind === "account-removed" && ev.reply !== undefined
          ? serializeTop(ev.reply)
          : undefined,
      ]),
      [
        [
          "requester",
          "account-removed",
          `<iq type="result" id="bye" from="juliet@h" to="juliet@h/r"/>`,
        ],
        ["phone", "account-removed", undefined],
        ["unbound", "account-removed", undefined],
      ],
    );
  }));

// ---- Durability before acknowledgement (issue 10) ----

Deno.test("account hub: a submitted op resolves only once its archive append and what it routed on are durable", () =>
  withTemp(async (dir) => {
    // The sender's archive append waits until released; so does the recipient's side, which
    // the route stands for here.
    let releaseAppend!: () => void;
    const appendGate = new Promise<void>((r) => (releaseAppend = r));
    const list = openListStore<ArchivedMessage>(dir, "archive", { ffi: "off" });
    const archive = listArchiveStore(list);
    const gatedArchive = {
      ...archive,
      append: async (...args: Parameters<typeof archive.append>) => {
        await appendGate;
        return await archive.append(...args);
      },
    };
    let releaseRecipient!: () => void;
    const recipient = new Promise<void>((r) => (releaseRecipient = r));
    const routedWith: unknown[] = [];
    const { hub: archiving, deps } = archivingHub(dir, {
      archive: gatedArchive,
      route: (el: Element, opts?: { readonly senderArchived?: boolean }) => {
        routedWith.push([el.attrs.id, opts?.senderArchived]);
        return recipient;
      },
    });
    await deps.accounts.create("h", "romeo", "pw");
    let resolved = false;
    const effects = archiving.submit("romeo@h", {
      kind: "outgoing-message",
      stanza: chat("m1"),
    }).then(() => (resolved = true));
    await new Promise((r) => setTimeout(r, 50));
    // Not routed on before the sender's copy is on disk, and not durable yet.
    assert.deepEqual(routedWith, []);
    assert.equal(resolved, false);
    releaseAppend();
    // Routed on once the append is durable (an fdatasync: no fixed time).
    await eventually(() => routedWith.length, (n) => n > 0);
    assert.deepEqual(routedWith, [["m1", true]]);
    assert.equal(resolved, false, "waits for what it routed on");
    assert.deepEqual((await list.range("h", "romeo", 0, 10)).map((i) => i.peer), ["juliet@h"]);
    releaseRecipient();
    await effects;
    assert.equal(resolved, true);
  }));

// ---- Archived messages of one account are pipelined ----

/** An archive whose appends each wait for a release of their own, by the stanza's id. */
function heldArchive(dir: string) {
  const archive = listArchiveStore(openListStore<ArchivedMessage>(dir, "archive", { ffi: "off" }));
  const started: string[] = [];
  const release = new Map<string, (err?: Error) => void>();
  const held: ArchiveStore = {
    ...archive,
    append: async (host, user, items) => {
      const id = items[0].stanza.attrs.id!;
      started.push(id);
      const err = await new Promise<Error | undefined>((r) => release.set(id, r));
      if (err !== undefined) throw err;
      return await archive.append(host, user, items);
    },
  };
  return { held, started, release: (id: string, err?: Error) => release.get(id)!(err) };
}

const sentBy = (id: string) =>
  stanza("message", { from: "romeo@h/r", to: "juliet@h", id, type: "chat" }, [
    elem("body", {}, [id]),
  ]);

Deno.test("account hub: an account's next message is appended before the last is durable; each goes on in order once durable", () =>
  withTemp(async (dir) => {
    const { held, started, release } = heldArchive(dir);
    const { hub, routed, deps } = archivingHub(dir, { archive: held });
    await deps.accounts.create("h", "romeo", "pw");
    const done: string[] = [];
    for (const id of ["m1", "m2", "m3"]) {
      hub.submit("romeo@h", { kind: "outgoing-message", stanza: sentBy(id) })
        .then(() => done.push(id));
    }
    // All three appends are under way together (one sync can take them all)...
    await eventually(() => started.length, (n) => n === 3);
    assert.deepEqual(started, ["m1", "m2", "m3"]);
    assert.equal(routed.length, 0);
    // ...and none goes on before the ones before it: m2 durable first still waits for m1.
    release("m2");
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(routed.length, 0);
    release("m1");
    await eventually(() => routed.length, (n) => n === 2);
    assert.deepEqual(routed.map((x) => x.match(/id="(m\d)"/)?.[1]), ["m1", "m2"]);
    release("m3");
    await hub.idle();
    assert.deepEqual(routed.map((x) => x.match(/id="(m\d)"/)?.[1]), ["m1", "m2", "m3"]);
    assert.deepEqual(done, ["m1", "m2", "m3"]);
  }));

Deno.test("account hub: an op that writes another store waits until the messages before it went on", () =>
  withTemp(async (dir) => {
    const { held, started, release } = heldArchive(dir);
    const rosters = openKeyvalStore<Roster>(dir, "roster", { soleWriter: true });
    const order: string[] = [];
    const { hub, routed, deps } = archivingHub(dir, {
      archive: held,
      rosters: {
        ...rosters,
        set: (host, user, value) => (order.push("roster"), rosters.set(host, user, value)),
      },
      route: (el: Element) => void (order.push(`route ${el.attrs.id}`), routed.push("")),
    });
    await deps.accounts.create("h", "romeo", "pw");
    hub.submit("romeo@h", { kind: "outgoing-message", stanza: sentBy("m1") });
    hub.submit("romeo@h", {
      kind: "roster-set",
      iq: stanza("iq", { type: "set", id: "r1", from: "romeo@h/r", to: "romeo@h" }, [
        elem("query", { xmlns: "jabber:iq:roster" }, [elem("item", { jid: "juliet@h" })]),
      ]),
      change: { kind: "update", jid: "juliet@h", groups: [] },
    });
    hub.submit("romeo@h", { kind: "outgoing-message", stanza: sentBy("m2") });
    await eventually(() => started.length, (n) => n === 1);
    await new Promise((r) => setTimeout(r, 20));
    // The roster write and the message after it wait for m1.
    assert.equal(order.length, 0);
    assert.deepEqual(started, ["m1"]);
    release("m1");
    await eventually(() => started.length, (n) => n === 2);
    release("m2");
    await hub.idle();
    assert.deepEqual(order, ["route m1", "roster", "route m2"]);
  }));

Deno.test("account hub: a message whose append fails is answered with an error in its place; the next goes on", () =>
  withTemp(async (dir) => {
    const { held, started, release } = heldArchive(dir);
    const { hub, routed, deps } = archivingHub(dir, { archive: held });
    await deps.accounts.create("h", "romeo", "pw");
    for (const id of ["m1", "m2"]) {
      hub.submit("romeo@h", { kind: "outgoing-message", stanza: sentBy(id) });
    }
    await eventually(() => started.length, (n) => n === 2);
    release("m2");
    release("m1", new Error("disk full"));
    await hub.idle();
    assert.equal(routed.length, 2);
    assert.match(
      routed[0],
      /^<message [^>]*type="error"[^>]*id="m1"|^<message [^>]*id="m1"[^>]*type="error"/,
    );
    assert.match(routed[0], /internal-server-error/);
    assert.match(routed[1], /id="m2"/);
    assert.doesNotMatch(routed[1], /type="error"/);
  }));

Deno.test("account hub: ops carried out behind later ones count in the queue's length, and at most PIPELINE_MAX wait so", () =>
  withTemp(async (dir) => {
    const { held, started, release } = heldArchive(dir);
    const { hub, routed, deps } = archivingHub(dir, { archive: held });
    await deps.accounts.create("h", "romeo", "pw");
    const n = PIPELINE_MAX + 5;
    for (let i = 0; i < n; i++) {
      hub.submit("romeo@h", { kind: "outgoing-message", stanza: sentBy(`m${i}`) });
    }
    await eventually(() => started.length, (k) => k === PIPELINE_MAX);
    await new Promise((r) => setTimeout(r, 20));
    // The next one waits for the first to be carried out; all count for backpressure but the
    // one being taken (out of the queue, as before pipelining).
    assert.equal(started.length, PIPELINE_MAX);
    assert.equal(hub.queueLength("romeo@h"), n - 1);
    for (let i = 0; i < n; i++) {
      await eventually(() => started.length, (k) => k > i);
      release(`m${i}`);
    }
    await hub.idle();
    assert.equal(routed.length, n);
    assert.deepEqual(routed.map((x) => x.match(/id="(m\d+)"/)?.[1]), started);
    assert.equal(hub.queueLength("romeo@h"), 0);
  }));

Deno.test("account hub: messages for an absent user are stored together and in order", () =>
  withTemp(async (dir) => {
    const offline = openOfflineStore(dir, { soleWriter: true, ffi: "off" });
    const started: string[] = [];
    const release = new Map<string, () => void>();
    const { hub, deps } = testHub(dir, {
      offline: {
        ...offline,
        // Written at once, in the order called; answered when released, as a sync would be.
        append: async (host, user, message) => {
          const written = offline.append(host, user, message);
          started.push(message.attrs.id!);
          await new Promise<void>((r) => release.set(message.attrs.id!, r));
          return await written;
        },
      },
    });
    await deps.accounts.create("h", "juliet", "pw");
    for (const id of ["o1", "o2", "o3"]) {
      hub.submit("juliet@h", { kind: "incoming-message", stanza: chat(id) });
    }
    // One sync can take all three.
    await eventually(() => started.length, (n) => n === 3);
    for (const id of ["o3", "o1", "o2"]) release.get(id)!();
    await hub.idle();
    assert.deepEqual(await storedIds(dir), ["o1", "o2", "o3"]);
    assert.equal(hub.queueLength("juliet@h"), 0);
  }));
