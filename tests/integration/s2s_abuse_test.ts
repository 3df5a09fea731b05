/**
 * Bad input on the server-to-server port of a real server (`a.localhost`), with a second real
 * instance (`b.localhost`) as the authoritative server that dialback checks ask: headers for
 * domains we do not serve or in the wrong namespace, stanzas before authentication and with a
 * `from` nobody authenticated, a wrong dialback key, a claim for a domain nobody can reach, more
 * claims than one stream may hold, a flood of stanzas and an oversized one. After each, the
 * server still serves: the two servers still federate, and a client still gets answers.
 *
 * Plain text (`s2s_require_encryption = false`) keeps the raw peer simple; the TLS rule has its
 * own test in s2s_test.ts.
 */
import assert from "node:assert/strict";
import { closeAll, connectPeer, type Peer } from "./_peer.ts";
import { rawExchange, retryWhenPortTaken, startTestServer, type TestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { createStreamParser, type ParseEvent } from "../../lib/xml/parser.ts";
import type { Element } from "../../lib/xml/element.ts";
import { dialbackKey } from "../../lib/xmpp/dialback.ts";

const STREAMS = "http://etherx.jabber.org/streams";
const STREAM_ERRORS = "urn:ietf:params:xml:ns:xmpp-streams";
const DIALBACK = "jabber:server:dialback";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** A header from `from` to `to` on a server stream, with the dialback prefix. */
function s2sHeader(from: string, to: string, extra = ""): string {
  return `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='${STREAMS}'` +
    ` xmlns:db='${DIALBACK}' from='${from}' to='${to}' version='1.0'${extra}>`;
}

/** The condition of the stream error in `text`, if any. */
function streamError(text: string): string | undefined {
  return /<stream:error><([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-streams"/.exec(text)?.[1];
}

/**
 * A hole: accepts connections and never answers, so that a dialback check sent there stays
 * pending (until the server's own timeouts).
 */
function blackHole(): { readonly port: number; close(): void } {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  (async () => {
    try {
      for await (const c of l) held.push(c);
    } catch {
      // closed
    }
  })();
  return {
    port: (l.addr as Deno.NetAddr).port,
    close() {
      l.close();
      for (const c of held) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
    },
  };
}

/** A raw server-to-server peer: writes text, reads parse events. */
interface RawS2s {
  /** The id of the stream the server gave us (after {@linkcode RawS2s.open}). */
  readonly id: () => string;
  /** Sends a header and waits for the server's header and features. */
  open(from: string, to: string): Promise<void>;
  send(text: string): Promise<void>;
  /** The next stanza matching `pred` (past ones included), or a timeout error. */
  next(pred: (el: Element) => boolean, what: string, ms?: number): Promise<Element>;
  /** Resolves true when the server closes the connection within `ms`. */
  closed(ms?: number): Promise<boolean>;
  close(): void;
}

async function rawS2s(port: number): Promise<RawS2s> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const parser = createStreamParser({ maxStanzaBytes: 1 << 22 });
  const events: ParseEvent[] = [];
  let ended = false;
  let wake: (() => void) | undefined;
  let id = "";
  (async () => {
    const buf = new Uint8Array(65536);
    try {
      for (;;) {
        const n = await conn.read(buf);
        if (n === null) break;
        events.push(...parser.push(buf.subarray(0, n)));
        wake?.();
      }
    } catch {
      // closed by us
    }
    ended = true;
    wake?.();
  })();
  const enc = new TextEncoder();
  async function waitUntil<T>(find: () => T | undefined, what: string, ms: number): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = find();
      if (found !== undefined) return found;
      if (ended) throw new Error(`connection closed before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        wake = () => {
          clearTimeout(t);
          resolve();
        };
      });
    }
  }
  const self: RawS2s = {
    id: () => id,
    async open(from, to) {
      await self.send(s2sHeader(from, to));
      const open = await waitUntil(
        () => events.find((e) => e.kind === "stream-open"),
        "stream header",
        5000,
      );
      id = (open as Extract<ParseEvent, { kind: "stream-open" }>).attrs.id ?? "";
      await self.next((el) => el.name === "features", "features");
    },
    async send(text) {
      await conn.write(enc.encode(text));
    },
    next(pred, what, ms = 5000) {
      return waitUntil(
        () => {
          for (const e of events) if (e.kind === "stanza" && pred(e.stanza)) return e.stanza;
          return undefined;
        },
        what,
        ms,
      );
    },
    async closed(ms = 5000) {
      const deadline = Date.now() + ms;
      while (!ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      return ended;
    },
    close() {
      try {
        conn.close();
      } catch {
        // already closed
      }
    },
  };
  return self;
}

function dbResult(type: string, from: string): (el: Element) => boolean {
  return (el) =>
    el.xmlns === DIALBACK && el.name === "result" && el.attrs.type === type &&
    el.attrs.to === from;
}

function isStreamError(condition: string): (el: Element) => boolean {
  return (el) =>
    el.xmlns === STREAMS && el.name === "error" &&
    el.children.some((c) =>
      typeof c !== "string" && c.name === condition && c.xmlns === STREAM_ERRORS
    );
}

interface Pair {
  readonly a: TestServer;
  readonly b: TestServer;
  readonly hole: { readonly port: number; close(): void };
}

/** The domains a.localhost's static map sends into the black hole. */
const HOLES = Array.from({ length: 20 }, (_, i) => `hole${i + 1}.localhost`);

function startPair(): Promise<Pair> {
  return retryWhenPortTaken(startPairOnce);
}

async function startPairOnce(): Promise<Pair> {
  const pa = freePort();
  const pb = freePort();
  const hole = blackHole();
  const base = {
    s2s_require_encryption: false,
    muc: { enabled: false },
    pubsub: { enabled: false },
    upload: { enabled: false },
  };
  let a: TestServer;
  try {
    a = await startTestServer({
      ...base,
      hosts: ["a.localhost"],
      s2s_port: pa,
      s2s: {
        hosts: {
          "b.localhost": `127.0.0.1:${pb}`,
          // Nobody listens there: a connection is refused at once.
          "gone.localhost": `127.0.0.1:${freePort()}`,
          ...Object.fromEntries(HOLES.map((d) => [d, `127.0.0.1:${hole.port}`])),
        },
      },
    });
  } catch (err) {
    hole.close();
    throw err;
  }
  let b: TestServer;
  try {
    b = await startTestServer({
      ...base,
      hosts: ["b.localhost"],
      s2s_port: pb,
      s2s: { hosts: { "a.localhost": `127.0.0.1:${pa}` } },
    });
  } catch (err) {
    hole.close();
    await a.stop();
    throw err;
  }
  await a.accounts.create("a.localhost", "alice", "pw");
  await b.accounts.create("b.localhost", "bob", "pw");
  return { a, b, hole };
}

async function stopPair(p: Pair): Promise<void> {
  p.hole.close();
  await p.a.stop();
  await p.b.stop();
}

/** b.localhost's real dialback secret: what its own server makes keys with. */
async function secretOf(server: TestServer): Promise<string> {
  const bytes = await Deno.readFile(`${server.dataDir}/dialback.key`);
  return Array.from(bytes, (x) => x.toString(16).padStart(2, "0")).join("");
}

async function online(server: TestServer, user: string, domain: string): Promise<Peer> {
  const p = await connectPeer(server, user, undefined, { domain });
  await p.xmpp.send(xml("presence"));
  return p;
}

function bodyIs(text: string): (st: XmppClient) => boolean {
  return (st) => st.is("message") && st.getChildText("body") === text;
}

/** The servers still serve: a client's ping is answered, and a message crosses both ways. */
async function stillServing(alice: Peer, bob: Peer, tag: string): Promise<void> {
  const pong = await alice.xmpp.iqCaller.request(
    xml("iq", { type: "get", to: "a.localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
  );
  assert.equal(pong.attrs.type, "result");
  await alice.xmpp.send(
    xml("message", { to: bob.jid, type: "chat" }, xml("body", {}, `${tag} to bob`)),
  );
  await bob.waitFor(bodyIs(`${tag} to bob`), `${tag}: alice's message`, 10_000);
  await bob.xmpp.send(
    xml("message", { to: alice.jid, type: "chat" }, xml("body", {}, `${tag} to alice`)),
  );
  await alice.waitFor(bodyIs(`${tag} to alice`), `${tag}: bob's message`, 10_000);
}

Deno.test("s2s abuse: bad stream headers get their stream errors", async () => {
  const pair = await startPair();
  try {
    const port = pair.a.s2sPort!;
    const cases: [string, string, string][] = [
      ["a domain we do not serve", s2sHeader("b.localhost", "c.example"), "host-unknown"],
      [
        "no to",
        `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='${STREAMS}' ` +
        `from='b.localhost' version='1.0'>`,
        "host-unknown",
      ],
      [
        "the client namespace",
        s2sHeader("b.localhost", "a.localhost").replace(
          "xmlns='jabber:server'",
          "xmlns='jabber:client'",
        ),
        "invalid-namespace",
      ],
      [
        "a wrong stream namespace",
        s2sHeader("b.localhost", "a.localhost").replace(
          `xmlns:stream='${STREAMS}'`,
          "xmlns:stream='urn:x'",
        ),
        "invalid-namespace",
      ],
      [
        "broken XML",
        s2sHeader("b.localhost", "a.localhost") + "<db:result></x>",
        "not-well-formed",
      ],
      [
        "a comment",
        s2sHeader("b.localhost", "a.localhost") + "<!-- x -->",
        "restricted-xml",
      ],
      [
        "an unknown element",
        s2sHeader("b.localhost", "a.localhost") + "<auth xmlns='urn:x'/>",
        "unsupported-stanza-type",
      ],
    ];
    for (const [name, input, condition] of cases) {
      const { text, closed } = await rawExchange(port, input);
      assert.equal(streamError(text), condition, `${name}: ${text}`);
      assert.ok(closed, `${name}: the server closes the connection`);
      assert.ok(text.startsWith("<?xml version='1.0'?><stream:stream "), `${name}: ${text}`);
      assert.ok(text.endsWith("</stream:stream>"), `${name}: ${text}`);
    }
  } finally {
    await stopPair(pair);
  }
});

Deno.test("s2s abuse: stanzas before authentication, and with a from not authenticated", async () => {
  const pair = await startPair();
  let peer: RawS2s | undefined;
  try {
    const port = pair.a.s2sPort!;
    const msg = (from: string) =>
      `<message from='${from}' to='alice@a.localhost'><body>x</body></message>`;
    // No dialback at all.
    const r = await rawExchange(
      port,
      s2sHeader("b.localhost", "a.localhost") + msg("m@b.localhost"),
    );
    assert.equal(streamError(r.text), "invalid-from", r.text);
    assert.ok(r.closed);
    // A key sent but not yet verified does not count either.
    const early = await rawExchange(
      port,
      s2sHeader("b.localhost", "a.localhost") +
        "<db:result from='b.localhost' to='a.localhost'>00</db:result>" + msg("m@b.localhost"),
    );
    assert.equal(streamError(early.text), "invalid-from", early.text);
    // Authenticated as b.localhost (with b's real key), a stanza claiming another domain.
    peer = await rawS2s(port);
    await peer.open("b.localhost", "a.localhost");
    const key = dialbackKey(await secretOf(pair.b), "a.localhost", "b.localhost", peer.id());
    await peer.send(`<db:result from='b.localhost' to='a.localhost'>${key}</db:result>`);
    await peer.next(dbResult("valid", "b.localhost"), "db:result valid", 10_000);
    await peer.send(msg("m@evil.example"));
    await peer.next(isStreamError("invalid-from"), "invalid-from");
    assert.ok(await peer.closed());
  } finally {
    peer?.close();
    await stopPair(pair);
  }
});

Deno.test("s2s abuse: a wrong key is invalid at the authoritative server: not-authorized", async () => {
  const pair = await startPair();
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  let peer: RawS2s | undefined;
  try {
    peer = await rawS2s(pair.a.s2sPort!);
    await peer.open("b.localhost", "a.localhost");
    // A key b.localhost's server never made (right shape, wrong secret).
    const forged = dialbackKey("not b's secret", "a.localhost", "b.localhost", peer.id());
    await peer.send(`<db:result from='b.localhost' to='a.localhost'>${forged}</db:result>`);
    await peer.next(dbResult("invalid", "b.localhost"), "db:result invalid", 10_000);
    await peer.next(isStreamError("not-authorized"), "not-authorized");
    assert.ok(await peer.closed());
    // A key of b's for another stream id is refused the same way (no replay).
    const other = await rawS2s(pair.a.s2sPort!);
    try {
      await other.open("b.localhost", "a.localhost");
      const replay = dialbackKey(await secretOf(pair.b), "a.localhost", "b.localhost", peer.id());
      await other.send(`<db:result from='b.localhost' to='a.localhost'>${replay}</db:result>`);
      await other.next(dbResult("invalid", "b.localhost"), "db:result invalid", 10_000);
      await other.next(isStreamError("not-authorized"), "not-authorized");
    } finally {
      other.close();
    }
    // The real b.localhost still federates with a.localhost.
    alice = await online(pair.a, "alice", "a.localhost");
    bob = await online(pair.b, "bob", "b.localhost");
    await stillServing(alice, bob, "after a forged key");
  } finally {
    peer?.close();
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await stopPair(pair);
  }
});

Deno.test("s2s abuse: a claim for a domain nobody can reach is invalid", async () => {
  const pair = await startPair();
  let peer: RawS2s | undefined;
  try {
    peer = await rawS2s(pair.a.s2sPort!);
    await peer.open("gone.localhost", "a.localhost");
    await peer.send("<db:result from='gone.localhost' to='a.localhost'>abcdef</db:result>");
    await peer.next(dbResult("invalid", "gone.localhost"), "db:result invalid", 10_000);
    await peer.next(isStreamError("not-authorized"), "not-authorized");
    assert.ok(await peer.closed());
  } finally {
    peer?.close();
    await stopPair(pair);
  }
});

Deno.test("s2s abuse: claims beyond the per-stream cap get resource-constraint", async () => {
  const pair = await startPair();
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  let peer: RawS2s | undefined;
  try {
    peer = await rawS2s(pair.a.s2sPort!);
    await peer.open("hole1.localhost", "a.localhost");
    // 16 (S2S_MAX_DOMAINS) checks stay pending at the black hole; the 17th cannot start.
    const claims = HOLES.slice(0, 17).map((d) =>
      `<db:result from='${d}' to='a.localhost'>ab</db:result>`
    );
    await peer.send(claims.join(""));
    const refused = await peer.next(
      (el) => el.name === "result" && el.attrs.type === "error",
      "a refused claim",
    );
    assert.equal(refused.attrs.to, "hole17.localhost");
    const error = refused.children.find((c): c is Element => typeof c !== "string")!;
    assert.equal(error.name, "error");
    // Unprefixed on the wire: in the stream's namespace (XEP-0220 §2.4).
    assert.equal(error.xmlns, "jabber:server");
    assert.ok(
      error.children.some((c) => typeof c !== "string" && c.name === "resource-constraint"),
      JSON.stringify(refused),
    );
    // Only that claim was refused: the stream stays open, the others wait.
    assert.equal(await peer.closed(500), false);
    for (const d of HOLES.slice(17)) {
      await peer.send(`<db:result from='${d}' to='a.localhost'>ab</db:result>`);
      const more = await peer.next(
        (el) => el.name === "result" && el.attrs.type === "error" && el.attrs.to === d,
        `${d} refused`,
      );
      assert.ok(more);
    }
    // The pending checks hold nothing that stops the server from federating meanwhile.
    alice = await online(pair.a, "alice", "a.localhost");
    bob = await online(pair.b, "bob", "b.localhost");
    await stillServing(alice, bob, "with 16 checks pending");
    await peer.send("</stream:stream>");
    assert.ok(await peer.closed());
  } finally {
    peer?.close();
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await stopPair(pair);
  }
});

Deno.test("s2s abuse: a flood of stanzas is delivered in order; an oversized one is a policy violation", async () => {
  const pair = await startPair();
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  let peer: RawS2s | undefined;
  try {
    alice = await online(pair.a, "alice", "a.localhost");
    bob = await online(pair.b, "bob", "b.localhost");
    peer = await rawS2s(pair.a.s2sPort!);
    await peer.open("b.localhost", "a.localhost");
    const key = dialbackKey(await secretOf(pair.b), "a.localhost", "b.localhost", peer.id());
    await peer.send(`<db:result from='b.localhost' to='a.localhost'>${key}</db:result>`);
    await peer.next(dbResult("valid", "b.localhost"), "db:result valid", 10_000);
    // 500 messages of ~1 KiB in one write burst, as fast as the socket takes them.
    const N = 500;
    const pad = "y".repeat(1000);
    const flood = Array.from(
      { length: N },
      (_, i) =>
        `<message from='m@b.localhost/x' to='${alice!.jid}' type='chat' id='f${i}'>` +
        `<body>flood ${i} ${pad}</body></message>`,
    );
    await peer.send(flood.join(""));
    await alice.waitFor((st) => st.attrs.id === `f${N - 1}`, "the last flooded message", 20_000);
    const ids = alice.received.filter((st) => /^f\d+$/.test(st.attrs.id ?? "")).map((st) =>
      st.attrs.id
    );
    assert.deepEqual(ids, flood.map((_, i) => `f${i}`), "every message, once, in order");
    // An oversized stanza: the stream's size limit (`[limits] stanza_size`, 256 KiB) applies,
    // and the error comes before the peer has sent it all.
    const big = `<message from='m@b.localhost' to='${alice.jid}'><body>` + "z".repeat(300_000);
    await peer.send(big).catch(() => {});
    await peer.next(isStreamError("policy-violation"), "policy-violation");
    assert.ok(await peer.closed());
    await stillServing(alice, bob, "after the flood");
  } finally {
    peer?.close();
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await stopPair(pair);
  }
});

Deno.test("s2s abuse: many short-lived hostile streams leave the server serving", async () => {
  const pair = await startPair();
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  try {
    const port = pair.a.s2sPort!;
    // 100 streams, each with a lie, a forged claim or garbage, 10 at a time.
    const inputs = [
      s2sHeader("b.localhost", "a.localhost") +
      "<message from='x@b.localhost' to='alice@a.localhost'/>",
      s2sHeader("b.localhost", "a.localhost") +
      "<db:result from='b.localhost' to='a.localhost'>00</db:result>",
      s2sHeader("b.localhost", "nobody.example"),
      s2sHeader("b.localhost", "a.localhost") + "<<<",
    ];
    for (let round = 0; round < 10; round++) {
      const results = await Promise.all(
        Array.from(
          { length: 10 },
          (_, i) => rawExchange(port, inputs[(round + i) % inputs.length], 10_000),
        ),
      );
      for (const r of results) {
        assert.ok(r.closed, r.text);
        assert.notEqual(streamError(r.text), undefined, r.text);
      }
    }
    alice = await online(pair.a, "alice", "a.localhost");
    bob = await online(pair.b, "bob", "b.localhost");
    await stillServing(alice, bob, "after 100 hostile streams");
  } finally {
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await stopPair(pair);
  }
});
