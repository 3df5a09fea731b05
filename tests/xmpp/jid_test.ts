import assert from "node:assert/strict";
import {
  bareJidOf,
  bareOf,
  formatJid,
  type Jid,
  normalizeJid,
  parseJid,
  prepDomainpart,
  prepLocalpart,
  prepResourcepart,
} from "../../lib/xmpp/jid.ts";

/** [input, expected normalised form] */
const VALID: ReadonlyArray<readonly [string, string]> = [
  // RFC 7622 §3.5, valid examples.
  ["juliet@example.com", "juliet@example.com"],
  ["juliet@example.com/foo", "juliet@example.com/foo"],
  ["juliet@example.com/foo bar", "juliet@example.com/foo bar"],
  ["juliet@example.com/foo@bar", "juliet@example.com/foo@bar"],
  ["foo\\20bar@example.com", "foo\\20bar@example.com"],
  ["fussball@example.com", "fussball@example.com"],
  ["fußball@example.com", "fußball@example.com"],
  ["π@example.com", "π@example.com"],
  ["Σ@example.com/foo", "σ@example.com/foo"],
  ["king@example.com/♚", "king@example.com/♚"],
  ["example.com", "example.com"],
  ["example.com/foobar", "example.com/foobar"],
  ["a.example.com/b@example.net", "a.example.com/b@example.net"],
  // Case folding of localpart and domainpart; resource case kept.
  ["Juliet@Example.COM/Balcony", "juliet@example.com/Balcony"],
  ["ÄÖÜ@EXAMPLE.com", "äöü@example.com"],
  ["ΟΔΟΣ@example.com", "οδος@example.com"],
  // Width mapping of the localpart (RFC 8265 §3.3.2).
  ["ｊｕｌｉｅｔ@example.com", "juliet@example.com"],
  // NFC: decomposed input composes.
  ["e\u0301@example.com/e\u0301", "\u00e9@example.com/\u00e9"],
  // Resource with slashes and non-ASCII spaces mapped to ASCII space.
  ["a@b.example/c/d", "a@b.example/c/d"],
  ["a@b.example/x\u00a0y", "a@b.example/x y"],
  // Emoji sequences keep their joiners; variation selectors are mapped to nothing
  // (stringprep table B.1, as Prosody): U+2764 U+FE0F becomes U+2764.
  ["a@b.example/👨‍👩‍👧 ❤️", "a@b.example/👨‍👩‍👧 \u2764"],
  ["a@b.example/\u{1F916}\uFE0F", "a@b.example/\u{1F916}"],
  ["a@b.example/x\uFE00y\uFE0E", "a@b.example/xy"],
  // Trailing dot of the domain.
  ["juliet@example.com./foo", "juliet@example.com/foo"],
  ["example.com.", "example.com"],
  // IDNA: A-labels turn into U-labels, U-labels are mapped.
  ["xn--fuball-cta.de", "fußball.de"],
  ["Fußball.DE", "fußball.de"],
  ["user@ＥＸＡＭＰＬＥ.com", "user@example.com"],
  ["user@bücher.example。", "user@bücher.example"],
  // IP literals.
  ["juliet@192.0.2.1/r", "juliet@192.0.2.1/r"],
  ["juliet@[2001:DB8::1]/r", "juliet@[2001:db8::1]/r"],
  ["[::1]", "[::1]"],
  ["[::ffff:192.0.2.1]", "[::ffff:192.0.2.1]"],
  ["[1:2:3:4:5:6:7:8]", "[1:2:3:4:5:6:7:8]"],
  ["localhost", "localhost"],
  // ASCII7 symbols other than the exclusions are allowed in a localpart.
  ["a!#$%()*+,-.;=?[\\]^_`{|}~z@example.com", "a!#$%()*+,-.;=?[\\]^_`{|}~z@example.com"],
  // CONTEXTO: Catalan middle dot between two l.
  ["col·lega@example.com", "col·lega@example.com"],
];

const INVALID: readonly string[] = [
  // RFC 7622 §3.5, invalid examples.
  '"juliet"@example.com',
  "foo bar@example.com",
  "juliet@example.com/ foo",
  "@example.com/",
  "henry\u2163@example.com",
  "♚@example.com",
  "juliet@",
  "/foobar",
  // Empty parts.
  "",
  "@example.com",
  "juliet@example.com/",
  "example.com/",
  "juliet@/foo",
  ".",
  // Localpart exclusions and disallowed code points.
  "a&b@example.com",
  "a'b@example.com",
  "a:b@example.com",
  "a<b@example.com",
  "a>b@example.com",
  "a＠b@example.com",
  "a\u3000b@example.com",
  "a\u0000b@example.com",
  "a\u00a0b@example.com",
  "a\u200bb@example.com",
  "a\u00adb@example.com",
  "ﬁ@example.com",
  "ǅ@example.com",
  "½@example.com",
  "a·b@example.com",
  "a\u0640b@example.com",
  "\u{1F600}@example.com",
  "\ud800@example.com",
  // Domainpart.
  "juliet@a@example.com",
  "juliet@exa mple.com",
  "juliet@exa_mple.com",
  "juliet@-example.com",
  "juliet@example-.com",
  "juliet@example..com",
  "juliet@example.com..",
  "juliet@bücher-.example",
  "juliet@xn--zz.com",
  "juliet@1.2.3",
  "juliet@256.0.0.1",
  "juliet@[::1",
  "juliet@[1::2::3]",
  "juliet@[1:2:3:4:5:6:7]",
  "juliet@[1:2:3:4:5:6:7:8:9]",
  "juliet@[12345::1]",
  "juliet@[192.0.2.1]",
  "juliet@" + "a".repeat(64) + ".com",
  // Resourcepart.
  "juliet@example.com/a\u0007b",
  "juliet@example.com/a\u2028b",
  "juliet@example.com/\ud800",
  // Nothing left once the variation selectors are mapped away, or a leading space then.
  "juliet@example.com/\uFE0F",
  "juliet@example.com/\uFE0F foo",
];

Deno.test("parseJid: valid JIDs normalise as expected", () => {
  for (const [input, expected] of VALID) {
    const jid = parseJid(input);
    assert.ok(jid, `should be valid: ${JSON.stringify(input)}`);
    assert.equal(formatJid(jid), expected, JSON.stringify(input));
    assert.equal(normalizeJid(input), expected, JSON.stringify(input));
    // Normalisation is idempotent.
    assert.equal(normalizeJid(expected), expected, JSON.stringify(expected));
  }
});

Deno.test("parseJid: invalid JIDs are refused", () => {
  for (const input of INVALID) {
    assert.equal(parseJid(input), undefined, `should be invalid: ${JSON.stringify(input)}`);
    assert.equal(normalizeJid(input), undefined, JSON.stringify(input));
    assert.equal(bareJidOf(input), undefined, JSON.stringify(input));
  }
});

Deno.test("parseJid: splits into parts per RFC 7622 §3.1", () => {
  const cases: ReadonlyArray<readonly [string, Jid]> = [
    ["juliet@example.com", { local: "juliet", domain: "example.com" }],
    ["example.com", { domain: "example.com" }],
    ["example.com/r", { domain: "example.com", resource: "r" }],
    ["Juliet@Example.com/R@s/t", { local: "juliet", domain: "example.com", resource: "R@s/t" }],
    ["a.example.com/b@example.net", { domain: "a.example.com", resource: "b@example.net" }],
  ];
  for (const [input, expected] of cases) {
    assert.deepEqual(parseJid(input), expected, input);
  }
});

Deno.test("bareOf and bareJidOf drop the resource only", () => {
  const cases: ReadonlyArray<readonly [string, string]> = [
    ["Juliet@Example.com/Balcony", "juliet@example.com"],
    ["juliet@example.com", "juliet@example.com"],
    ["example.com/foo", "example.com"],
    ["a.example.com/b@example.net", "a.example.com"],
  ];
  for (const [input, expected] of cases) {
    assert.equal(bareJidOf(input), expected, input);
    const jid = parseJid(input);
    assert.ok(jid);
    const bare = bareOf(jid);
    assert.equal(formatJid(bare), expected, input);
    assert.equal("resource" in bare, false, input);
  }
});

Deno.test("formatJid leaves out absent parts", () => {
  const cases: ReadonlyArray<readonly [Jid, string]> = [
    [{ local: "a", domain: "b", resource: "c" }, "a@b/c"],
    [{ local: "a", domain: "b" }, "a@b"],
    [{ domain: "b", resource: "c" }, "b/c"],
    [{ domain: "b" }, "b"],
  ];
  for (const [jid, expected] of cases) assert.equal(formatJid(jid), expected);
});

Deno.test("part preparation on its own", () => {
  const cases: ReadonlyArray<
    readonly [(s: string) => string | undefined, string, string | undefined]
  > = [
    [prepLocalpart, "Juliet", "juliet"],
    [prepLocalpart, "a/b", undefined],
    [prepLocalpart, "a@b", undefined],
    [prepLocalpart, "", undefined],
    [prepLocalpart, "ＡＢ", "ab"],
    [prepDomainpart, "Example.COM.", "example.com"],
    [prepDomainpart, "[FE80::1]", "[fe80::1]"],
    [prepDomainpart, "10.0.0.1", "10.0.0.1"],
    [prepDomainpart, "", undefined],
    [prepDomainpart, "a/b", undefined],
    [prepResourcepart, "Foo Bar", "Foo Bar"],
    [prepResourcepart, "ＡＢ", "ＡＢ"],
    [prepResourcepart, "a@b/c", "a@b/c"],
    [prepResourcepart, "", undefined],
    [prepResourcepart, "\t", undefined],
    [prepResourcepart, "\u{1F916}\uFE0F", "\u{1F916}"],
    [prepResourcepart, "\uFE0F\uFE0F", undefined],
    // Only selectors 1-16 (table B.1); the supplementary ones stay.
    [prepResourcepart, "a\u{E0100}", "a\u{E0100}"],
  ];
  for (const [prep, input, expected] of cases) {
    assert.equal(prep(input), expected, `${prep.name}(${JSON.stringify(input)})`);
  }
});

Deno.test("length limits: 1023 octets per part allowed, 1024 refused", () => {
  // 16 labels of 63 octets and 15 dots: exactly 1023 octets.
  const domain1023 = Array.from({ length: 16 }, () => "a".repeat(63)).join(".");
  const domain1024 = domain1023.slice(0, 1022) + ".a";
  assert.equal(new TextEncoder().encode(domain1023).length, 1023);
  assert.equal(new TextEncoder().encode(domain1024).length, 1024);
  const cases: ReadonlyArray<readonly [string, boolean]> = [
    ["a".repeat(1023) + "@example.com", true],
    ["a".repeat(1024) + "@example.com", false],
    // Two-octet letters: 511 * 2 + 1 = 1023 octets, 512 * 2 = 1024.
    ["ä".repeat(511) + "a@example.com", true],
    ["ä".repeat(512) + "@example.com", false],
    ["example.com/" + "r".repeat(1023), true],
    ["example.com/" + "r".repeat(1024), false],
    ["example.com/" + "♚".repeat(341), true],
    ["example.com/" + "♚".repeat(341) + "r", false],
    [domain1023, true],
    [domain1023 + ".", true],
    [domain1024, false],
  ];
  for (const [input, ok] of cases) {
    assert.equal(parseJid(input) !== undefined, ok, `${input.length} units, expected ${ok}`);
  }
});

Deno.test("the cache does not change results", () => {
  const inputs = [...VALID.map(([input]) => input), ...INVALID];
  const first = inputs.map((s) => [parseJid(s), normalizeJid(s), bareJidOf(s)]);
  // Enough distinct inputs to overflow the cache, so later lookups are both hits and misses.
  for (let i = 0; i < 2500; i++) parseJid(`user${i}@example.com/r${i}`);
  const second = inputs.map((s) => [parseJid(s), normalizeJid(s), bareJidOf(s)]);
  const third = inputs.map((s) => [parseJid(s), normalizeJid(s), bareJidOf(s)]);
  assert.deepEqual(second, first);
  assert.deepEqual(third, first);
  assert.equal(normalizeJid("User2499@Example.com/R"), "user2499@example.com/R");
});

Deno.test("parsed JIDs are frozen so cached values cannot be corrupted", () => {
  const jid = parseJid("juliet@example.com/balcony");
  assert.ok(jid);
  assert.ok(Object.isFrozen(jid));
});
