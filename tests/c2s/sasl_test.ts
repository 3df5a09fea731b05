import assert from "node:assert/strict";
import { reduce } from "../../lib/c2s/mod.ts";
import type { Ctx, Event, Output } from "../../lib/core/types.ts";
import {
  clientFinalMessage,
  clientFirstMessage,
  decoyCredentialSet,
  deriveCredentials,
  pbkdf2Runs,
  type ScramCredentialSet,
} from "../../lib/xmpp/scram.ts";
import type { Session } from "../../lib/core/session.ts";
import { elem, stanza } from "../../lib/xml/element.ts";
import { NS_SASL, NS_TLS } from "../../lib/xmpp/namespaces.ts";
import {
  authedExtrasXml,
  b64,
  fresh,
  HOST,
  record,
  run,
  show,
  stanzaEvent,
  streamOpen,
  testCtx,
  unb64,
} from "../_ctx.ts";

const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const ERR_NS = "urn:ietf:params:xml:ns:xmpp-streams";

// RFC 5802 §5 (SHA-1) and RFC 7677 §3 (SHA-256): user "user", password "pencil".
const RFC5802 = {
  mechanism: "SCRAM-SHA-1",
  salt: "QSXCR+Q6sek8bf92",
  clientFirst: "n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL",
  serverNonce: "3rfcNHYJY1ZVvWVs7j",
  serverFirst: "r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096",
  clientFinal: "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
  serverFinal: "v=rmF9pqV8S7suAoZWja4dJRkFsKQ=",
} as const;
const RFC7677 = {
  mechanism: "SCRAM-SHA-256",
  salt: "W22ZaJ0SNY7soEsUEjb6gQ==",
  clientFirst: "n,,n=user,r=rOprNGfwEbeRWgbNEkqO",
  serverNonce: "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
  serverFirst:
    "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
  clientFinal:
    "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
  serverFinal: "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=",
} as const;

const CREDS: ScramCredentialSet = {
  "SHA-1": deriveCredentials("pencil", "SHA-1", unb64(RFC5802.salt), 4096),
  "SHA-256": deriveCredentials("pencil", "SHA-256", unb64(RFC7677.salt), 4096),
};

/** An unauthenticated session whose stream header was answered. */
function opened(secure: boolean, over: Partial<Session> = {}): Session {
  return { ...fresh(secure), notopen: false, streamId: "sid", host: HOST, ...over };
}

/** A session under TLS that can bind with tls-server-end-point. */
const CB = new Uint8Array([0xde, 0xad, 0xbe, 0xef]);
function withCb(): Session {
  return opened(true, { channelBindings: { "tls-server-end-point": CB } });
}

function auth(mechanism: string, payload: string): Event {
  return stanzaEvent(elem("auth", { xmlns: NS_SASL, mechanism }, [payload]));
}

function response(payload: string): Event {
  return stanzaEvent(elem("response", { xmlns: NS_SASL }, [payload]));
}

function loaded(credentials: ScramCredentialSet | undefined, username = "user"): Event {
  return { kind: "credentials-loaded", username, credentials };
}

function failure(condition: string, text?: string): string {
  return `<failure xmlns="${SASL}"><${condition}/>` +
    (text === undefined ? "" : `<text xml:lang="en">${text}</text>`) + "</failure>";
}

function authedRecord(s: Session): Record<string, unknown> {
  return record({ ...s, type: "c2s", username: "user", notopen: true, streamId: undefined });
}

// ---------------------------------------------------------------------------------------------
// SCRAM with the published vectors, through reduce().

for (const v of [RFC5802, RFC7677]) {
  Deno.test(`sasl: ${v.mechanism} with the published exchange succeeds with exact v=`, () => {
    const ctx = testCtx({ nonces: [v.serverNonce] });
    const s0 = opened(false);

    const [s1, out1] = reduce(s0, auth(v.mechanism, b64(v.clientFirst)), ctx);
    assert.deepEqual(out1, [{ kind: "load-credentials", host: HOST, username: "user" }]);
    assert.equal(s1.sasl?.mechanism, v.mechanism);
    assert.equal(s1.sasl?.step, "await-credentials");
    assert.equal(s1.sasl?.username, "user");
    assert.equal(s1.type, "c2s_unauthed");

    const [s2, out2] = reduce(s1, loaded(CREDS), ctx);
    assert.deepEqual(show(out2), [
      { kind: "send", xml: `<challenge xmlns="${SASL}">${b64(v.serverFirst)}</challenge>` },
    ]);
    assert.equal(s2.sasl?.step, "await-final");

    const [s3, out3] = reduce(s2, response(b64(v.clientFinal)), ctx);
    assert.deepEqual(show(out3), [
      { kind: "send", xml: `<success xmlns="${SASL}">${b64(v.serverFinal)}</success>` },
      { kind: "auth-result", ok: true, username: "user" },
      { kind: "reset-stream", authenticated: true },
    ]);
    assert.deepEqual(record(s3), authedRecord(s0));
  });

  Deno.test(`sasl: ${v.mechanism} wrong password -> not-authorized`, () => {
    const ctx = testCtx({ nonces: [v.serverNonce] });
    const s0 = opened(false);
    const hash = v.mechanism === "SCRAM-SHA-1" ? "SHA-1" : "SHA-256";
    const final = clientFinalMessage({
      hash,
      password: "pen",
      clientFirst: v.clientFirst,
      serverFirst: v.serverFirst,
    });
    const { session, outputs } = run(s0, [
      auth(v.mechanism, b64(v.clientFirst)),
      loaded(CREDS),
      response(b64(final.message)),
    ], ctx);
    assert.deepEqual(show(outputs.slice(2)), [
      { kind: "send", xml: failure("not-authorized") },
      { kind: "auth-result", ok: false, username: "user" },
    ]);
    assert.deepEqual(record(session), record(s0));
  });
}

Deno.test("sasl: credentials that could not be loaded still get a challenge, then not-authorized", () => {
  // One nonce keys the stand-in credentials, the second is the server nonce.
  const ctx = testCtx({ nonces: ["decoykey", RFC5802.serverNonce] });
  const s0 = opened(false);
  const [s1, out1] = reduce(s0, auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)), ctx);
  assert.deepEqual(out1, [{ kind: "load-credentials", host: HOST, username: "user" }]);
  const [s2, out2] = reduce(s1, loaded(undefined), ctx);
  const salt = decoyCredentialSet(new TextEncoder().encode("decoykey"), "user", 4096)["SHA-1"]!
    .salt;
  assert.equal(salt.length, RFC7677.salt.length, "as long as a real salt");
  const serverFirst = `r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=${salt},i=4096`;
  assert.deepEqual(show(out2), [
    { kind: "send", xml: `<challenge xmlns="${SASL}">${b64(serverFirst)}</challenge>` },
  ]);
  const final = clientFinalMessage({
    hash: "SHA-1",
    password: "pencil",
    clientFirst: RFC5802.clientFirst,
    serverFirst,
  });
  const [s3, out3] = reduce(s2, response(b64(final.message)), ctx);
  assert.deepEqual(show(out3), [
    { kind: "send", xml: failure("not-authorized") },
    { kind: "auth-result", ok: false, username: "user" },
  ]);
  assert.deepEqual(record(s3), record(s0));
});

Deno.test("sasl: SCRAM-SHA-256-PLUS with tls-server-end-point succeeds", () => {
  const ctx = testCtx({ nonces: ["servernonce"] });
  const s0 = withCb();
  const clientFirst = clientFirstMessage("user", "clientnonce", "p=tls-server-end-point,,");
  const { session: s1, outputs: out1 } = run(s0, [
    auth("SCRAM-SHA-256-PLUS", b64(clientFirst)),
    loaded(CREDS),
  ], ctx);
  const serverFirst = `r=clientnonceservernonce,s=${RFC7677.salt},i=4096`;
  assert.deepEqual(show(out1), [
    { kind: "load-credentials", host: HOST, username: "user" },
    { kind: "send", xml: `<challenge xmlns="${SASL}">${b64(serverFirst)}</challenge>` },
  ]);
  const final = clientFinalMessage({
    hash: "SHA-256",
    password: "pencil",
    clientFirst,
    serverFirst,
    channelBinding: CB,
  });
  const [s2, out2] = reduce(s1, response(b64(final.message)), ctx);
  assert.deepEqual(show(out2), [
    { kind: "send", xml: `<success xmlns="${SASL}">${b64(final.expectedServerFinal)}</success>` },
    { kind: "auth-result", ok: true, username: "user" },
    { kind: "reset-stream", authenticated: true },
  ]);
  assert.deepEqual(record(s2), authedRecord(s0));
});

Deno.test("sasl: SCRAM-SHA-1-PLUS with other channel binding data -> not-authorized, not counted", () => {
  const ctx = testCtx({ nonces: ["servernonce"] });
  const clientFirst = clientFirstMessage("user", "clientnonce", "p=tls-server-end-point,,");
  const serverFirst = `r=clientnonceservernonce,s=${RFC5802.salt},i=4096`;
  const final = clientFinalMessage({
    hash: "SHA-1",
    password: "pencil",
    clientFirst,
    serverFirst,
    // A man in the middle terminates TLS with another certificate.
    channelBinding: new Uint8Array([1, 2, 3, 4]),
  });
  const { session, outputs } = run(withCb(), [
    auth("SCRAM-SHA-1-PLUS", b64(clientFirst)),
    loaded(CREDS),
    response(b64(final.message)),
  ], ctx);
  // The proof was never checked: nothing about the password was tried.
  assert.deepEqual(show(outputs.slice(2)), [{ kind: "send", xml: failure("not-authorized") }]);
  assert.equal(session.type, "c2s_unauthed");
  assert.equal(session.sasl, undefined);
});

// ---------------------------------------------------------------------------------------------
// PLAIN (RFC 4616), only under TLS.

Deno.test("sasl: PLAIN over TLS with the right password succeeds", () => {
  const ctx = testCtx();
  const s0 = opened(true);
  const [s1, out1] = reduce(s0, auth("PLAIN", b64("\0user\0pencil")), ctx);
  assert.deepEqual(out1, [{ kind: "load-credentials", host: HOST, username: "user" }]);
  const [s2, out2] = reduce(s1, loaded(CREDS), ctx);
  assert.deepEqual(show(out2), [
    { kind: "send", xml: `<success xmlns="${SASL}"/>` },
    { kind: "auth-result", ok: true, username: "user" },
    { kind: "reset-stream", authenticated: true },
  ]);
  assert.deepEqual(record(s2), authedRecord(s0));
});

Deno.test("sasl: PLAIN authcid is normalised and an authzid naming the user is fine", () => {
  const ctx = testCtx();
  const { session, outputs } = run(opened(true), [
    auth("PLAIN", b64("User@Example.com\0USER\0pencil")),
    loaded(CREDS),
  ], ctx);
  assert.deepEqual(outputs[0], { kind: "load-credentials", host: HOST, username: "user" });
  assert.equal(session.username, "user");
  assert.equal(session.type, "c2s");
});

Deno.test("sasl: PLAIN wrong password, unknown account, failed load -> not-authorized, counted, one PBKDF2 each", () => {
  const decoys = decoyCredentialSet(new Uint8Array(32), "user", 4096);
  for (
    const [payload, creds] of [
      ["\0user\0pen", CREDS],
      ["\0user\0pencil", decoys],
      ["\0user\0pencil", undefined],
    ] as const
  ) {
    const s0 = opened(true);
    const before = pbkdf2Runs();
    const ctx = testCtx({ nonces: ["decoykey"] });
    const { session, outputs } = run(s0, [auth("PLAIN", b64(payload)), loaded(creds)], ctx);
    // The same derivation whether or not the account exists: the answer takes as long.
    assert.equal(pbkdf2Runs() - before, 1);
    assert.deepEqual(show(outputs), [
      { kind: "load-credentials", host: HOST, username: "user" },
      { kind: "send", xml: failure("not-authorized") },
      { kind: "auth-result", ok: false, username: "user" },
    ]);
    assert.deepEqual(record(session), record(s0));
  }
});

// ---------------------------------------------------------------------------------------------
// Failures at <auth/>: the table gives the session, the auth element, and the exact outputs.

interface AuthFailureCase {
  readonly name: string;
  readonly session: Session;
  readonly ctx?: Ctx;
  readonly event: Event;
  readonly outputs: readonly unknown[];
}

const AUTH_FAILURES: readonly AuthFailureCase[] = [
  {
    name: "PLAIN without TLS -> encryption-required",
    session: opened(false),
    event: auth("PLAIN", b64("\0user\0pencil")),
    outputs: [{ kind: "send", xml: failure("encryption-required") }],
  },
  {
    name: "auth before TLS when encryption is required -> encryption-required",
    session: opened(false),
    ctx: testCtx({ requireEncryption: true }),
    event: auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
    outputs: [{ kind: "send", xml: failure("encryption-required") }],
  },
  {
    name: "unknown mechanism -> invalid-mechanism",
    session: opened(true),
    event: auth("DIGEST-MD5", ""),
    outputs: [{ kind: "send", xml: failure("invalid-mechanism") }],
  },
  {
    name: "no mechanism attribute -> invalid-mechanism",
    session: opened(true),
    event: stanzaEvent(elem("auth", { xmlns: NS_SASL }, [b64("\0user\0pencil")])),
    outputs: [{ kind: "send", xml: failure("invalid-mechanism") }],
  },
  {
    name: "PLAIN disabled -> invalid-mechanism",
    session: opened(true),
    ctx: testCtx({ allowPlain: false }),
    event: auth("PLAIN", b64("\0user\0pencil")),
    outputs: [{ kind: "send", xml: failure("invalid-mechanism") }],
  },
  {
    name: "-PLUS without channel binding data -> invalid-mechanism",
    session: opened(true),
    event: auth("SCRAM-SHA-256-PLUS", b64("p=tls-server-end-point,,n=user,r=abc")),
    outputs: [{ kind: "send", xml: failure("invalid-mechanism") }],
  },
  {
    name: "bad base64 -> incorrect-encoding",
    session: opened(false),
    event: auth("SCRAM-SHA-1", "!!!!"),
    outputs: [{ kind: "send", xml: failure("incorrect-encoding") }],
  },
  {
    name: "base64 of the wrong length -> incorrect-encoding",
    session: opened(false),
    event: auth("SCRAM-SHA-1", "bix"),
    outputs: [{ kind: "send", xml: failure("incorrect-encoding") }],
  },
  {
    name: "base64 of bad UTF-8 -> incorrect-encoding",
    session: opened(false),
    event: auth("SCRAM-SHA-1", btoa("n,,n=\xff,r=abc")),
    outputs: [{ kind: "send", xml: failure("incorrect-encoding") }],
  },
  {
    name: "client-first with a bad flag -> malformed-request",
    session: opened(false),
    event: auth("SCRAM-SHA-1", b64("x,,n=user,r=abc")),
    outputs: [{ kind: "send", xml: failure("malformed-request", "Bad channel binding flag") }],
  },
  {
    name: "client-first too short -> malformed-request",
    session: opened(false),
    event: auth("SCRAM-SHA-1", b64("n,,n=user")),
    outputs: [{ kind: "send", xml: failure("malformed-request", "Too few attributes") }],
  },
  {
    name: "empty initial response -> malformed-request",
    session: opened(false),
    event: auth("SCRAM-SHA-1", "="),
    outputs: [{ kind: "send", xml: failure("malformed-request", "Too few attributes") }],
  },
  {
    name: "PLAIN with two fields -> malformed-request",
    session: opened(true),
    event: auth("PLAIN", b64("user\0pencil")),
    outputs: [{ kind: "send", xml: failure("malformed-request") }],
  },
  {
    name: "channel binding on a non-PLUS mechanism -> malformed-request",
    session: withCb(),
    event: auth("SCRAM-SHA-1", b64("p=tls-server-end-point,,n=user,r=abc")),
    outputs: [{
      kind: "send",
      xml: failure("malformed-request", "Channel binding needs a -PLUS mechanism"),
    }],
  },
  {
    name: "-PLUS asking for a binding type we cannot compute -> malformed-request",
    session: withCb(),
    event: auth("SCRAM-SHA-1-PLUS", b64("p=tls-exporter,,n=user,r=abc")),
    outputs: [{
      kind: "send",
      xml: failure("malformed-request", "Unsupported channel binding type"),
    }],
  },
  {
    name: "-PLUS without the p flag -> malformed-request",
    session: withCb(),
    event: auth("SCRAM-SHA-1-PLUS", b64("n,,n=user,r=abc")),
    outputs: [{ kind: "send", xml: failure("malformed-request", "-PLUS needs channel binding") }],
  },
  {
    name: "PLAIN authzid for another user -> invalid-authzid",
    session: opened(true),
    event: auth("PLAIN", b64("other@example.com\0user\0pencil")),
    // Refused before any password check: not counted.
    outputs: [{ kind: "send", xml: failure("invalid-authzid") }],
  },
  {
    name: "PLAIN authzid with a resource -> invalid-authzid",
    session: opened(true),
    event: auth("PLAIN", b64("user@example.com/res\0user\0pencil")),
    // Refused before any password check: not counted.
    outputs: [{ kind: "send", xml: failure("invalid-authzid") }],
  },
  {
    name: "SCRAM authzid for another user -> invalid-authzid",
    session: opened(false),
    event: auth("SCRAM-SHA-1", b64("n,a=other@example.com,n=user,r=abc")),
    // Refused before any password check: not counted.
    outputs: [{ kind: "send", xml: failure("invalid-authzid") }],
  },
  {
    name: "SCRAM authzid on another host -> invalid-authzid",
    session: opened(false),
    event: auth("SCRAM-SHA-1", b64("n,a=user@other.example,n=user,r=abc")),
    // Refused before any password check: not counted.
    outputs: [{ kind: "send", xml: failure("invalid-authzid") }],
  },
  {
    name: "y flag while -PLUS was offered -> not-authorized (downgrade), not counted",
    session: withCb(),
    event: auth("SCRAM-SHA-256", b64("y,,n=user,r=abc")),
    // RFC 5802 §6 says refuse, but no password was checked: slixmpp 1.8.3 sends this on every
    // login before falling back to PLAIN, and must not lock itself out.
    outputs: [
      { kind: "send", xml: failure("not-authorized", "Channel binding downgrade detected") },
    ],
  },
  {
    name: "-PLUS naming 'constructor' (an Object.prototype member) -> malformed-request",
    session: withCb(),
    event: auth("SCRAM-SHA-1-PLUS", b64("p=constructor,,n=user,r=abc")),
    outputs: [{
      kind: "send",
      xml: failure("malformed-request", "Unsupported channel binding type"),
    }],
  },
  {
    name: "-PLUS naming 'toString' -> malformed-request",
    session: withCb(),
    event: auth("SCRAM-SHA-256-PLUS", b64("p=toString,,n=user,r=abc")),
    outputs: [{
      kind: "send",
      xml: failure("malformed-request", "Unsupported channel binding type"),
    }],
  },
  {
    name: "SCRAM username that is not a valid localpart -> not-authorized, not counted",
    session: opened(false),
    event: auth("SCRAM-SHA-1", b64("n,,n=us er,r=abc")),
    // No account can have that name, so nothing about a password was learnt.
    outputs: [{ kind: "send", xml: failure("not-authorized") }],
  },
  {
    name: "PLAIN username that is not a valid localpart -> not-authorized, not counted",
    session: opened(true),
    event: auth("PLAIN", b64("\0us er\0pencil")),
    outputs: [{ kind: "send", xml: failure("not-authorized") }],
  },
  {
    name: "PLAIN with an empty password -> not-authorized, not counted",
    session: opened(true),
    event: auth("PLAIN", b64("\0user\0")),
    outputs: [{ kind: "send", xml: failure("not-authorized") }],
  },
  {
    name: "throttled address -> temporary-auth-failure",
    session: opened(false),
    ctx: testCtx({ isAuthThrottled: () => true }),
    event: auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
    outputs: [{
      kind: "send",
      xml: failure("temporary-auth-failure", "Too many failed logins; try again later"),
    }],
  },
  {
    name: "throttled account (SCRAM) -> temporary-auth-failure",
    session: opened(false),
    ctx: testCtx({ isAuthThrottled: (_ip, username) => username === "user" }),
    event: auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
    outputs: [{
      kind: "send",
      xml: failure("temporary-auth-failure", "Too many failed logins; try again later"),
    }],
  },
  {
    name: "throttled account (PLAIN) -> temporary-auth-failure",
    session: opened(true),
    ctx: testCtx({ isAuthThrottled: (_ip, username) => username === "user" }),
    event: auth("PLAIN", b64("\0user\0pencil")),
    outputs: [{
      kind: "send",
      xml: failure("temporary-auth-failure", "Too many failed logins; try again later"),
    }],
  },
  {
    name: "abort -> aborted",
    session: opened(false),
    event: stanzaEvent(elem("abort", { xmlns: NS_SASL })),
    outputs: [{ kind: "send", xml: failure("aborted") }],
  },
  {
    name: "response without an exchange -> malformed-request",
    session: opened(false),
    event: response(b64(RFC5802.clientFinal)),
    outputs: [{ kind: "send", xml: failure("malformed-request", "No exchange in progress") }],
  },
];

for (const c of AUTH_FAILURES) {
  Deno.test(`sasl: ${c.name}`, () => {
    const [next, out] = reduce(c.session, c.event, c.ctx ?? testCtx());
    assert.deepEqual(show(out), c.outputs);
    // A failed step leaves the session as it was: unauthenticated, no exchange.
    assert.deepEqual(record(next), record(c.session));
  });
}

Deno.test("sasl: y flag is accepted when -PLUS was not offered", () => {
  const [next, out] = reduce(opened(false), auth("SCRAM-SHA-1", b64("y,,n=user,r=abc")), testCtx());
  assert.deepEqual(out, [{ kind: "load-credentials", host: HOST, username: "user" }]);
  assert.equal(next.sasl?.step, "await-credentials");
});

Deno.test("sasl: a throttle for another account does not hold this one back", () => {
  const ctx = testCtx({ isAuthThrottled: (_ip, username) => username === "mallory" });
  const [, out] = reduce(opened(false), auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)), ctx);
  assert.deepEqual(out, [{ kind: "load-credentials", host: HOST, username: "user" }]);
});

Deno.test("sasl: abort mid-exchange clears it, and late credentials are ignored", () => {
  const ctx = testCtx({ nonces: [RFC5802.serverNonce] });
  const s0 = opened(false);
  const { session: aborted, outputs } = run(s0, [
    auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
    stanzaEvent(elem("abort", { xmlns: NS_SASL })),
  ], ctx);
  assert.deepEqual(show(outputs), [
    { kind: "load-credentials", host: HOST, username: "user" },
    { kind: "send", xml: failure("aborted") },
  ]);
  assert.deepEqual(record(aborted), record(s0));
  const [late, none] = reduce(aborted, loaded(CREDS), ctx);
  assert.equal(late, aborted);
  assert.deepEqual(none, []);
});

Deno.test("sasl: credentials for another username are ignored", () => {
  const ctx = testCtx({ nonces: [RFC5802.serverNonce] });
  const s1 = run(opened(false), [auth("SCRAM-SHA-1", b64(RFC5802.clientFirst))], ctx).session;
  const [next, out] = reduce(s1, loaded(CREDS, "mallory"), ctx);
  assert.equal(next, s1);
  assert.deepEqual(out, []);
});

Deno.test("sasl: a response before the credentials arrived -> malformed-request", () => {
  const ctx = testCtx();
  const s0 = opened(false);
  const { session, outputs } = run(s0, [
    auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
    response(b64(RFC5802.clientFinal)),
  ], ctx);
  assert.deepEqual(show(outputs.slice(1)), [
    { kind: "send", xml: failure("malformed-request", "No exchange in progress") },
  ]);
  assert.deepEqual(record(session), record(s0));
});

Deno.test("sasl: a bad base64 response -> incorrect-encoding", () => {
  const ctx = testCtx({ nonces: [RFC5802.serverNonce] });
  const s0 = opened(false);
  const { session, outputs } = run(s0, [
    auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
    loaded(CREDS),
    response("%%%%"),
  ], ctx);
  assert.deepEqual(show(outputs.slice(2)), [{ kind: "send", xml: failure("incorrect-encoding") }]);
  assert.deepEqual(record(session), record(s0));
});

// ---------------------------------------------------------------------------------------------
// Stanzas before authentication end the stream.

function streamError(condition: string, text: string): string {
  return `<stream:error><${condition} xmlns="${ERR_NS}"/>` +
    `<text xmlns="${ERR_NS}" xml:lang="en">${text}</text></stream:error>`;
}

for (
  const c of [
    {
      name: "a stanza before auth -> not-authorized",
      session: opened(true),
      ctx: testCtx({ requireEncryption: true }),
      condition: "not-authorized",
      text: "Authenticate first",
    },
    {
      name: "a stanza before auth on plain TCP without a requirement -> not-authorized",
      session: opened(false),
      ctx: testCtx(),
      condition: "not-authorized",
      text: "Authenticate first",
    },
    {
      name: "a stanza before STARTTLS when encryption is required -> policy-violation",
      session: opened(false),
      ctx: testCtx({ requireEncryption: true }),
      condition: "policy-violation",
      text: "Encryption is required (STARTTLS)",
    },
  ] as const
) {
  Deno.test(`sasl: ${c.name}`, () => {
    const msg = stanza("message", { to: "other@example.com" }, [elem("body", {}, ["hi"])]);
    const [next, out] = reduce(c.session, stanzaEvent(msg), c.ctx);
    assert.deepEqual(show(out), [
      { kind: "close-stream", xml: streamError(c.condition, c.text) },
      { kind: "disconnect", error: { condition: c.condition, text: c.text } },
    ]);
    assert.deepEqual(record(next), record({ ...c.session, destroyed: true }));
  });
}

Deno.test("sasl: after success the restarted stream offers binding", () => {
  const ctx = testCtx({ nonces: [RFC5802.serverNonce] });
  const { session, outputs } = run(opened(false), [
    auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
    loaded(CREDS),
    response(b64(RFC5802.clientFinal)),
    streamOpen(),
  ], ctx);
  const last: Output[] = outputs.slice(-2);
  assert.equal(last[0].kind, "open-stream");
  assert.deepEqual(show(last.slice(1)), [{
    kind: "send",
    xml: '<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/>' +
      '<session xmlns="urn:ietf:params:xml:ns:xmpp-session"><optional/></session>' +
      '<limits xmlns="urn:xmpp:stream-limits:0"><max-bytes>262144</max-bytes>' +
      "<idle-seconds>300</idle-seconds></limits>" + authedExtrasXml(testCtx()) +
      "</stream:features>",
  }]);
  assert.equal(session.type, "c2s");
  assert.equal(session.notopen, false);
  assert.equal(session.streamId, "id1");
});

Deno.test("sasl: an exchange started in the clear does not survive STARTTLS", () => {
  const ctx = testCtx({ nonces: [RFC5802.serverNonce] });
  const { session, outputs } = run(opened(false), [
    auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
    loaded(CREDS),
    stanzaEvent(elem("starttls", { xmlns: NS_TLS })),
    { kind: "tls-done", channelBindings: {} },
    streamOpen(),
    response(b64(RFC5802.clientFinal)),
  ], ctx);
  assert.deepEqual(show(outputs.slice(-1)), [
    { kind: "send", xml: failure("malformed-request", "No exchange in progress") },
  ]);
  assert.equal(session.type, "c2s_unauthed");
  assert.equal(session.username, undefined);
});

// ---------------------------------------------------------------------------------------------
// What the login throttle hears about: failed password checks only.

Deno.test("sasl: SCRAM against decoy credentials (unknown account): the proof fails and counts", () => {
  const ctx = testCtx({ nonces: [RFC5802.serverNonce] });
  const decoys = decoyCredentialSet(new Uint8Array(32), "user", 4096);
  const s0 = opened(false);
  const { session: s1, outputs: out1 } = run(s0, [
    auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
    loaded(decoys),
  ], ctx);
  const serverFirst = `r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=${
    decoys["SHA-1"]!.salt
  },i=4096`;
  assert.deepEqual(show(out1.slice(1)), [
    { kind: "send", xml: `<challenge xmlns="${SASL}">${b64(serverFirst)}</challenge>` },
  ]);
  const final = clientFinalMessage({
    hash: "SHA-1",
    password: "pencil",
    clientFirst: RFC5802.clientFirst,
    serverFirst,
  });
  const [s2, out2] = reduce(s1, response(b64(final.message)), ctx);
  assert.deepEqual(show(out2), [
    { kind: "send", xml: failure("not-authorized") },
    { kind: "auth-result", ok: false, username: "user" },
  ]);
  assert.deepEqual(record(s2), record(s0));
});

for (
  const [name, clientFinal, condition] of [
    [
      "a nonce that is not the exchange's",
      "c=biws,r=fyko+d2lbbFgONRv9qkxdawLother,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=",
      "not-authorized",
    ],
    ["no proof", "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j", "malformed-request"],
    [
      "a proof that is not base64",
      "c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=!!!!",
      "incorrect-encoding",
    ],
  ] as const
) {
  Deno.test(`sasl: a SCRAM response with ${name} fails before the proof: not counted`, () => {
    const ctx = testCtx({ nonces: [RFC5802.serverNonce] });
    const { outputs } = run(opened(false), [
      auth("SCRAM-SHA-1", b64(RFC5802.clientFirst)),
      loaded(CREDS),
      response(b64(clientFinal)),
    ], ctx);
    assert.deepEqual(show(outputs.slice(2)), [{ kind: "send", xml: failure(condition) }]);
  });
}

Deno.test("sasl: a non-ASCII username and password: UTF-8 both ways, exact v=", () => {
  // The payloads' text is decoded and encoded as UTF-8 (the ASCII fast path must not take it).
  const salt = unb64(RFC7677.salt);
  const creds: ScramCredentialSet = {
    "SHA-256": deriveCredentials("pässwörd", "SHA-256", salt, 4096),
  };
  const ctx = testCtx({ nonces: ["srvnonce"] });
  const clientFirst = clientFirstMessage("jüliet", "clientnonce");
  const [s1, out1] = reduce(opened(false), auth("SCRAM-SHA-256", b64(clientFirst)), ctx);
  assert.deepEqual(out1, [{ kind: "load-credentials", host: HOST, username: "jüliet" }]);
  const [s2, out2] = reduce(s1, loaded(creds, "jüliet"), ctx);
  const serverFirst = `r=clientnoncesrvnonce,s=${RFC7677.salt},i=4096`;
  assert.deepEqual(show(out2), [
    { kind: "send", xml: `<challenge xmlns="${SASL}">${b64(serverFirst)}</challenge>` },
  ]);
  const final = clientFinalMessage({
    hash: "SHA-256",
    password: "pässwörd",
    clientFirst,
    serverFirst,
  });
  const [s3, out3] = reduce(s2, response(b64(final.message)), ctx);
  assert.deepEqual(show(out3), [
    {
      kind: "send",
      xml: `<success xmlns="${SASL}">${b64(final.expectedServerFinal)}</success>`,
    },
    { kind: "auth-result", ok: true, username: "jüliet" },
    { kind: "reset-stream", authenticated: true },
  ]);
  assert.equal(s3.type, "c2s");
});
