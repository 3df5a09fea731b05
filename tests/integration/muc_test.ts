/**
 * Multi-user chat (XEP-0045) on conference.localhost with real clients: creating and
 * configuring a room, joining with history and subject, groupchat with occupant-id and
 * stanza-id, private messages, nick change, kick, ban, the room's archive (XEP-0313),
 * destruction, a persistent room across a restart, and an occupant whose connection drops.
 */
import assert from "node:assert/strict";
import { configFromObject } from "../../lib/config.ts";
import { startServer } from "../../lib/shell/server.ts";
import { closeAll, connectPeer, errorOf, type Peer } from "./_peer.ts";
import { type TestServer, withServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { NS_DATA, NS_DELAY, NS_MAM, NS_SID } from "../../lib/xmpp/namespaces.ts";

const SERVICE = "conference.localhost";
const ROOM = `garden@${SERVICE}`;
const NS_MUC = "http://jabber.org/protocol/muc";
const NS_MUC_USER = "http://jabber.org/protocol/muc#user";
const NS_MUC_ADMIN = "http://jabber.org/protocol/muc#admin";
const NS_MUC_OWNER = "http://jabber.org/protocol/muc#owner";
const NS_OCCUPANT_ID = "urn:xmpp:occupant-id:0";

/** The status codes of a stanza's `<x xmlns=muc#user/>`. */
function codes(st: XmppClient): string[] {
  return (st.getChild("x", NS_MUC_USER)?.getChildren("status") ?? []).map((s: XmppClient) =>
    s.attrs.code
  );
}

/** The (first) `<item/>` of a stanza's `<x xmlns=muc#user/>`. */
function itemOf(st: XmppClient): XmppClient {
  return st.getChild("x", NS_MUC_USER)?.getChild("item");
}

/** Presence from an occupant JID of the room, of `type` (absent: available). */
function fromNick(nick: string, type?: string, room = ROOM) {
  return (st: XmppClient) =>
    st.is("presence") && st.attrs.from === `${room}/${nick}` && st.attrs.type === type;
}

/** Joins `room` as `nick`; resolves with the self-presence (status 110). */
async function enter(
  peer: Peer,
  nick: string,
  room = ROOM,
  ...extra: XmppClient[]
): Promise<XmppClient> {
  // Only what arrives from now on: an earlier stay in the room left a self-presence too.
  const start = peer.received.length;
  await peer.xmpp.send(
    xml("presence", { to: `${room}/${nick}` }, xml("x", { xmlns: NS_MUC }, ...extra)),
  );
  return await peer.waitFor(
    (st) =>
      peer.received.indexOf(st) >= start && fromNick(nick, undefined, room)(st) &&
      codes(st).includes("110"),
    `${nick}'s self-presence in ${room}`,
  );
}

/** Submits the owner's configuration form with these fields. */
function configure(peer: Peer, fields: Record<string, string>, room = ROOM) {
  return peer.xmpp.iqCaller.request(xml(
    "iq",
    { type: "set", to: room },
    xml(
      "query",
      { xmlns: NS_MUC_OWNER },
      xml(
        "x",
        { xmlns: NS_DATA, type: "submit" },
        xml(
          "field",
          { var: "FORM_TYPE" },
          xml("value", {}, "http://jabber.org/protocol/muc#roomconfig"),
        ),
        ...Object.entries(fields).map(([k, v]) =>
          xml("field", { var: `muc#roomconfig_${k}` }, xml("value", {}, v))
        ),
      ),
    ),
  ));
}

function adminSet(peer: Peer, item: Record<string, string>, reason?: string) {
  return peer.xmpp.iqCaller.request(xml(
    "iq",
    { type: "set", to: ROOM },
    xml(
      "query",
      { xmlns: NS_MUC_ADMIN },
      xml("item", item, reason === undefined ? [] : [xml("reason", {}, reason)]),
    ),
  ));
}

function groupchat(peer: Peer, body: string, id: string) {
  return peer.xmpp.send(
    xml("message", { to: ROOM, type: "groupchat", id }, xml("body", {}, body)),
  );
}

function groupchatWithId(id: string) {
  return (st: XmppClient) =>
    st.is("message") && st.attrs.type === "groupchat" && st.attrs.id === id;
}

/** Romeo creates the room (status 201, locked) and unlocks it with these settings. */
async function createRoom(romeo: Peer, fields: Record<string, string> = {}): Promise<void> {
  const self = await enter(romeo, "Romeo");
  assert.deepEqual(codes(self), ["201", "110"]);
  assert.equal(itemOf(self).attrs.affiliation, "owner");
  assert.equal(itemOf(self).attrs.role, "moderator");
  await configure(romeo, fields);
}

Deno.test("muc: create and configure; a newcomer gets occupants, history with delay, then the subject", async () => {
  await withServer(["romeo", "juliet"], async (server) => {
    const romeo = await connectPeer(server, "romeo", "r");
    const juliet = await connectPeer(server, "juliet", "j");
    try {
      await createRoom(romeo, { roomname: "The Garden", historylength: "5" });
      // The form comes back with what was set.
      const form = await romeo.xmpp.iqCaller.request(
        xml("iq", { type: "get", to: ROOM }, xml("query", { xmlns: NS_MUC_OWNER })),
      );
      const fields = form.getChild("query", NS_MUC_OWNER).getChild("x", NS_DATA)
        .getChildren("field");
      const value = (v: string) =>
        fields.find((f: XmppClient) => f.attrs.var === `muc#roomconfig_${v}`)?.getChildText(
          "value",
        );
      assert.equal(value("roomname"), "The Garden");
      assert.equal(value("historylength"), "5");

      await romeo.xmpp.send(
        xml("message", { to: ROOM, type: "groupchat" }, xml("subject", {}, "Under the balcony")),
      );
      await romeo.waitFor(
        (st) => st.is("message") && st.getChildText("subject") !== null,
        "subject",
      );
      await groupchat(romeo, "But soft!", "m1");
      await romeo.waitFor(groupchatWithId("m1"), "own message back");

      const self = await enter(juliet, "Juliet");
      assert.deepEqual(codes(self), ["110"]);
      assert.equal(itemOf(self).attrs.jid, juliet.jid);
      // In order: Romeo's presence, hers, the history (with delay), then the subject.
      await juliet.waitFor((st) => st.getChildText("subject") !== null, "the subject");
      const kind = (st: XmppClient) =>
        st.getChildText("subject") !== null
          ? "subject"
          : st.is("message")
          ? "history"
          : st.attrs.from;
      assert.deepEqual(
        juliet.received.filter((st) => st.attrs.from?.startsWith(ROOM)).map(kind),
        [`${ROOM}/Romeo`, `${ROOM}/Juliet`, "history", "subject"],
      );
      const history = juliet.received.find((st) => st.is("message") && st.attrs.id === "m1");
      assert.equal(history.getChildText("body"), "But soft!");
      assert.equal(history.attrs.from, `${ROOM}/Romeo`);
      assert.equal(history.getChild("delay", NS_DELAY)?.attrs.from, ROOM);
      const subject = juliet.received.find((st) => st.getChildText("subject") !== null);
      assert.equal(subject.getChildText("subject"), "Under the balcony");
      assert.equal(subject.attrs.from, `${ROOM}/Romeo`);
      // Romeo, a moderator of a semi-anonymous room, sees her real JID.
      const hers = await romeo.waitFor(fromNick("Juliet"), "juliet's presence");
      assert.equal(itemOf(hers).attrs.jid, juliet.jid);
    } finally {
      await closeAll(romeo, juliet);
    }
  });
});

Deno.test("muc: groupchat carries occupant-id and stanza-id and lands in the room's archive", async () => {
  await withServer(["romeo", "juliet"], async (server) => {
    const romeo = await connectPeer(server, "romeo", "r");
    const juliet = await connectPeer(server, "juliet", "j");
    try {
      await createRoom(romeo);
      await enter(juliet, "Juliet");
      // A forged occupant-id is replaced by the room's.
      await juliet.xmpp.send(
        xml(
          "message",
          { to: ROOM, type: "groupchat", id: "j1" },
          xml("body", {}, "Wherefore art thou?"),
          xml("occupant-id", { xmlns: NS_OCCUPANT_ID, id: "forged" }),
        ),
      );
      const atRomeo = await romeo.waitFor(groupchatWithId("j1"), "juliet's message");
      const atJuliet = await juliet.waitFor(groupchatWithId("j1"), "her own message back");
      assert.equal(atRomeo.attrs.from, `${ROOM}/Juliet`);
      const oids = atRomeo.getChildren("occupant-id", NS_OCCUPANT_ID);
      assert.equal(oids.length, 1);
      assert.notEqual(oids[0].attrs.id, "forged");
      assert.equal(atJuliet.getChild("occupant-id", NS_OCCUPANT_ID).attrs.id, oids[0].attrs.id);
      // Her presence carries the same occupant-id.
      const hers = await romeo.waitFor(fromNick("Juliet"), "juliet's presence");
      assert.equal(hers.getChild("occupant-id", NS_OCCUPANT_ID).attrs.id, oids[0].attrs.id);
      const sid = atRomeo.getChild("stanza-id", NS_SID);
      assert.equal(sid.attrs.by, ROOM);
      assert.equal(atJuliet.getChild("stanza-id", NS_SID).attrs.id, sid.attrs.id);

      // The room's archive (XEP-0313 on the room JID) has it under that id.
      const fin = await romeo.xmpp.iqCaller.request(
        xml("iq", { type: "set", to: ROOM }, xml("query", { xmlns: NS_MAM, queryid: "q1" })),
      );
      assert.equal(fin.getChild("fin", NS_MAM).attrs.complete, "true");
      const results = romeo.received.filter((st) =>
        st.is("message") && st.getChild("result", NS_MAM)?.attrs.queryid === "q1"
      );
      assert.equal(results.length, 1);
      assert.equal(results[0].attrs.from, ROOM);
      const result = results[0].getChild("result", NS_MAM);
      assert.equal(result.attrs.id, sid.attrs.id);
      const archived = result.getChild("forwarded").getChild("message");
      assert.equal(archived.attrs.from, `${ROOM}/Juliet`);
      assert.equal(archived.getChildText("body"), "Wherefore art thou?");
    } finally {
      await closeAll(romeo, juliet);
    }
  });
});

Deno.test("muc: private messages between occupants and a nick change (303)", async () => {
  await withServer(["romeo", "juliet"], async (server) => {
    const romeo = await connectPeer(server, "romeo", "r");
    const juliet = await connectPeer(server, "juliet", "j");
    try {
      await createRoom(romeo);
      await enter(juliet, "Juliet");
      await juliet.xmpp.send(
        xml("message", { to: `${ROOM}/Romeo`, type: "chat", id: "pm1" }, xml("body", {}, "psst")),
      );
      const pm = await romeo.waitFor((st) => st.is("message") && st.attrs.id === "pm1", "the pm");
      assert.equal(pm.attrs.from, `${ROOM}/Juliet`);
      assert.equal(pm.attrs.to, romeo.jid);
      assert.ok(pm.getChild("x", NS_MUC_USER));
      assert.equal(pm.getChildText("body"), "psst");
      // To a nick nobody has: an error from that nick.
      await juliet.xmpp.send(
        xml("message", { to: `${ROOM}/Tybalt`, type: "chat", id: "pm2" }, xml("body", {}, "?")),
      );
      const bounced = await juliet.waitFor(
        (st) => st.is("message") && st.attrs.id === "pm2" && st.attrs.type === "error",
        "the error",
      );
      assert.ok(bounced.getChild("error").getChild("item-not-found"));

      await juliet.xmpp.send(xml("presence", { to: `${ROOM}/Jules` }));
      const gone = await romeo.waitFor(fromNick("Juliet", "unavailable"), "the old nick going");
      assert.deepEqual(codes(gone), ["303"]);
      assert.equal(itemOf(gone).attrs.nick, "Jules");
      await romeo.waitFor(fromNick("Jules"), "the new nick");
      const self = await juliet.waitFor(
        (st) => fromNick("Jules")(st) && codes(st).includes("110"),
        "her new self-presence",
      );
      assert.equal(itemOf(self).attrs.jid, juliet.jid);
      // Messages now come from the new nick.
      await groupchat(juliet, "by any other name", "g1");
      const g = await romeo.waitFor(groupchatWithId("g1"), "the message");
      assert.equal(g.attrs.from, `${ROOM}/Jules`);
    } finally {
      await closeAll(romeo, juliet);
    }
  });
});

Deno.test("muc: kick (307) and ban (301) with reasons; the banned cannot come back", async () => {
  await withServer(["romeo", "juliet", "tybalt"], async (server) => {
    const romeo = await connectPeer(server, "romeo", "r");
    const juliet = await connectPeer(server, "juliet", "j");
    const tybalt = await connectPeer(server, "tybalt", "t");
    try {
      await createRoom(romeo);
      await enter(juliet, "Juliet");
      await enter(tybalt, "Tybalt");

      await adminSet(romeo, { nick: "Tybalt", role: "none" }, "Calm down");
      const kicked = await tybalt.waitFor(fromNick("Tybalt", "unavailable"), "his kick");
      assert.deepEqual(codes(kicked), ["307", "110"]);
      assert.equal(itemOf(kicked).getChildText("reason"), "Calm down");
      assert.equal(itemOf(kicked).getChild("actor").attrs.nick, "Romeo");
      const seen = await juliet.waitFor(fromNick("Tybalt", "unavailable"), "the kick");
      assert.deepEqual(codes(seen), ["307"]);

      // A kicked user may come back; a banned one may not.
      await enter(tybalt, "Tybalt");
      await adminSet(
        romeo,
        { jid: "tybalt@localhost", affiliation: "outcast" },
        "Thou art a villain",
      );
      const banned = await tybalt.waitFor(
        (st) => fromNick("Tybalt", "unavailable")(st) && codes(st).includes("301"),
        "his ban",
      );
      assert.equal(itemOf(banned).attrs.affiliation, "outcast");
      assert.equal(itemOf(banned).getChildText("reason"), "Thou art a villain");
      await juliet.waitFor(
        (st) => fromNick("Tybalt", "unavailable")(st) && codes(st).includes("301"),
        "the ban",
      );
      const outcasts = await romeo.xmpp.iqCaller.request(xml(
        "iq",
        { type: "get", to: ROOM },
        xml("query", { xmlns: NS_MUC_ADMIN }, xml("item", { affiliation: "outcast" })),
      ));
      const listed = outcasts.getChild("query", NS_MUC_ADMIN).getChildren("item");
      assert.deepEqual(listed.map((i: XmppClient) => [i.attrs.jid, i.getChildText("reason")]), [
        ["tybalt@localhost", "Thou art a villain"],
      ]);
      await tybalt.xmpp.send(
        xml("presence", { to: `${ROOM}/Tybalt` }, xml("x", { xmlns: NS_MUC })),
      );
      const refused = await tybalt.waitFor(
        (st) => st.is("presence") && st.attrs.type === "error",
        "the refusal",
      );
      assert.ok(refused.getChild("error").getChild("forbidden"));
      // Only moderators kick.
      assert.equal(
        await errorOf(adminSet(juliet, { nick: "Romeo", role: "none" })),
        "forbidden",
      );
    } finally {
      await closeAll(romeo, juliet, tybalt);
    }
  });
});

Deno.test("muc: destruction with an alternate venue; the room is gone", async () => {
  await withServer(["romeo", "juliet"], async (server) => {
    const romeo = await connectPeer(server, "romeo", "r");
    const juliet = await connectPeer(server, "juliet", "j");
    try {
      await createRoom(romeo);
      await enter(juliet, "Juliet");
      await romeo.xmpp.iqCaller.request(xml(
        "iq",
        { type: "set", to: ROOM },
        xml(
          "query",
          { xmlns: NS_MUC_OWNER },
          xml("destroy", { jid: `mantua@${SERVICE}` }, xml("reason", {}, "Banished")),
        ),
      ));
      for (const [peer, nick] of [[juliet, "Juliet"], [romeo, "Romeo"]] as const) {
        const gone = await peer.waitFor(fromNick(nick, "unavailable"), `${nick}'s farewell`);
        const destroy = gone.getChild("x", NS_MUC_USER).getChild("destroy");
        assert.equal(destroy.attrs.jid, `mantua@${SERVICE}`);
        assert.equal(destroy.getChildText("reason"), "Banished");
        assert.equal(itemOf(gone).attrs.role, "none");
      }
      // Nothing is left: disco on the room finds nothing.
      assert.equal(
        await errorOf(romeo.xmpp.iqCaller.request(xml(
          "iq",
          { type: "get", to: ROOM },
          xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
        ))),
        "item-not-found",
      );
    } finally {
      await closeAll(romeo, juliet);
    }
  });
});

Deno.test("muc: an occupant whose connection drops leaves, and the others hear it once", async () => {
  await withServer(["romeo", "juliet"], async (server) => {
    const romeo = await connectPeer(server, "romeo", "r");
    const juliet = await connectPeer(server, "juliet", "j");
    try {
      await createRoom(romeo);
      await enter(juliet, "Juliet");
      // Her socket dies without unavailable presence or a closing tag.
      juliet.xmpp.socket.end();
      const gone = await romeo.waitFor(fromNick("Juliet", "unavailable"), "her departure");
      assert.equal(itemOf(gone).attrs.role, "none");
      // Once: no second unavailable, even after her session is over for good.
      await new Promise((r) => setTimeout(r, 1500));
      assert.equal(romeo.received.filter(fromNick("Juliet", "unavailable")).length, 1);
      // The room no longer counts her.
      const info = await romeo.xmpp.iqCaller.request(xml(
        "iq",
        { type: "get", to: ROOM },
        xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
      ));
      const occupants = info.getChild("query").getChild("x", NS_DATA).getChildren("field")
        .find((f: XmppClient) => f.attrs.var === "muc#roominfo_occupants");
      assert.equal(occupants.getChildText("value"), "1");
    } finally {
      await closeAll(romeo, juliet);
    }
    // @xmpp/client resumes streams (XEP-0198): the dropped session waits a second to be
    // resumed before it ends.
  }, { limits: { sm_resume_timeout: 1 } });
});

/** A server on `dataDir`, kept across restarts. */
async function serverOn(dataDir: string): Promise<TestServer> {
  const server = await startServer(configFromObject({
    hosts: ["localhost"],
    data_dir: dataDir,
    interfaces: ["127.0.0.1"],
    c2s_port: 0,
    c2s_direct_tls_port: false,
    component_port: false,
    s2s_port: false,
    http: { http_port: false, https_port: false },
    log_level: "error",
  }, "test"));
  return { ...server, dataDir, stop: () => server.shutdown() };
}

Deno.test("muc: a persistent room keeps its configuration, affiliations and subject across a restart", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "muc-restart-" });
  let server = await serverOn(dataDir);
  try {
    for (const u of ["romeo", "juliet"]) await server.accounts.create("localhost", u, "pw");
    const romeo = await connectPeer(server, "romeo", "r");
    await createRoom(romeo, {
      persistentroom: "1",
      membersonly: "1",
      roomname: "The Garden",
    });
    await adminSet(romeo, { jid: "juliet@localhost", affiliation: "member", nick: "Juliet" });
    await romeo.xmpp.send(
      xml("message", { to: ROOM, type: "groupchat" }, xml("subject", {}, "Vows")),
    );
    await romeo.waitFor((st) => st.getChildText("subject") === "Vows", "the subject");
    await closeAll(romeo);
    await server.stop();

    server = await serverOn(dataDir);
    const juliet = await connectPeer(server, "juliet", "j");
    const romeo2 = await connectPeer(server, "romeo", "r2");
    try {
      // The member enters the members-only room under her reserved nick, as a member.
      const self = await enter(juliet, "Juliet");
      assert.equal(itemOf(self).attrs.affiliation, "member");
      const subject = await juliet.waitFor(
        (st) => st.is("message") && st.getChildText("subject") !== null,
        "the subject",
      );
      assert.equal(subject.getChildText("subject"), "Vows");
      // The owner is still the owner; the configuration is as it was.
      const owner = await enter(romeo2, "Romeo");
      assert.equal(itemOf(owner).attrs.affiliation, "owner");
      const info = await romeo2.xmpp.iqCaller.request(xml(
        "iq",
        { type: "get", to: ROOM },
        xml("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
      ));
      const query = info.getChild("query");
      assert.equal(query.getChild("identity").attrs.name, "The Garden");
      const features = query.getChildren("feature").map((f: XmppClient) => f.attrs.var);
      assert.ok(features.includes("muc_persistent"), String(features));
      assert.ok(features.includes("muc_membersonly"), String(features));
      const members = await romeo2.xmpp.iqCaller.request(xml(
        "iq",
        { type: "get", to: ROOM },
        xml("query", { xmlns: NS_MUC_ADMIN }, xml("item", { affiliation: "member" })),
      ));
      assert.deepEqual(
        members.getChild("query", NS_MUC_ADMIN).getChildren("item").map((
          i: XmppClient,
        ) => [i.attrs.jid, i.attrs.nick]),
        [["juliet@localhost", "Juliet"]],
      );
    } finally {
      await closeAll(juliet, romeo2);
    }
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});

Deno.test("muc: after a restart, an archived persistent room's history comes from its archive", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "muc-history-" });
  let server = await serverOn(dataDir);
  try {
    for (const u of ["romeo", "juliet"]) await server.accounts.create("localhost", u, "pw");
    const romeo = await connectPeer(server, "romeo", "r");
    await createRoom(romeo, { persistentroom: "1", enablearchiving: "1", historylength: "5" });
    for (const body of ["Before the restart", "Still before it"]) {
      await romeo.xmpp.send(
        xml("message", { to: ROOM, type: "groupchat", id: body }, xml("body", {}, body)),
      );
      await romeo.waitFor((st) => st.is("message") && st.getChildText("body") === body, body);
    }
    await closeAll(romeo);
    await server.stop();

    server = await serverOn(dataDir);
    const juliet = await connectPeer(server, "juliet", "j");
    try {
      await enter(juliet, "Juliet");
      await juliet.waitFor(
        (st) => st.is("message") && st.getChild("subject") !== undefined,
        "the subject",
      );
      const history = juliet.received.filter((st) =>
        st.is("message") && st.attrs.type === "groupchat" && st.getChildText("body") !== null
      );
      assert.deepEqual(
        history.map((st) => [st.attrs.from, st.getChildText("body")]),
        [[`${ROOM}/Romeo`, "Before the restart"], [`${ROOM}/Romeo`, "Still before it"]],
      );
      for (const st of history) {
        const delay = st.getChild("delay", NS_DELAY);
        assert.equal(delay?.attrs.from, ROOM);
        assert.ok(Date.parse(delay.attrs.stamp) <= Date.now(), delay?.attrs.stamp);
        assert.equal(st.getChild("stanza-id", NS_SID)?.attrs.by, ROOM);
      }
    } finally {
      await closeAll(juliet);
    }
  } finally {
    await server.stop();
    await Deno.remove(dataDir, { recursive: true });
  }
});
