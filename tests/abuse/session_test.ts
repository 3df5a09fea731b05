import { NS_SM } from "../../lib/xmpp/namespaces.ts";
/**
 * Issue 9, per-session bounds against a real server: the block list (cap in items and bytes,
 * pushes to the resources that requested it), directed presence, the stream management queue
 * (bytes), resources and hibernating sessions per account, CSI's held bytes, and `msgoffline`
 * in the server's disco#info. Limits are lowered in the server's settings so that a few stanzas
 * reach them.
 * @module
 */
import assert from "node:assert/strict";
import {
  child,
  childElements,
  elem,
  type Element,
  serialize,
  stanza,
} from "../../lib/xml/element.ts";
import { NS_BLOCKING, NS_CSI, NS_DISCO_INFO, NS_STREAMS } from "../../lib/xmpp/namespaces.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { withServer } from "../integration/_server.ts";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const BASE = { require_encryption: false, archive_enabled: false };

let ids = 0;

/** Sends an iq (to the user's own account unless `to`) and returns its answer. */
async function iq(c: RawClient, type: "get" | "set", payload: Element, to?: string) {
  const id = `q${++ids}`;
  c.send(stanza("iq", { type, id, to }, [payload]));
  return await c.until(`the answer to ${id}`, (el) => el.name === "iq" && el.attrs.id === id);
}

/** The error condition of an error stanza, or its type when it is not one. */
function condition(el: Element): string {
  if (el.attrs.type !== "error") return el.attrs.type ?? "";
  const error = child(el, "error", el.xmlns);
  return childElements(error ?? elem("error"), STANZAS).find((e) => e.name !== "text")?.name ?? "?";
}

function errorType(el: Element): string | undefined {
  return child(el, "error", el.xmlns)?.attrs.type;
}

function block(...jids: string[]): Element {
  return elem("block", { xmlns: NS_BLOCKING }, jids.map((jid) => elem("item", { jid })));
}

function chat(to: string, body: string): Element {
  return stanza("message", { to, type: "chat", id: body }, [elem("body", {}, [body])]);
}

function bodyOf(el: Element): string | undefined {
  const b = child(el, "body");
  return b === undefined ? undefined : b.children.join("");
}

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------
// Block list (XEP-0191).

Deno.test("abuse: the block list is capped in items and bytes (resource-constraint)", async () => {
  await withServer(["alice"], async (server) => {
    const a = await RawClient.online(server.c2sPort, "alice", "r");
    try {
      assert.equal(condition(await iq(a, "set", block("a@x.org", "b@x.org"))), "result");
      const over = await iq(a, "set", block("c@x.org", "d@x.org"));
      assert.equal(condition(over), "resource-constraint");
      assert.equal(errorType(over), "wait");
      assert.equal(condition(await iq(a, "set", block("c@x.org"))), "result");
      const list = await iq(a, "get", elem("blocklist", { xmlns: NS_BLOCKING }));
      const items = childElements(child(list, "blocklist", NS_BLOCKING)!).map((i) => i.attrs.jid);
      assert.deepEqual(items, ["a@x.org", "b@x.org", "c@x.org"]);
    } finally {
      await a.close();
    }
  }, { ...BASE, limits: { blocklist_items: 3 } });

  await withServer(["alice"], async (server) => {
    const a = await RawClient.online(server.c2sPort, "alice", "r");
    try {
      const long = (i: number) => `${"x".repeat(300)}${i}@example.org`;
      assert.equal(condition(await iq(a, "set", block(long(1), long(2), long(3)))), "result");
      assert.equal(condition(await iq(a, "set", block(long(4)))), "resource-constraint");
      const list = await iq(a, "get", elem("blocklist", { xmlns: NS_BLOCKING }));
      assert.equal(childElements(child(list, "blocklist", NS_BLOCKING)!).length, 3);
    } finally {
      await a.close();
    }
  }, { ...BASE, limits: { blocklist_bytes: 1024 } });
});

Deno.test("abuse: block pushes reach the resources that requested the list, not the roster's", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const port = server.c2sPort;
    const lister = await RawClient.online(port, "alice", "lister");
    const rosterOnly = await RawClient.online(port, "alice", "roster");
    const blocker = await RawClient.online(port, "alice", "blocker");
    try {
      await iq(lister, "get", elem("blocklist", { xmlns: NS_BLOCKING }));
      await iq(rosterOnly, "get", elem("query", { xmlns: "jabber:iq:roster" }));
      assert.equal(condition(await iq(blocker, "set", block("bob@localhost"))), "result");
      const push = await lister.until("the block push", (el) => el.name === "iq");
      assert.equal(push.attrs.type, "set");
      assert.deepEqual(
        childElements(child(push, "block", NS_BLOCKING)!).map((i) => i.attrs.jid),
        ["bob@localhost"],
      );
      // The push was sent to every resource at once: none came to the roster-only one.
      const other = await rosterOnly.barrier();
      assert.equal(other.filter((el) => child(el, "block", NS_BLOCKING) !== undefined).length, 0);
      // Nor to the blocker, which never asked for the list.
      const own = await blocker.barrier();
      assert.equal(own.filter((el) => child(el, "block", NS_BLOCKING) !== undefined).length, 0);
    } finally {
      for (const c of [lister, rosterOnly, blocker]) await c.close();
    }
  }, BASE);
});

// ---------------------------------------------------------------------------------------------
// Directed presence (RFC 6121 §4.6).

Deno.test("abuse: directed presence past the cap is refused with resource-constraint", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const a = await RawClient.online(server.c2sPort, "alice", "r");
    const b = await RawClient.online(server.c2sPort, "bob", "r");
    try {
      for (const to of ["x@localhost", "y@localhost", "z@localhost"]) {
        a.send(stanza("presence", { to }));
      }
      a.send(stanza("presence", { to: "bob@localhost/r", id: "p4" }));
      const refused = await a.until("the refusal", (el) => el.name === "presence");
      assert.equal(refused.attrs.type, "error");
      assert.equal(refused.attrs.id, "p4");
      assert.equal(condition(refused), "resource-constraint");
      // Bob never got it.
      assert.equal((await b.barrier()).filter((el) => el.name === "presence").length, 0);
      // One already remembered still gets updates.
      a.send(stanza("presence", { to: "x@localhost" }));
      assert.equal((await a.barrier()).filter((el) => el.attrs.type === "error").length, 0);
      // Once one is withdrawn there is room, and the recipient hears when Alice goes.
      a.send(stanza("presence", { to: "z@localhost", type: "unavailable" }));
      a.send(stanza("presence", { to: "bob@localhost/r" }));
      const seen = await b.until("alice's presence", (el) => el.name === "presence");
      assert.equal(seen.attrs.from, "alice@localhost/r");
      assert.equal(seen.attrs.type, undefined);
      await a.close();
      const gone = await b.until("alice going", (el) => el.name === "presence");
      assert.equal(gone.attrs.type, "unavailable");
    } finally {
      await a.close();
      await b.close();
    }
  }, { ...BASE, limits: { directed_presences: 3 } });
});

// ---------------------------------------------------------------------------------------------
// Stream management (XEP-0198) and resources per account (RFC 6120 §7.6.2.1).

async function enableResume(c: RawClient): Promise<string> {
  c.send(elem("enable", { xmlns: NS_SM, resume: "true" }));
  const enabled = await c.until("enabled", (el) => el.xmlns === NS_SM && el.name !== "r");
  assert.equal(enabled.name, "enabled");
  return enabled.attrs.id;
}

/** A fresh login's initial presence brings the offline messages: their bodies. */
async function offlineBodies(port: number, user: string): Promise<string[]> {
  const c = await RawClient.online(port, user, `fresh-${crypto.randomUUID()}`);
  try {
    c.send(stanza("presence", {}));
    const got = await c.barrier();
    await pause(200);
    got.push(...await c.barrier());
    return got.flatMap((el) => el.name === "message" ? [bodyOf(el) ?? ""] : []);
  } finally {
    await c.close();
  }
}

Deno.test("abuse: an unacked SM queue past sm_queue_bytes ends the stream, messages go offline", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const port = server.c2sPort;
    const a = await RawClient.online(port, "alice", "phone");
    const b = await RawClient.online(port, "bob", "pc");
    try {
      await enableResume(a);
      a.send(stanza("presence", {}));
      // Alice reads everything but never acknowledges; 3 × 30 KB passes 64 KiB.
      const big = (i: number) => chat("alice@localhost/phone", `${i}:${"x".repeat(30000)}`);
      for (let i = 1; i <= 3; i++) b.send(big(i));
      await b.barrier();
      let error: Element | undefined;
      for (;;) {
        const ev = await a.event();
        if (ev === undefined || ev.kind === "stream-close") break;
        if (ev.kind === "stanza" && ev.stanza.name === "error" && ev.stanza.xmlns === NS_STREAMS) {
          error = ev.stanza;
        }
      }
      assert.ok(error !== undefined, "a stream error");
      assert.ok(
        child(error, "resource-constraint", "urn:ietf:params:xml:ns:xmpp-streams") !== undefined,
        serialize(error),
      );
      const bodies = await offlineBodies(port, "alice");
      assert.deepEqual(bodies.map((s) => s.split(":")[0]), ["1", "2", "3"]);
    } finally {
      await a.close();
      await b.close();
    }
  }, { ...BASE, limits: { sm_queue_bytes: 65536 } });
});

Deno.test("abuse: binding past resources_per_account is resource-constraint, hibernating included", async () => {
  await withServer(["alice"], async (server) => {
    const port = server.c2sPort;
    const first = await RawClient.online(port, "alice", "one");
    await enableResume(first);
    first.cut();
    await pause(200);
    const second = await RawClient.online(port, "alice", "two");
    const third = await RawClient.connect(port);
    try {
      await third.login("alice", "pw");
      third.send(elem("iq", { xmlns: "jabber:client", type: "set", id: "bind" }, [
        elem("bind", { xmlns: "urn:ietf:params:xml:ns:xmpp-bind" }, [
          elem("resource", {}, ["three"]),
        ]),
      ]));
      const refused = await third.next("the bind error");
      assert.equal(condition(refused), "resource-constraint");
      assert.equal(errorType(refused), "wait");
      // Taking over a bound resource adds none: still allowed.
      assert.equal(await third.bind("two"), "alice@localhost/two");
    } finally {
      await second.close();
      await third.close();
    }
  }, { ...BASE, limits: { resources_per_account: 2 } });
});

Deno.test("abuse: past resumable_per_account the oldest hibernating session ends, messages kept", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const port = server.c2sPort;
    const b = await RawClient.online(port, "bob", "pc");
    const old = await RawClient.online(port, "alice", "old");
    const oldId = await enableResume(old);
    old.send(stanza("presence", {}));
    b.send(chat("alice@localhost/old", "for-old"));
    await old.until("the message", (el) => el.name === "message");
    old.cut();
    await pause(200);
    const young = await RawClient.online(port, "alice", "young");
    const youngId = await enableResume(young);
    young.cut();
    await pause(200);
    try {
      // The old one was ended: it cannot be resumed, the young one can.
      const r1 = await RawClient.connect(port);
      await r1.login("alice", "pw");
      r1.send(elem("resume", { xmlns: NS_SM, previd: oldId, h: "0" }));
      const failed = await r1.until("failed", (el) => el.xmlns === NS_SM);
      assert.equal(failed.name, "failed");
      await r1.close();
      const r2 = await RawClient.connect(port);
      await r2.login("alice", "pw");
      r2.send(elem("resume", { xmlns: NS_SM, previd: youngId, h: "0" }));
      const resumed = await r2.until("resumed", (el) => el.xmlns === NS_SM);
      assert.equal(resumed.name, "resumed");
      await r2.close();
      // What the old one never acknowledged went to offline storage.
      assert.deepEqual(await offlineBodies(port, "alice"), ["for-old"]);
    } finally {
      await b.close();
    }
  }, { ...BASE, limits: { resumable_per_account: 1 } });
});

// ---------------------------------------------------------------------------------------------
// CSI (XEP-0352) and disco.

Deno.test("abuse: an inactive client's held stanzas are flushed past csi_bytes", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const a = await RawClient.online(server.c2sPort, "alice", "r");
    const b = await RawClient.online(server.c2sPort, "bob", "r");
    try {
      a.send(elem("inactive", { xmlns: NS_CSI }));
      await a.barrier();
      // Directed presence from Bob's resources is held (collapsible); 3 × ~500 B stay under
      // 2 KiB, the fourth passes it and everything comes at once.
      const status = (i: number) =>
        stanza("presence", { to: "alice@localhost/r", id: `s${i}` }, [
          elem("status", {}, [`${i}${"x".repeat(500)}`]),
        ]);
      const bobs: RawClient[] = [];
      for (let i = 1; i <= 3; i++) {
        const c = await RawClient.online(server.c2sPort, "bob", `r${i}`);
        bobs.push(c);
        c.send(status(i));
        await c.barrier();
      }
      assert.equal((await a.barrier()).filter((el) => el.name === "presence").length, 0);
      b.send(status(4));
      await b.barrier();
      const got = (await a.barrier()).filter((el) => el.name === "presence");
      assert.deepEqual(got.map((el) => el.attrs.id), ["s1", "s2", "s3", "s4"]);
      for (const c of bobs) await c.close();
    } finally {
      await a.close();
      await b.close();
    }
  }, { ...BASE, limits: { csi_bytes: 2048 } });
});

Deno.test("abuse: the server's disco#info announces msgoffline", async () => {
  await withServer(["alice"], async (server) => {
    const a = await RawClient.online(server.c2sPort, "alice", "r");
    try {
      const info = await iq(a, "get", elem("query", { xmlns: NS_DISCO_INFO }), "localhost");
      const features = childElements(child(info, "query", NS_DISCO_INFO)!)
        .filter((f) => f.name === "feature").map((f) => f.attrs.var);
      assert.ok(features.includes("msgoffline"), features.join(" "));
    } finally {
      await a.close();
    }
  }, BASE);
});
