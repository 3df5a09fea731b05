/**
 * Roles and affiliations (XEP-0045 §8, §9, §10.3-10.8): kick (307), ban (301) with reason, in
 * and out of the room, voice, the member list, members-only removal (321), who may do what,
 * and nick reservation by an admin.
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

const admin = (from: string, items: string, id = "a") =>
  `<iq from="${from}" to="${ROOM}" type="set" id="${id}"><query xmlns="http://jabber.org/protocol/muc#admin">${items}</query></iq>`;
const adminGet = (from: string, attrs: string, id = "g") =>
  `<iq from="${from}" to="${ROOM}" type="get" id="${id}"><query xmlns="http://jabber.org/protocol/muc#admin"><item ${attrs}/></query></iq>`;
const errorOf = (out: readonly unknown[]) =>
  /<([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/.exec(String(out[0]))?.[1];

Deno.test("kick: 307 with actor and reason to everyone, then the result", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    admin(ROMEO, `<item nick="Juliet" role="none"><reason>Be gone</reason></item>`),
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="307"/>
        <item affiliation="none" role="none" jid="${JULIET}">
          <actor nick="Romeo" jid="${ROMEO}"/><reason>Be gone</reason>
        </item>
      </x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="307"/>
        <item affiliation="none" role="none" jid="${JULIET}">
          <actor nick="Romeo"/><reason>Be gone</reason>
        </item>
        <status code="110"/>
      </x>
    </presence>
    <iq type="result" id="a" from="${ROOM}" to="${ROMEO}"/>`),
  );
  assert.deepEqual([...after!.occupants.keys()], ["Romeo"]);
});

Deno.test("kick refusals: not a moderator, an owner, no such nick", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  assert.equal(
    errorOf(routed(step(room, admin(JULIET, `<item nick="Romeo" role="none"/>`), ctx)[1])),
    "forbidden",
  );
  const withAdmin = scene(room, [
    admin(ROMEO, `<item affiliation="admin" jid="rosaline@localhost"/>`),
    joinXml(ROSALINE, "Rosaline"),
  ], ctx);
  assert.equal(
    errorOf(routed(step(withAdmin, admin(ROSALINE, `<item nick="Romeo" role="none"/>`), ctx)[1])),
    "not-allowed",
  );
  assert.equal(
    errorOf(routed(step(room, admin(ROMEO, `<item nick="Nobody" role="none"/>`), ctx)[1])),
    "item-not-found",
  );
  // A failed item leaves the room as it was, even after earlier items succeeded.
  const [same] = step(
    room,
    admin(ROMEO, `<item nick="Juliet" role="visitor"/><item nick="Nobody" role="none"/>`),
    ctx,
  );
  assert.equal(same, room);
});

Deno.test("voice: revoked and granted, with the new role broadcast", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(room, admin(ROMEO, `<item nick="Juliet" role="visitor"/>`), ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="visitor" jid="${JULIET}"><actor nick="Romeo" jid="${ROMEO}"/></item>
      </x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="visitor" jid="${JULIET}"><actor nick="Romeo"/></item>
        <status code="110"/>
      </x>
    </presence>
    <iq type="result" id="a" from="${ROOM}" to="${ROMEO}"/>`),
  );
  assert.equal(after?.occupants.get("Juliet")?.role, "visitor");
  // A participant may not grant moderator; an owner may.
  assert.equal(
    errorOf(routed(step(room, admin(JULIET, `<item nick="Juliet" role="moderator"/>`), ctx)[1])),
    "forbidden",
  );
  const [mod] = step(room, admin(ROMEO, `<item nick="Juliet" role="moderator"/>`), ctx);
  assert.equal(mod?.occupants.get("Juliet")?.role, "moderator");
});

Deno.test("ban of an occupant: 301 with reason, removed, in the outcast list with the reason", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    admin(
      ROMEO,
      `<item affiliation="outcast" jid="juliet@localhost"><reason>Montague business</reason></item>`,
    ),
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="301"/>
        <item affiliation="outcast" role="none" jid="${JULIET}">
          <actor nick="Romeo" jid="${ROMEO}"/><reason>Montague business</reason>
        </item>
      </x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="301"/>
        <item affiliation="outcast" role="none" jid="${JULIET}">
          <actor nick="Romeo"/><reason>Montague business</reason>
        </item>
        <status code="110"/>
      </x>
    </presence>
    <iq type="result" id="a" from="${ROOM}" to="${ROMEO}"/>`),
  );
  const [, list] = step(after, adminGet(ROMEO, `affiliation="outcast"`), ctx);
  assert.deepEqual(
    show(list),
    expected(`
    <iq type="result" id="g" from="${ROOM}" to="${ROMEO}">
      <query xmlns="http://jabber.org/protocol/muc#admin">
        <item affiliation="outcast" jid="juliet@localhost"><reason>Montague business</reason></item>
      </query>
    </iq>`),
  );
});

Deno.test("ban of someone not in the room: occupants who see JIDs are told, and the user (101)", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    admin(
      ROMEO,
      `<item affiliation="outcast" jid="tybalt@localhost"><reason>Hey calm down</reason></item>`,
      "lx5",
    ),
    ctx,
  );
  // Juliet, a participant of a semi-anonymous room, is not told whose JID was banned.
  assert.deepEqual(
    show(out),
    expected(`
    <message from="${ROOM}" to="${ROMEO}">
      <x xmlns="${MUC_USER}">
        <status code="301"/>
        <item affiliation="outcast" jid="tybalt@localhost"><reason>Hey calm down</reason></item>
      </x>
    </message>
    <message type="headline" from="${ROOM}" to="tybalt@localhost">
      <body>Your affiliation in room ${ROOM} is now outcast.</body>
      <x xmlns="${MUC_USER}"><status code="101"/></x>
    </message>
    <iq type="result" id="lx5" from="${ROOM}" to="${ROMEO}"/>`),
  );
});

Deno.test("member list: set, get, and who may read it", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [withMember, out] = step(
    room,
    admin(ROMEO, `<item affiliation="member" jid="rosaline@localhost"/>`, "member1"),
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <message from="${ROOM}" to="${ROMEO}">
      <x xmlns="${MUC_USER}"><item affiliation="member" jid="rosaline@localhost"/></x>
    </message>
    <message type="headline" from="${ROOM}" to="rosaline@localhost">
      <body>Your affiliation in room ${ROOM} is now member.</body>
      <x xmlns="${MUC_USER}"><status code="101"/></x>
    </message>
    <iq type="result" id="member1" from="${ROOM}" to="${ROMEO}"/>`),
  );
  const [, list] = step(withMember, adminGet(ROMEO, `affiliation="member"`), ctx);
  assert.deepEqual(
    show(list),
    expected(`
    <iq type="result" id="g" from="${ROOM}" to="${ROMEO}">
      <query xmlns="http://jabber.org/protocol/muc#admin">
        <item affiliation="member" jid="rosaline@localhost"/>
      </query>
    </iq>`),
  );
  // A participant may not read it in a semi-anonymous room.
  assert.equal(
    errorOf(routed(step(withMember, adminGet(JULIET, `affiliation="member"`), ctx)[1])),
    "forbidden",
  );
  // A member may read the owner list of a non-anonymous room (Prosody's rule).
  const open = scene(withMember, [
    admin(ROMEO, `<item affiliation="member" jid="juliet@localhost"/>`),
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_whois"><value>anyone</value></field></x></query></iq>`,
  ], ctx);
  assert.deepEqual(
    show(step(open, adminGet(JULIET, `affiliation="owner"`), ctx)[1]),
    expected(`
    <iq type="result" id="g" from="${ROOM}" to="${JULIET}">
      <query xmlns="http://jabber.org/protocol/muc#admin">
        <item affiliation="owner" jid="romeo@localhost"/>
      </query>
    </iq>`),
  );
});

Deno.test("granting membership to an occupant: its presence again, with the actor", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    admin(ROMEO, `<item affiliation="member" jid="juliet@localhost"/>`),
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="member" role="participant" jid="${JULIET}"><actor nick="Romeo" jid="${ROMEO}"/></item>
      </x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="member" role="participant" jid="${JULIET}"><actor nick="Romeo"/></item>
        <status code="110"/>
      </x>
    </presence>
    <iq type="result" id="a" from="${ROOM}" to="${ROMEO}"/>`),
  );
});

Deno.test("members-only: losing membership removes the occupant with 321", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [
    joinXml(ROMEO, "Romeo"),
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_membersonly"><value>1</value></field></x></query></iq>`,
    admin(ROMEO, `<item affiliation="member" jid="juliet@localhost"/>`),
    joinXml(JULIET, "Juliet"),
  ], ctx);
  const [after, out] = step(
    room,
    admin(ROMEO, `<item affiliation="none" jid="juliet@localhost"/>`, "member2"),
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="321"/>
        <item affiliation="none" role="none" jid="${JULIET}"><actor nick="Romeo" jid="${ROMEO}"/></item>
      </x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="321"/>
        <item affiliation="none" role="none" jid="${JULIET}"><actor nick="Romeo"/></item>
        <status code="110"/>
      </x>
    </presence>
    <iq type="result" id="member2" from="${ROOM}" to="${ROMEO}"/>`),
  );
  assert.deepEqual([...after!.occupants.keys()], ["Romeo"]);
});

Deno.test("affiliation permissions: admins below owners, the last owner stays", () => {
  const ctx = mucCtx();
  const room = scene(twoOccupants(ctx), [
    admin(ROMEO, `<item affiliation="admin" jid="rosaline@localhost"/>`),
  ], ctx);
  const err = (from: string, item: string) =>
    errorOf(routed(step(room, admin(from, item), ctx)[1]));
  assert.equal(err(JULIET, `<item affiliation="member" jid="x@localhost"/>`), "forbidden");
  assert.equal(err(ROSALINE, `<item affiliation="admin" jid="x@localhost"/>`), "not-allowed");
  assert.equal(err(ROSALINE, `<item affiliation="none" jid="romeo@localhost"/>`), "not-allowed");
  assert.equal(err(ROMEO, `<item affiliation="member" jid="romeo@localhost"/>`), "conflict");
  assert.equal(err(ROMEO, `<item affiliation="member" jid="not a jid@@"/>`), "jid-malformed");
  assert.equal(err(ROMEO, `<item affiliation="king" jid="x@localhost"/>`), "bad-request");
  const [ok] = step(room, admin(ROSALINE, `<item affiliation="member" jid="x@localhost"/>`), ctx);
  assert.equal(ok?.affiliations.get("x@localhost")?.affiliation, "member");
  // A service admin owns every room.
  const [byAdmin] = step(
    room,
    admin("admin@localhost/a", `<item affiliation="owner" jid="x@localhost"/>`),
    ctx,
  );
  assert.equal(byAdmin?.affiliations.get("x@localhost")?.affiliation, "owner");
});

// The out-of-room notice names no nick, even a reserved one (muc_register.scs line 258).
Deno.test("reserving a nick for someone evicts whoever else uses it (307, 'reserved')", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [
    joinXml(ROMEO, "Romeo"),
    instantXml(),
    joinXml(ROSALINE, "Juliet"),
  ], ctx);
  const [after, out] = step(
    room,
    admin(ROMEO, `<item affiliation="member" jid="juliet@localhost" nick="Juliet"/>`, "member1"),
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <status code="307"/>
        <item affiliation="none" role="none" jid="${ROSALINE}"><reason>This nickname is reserved</reason></item>
      </x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROSALINE}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <status code="307"/>
        <item affiliation="none" role="none" jid="${ROSALINE}"><reason>This nickname is reserved</reason></item>
        <status code="110"/>
      </x>
    </presence>
    <message from="${ROOM}" to="${ROMEO}">
      <x xmlns="${MUC_USER}"><item affiliation="member" jid="juliet@localhost"/></x>
    </message>
    <message type="headline" from="${ROOM}" to="juliet@localhost">
      <body>Your affiliation in room ${ROOM} is now member.</body>
      <x xmlns="${MUC_USER}"><status code="101"/></x>
    </message>
    <iq type="result" id="member1" from="${ROOM}" to="${ROMEO}"/>`),
  );
  assert.equal(after?.reservedBy.get("Juliet"), "juliet@localhost");
  // Rosaline may not come back as Juliet; Juliet may.
  assert.equal(errorOf(routed(step(after, joinXml(ROSALINE, "Juliet"), ctx)[1])), "conflict");
  const [julietIn] = step(after, joinXml(JULIET, "Juliet"), ctx);
  assert.equal(julietIn?.occupants.get("Juliet")?.bare, "juliet@localhost");
});

Deno.test("role lists are for moderators", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  assert.deepEqual(
    show(step(room, adminGet(ROMEO, `role="participant"`), ctx)[1]),
    expected(`
    <iq type="result" id="g" from="${ROOM}" to="${ROMEO}">
      <query xmlns="http://jabber.org/protocol/muc#admin">
        <item affiliation="none" role="participant" jid="${JULIET}" nick="Juliet"/>
      </query>
    </iq>`),
  );
  assert.equal(
    errorOf(routed(step(room, adminGet(JULIET, `role="moderator"`), ctx)[1])),
    "forbidden",
  );
});
