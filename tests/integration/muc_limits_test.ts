/** What one user can make the MUC service do: joins per second, rooms per creator. */
import assert from "node:assert/strict";
import { closeAll, connectPeer } from "./_peer.ts";
import { withServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";

const NS_MUC = "http://jabber.org/protocol/muc";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

function join(room: string) {
  return xml("presence", { to: `${room}@conference.localhost/me` }, xml("x", { xmlns: NS_MUC }));
}

function conditionOf(st: XmppClient): string | undefined {
  return st.getChild("error")?.children.find((c: XmppClient) => c.attrs?.xmlns === NS_STANZAS)
    ?.name;
}

Deno.test("muc: joins past muc_joins_per_second get resource-constraint, the others enter", async () => {
  await withServer(["alice"], async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    try {
      // All sent at once: well within one second.
      for (let i = 0; i < 5; i++) await alice.xmpp.send(join(`r${i}`));
      await alice.xmpp.send(join("r5"));
      const refused = await alice.waitFor(
        (st) => st.is("presence") && st.attrs.type === "error",
        "the refused join",
      );
      assert.equal(refused.attrs.from, "r5@conference.localhost/me");
      assert.equal(conditionOf(refused), "resource-constraint");
      assert.equal(refused.getChild("error").attrs.type, "wait");
      for (let i = 0; i < 5; i++) {
        await alice.waitFor(
          (st) =>
            st.is("presence") && st.attrs.from === `r${i}@conference.localhost/me` &&
            st.attrs.type === undefined,
          `self-presence of r${i}`,
        );
      }
      // A second later the user may join again.
      await new Promise((r) => setTimeout(r, 1100));
      await alice.xmpp.send(join("r5"));
      await alice.waitFor(
        (st) =>
          st.is("presence") && st.attrs.from === "r5@conference.localhost/me" &&
          st.attrs.type === undefined,
        "self-presence of r5",
      );
    } finally {
      await closeAll(alice);
    }
  }, { limits: { muc_joins_per_second: 5, muc_rooms_per_creator: 10 } });
});

Deno.test("muc: rooms past muc_rooms_per_creator are not created", async () => {
  await withServer(["bob"], async (server) => {
    const bob = await connectPeer(server, "bob", "b");
    try {
      await bob.xmpp.send(join("mine1"));
      await bob.waitFor((st) => st.attrs.from === "mine1@conference.localhost/me", "mine1");
      await bob.xmpp.send(join("mine2"));
      const refused = await bob.waitFor(
        (st) => st.is("presence") && st.attrs.type === "error",
        "the refused creation",
      );
      assert.equal(refused.attrs.from, "mine2@conference.localhost/me");
      assert.equal(conditionOf(refused), "resource-constraint");
    } finally {
      await closeAll(bob);
    }
  }, { limits: { muc_rooms_per_creator: 1 } });
});
