/**
 * Mediated invitations and declines (XEP-0045 §7.8.2, §7.8.2.1) and room registration with
 * reserved nicks (§7.10, §7.12), as Prosody's scripts show them.
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
  routed,
  scene,
  show,
  step,
  twoOccupants,
} from "./_helpers.ts";

const MUC_USER = "http://jabber.org/protocol/muc#user";
const OID = "urn:xmpp:occupant-id:0";

Deno.test("a mediated invitation: from the room, with the inviter's nick, a body and jabber:x:conference", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    `
    <message from="${ROMEO}" to="${ROOM}" id="invite1">
      <x xmlns="${MUC_USER}"><invite to="rosaline@localhost"/></x>
    </message>`,
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <message from="${ROOM}" to="rosaline@localhost" id="invite1">
      <x xmlns="${MUC_USER}"><invite from="${ROOM}/Romeo"><reason/></invite></x>
      <body>${ROOM}/Romeo invited you to the room ${ROOM}</body>
      <x xmlns="jabber:x:conference" jid="${ROOM}"/>
    </message>`),
  );
  // A reason is carried in all three places; someone not in the room may not invite.
  const [, withReason] = step(
    room,
    `<message from="${JULIET}" to="${ROOM}" id="i2"><x xmlns="${MUC_USER}"><invite to="rosaline@localhost"><reason>Come!</reason></invite></x></message>`,
    ctx,
  );
  assert.deepEqual(
    show(withReason),
    expected(`
    <message from="${ROOM}" to="rosaline@localhost" id="i2">
      <x xmlns="${MUC_USER}"><invite from="${ROOM}/Juliet"><reason>Come!</reason></invite></x>
      <body>${ROOM}/Juliet invited you to the room ${ROOM} (Come!)</body>
      <x xmlns="jabber:x:conference" jid="${ROOM}" reason="Come!"/>
    </message>`),
  );
  assert.match(
    routed(
      step(
        room,
        `<message from="${ROSALINE}" to="${ROOM}"><x xmlns="${MUC_USER}"><invite to="x@localhost"/></x></message>`,
        ctx,
      )[1],
    )[0],
    /<forbidden /,
  );
});

Deno.test("an invitation to a members-only room by its owner makes the invitee a member", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [
    joinXml(ROMEO, "Romeo"),
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_membersonly"><value>1</value></field></x></query></iq>`,
  ], ctx);
  const [after] = step(
    room,
    `<message from="${ROMEO}" to="${ROOM}"><x xmlns="${MUC_USER}"><invite to="juliet@localhost"/></x></message>`,
    ctx,
  );
  assert.equal(after?.affiliations.get("juliet@localhost")?.affiliation, "member");
  const [joined] = step(after, joinXml(JULIET, "Juliet"), ctx);
  assert.equal(joined?.occupants.get("Juliet")?.role, "participant");
});

Deno.test("a decline goes back to the inviter from the room", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    `<message from="${ROSALINE}" to="${ROOM}" id="d"><x xmlns="${MUC_USER}"><decline to="romeo@localhost"><reason>Sorry</reason></decline></x></message>`,
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <message from="${ROOM}" to="romeo@localhost" id="d">
      <x xmlns="${MUC_USER}"><decline from="rosaline@localhost"><reason>Sorry</reason></decline></x>
      <body>rosaline@localhost declined your invite to the room ${ROOM} (Sorry)</body>
    </message>`),
  );
});

const registerGet = (from: string) =>
  `<iq id="r1" to="${ROOM}" from="${from}" type="get"><query xmlns="jabber:iq:register"/></iq>`;
const registerSet = (from: string, nick: string) =>
  `<iq id="r2" to="${ROOM}" from="${from}" type="set"><query xmlns="jabber:iq:register"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#register</value></field><field var="muc#register_roomnick"><value>${nick}</value></field></x></query></iq>`;
const nickQuery = (from: string) =>
  `<iq id="n" to="${ROOM}" from="${from}" type="get"><query xmlns="http://jabber.org/protocol/disco#info" node="x-roomuser-item"/></iq>`;

Deno.test("registration: the form, a reserved nick (presence again), the nick on disco, then removal", () => {
  const ctx = mucCtx();
  const room = scene(twoOccupants(ctx), [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="m"><query xmlns="http://jabber.org/protocol/muc#admin"><item affiliation="member" jid="juliet@localhost"/></query></iq>`,
  ], ctx);
  assert.deepEqual(
    show(step(room, registerGet(JULIET), ctx)[1]),
    expected(`
    <iq type="result" id="r1" from="${ROOM}" to="${JULIET}">
      <query xmlns="jabber:iq:register">
        <x xmlns="jabber:x:data" type="form">
          <field type="hidden" var="FORM_TYPE"><value>http://jabber.org/protocol/muc#register</value></field>
          <field type="text-single" label="Nickname" var="muc#register_roomnick"><required/></field>
        </x>
      </query>
    </iq>`),
  );
  const [registered, out] = step(room, registerSet(JULIET, "Juliet"), ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="member" role="participant" jid="${JULIET}"/></x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="member" role="participant" jid="${JULIET}"/><status code="110"/></x>
    </presence>
    <iq type="result" id="r2" from="${ROOM}" to="${JULIET}"/>`),
  );
  assert.deepEqual(registered?.affiliations.get("juliet@localhost"), {
    affiliation: "member",
    nick: "Juliet",
  });
  assert.deepEqual(
    show(step(registered, nickQuery(JULIET), ctx)[1]),
    expected(`
    <iq type="result" id="n" from="${ROOM}" to="${JULIET}">
      <query xmlns="http://jabber.org/protocol/disco#info" node="x-roomuser-item">
        <identity category="conference" type="text" name="Juliet"/>
      </query>
    </iq>`),
  );
  assert.deepEqual(
    show(step(registered, nickQuery(ROMEO), ctx)[1]),
    expected(`
    <iq type="result" id="n" from="${ROOM}" to="${ROMEO}">
      <query xmlns="http://jabber.org/protocol/disco#info" node="x-roomuser-item"/>
    </iq>`),
  );
  // Asking again shows the registration.
  assert.match(
    routed(step(registered, registerGet(JULIET), ctx)[1])[0],
    /<registered\/>.*<value>Juliet<\/value>/,
  );

  // Removing the registration: the membership and the nick go (here Juliet is in the room,
  // which is open, so she stays as a participant without affiliation).
  const [after, removed] = step(
    registered,
    `<iq type="set" to="${ROOM}" from="${JULIET}" id="unreg1"><query xmlns="jabber:iq:register"><remove/></query></iq>`,
    ctx,
  );
  assert.deepEqual(
    show(removed),
    expected(`
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/></x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/><status code="110"/></x>
    </presence>
    <iq type="result" id="unreg1" from="${ROOM}" to="${JULIET}"/>`),
  );
  assert.equal(after?.affiliations.has("juliet@localhost"), false);
  assert.equal(after?.reservedBy.has("Juliet"), false);
});

Deno.test("registration refusals: no affiliation, a nick held by another", () => {
  const ctx = mucCtx();
  const room = scene(twoOccupants(ctx), [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="m"><query xmlns="http://jabber.org/protocol/muc#admin"><item affiliation="member" jid="rosaline@localhost"/></query></iq>`,
  ], ctx);
  assert.deepEqual(
    show(step(room, registerGet(JULIET), ctx)[1]),
    expected(`
    <iq type="error" id="r1" from="${ROOM}" to="${JULIET}">
      <error type="auth"><registration-required xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>
    </iq>`),
  );
  assert.match(
    routed(step(room, registerSet(JULIET, "Jules"), ctx)[1])[0],
    /<registration-required /,
  );
  assert.match(routed(step(room, registerSet(ROSALINE, "Juliet"), ctx)[1])[0], /<conflict /);
});

Deno.test("deregistering from a members-only room removes the occupant with 321", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [
    joinXml(ROMEO, "Romeo"),
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_membersonly"><value>1</value></field></x></query></iq>`,
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="m"><query xmlns="http://jabber.org/protocol/muc#admin"><item affiliation="member" jid="juliet@localhost"/></query></iq>`,
    joinXml(JULIET, "Juliet"),
  ], ctx);
  const [, out] = step(
    room,
    `<iq type="set" to="${ROOM}" from="${JULIET}" id="unreg1"><query xmlns="jabber:iq:register"><remove/></query></iq>`,
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><status code="321"/><item affiliation="none" role="none" jid="${JULIET}"/></x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><status code="321"/><item affiliation="none" role="none" jid="${JULIET}"/><status code="110"/></x>
    </presence>
    <iq type="result" id="unreg1" from="${ROOM}" to="${JULIET}"/>`),
  );
});
