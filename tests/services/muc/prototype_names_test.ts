/** Peer-chosen names that are also Object.prototype's: nicks, member JIDs, a stored round trip. */
import assert from "node:assert/strict";
import { roomFromStored, storedRoom } from "../../../lib/services/muc/mod.ts";
import { instantXml, joinXml, mucCtx, ROMEO, ROOM, routed, scene, step } from "./_helpers.ts";

Deno.test("muc: nicks and affiliated JIDs named constructor and __proto__ are data", () => {
  const ctx = mucCtx();
  const room = scene(undefined, [
    joinXml(ROMEO, "Romeo"),
    instantXml(),
    joinXml("constructor@localhost/x", "__proto__"),
    joinXml("__proto__@localhost/y", "constructor"),
  ], ctx);
  assert.deepEqual([...room.occupants.keys()], ["Romeo", "__proto__", "constructor"]);
  assert.equal(room.nickOf.get("constructor@localhost/x"), "__proto__");
  // A private message to the nick "constructor" reaches its occupant, not a prototype method.
  const [, out] = step(
    room,
    `<message from="${ROMEO}" to="${ROOM}/constructor" type="chat" id="pm"><body>hi</body></message>`,
    ctx,
  );
  assert.deepEqual(routed(out).length, 1);
  assert.match(routed(out)[0], /to="__proto__@localhost\/y"/);
  // Affiliations keyed by such JIDs survive the stored form.
  const [member] = step(
    room,
    `<iq from="${ROMEO}" to="${ROOM}" type="set" id="a1"><query xmlns="http://jabber.org/protocol/muc#admin"><item affiliation="member" jid="constructor@localhost"/></query></iq>`,
    ctx,
  );
  const back = roomFromStored(ROOM, storedRoom(member!), ctx);
  assert.equal(back.affiliations.get("constructor@localhost")?.affiliation, "member");
});
