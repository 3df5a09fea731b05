import assert from "node:assert/strict";
import {
  CAPS_NODE,
  type CapsInput,
  capsInputOf,
  verificationInput,
  verificationString,
} from "../../lib/modules/caps.ts";
import { reduce } from "../../lib/c2s/mod.ts";
import type { Ctx } from "../../lib/core/types.ts";
import { child, elem, type Element } from "../../lib/xml/element.ts";
import { NS_CAPS, NS_DISCO_INFO, NS_STREAMS } from "../../lib/xmpp/namespaces.ts";
import { authed, discoCapsVer, streamOpen, testCtx } from "../_ctx.ts";

const DATA = "jabber:x:data";
const FEATURES = [
  "http://jabber.org/protocol/caps",
  "http://jabber.org/protocol/disco#info",
  "http://jabber.org/protocol/disco#items",
  "http://jabber.org/protocol/muc",
];

function field(v: string, values: readonly string[], type?: string): Element {
  return elem("field", { var: v, type }, values.map((x) => elem("value", {}, [x])));
}

/** The XEP-0115 §5.3 software-information form, fields in the order the example lists them. */
const SOFTWARE_INFO = elem("x", { xmlns: DATA, type: "result" }, [
  field("FORM_TYPE", ["urn:xmpp:dataforms:softwareinfo"], "hidden"),
  field("ip_version", ["ipv4", "ipv6"]),
  field("os", ["Mac"]),
  field("os_version", ["10.5.1"]),
  field("software", ["Psi"]),
  field("software_version", ["0.11"]),
]);

// ---------------------------------------------------------------------------------------------
// The specification's own examples.

Deno.test("caps: XEP-0115 §5.2 simple example (Exodus)", () => {
  const info: CapsInput = {
    identities: [{ category: "client", type: "pc", name: "Exodus 0.9.1" }],
    // Given out of order: the algorithm sorts them.
    features: [FEATURES[3], FEATURES[1], FEATURES[0], FEATURES[2]],
    forms: [],
  };
  assert.equal(
    verificationInput(info),
    "client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<" +
      "http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<",
  );
  assert.equal(verificationString(info), "QgayPKawpkPSDYmwT/WM94uAlu0=");
});

Deno.test("caps: XEP-0115 §5.3 complex example (Psi, two languages, a form), from the query", () => {
  const query = elem("query", { xmlns: NS_DISCO_INFO }, [
    elem("identity", { "xml:lang": "en", category: "client", name: "Psi 0.11", type: "pc" }),
    elem("identity", { "xml:lang": "el", category: "client", name: "Ψ 0.11", type: "pc" }),
    ...FEATURES.map((f) => elem("feature", { var: f })),
    SOFTWARE_INFO,
  ]);
  const info = capsInputOf(query);
  assert.equal(
    verificationInput(info),
    "client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<" +
      "http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<" +
      "http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<ip_version<ipv4<ipv6<" +
      "os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<",
  );
  assert.equal(verificationString(info), "q07IKJEyjvHSyhy//CH0CxmKi8w=");
});

Deno.test("caps: field and value order inside a form does not change the hash", () => {
  const shuffled = elem("x", { xmlns: DATA, type: "result" }, [
    field("software_version", ["0.11"]),
    field("os", ["Mac"]),
    field("ip_version", ["ipv6", "ipv4"]),
    field("software", ["Psi"]),
    field("FORM_TYPE", ["urn:xmpp:dataforms:softwareinfo"], "hidden"),
    field("os_version", ["10.5.1"]),
  ]);
  const identities = [
    { category: "client", type: "pc", lang: "en", name: "Psi 0.11" },
    { category: "client", type: "pc", lang: "el", name: "Ψ 0.11" },
  ];
  assert.equal(
    verificationString({ identities, features: FEATURES, forms: [shuffled] }),
    "q07IKJEyjvHSyhy//CH0CxmKi8w=",
  );
});

Deno.test("caps: forms are sorted by FORM_TYPE; a form without a hidden FORM_TYPE is ignored", () => {
  const form = (type: string, fieldType = "hidden") =>
    elem("x", { xmlns: DATA, type: "result" }, [
      field("FORM_TYPE", [type], fieldType),
      field("f", ["v"]),
    ]);
  const info: CapsInput = {
    identities: [{ category: "server", type: "im" }],
    features: [],
    forms: [form("urn:b"), form("urn:visible", "text-single"), form("urn:a")],
  };
  assert.equal(verificationInput(info), "server/im//<urn:a<f<v<urn:b<f<v<");
});

Deno.test("caps: sorting is by UTF-8 octets, not UTF-16 code units", () => {
  // U+FF21 is EF BC A1 in UTF-8 and sorts before U+1F600 (F0 ...); in UTF-16 it sorts after.
  const info: CapsInput = { identities: [], features: ["\u{1F600}", "\u{FF21}"], forms: [] };
  assert.equal(verificationInput(info), "\u{FF21}<\u{1F600}<");
});

// ---------------------------------------------------------------------------------------------
// The server's own announcement matches its disco#info answer.

function announcedCaps(ctx: Ctx): Element {
  const [, out] = reduce(authed({ notopen: true, streamId: undefined }), streamOpen(), ctx);
  const features = out[1];
  assert.equal(features.kind, "send");
  if (features.kind !== "send") throw new Error("unreachable");
  assert.equal(features.stanza.xmlns, NS_STREAMS);
  const c = child(features.stanza, "c", NS_CAPS);
  assert.ok(c !== undefined, "no <c/> in the stream features");
  return c;
}

const CONTACTS = { admin: ["xmpp:admin@example.com"], abuse: ["mailto:abuse@example.com"] };

for (const [name, contactInfo] of [["without", {}], ["with", CONTACTS]] as const) {
  Deno.test(`caps: the announced ver is what a client computes from disco#info (${name} a form)`, () => {
    const ctx: Ctx = { ...testCtx(), settings: { startedAt: 0, contactInfo } };
    const c = announcedCaps(ctx);
    assert.deepEqual(c.attrs, { hash: "sha-1", node: CAPS_NODE, ver: discoCapsVer(ctx) });
  });
}

Deno.test("caps: the domain's XEP-0128 form is part of the hash", () => {
  const plain = announcedCaps(testCtx());
  const withForm = announcedCaps({
    ...testCtx(),
    settings: { startedAt: 0, contactInfo: CONTACTS },
  });
  assert.notEqual(plain.attrs.ver, withForm.attrs.ver);
});
