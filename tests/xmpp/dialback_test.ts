/**
 * Dialback keys (XEP-0185) and elements (XEP-0220): the worked example of XEP-0185 §3 exactly,
 * the constant-time comparison, the builders, and the `db:` prefix on the wire.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { dbResult, dbVerify, dialbackKey, dialbackKeyMatches } from "../../lib/xmpp/dialback.ts";
import { serializeTopIn } from "../../lib/xmpp/stream_xml.ts";
import { tcpFrame, tcpHeader } from "../../lib/transport/tcp_framing.ts";
import { NS_DIALBACK, NS_SERVER } from "../../lib/xmpp/namespaces.ts";

// XEP-0185 §3 "Example", its data table and results (version 1.0, 2007-02-15).
const SECRET = "s3cr3tf0rd14lb4ck";
const RECEIVING = "xmpp.example.com";
const ORIGINATING = "example.org";
const STREAM_ID = "D60000229F";
const HASHED_SECRET = "a7136eb1f46c9ef18c5e78c36ca257067c69b3d518285f0b18a96c33beae9acc";
const KEY = "37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643";

Deno.test("dialback: the key of XEP-0185 §3 is reproduced exactly", () => {
  // The intermediate value the XEP prints: SHA256(secret) in hex is the HMAC key.
  assert.equal(createHash("sha256").update(SECRET).digest("hex"), HASHED_SECRET);
  assert.equal(dialbackKey(SECRET, RECEIVING, ORIGINATING, STREAM_ID), KEY);
  // The authoritative server computes the same key from the db:verify it gets (steps 8, 9).
  assert.ok(dialbackKeyMatches(KEY, dialbackKey(SECRET, RECEIVING, ORIGINATING, STREAM_ID)));
});

Deno.test("dialback: every input changes the key; the order of the servers matters", () => {
  const others = [
    dialbackKey("other", RECEIVING, ORIGINATING, STREAM_ID),
    dialbackKey(SECRET, ORIGINATING, RECEIVING, STREAM_ID),
    dialbackKey(SECRET, RECEIVING, ORIGINATING, "D60000229E"),
    dialbackKey(SECRET, "xmpp.example.co", "m example.org", STREAM_ID),
  ];
  for (const k of others) {
    assert.match(k, /^[0-9a-f]{64}$/);
    assert.notEqual(k, KEY);
  }
  // The space delimiter keeps XEP-0185's own ambiguous example apart (§2 note 5).
  assert.notEqual(
    dialbackKey(SECRET, "example.info", "rm.example.org", STREAM_ID),
    dialbackKey(SECRET, "example.in", "form.example.org", STREAM_ID),
  );
});

Deno.test("dialback: keys match in any case and around white space, and only then", () => {
  assert.ok(dialbackKeyMatches(KEY, KEY));
  assert.ok(dialbackKeyMatches(KEY.toUpperCase(), KEY));
  assert.ok(dialbackKeyMatches(`\n    ${KEY}\n`, KEY)); // as XEP-0185's examples lay it out
  assert.ok(!dialbackKeyMatches(KEY.slice(0, -1), KEY));
  assert.ok(!dialbackKeyMatches(KEY + "0", KEY));
  assert.ok(!dialbackKeyMatches(KEY.slice(0, -1) + "4", KEY));
  assert.ok(!dialbackKeyMatches("", KEY));
  // Multibyte input of the same length in UTF-16 is compared as bytes, not a crash.
  assert.ok(!dialbackKeyMatches("é".repeat(64), KEY));
});

Deno.test("dialback: dbResult and dbVerify build the elements, with or without key and type", () => {
  assert.deepEqual(dbResult(ORIGINATING, RECEIVING, KEY), {
    name: "result",
    xmlns: NS_DIALBACK,
    attrs: { from: ORIGINATING, to: RECEIVING },
    children: [KEY],
  });
  assert.deepEqual(dbResult(RECEIVING, ORIGINATING, undefined, "valid"), {
    name: "result",
    xmlns: NS_DIALBACK,
    attrs: { from: RECEIVING, to: ORIGINATING, type: "valid" },
    children: [],
  });
  assert.deepEqual(dbVerify(RECEIVING, ORIGINATING, STREAM_ID, KEY), {
    name: "verify",
    xmlns: NS_DIALBACK,
    attrs: { from: RECEIVING, to: ORIGINATING, id: STREAM_ID },
    children: [KEY],
  });
  assert.deepEqual(dbVerify(ORIGINATING, RECEIVING, STREAM_ID, undefined, "invalid"), {
    name: "verify",
    xmlns: NS_DIALBACK,
    attrs: { from: ORIGINATING, to: RECEIVING, id: STREAM_ID, type: "invalid" },
    children: [],
  });
});

Deno.test("dialback: the elements go on the wire with the db: prefix", () => {
  assert.equal(
    serializeTopIn(dbResult(ORIGINATING, RECEIVING, KEY), NS_SERVER),
    `<db:result from="example.org" to="xmpp.example.com">${KEY}</db:result>`,
  );
  assert.equal(
    serializeTopIn(dbVerify(ORIGINATING, RECEIVING, STREAM_ID, undefined, "valid"), NS_SERVER),
    '<db:verify from="example.org" to="xmpp.example.com" id="D60000229F" type="valid"/>',
  );
  // The same through the TCP framing of a `send` output.
  assert.equal(
    tcpFrame({ kind: "send", stanza: dbVerify(RECEIVING, ORIGINATING, STREAM_ID, KEY) }, NS_SERVER),
    `<db:verify from="xmpp.example.com" to="example.org" id="D60000229F">${KEY}</db:verify>`,
  );
  // Attribute values and the key text are escaped.
  assert.equal(
    serializeTopIn(dbResult("a'b", "c<d", "k&"), NS_SERVER),
    '<db:result from="a&apos;b" to="c&lt;d">k&amp;</db:result>',
  );
});

Deno.test("dialback: a server header declares the db: prefix, and an initiator's has no id", () => {
  const streams = "http://etherx.jabber.org/streams";
  // The initiating server names `to` and sends no id (RFC 6120 §4.7.3).
  assert.equal(
    tcpHeader({
      ns: NS_SERVER,
      id: "",
      from: ORIGINATING,
      to: RECEIVING,
      version: "1.0",
      dialback: true,
    }),
    `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='${streams}'` +
      ` xmlns:db='jabber:server:dialback' from='example.org' to='xmpp.example.com'` +
      ` version='1.0'>`,
  );
  // The receiving server answers with its id, and both domains.
  assert.equal(
    tcpHeader({
      ns: NS_SERVER,
      id: STREAM_ID,
      from: RECEIVING,
      to: ORIGINATING,
      version: "1.0",
      dialback: true,
    }),
    `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='${streams}'` +
      ` xmlns:db='jabber:server:dialback' id='D60000229F' from='xmpp.example.com'` +
      ` to='example.org' version='1.0'>`,
  );
  // Refusing a header before knowing anything: an empty id is still written.
  assert.equal(
    tcpHeader({ ns: NS_SERVER, id: "", version: "1.0", dialback: true }),
    `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='${streams}'` +
      ` xmlns:db='jabber:server:dialback' id='' version='1.0'>`,
  );
  // Without `dialback` there is no db: declaration.
  assert.doesNotMatch(tcpHeader({ ns: NS_SERVER, id: "x", to: "y" }), /xmlns:db/);
});
