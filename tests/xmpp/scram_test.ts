import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  clientFinalMessage,
  type ClientFirst,
  clientFirstMessage,
  decoyCredentialSet,
  deriveCredentials,
  INVALID_PROOF,
  newCredentialSet,
  parseClientFirst,
  pbkdf2Runs,
  type ScramCredentials,
  type ScramHash,
  serverFirstMessage,
  verifyClientFinal,
  verifyPassword,
} from "../../lib/xmpp/scram.ts";

function b64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

function parsed(message: string): ClientFirst {
  const first = parseClientFirst(message);
  if ("error" in first) throw new Error(`unexpected failure: ${first.text}`);
  return first;
}

/** Runs a whole exchange through the server functions; returns the server's verdict. */
function exchange(opts: {
  hash: ScramHash;
  creds: ScramCredentials;
  username: string;
  password: string;
  gs2Header?: string;
  clientCb?: Uint8Array;
  serverCb?: Uint8Array;
}) {
  const clientFirst = clientFirstMessage(opts.username, "client-nonce-1234", opts.gs2Header);
  const first = parsed(clientFirst);
  assert.equal(first.username, opts.username);
  const serverFirst = serverFirstMessage(first, "server-nonce-5678", opts.creds);
  const final = clientFinalMessage({
    hash: opts.hash,
    password: opts.password,
    clientFirst,
    serverFirst,
    channelBinding: opts.clientCb,
  });
  const result = verifyClientFinal({
    hash: opts.hash,
    creds: opts.creds,
    first,
    serverFirst,
    clientFinal: final.message,
    channelBinding: opts.serverCb,
  });
  return { result, expected: final.expectedServerFinal };
}

// RFC 5802 §5 and RFC 7677 §3 published exchanges, end to end through the server side.
const VECTORS = [
  {
    hash: "SHA-1" as const,
    clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
    serverNonce: "3rfcNHYJY1ZVvWVs7j",
    salt: "QSXCR+Q6sek8bf92",
    serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
    clientFinal:
      "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
    serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
  },
  {
    hash: "SHA-256" as const,
    clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
    serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
    salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
    serverFirst:
      "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
    clientFinal:
      "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
    serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
  },
];

for (const v of VECTORS) {
  Deno.test(`scram: published ${v.hash} exchange verifies on the server`, () => {
    const creds = deriveCredentials("pencil", v.hash, b64(v.salt), 4096);
    assert.equal(creds.salt, v.salt);
    const first = parsed(v.clientFirst);
    assert.equal(first.username, "user");
    assert.equal(first.cbFlag, "n");
    assert.equal(first.gs2Header, "n,,");
    const serverFirst = serverFirstMessage(first, v.serverNonce, creds);
    assert.equal(serverFirst, v.serverFirst);
    const result = verifyClientFinal({
      hash: v.hash,
      creds,
      first,
      serverFirst,
      clientFinal: v.clientFinal,
    });
    assert.deepEqual(result, { ok: true, serverFinal: v.serverFinal });
  });

  Deno.test(`scram: client helper reproduces the published ${v.hash} messages`, () => {
    const clientFirst = clientFirstMessage("user", v.clientFirst.split("r=")[1]);
    assert.equal(clientFirst, v.clientFirst);
    const final = clientFinalMessage({
      hash: v.hash,
      password: "pencil",
      clientFirst,
      serverFirst: v.serverFirst,
    });
    assert.equal(final.message, v.clientFinal);
    assert.equal(final.expectedServerFinal, v.serverFinal);
  });

  Deno.test(`scram: ${v.hash} wrong password is not authorized`, () => {
    const creds = deriveCredentials("pencil", v.hash, b64(v.salt), 4096);
    const first = parsed(v.clientFirst);
    const serverFirst = serverFirstMessage(first, v.serverNonce, creds);
    const wrong = clientFinalMessage({
      hash: v.hash,
      password: "pencil2",
      clientFirst: v.clientFirst,
      serverFirst,
    });
    const result = verifyClientFinal({
      hash: v.hash,
      creds,
      first,
      serverFirst,
      clientFinal: wrong.message,
    });
    assert.equal(result.ok, false);
    assert.equal(!result.ok && result.error, "not-authorized");
    // The one failure that checked the password, as the login throttle tells it apart.
    assert.equal(!result.ok && result.text, INVALID_PROOF);
  });
}

Deno.test("scram: tampered nonces are refused", () => {
  const v = VECTORS[0];
  const creds = deriveCredentials("pencil", v.hash, b64(v.salt), 4096);
  const first = parsed(v.clientFirst);
  const verify = (serverFirst: string, clientFinal: string) =>
    verifyClientFinal({ hash: v.hash, creds, first, serverFirst, clientFinal });

  // The client answers with a nonce other than the one the server sent.
  const tampered = v.clientFinal.replace("3rfcNHYJY1ZVvWVs7j", "3rfcNHYJY1ZVvWVs7X");
  assert.deepEqual(verify(v.serverFirst, tampered), {
    ok: false,
    error: "not-authorized",
    text: "Nonce mismatch",
  });
  // A combined nonce that does not start with the client's nonce.
  const foreign = "r=XXXX+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096";
  const r1 = verify(foreign, v.clientFinal.replace("fyko", "XXXX"));
  assert.equal(r1.ok, false);
  assert.equal(!r1.ok && r1.error, "not-authorized");
  // The client's nonce alone, without the server part.
  const r2 = verify(v.serverFirst, v.clientFinal.replace("3rfcNHYJY1ZVvWVs7j", ""));
  assert.equal(r2.ok, false);
});

Deno.test("scram: tls-server-end-point channel binding", () => {
  const certHash = new Uint8Array(createHash("sha256").update("a certificate").digest());
  const otherHash = new Uint8Array(createHash("sha256").update("another certificate").digest());
  const creds = newCredentialSet("secret")["SHA-256"]!;
  const base = {
    hash: "SHA-256" as const,
    creds,
    username: "juliet",
    password: "secret",
    gs2Header: "p=tls-server-end-point,,",
  };

  const good = exchange({ ...base, clientCb: certHash, serverCb: certHash });
  assert.deepEqual(good.result, { ok: true, serverFinal: good.expected });

  const mismatch = exchange({ ...base, clientCb: otherHash, serverCb: certHash });
  assert.deepEqual(mismatch.result, {
    ok: false,
    error: "not-authorized",
    text: "channel-bindings-dont-match",
  });

  // The server cannot provide the requested binding type.
  const unsupported = exchange({ ...base, clientCb: certHash });
  assert.deepEqual(unsupported.result, {
    ok: false,
    error: "not-authorized",
    text: "channel-binding-not-supported",
  });

  const first = parsed(clientFirstMessage("juliet", "abc", base.gs2Header));
  assert.equal(first.cbFlag, "p");
  assert.equal(first.cbName, "tls-server-end-point");
});

Deno.test("scram: 'y' flag passes through and its header is bound into c=", () => {
  const creds = newCredentialSet("secret")["SHA-1"]!;
  const ok = exchange({
    hash: "SHA-1",
    creds,
    username: "romeo",
    password: "secret",
    gs2Header: "y,,",
    serverCb: new Uint8Array([1, 2, 3]), // ignored without flag p
  });
  assert.deepEqual(ok.result, { ok: true, serverFinal: ok.expected });
  assert.equal(parsed(clientFirstMessage("romeo", "abc", "y,,")).cbFlag, "y");

  // A client-final whose c= claims a different header than the client-first (a downgrade).
  const clientFirst = clientFirstMessage("romeo", "abc", "y,,");
  const first = parsed(clientFirst);
  const serverFirst = serverFirstMessage(first, "def", creds);
  const final = clientFinalMessage({
    hash: "SHA-1",
    password: "secret",
    clientFirst,
    serverFirst,
    gs2Header: "n,,",
  });
  const result = verifyClientFinal({
    hash: "SHA-1",
    creds,
    first,
    serverFirst,
    clientFinal: final.message,
  });
  assert.equal(!result.ok && result.text, "channel-bindings-dont-match");
});

Deno.test("scram: usernames and authzids with =2C and =3D escapes", () => {
  const first = parsed("n,a=ad=2Cmin=3D,n=a=2Cb=3Dc,r=nonce");
  assert.equal(first.username, "a,b=c");
  assert.equal(first.authzid, "ad,min=");
  assert.equal(first.bare, "n=a=2Cb=3Dc,r=nonce");
  assert.equal(first.gs2Header, "n,a=ad=2Cmin=3D,");
  assert.equal(clientFirstMessage("a,b=c", "nonce"), "n,,n=a=2Cb=3Dc,r=nonce");

  const creds = newCredentialSet("p,w=d")["SHA-256"]!;
  const full = exchange({
    hash: "SHA-256",
    creds,
    username: "we,ird=name",
    password: "p,w=d",
  });
  assert.deepEqual(full.result, { ok: true, serverFinal: full.expected });
});

Deno.test("scram: malformed client-first messages", () => {
  const table: ReadonlyArray<readonly [string, string]> = [
    ["", "malformed-request"],
    ["n,,n=user", "malformed-request"],
    ["x,,n=user,r=abc", "malformed-request"],
    ["p,,n=user,r=abc", "malformed-request"],
    ["p=,,n=user,r=abc", "malformed-request"],
    ["p=tls unique,,n=user,r=abc", "malformed-request"],
    ["n,b=x,n=user,r=abc", "malformed-request"],
    ["n,a=bad=41,n=user,r=abc", "malformed-request"],
    ["n,,m=ext,n=user,r=abc", "malformed-request"],
    ["n,,r=abc,n=user", "malformed-request"],
    ["n,,n=,r=abc", "malformed-request"],
    ["n,,n=us=2Xer,r=abc", "malformed-request"],
    ["n,,n=user=,r=abc", "malformed-request"],
    ["n,,n=user,r=", "malformed-request"],
    ["n,,n=user,r=ab c", "malformed-request"],
    ["n,,n=user,r=abc\u00e9", "malformed-request"],
    ["n,,n=user,r=abc,,", "malformed-request"],
    ["n,,n=us\0er,r=abc", "malformed-request"],
    ["n,,n=us\ud800er,r=abc", "incorrect-encoding"],
  ];
  for (const [message, error] of table) {
    const result = parseClientFirst(message);
    assert.ok("error" in result, `accepted: ${JSON.stringify(message)}`);
    assert.equal(result.error, error, JSON.stringify(message));
    assert.ok(result.text.length > 0);
  }
  // Optional extensions after the nonce are ignored.
  assert.equal(parsed("n,,n=user,r=abc,x=ext").clientNonce, "abc");
});

Deno.test("scram: malformed client-final messages", () => {
  const v = VECTORS[0];
  const creds = deriveCredentials("pencil", v.hash, b64(v.salt), 4096);
  const first = parsed(v.clientFirst);
  const r = "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j";
  const table: ReadonlyArray<readonly [string, string]> = [
    ["", "malformed-request"],
    [`c=biws,${r}`, "malformed-request"],
    [`${r},c=biws,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=`, "malformed-request"],
    [`c=biws,${r},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=,x=1`, "malformed-request"],
    [`c=biws,${r},1,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=`, "malformed-request"],
    [`c=bi!s,${r},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=`, "incorrect-encoding"],
    [`c=biws,${r},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts`, "incorrect-encoding"],
    [`c=biws,${r},p=AAAA`, "not-authorized"],
    [`c=eSws,${r},p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=`, "not-authorized"],
  ];
  for (const [clientFinal, error] of table) {
    const result = verifyClientFinal({
      hash: v.hash,
      creds,
      first,
      serverFirst: v.serverFirst,
      clientFinal,
    });
    assert.equal(result.ok, false, clientFinal);
    assert.equal(!result.ok && result.error, error, clientFinal);
  }
  // Extensions between the nonce and the proof are covered by the proof and otherwise ignored.
  const withExt = verifyClientFinal({
    hash: v.hash,
    creds,
    first,
    serverFirst: v.serverFirst,
    clientFinal: v.clientFinal.replace(",p=", ",x=1,p="),
  });
  assert.equal(!withExt.ok && withExt.text, "invalid-proof");
});

Deno.test("scram: newCredentialSet and verifyPassword", () => {
  const set = newCredentialSet("correct horse");
  assert.ok(set["SHA-1"] && set["SHA-256"]);
  assert.equal(set["SHA-1"].iterations, 4096);
  assert.equal(b64(set["SHA-1"].salt).length, 16);
  assert.equal(b64(set["SHA-256"].storedKey).length, 32);
  assert.notEqual(set["SHA-1"].salt, set["SHA-256"].salt);
  assert.notEqual(newCredentialSet("correct horse")["SHA-256"]!.salt, set["SHA-256"].salt);
  assert.equal(verifyPassword("correct horse", set), true);
  assert.equal(verifyPassword("correct horse ", set), false);
  assert.equal(verifyPassword("", set), false);
  // Falls back to SHA-1 when only that is stored; nothing stored never verifies.
  assert.equal(verifyPassword("correct horse", { "SHA-1": set["SHA-1"] }), true);
  assert.equal(verifyPassword("wrong", { "SHA-1": set["SHA-1"] }), false);
  assert.equal(verifyPassword("correct horse", {}), false);
  // The stored keys agree with a deterministic derivation from the same salt.
  const again = deriveCredentials("correct horse", "SHA-256", b64(set["SHA-256"].salt), 4096);
  assert.deepEqual(again, set["SHA-256"]);

  assert.throws(() => newCredentialSet("x", 1000), RangeError);
  assert.equal(newCredentialSet("x", 5000)["SHA-256"]!.iterations, 5000);
  assert.throws(() => deriveCredentials("x", "SHA-1", new Uint8Array(), 4096), RangeError);
});

Deno.test("scram: passwords are normalised (SASLprep approximation)", () => {
  const set = newCredentialSet("I\u00ADX"); // soft hyphen is mapped to nothing
  assert.equal(verifyPassword("IX", set), true);
  // NFKC: the ligature "ﬁ" equals "fi"; a no-break space equals a space.
  assert.equal(verifyPassword("\uFB01x", newCredentialSet("fix")), true);
  assert.equal(verifyPassword("a\u00A0b", newCredentialSet("a b")), true);
  assert.equal(verifyPassword("ab", newCredentialSet("a b")), false);
});

Deno.test("scram: decoy credentials are stable per key and name and shaped like real ones", () => {
  const key = new Uint8Array(32).fill(7);
  const real = newCredentialSet("pw", 5000);
  const a = decoyCredentialSet(key, "nobody", 5000);
  assert.deepEqual(decoyCredentialSet(key, "nobody", 5000), a);
  for (const hash of ["SHA-1", "SHA-256"] as const) {
    const d = a[hash]!;
    const r = real[hash]!;
    assert.equal(d.salt.length, r.salt.length);
    assert.equal(d.salt.length, 24);
    assert.equal(d.iterations, 5000);
    assert.equal(d.storedKey.length, r.storedKey.length);
    assert.equal(d.serverKey.length, r.serverKey.length);
  }
  assert.notEqual(a["SHA-1"]!.salt, a["SHA-256"]!.salt);
  assert.notEqual(decoyCredentialSet(key, "somebody", 5000)["SHA-256"]!.salt, a["SHA-256"]!.salt);
  const otherKey = new Uint8Array(32).fill(8);
  assert.notEqual(
    decoyCredentialSet(otherKey, "nobody", 5000)["SHA-256"]!.salt,
    a["SHA-256"]!.salt,
  );
  // No password opens a decoy, and checking one still runs the derivation.
  const before = pbkdf2Runs();
  for (const pw of ["", "pw", "nobody"]) assert.equal(verifyPassword(pw, a), false);
  assert.equal(pbkdf2Runs() - before, 3);
});
