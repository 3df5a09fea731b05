import assert from "node:assert/strict";
import { createHash, createHmac } from "node:crypto";
import {
  DIGEST_BYTES,
  equalBytes,
  hashBytes,
  type HashName,
  hmacBytes,
  utf8Bytes,
} from "../../lib/xmpp/hmac.ts";

const NODE: Readonly<Record<HashName, string>> = { "SHA-1": "sha1", "SHA-256": "sha256" };
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const ascii = (s: string) => new TextEncoder().encode(s);

Deno.test("hmac: published vectors (FIPS 180 examples, RFC 2202 and RFC 4231 case 2)", () => {
  assert.equal(hex(hashBytes("SHA-1", ascii("abc"))), "a9993e364706816aba3e25717850c26c9cd0d89d");
  assert.equal(
    hex(hashBytes("SHA-256", ascii("abc"))),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    hex(hashBytes("SHA-1", new Uint8Array(0))),
    "da39a3ee5e6b4b0d3255bfef95601890afd80709",
  );
  assert.equal(
    hex(hmacBytes("SHA-1", ascii("Jefe"), ascii("what do ya want for nothing?"))),
    "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
  );
  assert.equal(
    hex(hmacBytes("SHA-256", ascii("Jefe"), ascii("what do ya want for nothing?"))),
    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
  );
});

Deno.test("hmac: the same bytes as node:crypto on every length around the block edges", () => {
  // Lengths 0..300 cross the padding cases (55, 56, 63, 64 bytes in the last block); keys up
  // to 150 bytes include keys longer than a block, which HMAC hashes first.
  for (const hash of ["SHA-1", "SHA-256"] as const) {
    for (let n = 0; n <= 300; n++) {
      const data = crypto.getRandomValues(new Uint8Array(n));
      const key = crypto.getRandomValues(new Uint8Array((n * 7) % 151));
      const h = hashBytes(hash, data);
      assert.equal(h.length, DIGEST_BYTES[hash]);
      assert.equal(hex(h), createHash(NODE[hash]).update(data).digest("hex"), `${hash} ${n}`);
      assert.equal(
        hex(hmacBytes(hash, key, data)),
        createHmac(NODE[hash], key).update(data).digest("hex"),
        `HMAC-${hash} ${n}, key ${key.length}`,
      );
    }
  }
});

Deno.test("hmac: utf8Bytes is the encoder's output, ASCII or not", () => {
  for (const s of ["", "n=user,r=abc", "n=jüliet,r=☃", "\u007f\u0080", "😀"]) {
    assert.deepEqual(utf8Bytes(s), new TextEncoder().encode(s));
  }
});

Deno.test("hmac: equalBytes compares contents and lengths", () => {
  assert.equal(equalBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 3])), true);
  assert.equal(equalBytes(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
  assert.equal(equalBytes(new Uint8Array([1, 2]), new Uint8Array([1, 2, 3])), false);
  assert.equal(equalBytes(new Uint8Array(0), new Uint8Array(0)), true);
});
