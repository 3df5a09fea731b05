/**
 * Order across connections: what the server received first is carried out first for its
 * recipient, however long the sender's archive takes (RFC 6120 §10.1 asks it per connection;
 * Prosody, processing each stanza to the end, gives it across connections too, and the
 * conformance scripts expect it).
 */
import assert from "node:assert/strict";
import { closeAll, connectPeer, sync } from "./_peer.ts";
import { withServer } from "./_server.ts";
import { xml } from "./_xmpp_client.ts";

Deno.test("a message received before its recipient's first presence waits offline, as sent", async () => {
  await withServer(["romeo", "juliet", "nurse"], async (server) => {
    const romeo = await connectPeer(server, "romeo", "r");
    const juliet = await connectPeer(server, "juliet", "phone");
    // Romeo's account queue gets a backlog (each message archived for him, durably), so that
    // his message to Juliet spends a while in his archive's queue.
    for (let i = 0; i < 150; i++) {
      romeo.xmpp.send(
        xml("message", { to: "nurse@localhost", type: "chat", id: `n${i}` }, xml("body", {}, "x")),
      );
    }
    await romeo.xmpp.send(
      xml("message", { to: "juliet@localhost", type: "chat", id: "m1" }, xml("body", {}, "there?")),
    );
    // Sent once the server has Romeo's message (his ping comes after it on his stream); her
    // presence reaches her account before his message leaves his archive.
    await sync(romeo);
    await juliet.xmpp.send(xml("presence"));
    const msg = await juliet.waitFor((st) => st.is("message"), "romeo's message", 20_000);
    assert.equal(msg.attrs.id, "m1");
    // It was stored offline before her presence, and came with it: with a delay stamp.
    const delay = msg.getChild("delay", "urn:xmpp:delay");
    assert.ok(delay !== undefined, "delivered as an offline message (XEP-0203 delay)");
    assert.equal(delay.attrs.from, "localhost");
    await closeAll(romeo, juliet);
  });
});
