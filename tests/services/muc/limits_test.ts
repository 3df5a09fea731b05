/**
 * Every bound of `MucLimits`, each shown with what the room answers at the bound: the exact
 * error stanza where a stanza is refused, the clamped value or the shortened history where
 * the bound is applied without refusing anything. Limits are set small so that one stanza
 * crosses them.
 */
import assert from "node:assert/strict";
import { DEFAULT_MUC_LIMITS, type MucCtx, type MucLimits } from "../../../lib/services/muc/mod.ts";
import {
  expected,
  instantXml,
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

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";

function limited(over: Partial<MucLimits>, ctx: Partial<MucCtx> = {}): MucCtx {
  return mucCtx({ limits: { ...DEFAULT_MUC_LIMITS, ...over }, ...ctx });
}

/** The `<error/>` of a MUC refusal: condition, then text without xml:lang. */
function err(type: string, condition: string, text?: string, by?: string): string {
  return `<error type="${type}"${by === undefined ? "" : ` by="${by}"`}>` +
    `<${condition} xmlns="${STANZAS}"/>` +
    (text === undefined ? "" : `<text xmlns="${STANZAS}">${text}</text>`) +
    `</error>`;
}

const configure = (fields: string, from = ROMEO) =>
  `<iq from="${from}" to="${ROOM}" type="set" id="c1"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE"><value>http://jabber.org/protocol/muc#roomconfig</value></field>${fields}</x></query></iq>`;
const field = (v: string, value: string) => `<field var="${v}"><value>${value}</value></field>`;
const admin = (items: string, from = ROMEO) =>
  `<iq from="${from}" to="${ROOM}" type="set" id="a"><query xmlns="http://jabber.org/protocol/muc#admin">${items}</query></iq>`;
const groupchat = (from: string, body: string, id = "m") =>
  `<message from="${from}" to="${ROOM}" type="groupchat" id="${id}"><body>${body}</body></message>`;

Deno.test("limit occupantsPerRoom: a join past it is refused, owners included; maxUsers is capped", () => {
  const ctx = limited({ occupantsPerRoom: 2 });
  const room = twoOccupants(ctx);
  assert.equal(room.config.maxUsers, 2);
  assert.deepEqual(
    show(step(room, joinXml(ROSALINE, "Rosaline"), ctx)[1]),
    expected(`
    <presence type="error" from="${ROOM}/Rosaline" to="${ROSALINE}">
      <x xmlns="http://jabber.org/protocol/muc"/>
      ${err("cancel", "service-unavailable", "The room is full", ROOM)}
    </presence>`),
  );
  // The service's admins own every room, yet the service's bound holds for them too.
  assert.deepEqual(
    show(step(room, joinXml("admin@localhost/a", "Admin"), ctx)[1]),
    expected(`
    <presence type="error" from="${ROOM}/Admin" to="admin@localhost/a">
      <x xmlns="http://jabber.org/protocol/muc"/>
      ${err("cancel", "service-unavailable", "The room is full", ROOM)}
    </presence>`),
  );
  // An owner asking for more gets the bound.
  const [after] = step(room, configure(field("muc#roomconfig_maxusers", "500")), ctx);
  assert.equal(after?.config.maxUsers, 2);
});

Deno.test("limit sessionsPerOccupant: one more session under a nick is refused", () => {
  const ctx = limited({ sessionsPerOccupant: 1 });
  const room = twoOccupants(ctx);
  assert.deepEqual(
    show(step(room, joinXml("juliet@localhost/j2", "Juliet"), ctx)[1]),
    expected(`
    <presence type="error" from="${ROOM}/Juliet" to="juliet@localhost/j2">
      <x xmlns="http://jabber.org/protocol/muc"/>
      ${err("wait", "resource-constraint", "Too many sessions with this nick", ROOM)}
    </presence>`),
  );
});

Deno.test("limit historyMessages: historylength is capped, the oldest messages go", () => {
  const ctx = limited({ historyMessages: 2 });
  const room = scene(twoOccupants(ctx), [
    configure(field("muc#roomconfig_historylength", "50")),
    groupchat(ROMEO, "one", "1"),
    groupchat(ROMEO, "two", "2"),
    groupchat(ROMEO, "three", "3"),
  ], ctx);
  assert.equal(room.config.historyLength, 2);
  assert.deepEqual(room.history.map((h) => h.stanza.attrs.id), ["2", "3"]);
});

Deno.test("limit historyBytes: history keeps what fits; a message larger than it is not kept", () => {
  const probe = twoOccupants(mucCtx());
  const one = scene(probe, [groupchat(ROMEO, "aaaa", "1")], mucCtx()).history[0].chars;
  // Room for two messages of that size, not three.
  const ctx = limited({ historyBytes: one * 2 + 1 });
  const room = scene(twoOccupants(ctx), [
    groupchat(ROMEO, "aaaa", "1"),
    groupchat(ROMEO, "bbbb", "2"),
    groupchat(ROMEO, "cccc", "3"),
  ], ctx);
  assert.deepEqual(room.history.map((h) => h.stanza.attrs.id), ["2", "3"]);
  assert.equal(room.historyChars, one * 2);
  // Too big for history on its own: still delivered, not kept.
  const [after, out] = step(room, groupchat(ROMEO, "x".repeat(one * 3), "4"), ctx);
  assert.equal(out.filter((o) => o.kind === "route").length, 2);
  assert.deepEqual(after?.history.map((h) => h.stanza.attrs.id), ["2", "3"]);
});

Deno.test("limit messageBytes: a longer groupchat or private message is refused", () => {
  const ctx = limited({ messageBytes: 4 });
  const room = twoOccupants(ctx);
  // Counted in UTF-8 bytes: two two-byte letters fit, three do not.
  assert.equal(step(room, groupchat(JULIET, "éé"), ctx)[1].length, 3);
  assert.deepEqual(
    show(step(room, groupchat(JULIET, "ééé"), ctx)[1]),
    expected(`
    <message type="error" id="m" from="${ROOM}" to="${JULIET}">
      ${err("modify", "policy-violation", "The message is too long")}
    </message>`),
  );
  assert.deepEqual(
    show(
      step(
        room,
        `<message from="${JULIET}" to="${ROOM}/Romeo" type="chat" id="p"><body>hello</body></message>`,
        ctx,
      )[1],
    ),
    expected(`
    <message type="error" id="p" from="${ROOM}/Romeo" to="${JULIET}">
      ${err("modify", "policy-violation", "The message is too long")}
    </message>`),
  );
});

Deno.test("limit subjectBytes: a longer subject is refused, the old one stays", () => {
  const ctx = limited({ subjectBytes: 5 });
  const room = twoOccupants(ctx);
  const [after, out] = step(
    room,
    `<message from="${ROMEO}" to="${ROOM}" type="groupchat" id="s"><subject>Verona!</subject></message>`,
    ctx,
  );
  assert.deepEqual(
    show(out),
    expected(`
    <message type="error" id="s" from="${ROOM}" to="${ROMEO}">
      ${err("modify", "not-acceptable", "The subject is too long")}
    </message>`),
  );
  assert.equal(after, room);
});

Deno.test("limit affiliations: one more affiliation is refused; so is a longer admin list", () => {
  const ctx = limited({ affiliations: 2 });
  const room = scene(twoOccupants(ctx), [
    admin(`<item affiliation="member" jid="juliet@localhost"/>`),
  ], ctx);
  assert.equal(room.affiliations.size, 2);
  assert.deepEqual(
    show(step(room, admin(`<item affiliation="member" jid="rosaline@localhost"/>`), ctx)[1]),
    expected(`
    <iq type="error" id="a" from="${ROOM}" to="${ROMEO}">
      ${err("wait", "resource-constraint", "Too many affiliations")}
    </iq>`),
  );
  // Changing an existing one still works at the bound.
  const [changed] = step(room, admin(`<item affiliation="admin" jid="juliet@localhost"/>`), ctx);
  assert.equal(changed?.affiliations.get("juliet@localhost")?.affiliation, "admin");
  const three = `<item affiliation="none" jid="a@localhost"/>`.repeat(3);
  assert.deepEqual(
    show(step(room, admin(three), ctx)[1]),
    expected(
      `<iq type="error" id="a" from="${ROOM}" to="${ROMEO}">${err("modify", "bad-request")}</iq>`,
    ),
  );
});

Deno.test("limit configTextBytes: a longer name, description, password or language is refused", () => {
  const ctx = limited({ configTextBytes: 8 });
  const room = twoOccupants(ctx);
  for (const v of ["roomname", "roomdesc", "roomsecret", "lang"]) {
    const name = `muc#roomconfig_${v}`;
    const [after, out] = step(room, configure(field(name, "123456789")), ctx);
    assert.deepEqual(
      show(out),
      expected(`
      <iq type="error" id="c1" from="${ROOM}" to="${ROMEO}">
        ${err("modify", "not-acceptable", `${name} is too long`)}
      </iq>`),
    );
    assert.equal(after, room);
  }
});

Deno.test("limit nickBytes: a longer nick is refused on joining, on a nick change, on reserving", () => {
  const ctx = limited({ nickBytes: 6 });
  const room = twoOccupants(ctx);
  assert.deepEqual(
    show(step(room, joinXml(ROSALINE, "Rosaline"), ctx)[1]),
    expected(`
    <presence type="error" from="${ROOM}/Rosaline" to="${ROSALINE}">
      <x xmlns="http://jabber.org/protocol/muc"/>
      ${err("modify", "jid-malformed", "Nickname must pass strict validation", ROOM)}
    </presence>`),
  );
  assert.deepEqual(
    show(step(room, `<presence from="${JULIET}" to="${ROOM}/Julietta"/>`, ctx)[1]),
    expected(`
    <presence type="error" from="${ROOM}/Julietta" to="${JULIET}">
      <x xmlns="http://jabber.org/protocol/muc"/>
      ${err("modify", "jid-malformed", "Nickname must pass strict validation", ROOM)}
    </presence>`),
  );
  assert.deepEqual(
    show(
      step(
        room,
        admin(`<item affiliation="member" jid="juliet@localhost" nick="Julietta"/>`),
        ctx,
      )[1],
    ),
    expected(`
    <iq type="error" id="a" from="${ROOM}" to="${ROMEO}">
      ${err("modify", "jid-malformed", "Invalid nick")}
    </iq>`),
  );
});

Deno.test("limit reasonBytes: a longer reason is refused in kicks, destruction, invitations, declines", () => {
  const ctx = limited({ reasonBytes: 3 });
  const room = twoOccupants(ctx);
  const tooLong = (type: string) => err(type, "not-acceptable", "Reason too long");
  assert.deepEqual(
    show(step(room, admin(`<item nick="Juliet" role="none"><reason>Away</reason></item>`), ctx)[1]),
    expected(`<iq type="error" id="a" from="${ROOM}" to="${ROMEO}">${tooLong("modify")}</iq>`),
  );
  assert.deepEqual(
    show(
      step(
        room,
        `<iq from="${ROMEO}" to="${ROOM}" type="set" id="d"><query xmlns="http://jabber.org/protocol/muc#owner"><destroy><reason>Gone</reason></destroy></query></iq>`,
        ctx,
      )[1],
    ),
    expected(`<iq type="error" id="d" from="${ROOM}" to="${ROMEO}">${tooLong("modify")}</iq>`),
  );
  const userX = (inner: string) =>
    `<message from="${JULIET}" to="${ROOM}" id="i"><x xmlns="http://jabber.org/protocol/muc#user">${inner}</x></message>`;
  for (
    const inner of [
      `<invite to="rosaline@localhost"><reason>Come</reason></invite>`,
      `<decline to="romeo@localhost"><reason>Busy</reason></decline>`,
    ]
  ) {
    assert.deepEqual(
      show(step(room, userX(inner), ctx)[1]),
      expected(
        `<message type="error" id="i" from="${ROOM}" to="${JULIET}">${tooLong("modify")}</message>`,
      ),
    );
  }
});

Deno.test("limit roomsPerCreator: creating one more room is refused, except for the service's admins", () => {
  const ctx = limited({ roomsPerCreator: 1 }, { roomsCreatedBy: () => 1 });
  assert.deepEqual(
    show(step(undefined, joinXml(ROMEO, "Romeo"), ctx)[1]),
    expected(`
    <presence type="error" from="${ROOM}/Romeo" to="${ROMEO}">
      <x xmlns="http://jabber.org/protocol/muc"/>
      ${err("wait", "resource-constraint", "Too many rooms", ROOM)}
    </presence>`),
  );
  const [created] = step(undefined, joinXml("admin@localhost/a", "Admin"), ctx);
  assert.equal(created?.occupants.size, 1);
  // Joining an existing room is no creation.
  const room = scene(undefined, [joinXml(JULIET, "Juliet"), instantXml(JULIET)], mucCtx());
  const [joined] = step(room, joinXml(ROMEO, "Romeo"), ctx);
  assert.equal(joined?.occupants.size, 2);
});

Deno.test("invitations: more than ten in one message are refused", () => {
  const ctx = mucCtx();
  const room = twoOccupants(ctx);
  const invites = Array.from({ length: 11 }, (_, i) => `<invite to="u${i}@localhost"/>`).join("");
  assert.deepEqual(
    show(
      step(
        room,
        `<message from="${ROMEO}" to="${ROOM}" id="i"><x xmlns="http://jabber.org/protocol/muc#user">${invites}</x></message>`,
        ctx,
      )[1],
    ),
    expected(`
    <message type="error" id="i" from="${ROOM}" to="${ROMEO}">
      ${err("modify", "policy-violation", "Too many invitations")}
    </message>`),
  );
});
