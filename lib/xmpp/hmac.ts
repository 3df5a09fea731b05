/**
 * SHA-1, SHA-256 and HMAC (RFC 3174, FIPS 180-4, RFC 2104) over short inputs, in plain
 * JavaScript, for the SCRAM exchange of every login (lib/xmpp/scram.ts): there a proof is
 * checked with two HMACs and a hash of about two hundred bytes each, and node:crypto's
 * `createHmac` and `createHash` cost more in their JavaScript glue (Buffer conversions, key
 * objects, an op per call) than the compression itself; they were most of a SASL step in the
 * login profiles. PBKDF2 (thousands of HMACs, at account creation and for PLAIN) stays with
 * node:crypto's `pbkdf2Sync`, which runs the whole loop natively.
 *
 * Synchronous and not re-entrant by design: the message schedule is one buffer for the
 * process, which no call leaves anything in that the next one reads.
 * @module
 */

/** The hash functions SCRAM is offered with (RFC 5802, RFC 7677). */
export type HashName = "SHA-1" | "SHA-256";

/** Output bytes per hash. */
export const DIGEST_BYTES: Readonly<Record<HashName, number>> = { "SHA-1": 20, "SHA-256": 32 };

const BLOCK = 64;
const SCHEDULE = new Int32Array(80);
// deno-fmt-ignore
const K256 = Int32Array.from([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

/** Loads the 16 big-endian words of the block at `off` into the schedule. */
function loadBlock(b: Uint8Array, off: number): void {
  const w = SCHEDULE;
  for (let i = 0; i < 16; i++, off += 4) {
    w[i] = (b[off] << 24) | (b[off + 1] << 16) | (b[off + 2] << 8) | b[off + 3];
  }
}

function sha1Blocks(b: Uint8Array): Int32Array {
  const w = SCHEDULE;
  let h0 = 0x67452301, h1 = 0xefcdab89 | 0, h2 = 0x98badcfe | 0, h3 = 0x10325476;
  let h4 = 0xc3d2e1f0 | 0;
  for (let off = 0; off < b.length; off += BLOCK) {
    loadBlock(b, off);
    for (let i = 16; i < 80; i++) {
      const x = w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16];
      w[i] = (x << 1) | (x >>> 31);
    }
    let a = h0, bb = h1, c = h2, d = h3, e = h4;
    let i = 0;
    for (; i < 20; i++) {
      const t = (((a << 5) | (a >>> 27)) + ((bb & c) | (~bb & d)) + e + 0x5a827999 + w[i]) | 0;
      e = d, d = c, c = (bb << 30) | (bb >>> 2), bb = a, a = t;
    }
    for (; i < 40; i++) {
      const t = (((a << 5) | (a >>> 27)) + (bb ^ c ^ d) + e + 0x6ed9eba1 + w[i]) | 0;
      e = d, d = c, c = (bb << 30) | (bb >>> 2), bb = a, a = t;
    }
    for (; i < 60; i++) {
      const t = (((a << 5) | (a >>> 27)) + ((bb & c) | (bb & d) | (c & d)) + e + 0x8f1bbcdc +
        w[i]) | 0;
      e = d, d = c, c = (bb << 30) | (bb >>> 2), bb = a, a = t;
    }
    for (; i < 80; i++) {
      const t = (((a << 5) | (a >>> 27)) + (bb ^ c ^ d) + e + 0xca62c1d6 + w[i]) | 0;
      e = d, d = c, c = (bb << 30) | (bb >>> 2), bb = a, a = t;
    }
    h0 = (h0 + a) | 0, h1 = (h1 + bb) | 0, h2 = (h2 + c) | 0, h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0;
  }
  return Int32Array.of(h0, h1, h2, h3, h4);
}

function sha256Blocks(b: Uint8Array): Int32Array {
  const w = SCHEDULE;
  let h0 = 0x6a09e667, h1 = 0xbb67ae85 | 0, h2 = 0x3c6ef372, h3 = 0xa54ff53a | 0;
  let h4 = 0x510e527f, h5 = 0x9b05688c | 0, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
  for (let off = 0; off < b.length; off += BLOCK) {
    loadBlock(b, off);
    for (let i = 16; i < 64; i++) {
      const x = w[i - 15], y = w[i - 2];
      const s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
      const s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
      w[i] = (w[i - 16] + s0 + w[i - 7] + s1) | 0;
    }
    let a = h0, bb = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
    for (let i = 0; i < 64; i++) {
      const S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
      const t1 = (h + S1 + ((e & f) ^ (~e & g)) + K256[i] + w[i]) | 0;
      const S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
      const t2 = (S0 + ((a & bb) ^ (a & c) ^ (bb & c))) | 0;
      h = g, g = f, f = e, e = (d + t1) | 0, d = c, c = bb, bb = a, a = (t1 + t2) | 0;
    }
    h0 = (h0 + a) | 0, h1 = (h1 + bb) | 0, h2 = (h2 + c) | 0, h3 = (h3 + d) | 0;
    h4 = (h4 + e) | 0, h5 = (h5 + f) | 0, h6 = (h6 + g) | 0, h7 = (h7 + h) | 0;
  }
  return Int32Array.of(h0, h1, h2, h3, h4, h5, h6, h7);
}

/**
 * The hash of `prefix` followed by `data`: one padded buffer (the `prefix` is HMAC's key
 * block, so that no concatenation is made first).
 */
function hashParts(hash: HashName, prefix: Uint8Array | undefined, data: Uint8Array): Uint8Array {
  const pre = prefix === undefined ? 0 : prefix.length;
  const len = pre + data.length;
  // Room for the 0x80 byte and the 64-bit length, rounded up to whole blocks.
  const padded = new Uint8Array((((len + 8) >>> 6) + 1) * BLOCK);
  if (prefix !== undefined) padded.set(prefix);
  padded.set(data, pre);
  padded[len] = 0x80;
  const bits = len * 8;
  const end = padded.length;
  padded[end - 5] = bits / 0x100000000;
  padded[end - 4] = bits >>> 24;
  padded[end - 3] = bits >>> 16;
  padded[end - 2] = bits >>> 8;
  padded[end - 1] = bits;
  const words = hash === "SHA-1" ? sha1Blocks(padded) : sha256Blocks(padded);
  const out = new Uint8Array(words.length * 4);
  for (let i = 0, j = 0; i < words.length; i++, j += 4) {
    const v = words[i];
    out[j] = v >>> 24, out[j + 1] = v >>> 16, out[j + 2] = v >>> 8, out[j + 3] = v;
  }
  return out;
}

/** The digest of `data`. */
export function hashBytes(hash: HashName, data: Uint8Array): Uint8Array {
  return hashParts(hash, undefined, data);
}

/** HMAC (RFC 2104) of `data` under `key`. */
export function hmacBytes(hash: HashName, key: Uint8Array, data: Uint8Array): Uint8Array {
  const k = key.length > BLOCK ? hashBytes(hash, key) : key;
  const inner = new Uint8Array(BLOCK);
  const outer = new Uint8Array(BLOCK);
  for (let i = 0; i < BLOCK; i++) {
    const b = i < k.length ? k[i] : 0;
    inner[i] = b ^ 0x36;
    outer[i] = b ^ 0x5c;
  }
  return hashParts(hash, outer, hashParts(hash, inner, data));
}

const ENCODER = new TextEncoder();

/**
 * UTF-8 bytes of `s`; ASCII (every SCRAM message but one with a non-ASCII username) without the
 * encoder's op call.
 */
export function utf8Bytes(s: string): Uint8Array {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) return ENCODER.encode(s);
    out[i] = c;
  }
  return out;
}

/**
 * Whether two byte strings are equal, in a time that depends on their length only (which is
 * public wherever this is used: it follows from the hash).
 */
export function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}
