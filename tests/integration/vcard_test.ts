/** vcard-temp (XEP-0054), the vCard avatar hash in presence (XEP-0153) and private XML storage
 * (XEP-0049), with real clients. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { connectPeer, errorOf, presenceFrom, subscribeMutually } from "./_peer.ts";
import { startTestServer, withServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { NS_PRIVATE, NS_VCARD, NS_VCARD_UPDATE } from "../../lib/xmpp/namespaces.ts";

/** Eight bytes standing in for an image. */
const IMAGE = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const IMAGE_B64 = btoa(String.fromCharCode(...IMAGE));
const IMAGE_SHA1 = createHash("sha1").update(IMAGE).digest("hex");
const USERS = ["alice", "bob"];

function photoOf(presence: XmppClient): string | undefined {
  return presence.getChild("x", NS_VCARD_UPDATE)?.getChildText("photo") ?? undefined;
}

Deno.test("a vCard photo: set by Alice, fetched by Bob, its hash in Alice's presence", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    const bob = await connectPeer(server, "bob", "b");
    await alice.xmpp.send(xml("presence"));
    await bob.xmpp.send(xml("presence"));

    // Mutual subscription, so that Bob sees Alice's broadcast presence.
    await subscribeMutually(alice, bob);

    // Nothing stored yet: Alice sees an empty vCard, Bob an error.
    const empty = await alice.xmpp.iqCaller.request(
      xml("iq", { type: "get" }, xml("vCard", { xmlns: NS_VCARD })),
    );
    assert.equal(empty.getChild("vCard", NS_VCARD).children.length, 0);
    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(
        xml("iq", { type: "get", to: "alice@localhost" }, xml("vCard", { xmlns: NS_VCARD })),
      )),
      "item-not-found",
    );

    await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "set" },
        xml("vCard", { xmlns: NS_VCARD }, [
          xml("FN", {}, "Alice"),
          xml("PHOTO", {}, [xml("TYPE", {}, "image/png"), xml("BINVAL", {}, IMAGE_B64)]),
        ]),
      ),
    );

    const got = await bob.xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "alice@localhost" }, xml("vCard", { xmlns: NS_VCARD })),
    );
    assert.equal(got.attrs.from, "alice@localhost");
    const card = got.getChild("vCard", NS_VCARD);
    assert.equal(card.getChildText("FN"), "Alice");
    assert.equal(card.getChild("PHOTO").getChildText("BINVAL"), IMAGE_B64);

    // Only Alice writes her vCard.
    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(
        xml(
          "iq",
          { type: "set", to: "alice@localhost" },
          xml("vCard", { xmlns: NS_VCARD }, xml("FN", {}, "Mallory")),
        ),
      )),
      "forbidden",
    );

    // Alice's client says nothing of avatars; the server adds the hash for her contacts.
    await alice.xmpp.send(xml("presence", {}, xml("status", {}, "with a photo")));
    const seen = await bob.waitFor(
      (st) => presenceFrom("alice@localhost/a")(st) && st.getChildText("status") === "with a photo",
      "alice's presence",
    );
    assert.equal(photoOf(seen), IMAGE_SHA1);

    // A new session learns the hash from storage at bind.
    await alice.xmpp.stop();
    const again = await connectPeer(server, "alice", "c");
    await again.xmpp.send(xml("presence", {}, xml("show", {}, "away")));
    const back = await bob.waitFor(presenceFrom("alice@localhost/c"), "alice again");
    assert.equal(photoOf(back), IMAGE_SHA1);
    assert.equal(back.getChildText("show"), "away");

    await again.xmpp.stop();
    await bob.xmpp.stop();
  });
});

Deno.test("private XML storage: set and get back, private to the owner", async () => {
  await withServer(USERS, async (server) => {
    const alice = await connectPeer(server, "alice", "a");
    const bob = await connectPeer(server, "bob", "b");
    const bookmarks = xml("storage", { xmlns: "storage:bookmarks" }, [
      xml("conference", { jid: "room@conference.localhost", autojoin: "true", name: "Room" }),
    ]);
    const ask = () =>
      xml(
        "iq",
        { type: "get" },
        xml("query", { xmlns: NS_PRIVATE }, xml("storage", { xmlns: "storage:bookmarks" })),
      );

    // Before anything is stored the requested element comes back empty.
    const before = await alice.xmpp.iqCaller.request(ask());
    const none = before.getChild("query", NS_PRIVATE).getChild("storage", "storage:bookmarks");
    assert.equal(none.children.length, 0);

    await alice.xmpp.iqCaller.request(
      xml("iq", { type: "set" }, xml("query", { xmlns: NS_PRIVATE }, bookmarks)),
    );
    const res = await alice.xmpp.iqCaller.request(ask());
    const stored = res.getChild("query", NS_PRIVATE).getChild("storage", "storage:bookmarks");
    assert.equal(stored.getChild("conference").attrs.jid, "room@conference.localhost");
    assert.equal(stored.getChild("conference").attrs.name, "Room");

    assert.equal(
      await errorOf(bob.xmpp.iqCaller.request(
        xml(
          "iq",
          { type: "get", to: "alice@localhost" },
          xml("query", { xmlns: NS_PRIVATE }, xml("storage", { xmlns: "storage:bookmarks" })),
        ),
      )),
      "forbidden",
    );

    // It is on disk, in the account's PEP store: XEP-0048 bookmarks are the XEP-0402 ones.
    const file = await Deno.readTextFile(`${server.dataDir}/localhost/pep/alice.json`);
    assert.match(file, /room@conference\.localhost/);
    await alice.xmpp.stop();
    await bob.xmpp.stop();
  });
});

Deno.test("after a restart, the avatar hash comes from the stored vCard at bind", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "xmpp-vcard-" });
  try {
    const first = await startTestServer({ data_dir: dataDir });
    await first.accounts.create("localhost", "alice", "pw");
    const alice = await connectPeer(first, "alice", "a");
    await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "set" },
        xml("vCard", { xmlns: NS_VCARD }, [
          xml("PHOTO", {}, [xml("TYPE", {}, "image/png"), xml("BINVAL", {}, IMAGE_B64)]),
        ]),
      ),
    );
    await alice.xmpp.stop();
    await first.stop();

    const second = await startTestServer({ data_dir: dataDir });
    try {
      const again = await connectPeer(second, "alice", "b");
      await again.xmpp.send(xml("presence"));
      // The server echoes the broadcast presence to its sender, hash included.
      const own = await again.waitFor(presenceFrom("alice@localhost/b"), "own presence");
      assert.equal(photoOf(own), IMAGE_SHA1);
      await again.xmpp.stop();
    } finally {
      await second.stop();
    }
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
});
