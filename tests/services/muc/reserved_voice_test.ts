/**
 * Reserved nicks enforced (status 210, XEP-0045 §7.2.11, a room option off by default as
 * Prosody's) and voice requests (XEP-0045 §7.13, §8.6): a visitor's request reaches every
 * moderator as the approval form, and an approval grants voice with the usual broadcast.
 */
import assert from "node:assert/strict";
import { MAX_VOICE_REQUESTS, type Room } from "../../../lib/services/muc/mod.ts";
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
} from "./_helpers.ts";

const MUC_USER = "http://jabber.org/protocol/muc#user";
const OID = "urn:xmpp:occupant-id:0";
const REQUEST = "http://jabber.org/protocol/muc#request";

const configure = (fields: string) =>
  `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>${fields}</x></query></iq>`;
const field = (v: string, ...values: string[]) =>
  `<field var="${v}">${values.map((x) => `<value>${x}</value>`).join("")}</field>`;
const reserve = (jid: string, nick: string) =>
  `<iq from="${ROMEO}" to="${ROOM}" type="set" id="r"><query xmlns="http://jabber.org/protocol/muc#admin"><item affiliation="member" jid="${jid}" nick="${nick}"/></query></iq>`;
const leaveXml = (from: string, nick: string) =>
  `<presence from="${from}" to="${ROOM}/${nick}" type="unavailable"/>`;

/** Romeo's room with Juliet's nick "Juliet" reserved and Juliet not in it; `enforce` set. */
function reservedRoom(enforce: boolean): Room {
  const ctx = mucCtx();
  return scene(undefined, [
    joinXml(ROMEO, "Romeo"),
    instantXml(),
    reserve("juliet@localhost", "Juliet"),
    configure(field("x-enforce_registered_nickname", enforce ? "1" : "0")),
  ], ctx);
}

Deno.test("enforced reserved nick: joining under another nick gets the reserved one, with 210", () => {
  const ctx = mucCtx();
  const room = reservedRoom(true);
  assert.equal(room.config.enforceNick, true);
  const [after, out] = step(room, joinXml(JULIET, "Jules"), ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <presence from="${ROOM}/Romeo" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}"><item affiliation="owner" role="moderator"/></x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="member" role="participant" jid="${JULIET}"/></x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <status code="210"/>
        <item affiliation="member" role="participant" jid="${JULIET}"/>
        <status code="110"/>
      </x>
    </presence>
    <message type="groupchat" from="${ROOM}" to="${JULIET}"><subject/></message>`),
  );
  assert.deepEqual([...after!.occupants.keys()], ["Romeo", "Juliet"]);
  assert.equal(after!.nickOf.get(JULIET), "Juliet");

  // Under the reserved nick itself: no 210.
  const [, own] = step(room, joinXml(JULIET, "Juliet"), ctx);
  assert.ok(routed(own).every((s) => !s.includes(`code="210"`)));

  // A nick change away from the reserved nick is refused; nothing else changes.
  const [same, refused] = step(
    after,
    `<presence from="${JULIET}" to="${ROOM}/Jules"/>`,
    ctx,
  );
  assert.equal(same, after);
  assert.deepEqual(
    show(refused),
    expected(`
    <presence type="error" from="${ROOM}/Jules" to="${JULIET}">
      <x xmlns="http://jabber.org/protocol/muc"/>
      <error type="modify" by="${ROOM}">
        <not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Your nick in this room is reserved: Juliet</text>
      </error>
    </presence>`),
  );

  // Users without a reservation choose freely.
  const [withRosaline, rosaline] = step(after, joinXml(ROSALINE, "Rosie"), ctx);
  assert.ok(withRosaline!.occupants.has("Rosie"));
  assert.ok(routed(rosaline).every((s) => !s.includes(`code="210"`)));
});

Deno.test("reserved nick not enforced (the default, as muc_register.scs): any free nick, no 210", () => {
  const ctx = mucCtx();
  assert.equal(scene(undefined, [joinXml(ROMEO, "Romeo")], ctx).config.enforceNick, false);
  const room = reservedRoom(false);
  const [after, out] = step(room, joinXml(JULIET, "Jules"), ctx);
  assert.deepEqual([...after!.occupants.keys()], ["Romeo", "Jules"]);
  assert.ok(routed(out).every((s) => !s.includes(`code="210"`)));
  // The reserved nick stays hers: someone else still may not take it.
  const [, taken] = step(after, joinXml(ROSALINE, "Juliet"), ctx);
  assert.ok(routed(taken)[0].includes("<conflict"));
});

/** A moderated room: Romeo (owner, moderator), Juliet a visitor, Rosaline a visitor. */
function moderatedRoom(): Room {
  const ctx = mucCtx();
  return scene(undefined, [
    joinXml(ROMEO, "Romeo"),
    instantXml(),
    configure(field("muc#roomconfig_moderatedroom", "1")),
    joinXml(JULIET, "Juliet"),
    joinXml(ROSALINE, "Rosaline"),
  ], ctx);
}

const requestXml = (from: string, role = "participant") =>
  `<message from="${from}" to="${ROOM}" id="vr"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>${REQUEST}</value></field><field var="muc#role" type="list-single" label="Requested role"><value>${role}</value></field></x></message>`;
const approvalXml = (from: string, nick: string, jid: string, allow: string) =>
  `<message from="${from}" to="${ROOM}" id="ap"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>${REQUEST}</value></field><field var="muc#role"><value>participant</value></field><field var="muc#jid"><value>${jid}</value></field><field var="muc#roomnick"><value>${nick}</value></field><field var="muc#request_allow"><value>${allow}</value></field></x></message>`;

Deno.test("voice request: a visitor's request reaches each moderator as the approval form, once", () => {
  const ctx = mucCtx();
  const room = moderatedRoom();
  assert.equal(room.occupants.get("Juliet")?.role, "visitor");
  const [after, out] = step(room, requestXml(JULIET), ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <message from="${ROOM}" to="${ROMEO}">
      <x xmlns="jabber:x:data" type="form">
        <title>Voice request</title>
        <instructions>To approve this request for voice, select the "Grant voice to this person?" checkbox and click OK. To skip this request, click the cancel button.</instructions>
        <field type="hidden" var="FORM_TYPE"><value>${REQUEST}</value></field>
        <field type="list-single" var="muc#role" label="Requested role"><value>participant</value></field>
        <field type="jid-single" var="muc#jid" label="User ID"><value>${JULIET}</value></field>
        <field type="text-single" var="muc#roomnick" label="Room Nickname"><value>Juliet</value></field>
        <field type="boolean" var="muc#request_allow" label="Grant voice to this person?"><value>false</value></field>
      </x>
    </message>`),
  );
  assert.deepEqual([...after!.voiceRequests], [["juliet@localhost", Date.UTC(2025, 0, 1, 12)]]);
  // Asking again while pending: the moderators are not asked twice.
  const [again, twice] = step(after, requestXml(JULIET), ctx);
  assert.deepEqual(show(twice), []);
  assert.equal(again!.voiceRequests.size, 1);
});

Deno.test("voice request approved: the visitor becomes a participant, broadcast with the actor", () => {
  const ctx = mucCtx();
  const [pending] = step(moderatedRoom(), requestXml(JULIET), ctx);
  const [after, out] = step(pending, approvalXml(ROMEO, "Juliet", JULIET, "true"), ctx);
  const juliet = (to: string, self: boolean) => `
    <presence from="${ROOM}/Juliet" to="${to}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="none" role="participant"${
    to === ROMEO || self ? ` jid="${JULIET}"` : ""
  }>
          <actor nick="Romeo"${to === ROMEO ? ` jid="${ROMEO}"` : ""}/>
        </item>
        ${self ? `<status code="110"/>` : ""}
      </x>
    </presence>`;
  assert.deepEqual(
    show(out),
    expected(juliet(ROMEO, false) + juliet(ROSALINE, false) + juliet(JULIET, true)),
  );
  assert.equal(after!.occupants.get("Juliet")?.role, "participant");
  assert.equal(after!.voiceRequests.size, 0);
  // Now a participant, Juliet may speak.
  const [, spoken] = step(
    after,
    `<message from="${JULIET}" to="${ROOM}" type="groupchat" id="m"><body>Finally</body></message>`,
    ctx,
  );
  assert.ok(routed(spoken).every((s) => !s.includes(`type="error"`)));
});

Deno.test("voice request denied or refused: nothing granted, and the refusals", () => {
  const ctx = mucCtx();
  const [pending] = step(moderatedRoom(), requestXml(JULIET), ctx);
  // Denied: the request is done with, Juliet stays a visitor, nothing is sent.
  const [denied, none] = step(pending, approvalXml(ROMEO, "Juliet", JULIET, "false"), ctx);
  assert.deepEqual(show(none), []);
  assert.equal(denied!.occupants.get("Juliet")?.role, "visitor");
  assert.equal(denied!.voiceRequests.size, 0);

  const cond = (room: Room | undefined, xml: string) => {
    const out = routed(step(room, xml, ctx)[1]);
    assert.equal(out.length, 1);
    return out[0].match(/<([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"\/>/)?.[1];
  };
  // A visitor cannot approve itself; its "approval" is a request (already pending).
  assert.deepEqual(
    show(step(pending, approvalXml(JULIET, "Juliet", JULIET, "true"), ctx)[1]),
    [],
  );
  // An approval naming someone else behind the nick, or no one.
  assert.equal(
    cond(pending, approvalXml(ROMEO, "Juliet", "rosaline@localhost/s1", "true")),
    "item-not-found",
  );
  assert.equal(cond(pending, approvalXml(ROMEO, "Nobody", JULIET, "true")), "item-not-found");
  // Only voice may be asked for; only visitors ask; only in moderated rooms; only occupants.
  assert.equal(cond(pending, requestXml(ROSALINE, "moderator")), "bad-request");
  assert.equal(cond(pending, requestXml(ROMEO)), "not-allowed");
  const open = scene(
    undefined,
    [joinXml(ROMEO, "Romeo"), instantXml(), joinXml(JULIET, "Juliet")],
    ctx,
  );
  assert.equal(cond(open, requestXml(JULIET)), "forbidden");
  assert.equal(cond(pending, requestXml("tybalt@localhost/t")), "not-acceptable");
});

Deno.test("pending voice requests are bounded, and those no longer visitors are dropped", () => {
  const ctx = mucCtx();
  let room = moderatedRoom();
  // The bound: a full table refuses a new request.
  const full = new Map<string, number>();
  for (let i = 0; i < MAX_VOICE_REQUESTS; i++) full.set(`v${i}@localhost`, 0);
  for (let i = 0; i < MAX_VOICE_REQUESTS; i++) {
    room = scene(room, [joinXml(`v${i}@localhost/x`, `v${i}`)], ctx);
  }
  const crowded: Room = { ...room, voiceRequests: full };
  const out = routed(step(crowded, requestXml(JULIET), ctx)[1]);
  assert.equal(out.length, 1);
  assert.match(out[0], /resource-constraint/);
  // Entries of occupants who left are dropped at the next request, making room for it.
  const [gone] = step(crowded, leaveXml("v0@localhost/x", "v0"), ctx);
  const [after, asked] = step(gone, requestXml(JULIET), ctx);
  assert.equal(routed(asked).length, 1);
  assert.equal(after!.voiceRequests.size, MAX_VOICE_REQUESTS);
  assert.ok(!after!.voiceRequests.has("v0@localhost"));
  assert.ok(after!.voiceRequests.has("juliet@localhost"));
});
