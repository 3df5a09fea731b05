/**
 * The TCP transport's writes, on a real loopback socket: what is sent in one run of code leaves
 * in one write, and nothing waits for a later turn. (Flushing once per turn of the event loop
 * instead, as Prosody's network layer does, saved a third of the writes under load, but
 * @xmpp/client 0.14, whose initial presence can overtake its own `<enable/>`, then acknowledged
 * more XEP-0198 stanzas than were sent when the echo, `<enabled/>` and the next stanza came in
 * one write, and the server rightly ended the stream (handled-count-too-high; tests/integration/
 * mam_test.ts caught it). Kept per microtask for that client.)
 */
import assert from "node:assert/strict";
import { createDriver, type DriverKind } from "../../lib/transport/driver.ts";
import { tcpTransport } from "../../lib/transport/tcp.ts";
import type { Element } from "../../lib/xml/element.ts";

const NS = "jabber:client";

const stanza = (id: string): Element => ({
  name: "message",
  xmlns: NS,
  attrs: { id },
  children: [],
});

/** A kind that does nothing: only the transport is under test. */
const IDLE: DriverKind<null, unknown, never> = {
  reduce: (s) => [s, []],
  execute() {},
  parsed: (ev) => ev,
  disconnected: () => ({}),
  dropped() {},
};

/** The server side of a loopback connection with its writes counted, and the client side. */
async function pair() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const client = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
  const conn = await listener.accept();
  listener.close();
  const counts = { writes: 0 };
  const counted = new Proxy(conn, {
    get(target, key) {
      if (key === "write") {
        return (data: Uint8Array) => {
          counts.writes++;
          return target.write(data);
        };
      }
      const value = Reflect.get(target, key, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const d = createDriver(
    IDLE,
    null,
    { writeBacklog: 1 << 20, maxStanzaBytes: 1 << 16, maxDepth: 16 },
    {},
    (d) => tcpTransport(d, counted, { ns: NS }),
  );
  const decoder = new TextDecoder();
  let received = "";
  /** Reads on the client until `text` has arrived; returns everything read so far. */
  const readUntil = async (text: string): Promise<string> => {
    const buf = new Uint8Array(4096);
    while (!received.includes(text)) {
      const n = await client.read(buf);
      if (n === null) throw new Error(`closed before ${text}`);
      received += decoder.decode(buf.subarray(0, n));
    }
    return received;
  };
  const close = () => {
    d.transport.abort();
    client.close();
  };
  return { d, counts, readUntil, close };
}

Deno.test("tcp: sends made in one run of code leave in one write, in order", async () => {
  const { d, counts, readUntil, close } = await pair();
  try {
    for (const id of ["a", "b", "c"]) d.transport.send({ kind: "send", stanza: stanza(id) });
    const text = await readUntil('id="c"');
    assert.equal(counts.writes, 1);
    assert.ok(text.indexOf('id="a"') < text.indexOf('id="b"'));
    assert.ok(text.indexOf('id="b"') < text.indexOf('id="c"'));
  } finally {
    close();
  }
});

Deno.test("tcp: a send is written in its own turn, without waiting for the next", async () => {
  const { d, counts, readUntil, close } = await pair();
  try {
    d.transport.send({ kind: "send", stanza: stanza("first") });
    // The client reads it before anything else is sent: it did not wait for company.
    await readUntil('id="first"');
    assert.equal(counts.writes, 1);
    d.transport.send({ kind: "send", stanza: stanza("second") });
    const text = await readUntil('id="second"');
    assert.equal(counts.writes, 2);
    assert.ok(text.indexOf('id="first"') < text.indexOf('id="second"'));
  } finally {
    close();
  }
});
