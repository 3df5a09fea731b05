/**
 * XEP-0198 (stream management) and XEP-0352 (client state indication) over BOSH (XEP-0206)
 * against a real server on ephemeral ports, as tests/integration/stream_management_test.ts and
 * csi_test.ts check them over TCP. The peer is a TCP client.
 *
 * A BOSH client has no socket to lose: it "drops" by no longer polling. Past the inactivity
 * period the BOSH session ends (its sid is unknown from then on) and the XMPP session goes the
 * way of a dropped TCP connection: with resumption enabled it hibernates, and the client
 * resumes it from a fresh BOSH session (or any other transport) with `<resume/>`, getting what
 * it never acknowledged, as Prosody's mod_bosh with mod_smacks does; without resumption it ends
 * (goodbye presence). The server's inactivity is 60 s, so the client here asks for a shorter one
 * with XEP-0124 §10's `pause` (a pause below `inactivity` is allowed: "a temporary reduction"),
 * which ends the session through the same inactivity timer.
 */
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "../integration/_server.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { child, elem, type Element, stanza, text } from "../../lib/xml/element.ts";
import { NS_CHATSTATES, NS_CSI, NS_SM } from "../../lib/xmpp/namespaces.ts";
import {
  bind,
  bodyOf,
  type BoshXmpp,
  boshXmpp,
  drain,
  isStanza,
  login,
  sync,
  until,
  wsXmpp,
} from "./_web_xmpp.ts";

const ALICE = "alice@localhost/web";
const BOB = "bob@localhost/pc";
const SETTINGS = { require_encryption: false, http: { http_port: 0 } };

function chat(to: string, body: string): Element {
  return stanza("message", { to, type: "chat", id: body }, [elem("body", {}, [body])]);
}

const isGoodbye = (el: Element) =>
  el.name === "presence" && el.attrs.from === ALICE && el.attrs.type === "unavailable";

const messages = (els: readonly Element[]) => els.filter((el) => el.name === "message").map(bodyOf);

async function bobOnline(server: TestServer) {
  const raw = await RawClient.online(server.c2sPort, "bob", "pc");
  raw.send(stanza("presence", {}));
  await raw.until("bob's own presence", (el) => el.name === "presence");
  return raw;
}

/** Alice over BOSH: logged in, bound, SM on (resumable or not), directed presence to Bob. */
async function aliceOverBosh(server: TestServer, resume = true) {
  const c = boshXmpp(server.httpPort!);
  const features = await login(c, "alice");
  assert.ok(child(features, "sm", NS_SM), "<sm/> offered after authentication");
  assert.ok(child(features, "csi", NS_CSI), "<csi/> offered after authentication");
  assert.equal(await bind(c, "web"), ALICE);
  await c.send(elem("enable", { xmlns: NS_SM, ...(resume ? { resume: "true" } : {}) }));
  const enabled = await until(c, "enabled", (el) => el.xmlns === NS_SM);
  assert.equal(enabled.name, "enabled");
  assert.equal(enabled.attrs.resume, resume ? "true" : undefined);
  await c.send(stanza("presence", { to: "bob@localhost" }));
  c.h = 0;
  return { c, id: enabled.attrs.id };
}

/** Asks for a pause of `seconds` and polls no more: the BOSH session ends after it. */
async function goSilent(c: BoshXmpp, seconds: number): Promise<void> {
  const started = Date.now();
  const answer = await c.post({ pause: String(seconds) });
  assert.equal(answer.attrs.type, undefined);
  assert.ok(Date.now() - started < 500, "a pause is answered at once");
}

Deno.test("bosh sm: acks, then a client silent past inactivity resumes from a new BOSH session", async () => {
  const server = await startTestServer(SETTINGS);
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const bob = await bobOnline(server);
    const { c: a, id } = await aliceOverBosh(server);
    assert.equal(a.created?.attrs.maxpause, "120");
    await bob.until("alice's presence", (el) => el.name === "presence" && el.attrs.from === ALICE);

    a.answerRequests = false;
    for (const m of ["m1", "m2", "m3"]) bob.send(chat(ALICE, m));
    await until(a, "m1", (el) => el.attrs.id === "m1");
    const ackedThroughM1 = a.h;
    await until(a, "m3", (el) => el.attrs.id === "m3");
    assert.deepEqual(messages(a.read), ["m1", "m2", "m3"]);
    assert.ok(a.read.some((el) => el.xmlns === NS_SM && el.name === "r"), "the server sent <r/>");
    // One request carries her <a/> and her <r/>; the server has handled one stanza of hers.
    await a.send(
      elem("a", { xmlns: NS_SM, h: String(ackedThroughM1) }),
      elem("r", { xmlns: NS_SM }),
    );
    const answer = await until(
      a,
      "the server's <a/>",
      (el) => el.xmlns === NS_SM && el.name === "a",
    );
    assert.equal(answer.attrs.h, "1");

    // Silent: m4 comes during the pause (pending in the BOSH session), m5 after it ended.
    await goSilent(a, 1);
    bob.send(chat(ALICE, "m4"));
    await new Promise((r) => setTimeout(r, 1800));
    bob.send(chat(ALICE, "m5"));
    assert.deepEqual((await bob.barrier()).filter(isGoodbye), [], "alice's session hibernates");
    // The BOSH session is gone.
    await a.post({});
    assert.equal(a.terminated, "item-not-found");

    // A fresh BOSH session: log in, resume instead of binding.
    const a2 = boshXmpp(server.httpPort!);
    await login(a2, "alice");
    a2.h = ackedThroughM1;
    await a2.send(elem("resume", { xmlns: NS_SM, previd: id, h: String(ackedThroughM1) }));
    const resumed = await until(a2, "resumed", (el) => el.xmlns === NS_SM);
    assert.equal(resumed.name, "resumed");
    assert.equal(resumed.attrs.previd, id);
    assert.equal(resumed.attrs.h, "1");
    await until(a2, "m5", (el) => el.attrs.id === "m5");
    assert.deepEqual(messages(a2.read), ["m2", "m3", "m4", "m5"]);

    // The session goes on, both ways, with the same full JID.
    bob.send(chat(ALICE, "m6"));
    await until(a2, "m6", (el) => el.attrs.id === "m6");
    await a2.send(chat(BOB, "hello again"));
    const seen = await bob.barrier();
    const back = seen.find((el) => el.name === "message");
    assert.equal(back?.attrs.from, ALICE);
    assert.equal(bodyOf(back!), "hello again");
    assert.deepEqual(seen.filter(isGoodbye), []);
    await a2.send(elem("r", { xmlns: NS_SM }));
    const after = await until(
      a2,
      "the server's <a/>",
      (el) => el.xmlns === NS_SM && el.name === "a",
    );
    assert.equal(after.attrs.h, "2");

    // type='terminate' is a clean end: goodbye once.
    const bye = await a2.post({ type: "terminate" });
    assert.equal(bye.attrs.type, "terminate");
    await bob.until("goodbye", isGoodbye);
    assert.deepEqual((await bob.barrier()).filter(isGoodbye), []);
    await bob.close();
  } finally {
    await server.stop();
  }
});

Deno.test("bosh sm: a hibernating BOSH session resumes over WebSocket too", async () => {
  const server = await startTestServer(SETTINGS);
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const bob = await bobOnline(server);
    const { c: a, id } = await aliceOverBosh(server);
    await bob.until("alice's presence", (el) => el.name === "presence" && el.attrs.from === ALICE);
    await goSilent(a, 1);
    await new Promise((r) => setTimeout(r, 1800));
    bob.send(chat(ALICE, "while away"));
    await bob.ping();
    const ws = await wsXmpp(server.httpPort!);
    await login(ws, "alice");
    await ws.send(elem("resume", { xmlns: NS_SM, previd: id, h: "0" }));
    assert.equal((await until(ws, "resumed", (el) => el.xmlns === NS_SM)).name, "resumed");
    await until(ws, "the message", (el) => el.attrs.id === "while away");
    assert.deepEqual((await bob.barrier()).filter(isGoodbye), []);
    await ws.close();
    await bob.until("goodbye", isGoodbye);
    await bob.close();
  } finally {
    await server.stop();
  }
});

Deno.test("bosh sm: resuming a BOSH session still polled ends it with a conflict", async () => {
  const server = await startTestServer(SETTINGS);
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const bob = await bobOnline(server);
    const { c: a, id } = await aliceOverBosh(server);
    a.answerRequests = false;
    bob.send(chat(ALICE, "m1"));
    await until(a, "m1", (el) => el.attrs.id === "m1");
    // A long poll is held when the session is resumed elsewhere.
    const poll = a.post({});
    const a2 = boshXmpp(server.httpPort!);
    await login(a2, "alice");
    await a2.send(elem("resume", { xmlns: NS_SM, previd: id, h: "0" }));
    assert.equal((await until(a2, "resumed", (el) => el.xmlns === NS_SM)).name, "resumed");
    await until(a2, "m1 again", (el) => el.attrs.id === "m1");
    const ended = await poll;
    assert.equal(ended.attrs.type, "terminate");
    assert.equal(ended.attrs.condition, "remote-stream-error");
    const error = child(ended, "error", "http://etherx.jabber.org/streams");
    assert.ok(error && child(error, "conflict", "urn:ietf:params:xml:ns:xmpp-streams"));
    bob.send(chat(ALICE, "m2"));
    await until(a2, "m2", (el) => el.attrs.id === "m2");
    assert.deepEqual((await bob.barrier()).filter(isGoodbye), []);
    await a2.post({ type: "terminate" });
    await bob.until("goodbye", isGoodbye);
    await bob.close();
  } finally {
    await server.stop();
  }
});

Deno.test("bosh sm: without resumption, a client silent past inactivity is gone", async () => {
  const server = await startTestServer(SETTINGS);
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const bob = await bobOnline(server);
    const { c: a } = await aliceOverBosh(server, false);
    await bob.until("alice's presence", (el) => el.name === "presence" && el.attrs.from === ALICE);
    await goSilent(a, 1);
    await bob.until("goodbye", isGoodbye, 5000);
    await a.post({});
    assert.equal(a.terminated, "item-not-found");
    await bob.close();
  } finally {
    await server.stop();
  }
});

/** A short description of a stanza from Alice, for order assertions. */
function describe(st: Element): string {
  if (st.name === "presence") {
    const show = child(st, "show", "jabber:client");
    return `presence ${show === undefined ? st.attrs.type ?? "" : text(show)}`;
  }
  const body = bodyOf(st);
  if (body !== "") return `body ${body}`;
  const state = st.children.find((c): c is Element =>
    typeof c !== "string" && c.xmlns === NS_CHATSTATES
  );
  return `state ${state?.name}`;
}

Deno.test("bosh csi: inactive holds and collapses updates until something matters; active flushes", async () => {
  const server = await startTestServer(SETTINGS);
  let alice: RawClient | undefined;
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    alice = await RawClient.online(server.c2sPort, "alice", "a");
    const bob = boshXmpp(server.httpPort!);
    const features = await login(bob, "bob");
    assert.ok(child(features, "csi", NS_CSI), "<csi/> offered");
    await bind(bob, "pc");
    await bob.send(stanza("presence", {}));
    await sync(bob);

    await bob.send(elem("inactive", { xmlns: NS_CSI }));
    await sync(bob);
    const mark = bob.read.length;
    const fromAlice = () =>
      bob.read.slice(mark).filter((el) => isStanza(el) && el.attrs.from === "alice@localhost/a");

    for (const show of ["away", "xa", "dnd"]) {
      alice.send(stanza("presence", { to: BOB }, [elem("show", {}, [show])]));
    }
    for (const state of ["composing", "paused"]) {
      alice.send(
        stanza("message", { to: BOB, type: "chat" }, [elem(state, { xmlns: NS_CHATSTATES })]),
      );
    }
    await alice.ping();
    // Long polls come back empty: nothing is written to the BOSH session.
    await drain(bob, 1500);
    assert.deepEqual(fromAlice().map(describe), [], "stanzas reached an inactive client");

    alice.send(chat(BOB, "hello"));
    await until(bob, "the message", (el) => bodyOf(el) === "hello");
    assert.deepEqual(fromAlice().map(describe), ["presence dnd", "state paused", "body hello"]);

    alice.send(stanza("presence", { to: BOB }, [elem("show", {}, ["chat"])]));
    await alice.ping();
    await drain(bob, 1500);
    assert.equal(fromAlice().length, 3);
    await bob.send(elem("active", { xmlns: NS_CSI }));
    await sync(bob);
    assert.deepEqual(fromAlice().map(describe), [
      "presence dnd",
      "state paused",
      "body hello",
      "presence chat",
    ]);
    await bob.post({ type: "terminate" });
  } finally {
    await alice?.close();
    await server.stop();
  }
});
