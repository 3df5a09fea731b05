/**
 * The compatibility rows with real clients: XEP-0048 bookmarks in private storage are the
 * XEP-0402 PEP bookmarks, a PEP avatar becomes the vCard photo and presence hash (XEP-0398),
 * and last activity of accounts (XEP-0012 §4).
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { connectPeer, errorOf, type Peer, presenceFrom } from "./_peer.ts";
import { withServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { NS_LAST, NS_PRIVATE, NS_PUBSUB } from "../../lib/xmpp/namespaces.ts";

const IMAGE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const IMAGE_B64 = btoa(String.fromCharCode(...IMAGE));
const IMAGE_SHA1 = createHash("sha1").update(IMAGE).digest("hex");

const USERS = ["alice", "bob", "eve"];

/** Bob subscribes to Alice's presence (Alice approves); both become available first. */
async function subscribe(alice: Peer, bob: Peer): Promise<void> {
  await alice.xmpp.send(xml("presence"));
  await bob.xmpp.send(xml("presence"));
  await bob.xmpp.send(xml("presence", { to: "alice@localhost", type: "subscribe" }));
  await alice.waitFor(presenceFrom("bob@localhost", "subscribe"), "request");
  await alice.xmpp.send(xml("presence", { to: "bob@localhost", type: "subscribed" }));
  await bob.waitFor(presenceFrom("alice@localhost", "subscribed"), "approval");
}

Deno.test("compat: XEP-0048 bookmarks in private storage are the PEP bookmarks", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "set" },
        xml(
          "query",
          { xmlns: NS_PRIVATE },
          xml("storage", { xmlns: "storage:bookmarks" }, [
            xml("conference", { jid: "room@conference.localhost", autojoin: "true" }, [
              xml("nick", {}, "Al"),
            ]),
          ]),
        ),
      ),
    );
    // A XEP-0402 client sees the bookmark in PEP.
    const items = await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "get" },
        xml("pubsub", { xmlns: NS_PUBSUB }, xml("items", { node: "urn:xmpp:bookmarks:1" })),
      ),
    );
    const item = items.getChild("pubsub", NS_PUBSUB).getChild("items").getChild("item");
    assert.equal(item.attrs.id, "room@conference.localhost");
    const conference = item.getChild("conference", "urn:xmpp:bookmarks:1");
    assert.equal(conference.attrs.autojoin, "true");
    assert.equal(conference.getChildText("nick"), "Al");

    // A bookmark added over PEP is what the XEP-0048 client reads back.
    await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "set" },
        xml("pubsub", { xmlns: NS_PUBSUB }, [
          xml("publish", { node: "urn:xmpp:bookmarks:1" }, [
            xml("item", { id: "other@conference.localhost" }, [
              xml("conference", { xmlns: "urn:xmpp:bookmarks:1", name: "Other" }),
            ]),
          ]),
        ]),
      ),
    );
    const got = await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "get" },
        xml("query", { xmlns: NS_PRIVATE }, xml("storage", { xmlns: "storage:bookmarks" })),
      ),
    );
    const storage = got.getChild("query", NS_PRIVATE).getChild("storage", "storage:bookmarks");
    const rooms = storage.getChildren("conference").map((c: XmppClient) => c.attrs.jid);
    assert.deepEqual(rooms.sort(), ["other@conference.localhost", "room@conference.localhost"]);
    await alice.xmpp.stop();
  });
});

Deno.test("compat: a PEP avatar becomes the vCard photo and the presence hash", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    const bob = await connectPeer(server, "bob", "b");
    await subscribe(alice, bob);

    const publish = (node: string, id: string, payload: XmppClient) =>
      alice.xmpp.iqCaller.request(
        xml(
          "iq",
          { type: "set" },
          xml("pubsub", { xmlns: NS_PUBSUB }, [
            xml("publish", { node }, [xml("item", { id }, [payload])]),
          ]),
        ),
      );
    await publish(
      "urn:xmpp:avatar:data",
      IMAGE_SHA1,
      xml("data", { xmlns: "urn:xmpp:avatar:data" }, IMAGE_B64),
    );
    await publish(
      "urn:xmpp:avatar:metadata",
      IMAGE_SHA1,
      xml("metadata", { xmlns: "urn:xmpp:avatar:metadata" }, [
        xml("info", { id: IMAGE_SHA1, type: "image/png", bytes: String(IMAGE.length) }),
      ]),
    );

    // A XEP-0153 client (Bob) finds the photo in Alice's vCard ...
    const card = await bob.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "alice@localhost" }, xml("vCard", { xmlns: "vcard-temp" })),
    );
    const photo = card.getChild("vCard", "vcard-temp").getChild("PHOTO");
    assert.equal(photo.getChildText("BINVAL"), IMAGE_B64);
    assert.equal(photo.getChildText("TYPE"), "image/png");
    // ... and its hash in her presence, which her client did not add.
    await alice.xmpp.send(xml("presence", {}, xml("status", {}, "new avatar")));
    const seen = await bob.waitFor(
      (st) => presenceFrom("alice@localhost/a")(st) && st.getChildText("status") === "new avatar",
      "alice's presence",
    );
    assert.equal(seen.getChild("x", "vcard-temp:x:update")?.getChildText("photo"), IMAGE_SHA1);
    await alice.xmpp.stop();
    await bob.xmpp.stop();
  });
});

Deno.test("compat: last activity of an account, for subscribers only", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    const bob = await connectPeer(server, "bob", "b");
    const eve = await connectPeer(server, "eve", "e");
    await subscribe(alice, bob);
    const ask = (who: Peer) =>
      who.xmpp.iqCaller.request(
        xml("iq", { type: "get", to: "alice@localhost" }, xml("query", { xmlns: NS_LAST })),
      );

    // Online: 0 seconds.
    const online = await ask(bob);
    assert.equal(online.getChild("query", NS_LAST).attrs.seconds, "0");

    await alice.xmpp.send(
      xml("presence", { type: "unavailable" }, xml("status", {}, "Heading Home")),
    );
    await bob.waitFor(presenceFrom("alice@localhost/a", "unavailable"), "alice leaving");
    const after = await ask(bob);
    const query = after.getChild("query", NS_LAST);
    assert.ok(Number(query.attrs.seconds) <= 2, query.attrs.seconds);
    assert.equal(query.text(), "Heading Home");

    // Eve has no subscription.
    assert.equal(await errorOf(ask(eve)), "forbidden");
    for (const p of [alice, bob, eve]) await p.xmpp.stop();
  });
});
