/**
 * Availability of the listener and of connections (issue 9): accept errors, connection limits,
 * the write backlog and backpressure, each against a real server.
 * @module
 */
import assert from "node:assert/strict";
import { clientHeader, rawExchange, startTestServer } from "../integration/_server.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { NS_PRIVATE } from "../../lib/xmpp/namespaces.ts";

/** The condition of the stream error in `text`, if any. */
function streamError(text: string): string | undefined {
  return /<stream:error><([a-z-]+) /.exec(text)?.[1];
}

/** Opens `n` raw connections that each sent a stream header and got their features. */
async function openStreams(port: number, n: number): Promise<RawClient[]> {
  const out: RawClient[] = [];
  for (let i = 0; i < n; i++) {
    const c = await RawClient.connect(port);
    await c.open();
    out.push(c);
  }
  return out;
}

async function readLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  return text.split("\n")[0];
}

Deno.test("the listener survives running out of file descriptors (EMFILE)", async () => {
  const fixture = new URL("./_child_server.ts", import.meta.url).pathname;
  const settings = {
    require_encryption: false,
    // Only the descriptors run out here, not the connection limits.
    limits: { max_connections_per_ip: 10_000, max_unauthed_per_ip: 10_000 },
  };
  const child = new Deno.Command("bash", {
    // The running deno, not one on the PATH (`npx deno task test` puts none there).
    args: [
      "-c",
      `ulimit -n 80; exec "$2" run -A "$0" "$1"`,
      fixture,
      JSON.stringify(settings),
      Deno.execPath(),
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    // No update check: it would want descriptors too.
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).spawn();
  const stderr = new Response(child.stderr).text();
  const idle: Deno.Conn[] = [];
  let features: Element | undefined;
  try {
    const { c2sPort } = JSON.parse(await readLine(child.stdout));
    // More idle connections than the child has descriptors: the kernel completes them all,
    // and the server's accept() fails with EMFILE once its descriptors are gone.
    for (let i = 0; i < 120; i++) {
      idle.push(await Deno.connect({ hostname: "127.0.0.1", port: c2sPort }));
    }
    await new Promise((r) => setTimeout(r, 300));
    for (const c of idle.splice(0)) c.close();
    // The server takes the closed ones off the backlog and frees their descriptors; a new
    // client then gets its stream (within seconds, for the backoff).
    const client = await RawClient.connect(c2sPort);
    features = await client.open().catch(() => undefined);
    client.cut();
  } finally {
    for (const c of idle) c.close();
    await child.stdin.close();
  }
  const status = await child.status;
  const log = await stderr;
  // The descriptors did run out, and the server said so instead of going silent...
  assert.ok(log.includes("Accepting a connection failed"), log);
  assert.ok(/Too many open files|os error 24/.test(log), log);
  // ... and it went on accepting.
  assert.equal(features?.name, "features", "a new client got its stream after EMFILE");
  assert.equal(status.code, 0, log);
});

Deno.test("connections past max_unauthed_per_ip are refused with policy-violation", async () => {
  const server = await startTestServer({
    require_encryption: false,
    // The tests' clients are on loopback, which is exempt by default.
    exempt_loopback: false,
    limits: { max_unauthed_per_ip: 2 },
  });
  await server.accounts.create("localhost", "alice", "pw");
  const open = await openStreams(server.c2sPort, 2);
  try {
    const refused = await rawExchange(server.c2sPort, clientHeader());
    assert.ok(refused.closed);
    // A whole stream: our header, the error, the closing tag (RFC 6120 §4.9.1.1).
    assert.ok(refused.text.startsWith("<?xml version='1.0'?><stream:stream "), refused.text);
    assert.equal(streamError(refused.text), "policy-violation", refused.text);
    assert.ok(refused.text.endsWith("</stream:stream>"), refused.text);

    // One of them authenticates: it no longer counts, so another may connect.
    await open[0].close();
    const alice = await RawClient.connect(server.c2sPort);
    open[0] = alice;
    await alice.login("alice", "pw");
    await alice.bind("r");
    const next = await RawClient.connect(server.c2sPort);
    open.push(next);
    const features = await next.open();
    assert.equal(features.name, "features");
    // Two unauthenticated again: the next is refused.
    const again = await rawExchange(server.c2sPort, clientHeader());
    assert.equal(streamError(again.text), "policy-violation", again.text);
  } finally {
    for (const c of open) await c.close();
    await server.stop();
  }
});

Deno.test("max_connections_per_ip and max_connections refuse, and closing frees a place", async () => {
  const server = await startTestServer({
    require_encryption: false,
    exempt_loopback: false,
    limits: { max_connections_per_ip: 3, max_connections: 5, max_unauthed_per_ip: 10 },
  });
  try {
    const open = await openStreams(server.c2sPort, 3);
    const refused = await rawExchange(server.c2sPort, clientHeader());
    assert.equal(streamError(refused.text), "policy-violation", refused.text);
    assert.ok(refused.closed);
    // On the direct TLS port a refused connection is closed without a handshake.
    const tls = await rawExchange(server.directTlsPort!, [], 3000);
    assert.equal(tls.text, "");
    assert.ok(tls.closed);

    await open.pop()!.close();
    // The close is seen by the server shortly after: wait for the place to come free.
    let reopened: RawClient | undefined;
    for (let i = 0; i < 50 && reopened === undefined; i++) {
      const c = await RawClient.connect(server.c2sPort);
      try {
        await c.open();
        reopened = c;
      } catch {
        c.cut();
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    assert.ok(reopened !== undefined, "a place came free");
    open.push(reopened);
    for (const c of open) await c.close();
  } finally {
    await server.stop();
  }
});

Deno.test("max_connections counts every address", async () => {
  const server = await startTestServer({
    require_encryption: false,
    limits: { max_connections: 2 },
  });
  try {
    const open = await openStreams(server.c2sPort, 2);
    const refused = await rawExchange(server.c2sPort, clientHeader());
    assert.equal(streamError(refused.text), "policy-violation", refused.text);
    assert.ok(refused.text.includes("too many connections"), refused.text);
    for (const c of open) await c.close();
  } finally {
    await server.stop();
  }
});

/** Logs in `user` on a raw client and binds resource `r`; returns the client and its JID. */
async function online(port: number, user: string): Promise<[RawClient, string]> {
  const c = await RawClient.connect(port);
  await c.login(user, "pw");
  return [c, await c.bind("r")];
}

Deno.test("a client that reads is not dropped for one reply larger than write_backlog", async () => {
  const server = await startTestServer({
    require_encryption: false,
    archive_enabled: false,
    limits: { write_backlog: 65536 },
  });
  await server.accounts.create("localhost", "big", "pw");
  await server.accounts.create("localhost", "reader", "pw");
  const [big] = await online(server.c2sPort, "big");
  const [reader, readerJid] = await online(server.c2sPort, "reader");
  try {
    // 200 KB in one stanza: three times the backlog limit in a single write.
    const body = "y".repeat(200_000);
    big.send(stanza("message", { to: readerJid, type: "chat", id: "large" }, [
      elem("body", {}, [body]),
    ]));
    const got = await reader.next("the large message");
    assert.equal(got.attrs.id, "large");
    assert.equal((got.children[0] as Element).children[0], body);
    // Still connected, and served.
    await reader.ping();
    assert.equal(reader.closed, false);
  } finally {
    await big.close();
    await reader.close();
    await server.stop();
  }
});

Deno.test("a client that does not read while others send to it is still dropped", async () => {
  const server = await startTestServer({
    require_encryption: false,
    archive_enabled: false,
    limits: { write_backlog: 65536 },
  });
  await server.accounts.create("localhost", "slow", "pw");
  await server.accounts.create("localhost", "fast", "pw");
  const [slow, slowJid] = await online(server.c2sPort, "slow");
  const [fast] = await online(server.c2sPort, "fast");
  try {
    slow.pause();
    const body = "z".repeat(200_000);
    const sent = 120;
    for (let i = 0; i < sent; i++) {
      fast.send(stanza("message", { to: slowJid, type: "chat", id: `m${i}` }, [
        elem("body", {}, [body]),
      ]));
      if (i % 20 === 0) await fast.ping();
    }
    await fast.ping();
    slow.resume();
    let received = 0;
    const deadline = Date.now() + 15_000;
    while (!slow.closed && Date.now() < deadline) {
      const ev = await slow.event(1000);
      if (ev?.kind === "stanza" && ev.stanza.name === "message") received++;
    }
    assert.ok(slow.closed, "the server closed the connection of the client that did not read");
    assert.ok(received < sent, `it got ${received} of ${sent} before it was dropped`);
    await fast.ping();
  } finally {
    slow.cut();
    await fast.close();
    await server.stop();
  }
});

Deno.test("reading pauses while an account queue is long, and nothing is lost", async () => {
  const accountQueue = 4;
  const server = await startTestServer({
    require_encryption: false,
    limits: { account_queue: accountQueue },
  });
  await server.accounts.create("localhost", "flood", "pw");
  await server.accounts.create("localhost", "sink", "pw");
  const [flood] = await online(server.c2sPort, "flood");
  const [sink] = await online(server.c2sPort, "sink");
  sink.send(elem("presence", { xmlns: "jabber:client" }));
  await sink.ping();
  let peak = 0;
  let samples = 0;
  const probe = setInterval(() => {
    samples++;
    peak = Math.max(
      peak,
      server.accountQueueLength("sink@localhost"),
      server.accountQueueLength("flood@localhost"),
    );
  }, 1);
  try {
    // Archived on both sides: each message is an operation in both accounts' queues.
    const n = 300;
    const body = "q".repeat(20_000);
    for (let i = 0; i < n; i++) {
      flood.send(stanza("message", { to: "sink@localhost", type: "chat", id: `f${i}` }, [
        elem("body", {}, [body]),
      ]));
    }
    const ids = new Set<string>();
    while (ids.size < n) {
      const st = await sink.next(`message ${ids.size + 1} of ${n}`, 20_000);
      if (st.name === "message" && st.attrs.id?.startsWith("f")) ids.add(st.attrs.id);
    }
    assert.equal(ids.size, n);
    assert.ok(samples > 10, `the probe ran (${samples} samples)`);
    // A message passes the sender's queue (its archive copy) and then the recipient's: reading
    // stops once either is over the limit, so the recipient's can hold what the sender's let
    // through besides its own, plus what one read carries (under one message). Without the
    // pause the peak was about 280.
    const bound = 2 * accountQueue + 2;
    assert.ok(peak <= bound, `peak account queue ${peak}, limit ${accountQueue}`);
  } finally {
    clearInterval(probe);
    await flood.close();
    await sink.close();
    await server.stop();
  }
});

Deno.test("reading pauses while the client's own write backlog is long", async () => {
  const server = await startTestServer({
    require_encryption: false,
    limits: { write_backlog: 65536 },
  });
  await server.accounts.create("localhost", "hoard", "pw");
  const [client] = await online(server.c2sPort, "hoard");
  try {
    const data = "h".repeat(200_000);
    client.send(stanza("iq", { type: "set", id: "store" }, [
      elem("query", { xmlns: NS_PRIVATE }, [elem("big", { xmlns: "test:big" }, [data])]),
    ]));
    assert.equal((await client.next("the store result")).attrs.type, "result");
    // Requests for 200 KB each, without reading the answers: without backpressure the server
    // reads them all and its backlog grows past any limit (the client would be dropped); with
    // it, it stops reading until the client takes what it was sent. Whitespace between them
    // (twice the server's largest read) keeps one request at most per read.
    client.pause();
    const n = 100;
    const padding = " ".repeat(32_768);
    for (let i = 0; i < n; i++) {
      client.send(stanza("iq", { type: "get", id: `g${i}` }, [
        elem("query", { xmlns: NS_PRIVATE }, [elem("big", { xmlns: "test:big" })]),
      ]));
      client.write(padding);
    }
    await new Promise((r) => setTimeout(r, 500));
    client.resume();
    let answered = 0;
    while (answered < n) {
      const st = await client.next(`answer ${answered + 1} of ${n}`, 10_000);
      if (st.name === "iq" && st.attrs.id === `g${answered}`) answered++;
    }
    assert.equal(answered, n);
    assert.equal(client.closed, false);
  } finally {
    await client.close();
    await server.stop();
  }
});

Deno.test("loopback is exempt from the per-address caps by default, not from the total", async () => {
  const server = await startTestServer({
    require_encryption: false,
    limits: { max_connections_per_ip: 2, max_unauthed_per_ip: 2, max_connections: 4 },
  });
  try {
    // A reverse proxy or a load test on the machine itself is not one peer.
    const open = await openStreams(server.c2sPort, 4);
    const refused = await rawExchange(server.c2sPort, clientHeader());
    assert.equal(streamError(refused.text), "policy-violation", refused.text);
    assert.ok(refused.text.includes("too many connections"), refused.text);
    for (const c of open) await c.close();
  } finally {
    await server.stop();
  }
});
