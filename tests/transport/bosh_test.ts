/**
 * The BOSH service (lib/transport/bosh.ts) with requests handed to it directly and a toy kind of
 * connection behind it: session creation, the rid window and reordering, repeats, too many
 * requests, terminate, an unknown sid, held requests timing out, inactivity, pauses (§10).
 */
import assert from "node:assert/strict";
import { createBosh, NS_HTTPBIND } from "../../lib/transport/bosh.ts";
import { boshUrlOf, hostMetaXrd } from "../../lib/transport/http.ts";
import { createDriver, type DriverKind, type Frame } from "../../lib/transport/driver.ts";
import { createMessageParser, parseMessage } from "../../lib/transport/websocket.ts";
import type { ParseEvent } from "../../lib/xml/parser.ts";
import type { Element } from "../../lib/xml/element.ts";

type Out = Frame | { readonly kind: "disconnect" };

/** The toy session: what it saw, in order. */
type S = readonly string[];

const seen: string[][] = [];

/** Answers `<open/>` with a header and features, echoes stanzas (but `<quiet/>`), ends on close. */
const TOY: DriverKind<S, ParseEvent | { kind: "gone"; reason: string }, Out> = {
  reduce(s, ev) {
    const next = [...s, ev.kind === "stanza" ? ev.stanza.name : ev.kind];
    seen[seen.length - 1] = next;
    switch (ev.kind) {
      case "stream-open":
        return [next, [
          { kind: "open-stream", header: { ns: "jabber:client", id: "s1", from: "localhost" } },
          {
            kind: "send",
            stanza: {
              name: "features",
              xmlns: "http://etherx.jabber.org/streams",
              attrs: {},
              children: [],
            },
          },
        ]];
      case "stanza":
        return [next, ev.stanza.name === "quiet" ? [] : [{ kind: "send", stanza: ev.stanza }]];
      case "stream-close":
        return [next, [{ kind: "close-stream" }, { kind: "disconnect" }]];
      case "gone":
        return [next, [{ kind: "disconnect" }]];
      default:
        return [next, [{ kind: "close-stream" }, { kind: "disconnect" }]];
    }
  },
  execute() {},
  parsed: (ev) => ev,
  disconnected: (reason) => ({ kind: "gone", reason }),
  dropped() {},
};

const PEER = { ip: "127.0.0.1", secure: false };

function service(
  opts: { wait?: number; inactivity?: number; requests?: number; maxpause?: number } = {},
) {
  let n = 0;
  const ended: Promise<void>[] = [];
  const bosh = createBosh({
    maxBodyBytes: 10_000,
    corsOrigins: [],
    newSid: () => `sid${++n}`,
    ...opts,
    admit: () => ({
      ok: true,
      start(transport) {
        seen.push([]);
        const d = createDriver(
          TOY,
          [] as S,
          {
            writeBacklog: 100_000,
            maxStanzaBytes: 10_000,
            maxDepth: 20,
            parser: createMessageParser,
          },
          {},
          transport,
        );
        ended.push(d.finished);
        return d.finished;
      },
    }),
  });
  return { bosh, ended };
}

async function post(
  bosh: ReturnType<typeof createBosh>,
  attrs: string,
  content = "",
): Promise<Element> {
  const res = await bosh.handle(
    new Request("http://localhost/http-bind", {
      method: "POST",
      body: `<body xmlns='${NS_HTTPBIND}' ${attrs}>${content}</body>`,
    }),
    PEER,
  );
  assert.equal(res.status, 200);
  const ev = parseMessage(new TextEncoder().encode(await res.text()), 100_000);
  assert.equal(ev?.kind, "stanza");
  return (ev as { stanza: Element }).stanza;
}

const names = (body: Element) =>
  body.children.flatMap((c) => typeof c === "string" ? [] : [c.name]);

/** A session created with rid 100; returns the service and its sid. */
async function session(opts: Parameters<typeof service>[0] = {}) {
  const s = service(opts);
  const created = await post(s.bosh, "rid='100' to='localhost' wait='30' hold='1'");
  return { ...s, created, sid: created.attrs.sid };
}

/** Lets timers and microtasks run. */
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));

Deno.test("bosh: session creation answers with the session's attributes and the features", async () => {
  const { bosh, created, sid } = await session({ wait: 60 });
  assert.equal(sid, "sid1");
  assert.equal(created.attrs.wait, "30");
  assert.equal(created.attrs.hold, "1");
  assert.equal(created.attrs.requests, "2");
  assert.equal(created.attrs.inactivity, "60");
  assert.equal(created.attrs.authid, "s1");
  assert.equal(created.attrs.from, "localhost");
  assert.equal(created.attrs.ver, "1.11");
  assert.deepEqual(names(created), ["features"]);
  assert.deepEqual(seen.at(-1), ["stream-open"]);
  const bye = await post(bosh, `sid='${sid}' rid='101' type='terminate'`);
  assert.equal(bye.attrs.type, "terminate");
  assert.equal(bosh.size(), 0);
});

Deno.test("bosh: out-of-order rids wait for the gap, then run in order", async () => {
  const { bosh, sid, ended } = await session();
  const third = post(bosh, `sid='${sid}' rid='102'`, "<b xmlns='jabber:client'/>");
  await tick();
  assert.deepEqual(seen.at(-1), ["stream-open"]);
  const second = post(bosh, `sid='${sid}' rid='101'`, "<a xmlns='jabber:client'/>");
  // 101 then 102: the first is answered with both echoes as the second is held (hold=1).
  const a = await second;
  assert.deepEqual(seen.at(-1), ["stream-open", "a", "b"]);
  assert.deepEqual(names(a), ["a", "b"]);
  const bye = post(bosh, `sid='${sid}' rid='103' type='terminate'`);
  assert.deepEqual(names(await third), []);
  assert.equal((await bye).attrs.type, "terminate");
  await Promise.all(ended);
});

Deno.test("bosh: a repeated rid gets its answer again; beyond the window, item-not-found", async () => {
  const { bosh, sid, ended } = await session();
  const first = await post(bosh, `sid='${sid}' rid='101'`, "<a xmlns='jabber:client'/>");
  assert.deepEqual(names(first), ["a"]);
  const again = await post(bosh, `sid='${sid}' rid='101'`);
  assert.deepEqual(names(again), ["a"]);
  const far = await post(bosh, `sid='${sid}' rid='200'`);
  assert.equal(far.attrs.type, "terminate");
  assert.equal(far.attrs.condition, "item-not-found");
  await Promise.all(ended);
  assert.equal(seen.at(-1)!.at(-1), "gone");
  assert.equal(bosh.size(), 0);
  // A repeat too old to be kept ends a session too.
  const s2 = await session();
  for (let rid = 101; rid <= 104; rid++) {
    await post(s2.bosh, `sid='${s2.sid}' rid='${rid}'`, "<a xmlns='jabber:client'/>");
  }
  const old = await post(s2.bosh, `sid='${s2.sid}' rid='101'`);
  assert.equal(old.attrs.condition, "item-not-found");
  await Promise.all(s2.ended);
});

Deno.test("bosh: more than `requests` requests at once is a policy violation", async () => {
  const { bosh, sid, ended } = await session();
  // 101 is held; 103 waits for 102; 104 is one too many.
  const held = post(bosh, `sid='${sid}' rid='101'`, "<quiet xmlns='jabber:client'/>");
  const waiting = post(bosh, `sid='${sid}' rid='103'`);
  await tick();
  const over = await post(bosh, `sid='${sid}' rid='104'`);
  assert.equal(over.attrs.condition, "policy-violation");
  assert.equal((await held).attrs.type, "terminate");
  assert.equal((await waiting).attrs.type, "terminate");
  await Promise.all(ended);
  assert.equal(seen.at(-1)!.at(-1), "gone");
});

Deno.test("bosh: an unknown sid, a bad body, a body over the limit", async () => {
  const { bosh } = service();
  const unknown = await post(bosh, "sid='nope' rid='1'");
  assert.equal(unknown.attrs.condition, "item-not-found");
  const noTo = await post(bosh, "rid='1'");
  assert.equal(noTo.attrs.condition, "bad-request");
  const huge = await post(bosh, "rid='1' to='localhost'", "<a>" + "x".repeat(20_000) + "</a>");
  assert.equal(huge.attrs.condition, "policy-violation");
  const notBody = await bosh.handle(
    new Request("http://localhost/http-bind", { method: "POST", body: "<x/>" }),
    PEER,
  );
  assert.match(await notBody.text(), /condition='bad-request'/);
  const get = await bosh.handle(new Request("http://localhost/http-bind"), PEER);
  await get.body?.cancel();
  assert.equal(get.status, 405);
});

Deno.test("bosh: a held request is answered empty after `wait`; the session ends after `inactivity`", async () => {
  const { bosh, ended } = service({ inactivity: 1 });
  const created = await post(bosh, "rid='100' to='localhost' wait='1' hold='1'");
  const sid = created.attrs.sid;
  const started = Date.now();
  const empty = await post(bosh, `sid='${sid}' rid='101'`, "<quiet xmlns='jabber:client'/>");
  const took = Date.now() - started;
  assert.deepEqual(names(empty), []);
  assert.equal(empty.attrs.type, undefined);
  assert.ok(took >= 900 && took < 3000, `answered after ${took} ms`);
  // No more requests: the session goes through the destroy path.
  await Promise.all(ended);
  assert.equal(seen.at(-1)!.at(-1), "gone");
  assert.equal(bosh.size(), 0);
});

Deno.test("bosh: a pause answers every request at once, empty, and the session waits `pause` seconds", async () => {
  const { bosh, ended } = service({ inactivity: 1, maxpause: 5 });
  const created = await post(bosh, "rid='100' to='localhost' wait='30' hold='1'");
  assert.equal(created.attrs.maxpause, "5");
  const sid = created.attrs.sid;
  const held = post(bosh, `sid='${sid}' rid='101'`, "<quiet xmlns='jabber:client'/>");
  await tick(50);
  const started = Date.now();
  // The pause request carries a stanza whose echo must wait for the client's return.
  const paused = await post(bosh, `sid='${sid}' rid='102' pause='3'`, "<a xmlns='jabber:client'/>");
  const first = await held;
  assert.ok(Date.now() - started < 500, "answered at once");
  assert.deepEqual(names(first), []);
  assert.equal(first.attrs.type, undefined);
  // §10: no payload in the answer to the pause.
  assert.deepEqual(names(paused), []);
  assert.equal(paused.attrs.type, undefined);
  assert.deepEqual(seen.at(-1), ["stream-open", "quiet", "a"]);
  // Past `inactivity` (1 s), within the pause (3 s): still there.
  await tick(1800);
  assert.equal(bosh.size(), 1);
  assert.notEqual(seen.at(-1)!.at(-1), "gone");
  // Back: what waited comes at once, and the pause is over.
  const back = await post(bosh, `sid='${sid}' rid='103'`);
  assert.deepEqual(names(back), ["a"]);
  const answered = Date.now();
  await Promise.all(ended);
  const gone = Date.now() - answered;
  assert.ok(gone >= 900 && gone < 2500, `ended ${gone} ms after the last answer`);
  assert.equal(seen.at(-1)!.at(-1), "gone");
  assert.equal(bosh.size(), 0);
});

Deno.test("bosh: a pause shorter than `inactivity` notices a silent client sooner", async () => {
  const { bosh, sid, ended } = await session({ inactivity: 60 });
  const started = Date.now();
  const paused = await post(bosh, `sid='${sid}' rid='101' pause='1'`);
  assert.deepEqual(names(paused), []);
  await Promise.all(ended);
  const took = Date.now() - started;
  assert.ok(took >= 900 && took < 3000, `ended after ${took} ms`);
  assert.equal(seen.at(-1)!.at(-1), "gone");
  assert.equal(bosh.size(), 0);
});

Deno.test("bosh: a pause over maxpause is a policy violation, a malformed one a bad request", async () => {
  const { bosh, sid, ended } = await session({ maxpause: 2 });
  const held = post(bosh, `sid='${sid}' rid='101'`, "<quiet xmlns='jabber:client'/>");
  await tick(50);
  const over = await post(bosh, `sid='${sid}' rid='102' pause='3'`);
  assert.equal(over.attrs.type, "terminate");
  assert.equal(over.attrs.condition, "policy-violation");
  assert.equal((await held).attrs.type, "terminate");
  await Promise.all(ended);
  assert.equal(seen.at(-1)!.at(-1), "gone");
  assert.equal(bosh.size(), 0);
  // At maxpause exactly it is allowed; zero or garbage is not a pause.
  const ok = await session({ maxpause: 2 });
  assert.deepEqual(names(await post(ok.bosh, `sid='${ok.sid}' rid='101' pause='2'`)), []);
  assert.equal(ok.bosh.size(), 1);
  const zero = await post(ok.bosh, `sid='${ok.sid}' rid='102' pause='0'`);
  assert.equal(zero.attrs.condition, "bad-request");
  await Promise.all(ok.ended);
  const bad = await session();
  const garbage = await post(bad.bosh, `sid='${bad.sid}' rid='101' pause='soon'`);
  assert.equal(garbage.attrs.condition, "bad-request");
  await Promise.all(bad.ended);
});

Deno.test("bosh: CORS preflight follows cors_origins", async () => {
  const bosh = createBosh({
    maxBodyBytes: 1000,
    corsOrigins: ["https://chat.example.org"],
    admit: () => ({ ok: false, reason: "no" }),
  });
  const pre = await bosh.handle(
    new Request("http://localhost/http-bind", {
      method: "OPTIONS",
      headers: { origin: "https://chat.example.org" },
    }),
    PEER,
  );
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get("access-control-allow-origin"), "https://chat.example.org");
  assert.equal(pre.headers.get("access-control-allow-headers"), "content-type");
  const foreign = await bosh.handle(
    new Request("http://localhost/http-bind", {
      method: "OPTIONS",
      headers: { origin: "https://evil.example" },
    }),
    PEER,
  );
  await foreign.body?.cancel();
  assert.equal(foreign.status, 403);
});

Deno.test("bosh: discovery lists the BOSH URL beside the WebSocket one", () => {
  assert.equal(
    boshUrlOf("wss://xmpp.example.org/chat/xmpp-websocket"),
    "https://xmpp.example.org/chat/http-bind",
  );
  assert.equal(boshUrlOf("ws://127.0.0.1:5280/xmpp-websocket"), "http://127.0.0.1:5280/http-bind");
  assert.match(
    hostMetaXrd("ws://a/xmpp-websocket", "http://a/http-bind"),
    /rel='urn:xmpp:alt-connections:xbosh' href='http:\/\/a\/http-bind'/,
  );
});
