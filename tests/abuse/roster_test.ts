/**
 * Issue 9, roster and subscriptions, against a real server: contact JIDs named like
 * Object.prototype's members, the roster's item/byte caps, the cap on pending requests, and
 * requests redelivered with their payload (RFC 6121 §3.1.3), from a roster stored by an older
 * version too.
 * @module
 */
import assert from "node:assert/strict";
import { configFromObject } from "../../lib/config.ts";
import { handshakeDigest } from "../../lib/component/component.ts";
import { NS_COMPONENT } from "../../lib/xmpp/namespaces.ts";
import { startServer } from "../../lib/shell/server.ts";
import type { Roster } from "../../lib/core/session.ts";
import { openKeyvalStore } from "../../lib/storage/file/datamanager.ts";
import {
  child,
  childElements,
  elem,
  type Element,
  serialize,
  stanza,
} from "../../lib/xml/element.ts";
import { NS_ROSTER, NS_STREAMS } from "../../lib/xmpp/namespaces.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { type TestServer, withServer } from "../integration/_server.ts";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const BASE = { require_encryption: false, archive_enabled: false };

let ids = 0;

/** Sends an iq and returns its answer. */
async function iq(c: RawClient, type: "get" | "set", payload: Element): Promise<Element> {
  const id = `q${++ids}`;
  c.send(stanza("iq", { type, id }, [payload]));
  return await c.until(`the answer to ${id}`, (el) => el.name === "iq" && el.attrs.id === id);
}

function rosterSet(jid: string, name?: string, groups: readonly string[] = []): Element {
  return elem("query", { xmlns: NS_ROSTER }, [
    elem("item", { jid, name }, groups.map((g) => elem("group", {}, [g]))),
  ]);
}

/** The error condition of an error stanza, or its type when it is not one. */
function condition(el: Element): string {
  if (el.attrs.type !== "error") return el.attrs.type ?? "";
  const error = child(el, "error", el.xmlns);
  return childElements(error ?? elem("error"), STANZAS).find((e) => e.name !== "text")?.name ?? "?";
}

/** The roster's items as `jid:subscription[:ask]`, in order. */
async function rosterItems(c: RawClient): Promise<string[]> {
  const result = await iq(c, "get", elem("query", { xmlns: NS_ROSTER }));
  assert.equal(result.attrs.type, "result", serialize(result));
  const query = child(result, "query", NS_ROSTER)!;
  return childElements(query, NS_ROSTER).map((i) =>
    [i.attrs.jid, i.attrs.subscription, i.attrs.ask].filter((x) => x !== undefined).join(":")
  );
}

/** A raw component connection for `domain` (XEP-0114), after a successful handshake. */
async function component(server: TestServer, domain: string): Promise<RawClient> {
  const c = await RawClient.connect(server.componentPort!);
  c.write(
    `<?xml version='1.0'?><stream:stream xmlns='${NS_COMPONENT}' ` +
      `xmlns:stream='${NS_STREAMS}' to='${domain}'>`,
  );
  const opened = await c.event();
  assert.ok(opened?.kind === "stream-open");
  c.write(`<handshake>${handshakeDigest(opened.attrs.id!, "s3cret")}</handshake>`);
  const answer = await c.next("the handshake answer");
  assert.equal(answer.name, "handshake");
  return c;
}

Deno.test("abuse: prototype-named contacts in roster sets, subscriptions, probes and requests", async () => {
  await withServer(["alice"], async (server) => {
    const alice = await RawClient.online(server.c2sPort, "alice");
    // A component whose domain is "constructor" is a JID that is also Object.prototype's.
    const gw = await component(server, "constructor");
    try {
      assert.deepEqual(await rosterItems(alice), []);
      alice.send(stanza("presence", {}));
      // From "constructor" while nothing of it is in the roster: a request with a payload,
      // and a probe (no subscription: no answer).
      gw.write(
        `<presence type='subscribe' from='constructor' to='alice@localhost' id='s1'>` +
          `<nick xmlns='http://jabber.org/protocol/nick'>Gateway</nick></presence>` +
          `<presence type='probe' from='constructor' to='alice@localhost'/>`,
      );
      const request = await alice.until("the request", (el) => el.attrs.type === "subscribe");
      assert.equal(request.attrs.from, "constructor");
      // Alice's own subscription stanzas and a probe to "constructor", "tostring" ...
      for (const type of ["subscribe", "unsubscribe", "probe"]) {
        alice.send(stanza("presence", { type, to: "constructor" }));
      }
      alice.send(stanza("presence", { type: "subscribe", to: "toString" }));
      alice.send(stanza("presence", { type: "unsubscribed", to: "hasOwnProperty" }));
      // ... which the component sees (the probe is routed at once, the others go through
      // alice's account: in any order).
      const seen: string[] = [];
      while (seen.length < 3) {
        const el = await gw.next("alice's stanzas at the component");
        // (Her account acknowledged the request with unavailable presence, as Prosody does.)
        if (el.attrs.type !== "unavailable") seen.push(`${el.attrs.type}`);
      }
      assert.deepEqual(seen.sort(), ["probe", "subscribe", "unsubscribe"]);
      // Roster sets: "toString" and "hasOwnProperty" are domains, lower-cased by the server.
      for (const jid of ["constructor", "toString", "hasOwnProperty", "__proto__@localhost"]) {
        assert.equal((await iq(alice, "set", rosterSet(jid, "x"))).attrs.type, "result", jid);
      }
      // "__proto__" itself is no JID: the server says so instead of failing.
      assert.equal(condition(await iq(alice, "set", rosterSet("__proto__"))), "bad-request");
      assert.deepEqual(await rosterItems(alice), [
        "constructor:none",
        "tostring:none:subscribe",
        "hasownproperty:none",
        "__proto__@localhost:none",
      ]);
      await alice.close();

      // The pending request from "constructor" is delivered again, payload and all.
      const again = await RawClient.online(server.c2sPort, "alice", "r2");
      again.send(stanza("presence", {}));
      const redelivered = (await again.barrier()).filter((el) => el.attrs.type === "subscribe");
      assert.deepEqual(redelivered.map((el) => serialize(el)), [
        `<presence type="subscribe" from="constructor" to="alice@localhost">` +
        `<nick xmlns="http://jabber.org/protocol/nick">Gateway</nick></presence>`,
      ]);
      // Approving it: subscription from, and the component hears of it.
      again.send(stanza("presence", { type: "subscribed", to: "constructor" }));
      await gw.until("the approval", (el) => el.attrs.type === "subscribed");
      assert.ok((await rosterItems(again)).includes("constructor:from"));
      await again.close();
    } finally {
      alice.cut();
      gw.cut();
    }
  }, {
    ...BASE,
    component_port: 0,
    components: [{ domain: "constructor", secret: "s3cret" }],
  });
});

Deno.test("abuse: roster_items caps roster sets and outbound subscribes", async () => {
  await withServer(["alice"], async (server) => {
    const alice = await RawClient.online(server.c2sPort, "alice");
    try {
      for (let i = 0; i < 3; i++) {
        assert.equal((await iq(alice, "set", rosterSet(`c${i}@localhost`))).attrs.type, "result");
      }
      const refused = await iq(alice, "set", rosterSet("c3@localhost"));
      assert.equal(condition(refused), "resource-constraint");
      assert.equal(child(refused, "error")?.attrs.type, "wait");
      // An outbound subscribe that would add a fourth item is refused and changes nothing.
      alice.send(stanza("presence", { type: "subscribe", to: "c4@localhost", id: "sub" }));
      const error = await alice.until("the subscribe's error", (el) => el.name === "presence");
      assert.equal(error.attrs.type, "error");
      assert.equal(error.attrs.from, "c4@localhost");
      assert.equal(condition(error), "resource-constraint");
      // A subscribe to a contact already there still works at the cap.
      alice.send(stanza("presence", { type: "subscribe", to: "c0@localhost" }));
      assert.deepEqual(await rosterItems(alice), [
        "c0@localhost:none:subscribe",
        "c1@localhost:none",
        "c2@localhost:none",
      ]);
      // Removing one makes room.
      const remove = elem("query", { xmlns: NS_ROSTER }, [
        elem("item", { jid: "c1@localhost", subscription: "remove" }),
      ]);
      assert.equal((await iq(alice, "set", remove)).attrs.type, "result");
      assert.equal((await iq(alice, "set", rosterSet("c3@localhost"))).attrs.type, "result");
    } finally {
      await alice.close();
    }
  }, { ...BASE, limits: { roster_items: 3 } });
});

Deno.test("abuse: roster_bytes caps the roster's size; over-long names are not-acceptable", async () => {
  await withServer(["alice"], async (server) => {
    const alice = await RawClient.online(server.c2sPort, "alice");
    try {
      // Each item ~200 KB of groups (within the stanza size): the third would pass 512 KiB.
      const groups = (k: number) =>
        Array.from({ length: 200 }, (_, i) => `${k}-${i}`.padEnd(1000, "g"));
      const answers: string[] = [];
      for (let k = 0; k < 4; k++) {
        answers.push(
          condition(await iq(alice, "set", rosterSet(`big${k}@localhost`, undefined, groups(k)))),
        );
      }
      assert.deepEqual(answers, ["result", "result", "resource-constraint", "resource-constraint"]);
      // The roster can still be fetched, and is within the bound.
      const result = await iq(alice, "get", elem("query", { xmlns: NS_ROSTER }));
      assert.equal(result.attrs.type, "result");
      const bytes = new TextEncoder().encode(serialize(result)).length;
      assert.ok(bytes < 512 * 1024, `${bytes}`);
      assert.equal(childElements(child(result, "query", NS_ROSTER)!, NS_ROSTER).length, 2);
      // RFC 6121 §2.3.3: a name or a group longer than 1024 characters is not-acceptable.
      assert.equal(
        condition(await iq(alice, "set", rosterSet("n@localhost", "n".repeat(1025)))),
        "not-acceptable",
      );
      assert.equal(
        condition(await iq(alice, "set", rosterSet("n@localhost", "n", ["g".repeat(1025)]))),
        "not-acceptable",
      );
      // Small changes still fit.
      assert.equal((await iq(alice, "set", rosterSet("n@localhost", "n"))).attrs.type, "result");
    } finally {
      await alice.close();
    }
  }, BASE);
});

Deno.test("abuse: pending_subscriptions caps waiting requests; the rest are refused", async () => {
  const users = ["alice", "bob", "carol", "dave"];
  await withServer(users, async (server) => {
    const others = await Promise.all(
      users.slice(1).map((u) => RawClient.online(server.c2sPort, u)),
    );
    try {
      // Alice is offline: the requests wait for her. Each is acknowledged (as Prosody does,
      // with unavailable presence) or refused, one after the other.
      for (const c of others) c.send(stanza("presence", {}));
      const answers: string[] = [];
      for (const c of others) {
        c.send(stanza("presence", { type: "subscribe", to: "alice@localhost", id: "s" }));
        const answer = await c.until(
          "the answer",
          (el) => el.name === "presence" && el.attrs.from === "alice@localhost",
        );
        answers.push(condition(answer));
      }
      assert.deepEqual(answers, ["unavailable", "unavailable", "resource-constraint"]);

      const alice = await RawClient.online(server.c2sPort, "alice");
      alice.send(stanza("presence", {}));
      const got = (await alice.barrier()).filter((el) => el.attrs.type === "subscribe");
      assert.deepEqual(got.map((el) => el.attrs.from), ["bob@localhost", "carol@localhost"]);
      // Answering one makes room for Dave's.
      alice.send(stanza("presence", { type: "unsubscribed", to: "bob@localhost" }));
      await alice.barrier();
      others[2].send(stanza("presence", { type: "subscribe", to: "alice@localhost" }));
      const daves = await alice.until("dave's request", (el) => el.attrs.type === "subscribe");
      assert.equal(daves.attrs.from, "dave@localhost");
      await alice.close();
    } finally {
      for (const c of others) await c.close();
    }
  }, { ...BASE, limits: { pending_subscriptions: 2 } });
});

Deno.test("abuse: a request is redelivered with its XEP-0401 preauth, status and nick", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const bob = await RawClient.online(server.c2sPort, "bob");
    try {
      bob.write(
        `<presence type='subscribe' to='alice@localhost'><status>It is Bob</status>` +
          `<nick xmlns='http://jabber.org/protocol/nick'>Bob</nick>` +
          `<preauth xmlns='urn:xmpp:pars:0' token='a1b2c3'/></presence>`,
      );
      await bob.barrier();
      for (const resource of ["one", "two"]) {
        const alice = await RawClient.online(server.c2sPort, "alice", resource);
        alice.send(stanza("presence", {}));
        const got = (await alice.barrier()).filter((el) => el.attrs.type === "subscribe");
        assert.deepEqual(got.map((el) => serialize(el)), [
          `<presence type="subscribe" from="bob@localhost" to="alice@localhost">` +
          `<status>It is Bob</status><nick xmlns="http://jabber.org/protocol/nick">Bob</nick>` +
          `<preauth xmlns="urn:xmpp:pars:0" token="a1b2c3"/></presence>`,
        ], resource);
        await alice.close();
      }
    } finally {
      await bob.close();
    }
  }, BASE);
});

Deno.test("abuse: a roster stored by an older version (requests as `true`) still loads", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "xmpp-test-" });
  // As an older version wrote it: pending requests as `true`.
  const old: Roster = JSON.parse(
    `{"version":"3","items":{"constructor":{"jid":"constructor","subscription":"to",` +
      `"groups":["Gw"]}},"pendingIn":{"bob@localhost":true,"constructor":true}}`,
  );
  await openKeyvalStore<Roster>(dataDir, "roster").set("localhost", "alice", old);
  const server = await startServer(configFromObject({
    hosts: ["localhost"],
    data_dir: dataDir,
    interfaces: ["127.0.0.1"],
    c2s_port: 0,
    c2s_direct_tls_port: 0,
    component_port: false,
    s2s_port: false,
    http: { http_port: false, https_port: false },
    log_level: "error",
    ...BASE,
  }, "test"));
  try {
    await server.accounts.create("localhost", "alice", "pw");
    const alice = await RawClient.online(server.c2sPort, "alice");
    assert.deepEqual(await rosterItems(alice), ["constructor:to"]);
    alice.send(stanza("presence", {}));
    const got = (await alice.barrier()).filter((el) => el.attrs.type === "subscribe");
    assert.deepEqual(got.map((el) => serialize(el)), [
      `<presence type="subscribe" from="bob@localhost" to="alice@localhost"/>`,
      `<presence type="subscribe" from="constructor" to="alice@localhost"/>`,
    ]);
    await alice.close();
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});
