/**
 * Talking in a room (XEP-0045 §7.4-7.6, §8.1): groupchat broadcast with occupant-id (XEP-0421)
 * and the room's stanza-id (XEP-0359) and archive item, private messages, subject changes,
 * nick changes (303) and their conflicts.
 */
import assert from "node:assert/strict";
import {
  expected,
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

Deno.test("groupchat: archived first, then to every occupant from the nick, forged ids removed", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    `
    <message from="${JULIET}" to="${ROOM}" type="groupchat" id="jm1">
      <body>Here I am!</body>
      <occupant-id xmlns="${OID}" id="forged"/>
      <stanza-id xmlns="urn:xmpp:sid:0" by="${ROOM}" id="forged"/>
    </message>`,
    ctx,
  );
  const msg = (to: string) => `
    <message type="groupchat" id="jm1" from="${ROOM}/Juliet" to="${to}">
      <body>Here I am!</body>
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <stanza-id xmlns="urn:xmpp:sid:0" by="${ROOM}" id="0m5duhs00id1"/>
    </message>`;
  assert.deepEqual(show(out), [
    {
      kind: "archive-append",
      jid: ROOM,
      id: "0m5duhs00id1",
      peer: `${ROOM}/Juliet`,
      xml: expected(`
        <message type="groupchat" id="jm1" from="${ROOM}/Juliet">
          <body>Here I am!</body>
          <occupant-id xmlns="${OID}" id="oid-juliet"/>
          <stanza-id xmlns="urn:xmpp:sid:0" by="${ROOM}" id="0m5duhs00id1"/>
        </message>`)[0],
    },
    ...expected(msg(ROMEO) + msg(JULIET)),
  ]);
  assert.equal(after?.history.length, 1);
  assert.equal(after?.lastArchived, ctx.now());
});

Deno.test("groupchat without archiving: no stanza-id; chat states are not kept in history", () => {
  const ctx = mucCtx({ archiving: false });
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    `<message from="${ROMEO}" to="${ROOM}" type="groupchat"><active xmlns="http://jabber.org/protocol/chatstates"/></message>`,
    ctx,
  );
  assert.deepEqual(show(out).length, 2);
  assert.equal(after?.history.length, 0);
  assert.doesNotMatch(routed(out)[0], /stanza-id/);
});

Deno.test("groupchat refusals: not in the room, no voice, too long", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const cond = (r: typeof room, from: string, body = "x") =>
    /<([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/.exec(
      routed(
        step(
          r,
          `<message from="${from}" to="${ROOM}" type="groupchat"><body>${body}</body></message>`,
          ctx,
        )[1],
      )[0],
    )?.[1];
  assert.equal(cond(room, ROSALINE), "not-acceptable");
  const muted = scene(room, [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="v"><query xmlns="http://jabber.org/protocol/muc#admin"><item nick="Juliet" role="visitor"/></query></iq>`,
  ], ctx);
  assert.equal(cond(muted, JULIET), "forbidden");
  assert.equal(cond(room, JULIET, "x".repeat(ctx.limits.messageBytes + 1)), "policy-violation");
});

Deno.test("subject: moderators change it, others only when allowed; newcomers get it last", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    `<message from="${ROMEO}" to="${ROOM}" type="groupchat" id="s"><subject>Fair Verona</subject></message>`,
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <message type="groupchat" id="s" from="${ROOM}/Romeo" to="${ROMEO}">
      <subject>Fair Verona</subject><occupant-id xmlns="${OID}" id="oid-romeo"/>
    </message>
    <message type="groupchat" id="s" from="${ROOM}/Romeo" to="${JULIET}">
      <subject>Fair Verona</subject><occupant-id xmlns="${OID}" id="oid-romeo"/>
    </message>`),
  );
  assert.deepEqual(after?.subject, { text: "Fair Verona", by: "Romeo", at: ctx.now() });
  assert.equal(after?.history.length, 0);

  const [, refused] = step(
    room,
    `<message from="${JULIET}" to="${ROOM}" type="groupchat" id="s2"><subject>Mine</subject></message>`,
    ctx,
  );
  assert.deepEqual(
    show(refused),
    expected(`
    <message type="error" id="s2" from="${ROOM}" to="${JULIET}">
      <error type="auth">
        <forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">You may not change the subject</text>
      </error>
    </message>`),
  );

  // With a body (or a thread) it is a message that happens to carry a subject.
  const [withBody, o2] = step(
    room,
    `<message from="${JULIET}" to="${ROOM}" type="groupchat"><subject>Greetings</subject><body>Hello</body></message>`,
    ctx,
  );
  assert.equal(withBody?.subject, undefined);
  assert.equal(withBody?.history.length, 1);
  assert.equal(routed(o2).length, 2);
});

Deno.test("private messages go to the occupant's sessions with <x xmlns=muc#user/>", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    `<message from="${JULIET}" to="${ROOM}/Romeo" type="chat" id="pm"><body>Psst</body></message>`,
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <message type="chat" id="pm" from="${ROOM}/Juliet" to="${ROMEO}">
      <body>Psst</body>
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"/>
    </message>`),
  );
  const cond = (xml: string) =>
    /<([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/.exec(
      routed(step(room, xml, ctx)[1])[0],
    )?.[1];
  assert.equal(
    cond(`<message from="${ROSALINE}" to="${ROOM}/Romeo" type="chat"><body>Hi</body></message>`),
    "not-acceptable",
  );
  assert.equal(
    cond(`<message from="${JULIET}" to="${ROOM}/Nobody" type="chat"><body>Hi</body></message>`),
    "item-not-found",
  );
  assert.equal(
    cond(`<message from="${JULIET}" to="${ROOM}/Romeo" type="groupchat"><body>Hi</body></message>`),
    "bad-request",
  );
  const closed = scene(room, [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_allowpm"><value>moderators</value></field></x></query></iq>`,
  ], ctx);
  assert.equal(
    /<([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/.exec(
      routed(
        step(
          closed,
          `<message from="${JULIET}" to="${ROOM}/Romeo" type="chat"><body>Hi</body></message>`,
          ctx,
        )[1],
      )[0],
    )?.[1],
    "forbidden",
  );
});

Deno.test("nick change: 303 with the new nick, then the new nick's presence", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(room, `<presence from="${JULIET}" to="${ROOM}/Jules"/>`, ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="303"/>
        <item affiliation="none" role="participant" jid="${JULIET}" nick="Jules"/>
      </x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="303"/>
        <item affiliation="none" role="participant" jid="${JULIET}" nick="Jules"/>
        <status code="110"/>
      </x>
    </presence>
    <presence from="${ROOM}/Jules" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/></x>
    </presence>
    <presence from="${ROOM}/Jules" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/><status code="110"/></x>
    </presence>`),
  );
  assert.deepEqual([...after!.occupants.keys()], ["Romeo", "Jules"]);
  assert.deepEqual([...after!.nickOf], [[ROMEO, "Romeo"], [JULIET, "Jules"]]);
});

Deno.test("nick change to a nick in use: conflict, nothing changes", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(room, `<presence from="${JULIET}" to="${ROOM}/Romeo"/>`, ctx);
  assert.equal(after, room);
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="error" from="${ROOM}/Romeo" to="${JULIET}">
      <x xmlns="http://jabber.org/protocol/muc"/>
      <error type="cancel" by="${ROOM}">
        <conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">The nick is in use or reserved</text>
      </error>
    </presence>`),
  );
});

Deno.test("a presence update is broadcast with the client's own children, MUC payloads removed", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    `<presence from="${JULIET}" to="${ROOM}/Juliet"><show>away</show><x xmlns="${MUC_USER}"><item affiliation="owner"/></x></presence>`,
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <show>away</show>
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/></x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${JULIET}">
      <show>away</show>
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/><status code="110"/></x>
    </presence>`),
  );
});

Deno.test("an occupant whose session bounces a message is removed (333); other errors are dropped", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after] = step(
    room,
    `<message type="error" from="${JULIET}" to="${ROOM}/Romeo"><error type="cancel"><recipient-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`,
    ctx,
  );
  assert.deepEqual([...after!.occupants.keys()], ["Romeo"]);
  const [kept, out] = step(
    room,
    `<message type="error" from="${JULIET}" to="${ROOM}"><error type="modify"><not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></message>`,
    ctx,
  );
  assert.equal(kept, room);
  assert.deepEqual(out, []);
});
