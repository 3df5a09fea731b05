/**
 * The owner's use cases (XEP-0045 §10): the configuration form, a change announced with 104
 * (and 170-173), becoming members-only (322), persistence outputs, destruction with an
 * alternate venue, cancelling the initial configuration, and shutdown (332).
 */
import assert from "node:assert/strict";
import { destroyRoom, shutdownRoom } from "../../../lib/services/muc/mod.ts";
import {
  expected,
  instantXml,
  joinXml,
  JULIET,
  mucCtx,
  ROMEO,
  ROOM,
  routed,
  scene,
  show,
  step,
  twoOccupants,
} from "./_helpers.ts";

const MUC_USER = "http://jabber.org/protocol/muc#user";
const OID = "urn:xmpp:occupant-id:0";

const configure = (fields: string, from = ROMEO) =>
  `<iq from="${from}" to="${ROOM}" type="set" id="c1"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>${fields}</x></query></iq>`;
const field = (v: string, ...values: string[]) =>
  `<field var="${v}">${values.map((x) => `<value>${x}</value>`).join("")}</field>`;

Deno.test("the configuration form holds every field with its current value", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    `<iq from="${ROMEO}" to="${ROOM}" type="get" id="f"><query xmlns="http://jabber.org/protocol/muc#owner"/></iq>`,
    ctx,
  );
  const opt = (v: string) => `<option><value>${v}</value></option>`;
  assert.deepEqual(
    show(out),
    expected(`
    <iq type="result" id="f" from="${ROOM}" to="${ROMEO}">
      <query xmlns="http://jabber.org/protocol/muc#owner">
        <x xmlns="jabber:x:data" type="form">
          <field type="hidden" var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>
          <field type="text-single" var="muc#roomconfig_roomname" label="Title"><value></value></field>
          <field type="text-single" var="muc#roomconfig_roomdesc" label="Description"><value></value></field>
          <field type="boolean" var="muc#roomconfig_persistentroom" label="Persistent (kept when the last occupant leaves)"><value>0</value></field>
          <field type="boolean" var="muc#roomconfig_publicroom" label="Include room information in public lists"><value>1</value></field>
          <field type="boolean" var="muc#roomconfig_membersonly" label="Only allow members to join"><value>0</value></field>
          <field type="boolean" var="muc#roomconfig_moderatedroom" label="Moderated (only occupants with voice may speak)"><value>0</value></field>
          <field type="boolean" var="muc#roomconfig_passwordprotectedroom" label="Password protected"><value>0</value></field>
          <field type="text-private" var="muc#roomconfig_roomsecret" label="Password"><value></value></field>
          <field type="text-single" var="muc#roomconfig_maxusers" label="Maximum number of occupants (at most 1000)"><value>1000</value></field>
          <field type="list-single" var="muc#roomconfig_whois" label="Who may discover real JIDs">${
      opt("moderators")
    }${opt("anyone")}<value>moderators</value></field>
          <field type="boolean" var="muc#roomconfig_allowinvites" label="Allow members to invite new members"><value>0</value></field>
          <field type="boolean" var="muc#roomconfig_changesubject" label="Allow anyone to set the room's subject"><value>0</value></field>
          <field type="list-single" var="muc#roomconfig_allowpm" label="Who may send private messages">${
      opt("anyone")
    }${opt("participants")}${opt("moderators")}${opt("none")}<value>anyone</value></field>
          <field type="list-multi" var="muc#roomconfig_presencebroadcast" label="Roles whose presence is broadcast (none: list absent members)">${
      opt("none")
    }${opt("visitor")}${opt("participant")}${
      opt("moderator")
    }<value>visitor</value><value>participant</value><value>moderator</value></field>
          <field type="text-single" var="muc#roomconfig_historylength" label="Messages of history for newcomers (at most 100)"><value>20</value></field>
          <field type="text-single" var="muc#roomconfig_lang" label="Language"><value></value></field>
          <field type="boolean" var="muc#roomconfig_enablearchiving" label="Archive the discussion (XEP-0313)"><value>1</value></field>
          <field type="jid-multi" var="muc#roomconfig_roomadmins" label="Full list of room admins"/>
          <field type="jid-multi" var="muc#roomconfig_roomowners" label="Full list of room owners"><value>romeo@localhost</value></field>
          <field type="boolean" var="x-enforce_registered_nickname" label="Users with a reserved nick must use it"><value>0</value></field>
        </x>
      </query>
    </iq>`),
  );
  const [, refused] = step(
    room,
    `<iq from="${JULIET}" to="${ROOM}" type="get" id="f"><query xmlns="http://jabber.org/protocol/muc#owner"/></iq>`,
    ctx,
  );
  assert.deepEqual(
    show(refused),
    expected(`
    <iq type="error" id="f" from="${ROOM}" to="${JULIET}">
      <error type="auth">
        <forbidden xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Only owners can configure rooms</text>
      </error>
    </iq>`),
  );
});

Deno.test("a configuration change: stored, answered, then 104 and 172 (and 171) to the occupants", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    configure(
      field("muc#roomconfig_persistentroom", "1") + field("muc#roomconfig_whois", "anyone") +
        field("muc#roomconfig_enablearchiving", "0") +
        field("muc#roomconfig_roomname", "The Garden") +
        field("unknown#field", "ignored"),
    ),
    ctx,
  );
  const note = (to: string) => `
    <message type="groupchat" from="${ROOM}" to="${to}">
      <x xmlns="${MUC_USER}"><status code="104"/><status code="171"/><status code="172"/></x>
    </message>`;
  assert.deepEqual(show(out), [
    { kind: "store-room", jid: ROOM },
    ...expected(
      `<iq type="result" id="c1" from="${ROOM}" to="${ROMEO}"/>` + note(ROMEO) + note(JULIET),
    ),
  ]);
  assert.deepEqual(
    [after?.config.persistent, after?.config.whois, after?.config.archiving, after?.config.name],
    [true, "anyone", false, "The Garden"],
  );
  // No change, no announcement; a persistent room stored again.
  const [, same] = step(after, configure(field("muc#roomconfig_roomname", "The Garden")), ctx);
  assert.deepEqual(show(same), [
    { kind: "store-room", jid: ROOM },
    ...expected(`<iq type="result" id="c1" from="${ROOM}" to="${ROMEO}"/>`),
  ]);
  // Becoming temporary again deletes the stored room.
  const [, temp] = step(after, configure(field("muc#roomconfig_persistentroom", "0")), ctx);
  assert.deepEqual(show(temp)[0], { kind: "delete-room", jid: ROOM });
});

Deno.test("configuration refusals: a bad value, a wrong form type", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [same, out] = step(room, configure(field("muc#roomconfig_membersonly", "maybe")), ctx);
  assert.equal(same, room);
  assert.deepEqual(
    show(out),
    expected(`
    <iq type="error" id="c1" from="${ROOM}" to="${ROMEO}">
      <error type="modify">
        <bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">Invalid value for muc#roomconfig_membersonly</text>
      </error>
    </iq>`),
  );
  const wrongType =
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c2"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>urn:other</value></field></x></query></iq>`;
  assert.match(routed(step(room, wrongType, ctx)[1])[0], /Form is not of type room configuration/);
});

Deno.test("becoming members-only removes those without an affiliation (322)", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(room, configure(field("muc#roomconfig_membersonly", "1")), ctx);
  assert.deepEqual(
    show(out),
    expected(`
    <presence type="unavailable" from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><status code="322"/><item affiliation="none" role="none" jid="${JULIET}"/></x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><status code="322"/><item affiliation="none" role="none" jid="${JULIET}"/><status code="110"/></x>
    </presence>
    <iq type="result" id="c1" from="${ROOM}" to="${ROMEO}"/>
    <message type="groupchat" from="${ROOM}" to="${ROMEO}"><x xmlns="${MUC_USER}"><status code="104"/></x></message>`),
  );
  assert.deepEqual([...after!.occupants.keys()], ["Romeo"]);
});

Deno.test("destroying a room: each session hears <destroy/>, the record goes, then the result", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    `
    <iq from="${ROMEO}" to="${ROOM}" type="set" id="lx4">
      <query xmlns="http://jabber.org/protocol/muc#owner">
        <destroy jid="elsewhere@conference.localhost"><reason>We refuse to live in this fantasy!</reason></destroy>
      </query>
    </iq>`,
    ctx,
  );
  const gone = (to: string, aff: string, nick: string) => `
    <presence type="unavailable" from="${ROOM}/${nick}" to="${to}">
      <x xmlns="${MUC_USER}">
        <destroy jid="elsewhere@conference.localhost"><reason>We refuse to live in this fantasy!</reason></destroy>
        <item affiliation="${aff}" role="none" jid="${to}"/>
        <status code="110"/>
      </x>
    </presence>`;
  assert.equal(after, undefined);
  assert.deepEqual(show(out), [
    { kind: "delete-room", jid: ROOM },
    ...expected(
      gone(ROMEO, "owner", "Romeo") + gone(JULIET, "none", "Juliet") +
        `<iq type="result" id="lx4" from="${ROOM}" to="${ROMEO}"/>`,
    ),
  ]);
  // Only owners destroy.
  const [kept, refused] = step(
    room,
    `<iq from="${JULIET}" to="${ROOM}" type="set" id="d"><query xmlns="http://jabber.org/protocol/muc#owner"><destroy/></query></iq>`,
    ctx,
  );
  assert.equal(kept, room);
  assert.match(routed(refused)[0], /<forbidden /);
});

Deno.test("destroyRoom for the service (the admins' command) has no reason unless given", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [joinXml(ROMEO, "Romeo"), instantXml()], ctx);
  const [after, out] = destroyRoom(room, ctx, {});
  assert.equal(after, undefined);
  assert.deepEqual(show(out), [
    { kind: "delete-room", jid: ROOM },
    ...expected(`
      <presence type="unavailable" from="${ROOM}/Romeo" to="${ROMEO}">
        <x xmlns="${MUC_USER}"><destroy/><item affiliation="owner" role="none" jid="${ROMEO}"/><status code="110"/></x>
      </presence>`),
  ]);
});

Deno.test("cancelling the initial configuration destroys the new room", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [joinXml(ROMEO, "Romeo")], ctx);
  const [after, out] = step(
    room,
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="x"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="cancel"/></query></iq>`,
    ctx,
  );
  assert.equal(after, undefined);
  assert.equal(
    routed(out).at(-1),
    expected(`<iq type="result" id="x" from="${ROOM}" to="${ROMEO}"/>`)[0],
  );
});

Deno.test("shutdown: 332 to every session; nothing about the stored room", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  assert.deepEqual(
    show(shutdownRoom(room, ctx)),
    expected(`
    <presence type="unavailable" from="${ROOM}/Romeo" to="${ROMEO}">
      <x xmlns="${MUC_USER}"><status code="332"/><item affiliation="owner" role="none" jid="${ROMEO}"/><status code="110"/></x>
    </presence>
    <presence type="unavailable" from="${ROOM}/Juliet" to="${JULIET}">
      <x xmlns="${MUC_USER}"><status code="332"/><item affiliation="none" role="none" jid="${JULIET}"/><status code="110"/></x>
    </presence>`),
  );
});
