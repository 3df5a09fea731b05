import { NS_SM } from "../../lib/xmpp/namespaces.ts";
/** Stream management (XEP-0198) over real TCP: acks, hibernation, resumption, timeout. */
import assert from "node:assert/strict";
import { startTestServer } from "./_server.ts";
import { RawClient } from "./_raw_client.ts";
import { child, elem, type Element, stanza, text } from "../../lib/xml/element.ts";
import { NS_PING } from "../../lib/xmpp/namespaces.ts";

const ALICE = "alice@localhost/phone";
const BOB = "bob@localhost/pc";

function isStanza(el: Element): boolean {
  return el.xmlns === "jabber:client" &&
    (el.name === "message" || el.name === "presence" || el.name === "iq");
}

/**
 * A stream-managed client: counts the stanzas it receives (its `h`), answers the server's
 * `<r/>` only when told to, and keeps what it received.
 */
class Managed {
  h = 0;
  readonly messages: string[] = [];
  readonly presences: Element[] = [];
  answerRequests = true;

  constructor(readonly raw: RawClient) {}

  /** Reads until `pred` holds for an element; counts and records what it reads. */
  async until(pred: (el: Element) => boolean, what: string, ms = 5000): Promise<Element> {
    for (;;) {
      const el = await this.raw.next(what, ms);
      this.#note(el);
      if (pred(el)) return el;
    }
  }

  /** Reads whatever arrives within `ms`. */
  async drain(ms: number): Promise<void> {
    const deadline = performance.now() + ms;
    for (;;) {
      const left = deadline - performance.now();
      if (left <= 0) return;
      const ev = await this.raw.event(left);
      if (ev === undefined) return;
      if (ev.kind === "stanza") this.#note(ev.stanza);
    }
  }

  #note(el: Element): void {
    if (isStanza(el)) {
      this.h++;
      if (el.name === "message") this.messages.push(text(child(el, "body") ?? elem("x")));
      if (el.name === "presence") this.presences.push(el);
    } else if (el.xmlns === NS_SM && el.name === "r" && this.answerRequests) {
      this.raw.send(elem("a", { xmlns: NS_SM, h: String(this.h) }));
    }
  }
}

function chat(to: string, body: string): Element {
  return stanza("message", { to, type: "chat", id: body }, [elem("body", {}, [body])]);
}

/** A ping to the server; its answer proves everything sent before it was handled. */
async function sync(c: Managed, id: string): Promise<void> {
  c.raw.send(
    stanza("iq", { type: "get", id, to: "localhost" }, [elem("ping", { xmlns: NS_PING })]),
  );
  await c.until((el) => el.name === "iq" && el.attrs.id === id, `ping ${id}`);
}

async function bob(port: number): Promise<Managed> {
  const raw = await RawClient.connect(port);
  await raw.login("bob", "pw");
  await raw.bind("pc");
  const c = new Managed(raw);
  raw.send(stanza("presence", {}));
  await c.until((el) => el.name === "presence", "bob's own presence");
  return c;
}

/** Alice logs in, binds, enables resumable SM, and sends directed presence to Bob. */
async function alice(port: number): Promise<{ c: Managed; id: string; max: string }> {
  const raw = await RawClient.connect(port);
  const features = await raw.login("alice", "pw");
  assert.ok(child(features, "sm", NS_SM) !== undefined, "sm offered after authentication");
  await raw.bind("phone");
  raw.send(elem("enable", { xmlns: NS_SM, resume: "true" }));
  const enabled = await raw.next("enabled");
  assert.equal(enabled.name, "enabled");
  assert.equal(enabled.attrs.resume, "true");
  const c = new Managed(raw);
  // Counted by the server: this is Alice's stanza 1.
  raw.send(stanza("presence", { to: "bob@localhost" }));
  return { c, id: enabled.attrs.id, max: enabled.attrs.max };
}

Deno.test("sm: a cut connection resumes and gets exactly the unacknowledged, in order", async () => {
  const server = await startTestServer({ require_encryption: false });
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const b = await bob(server.c2sPort);
    const { c: a, id, max } = await alice(server.c2sPort);
    assert.equal(max, "300");
    await b.until((el) => el.name === "presence" && el.attrs.from === ALICE, "alice's presence");

    // Alice receives m1..m3 but acknowledges only m1 (her stanza count after it).
    a.answerRequests = false;
    for (const m of ["m1", "m2", "m3"]) b.raw.send(chat(ALICE, m));
    await a.until((el) => el.name === "message" && el.attrs.id === "m1", "m1");
    const ackedThroughM1 = a.h;
    await a.until((el) => el.name === "message" && el.attrs.id === "m3", "m3");
    assert.deepEqual(a.messages, ["m1", "m2", "m3"]);
    a.raw.send(elem("a", { xmlns: NS_SM, h: String(ackedThroughM1) }));
    // Her <r/> is answered only after the <a/> before it was handled: 1 stanza so far.
    a.raw.send(elem("r", { xmlns: NS_SM }));
    const answer = await a.until((el) => el.name === "a" && el.xmlns === NS_SM, "the server's a");
    assert.equal(answer.attrs.h, "1");

    // The TCP connection dies without </stream:stream>; Bob keeps writing.
    a.raw.cut();
    await new Promise((r) => setTimeout(r, 200));
    for (const m of ["m4", "m5"]) b.raw.send(chat(ALICE, m));
    await sync(b, "b1");

    // Alice comes back on a new connection and resumes instead of binding.
    const raw2 = await RawClient.connect(server.c2sPort);
    await raw2.login("alice", "pw");
    raw2.send(elem("resume", { xmlns: NS_SM, previd: id, h: String(ackedThroughM1) }));
    const a2 = new Managed(raw2);
    a2.h = ackedThroughM1;
    const resumed = await a2.until((el) => el.xmlns === NS_SM, "resumed");
    assert.equal(resumed.name, "resumed");
    assert.equal(resumed.attrs.previd, id);
    assert.equal(resumed.attrs.h, "1");
    await a2.drain(500);
    assert.deepEqual(a2.messages, ["m2", "m3", "m4", "m5"]);

    // The session goes on: both ways, on the new connection, with the same full JID.
    b.raw.send(chat(ALICE, "m6"));
    await a2.until((el) => el.name === "message" && el.attrs.id === "m6", "m6");
    a2.raw.send(chat(BOB, "hello again"));
    const back = await b.until((el) => el.name === "message", "alice's message");
    assert.equal(back.attrs.from, ALICE);
    assert.deepEqual(a2.messages, ["m2", "m3", "m4", "m5", "m6"]);
    // Bob never saw Alice go.
    assert.ok(!b.presences.some((p) => p.attrs.from === ALICE && p.attrs.type === "unavailable"));

    // A clean close ends the session: Bob hears it once.
    await a2.raw.close();
    await b.until((el) => el.name === "presence" && el.attrs.type === "unavailable", "goodbye");
    await b.drain(300);
    assert.equal(
      b.presences.filter((p) => p.attrs.from === ALICE && p.attrs.type === "unavailable").length,
      1,
    );
    await b.raw.close();
  } finally {
    await server.stop();
  }
});

Deno.test("sm: at the resume timeout the unacknowledged go offline, unavailable once", async () => {
  const server = await startTestServer({
    require_encryption: false,
    limits: { sm_resume_timeout: 1 },
  });
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const b = await bob(server.c2sPort);
    const { c: a, id, max } = await alice(server.c2sPort);
    assert.equal(max, "1");
    await b.until((el) => el.name === "presence" && el.attrs.from === ALICE, "alice's presence");

    a.answerRequests = false;
    b.raw.send(chat(ALICE, "m1"));
    await a.until((el) => el.name === "message", "m1");
    a.raw.cut();
    await new Promise((r) => setTimeout(r, 100));
    b.raw.send(chat(ALICE, "m2"));
    await sync(b, "b1");
    // Still hibernating: no goodbye yet.
    assert.ok(!b.presences.some((p) => p.attrs.type === "unavailable"));

    await b.until((el) => el.name === "presence" && el.attrs.type === "unavailable", "goodbye");
    await b.drain(1500);
    const goodbyes = b.presences.filter((p) =>
      p.attrs.from === ALICE && p.attrs.type === "unavailable"
    );
    assert.equal(goodbyes.length, 1);

    // Stored before anyone asks, whatever the offline store's file format.
    let stored = "";
    for await (const f of Deno.readDir(`${server.dataDir}/localhost/offline`)) {
      if (f.name.startsWith("alice.")) {
        stored += await Deno.readTextFile(`${server.dataDir}/localhost/offline/${f.name}`);
      }
    }
    assert.ok(stored.includes("m1") && stored.includes("m2"), stored);

    // The session is gone: resuming fails, and a fresh login gets the messages from storage.
    const raw2 = await RawClient.connect(server.c2sPort);
    await raw2.login("alice", "pw");
    raw2.send(elem("resume", { xmlns: NS_SM, previd: id, h: "0" }));
    const failed = await raw2.next("failed");
    assert.equal(failed.name, "failed");
    assert.ok(child(failed, "item-not-found", "urn:ietf:params:xml:ns:xmpp-stanzas"));
    await raw2.bind("phone");
    const a2 = new Managed(raw2);
    raw2.send(stanza("presence", {}));
    await a2.until((el) => el.name === "message" && el.attrs.id === "m2", "offline m2");
    assert.deepEqual(a2.messages, ["m1", "m2"]);
    await a2.raw.close();
    await b.raw.close();
  } finally {
    await server.stop();
  }
});

Deno.test("sm: resuming a still-connected session closes the old stream with conflict", async () => {
  const server = await startTestServer({ require_encryption: false });
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const b = await bob(server.c2sPort);
    const { c: a, id } = await alice(server.c2sPort);
    a.answerRequests = false;
    b.raw.send(chat(ALICE, "m1"));
    await a.until((el) => el.name === "message", "m1");

    // The old connection looks alive to the server; the client resumes from a new one anyway.
    const raw2 = await RawClient.connect(server.c2sPort);
    await raw2.login("alice", "pw");
    raw2.send(elem("resume", { xmlns: NS_SM, previd: id, h: "0" }));
    const a2 = new Managed(raw2);
    const resumed = await a2.until((el) => el.xmlns === NS_SM, "resumed");
    assert.equal(resumed.name, "resumed");
    await a2.until((el) => el.name === "message", "m1 again");
    assert.deepEqual(a2.messages, ["m1"]);

    const error = await a.until((el) => el.name === "error", "the old stream's error");
    assert.ok(child(error, "conflict", "urn:ietf:params:xml:ns:xmpp-streams"));
    // The session itself never ended.
    await b.drain(300);
    assert.ok(!b.presences.some((p) => p.attrs.from === ALICE && p.attrs.type === "unavailable"));
    b.raw.send(chat(ALICE, "m2"));
    await a2.until((el) => el.name === "message" && el.attrs.id === "m2", "m2");
    await a.raw.close();
    await a2.raw.close();
    await b.raw.close();
  } finally {
    await server.stop();
  }
});
