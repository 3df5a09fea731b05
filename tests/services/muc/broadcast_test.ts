/**
 * `muc#roomconfig_presencebroadcast` (Prosody's presence broadcast): which roles the others
 * see, absent members listed to newcomers when "none" is chosen (muc_show_offline.scs), and
 * what a change of role or of the setting shows. Also the actor in an occupant's own copy.
 */
import assert from "node:assert/strict";
import {
  expected,
  joinXml,
  JULIET,
  mucCtx,
  ROMEO,
  ROOM,
  ROSALINE,
  scene,
  show,
  step,
  twoOccupants,
} from "./_helpers.ts";

const MUC_USER = "http://jabber.org/protocol/muc#user";
const OID = "urn:xmpp:occupant-id:0";

const configure = (fields: string) =>
  `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c1"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>${fields}</x></query></iq>`;
const broadcast = (...roles: string[]) =>
  configure(
    `<field var="muc#roomconfig_presencebroadcast">${
      roles.map((r) => `<value>${r}</value>`).join("")
    }</field>`,
  );
const admin = (items: string, id = "a") =>
  `<iq from="${ROMEO}" to="${ROOM}" type="set" id="${id}"><query xmlns="http://jabber.org/protocol/muc#admin">${items}</query></iq>`;

Deno.test("presence broadcast: the choice is kept in rank order and announced with 104", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  assert.deepEqual(room.config.presenceBroadcast, ["visitor", "participant", "moderator"]);
  const [after, out] = step(room, broadcast("moderator", "none", "participant"), ctx);
  assert.deepEqual(after?.config.presenceBroadcast, ["none", "participant", "moderator"]);
  // Visitors stop being shown, but there are none: only the answer and 104.
  assert.deepEqual(
    show(out),
    expected(`
    <iq type="result" id="c1" from="${ROOM}" to="${ROMEO}"/>
    <message type="groupchat" from="${ROOM}" to="${ROMEO}"><x xmlns="${MUC_USER}"><status code="104"/></x></message>
    <message type="groupchat" from="${ROOM}" to="${JULIET}"><x xmlns="${MUC_USER}"><status code="104"/></x></message>`),
  );
  // The same roles again change nothing.
  const [, same] = step(after, broadcast("none", "participant", "moderator"), ctx);
  assert.deepEqual(
    show(same),
    expected(`<iq type="result" id="c1" from="${ROOM}" to="${ROMEO}"/>`),
  );
  // Not a role: refused.
  const [kept, bad] = step(room, broadcast("participant", "jester"), ctx);
  assert.equal(kept, room);
  assert.match(String(show(bad)[0]), /<bad-request /);
});

Deno.test("presence broadcast with none: a newcomer gets absent members with reserved nicks", () => {
  const ctx = mucCtx();
  const room = scene(twoOccupants(ctx), [
    broadcast("none", "participant", "moderator"),
    admin(`<item affiliation="member" jid="juliet@localhost" nick="Juliet"/>`),
    admin(`<item affiliation="member" jid="tybalt@localhost" nick="Tybalt"/>`),
    // No reserved nick: nothing to show.
    admin(`<item affiliation="member" jid="nurse@localhost"/>`),
    `<presence type="unavailable" from="${JULIET}" to="${ROOM}/Juliet"/>`,
  ], ctx);
  const [, out] = step(room, joinXml(ROSALINE, "Rosaline"), ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Romeo" to="${ROSALINE}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}"><item affiliation="owner" role="moderator"/></x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROSALINE}">
      <x xmlns="${MUC_USER}"><item affiliation="member" role="none" nick="Juliet"/></x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Tybalt" to="${ROSALINE}">
      <x xmlns="${MUC_USER}"><item affiliation="member" role="none" nick="Tybalt"/></x>
    </presence>
    <presence from="${ROOM}/Rosaline" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${ROSALINE}"/></x>
    </presence>
    <presence from="${ROOM}/Rosaline" to="${ROSALINE}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="participant" jid="${ROSALINE}"/><status code="110"/>
      </x>
    </presence>
    <message type="groupchat" from="${ROOM}" to="${ROSALINE}"><subject/></message>`),
  );
  // A moderator joining sees their JIDs; a member in the room is not listed as absent.
  const withJuliet = scene(room, [joinXml(JULIET, "Juliet")], ctx);
  const [, modOut] = step(withJuliet, joinXml("admin@localhost/a", "Admin"), ctx);
  assert.deepEqual(
    show(modOut).filter((s) => String(s).includes('type="unavailable"')),
    expected(`
    <presence type="unavailable" from="${ROOM}/Tybalt" to="admin@localhost/a">
      <x xmlns="${MUC_USER}">
        <item affiliation="member" role="none" jid="tybalt@localhost" nick="Tybalt"/>
      </x>
    </presence>`),
  );
  // Without "none" (the default), nobody absent is listed.
  const [, plain] = step(
    scene(room, [broadcast("visitor", "participant", "moderator")], ctx),
    joinXml(ROSALINE, "Rosaline"),
    ctx,
  );
  assert.equal(show(plain).filter((s) => String(s).includes('type="unavailable"')).length, 0);
});

Deno.test("presence broadcast: hidden roles are not shown; a role change shows or hides", () => {
  const ctx = mucCtx();
  const room = scene(twoOccupants(ctx), [broadcast("moderator")], ctx);
  // Rosaline, a participant, enters: only she hears of it, and she sees Romeo only.
  const [inside, out] = step(room, joinXml(ROSALINE, "Rosaline"), ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Romeo" to="${ROSALINE}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}"><item affiliation="owner" role="moderator"/></x>
    </presence>
    <presence from="${ROOM}/Rosaline" to="${ROSALINE}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="participant" jid="${ROSALINE}"/><status code="110"/>
      </x>
    </presence>
    <message type="groupchat" from="${ROOM}" to="${ROSALINE}"><subject/></message>`),
  );
  // Made moderator: everyone sees her now, and she sees the others' JIDs (Juliet is a
  // participant, hidden, so she is not among them).
  const [promoted, up] = step(inside, admin(`<item nick="Rosaline" role="moderator"/>`), ctx);
  assert.deepEqual(
    show(up),
    expected(`
    <presence from="${ROOM}/Rosaline" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="moderator" jid="${ROSALINE}"><actor nick="Romeo" jid="${ROMEO}"/></item>
      </x>
    </presence>
    <presence from="${ROOM}/Rosaline" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="moderator"><actor nick="Romeo"/></item>
      </x>
    </presence>
    <presence from="${ROOM}/Rosaline" to="${ROSALINE}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="moderator" jid="${ROSALINE}"><actor nick="Romeo"/></item>
        <status code="110"/>
      </x>
    </presence>
    <presence from="${ROOM}/Romeo" to="${ROSALINE}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}"><item affiliation="owner" role="moderator" jid="${ROMEO}"/></x>
    </presence>
    <iq type="result" id="a" from="${ROOM}" to="${ROMEO}"/>`),
  );
  // Back to participant: the others see her go.
  const [, down] = step(promoted, admin(`<item nick="Rosaline" role="participant"/>`), ctx);
  assert.deepEqual(
    show(down),
    expected(`
    <presence type="unavailable" from="${ROOM}/Rosaline" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="participant" jid="${ROSALINE}"><actor nick="Romeo" jid="${ROMEO}"/></item>
      </x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Rosaline" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="participant"><actor nick="Romeo"/></item>
      </x>
    </presence>
    <presence from="${ROOM}/Rosaline" to="${ROSALINE}">
      <occupant-id xmlns="${OID}" id="oid-rosaline"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="participant" jid="${ROSALINE}"><actor nick="Romeo"/></item>
        <status code="110"/>
      </x>
    </presence>
    <iq type="result" id="a" from="${ROOM}" to="${ROMEO}"/>`),
  );
  // Leaving is always told, hidden role or not.
  const [, left] = step(
    inside,
    `<presence type="unavailable" from="${ROSALINE}" to="${ROOM}/Rosaline"/>`,
    ctx,
  );
  assert.equal(show(left).length, 3);
});

Deno.test("presence broadcast changed: the others see newly hidden occupants go, newly shown ones come", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [hidden, out] = step(room, broadcast("moderator"), ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/></x>
    </presence>
    <iq type="result" id="c1" from="${ROOM}" to="${ROMEO}"/>
    <message type="groupchat" from="${ROOM}" to="${ROMEO}"><x xmlns="${MUC_USER}"><status code="104"/></x></message>
    <message type="groupchat" from="${ROOM}" to="${JULIET}"><x xmlns="${MUC_USER}"><status code="104"/></x></message>`),
  );
  const [, back] = step(hidden, broadcast("participant", "moderator"), ctx);
  assert.deepEqual(
    show(back).slice(0, 1),
    expected(`
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/></x>
    </presence>`),
  );
});

Deno.test("an occupant's own copy names the actor by nick only, even for a moderator", () => {
  // muc_show_offline.scs line 530: an owner reserving their own nick.
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    admin(`<item nick="Romeo" affiliation="owner" jid="romeo@localhost"/>`, "reserve"),
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Romeo" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}"><item affiliation="owner" role="moderator"><actor nick="Romeo"/></item></x>
    </presence>
    <presence from="${ROOM}/Romeo" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="owner" role="moderator" jid="${ROMEO}"><actor nick="Romeo"/></item>
        <status code="110"/>
      </x>
    </presence>
    <iq type="result" id="reserve" from="${ROOM}" to="${ROMEO}"/>`),
  );
});
