/** The server's random ids (lib/shell/server.ts `randomToken`): base64url of pooled random bytes. */
import assert from "node:assert/strict";
import { randomToken } from "../../lib/shell/server.ts";

function bytesOf(token: string): Uint8Array {
  const b64 = token.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "=".repeat((4 - b64.length % 4) % 4)), (c) => c.charCodeAt(0));
}

Deno.test("randomToken: unpadded base64url of the asked number of bytes, never repeated", () => {
  for (const n of [1, 2, 3, 6, 9, 12, 18]) {
    const t = randomToken(n);
    assert.match(t, /^[A-Za-z0-9_-]+$/);
    assert.equal(t.length, Math.ceil(n * 4 / 3));
    assert.equal(bytesOf(t).length, n);
  }
  // Many times the pool: ids stay distinct across refills, and every byte value appears.
  const seen = new Set<string>();
  const values = new Set<number>();
  for (let i = 0; i < 5000; i++) {
    const t = randomToken(12);
    seen.add(t);
    for (const b of bytesOf(t)) values.add(b);
  }
  assert.equal(seen.size, 5000);
  assert.equal(values.size, 256);
});

Deno.test("randomToken: the same encoding as btoa", () => {
  // Each token's bytes, encoded the standard way and made URL-safe, give the token back.
  for (let i = 0; i < 200; i++) {
    const t = randomToken(1 + (i % 20));
    const std = btoa(String.fromCharCode(...bytesOf(t)));
    assert.equal(std.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""), t);
  }
});
