/** The XEP-0363 upload service reducer: disco, slot grants and every refusal, exact outputs. */
import assert from "node:assert/strict";
import { xml } from "../_xml.ts";
import type { Element } from "../../../lib/xml/element.ts";
import { serializeTop } from "../../../lib/xmpp/stream_xml.ts";
import {
  reduceUpload,
  type Slot,
  slotPath,
  slotToken,
  tokenMatches,
  typeAllowed,
  type UploadCtx,
  type UploadOutput,
  validFilename,
} from "../../../lib/services/upload/service.ts";

const DOMAIN = "upload.example.com";
const ROMEO = "romeo@example.com/orchard";
const KEY = new Uint8Array(32).fill(7);
const NOW = 1_000_000;

function ctx(over: Partial<UploadCtx> = {}): UploadCtx {
  return {
    domain: DOMAIN,
    maxFileSize: 1000,
    allowedTypes: ["text/plain", "image/*"],
    quotaPerUser: 5000,
    quotaTotal: 10000,
    isLocal: (bare) => bare.endsWith("@example.com"),
    usedBy: () => 0,
    usedTotal: 0,
    now: NOW,
    newId: () => "slot1abcdefgh",
    key: KEY,
    baseUrl: "http://example.com:5280",
    ...over,
  };
}

function show(outputs: readonly UploadOutput[]): string[] {
  return outputs.map((o) =>
    o.kind === "route" ? serializeTop(o.stanza) : `slot ${JSON.stringify(o.slot)}`
  );
}

function request(attrs: string, from = ROMEO): Element {
  return xml(
    `<iq type="get" id="r1" from="${from}" to="${DOMAIN}">` +
      `<request xmlns="urn:xmpp:http:upload:0" ${attrs}/></iq>`,
  );
}

const err = (body: string) =>
  `<iq type="error" id="r1" from="${DOMAIN}" to="${ROMEO}"><error type="modify">${body}</error></iq>`;
const STANZA = `xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"`;

Deno.test("upload service: disco#info names the store, the feature and max-file-size", () => {
  const out = reduceUpload(
    xml(
      `<iq type="get" id="d1" from="${ROMEO}" to="${DOMAIN}">` +
        `<query xmlns="http://jabber.org/protocol/disco#info"/></iq>`,
    ),
    ctx(),
  );
  assert.deepEqual(show(out), [
    `<iq type="result" id="d1" from="${DOMAIN}" to="${ROMEO}">` +
    `<query xmlns="http://jabber.org/protocol/disco#info">` +
    `<identity category="store" type="file" name="HTTP File Upload"/>` +
    `<feature var="http://jabber.org/protocol/disco#info"/>` +
    `<feature var="urn:xmpp:http:upload:0"/>` +
    `<x xmlns="jabber:x:data" type="result">` +
    `<field var="FORM_TYPE" type="hidden"><value>urn:xmpp:http:upload:0</value></field>` +
    `<field var="max-file-size"><value>1000</value></field></x></query></iq>`,
  ]);
});

Deno.test("upload service: a slot with a signed PUT header and the GET URL", () => {
  const out = reduceUpload(
    request(`filename="a b.txt" size="12" content-type="text/plain"`),
    ctx(),
  );
  const slot: Slot = {
    id: "slot1abcdefgh",
    filename: "a b.txt",
    size: 12,
    contentType: "text/plain",
    owner: "romeo@example.com",
    expires: NOW + 300_000,
  };
  const token = slotToken(KEY, slot);
  const url = "http://example.com:5280/upload/slot1abcdefgh/a%20b.txt";
  assert.equal(slotPath(slot.id, slot.filename), "/upload/slot1abcdefgh/a%20b.txt");
  assert.deepEqual(show(out), [
    `slot ${JSON.stringify(slot)}`,
    `<iq type="result" id="r1" from="${DOMAIN}" to="${ROMEO}">` +
    `<slot xmlns="urn:xmpp:http:upload:0"><get url="${url}"/>` +
    `<put url="${url}"><header name="Authorization">Bearer ${token}</header></put></slot></iq>`,
  ]);
  assert.ok(tokenMatches(KEY, slot, `Bearer ${token}`));
  assert.ok(!tokenMatches(KEY, slot, token), "the Bearer scheme is required");
  assert.ok(!tokenMatches(KEY, { ...slot, size: 13 }, `Bearer ${token}`));
  assert.ok(!tokenMatches(KEY, { ...slot, contentType: "image/png" }, `Bearer ${token}`));
  assert.ok(!tokenMatches(KEY, { ...slot, expires: slot.expires + 1 }, `Bearer ${token}`));
  assert.ok(!tokenMatches(new Uint8Array(32), slot, `Bearer ${token}`));
  assert.ok(!tokenMatches(KEY, slot, null));
});

Deno.test("upload service: no content-type is application/octet-stream, allowed when any is", () => {
  const out = reduceUpload(request(`filename="x.bin" size="5"`), ctx({ allowedTypes: [] }));
  assert.equal(out[0].kind, "slot");
  assert.equal(out[0].kind === "slot" && out[0].slot.contentType, "application/octet-stream");
  assert.deepEqual(show(reduceUpload(request(`filename="x.bin" size="5"`), ctx())), [
    err(`<not-acceptable ${STANZA}/><text ${STANZA}>File type not allowed</text>`),
  ]);
});

Deno.test("upload service: too large, with the limit (XEP-0363 §4.1)", () => {
  assert.deepEqual(
    show(reduceUpload(request(`filename="big.txt" size="1001" content-type="text/plain"`), ctx())),
    [
      err(
        `<not-acceptable ${STANZA}/><text ${STANZA}>File too large</text>` +
          `<file-too-large xmlns="urn:xmpp:http:upload:0"><max-file-size>1000</max-file-size>` +
          `</file-too-large>`,
      ),
    ],
  );
});

Deno.test("upload service: bad sizes, filenames and types", () => {
  const badSize = [
    err(`<bad-request ${STANZA}/><text ${STANZA}>File size must be positive integer</text>`),
  ];
  for (const size of ["-1", "0", "", "1e3", "12.5", "99999999999999999999"]) {
    assert.deepEqual(
      show(
        reduceUpload(request(`filename="a.txt" size="${size}" content-type="text/plain"`), ctx()),
      ),
      badSize,
      size,
    );
  }
  const badName = [err(`<bad-request ${STANZA}/><text ${STANZA}>Invalid filename</text>`)];
  for (const name of ["", "a/b.txt", "..", ".", "a\\b", "a&#x9;b"]) {
    assert.deepEqual(
      show(reduceUpload(request(`filename="${name}" size="5" content-type="text/plain"`), ctx())),
      badName,
      name,
    );
  }
  const badType = [err(`<not-acceptable ${STANZA}/><text ${STANZA}>File type not allowed</text>`)];
  for (const type of ["application/x-executable", "text/html", "image", "text/plain;x=<"]) {
    assert.deepEqual(
      show(
        reduceUpload(
          request(`filename="a" size="5" content-type="${type.replace("<", "&lt;")}"`),
          ctx(),
        ),
      ),
      badType,
      type,
    );
  }
  assert.equal(
    reduceUpload(request(`filename="a.png" size="5" content-type="image/PNG"`), ctx())[0].kind,
    "slot",
  );
});

Deno.test("upload service: quotas per user and in total", () => {
  const req = request(`filename="a.txt" size="500" content-type="text/plain"`);
  assert.deepEqual(show(reduceUpload(req, ctx({ usedBy: () => 4501 }))), [
    `<iq type="error" id="r1" from="${DOMAIN}" to="${ROMEO}"><error type="wait">` +
    `<resource-constraint ${STANZA}/><text ${STANZA}>Upload quota exceeded</text></error></iq>`,
  ]);
  assert.deepEqual(show(reduceUpload(req, ctx({ usedTotal: 9501 }))), [
    `<iq type="error" id="r1" from="${DOMAIN}" to="${ROMEO}"><error type="wait">` +
    `<resource-constraint ${STANZA}/><text ${STANZA}>The upload service is full</text></error></iq>`,
  ]);
  assert.equal(reduceUpload(req, ctx({ usedBy: () => 4500, usedTotal: 9500 }))[0].kind, "slot");
});

Deno.test("upload service: remote users are refused; results and errors are not answered", () => {
  const from = "iago@elsewhere.example/x";
  assert.deepEqual(
    show(reduceUpload(request(`filename="a" size="5" content-type="text/plain"`, from), ctx())),
    [
      `<iq type="error" id="r1" from="${DOMAIN}" to="${from}"><error type="auth">` +
      `<forbidden ${STANZA}/><text ${STANZA}>Only local users may upload files</text></error></iq>`,
    ],
  );
  assert.deepEqual(
    reduceUpload(xml(`<iq type="result" id="x" from="${ROMEO}" to="${DOMAIN}"/>`), ctx()),
    [],
  );
  assert.deepEqual(
    reduceUpload(xml(`<message from="${ROMEO}" to="${DOMAIN}"><body>hi</body></message>`), ctx()),
    [],
  );
  assert.deepEqual(
    show(
      reduceUpload(
        xml(
          `<iq type="set" id="s" from="${ROMEO}" to="${DOMAIN}"><ping xmlns="urn:xmpp:ping"/></iq>`,
        ),
        ctx(),
      ),
    ),
    [
      `<iq type="error" id="s" from="${DOMAIN}" to="${ROMEO}"><error type="cancel">` +
      `<service-unavailable ${STANZA}/></error></iq>`,
    ],
  );
});

Deno.test("upload service: filename and type helpers", () => {
  assert.ok(validFilename("résumé 2.pdf"));
  assert.ok(!validFilename("x".repeat(256)));
  assert.ok(typeAllowed("image/jpeg", ["image/*"]));
  assert.ok(!typeAllowed("imagex/jpeg", ["image/*"]));
  assert.ok(typeAllowed("anything/else", []));
});
