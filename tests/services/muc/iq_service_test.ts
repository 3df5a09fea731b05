/**
 * IQs to rooms and occupants (disco, XEP-0410 self-ping, iqs between occupants, MAM), presence
 * probes, a session ending, persistence round trip, and the service's own domain.
 */
import assert from "node:assert/strict";
import {
  destroyCommandResult,
  mamAnswer,
  reduceService,
  roomFromStored,
  type ServiceCtx,
  sessionEnded,
  storedRoom,
} from "../../../lib/services/muc/mod.ts";
import { xml } from "./_helpers.ts";
import {
  canon,
  expected,
  JULIET,
  mucCtx,
  ROMEO,
  ROOM,
  ROSALINE,
  routed,
  scene,
  SERVICE,
  show,
  step,
  twoOccupants,
} from "./_helpers.ts";

const MUC_USER = "http://jabber.org/protocol/muc#user";
const OID = "urn:xmpp:occupant-id:0";

Deno.test("XEP-0410: a self-ping is answered by the room; others' pings are not-acceptable", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const ping = (from: string, nick: string) =>
    `<iq from="${from}" to="${ROOM}/${nick}" type="get" id="p"><ping xmlns="urn:xmpp:ping"/></iq>`;
  assert.deepEqual(
    show(step(room, ping(JULIET, "Juliet"), ctx)[1]),
    expected(
      `<iq type="result" id="p" from="${ROOM}/Juliet" to="${JULIET}"/>`,
    ),
  );
  assert.deepEqual(
    show(step(room, ping(ROSALINE, "Juliet"), ctx)[1]),
    expected(`
    <iq type="error" id="p" from="${ROOM}/Juliet" to="${ROSALINE}">
      <error type="modify">
        <not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">You are not in the room</text>
      </error>
    </iq>`),
  );
});

Deno.test("an iq between occupants goes through the room and its answer comes back", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    `<iq from="${JULIET}" to="${ROOM}/Romeo" type="get" id="v1"><query xmlns="jabber:iq:version"/></iq>`,
    ctx,
  );
  const sent = routed(out);
  assert.equal(sent.length, 1);
  const proxied = xml(sent[0]);
  assert.deepEqual([proxied.attrs.from, proxied.attrs.to], [`${ROOM}/Juliet`, ROMEO]);
  assert.notEqual(proxied.attrs.id, "v1");
  const [, back] = step(
    room,
    `<iq from="${ROMEO}" to="${ROOM}/Juliet" type="result" id="${proxied.attrs.id}"><query xmlns="jabber:iq:version"><name>x</name></query></iq>`,
    ctx,
  );
  assert.deepEqual(
    show(back),
    expected(`
    <iq type="result" id="v1" from="${ROOM}/Romeo" to="${JULIET}">
      <query xmlns="jabber:iq:version"><name>x</name></query>
    </iq>`),
  );
  // An answer from anyone else, or with an id the room did not make, goes nowhere.
  assert.deepEqual(
    step(
      room,
      `<iq from="${ROSALINE}" to="${ROOM}/Juliet" type="result" id="${proxied.attrs.id}"/>`,
      ctx,
    )[1],
    [],
  );
  assert.deepEqual(
    step(room, `<iq from="${ROMEO}" to="${ROOM}/Juliet" type="result" id="made-up"/>`, ctx)[1],
    [],
  );
});

Deno.test("the room's disco#info: identity, features and the muc#roominfo form", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    `<iq from="${ROSALINE}" to="${ROOM}" type="get" id="i"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
    ctx,
  );
  const f = (v: string) => `<feature var="${v}"/>`;
  assert.deepEqual(
    show(out),
    expected(`
    <iq type="result" id="i" from="${ROOM}" to="${ROSALINE}">
      <query xmlns="http://jabber.org/protocol/disco#info">
        <identity category="conference" type="text" name="room"/>
        ${f("http://jabber.org/protocol/disco#info")}${f("http://jabber.org/protocol/muc")}
        ${f("http://jabber.org/protocol/muc#stable_id")}${
      f("http://jabber.org/protocol/muc#self-ping-optimization")
    }
        ${f(OID)}${f("jabber:iq:register")}${f("muc_public")}${f("muc_temporary")}${f("muc_open")}
        ${f("muc_unmoderated")}${f("muc_unsecured")}${f("muc_semianonymous")}${f("urn:xmpp:mam:2")}
        <x xmlns="jabber:x:data" type="result">
          <field type="hidden" var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roominfo</value></field>
          <field var="muc#roominfo_description" label="Description"><value/></field>
          <field var="muc#roominfo_occupants" label="Number of occupants"><value>2</value></field>
          <field var="muc#roominfo_subject" label="Subject"><value/></field>
          <field var="muc#roominfo_changesubject" label="Occupants may change the subject"><value>0</value></field>
          <field var="muc#roomconfig_roomname" label="Title"><value/></field>
        </x>
      </query>
    </iq>`),
  );
});

Deno.test("a MAM query on the room becomes a mam-query output; its answer comes from the room", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [, out] = step(
    room,
    `<iq from="${JULIET}" to="${ROOM}" type="set" id="q"><query xmlns="urn:xmpp:mam:2" queryid="f27"/></iq>`,
    ctx,
  );
  assert.deepEqual(show(out), [{
    kind: "mam-query",
    jid: ROOM,
    id: "q",
    query: { queryId: "f27", max: 20, flip: false },
  }]);
  const iq = xml(
    `<iq from="${JULIET}" to="${ROOM}" type="set" id="q"><query xmlns="urn:xmpp:mam:2" queryid="f27"/></iq>`,
  );
  const stored = xml(`<message type="groupchat" from="${ROOM}/Romeo"><body>Hi</body></message>`);
  const answer = mamAnswer(ROOM, iq, { queryId: "f27", max: 20, flip: false }, {
    items: [{ id: "a1", ts: ctx.now(), peer: `${ROOM}/Romeo`, stanza: stored }],
    complete: true,
  });
  assert.deepEqual(
    answer.map((e) => canon(e)),
    expected(`
    <message from="${ROOM}" to="${JULIET}">
      <result xmlns="urn:xmpp:mam:2" queryid="f27" id="a1">
        <forwarded xmlns="urn:xmpp:forward:0">
          <delay xmlns="urn:xmpp:delay" stamp="2025-01-01T12:00:00Z"/>
          <message xmlns="jabber:client" type="groupchat" from="${ROOM}/Romeo"><body>Hi</body></message>
        </forwarded>
      </result>
    </message>
    <iq type="result" id="q" from="${ROOM}" to="${JULIET}">
      <fin xmlns="urn:xmpp:mam:2" complete="true">
        <set xmlns="http://jabber.org/protocol/rsm"><first>a1</first><last>a1</last></set>
      </fin>
    </iq>`),
  );
  // Archiving off: no MAM.
  const off = scene(room, [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_enablearchiving"><value>0</value></field></x></query></iq>`,
  ], ctx);
  assert.match(
    routed(
      step(
        off,
        `<iq from="${JULIET}" to="${ROOM}" type="set" id="q"><query xmlns="urn:xmpp:mam:2"/></iq>`,
        ctx,
      )[1],
    )[0],
    /<service-unavailable /,
  );
});

Deno.test("presence probes: occupants get the nick's presence, others not-acceptable", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const probe = (from: string, nick: string) =>
    `<presence type="probe" from="${from}" to="${ROOM}/${nick}"><x xmlns="http://jabber.org/protocol/muc"/></presence>`;
  assert.deepEqual(
    show(step(room, probe(ROMEO, "Juliet"), ctx)[1]),
    expected(`
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}"><item affiliation="none" role="participant" jid="${JULIET}"/></x>
    </presence>`),
  );
  // Not an occupant: not-acceptable of type cancel (as Prosody), for a present nick or not.
  for (const nick of ["Romeo", "Mercutio"]) {
    assert.deepEqual(
      show(step(room, probe(ROSALINE, nick), ctx)[1]),
      expected(`
      <presence type="error" from="${ROOM}/${nick}" to="${ROSALINE}">
        <error type="cancel"><not-acceptable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error>
      </presence>`),
    );
  }
});

Deno.test("a session that ends leaves every room it is in, once", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const [after, out] = sessionEnded(room, JULIET, ctx);
  assert.deepEqual([...after!.occupants.keys()], ["Romeo"]);
  assert.equal(routed(out).length, 2);
  assert.deepEqual(sessionEnded(after!, JULIET, ctx), [after, []]);
});

Deno.test("a persistent room survives storage: config, affiliations with nicks, subject", () => {
  const ctx = mucCtx();
  const room = scene(twoOccupants(ctx), [
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var="muc#roomconfig_persistentroom"><value>1</value></field></x></query></iq>`,
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="m"><query xmlns="http://jabber.org/protocol/muc#admin"><item affiliation="member" jid="juliet@localhost" nick="Juliet"/></query></iq>`,
    `<message from="${ROMEO}" to="${ROOM}" type="groupchat"><subject>Verona</subject></message>`,
  ], ctx);
  const data = JSON.parse(JSON.stringify(storedRoom(room)));
  const loaded = roomFromStored(ROOM, data, ctx);
  assert.deepEqual(loaded.config, room.config);
  assert.deepEqual([...loaded.affiliations], [...room.affiliations]);
  assert.deepEqual([...loaded.reservedBy], [["Juliet", "juliet@localhost"]]);
  assert.deepEqual(loaded.subject, room.subject);
  assert.equal(loaded.occupants.size, 0);
  assert.equal(loaded.locked, false);
});

function serviceCtx(): ServiceCtx {
  return { ...mucCtx(), publicRooms: () => [{ jid: ROOM, name: "The Garden" }] };
}

Deno.test("the service: disco#info, public rooms in disco#items, unique names", () => {
  const ctx = serviceCtx();
  const run = (s: string) =>
    reduceService(xml(s), ctx).map((o) => o.kind === "route" ? canon(o.stanza) : o);
  const f = (v: string) => `<feature var="${v}"/>`;
  assert.deepEqual(
    run(
      `<iq from="${ROMEO}" to="${SERVICE}" type="get" id="i"><query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
    ),
    expected(`
    <iq type="result" id="i" from="${SERVICE}" to="${ROMEO}">
      <query xmlns="http://jabber.org/protocol/disco#info">
        <identity category="conference" type="text" name="Chatrooms"/>
        ${f("http://jabber.org/protocol/disco#info")}${f("http://jabber.org/protocol/disco#items")}
        ${f("http://jabber.org/protocol/muc")}${f("http://jabber.org/protocol/muc#unique")}
        ${f(OID)}${f("http://jabber.org/protocol/commands")}${f("urn:xmpp:ping")}
      </query>
    </iq>`),
  );
  assert.deepEqual(
    run(
      `<iq from="${ROMEO}" to="${SERVICE}" type="get" id="t"><query xmlns="http://jabber.org/protocol/disco#items"/></iq>`,
    ),
    expected(`
    <iq type="result" id="t" from="${SERVICE}" to="${ROMEO}">
      <query xmlns="http://jabber.org/protocol/disco#items"><item jid="${ROOM}" name="The Garden"/></query>
    </iq>`),
  );
  assert.deepEqual(
    run(
      `<iq from="${ROMEO}" to="${SERVICE}" type="get" id="u"><unique xmlns="http://jabber.org/protocol/muc#unique"/></iq>`,
    ),
    expected(`
    <iq type="result" id="u" from="${SERVICE}" to="${ROMEO}">
      <unique xmlns="http://jabber.org/protocol/muc#unique">id1</unique>
    </iq>`),
  );
});

Deno.test("the service: Prosody's destroy command, for admins only", () => {
  const ctx = serviceCtx();
  const cmd = (from: string) =>
    xml(`
    <iq id="destroy" type="set" to="${SERVICE}" from="${from}">
      <command xmlns="http://jabber.org/protocol/commands" node="http://prosody.im/protocol/muc#destroy">
        <x xmlns="jabber:x:data"><field var="rooms"><value>elsewhere@${SERVICE}</value></field></x>
      </command>
    </iq>`);
  const [out] = reduceService(cmd("admin@localhost/a"), ctx);
  assert.equal(out.kind, "destroy-rooms");
  assert.deepEqual(out.kind === "destroy-rooms" && [out.rooms, out.sessionId], [[
    `elsewhere@${SERVICE}`,
  ], "id1"]);
  assert.deepEqual(
    canon(destroyCommandResult(cmd("admin@localhost/a"), [`elsewhere@${SERVICE}`], "id1")),
    expected(`
    <iq type="result" id="destroy" from="${SERVICE}" to="admin@localhost/a">
      <command xmlns="http://jabber.org/protocol/commands" node="http://prosody.im/protocol/muc#destroy" status="completed" sessionid="id1">
        <note type="info">The following rooms were destroyed:&#10;elsewhere@${SERVICE}</note>
      </command>
    </iq>`)[0],
  );
  const [refused] = reduceService(cmd(ROMEO), ctx);
  assert.match(refused.kind === "route" ? canon(refused.stanza) : "", /<forbidden /);
});
