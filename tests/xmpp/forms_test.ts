import assert from "node:assert/strict";
import { elem, type Element, serialize } from "../../lib/xml/element.ts";
import { createStreamParser } from "../../lib/xml/parser.ts";
import {
  buildForm,
  fieldValues,
  findForm,
  findForms,
  formTypeField,
  isDataForm,
  parseForm,
} from "../../lib/xmpp/forms.ts";
import { NS_DATA } from "../../lib/xmpp/namespaces.ts";

/** Parses one element, written as the child of a client stanza. */
function xml(s: string): Element {
  const p = createStreamParser({ maxStanzaBytes: 1 << 20 });
  const events = p.push(new TextEncoder().encode(
    `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams"><iq>${s}</iq>`,
  ));
  const iq = events.find((e) => e.kind === "stanza");
  assert.ok(iq !== undefined && iq.kind === "stanza", `not parsed: ${s}`);
  return iq.stanza.children[0] as Element;
}

Deno.test("parseForm: XEP-0004 §9 example 2, a form to fill", () => {
  const x = xml(
    `<x xmlns='jabber:x:data' type='form'>` +
      `<title>Bot Configuration</title>` +
      `<instructions>Fill out this form to configure your new bot!</instructions>` +
      `<field type='hidden' var='FORM_TYPE'><value>jabber:bot</value></field>` +
      `<field type='fixed'><value>Section 1: Bot Info</value></field>` +
      `<field type='text-single' label='The name of your bot' var='botname'/>` +
      `<field type='boolean' label='Public bot?' var='public'><required/><value>0</value></field>` +
      `<field type='list-multi' label='What features will the bot support?' var='features'>` +
      `<option label='Contests'><value>contests</value></option>` +
      `<option label='News'><value>news</value></option>` +
      `<value>news</value><value>search</value></field>` +
      `</x>`,
  );
  assert.ok(isDataForm(x));
  const form = parseForm(x);
  assert.equal(form.type, "form");
  assert.equal(form.formType, "jabber:bot");
  assert.deepEqual(form.fields, [
    { type: "hidden", var: "FORM_TYPE", values: ["jabber:bot"], options: [] },
    { type: "fixed", values: ["Section 1: Bot Info"], options: [] },
    { type: "text-single", var: "botname", label: "The name of your bot", values: [], options: [] },
    { type: "boolean", var: "public", label: "Public bot?", values: ["0"], options: [] },
    {
      type: "list-multi",
      var: "features",
      label: "What features will the bot support?",
      values: ["news", "search"],
      options: ["contests", "news"],
    },
  ]);
  assert.deepEqual([...form.byVar.keys()], ["FORM_TYPE", "botname", "public", "features"]);
  assert.deepEqual(fieldValues(form, "features"), ["news", "search"]);
  assert.equal(fieldValues(form, "missing"), undefined);
});

Deno.test("parseForm: a submitted form without types; a repeated var: the later one wins", () => {
  const form = parseForm(xml(
    `<x xmlns="jabber:x:data" type="submit">` +
      `<field var="FORM_TYPE"><value>urn:xmpp:mam:2</value></field>` +
      `<field var="a"><value>1</value></field>` +
      `<field var="b"/>` +
      `<field var="a"><value>2</value></field>` +
      `</x>`,
  ));
  assert.equal(form.type, "submit");
  assert.equal(form.formType, "urn:xmpp:mam:2");
  assert.equal(form.fields.length, 4);
  assert.deepEqual([...form.byVar.keys()], ["FORM_TYPE", "a", "b"]);
  assert.deepEqual(fieldValues(form, "a"), ["2"]);
  assert.deepEqual(fieldValues(form, "b"), []);
});

Deno.test("parseForm: peer-chosen names stay data", () => {
  const form = parseForm(xml(
    `<x xmlns="jabber:x:data"><field var="__proto__"><value>p</value></field>` +
      `<field var="constructor"/><field var="hasOwnProperty"><value>h</value></field></x>`,
  ));
  assert.equal(form.type, undefined);
  assert.equal(form.formType, undefined);
  assert.deepEqual(fieldValues(form, "__proto__"), ["p"]);
  assert.deepEqual(fieldValues(form, "constructor"), []);
  assert.deepEqual(fieldValues(form, "hasOwnProperty"), ["h"]);
  assert.equal(fieldValues(form, "toString"), undefined);
});

Deno.test("parseForm: what is outside the data forms namespace is not part of the form", () => {
  const form = parseForm(xml(
    `<x xmlns="jabber:x:data" type="result">` +
      `<field var="v"><value>in</value><value xmlns="urn:other">out</value>text</field>` +
      `<field xmlns="urn:other" var="w"><value>no</value></field>` +
      `<reported><field var="r"/></reported>` +
      `</x>`,
  ));
  assert.deepEqual(form.fields, [{ var: "v", values: ["in"], options: [] }]);
  // An empty form and a form of fields without values.
  assert.deepEqual(parseForm(xml(`<x xmlns="jabber:x:data"/>`)), { fields: [], byVar: new Map() });
});

Deno.test("findForm and findForms: <x/> children in the data forms namespace only", () => {
  const query = xml(
    `<query xmlns="http://jabber.org/protocol/disco#info">` +
      `<x xmlns="urn:other" type="result"/>` +
      `<x xmlns="jabber:x:data" type="result" id="1"/>` +
      `<y xmlns="jabber:x:data"/>` +
      `<x xmlns="jabber:x:data" type="result" id="2"/>` +
      `</query>`,
  );
  assert.equal(findForm(query)?.attrs.id, "1");
  assert.deepEqual(findForms(query).map((x) => x.attrs.id), ["1", "2"]);
  assert.equal(findForm(xml(`<query xmlns="urn:xmpp:mam:2"/>`)), undefined);
  assert.equal(isDataForm(elem("x", { xmlns: "urn:other" })), false);
});

Deno.test("buildForm: exact output, options before values, attributes left out when absent", () => {
  const x = buildForm("form", [
    formTypeField("http://jabber.org/protocol/pubsub#node_config"),
    { type: "text-single", var: "pubsub#title", values: [] },
    {
      type: "list-single",
      var: "pubsub#access_model",
      label: "Who may subscribe",
      values: ["open"],
      options: ["open", "presence"],
    },
    { var: "bare" },
  ]);
  assert.equal(
    serialize(x),
    `<x xmlns="${NS_DATA}" type="form">` +
      `<field type="hidden" var="FORM_TYPE">` +
      `<value>http://jabber.org/protocol/pubsub#node_config</value></field>` +
      `<field type="text-single" var="pubsub#title"/>` +
      `<field type="list-single" var="pubsub#access_model" label="Who may subscribe">` +
      `<option><value>open</value></option><option><value>presence</value></option>` +
      `<value>open</value></field>` +
      `<field var="bare"/>` +
      `</x>`,
  );
});

Deno.test("buildForm then parseForm: a round trip through the wire", () => {
  const x = buildForm("result", [
    formTypeField("http://jabber.org/network/serverinfo"),
    { type: "list-multi", var: "abuse-addresses", values: ["mailto:a@example.com", "xmpp:a@x"] },
    { type: "list-multi", var: "admin-addresses", values: [] },
    { type: "text-single", var: "escaped", label: `<"&'>`, values: ["a < b & c"] },
  ]);
  const form = parseForm(xml(serialize(x)));
  assert.deepEqual(form, parseForm(x));
  assert.equal(form.type, "result");
  assert.equal(form.formType, "http://jabber.org/network/serverinfo");
  assert.deepEqual(fieldValues(form, "abuse-addresses"), ["mailto:a@example.com", "xmpp:a@x"]);
  assert.deepEqual(fieldValues(form, "admin-addresses"), []);
  assert.equal(form.byVar.get("escaped")?.label, `<"&'>`);
  assert.deepEqual(fieldValues(form, "escaped"), ["a < b & c"]);
});

Deno.test("buildForm refuses what XML cannot carry", () => {
  assert.throws(() => buildForm("submit", [{ var: "v", values: ["\u0000"] }]));
});
