import assert from "node:assert/strict";
import {
  child,
  childElements,
  childText,
  elem,
  type Element,
  escapeAttr,
  escapeText,
  isValidXmlText,
  NO_NAMESPACE,
  serialize,
  stanza,
  text,
  withAttrs,
  withChildren,
  XmlBuildError,
} from "../../lib/xml/element.ts";
import { NS_CLIENT } from "../../lib/xmpp/namespaces.ts";

Deno.test("elem refuses invalid element and attribute names", () => {
  for (const name of ["", "1a", "a b", "a<b", "-a", "a:", ":a", "a:b:c", "a>", "a\u0000"]) {
    assert.throws(() => elem(name), XmlBuildError, `element ${JSON.stringify(name)}`);
    assert.throws(() => elem("a", { [name]: "v" }), XmlBuildError, `attr ${JSON.stringify(name)}`);
  }
  for (const name of ["a", "_a", "a.b-c_d9", "stream:features", "xml:lang"]) {
    assert.equal(elem(name).name, name);
    assert.deepEqual(elem("a", { [name]: "v" }).attrs, { [name]: "v" });
  }
});

Deno.test("elem refuses control characters and lone surrogates in text and attributes", () => {
  const bad = [
    "\u0000",
    "a\u0001",
    "\u0008",
    "\u000b",
    "\u000c",
    "\u001f",
    "\ud800",
    "x\udc00y",
    "\ufffe",
    "\uffff",
  ];
  for (const s of bad) {
    assert.equal(isValidXmlText(s), false, JSON.stringify(s));
    assert.throws(() => elem("a", {}, [s]), XmlBuildError);
    assert.throws(() => elem("a", { v: s }), XmlBuildError);
    assert.throws(() => elem("a", { xmlns: s }), XmlBuildError);
    assert.throws(() => withAttrs(elem("a"), { v: s }), XmlBuildError);
  }
  const good = ["", "\t\n\r", "caf\u00e9", "\u4e2d", "\u{1F600}", "\ud83d\ude00", "\ue000\ufffd"];
  for (const s of good) {
    assert.equal(isValidXmlText(s), true, JSON.stringify(s));
    assert.deepEqual(elem("a", { v: s }, [s]).children, [s]);
  }
});

Deno.test("elem drops undefined attributes and false/undefined children, takes xmlns apart", () => {
  const el = elem("iq", { xmlns: NS_CLIENT, type: "get", id: undefined }, [
    undefined,
    false,
    "t",
    elem("ping", { xmlns: "urn:xmpp:ping" }),
  ]);
  assert.deepEqual(el, {
    name: "iq",
    xmlns: NS_CLIENT,
    attrs: { type: "get" },
    children: ["t", { name: "ping", xmlns: "urn:xmpp:ping", attrs: {}, children: [] }],
  });
});

Deno.test("children built without a namespace inherit the parent's, recursively", () => {
  const query = elem("query", { xmlns: "jabber:iq:roster" }, [
    elem("item", { jid: "a@b" }, [elem("group", {}, ["friends"])]),
    elem("other", { xmlns: "urn:other" }, [elem("inner")]),
  ]);
  const item = query.children[0] as Element;
  assert.equal(item.xmlns, "jabber:iq:roster");
  assert.equal((item.children[0] as Element).xmlns, "jabber:iq:roster");
  const other = query.children[1] as Element;
  assert.equal(other.xmlns, "urn:other");
  // The inner element took its own parent's namespace when that was built.
  assert.equal((other.children[0] as Element).xmlns, "urn:other");
  // A detached element without a namespace keeps "" until it is placed.
  assert.equal(elem("item").xmlns, "");
  const msg = stanza("message", { to: "a@b", type: "chat" }, [elem("body", {}, ["hi"])]);
  assert.equal(msg.xmlns, NS_CLIENT);
  assert.equal((msg.children[0] as Element).xmlns, NS_CLIENT);
  assert.deepEqual(msg.attrs, { to: "a@b", type: "chat" });
});

Deno.test("escaping of text and attribute values", () => {
  assert.equal(escapeText("a & b < c > d \" ' \t\n"), "a &amp; b &lt; c &gt; d \" ' \t\n");
  assert.equal(escapeText("]]>"), "]]&gt;");
  assert.equal(escapeText("a\r\nb"), "a&#13;\nb");
  assert.equal(escapeText("plain"), "plain");
  assert.equal(
    escapeAttr(`&<>"'\t\n\r`),
    "&amp;&lt;&gt;&quot;&apos;&#9;&#10;&#13;",
  );
  assert.equal(escapeAttr("plain value"), "plain value");
  const el = elem("x", { xmlns: "urn:x", a: `say "hi" & 'bye'`, b: "1\t2\n3" }, ["<b>&amp;</b>"]);
  assert.equal(
    serialize(el, "urn:x"),
    `<x a="say &quot;hi&quot; &amp; &apos;bye&apos;" b="1&#9;2&#10;3">&lt;b&gt;&amp;amp;&lt;/b&gt;</x>`,
  );
});

Deno.test("serialize declares a namespace only where it differs from the parent's", () => {
  const msg = stanza("message", { to: "a@b" }, [
    elem("body", {}, ["hi"]),
    elem("request", { xmlns: "urn:xmpp:receipts" }),
    elem("x", { xmlns: "jabber:x:data", type: "form" }, [elem("field", { var: "v" })]),
  ]);
  assert.equal(
    serialize(msg),
    '<message to="a@b"><body>hi</body><request xmlns="urn:xmpp:receipts"/>' +
      '<x xmlns="jabber:x:data" type="form"><field var="v"/></x></message>',
  );
  // Written into a server-to-server stream, the client namespace must be declared.
  assert.equal(
    serialize(stanza("presence"), "jabber:server"),
    '<presence xmlns="jabber:client"/>',
  );
  // A detached element without a namespace takes whatever is in scope.
  assert.equal(serialize(elem("item", { jid: "a" }), "jabber:iq:roster"), '<item jid="a"/>');
  assert.equal(serialize(elem("a", {}, [elem("b")]), "urn:p"), "<a><b/></a>");
});

Deno.test("an element in no namespace keeps its xmlns='' under a default namespace", () => {
  const msg = stanza("message", { to: "a@b" }, [
    elem("x", { xmlns: NO_NAMESPACE }, [elem("y"), elem("z", { xmlns: "urn:z" }, [elem("w")])]),
    elem("body", {}, ["hi"]),
  ]);
  const x = msg.children[0] as Element;
  // Neither the builder nor the parent's namespace claims it, nor its unqualified children.
  assert.equal(x.xmlns, NO_NAMESPACE);
  assert.equal((x.children[0] as Element).xmlns, NO_NAMESPACE);
  assert.equal(((x.children[1] as Element).children[0] as Element).xmlns, "urn:z");
  assert.equal((msg.children[1] as Element).xmlns, NS_CLIENT);
  assert.equal(
    serialize(msg),
    '<message to="a@b"><x xmlns=""><y/><z xmlns="urn:z"><w/></z></x><body>hi</body></message>',
  );
  // An element already in no namespace (built elsewhere, or parsed) is left there when a new
  // parent adopts it.
  const adopted = stanza("message", {}, [x]);
  assert.equal((adopted.children[0] as Element).xmlns, NO_NAMESPACE);
  assert.equal(child(adopted, "x", NO_NAMESPACE), x);
  // Where no default namespace is in scope, there is nothing to undeclare.
  assert.equal(serialize(x, ""), '<x><y/><z xmlns="urn:z"><w/></z></x>');
  assert.equal(serialize(elem("x", { xmlns: NO_NAMESPACE }), ""), "<x/>");
  assert.equal(serialize(elem("x", { xmlns: NO_NAMESPACE }), NO_NAMESPACE), "<x/>");
  // A namespaced element inside one in no namespace declares its own again.
  assert.equal(
    serialize(elem("x", { xmlns: NO_NAMESPACE }, [elem("q", { xmlns: NS_CLIENT })])),
    '<x xmlns=""><q xmlns="jabber:client"/></x>',
  );
  // The marker is no text XML could carry, so it cannot be sent as a namespace.
  assert.equal(isValidXmlText(NO_NAMESPACE), false);
});

Deno.test("child, childElements, text and childText", () => {
  const iq = stanza("iq", { type: "result" }, [
    "lead ",
    elem("query", { xmlns: "jabber:iq:version" }, [
      elem("name", {}, ["srv"]),
      elem("version", {}, ["1", ".", "0"]),
      elem("os", {}, []),
    ]),
    elem("error", {}, ["x"]),
    " tail",
  ]);
  const query = child(iq, "query", "jabber:iq:version");
  assert.ok(query !== undefined);
  assert.equal(child(iq, "query"), undefined, "the default namespace is the parent's");
  assert.equal(child(iq, "error")?.name, "error");
  assert.equal(child(iq, "missing"), undefined);
  assert.equal(childText(query, "name"), "srv");
  assert.equal(childText(query, "version"), "1.0");
  assert.equal(childText(query, "os"), "");
  assert.equal(childText(query, "missing"), undefined);
  assert.equal(childText(query, "name", "urn:other"), undefined);
  assert.equal(text(iq), "lead  tail");
  assert.deepEqual(childElements(iq).map((e) => e.name), ["query", "error"]);
  assert.deepEqual(childElements(iq, NS_CLIENT).map((e) => e.name), ["error"]);
  assert.deepEqual(childElements(query).map((e) => e.name), ["name", "version", "os"]);
});

Deno.test("withAttrs and withChildren copy, never mutate", () => {
  const msg = stanza("message", { to: "a@b", from: "c@d", type: "chat" }, ["x"]);
  const swapped = withAttrs(msg, { to: "c@d", from: "a@b", type: undefined, id: "1" });
  assert.deepEqual(swapped.attrs, { to: "c@d", from: "a@b", id: "1" });
  assert.deepEqual(msg.attrs, { to: "a@b", from: "c@d", type: "chat" });
  assert.equal(swapped.children, msg.children);
  assert.throws(() => withAttrs(msg, { "bad name": "v" }), XmlBuildError);
  // A peer's `__proto__` attribute (the parser keeps attributes in null-prototype records) is
  // copied as data, never as a prototype.
  const proto: Element = {
    ...elem("x"),
    attrs: Object.assign(Object.create(null), { ["__proto__"]: "p" }),
  };
  const copied = withAttrs(proto, { id: "1" });
  assert.deepEqual(Object.keys(copied.attrs), ["__proto__", "id"]);
  assert.equal(copied.attrs["__proto__"], "p");
  assert.equal(Object.getPrototypeOf(copied.attrs), Object.prototype);
  // Attribute names that are also Object.prototype's keep their values.
  const odd = elem("x", { constructor: "c", toString: "t", __proto__x: "p" });
  assert.deepEqual(withAttrs(odd, { id: "1" }).attrs, {
    constructor: "c",
    toString: "t",
    __proto__x: "p",
    id: "1",
  });
  assert.deepEqual(withAttrs(odd, { toString: undefined }).attrs, {
    constructor: "c",
    __proto__x: "p",
  });
  const replaced = withChildren(msg, [elem("body", { xmlns: NS_CLIENT }, ["y"])]);
  assert.equal(childText(replaced, "body"), "y");
  assert.deepEqual(msg.children, ["x"]);
  assert.equal(replaced.attrs, msg.attrs);
});
