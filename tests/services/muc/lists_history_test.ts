/**
 * The owner and admin lists of the configuration form (`muc#roomconfig_roomowners`,
 * `muc#roomconfig_roomadmins`, XEP-0045 §10.2), and discussion history refilled from the
 * room's archive when a persistent room is loaded (`roomFromStored` with archived messages).
 */
import assert from "node:assert/strict";
import { roomFromStored, storedRoom } from "../../../lib/services/muc/mod.ts";
import {
  canon,
  expected,
  joinXml,
  JULIET,
  mucCtx,
  NOW,
  ROMEO,
  ROOM,
  routed,
  show,
  step,
  twoOccupants,
  xml,
} from "./_helpers.ts";

const MUC_USER = "http://jabber.org/protocol/muc#user";
const OID = "urn:xmpp:occupant-id:0";

const configure = (fields: string, from = ROMEO) =>
  `<iq from="${from}" to="${ROOM}" type="set" id="c"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>${fields}</x></query></iq>`;
const field = (v: string, ...values: string[]) =>
  `<field var="${v}">${values.map((x) => `<value>${x}</value>`).join("")}</field>`;
const formGet =
  `<iq from="${ROMEO}" to="${ROOM}" type="get" id="f"><query xmlns="http://jabber.org/protocol/muc#owner"/></iq>`;

/** The values of a list field in the owner's form, as the room shows them. */
function listed(out: ReturnType<typeof step>[1], v: string): string[] {
  const form = routed(out)[0];
  const m = form.match(
    new RegExp(`<field label="[^"]*" type="jid-multi" var="${v}">(.*?)</field>`),
  );
  return m === null ? [] : [...m[1].matchAll(/<value>([^<]*)<\/value>/g)].map((x) => x[1]);
}

Deno.test("owner and admin lists: shown in the form, and a submission changes affiliations", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  assert.deepEqual(listed(step(room, formGet, ctx)[1], "muc#roomconfig_roomowners"), [
    "romeo@localhost",
  ]);
  assert.deepEqual(listed(step(room, formGet, ctx)[1], "muc#roomconfig_roomadmins"), []);

  // Juliet (in the room) made an admin, Tybalt (not in it) an owner: no configuration change.
  const [after, out] = step(
    room,
    configure(
      field("muc#roomconfig_roomadmins", "juliet@localhost") +
        field("muc#roomconfig_roomowners", "romeo@localhost", "tybalt@localhost"),
    ),
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <message from="${ROOM}" to="${ROMEO}">
      <x xmlns="${MUC_USER}"><item affiliation="owner" jid="tybalt@localhost"/></x>
    </message>
    <message type="headline" from="${ROOM}" to="tybalt@localhost">
      <body>Your affiliation in room ${ROOM} is now owner.</body>
      <x xmlns="${MUC_USER}"><status code="101"/></x>
    </message>
    <presence from="${ROOM}/Juliet" to="${ROMEO}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="admin" role="moderator" jid="${JULIET}"><actor nick="Romeo" jid="${ROMEO}"/></item>
      </x>
    </presence>
    <presence from="${ROOM}/Juliet" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-juliet"/>
      <x xmlns="${MUC_USER}">
        <item affiliation="admin" role="moderator" jid="${JULIET}"><actor nick="Romeo"/></item>
        <status code="110"/>
      </x>
    </presence>
    <presence from="${ROOM}/Romeo" to="${JULIET}">
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <x xmlns="${MUC_USER}"><item affiliation="owner" role="moderator" jid="${ROMEO}"/></x>
    </presence>
    <iq type="result" id="c" from="${ROOM}" to="${ROMEO}"/>`),
  );
  assert.deepEqual(
    [...after!.affiliations].map(([j, e]) => [j, e.affiliation]),
    [["romeo@localhost", "owner"], ["tybalt@localhost", "owner"], ["juliet@localhost", "admin"]],
  );
  assert.deepEqual(listed(step(after, formGet, ctx)[1], "muc#roomconfig_roomowners"), [
    "romeo@localhost",
    "tybalt@localhost",
  ]);

  // Left off a submitted list: the affiliation goes (none); Juliet is a participant again.
  const [later, out2] = step(
    after,
    configure(
      field("muc#roomconfig_roomadmins") + field("muc#roomconfig_roomowners", "romeo@localhost"),
    ),
    ctx,
  );
  assert.deepEqual(
    [...later!.affiliations].map(([j, e]) => [j, e.affiliation]),
    [["romeo@localhost", "owner"]],
  );
  assert.equal(later!.occupants.get("Juliet")?.role, "participant");
  assert.equal(
    routed(out2).at(-1),
    canon(xml(`<iq type="result" id="c" from="${ROOM}" to="${ROMEO}"/>`)),
  );

  // A list left out of the form changes nothing.
  const [same] = step(after, configure(field("muc#roomconfig_roomname", "Garden")), ctx);
  assert.deepEqual(same!.affiliations, after!.affiliations);
});

Deno.test("owner list refusals: no owner left, a malformed JID; nothing changes", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const refused = (fields: string) => {
    const [r, out] = step(room, configure(fields), ctx);
    assert.equal(r, room);
    return routed(out);
  };
  assert.deepEqual(
    refused(field("muc#roomconfig_roomowners") + field("muc#roomconfig_roomname", "X")),
    expected(`
    <iq type="error" id="c" from="${ROOM}" to="${ROMEO}">
      <error type="cancel">
        <conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>
        <text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas">A room needs an owner</text>
      </error>
    </iq>`),
  );
  assert.match(
    refused(field("muc#roomconfig_roomadmins", "juliet@localhost/balcony"))[0],
    /<jid-malformed .*Not a bare JID in muc#roomconfig_roomadmins: juliet@localhost\/balcony/,
  );
  // Handing the room over and stepping down in one form is fine.
  const [handed] = step(
    room,
    configure(field("muc#roomconfig_roomowners", "juliet@localhost")),
    ctx,
  );
  assert.deepEqual(
    [...handed!.affiliations].map(([j, e]) => [j, e.affiliation]),
    [["juliet@localhost", "owner"]],
  );
  assert.equal(handed!.occupants.get("Romeo")?.role, "participant");
});

Deno.test("history from the archive: a loaded room gives newcomers the last messages, stamped", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const data = {
    ...storedRoom(room),
    config: { ...room.config, persistent: true, historyLength: 2 },
  };
  const msg = (n: number) => ({
    id: `a${n}`,
    ts: NOW - (10 - n) * 60_000,
    peer: `${ROOM}/Romeo`,
    stanza: xml(
      `<message type="groupchat" id="m${n}" from="${ROOM}/Romeo"><body>Line ${n}</body><stanza-id xmlns="urn:xmpp:sid:0" by="${ROOM}" id="a${n}"/><occupant-id xmlns="${OID}" id="oid-romeo"/></message>`,
    ),
  });
  // Three archived, two kept (historyLength).
  const loaded = roomFromStored(ROOM, data, ctx, [msg(1), msg(2), msg(3)]);
  assert.equal(loaded.history.length, 2);
  assert.equal(loaded.occupants.size, 0);
  const [, out] = step(loaded, joinXml(JULIET, "Juliet"), ctx);
  const history = (n: number, minutes: number) => `
    <message type="groupchat" id="m${n}" from="${ROOM}/Romeo" to="${JULIET}">
      <body>Line ${n}</body>
      <stanza-id xmlns="urn:xmpp:sid:0" by="${ROOM}" id="a${n}"/>
      <occupant-id xmlns="${OID}" id="oid-romeo"/>
      <delay xmlns="urn:xmpp:delay" stamp="2025-01-01T11:${minutes}:00Z" from="${ROOM}"/>
    </message>`;
  assert.deepEqual(
    routed(out).slice(1, 3),
    expected(history(2, 52) + history(3, 53)),
  );
  // Without archived messages (the default), no history.
  assert.equal(roomFromStored(ROOM, data, ctx).history.length, 0);
});
