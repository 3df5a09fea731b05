import assert from "node:assert/strict";
import {
  createStreamParser,
  type ParseErrorCondition,
  type ParseEvent,
  type StreamParser,
} from "../../lib/xml/parser.ts";
import { type Element, NO_NAMESPACE, serialize } from "../../lib/xml/element.ts";
import { NS_STREAMS } from "../../lib/xmpp/namespaces.ts";

const enc = new TextEncoder();
const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='" + NS_STREAMS +
  "' to='example.com' version='1.0' xml:lang='en' id='s1'>";

function bytes(s: string | Uint8Array): Uint8Array {
  return typeof s === "string" ? enc.encode(s) : s;
}

function feedAll(p: StreamParser, chunks: readonly (string | Uint8Array)[]): ParseEvent[] {
  const events: ParseEvent[] = [];
  for (const c of chunks) events.push(...p.push(bytes(c)));
  return events;
}

function parse(
  chunks: readonly (string | Uint8Array)[],
  maxStanzaBytes = 65536,
  maxDepth?: number,
): ParseEvent[] {
  return feedAll(createStreamParser({ maxStanzaBytes, maxDepth }), chunks);
}

function stanzas(events: readonly ParseEvent[]): Element[] {
  const out: Element[] = [];
  for (const e of events) if (e.kind === "stanza") out.push(e.stanza);
  return out;
}

function errorOf(events: readonly ParseEvent[]): ParseErrorCondition | undefined {
  const last = events[events.length - 1];
  return last?.kind === "error" ? last.condition : undefined;
}

/** A deterministic PRNG (mulberry32), so a failing split can be reproduced. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// A small stream touching every feature that a split could break: the XML declaration,
// namespaces, prefixed elements and attributes, entities and character references,
// multibyte UTF-8 (2, 3 and 4 bytes), CDATA, CRLF, whitespace keepalives, the end tag.
const SMALL_STREAM = "<?xml version='1.0'?>" + HEADER +
  "<message to='jüliet@example.com' type='chat' xmlns:x='urn:x' x:hint='ü'>" +
  "<body>caf\u00e9 &amp; \u4e2d\u6587 \u{1F600}&#x1F44D;&lt;&#233;</body>" +
  "<x:thread>t\r\n1</x:thread><![CDATA[<raw>]]></message>\r\n \t" +
  "<iq\r\n type='result'\r id='r'><query xmlns='jabber:iq:roster'><item jid='a@b' name='\u00c5sa'/>" +
  "</query></iq> </stream:stream>";

function largeStream(): string {
  const parts = [HEADER];
  for (let i = 0; i < 60; i++) {
    parts.push(
      `<message from='u${i}@example.com/r' to='v@example.com' type='chat' id='m${i}'>` +
        `<body>Nachricht ${i}: \u00fc\u00f6\u00e4 \u4f60\u597d \u{1F389} &amp; &quot;q&quot;</body>` +
        `<request xmlns='urn:xmpp:receipts'/></message>`,
      "\n",
      `<presence from='u${i}@example.com/r'><c xmlns='http://jabber.org/protocol/caps' ` +
        `hash='sha-1' node='n' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>` +
        `<x xmlns='vcard-temp:x:update'><photo>${"ab".repeat(20)}</photo></x></presence>`,
    );
  }
  parts.push("</stream:stream>");
  return parts.join("");
}

Deno.test("stream header without an XML declaration", () => {
  const events = parse([HEADER]);
  assert.deepEqual(events, [{
    kind: "stream-open",
    name: "stream",
    prefix: "stream",
    xmlns: NS_STREAMS,
    contentXmlns: "jabber:client",
    attrs: { to: "example.com", version: "1.0", "xml:lang": "en", id: "s1" },
  }]);
});

Deno.test("stream header with an XML declaration", () => {
  const events = parse(['<?xml version="1.0" encoding="UTF-8"?>\n' + HEADER]);
  assert.equal(events.length, 1);
  assert.equal(events[0].kind, "stream-open");
});

Deno.test("a UTF-8 byte order mark is accepted and counts toward the header only", () => {
  // Longer than the header, so that only the stanza can hit the limit.
  const stanza = "<message><body>" + "\u00e9".repeat(200) + "</body></message>";
  const size = enc.encode(stanza).length;
  const bom = new Uint8Array([0xef, 0xbb, 0xbf]);
  const all = new Uint8Array([...bom, ...enc.encode(HEADER + stanza)]);
  for (const limit of [size, size - 1]) {
    for (const cuts of [[2, 3], [1], [all.length]]) {
      const chunks: Uint8Array[] = [];
      let from = 0;
      for (const c of [...cuts, all.length]) {
        chunks.push(all.subarray(from, c));
        from = c;
      }
      const events = parse(chunks, limit);
      assert.equal(events[0].kind, "stream-open");
      assert.equal(errorOf(events), limit === size ? undefined : "policy-violation");
      assert.equal(stanzas(events).length, limit === size ? 1 : 0);
    }
  }
  const header = new Uint8Array([...bom, ...enc.encode(HEADER)]);
  assert.equal(parse([header], header.length)[0].kind, "stream-open");
  assert.equal(errorOf(parse([header], header.length - 1)), "policy-violation");
});

Deno.test("unprefixed root and a root without a default namespace are reported as sent", () => {
  const [open] = parse([`<stream xmlns='${NS_STREAMS}' to='a'>`]);
  assert.deepEqual(open, {
    kind: "stream-open",
    name: "stream",
    prefix: "",
    xmlns: NS_STREAMS,
    contentXmlns: NS_STREAMS,
    attrs: { to: "a" },
  });
  const [other] = parse([`<stream:stream xmlns:stream='urn:wrong'>`]);
  assert.ok(other.kind === "stream-open");
  assert.equal(other.xmlns, "urn:wrong");
  assert.equal(other.contentXmlns, "");
});

Deno.test("several stanzas in one chunk, keepalives ignored, end tag closes", () => {
  const events = parse([
    HEADER + " <presence/>\n<message to='a@b'><body>hi</body></message>\t<iq type='get' id='1'/>" +
    "  </stream:stream>",
  ]);
  assert.deepEqual(events.map((e) => e.kind), [
    "stream-open",
    "stanza",
    "stanza",
    "stanza",
    "stream-close",
  ]);
  assert.deepEqual(stanzas(events), [
    { name: "presence", xmlns: "jabber:client", attrs: {}, children: [] },
    {
      name: "message",
      xmlns: "jabber:client",
      attrs: { to: "a@b" },
      children: [{ name: "body", xmlns: "jabber:client", attrs: {}, children: ["hi"] }],
    },
    { name: "iq", xmlns: "jabber:client", attrs: { type: "get", id: "1" }, children: [] },
  ]);
});

Deno.test("entities, character references, CDATA and whitespace inside stanzas", () => {
  const [, st] = parse([
    HEADER +
    "<message><body> a &lt;b&gt; &amp;&apos;&quot; &#x4e2d;&#25991; \n x<![CDATA[ <y> ]]>z </body></message>",
  ]);
  assert.ok(st.kind === "stanza");
  const body = st.stanza.children[0] as Element;
  assert.deepEqual(body.children, [" a <b> &'\" \u4e2d\u6587 \n x <y> z "]);
});

Deno.test("namespaces are resolved", () => {
  const [, st] = parse([
    HEADER +
    "<iq type='result' xmlns:p='urn:p'>" +
    "<query xmlns='jabber:iq:roster'><item jid='a@b'><group>g</group></item></query>" +
    "<p:items node='n' p:flag='1' xml:lang='de'><p:item id='1'><entry xmlns='urn:e'/></p:item></p:items>" +
    "<q:other xmlns:q='urn:q' q:x='2'/>" +
    "</iq>",
  ]);
  assert.ok(st.kind === "stanza");
  const iq = st.stanza;
  assert.equal(iq.xmlns, "jabber:client");
  assert.deepEqual(iq.attrs, { type: "result" });
  const [query, items, other] = iq.children as Element[];
  assert.equal(query.xmlns, "jabber:iq:roster");
  const item = query.children[0] as Element;
  assert.equal(item.xmlns, "jabber:iq:roster");
  assert.equal((item.children[0] as Element).xmlns, "jabber:iq:roster");
  assert.equal(items.name, "items");
  assert.equal(items.xmlns, "urn:p");
  // The prefix declared on an ancestor is added, so the element serializes on its own.
  assert.deepEqual(items.attrs, { node: "n", "p:flag": "1", "xml:lang": "de", "xmlns:p": "urn:p" });
  const pItem = items.children[0] as Element;
  assert.deepEqual(pItem, {
    name: "item",
    xmlns: "urn:p",
    attrs: { id: "1" },
    children: [{ name: "entry", xmlns: "urn:e", attrs: {}, children: [] }],
  });
  assert.deepEqual(other, {
    name: "other",
    xmlns: "urn:q",
    attrs: { "q:x": "2", "xmlns:q": "urn:q" },
    children: [],
  });
});

Deno.test("xmlns='' puts an element in no namespace, and it is written back so", () => {
  const sent = "<message to='b@example.com'><x xmlns=''><y a='1'/>" +
    "<z xmlns='urn:z'><w xmlns=''/><v/></z></x><body>hi</body></message>";
  const [, st] = parse([HEADER + sent]);
  assert.ok(st.kind === "stanza");
  const msg = st.stanza;
  assert.equal(msg.xmlns, "jabber:client");
  const [x, body] = msg.children as Element[];
  assert.deepEqual(x, {
    name: "x",
    xmlns: NO_NAMESPACE,
    attrs: {},
    children: [
      { name: "y", xmlns: NO_NAMESPACE, attrs: { a: "1" }, children: [] },
      {
        name: "z",
        xmlns: "urn:z",
        attrs: {},
        children: [
          { name: "w", xmlns: NO_NAMESPACE, attrs: {}, children: [] },
          { name: "v", xmlns: "urn:z", attrs: {}, children: [] },
        ],
      },
    ],
  });
  assert.equal(body.xmlns, "jabber:client");
  const text = serialize(msg);
  assert.equal(
    text,
    '<message to="b@example.com"><x xmlns=""><y a="1"/>' +
      '<z xmlns="urn:z"><w xmlns=""/><v/></z></x><body>hi</body></message>',
  );
  assert.deepEqual(stanzas(parse([HEADER + text])), [msg]);
  // A stanza itself in no namespace (a stream without a default namespace) says so too.
  const [, bare] = parse([`<stream:stream xmlns:stream='${NS_STREAMS}'><message><x/></message>`]);
  assert.ok(bare.kind === "stanza");
  assert.equal(bare.stanza.xmlns, NO_NAMESPACE);
  assert.equal(serialize(bare.stanza), '<message xmlns=""><x/></message>');
  assert.equal(serialize(bare.stanza, ""), "<message><x/></message>");
});

Deno.test("split invariance: a small stream cut at every byte position", () => {
  const all = enc.encode(SMALL_STREAM);
  const whole = parse([all]);
  assert.deepEqual(whole.map((e) => e.kind), ["stream-open", "stanza", "stanza", "stream-close"]);
  const msg = stanzas(whole)[0];
  assert.equal(msg.attrs.to, "jüliet@example.com");
  assert.deepEqual((msg.children[0] as Element).children, [
    "caf\u00e9 & \u4e2d\u6587 \u{1F600}\u{1F44D}<\u00e9",
  ]);
  assert.deepEqual((msg.children[1] as Element).children, ["t\n1"]);
  assert.deepEqual(stanzas(whole)[1].attrs, { type: "result", id: "r" });
  for (let i = 0; i <= all.length; i++) {
    assert.deepEqual(parse([all.subarray(0, i), all.subarray(i)]), whole, `cut at ${i}`);
  }
  for (let i = 0; i + 3 <= all.length; i += 3) {
    assert.deepEqual(
      parse([
        all.subarray(0, i),
        all.subarray(i, i + 1),
        all.subarray(i + 1, i + 3),
        all.subarray(i + 3),
      ]),
      whole,
      `cuts at ${i}, ${i + 1}, ${i + 3}`,
    );
  }
  const oneByOne: Uint8Array[] = [];
  for (let i = 0; i < all.length; i++) oneByOne.push(all.subarray(i, i + 1));
  assert.deepEqual(parse(oneByOne), whole);
});

Deno.test("split invariance: a larger stream in random chunk sizes", () => {
  const all = enc.encode(largeStream());
  assert.ok(all.length > 20000);
  const whole = parse([all]);
  assert.equal(stanzas(whole).length, 120);
  assert.equal(whole[whole.length - 1].kind, "stream-close");
  const next = rng(42);
  for (let round = 0; round < 40; round++) {
    const maxChunk = [2, 17, 300, 5000, 20000][round % 5];
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < all.length;) {
      const n = 1 + Math.floor(next() * maxChunk);
      chunks.push(all.subarray(i, i + n));
      i += n;
    }
    assert.deepEqual(parse(chunks), whole, `round ${round}`);
  }
});

function expectError(
  chunks: readonly (string | Uint8Array)[],
  condition: ParseErrorCondition,
  maxStanzaBytes = 65536,
): void {
  const events = parse(chunks, maxStanzaBytes);
  assert.equal(errorOf(events), condition, JSON.stringify(events));
  assert.equal(events.filter((e) => e.kind === "error").length, 1);
}

Deno.test("not-well-formed: malformed XML", () => {
  expectError([HEADER + "<message></iq>"], "not-well-formed");
  expectError([HEADER + "<message><body>x</message>"], "not-well-formed");
  expectError([HEADER + "<message a='1' a='2'/>"], "not-well-formed");
  expectError([HEADER + "<message a=1/>"], "not-well-formed");
  expectError([HEADER + "<message><body>a < b</body></message>"], "not-well-formed");
  expectError(
    ["<stream:stream xmlns:stream='" + NS_STREAMS + "'><a/></stream:other>"],
    "not-well-formed",
  );
  // A stanza closed by the wrong end tag is never reported, only the error.
  for (
    const bad of ["<message></iq>", "<message><body/></stream:stream>", "<iq></stream:stream>"]
  ) {
    const events = parse([HEADER + bad]);
    assert.deepEqual(events.map((e) => e.kind), ["stream-open", "error"], bad);
    assert.equal(errorOf(events), "not-well-formed");
  }
});

Deno.test("not-well-formed: invalid characters and entities", () => {
  expectError([HEADER + "<message><body>\u0001</body></message>"], "not-well-formed");
  expectError([HEADER + "<message><body>&#1;</body></message>"], "not-well-formed");
  expectError([HEADER + "<message><body>&nbsp;</body></message>"], "not-well-formed");
  expectError([HEADER + "<message><body>&#xD800;</body></message>"], "not-well-formed");
  expectError([HEADER + "<message to='\u0002'/>"], "not-well-formed");
});

Deno.test("not-well-formed: invalid UTF-8, also when split across chunks", () => {
  const head = enc.encode(HEADER + "<message><body>");
  expectError([head, new Uint8Array([0xff]), "</body></message>"], "not-well-formed");
  // A truncated three-byte sequence followed by ASCII.
  expectError([head, new Uint8Array([0xe4, 0xb8]), "a</body></message>"], "not-well-formed");
  expectError([head, new Uint8Array([0xe4]), new Uint8Array([0x41])], "not-well-formed");
  // An overlong encoding of "/".
  expectError([head, new Uint8Array([0xc0, 0xaf])], "not-well-formed");
  // An encoded surrogate.
  expectError([head, new Uint8Array([0xed, 0xa0, 0x80])], "not-well-formed");
});

// Found by the fuzzer (tests/xml/_fuzz.ts): each gave different events for the same input cut
// differently.
Deno.test("split invariance at errors: the first problem in the stream wins, however cut", () => {
  const cases: [Uint8Array, ParseErrorCondition, number][] = [
    // Invalid UTF-8 after a complete stanza: the stanza is still read.
    [
      enc.encode(HEADER + "<message><body>\u00fc</body></message> <a>\u{1F600}"),
      "not-well-formed",
      1,
    ],
    // A tag name ended by `<`: malformed markup, not text between stanzas.
    [enc.encode(HEADER + "<presence/><aut6l0</auth>"), "not-well-formed", 1],
    // Text between stanzas before malformed markup: the text is the first problem.
    [enc.encode(HEADER + "<presence/>AGp1bGll</auth>"), "bad-format", 1],
  ];
  cases[0][0] = Uint8Array.from([...cases[0][0], 0xff, ...enc.encode("</a>")]);
  for (const [input, condition, count] of cases) {
    const whole = parse([input]);
    assert.equal(errorOf(whole), condition, JSON.stringify(whole));
    assert.equal(stanzas(whole).length, count);
    for (let cut = 1; cut < input.length; cut++) {
      const events = parse([input.subarray(0, cut), input.subarray(cut)]);
      assert.deepEqual(events, whole, `cut at ${cut}`);
    }
  }
});

Deno.test("restricted-xml: DOCTYPE, comments, processing instructions", () => {
  expectError(["<!DOCTYPE stream>" + HEADER], "restricted-xml");
  expectError(["<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'b'>]>" + HEADER], "restricted-xml");
  expectError(["<!-- hi -->" + HEADER], "restricted-xml");
  expectError(["<?xml-stylesheet href='a'?>" + HEADER], "restricted-xml");
  expectError([HEADER + "<!-- keepalive -->"], "restricted-xml");
  expectError([HEADER + "<message><!-- c --></message>"], "restricted-xml");
  expectError([HEADER + "<message><?pi data?></message>"], "restricted-xml");
  expectError([HEADER + "<?pi?>"], "restricted-xml");
  expectError([HEADER + "<message><!DOCTYPE x></message>"], "restricted-xml");
});

Deno.test("bad-namespace-prefix: unbound prefixes on elements and attributes", () => {
  expectError([HEADER + "<foo:message/>"], "bad-namespace-prefix");
  expectError([HEADER + "<message foo:a='1'/>"], "bad-namespace-prefix");
  expectError([HEADER + "<message><x:y/></message>"], "bad-namespace-prefix");
  expectError(["<stream:stream xmlns='jabber:client'>"], "bad-namespace-prefix");
});

Deno.test("bad-format: text directly inside the stream", () => {
  expectError([HEADER + "hello<message/>"], "bad-format");
  expectError([HEADER + "<message/>x<message/>"], "bad-format");
  expectError([HEADER + " &amp; "], "bad-format");
  expectError([HEADER + "<![CDATA[x]]>"], "bad-format");
  expectError([HEADER + "<message/> x </stream:stream>"], "bad-format");
  // Detected while the text is still arriving, before any markup follows it.
  const p = createStreamParser({ maxStanzaBytes: 65536 });
  p.push(enc.encode(HEADER + "<presence/>  "));
  assert.equal(errorOf(p.push(enc.encode("junk"))), "bad-format");
});

Deno.test("whitespace keepalives are not counted as stanza bytes", () => {
  const p = createStreamParser({ maxStanzaBytes: 200 });
  assert.equal(p.push(enc.encode(HEADER))[0].kind, "stream-open");
  const space = enc.encode(" \n".repeat(5000));
  for (let i = 0; i < 100; i++) assert.deepEqual(p.push(space), []);
  const events = p.push(enc.encode("<presence/>"));
  assert.deepEqual(events, [{
    kind: "stanza",
    stanza: { name: "presence", xmlns: "jabber:client", attrs: {}, children: [] },
  }]);
});

Deno.test("policy-violation: the size limit fires before the oversized stanza is complete", () => {
  const limit = 100_000;
  const p = createStreamParser({ maxStanzaBytes: limit });
  p.push(enc.encode(HEADER + "<message to='a@b'><body>"));
  const chunk = enc.encode("a".repeat(1024));
  let pushed = 0;
  let condition: ParseErrorCondition | undefined;
  // Up to 10 MiB, but it must stop long before.
  while (pushed < 10 * 1024 * 1024 && condition === undefined) {
    condition = errorOf(p.push(chunk));
    pushed += chunk.length;
  }
  assert.equal(condition, "policy-violation");
  assert.ok(pushed > limit - 1024, `fired early at ${pushed}`);
  assert.ok(pushed <= limit + 4096 + 1024, `fired late at ${pushed}`);
  assert.deepEqual(p.push(enc.encode("</body></message>")), []);
});

Deno.test("policy-violation: a 10 MiB stanza pushed in 64 KiB chunks fails on the second chunk", () => {
  const p = createStreamParser({ maxStanzaBytes: 100_000 });
  p.push(enc.encode(HEADER));
  const chunk = enc.encode("<message><body>" + "x".repeat(65536 - 15));
  assert.deepEqual(p.push(chunk), []);
  assert.equal(errorOf(p.push(enc.encode("y".repeat(65536)))), "policy-violation");
});

Deno.test("policy-violation: the limit counts UTF-8 bytes, exactly", () => {
  const before = "<message><body>\u4e2d\u{1F600}\u00e9</body></message>";
  const make = (n: number) => {
    const open = "<message><body>";
    const close = "</body></message>";
    const fixed = enc.encode(open + close + "\u{1F600}").length;
    // n bytes in total: "中" is 3 bytes, "é" 2, "a" 1.
    const rest = n - fixed;
    const cjk = Math.floor(rest / 3);
    return open + "\u{1F600}" + "\u4e2d".repeat(cjk) + "a".repeat(rest - 3 * cjk) + close;
  };
  for (const limit of [200, 5000, 20000]) {
    const fits = make(limit);
    const over = make(limit + 1);
    assert.equal(enc.encode(fits).length, limit);
    for (const cut of [1, 7, 4096, 1 << 20]) {
      const chunks = (s: string) => {
        const b = enc.encode(HEADER + before + " " + s + "<presence/>");
        const out: Uint8Array[] = [];
        for (let i = 0; i < b.length; i += cut) out.push(b.subarray(i, i + cut));
        return out;
      };
      const ok = feedAll(createStreamParser({ maxStanzaBytes: limit }), chunks(fits));
      assert.equal(errorOf(ok), undefined, `limit ${limit} cut ${cut}`);
      assert.equal(stanzas(ok).length, 3);
      const bad = feedAll(createStreamParser({ maxStanzaBytes: limit }), chunks(over));
      assert.equal(errorOf(bad), "policy-violation", `limit ${limit} cut ${cut}`);
      assert.equal(stanzas(bad).length, 1);
    }
  }
});

Deno.test("policy-violation: the stream header is limited too", () => {
  expectError(["<?xml version='1.0'?>" + HEADER], "policy-violation", 100);
  expectError(
    [HEADER.slice(0, -1) + " pad='" + "p".repeat(10000) + "'>"],
    "policy-violation",
    1000,
  );
  assert.equal(parse([HEADER], enc.encode(HEADER).length)[0].kind, "stream-open");
  expectError([HEADER], "policy-violation", enc.encode(HEADER).length - 1);
});

Deno.test("setMaxStanzaBytes raises the limit for later stanzas", () => {
  const big = "<message><body>" + "z".repeat(3000) + "</body></message>";
  const p = createStreamParser({ maxStanzaBytes: 1000 });
  p.push(enc.encode(HEADER + "<presence/>"));
  p.setMaxStanzaBytes(10000);
  assert.equal(stanzas(p.push(enc.encode(big))).length, 1);
  p.setMaxStanzaBytes(1000);
  assert.equal(errorOf(p.push(enc.encode(big))), "policy-violation");
});

Deno.test("policy-violation: element depth within a stanza", () => {
  const nest = (n: number) => "<a>".repeat(n - 1) + "</a>".repeat(n - 1);
  const ok = parse([HEADER + "<message>" + nest(4) + "</message>"], 65536, 4);
  assert.equal(errorOf(ok), undefined);
  assert.equal(stanzas(ok).length, 1);
  expectErrorDepth(HEADER + "<message>" + nest(5) + "</message>", 4);
  // The default cap is 32.
  assert.equal(stanzas(parse([HEADER + "<message>" + nest(32) + "</message>"])).length, 1);
  assert.equal(
    errorOf(parse([HEADER + "<message>" + nest(33) + "</message>"])),
    "policy-violation",
  );
});

function expectErrorDepth(s: string, maxDepth: number): void {
  assert.equal(errorOf(parse([s], 65536, maxDepth)), "policy-violation");
}

Deno.test("the parser is dead after an error and after the stream end", () => {
  const p = createStreamParser({ maxStanzaBytes: 65536 });
  const events = p.push(enc.encode(HEADER + "<presence/><message></iq><presence/>"));
  assert.deepEqual(events.map((e) => e.kind), ["stream-open", "stanza", "error"]);
  assert.deepEqual(p.push(enc.encode("<presence/>")), []);
  assert.deepEqual(p.push(enc.encode("</stream:stream>")), []);

  const q = createStreamParser({ maxStanzaBytes: 65536 });
  const closed = q.push(enc.encode(HEADER + "</stream:stream><presence/>"));
  assert.deepEqual(closed.map((e) => e.kind), ["stream-open", "stream-close"]);
  assert.deepEqual(q.push(enc.encode("<presence/>")), []);

  // What follows the end tag is not parsed at all, so it cannot turn into an error.
  const r = createStreamParser({ maxStanzaBytes: 65536 });
  const junk = r.push(enc.encode(HEADER + "<presence/></stream:stream>junk<!-- c -->"));
  assert.deepEqual(junk.map((e) => e.kind), ["stream-open", "stanza", "stream-close"]);
  assert.deepEqual(r.push(enc.encode(" ")), []);
});

Deno.test("stanzas before an error in the same chunk are still returned", () => {
  const events = parse([HEADER + "<presence/><iq id='1'/><!-- x -->"]);
  assert.deepEqual(events.map((e) => e.kind), ["stream-open", "stanza", "stanza", "error"]);
  assert.equal(errorOf(events), "restricted-xml");
});

Deno.test("serialize(parsed stanza) parses back to the same element", () => {
  const events = parse([
    enc.encode(SMALL_STREAM.replace(" </stream:stream>", "")),
    "<message xmlns:y='urn:y' y:a='&quot;&apos;&#9;&#10;&#13;&lt;&amp;' to='b'>" +
    "<body>line1&#13;\nline2 &amp; &lt;tag&gt; ]]&gt; \u{1F600}</body>" +
    "<y:z xmlns='urn:default' y:b='1'><inner/>text</y:z>" +
    "<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='n'>" +
    "<item id='1'><entry xmlns='http://www.w3.org/2005/Atom'><title>T</title></entry></item>" +
    "</items></event></message>",
  ]);
  const open = events[0];
  assert.ok(open.kind === "stream-open");
  const original = stanzas(events);
  assert.equal(original.length, 3);
  const text = original.map((s) => serialize(s, open.contentXmlns)).join("");
  const reparsed = stanzas(parse([HEADER + text]));
  assert.deepEqual(reparsed, original);
  const attr = original[2].attrs["y:a"];
  assert.equal(attr, "\"'\t\n\r<&");
});

/** Like parse(), but lets go of the XML parser after every push, as an idle connection does. */
function parseCompacting(chunks: readonly (string | Uint8Array)[], maxStanzaBytes = 65536) {
  const p = createStreamParser({ maxStanzaBytes });
  const events: ParseEvent[] = [];
  for (const c of chunks) {
    events.push(...p.push(bytes(c)));
    p.compact();
  }
  return events;
}

Deno.test("compact: the same events when compacted after every chunk", () => {
  const small = enc.encode(SMALL_STREAM);
  const whole = parse([small]);
  for (let i = 0; i <= small.length; i++) {
    assert.deepEqual(parseCompacting([small.subarray(0, i), small.subarray(i)]), whole, `cut ${i}`);
  }
  const oneByOne: Uint8Array[] = [];
  for (let i = 0; i < small.length; i++) oneByOne.push(small.subarray(i, i + 1));
  assert.deepEqual(parseCompacting(oneByOne), whole);
  const large = enc.encode(largeStream());
  const largeWhole = parse([large]);
  const next = rng(7);
  for (let round = 0; round < 20; round++) {
    const maxChunk = [2, 17, 300, 5000][round % 4];
    const chunks: Uint8Array[] = [];
    for (let i = 0; i < large.length;) {
      const n = 1 + Math.floor(next() * maxChunk);
      chunks.push(large.subarray(i, i + n));
      i += n;
    }
    assert.deepEqual(parseCompacting(chunks), largeWhole, `round ${round}`);
  }
});

Deno.test("compact: limits, namespaces and the root end tag still hold after a replay", () => {
  // The header's attribute values need escaping to be replayed.
  const header = "<stream:stream xmlns='jabber:client' xmlns:stream='" + NS_STREAMS +
    "' to='a&amp;b&lt;&quot;' version='1.0'>";
  // Larger than the header, which the same limit applies to.
  const stanza = "<message><body>" + "\u4e2d\u00e9".repeat(100) + "</body></message>";
  const size = enc.encode(stanza).length;
  const ok = parseCompacting([header, "\r\n", stanza, " ", stanza, "</stream:stream>"], size);
  assert.deepEqual(ok.map((e) => e.kind), ["stream-open", "stanza", "stanza", "stream-close"]);
  assert.equal((ok[0] as { attrs: Record<string, string> }).attrs.to, 'a&b<"');
  const over = parseCompacting([header, stanza, " ", stanza], size - 1);
  assert.equal(errorOf(over), "policy-violation");
  assert.equal(stanzas(over).length, 0);
  assert.equal(
    errorOf(parseCompacting([header, "<presence/>", "</stream:wrong>"])),
    "not-well-formed",
  );
  assert.equal(errorOf(parseCompacting([header, "<presence/>", "text"])), "bad-format");
  assert.equal(errorOf(parseCompacting([header, "<x:y/>"])), "bad-namespace-prefix");
  assert.deepEqual(
    stanzas(parseCompacting([header, " ", "<stream:features/>"]))[0].xmlns,
    NS_STREAMS,
  );
});
