/**
 * XEP-0198 (stream management) and XEP-0352 (client state indication) over WebSocket (RFC 7395)
 * against a real server on ephemeral ports, as tests/integration/stream_management_test.ts and
 * csi_test.ts check them over TCP: `<enable/>`, `<r/>` and `<a/>`, resumption on a new
 * WebSocket after the old one dropped without `<close/>`, the resume timeout, and an inactive
 * client's held and collapsed updates. The peer is a TCP client.
 */
import assert from "node:assert/strict";
import { startTestServer, type TestServer } from "../integration/_server.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { child, elem, type Element, stanza, text } from "../../lib/xml/element.ts";
import { NS_CHATSTATES, NS_CSI, NS_SM, NS_STANZA_ERRORS } from "../../lib/xmpp/namespaces.ts";
import {
  bind,
  bodyOf,
  drain,
  isStanza,
  login,
  sync,
  until,
  type WsXmpp,
  wsXmpp,
} from "./_web_xmpp.ts";

const ALICE = "alice@localhost/web";
const BOB = "bob@localhost/pc";
const SETTINGS = { require_encryption: false, http: { http_port: 0 } };

function chat(to: string, body: string): Element {
  return stanza("message", { to, type: "chat", id: body }, [elem("body", {}, [body])]);
}

/** Bob over TCP, available, reading everything into `seen`. */
async function bobOnline(server: TestServer) {
  const raw = await RawClient.online(server.c2sPort, "bob", "pc");
  raw.send(stanza("presence", {}));
  await raw.until("bob's own presence", (el) => el.name === "presence");
  return raw;
}

/** Alice over WebSocket: logged in, bound, resumable SM on, directed presence to Bob. */
async function aliceManaged(server: TestServer) {
  const c = await wsXmpp(server.httpPort!);
  const features = await login(c, "alice");
  assert.ok(child(features, "sm", NS_SM), "<sm/> offered after authentication");
  assert.ok(child(features, "csi", NS_CSI), "<csi/> offered after authentication");
  assert.equal(await bind(c, "web"), ALICE);
  await c.send(elem("enable", { xmlns: NS_SM, resume: "true" }));
  const enabled = await until(c, "enabled", (el) => el.xmlns === NS_SM);
  assert.equal(enabled.name, "enabled");
  assert.equal(enabled.attrs.resume, "true");
  // Counted by the server: Alice's stanza 1.
  await c.send(stanza("presence", { to: "bob@localhost" }));
  // Stanzas read before <enabled/> (the bind result) are not counted by the server.
  c.h = 0;
  return { c, id: enabled.attrs.id, max: enabled.attrs.max };
}

const isGoodbye = (el: Element) =>
  el.name === "presence" && el.attrs.from === ALICE && el.attrs.type === "unavailable";

const messages = (els: readonly Element[]) => els.filter((el) => el.name === "message").map(bodyOf);

Deno.test("websocket sm: acks, then a dropped socket resumes on a new one with the unacknowledged", async () => {
  const server = await startTestServer(SETTINGS);
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const bob = await bobOnline(server);
    const { c: a, id, max } = await aliceManaged(server);
    assert.equal(max, "300");
    await bob.until("alice's presence", (el) => el.name === "presence" && el.attrs.from === ALICE);

    // Alice reads m1..m3; the server asks for acks with <r/>, she answers only through m1.
    a.answerRequests = false;
    for (const m of ["m1", "m2", "m3"]) bob.send(chat(ALICE, m));
    await until(a, "m1", (el) => el.attrs.id === "m1");
    const ackedThroughM1 = a.h;
    await until(a, "m3", (el) => el.attrs.id === "m3");
    assert.deepEqual(messages(a.read), ["m1", "m2", "m3"]);
    assert.ok(a.read.some((el) => el.xmlns === NS_SM && el.name === "r"), "the server sent <r/>");
    await a.send(elem("a", { xmlns: NS_SM, h: String(ackedThroughM1) }));
    // Her <r/>: one stanza (the presence) handled so far.
    await a.send(elem("r", { xmlns: NS_SM }));
    const answer = await until(
      a,
      "the server's <a/>",
      (el) => el.xmlns === NS_SM && el.name === "a",
    );
    assert.equal(answer.attrs.h, "1");

    // The socket goes without <close/>; Bob keeps writing, and hears no goodbye.
    await a.cut();
    await new Promise((r) => setTimeout(r, 200));
    for (const m of ["m4", "m5"]) bob.send(chat(ALICE, m));
    assert.deepEqual((await bob.barrier()).filter(isGoodbye), []);

    // A new WebSocket: log in, resume instead of binding.
    const a2 = await wsXmpp(server.httpPort!);
    await login(a2, "alice");
    a2.h = ackedThroughM1;
    await a2.send(elem("resume", { xmlns: NS_SM, previd: id, h: String(ackedThroughM1) }));
    const resumed = await until(a2, "resumed", (el) => el.xmlns === NS_SM);
    assert.equal(resumed.name, "resumed");
    assert.equal(resumed.attrs.previd, id);
    assert.equal(resumed.attrs.h, "1");
    await drain(a2, 500);
    assert.deepEqual(messages(a2.read), ["m2", "m3", "m4", "m5"]);

    // The session goes on over the new socket, both ways, with the same full JID.
    bob.send(chat(ALICE, "m6"));
    await until(a2, "m6", (el) => el.attrs.id === "m6");
    await a2.send(chat(BOB, "hello again"));
    // Archived for Alice, then for Bob, before it reaches him: a ping of Bob's may overtake it.
    const seen: Element[] = [];
    const back = await bob.until("hello again", (el) => {
      seen.push(el);
      return el.name === "message";
    });
    assert.equal(back.attrs.from, ALICE);
    assert.equal(bodyOf(back), "hello again");
    assert.deepEqual([...seen, ...await bob.barrier()].filter(isGoodbye), []);
    // Acks go on from the resumed count: m2..m6 read, and the server's h grew by the message.
    await a2.send(elem("r", { xmlns: NS_SM }));
    const after = await until(
      a2,
      "the server's <a/>",
      (el) => el.xmlns === NS_SM && el.name === "a",
    );
    assert.equal(after.attrs.h, "2");
    assert.equal(a2.h, ackedThroughM1 + 5);

    // A clean <close/> ends the session: Bob hears it once.
    await a2.close();
    await bob.until("goodbye", isGoodbye);
    assert.deepEqual((await bob.barrier()).filter(isGoodbye), []);
    await bob.close();
  } finally {
    await server.stop();
  }
});

Deno.test("websocket sm: at the resume timeout the unacknowledged go offline; resuming then fails", async () => {
  const server = await startTestServer({ ...SETTINGS, limits: { sm_resume_timeout: 1 } });
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const bob = await bobOnline(server);
    const { c: a, id, max } = await aliceManaged(server);
    assert.equal(max, "1");
    await bob.until("alice's presence", (el) => el.name === "presence" && el.attrs.from === ALICE);
    a.answerRequests = false;
    bob.send(chat(ALICE, "m1"));
    await until(a, "m1", (el) => el.attrs.id === "m1");
    await a.cut();
    await new Promise((r) => setTimeout(r, 100));
    bob.send(chat(ALICE, "m2"));
    await bob.until("goodbye", isGoodbye);

    const a2 = await wsXmpp(server.httpPort!);
    await login(a2, "alice");
    await a2.send(elem("resume", { xmlns: NS_SM, previd: id, h: "0" }));
    const failed = await until(a2, "failed", (el) => el.xmlns === NS_SM);
    assert.equal(failed.name, "failed");
    assert.ok(child(failed, "item-not-found", NS_STANZA_ERRORS));
    // A fresh session gets both from offline storage.
    await bind(a2, "web");
    await a2.send(stanza("presence", {}));
    await until(a2, "m2 from storage", (el) => el.attrs.id === "m2");
    assert.deepEqual(messages(a2.read), ["m1", "m2"]);
    await a2.close();
    await bob.close();
  } finally {
    await server.stop();
  }
});

Deno.test("websocket sm: resuming a socket that still looks alive closes it with conflict", async () => {
  const server = await startTestServer(SETTINGS);
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const bob = await bobOnline(server);
    const { c: a, id } = await aliceManaged(server);
    a.answerRequests = false;
    bob.send(chat(ALICE, "m1"));
    await until(a, "m1", (el) => el.attrs.id === "m1");

    const a2 = await wsXmpp(server.httpPort!);
    await login(a2, "alice");
    await a2.send(elem("resume", { xmlns: NS_SM, previd: id, h: "0" }));
    assert.equal((await until(a2, "resumed", (el) => el.xmlns === NS_SM)).name, "resumed");
    await until(a2, "m1 again", (el) => el.attrs.id === "m1");
    // The old socket gets a stream error and <close/>, then closes.
    const error = await until(a, "the old stream's error", (el) => el.name === "error");
    assert.ok(child(error, "conflict", "urn:ietf:params:xml:ns:xmpp-streams"));
    await until(a, "<close/>", (el) => el.name === "close");
    await a.closed;
    bob.send(chat(ALICE, "m2"));
    await until(a2, "m2", (el) => el.attrs.id === "m2");
    await a2.close();
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

Deno.test("websocket csi: inactive holds and collapses updates until something matters; active flushes", async () => {
  const server = await startTestServer(SETTINGS);
  let alice: RawClient | undefined;
  let bob: WsXmpp | undefined;
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    alice = await RawClient.online(server.c2sPort, "alice", "a");
    bob = await wsXmpp(server.httpPort!);
    const features = await login(bob, "bob");
    assert.ok(child(features, "csi", NS_CSI), "<csi/> offered");
    await bind(bob, "pc");
    await bob.send(stanza("presence", {}));
    await sync(bob);

    await bob.send(elem("inactive", { xmlns: NS_CSI }));
    await sync(bob);
    const mark = bob.read.length;
    const fromAlice = () =>
      bob!.read.slice(mark).filter((el) => isStanza(el) && el.attrs.from === "alice@localhost/a");

    // Presence updates (directed) and chat states: held, each kind collapsed per sender.
    for (const show of ["away", "xa", "dnd"]) {
      alice.send(stanza("presence", { to: BOB }, [elem("show", {}, [show])]));
    }
    for (const state of ["composing", "paused"]) {
      alice.send(
        stanza("message", { to: BOB, type: "chat" }, [elem(state, { xmlns: NS_CHATSTATES })]),
      );
    }
    await alice.ping();
    await drain(bob, 300);
    assert.deepEqual(fromAlice().map(describe), [], "stanzas reached an inactive client");

    // A message with a body matters: the latest presence and chat state first, then it.
    alice.send(chat(BOB, "hello"));
    await until(bob, "the message", (el) => bodyOf(el) === "hello");
    assert.deepEqual(fromAlice().map(describe), ["presence dnd", "state paused", "body hello"]);

    // Still inactive: the next update waits until Bob is active again.
    alice.send(stanza("presence", { to: BOB }, [elem("show", {}, ["chat"])]));
    await alice.ping();
    await drain(bob, 300);
    assert.equal(fromAlice().length, 3);
    await bob.send(elem("active", { xmlns: NS_CSI }));
    await sync(bob);
    assert.deepEqual(fromAlice().map(describe), [
      "presence dnd",
      "state paused",
      "body hello",
      "presence chat",
    ]);
  } finally {
    await bob?.close();
    await alice?.close();
    await server.stop();
  }
});
