/**
 * Entering and leaving a room (XEP-0045 §7.2, §7.14, §10.1): creation with 201 and the lock,
 * the instant room, the join sequence (others, self with 110, history with delay, subject),
 * leaving with 110, temporary rooms going with their last occupant, and the join errors.
 */
import assert from "node:assert/strict";
import {
  expected,
  instantXml,
  joinXml,
  JULIET,
  mucCtx,
  ROMEO,
  ROOM,
  ROSALINE,
  routed,
  scene,
  show,
  step,
  twoOccupants,
} from "./_helpers.ts";

const MUC_USER = "http://jabber.org/protocol/muc#user";
const OID = "urn:xmpp:occupant-id:0";

Deno.test("creating a room: 201, owner and moderator, 110, empty subject; the room is locked", () => {
  const ctx = mucCtx();
  const [room, out] = step(undefined, joinXml(ROMEO, "Romeo"), ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Romeo" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}">
        <status code="201"/>
        <item affiliation="owner" role="moderator" jid="${ROMEO}"/>
        <status code="110"/>
      </x>
    </presence>
    <message type="groupchat" from="${ROOM}" to="${ROMEO}"><subject/></message>`),
  );
  assert.equal(room?.locked, true);
  assert.deepEqual([...room!.affiliations], [["romeo@localhost", { affiliation: "owner" }]]);

  // Nobody else may enter a locked room.
  const [, refused] = step(room, joinXml(JULIET, "Juliet"), ctx);
  assert.deepEqual(
    show(refused),
    expected(`
    <presence type="error" from="${ROOM}/Juliet" to="${JULIET}">
      <x xmlns="http://jabber.org/protocol/muc"/>
      <error type="cancel" by="${ROOM}">
        <item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">The room is locked until it is configured</text>
      </error>
    </presence>`),
  );
});

Deno.test("the instant room: an empty submitted form unlocks it, with no status message", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [joinXml(ROMEO, "Romeo")], ctx);
  const [after, out] = step(room, instantXml(), ctx);
  assert.deepEqual(
    show(out),
    expected(`<iq type="result" id="cfg" from="${ROOM}" to="${ROMEO}"/>`),
  );
  assert.equal(after?.locked, false);
});

Deno.test("joining: occupants first, self with 110, then history with delay, then the subject", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [
    joinXml(ROMEO, "Romeo"),
    instantXml(),
    `<message from="${ROMEO}" to="${ROOM}" type="groupchat" id="m1"><body>Hi</body></message>`,
    `<message from="${ROMEO}" to="${ROOM}" type="groupchat" id="s1"><subject>Verona</subject></message>`,
  ], ctx);
  const [after, out] = step(room, joinXml(JULIET, "Juliet"), ctx);
  // Juliet, a participant in a semi-anonymous room, does not see Romeo's JID; Romeo, a
  // moderator, sees hers.
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Romeo" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}"><item affiliation="owner" role="moderator"/></x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/></x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="participant" jid="${JULIET}"/>
        <status code="110"/>
      </x>
    </presence>
    <message type="groupchat" id="m1" from="${ROOM}/Romeo" to="${JULIET}">
      <body>Hi</body>
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <stanza-id xmlns="urn:xmpp:sid:0" by="${ROOM}" id="0m5duhs00id1"/>
      <delay xmlns="urn:xmpp:delay" stamp="2025-01-01T12:00:00Z" from="${ROOM}"/>
    </message>
    <message type="groupchat" from="${ROOM}/Romeo" to="${JULIET}"><subject>Verona</subject></message>`),
  );
  assert.deepEqual([...after!.nickOf], [[ROMEO, "Romeo"], [JULIET, "Juliet"]]);
});

Deno.test("history on join honours maxstanzas, maxchars, seconds and since", () => {
  let now = Date.UTC(2025, 0, 1, 12, 0, 0);
  const ctx = mucCtx({ now: () => now, archiving: false });
  let room = scene(undefined, [joinXml(ROMEO, "Romeo"), instantXml()], ctx);
  for (const body of ["one", "two", "three"]) {
    room = scene(room, [
      `<message from="${ROMEO}" to="${ROOM}" type="groupchat"><body>${body}</body></message>`,
    ], ctx);
    now += 60_000;
  }
  const bodies = (history: string) => {
    const [, out] = step(room, joinXml(JULIET, "Juliet", history), ctx);
    return routed(out).filter((s) => s.includes("<body>")).map((s) => /<body>(\w+)</.exec(s)![1]);
  };
  assert.deepEqual(bodies(""), ["one", "two", "three"]);
  assert.deepEqual(bodies(`<history maxstanzas="2"/>`), ["two", "three"]);
  assert.deepEqual(bodies(`<history maxstanzas="0"/>`), []);
  assert.deepEqual(bodies(`<history seconds="150"/>`), ["two", "three"]);
  assert.deepEqual(bodies(`<history since="2025-01-01T12:02:00Z"/>`), ["three"]);
  // Each stored message is 151-153 characters serialized (from, type, body, occupant-id).
  const one = room.history[2].chars;
  assert.deepEqual(bodies(`<history maxchars="${one}"/>`), ["three"]);
  assert.deepEqual(bodies(`<history maxchars="0"/>`), []);
});

Deno.test("history keeps at most the configured length", () => {
  const ctx = mucCtx({ archiving: false });
  let room = scene(undefined, [joinXml(ROMEO, "Romeo"), instantXml()], ctx);
  room = scene(room, [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_historylength"><value>2</value></field></x></query></iq>`,
  ], ctx);
  for (let i = 0; i < 5; i++) {
    room = scene(room, [
      `<message from="${ROMEO}" to="${ROOM}" type="groupchat"><body>${i}</body></message>`,
    ], ctx);
  }
  assert.equal(room.history.length, 2);
  assert.deepEqual(room.history.map((h) => JSON.stringify(h.stanza.children[0])), [
    JSON.stringify({ name: "body", xmlns: "jabber:client", attrs: {}, children: ["3"] }),
    JSON.stringify({ name: "body", xmlns: "jabber:client", attrs: {}, children: ["4"] }),
  ]);
});

Deno.test("leaving: everyone sees unavailable with the status text; the leaver gets 110", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    `<presence type="unavailable" from="${JULIET}" to="${ROOM}"><status>Farewell</status></presence>`,
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <status>Farewell</status>
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="none" jid="${JULIET}"/></x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${JULIET}">
      <status>Farewell</status>
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="none" jid="${JULIET}"/>
        <status code="110"/>
      </x>
    </presence>`),
  );
  assert.deepEqual([...after!.occupants.keys()], ["Romeo"]);
  assert.deepEqual([...after!.nickOf.keys()], [ROMEO]);
});

Deno.test("a temporary room goes with its last occupant; a persistent one stays", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [joinXml(ROMEO, "Romeo"), instantXml()], ctx);
  const leaveXml = `<presence type="unavailable" from="${ROMEO}" to="${ROOM}/Romeo"/>`;
  const [gone] = step(room, leaveXml, ctx);
  assert.equal(gone, undefined);
  const kept = scene(room, [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_persistentroom"><value>1</value></field></x></query></iq>`,
    leaveXml,
  ], ctx);
  assert.equal(kept.occupants.size, 0);
  assert.equal(kept.config.persistent, true);
});

Deno.test("unavailable from someone not in the room changes nothing", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    `<presence type="unavailable" from="${ROSALINE}" to="${ROOM}/X"/>`,
    ctx,
  );
  assert.equal(after, room);
  assert.deepEqual(out, []);
});

Deno.test("non-anonymous rooms add status 100 to the self-presence", () => {
  const ctx = mucCtx({ defaults: { whois: "anyone" } });
  const [, out] = step(undefined, joinXml(ROMEO, "Romeo"), ctx);
  assert.deepEqual(
    routed(out)[0],
    expected(`
    <presence from="${ROOM}/Romeo" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}">
        <status code="201"/><status code="100"/>
        <item affiliation="owner" role="moderator" jid="${ROMEO}"/>
        <status code="110"/>
      </x>
    </presence>`)[0],
  );
});

Deno.test("join errors as XEP-0045 §7.2 lists them", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const error = (condition: string, type: string, text: string, nick: string, from = ROSALINE) =>
    expected(`
      <presence type="error" from="${ROOM}/${nick}" to="${from}">
        <x xmlns="http://jabber.org/protocol/muc"/>
        <error type="${type}" by="${ROOM}">
          <${condition} xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
          <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">${text}</text>
        </error>
      </presence>`);
  // Nick in use by someone else.
  assert.deepEqual(
    show(step(room, joinXml(ROSALINE, "Juliet"), ctx)[1]),
    error("conflict", "cancel", "The nick is in use or reserved", "Juliet"),
  );
  // No nick at all.
  assert.deepEqual(
    show(
      step(
        room,
        `<presence from="${ROSALINE}" to="${ROOM}"><x xmlns="http://jabber.org/protocol/muc"/></presence>`,
        ctx,
      )[1],
    ),
    expected(`
      <presence type="error" from="${ROOM}" to="${ROSALINE}">
        <x xmlns="http://jabber.org/protocol/muc"/>
        <error type="modify" by="${ROOM}">
          <jid-malformed xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
          <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">A nick is required</text>
        </error>
      </presence>`),
  );
  // A nick that fails the strict check (an emoji with its presentation selector).
  assert.deepEqual(
    show(step(room, joinXml(ROSALINE, "\u{1F916}\uFE0F"), ctx)[1]),
    error("jid-malformed", "modify", "Nickname must pass strict validation", "\u{1F916}\uFE0F"),
  );
  // As the router hands it over: the JID's preparation mapped the selector away
  // (muc_nickname_robotface.scs), and the bare emoji is refused all the same.
  assert.deepEqual(
    show(step(room, joinXml(ROSALINE, "\u{1F916}"), ctx)[1]),
    error("jid-malformed", "modify", "Nickname must pass strict validation", "\u{1F916}"),
  );
  // Banned.
  const banned = scene(room, [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="b"><query xmlns="http://jabber.org/protocol/muc#admin"><item affiliation="outcast" jid="rosaline@localhost"/></query></iq>`,
  ], ctx);
  assert.deepEqual(
    show(step(banned, joinXml(ROSALINE, "Rosaline"), ctx)[1]),
    error("forbidden", "auth", "You are banned from this room", "Rosaline"),
  );
  // A whole server banned.
  const serverBanned = scene(room, [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="b"><query xmlns="http://jabber.org/protocol/muc#admin"><item affiliation="outcast" jid="evil.example"/></query></iq>`,
  ], ctx);
  assert.deepEqual(
    show(step(serverBanned, joinXml("tybalt@evil.example/x", "Tybalt"), ctx)[1]),
    error("forbidden", "auth", "You are banned from this room", "Tybalt", "tybalt@evil.example/x"),
  );
});

Deno.test("members-only, password and capacity refusals", () => {
  const ctx = mucCtx();
  const config = (fields: string) =>
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>${fields}</x></query></iq>`;
  const field = (v: string, value: string) => `<field var="${v}"><value>${value}</value></field>`;
  const base = scene(undefined, [joinXml(ROMEO, "Romeo"), instantXml()], ctx);
  const condition = (room: typeof base, join: string) => {
    const out = routed(step(room, join, ctx)[1]);
    return /<error[^>]*><([a-z-]+)/.exec(out[0])?.[1];
  };
  const membersOnly = scene(base, [config(field("muc#roomconfig_membersonly", "1"))], ctx);
  assert.equal(condition(membersOnly, joinXml(JULIET, "Juliet")), "registration-required");

  const secret = scene(base, [config(field("muc#roomconfig_roomsecret", "cauldron"))], ctx);
  assert.equal(condition(secret, joinXml(JULIET, "Juliet")), "not-authorized");
  assert.equal(
    condition(secret, joinXml(JULIET, "Juliet", "<password>wrong</password>")),
    "not-authorized",
  );
  const [inside] = step(secret, joinXml(JULIET, "Juliet", "<password>cauldron</password>"), ctx);
  assert.equal(inside?.occupants.has("Juliet"), true);

  const small = scene(base, [config(field("muc#roomconfig_maxusers", "1"))], ctx);
  assert.equal(condition(small, joinXml(JULIET, "Juliet")), "service-unavailable");
  // Owners and admins enter past the limit.
  const [ownerIn] = step(small, joinXml("admin@localhost/a", "Admin"), ctx);
  assert.equal(ownerIn?.occupants.size, 2);
});

Deno.test("room creation follows the creation policy", () => {
  const refused = (ctx: ReturnType<typeof mucCtx>, from: string) =>
    routed(step(undefined, joinXml(from, "Nick"), ctx)[1])[0];
  const text = (s: string) =>
    /<([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/.exec(s)?.[1];
  assert.equal(text(refused(mucCtx(), "stranger@remote.example/x")), "not-allowed");
  assert.equal(text(refused(mucCtx({ creation: "admins" }), ROMEO)), "not-allowed");
  assert.match(refused(mucCtx({ creation: "admins" }), "admin@localhost/a"), /status code="201"/);
  assert.match(
    refused(mucCtx({ creation: "anyone" }), "stranger@remote.example/x"),
    /status code="201"/,
  );
  assert.equal(text(refused(mucCtx({ roomsCreatedBy: () => 100 }), ROMEO)), "resource-constraint");
  // Anything else to a room that does not exist.
  const [, out] = step(
    undefined,
    `<iq from="${ROMEO}" to="${ROOM}" type="get" id="q"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
    mucCtx(),
  );
  assert.deepEqual(
    show(out),
    expected(`
    <iq type="error" id="q" from="${ROOM}" to="${ROMEO}">
      <error type="cancel">
        <item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">No such room</text>
      </error>
    </iq>`),
  );
});

Deno.test("a second session of the same user joins the same nick", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const phone = "juliet@localhost/phone";
  const [after, out] = step(room, joinXml(phone, "Juliet"), ctx);
  assert.deepEqual([...after!.occupants.get("Juliet")!.sessions.keys()], [JULIET, phone]);
  // Romeo (a moderator) sees both sessions in the items; both of Juliet's sessions get 110.
  assert.deepEqual(
    routed(out).slice(1, 2),
    expected(`
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="participant" jid="${JULIET}"/>
        <item affiliation="none" role="participant" jid="${phone}"/>
      </x>
    </presence>`),
  );
  assert.equal(routed(out).filter((s) => s.includes('code="110"')).length, 2);
  // One session leaving: only it hears; the occupant stays.
  const [left, out2] = step(
    after,
    `<presence type="unavailable" from="${phone}" to="${ROOM}/Juliet"/>`,
    ctx,
  );
  assert.deepEqual([...left!.occupants.get("Juliet")!.sessions.keys()], [JULIET]);
  assert.deepEqual(
    routed(out2),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${phone}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="none" jid="${phone}"/>
        <status code="110"/>
      </x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/></x>
    </presence>`),
  );
});

Deno.test("a join sent again by an occupant resyncs it (Prosody issue 667)", () => {
  const ctx = mucCtx({ archiving: false });
  const room = scene(twoOccupants(ctx), [
    `<message from="${JULIET}" to="${ROOM}" type="groupchat"><body>Hello</body></message>`,
  ], ctx);
  const [, out] = step(room, joinXml(JULIET, "Juliet"), ctx);
  assert.deepEqual(
    routed(out),
    expected(`
    <presence from="${ROOM}/Romeo" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}"><item affiliation="owner" role="moderator"/></x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/></x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/><status code="110"/></x>
    </presence>
    <message type="groupchat" from="${ROOM}/Juliet" to="${JULIET}">
      <body>Hello</body>
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <delay xmlns="urn:xmpp:delay" stamp="2025-01-01T12:00:00Z" from="${ROOM}"/>
    </message>
    <message type="groupchat" from="${ROOM}" to="${JULIET}"><subject/></message>`),
  );
});

Deno.test("a presence error from an occupant removes it with 333 (Prosody issue 978)", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    `
    <presence type="error" from="${JULIET}" to="${ROOM}">
      <error type="cancel">
        <service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Test error</text>
      </error>
    </presence>`,
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <status>Kicked: service unavailable: Test error</status>
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="333"/>
        <item affiliation="none" role="none" jid="${JULIET}"/>
      </x>
    </presence>`),
  );
  assert.deepEqual([...after!.occupants.keys()], ["Romeo"]);
});
