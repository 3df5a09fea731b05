/** RFC 6120 §10.1: stanzas from one sender to one recipient arrive in the order they were sent. */
import assert from "node:assert/strict";
import { closeAll, connectPeer } from "./_peer.ts";
import { withServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";

Deno.test("presence sent right after a message does not overtake it (archiving on)", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    const bob = await connectPeer(server, "bob", "b");
    try {
      const to = "bob@localhost/b";
      // Sent back to back: the message passes two archives (fdatasync each), the others do not.
      for (let i = 0; i < 5; i++) {
        alice.xmpp.send(xml("message", { to, type: "chat", id: `m${i}` }, xml("body", {}, `${i}`)));
        alice.xmpp.send(xml("presence", { to, id: `p${i}` }));
      }
      await bob.waitFor((st) => st.is("presence") && st.attrs.id === "p4", "the last presence");
      const order = bob.received
        .filter((st: XmppClient) => st.attrs.from === "alice@localhost/a")
        .map((st: XmppClient) => st.attrs.id);
      assert.deepEqual(order, ["m0", "p0", "m1", "p1", "m2", "p2", "m3", "p3", "m4", "p4"]);
    } finally {
      await closeAll(alice, bob);
    }
  });
});
