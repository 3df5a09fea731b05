/**
 * What the TCP transport writes is encoded as it is queued, into buffers that grow when a batch
 * outgrows them (lib/transport/tcp.ts): a burst of messages of every size, with characters of
 * one to four UTF-8 bytes across every buffer boundary, arrives exact and in order over plain
 * TCP (read with our parser), and a burst of every size arrives exact over STARTTLS and direct
 * TLS. The TLS client (xmpp.js) decodes each record on its own, so that a character split
 * between two records reaches it as U+FFFD: its bodies are ASCII.
 */
import assert from "node:assert/strict";
import { connectPeer } from "./_peer.ts";
import { withServer } from "./_server.ts";
import { xml } from "./_xmpp_client.ts";
import { RawClient } from "./_raw_client.ts";
import { elem, text } from "../../lib/xml/element.ts";

// One to four bytes each in UTF-8 (the last one is a surrogate pair in UTF-16).
const CHARS = ["a", "é", "€", "😀"];

/** A body of `n` characters, cycling through CHARS from `shift`. */
function body(n: number, shift: number): string {
  let s = "";
  for (let i = 0; i < n; i++) s += CHARS[(i + shift) % CHARS.length];
  return s;
}

// Below, at and past the 1 KB buffer, past a TLS record (16 KB) and past several.
const SIZES = [1, 200, 255, 256, 257, 341, 342, 343, 1000, 1024, 5000, 17000, 40000];
const BODIES = SIZES.flatMap((n, i) => [body(n, i), body(n, i + 1)]);
const ASCII = SIZES.map((n, i) => String.fromCharCode(97 + i).repeat(n));

Deno.test("a burst of messages of every size arrives exact, over STARTTLS and direct TLS", async () => {
  await withServer(["alice", "bob"], async (server) => {
    for (const directTls of [false, true]) {
      const bob = await connectPeer(server, "bob", directTls ? "direct" : "starttls");
      const alice = await connectPeer(server, "alice", "a");
      // Sent without waiting, so that the server batches several into one write.
      await Promise.all(
        ASCII.map((b, i) =>
          alice.xmpp.send(
            xml("message", { to: bob.jid, type: "chat", id: `m${i}` }, xml("body", {}, b)),
          )
        ),
      );
      const last = `m${ASCII.length - 1}`;
      await bob.waitFor((st) => st.attrs.id === last, "the last message", 15_000);
      const got = bob.received.filter((st) => st.is("message"));
      assert.deepEqual(got.map((st) => st.attrs.id), ASCII.map((_, i) => `m${i}`));
      got.forEach((st, i) => assert.ok(st.getChildText("body") === ASCII[i], `body ${i}`));
      await alice.xmpp.stop();
      await bob.xmpp.stop();
    }
  });
});

Deno.test("a burst of multi-byte messages arrives exact over plain TCP", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const bob = await RawClient.online(server.c2sPort, "bob", "b");
    const alice = await RawClient.online(server.c2sPort, "alice", "a");
    BODIES.forEach((b, i) =>
      alice.send(elem("message", { to: "bob@localhost/b", type: "chat", id: `m${i}` }, [
        elem("body", {}, [b]),
      ]))
    );
    for (let i = 0; i < BODIES.length; i++) {
      const m = await bob.until(`message ${i}`, (el) => el.name === "message", 15_000);
      assert.equal(m.attrs.id, `m${i}`);
      const b = m.children.find((c) => typeof c !== "string" && c.name === "body");
      assert.ok(b !== undefined && typeof b !== "string");
      assert.ok(text(b) === BODIES[i], `body ${i}`);
    }
    await alice.close();
    await bob.close();
  }, { require_encryption: false });
});
