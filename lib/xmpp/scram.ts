/**
 * SCRAM (RFC 5802, RFC 7677), server side and pure: every function here except
 * {@link newCredentialSet} is a deterministic function of its arguments, so the SASL reducer
 * can call it directly (the only state is a count of PBKDF2 runs, {@link pbkdf2Runs}, which no
 * result depends on). The client-side helpers at the end exist for tests and benchmarks.
 *
 * Password normalisation approximates SASLprep (RFC 4013): non-ASCII spaces become U+0020,
 * "commonly mapped to nothing" characters are removed, then NFKC. The prohibited-output and
 * bidi checks of stringprep are not done; a password that would fail them is simply hashed as
 * mapped, which cannot weaken anything because the same mapping applies on every login.
 *
 * @module
 */
import { createHmac, pbkdf2Sync } from "node:crypto";
import { equalBytes, hashBytes, type HashName, hmacBytes, utf8Bytes } from "./hmac.ts";

/** Hash functions SCRAM is offered with. */
export type ScramHash = HashName;

/** What is stored for one hash: never the password. Byte strings are base64. */
export interface ScramCredentials {
  readonly salt: string;
  readonly iterations: number;
  readonly storedKey: string;
  readonly serverKey: string;
}

/** An account's credentials for each hash. */
export type ScramCredentialSet = Readonly<Partial<Record<ScramHash, ScramCredentials>>>;

/** The parsed client-first-message. */
export interface ClientFirst {
  /** The GS2 header exactly as sent, e.g. `n,,` or `p=tls-server-end-point,,`. */
  readonly gs2Header: string;
  /** `n`: no channel binding; `y`: client could bind but thinks we can't; `p`: binds. */
  readonly cbFlag: "n" | "y" | "p";
  /** The channel binding type when `cbFlag` is `p`. */
  readonly cbName?: string;
  /** The decoded authorization identity, when one was given. */
  readonly authzid?: string;
  /** The decoded (unescaped) username. */
  readonly username: string;
  readonly clientNonce: string;
  /** client-first-message-bare: the message without the GS2 header, part of AuthMessage. */
  readonly bare: string;
}

/**
 * Why an exchange failed, as RFC 6120 §6.5 SASL conditions. `invalid-authzid` is never
 * produced here (only the caller knows whom the user may act for) but belongs to the set.
 */
export type ScramFailure =
  | "malformed-request"
  | "not-authorized"
  | "invalid-authzid"
  | "incorrect-encoding";

/** A failure with a human-readable reason (safe to show the client). */
export interface ScramError {
  readonly error: ScramFailure;
  readonly text: string;
}

/**
 * The failure text of a proof that did not verify (RFC 5802 `e=invalid-proof`): the one
 * failure of {@link verifyClientFinal} that checked the password, which login throttling counts.
 */
export const INVALID_PROOF = "invalid-proof";

/** The smallest iteration count accepted for new credentials (RFC 7677 §4). */
export const MIN_ITERATIONS = 4096;

const NODE_HASH: Readonly<Record<ScramHash, string>> = { "SHA-1": "sha1", "SHA-256": "sha256" };
const HASH_BYTES: Readonly<Record<ScramHash, number>> = { "SHA-1": 20, "SHA-256": 32 };

// RFC 3454 C.1.2 (non-ASCII space characters): mapped to SPACE by RFC 4013 §2.1.
const NON_ASCII_SPACE = /[\u00A0\u1680\u2000-\u200B\u202F\u205F\u3000]/g;
// RFC 3454 B.1 (commonly mapped to nothing). U+200B is also in C.1.2, which is applied first.
const MAPPED_TO_NOTHING =
  /[\u00AD\u034F\u1806\u180B-\u180D\u200B-\u200D\u2060\uFE00-\uFE0F\uFEFF]/g;

// printable = %x21-2B / %x2D-7E (RFC 5802 §7): visible ASCII except the comma.
const PRINTABLE = /^[\x21-\x2B\x2D-\x7E]+$/;
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// cb-name = 1*(ALPHA / DIGIT / "." / "-")
const CB_NAME = /^[A-Za-z0-9.-]+$/;
const ATTR_VAL = /^[A-Za-z]=/;

function normalize(password: string): string {
  return password.replace(NON_ASCII_SPACE, " ").replace(MAPPED_TO_NOTHING, "").normalize("NFKC");
}

// The HMACs and hashes of an exchange are lib/xmpp/hmac.ts's: see there why not node:crypto's.
function hmac(hash: ScramHash, key: Uint8Array, data: string | Uint8Array): Uint8Array {
  return hmacBytes(hash, key, typeof data === "string" ? utf8Bytes(data) : data);
}

function digest(hash: ScramHash, data: Uint8Array): Uint8Array {
  return hashBytes(hash, data);
}

let runs = 0;

/**
 * How many PBKDF2 derivations this process has run: lets tests check that a login for an
 * unknown account costs the same derivation as one for a real account, without timing it.
 */
export function pbkdf2Runs(): number {
  return runs;
}

function saltedPassword(
  password: string,
  hash: ScramHash,
  salt: Uint8Array,
  iterations: number,
): Uint8Array {
  runs++;
  return pbkdf2Sync(normalize(password), salt, iterations, HASH_BYTES[hash], NODE_HASH[hash]);
}

function toBase64(bytes: Uint8Array): string {
  return bytes.toBase64();
}

/** Strict base64 (padded, no whitespace); undefined when the text is not base64. */
function fromBase64(text: string): Uint8Array | undefined {
  // The pattern is the strictness (Uint8Array.fromBase64 would skip whitespace); the decoding
  // is V8's own, without node:buffer's conversions.
  return BASE64.test(text) ? Uint8Array.fromBase64(text) : undefined;
}

function xor(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] ^ b[i];
  return out;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function equalConstantTime(a: Uint8Array, b: Uint8Array): boolean {
  // The lengths are public (they follow from the hash), so only the contents need hiding.
  return equalBytes(a, b);
}

function fail(error: ScramFailure, text: string): ScramError {
  return { error, text };
}

/** Decodes a saslname; undefined when an `=` starts anything but `=2C` or `=3D`. */
function decodeSaslname(text: string): string | undefined {
  if (text === "") return undefined;
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i];
    if (ch !== "=") {
      out += ch;
      continue;
    }
    const escape = text.slice(i, i + 3);
    if (escape === "=2C") out += ",";
    else if (escape === "=3D") out += "=";
    else return undefined;
    i += 2;
  }
  return out;
}

function encodeSaslname(name: string): string {
  return name.replaceAll("=", "=3D").replaceAll(",", "=2C");
}

/**
 * Derives what the server stores for one hash (RFC 5802 §3): SaltedPassword =
 * PBKDF2(Normalize(password), salt, i), ClientKey = HMAC(SP, "Client Key"),
 * StoredKey = H(ClientKey), ServerKey = HMAC(SP, "Server Key").
 */
export function deriveCredentials(
  password: string,
  hash: ScramHash,
  salt: Uint8Array,
  iterations: number,
): ScramCredentials {
  if (!Number.isSafeInteger(iterations) || iterations < 1) {
    throw new RangeError(`SCRAM iteration count must be a positive integer, got ${iterations}`);
  }
  if (salt.length === 0) throw new RangeError("SCRAM salt must not be empty");
  const sp = saltedPassword(password, hash, salt, iterations);
  return {
    salt: toBase64(salt),
    iterations,
    storedKey: toBase64(digest(hash, hmac(hash, sp, "Client Key"))),
    serverKey: toBase64(hmac(hash, sp, "Server Key")),
  };
}

/**
 * Fresh credentials for both SHA-1 and SHA-256, each with its own random salt.
 * The only impure function of this module (it draws randomness).
 */
export function newCredentialSet(
  password: string,
  iterations: number = MIN_ITERATIONS,
): ScramCredentialSet {
  if (!Number.isSafeInteger(iterations) || iterations < MIN_ITERATIONS) {
    throw new RangeError(`SCRAM iteration count must be an integer >= ${MIN_ITERATIONS}`);
  }
  const make = (hash: ScramHash) =>
    deriveCredentials(
      password,
      hash,
      crypto.getRandomValues(new Uint8Array(SALT_BYTES)),
      iterations,
    );
  return { "SHA-1": make("SHA-1"), "SHA-256": make("SHA-256") };
}

/** Salt bytes of new credentials: 16, which is 24 characters of base64. */
const SALT_BYTES = 16;

/**
 * Stand-in credentials for an account that does not exist, so that an exchange for it looks
 * like one for a real account (RFC 5802 §9 leaves this to the server): per hash a salt of
 * {@link SALT_BYTES}, `iterations` as new accounts get, and keys that no password matches
 * (HMAC output: a password would need a preimage of it). Each value is an HMAC of `name`
 * under `key`, so that asking twice for the same name shows the same salt, as a real account
 * does, while the salts say nothing to anyone without the key.
 */
export function decoyCredentialSet(
  key: Uint8Array,
  name: string,
  iterations: number,
): ScramCredentialSet {
  const derive = (hash: ScramHash, label: string, bytes: number) =>
    toBase64(
      createHmac("sha256", key).update(`${label}\0${hash}\0${name}`).digest().subarray(0, bytes),
    );
  const make = (hash: ScramHash): ScramCredentials => ({
    salt: derive(hash, "salt", SALT_BYTES),
    iterations,
    storedKey: derive(hash, "stored-key", HASH_BYTES[hash]),
    serverKey: derive(hash, "server-key", HASH_BYTES[hash]),
  });
  return { "SHA-1": make("SHA-1"), "SHA-256": make("SHA-256") };
}

/**
 * Checks a plaintext password (SASL PLAIN) against stored credentials by rederiving the
 * StoredKey with the stored salt and iterations; SHA-256 is preferred when present.
 */
export function verifyPassword(password: string, creds: ScramCredentialSet): boolean {
  const hash: ScramHash | undefined = creds["SHA-256"]
    ? "SHA-256"
    : creds["SHA-1"]
    ? "SHA-1"
    : undefined;
  if (hash === undefined) return false;
  const stored = creds[hash]!;
  const salt = fromBase64(stored.salt);
  const storedKey = fromBase64(stored.storedKey);
  if (!salt || !storedKey || salt.length === 0) return false;
  if (!Number.isSafeInteger(stored.iterations) || stored.iterations < 1) return false;
  const sp = saltedPassword(password, hash, salt, stored.iterations);
  return equalConstantTime(digest(hash, hmac(hash, sp, "Client Key")), storedKey);
}

/**
 * Parses a client-first-message (RFC 5802 §7):
 * `gs2-cbind-flag "," [authzid] "," [reserved-mext ","] username "," nonce ["," extensions]`.
 */
export function parseClientFirst(message: string): ClientFirst | ScramError {
  if (!message.isWellFormed()) return fail("incorrect-encoding", "Message is not valid UTF-8");
  if (message.includes("\0")) return fail("malformed-request", "NUL in message");
  const parts = message.split(",");
  if (parts.length < 4) return fail("malformed-request", "Too few attributes");
  const [flag, authzPart, ...bareParts] = parts;

  let cbFlag: ClientFirst["cbFlag"];
  let cbName: string | undefined;
  if (flag === "n" || flag === "y") cbFlag = flag;
  else if (flag.startsWith("p=") && CB_NAME.test(flag.slice(2))) {
    cbFlag = "p";
    cbName = flag.slice(2);
  } else return fail("malformed-request", "Bad channel binding flag");

  let authzid: string | undefined;
  if (authzPart !== "") {
    if (!authzPart.startsWith("a=")) return fail("malformed-request", "Bad authzid attribute");
    authzid = decodeSaslname(authzPart.slice(2));
    if (authzid === undefined) return fail("malformed-request", "Bad escape in authzid");
  }

  // RFC 5802 §5.1: an unknown mandatory extension makes the server fail the exchange.
  if (bareParts[0].startsWith("m=")) {
    return fail("malformed-request", "Mandatory extensions are not supported");
  }
  const [userPart, noncePart, ...extensions] = bareParts;
  if (!userPart.startsWith("n=")) return fail("malformed-request", "Expected username (n=)");
  const username = decodeSaslname(userPart.slice(2));
  if (username === undefined) return fail("malformed-request", "Bad escape in username");
  if (!noncePart?.startsWith("r=")) return fail("malformed-request", "Expected nonce (r=)");
  const clientNonce = noncePart.slice(2);
  if (!PRINTABLE.test(clientNonce)) return fail("malformed-request", "Bad client nonce");
  // Optional extensions are ignored, but they must at least be attr=value.
  if (!extensions.every((e) => ATTR_VAL.test(e))) {
    return fail("malformed-request", "Bad extension attribute");
  }

  const gs2Header = `${flag},${authzPart},`;
  return {
    gs2Header,
    cbFlag,
    ...(cbName === undefined ? {} : { cbName }),
    ...(authzid === undefined ? {} : { authzid }),
    username,
    clientNonce,
    bare: message.slice(gs2Header.length),
  };
}

/** The server-first-message: `r=<client nonce><server nonce>,s=<salt>,i=<iterations>`. */
export function serverFirstMessage(
  first: ClientFirst,
  serverNonce: string,
  creds: ScramCredentials,
): string {
  // A bad server nonce is our own bug, not the client's: throw rather than return a failure.
  if (!PRINTABLE.test(serverNonce)) throw new RangeError("Server nonce must be printable");
  return `r=${first.clientNonce}${serverNonce},s=${creds.salt},i=${creds.iterations}`;
}

function attribute(part: string | undefined, name: string): string | undefined {
  return part?.startsWith(`${name}=`) ? part.slice(name.length + 1) : undefined;
}

/**
 * Checks the client-final-message (`c=...,r=...[,ext],p=...`) and, when the proof is right,
 * returns the server-final-message (`v=<ServerSignature>`).
 *
 * Channel binding: with flag `p`, `c=` must be base64 of the GS2 header followed by
 * `channelBinding`. When the caller passes no `channelBinding` (it cannot provide the type
 * the client asked for), the exchange fails with `not-authorized`: RFC 5802 §7 treats this as
 * the server-error `channel-binding-not-supported`, an authentication failure reached through
 * a well-formed request, not a syntax problem. Callers should refuse such a client-first
 * earlier, but this function does not rely on it. With `n`/`y`, `channelBinding` is ignored;
 * the `y` downgrade check is the caller's (it knows whether PLUS was offered).
 */
export function verifyClientFinal(args: {
  readonly hash: ScramHash;
  readonly creds: ScramCredentials;
  readonly first: ClientFirst;
  readonly serverFirst: string;
  readonly clientFinal: string;
  readonly channelBinding?: Uint8Array;
}): { readonly ok: true; readonly serverFinal: string } | ({ readonly ok: false } & ScramError) {
  const { hash, creds, first, serverFirst, clientFinal } = args;
  const refuse = (error: ScramFailure, text: string) => ({ ok: false as const, error, text });

  if (!clientFinal.isWellFormed()) return refuse("incorrect-encoding", "Message is not UTF-8");
  const lastComma = clientFinal.lastIndexOf(",");
  if (lastComma < 0) return refuse("malformed-request", "Too few attributes");
  const withoutProof = clientFinal.slice(0, lastComma);
  const proofText = attribute(clientFinal.slice(lastComma + 1), "p");
  const [cPart, rPart, ...extensions] = withoutProof.split(",");
  const cbText = attribute(cPart, "c");
  const nonce = attribute(rPart, "r");
  if (cbText === undefined) return refuse("malformed-request", "Expected channel binding (c=)");
  if (nonce === undefined) return refuse("malformed-request", "Expected nonce (r=)");
  if (proofText === undefined) return refuse("malformed-request", "Expected proof (p=) last");
  if (!extensions.every((e) => ATTR_VAL.test(e))) {
    return refuse("malformed-request", "Bad extension attribute");
  }

  const cbInput = fromBase64(cbText);
  if (cbInput === undefined) return refuse("incorrect-encoding", "Channel binding is not base64");
  const proof = fromBase64(proofText);
  if (proof === undefined) return refuse("incorrect-encoding", "Proof is not base64");

  let expectedCb: Uint8Array = utf8Bytes(first.gs2Header);
  if (first.cbFlag === "p") {
    if (args.channelBinding === undefined) {
      return refuse("not-authorized", "channel-binding-not-supported");
    }
    expectedCb = concat(expectedCb, args.channelBinding);
  }
  if (!equalConstantTime(cbInput, expectedCb)) {
    return refuse("not-authorized", "channel-bindings-dont-match");
  }

  const combined = attribute(serverFirst.split(",")[0], "r");
  if (combined === undefined || !combined.startsWith(first.clientNonce)) {
    // Our own server-first is broken or not the one for this client-first.
    return refuse("not-authorized", "Nonce does not belong to this exchange");
  }
  if (nonce !== combined || combined.length === first.clientNonce.length) {
    return refuse("not-authorized", "Nonce mismatch");
  }

  const storedKey = fromBase64(creds.storedKey);
  const serverKey = fromBase64(creds.serverKey);
  if (storedKey === undefined || serverKey === undefined) {
    throw new Error("Stored SCRAM credentials are not base64");
  }
  if (proof.length !== storedKey.length) return refuse("not-authorized", INVALID_PROOF);

  const authMessage = `${first.bare},${serverFirst},${withoutProof}`;
  const clientSignature = hmac(hash, storedKey, authMessage);
  const clientKey = xor(proof, clientSignature);
  if (!equalConstantTime(digest(hash, clientKey), storedKey)) {
    return refuse("not-authorized", INVALID_PROOF);
  }
  return { ok: true, serverFinal: `v=${toBase64(hmac(hash, serverKey, authMessage))}` };
}

/**
 * Client side (tests and benchmarks): the client-first-message with the username escaped.
 * `gs2Header` defaults to `n,,` (no channel binding, no authzid).
 */
export function clientFirstMessage(
  username: string,
  clientNonce: string,
  gs2Header: string = "n,,",
): string {
  return `${gs2Header}n=${encodeSaslname(username)},r=${clientNonce}`;
}

/**
 * Client side (tests and benchmarks): the client-final-message for a server-first, and the
 * server-final the client must then expect. `gs2Header` defaults to the one in `clientFirst`.
 * Throws on messages it cannot parse: it serves tests, not hostile input.
 */
export function clientFinalMessage(args: {
  hash: ScramHash;
  password: string;
  clientFirst: string;
  serverFirst: string;
  gs2Header?: string;
  channelBinding?: Uint8Array;
}): { readonly message: string; readonly expectedServerFinal: string } {
  const first = parseClientFirst(args.clientFirst);
  if ("error" in first) throw new Error(`Bad client-first: ${first.text}`);
  const gs2Header = args.gs2Header ?? first.gs2Header;

  const fields = new Map<string, string>();
  for (const part of args.serverFirst.split(",")) {
    const eq = part.indexOf("=");
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const nonce = fields.get("r");
  const salt = fromBase64(fields.get("s") ?? "");
  const iterations = Number(fields.get("i"));
  if (nonce === undefined || !nonce.startsWith(first.clientNonce)) {
    throw new Error("Server nonce does not extend the client nonce");
  }
  if (!salt || !Number.isSafeInteger(iterations) || iterations < 1) {
    throw new Error("Bad salt or iteration count in server-first");
  }

  let cbInput: Uint8Array = new TextEncoder().encode(gs2Header);
  if (gs2Header.startsWith("p=")) {
    cbInput = concat(cbInput, args.channelBinding ?? new Uint8Array());
  }
  const withoutProof = `c=${toBase64(cbInput)},r=${nonce}`;
  const authMessage = `${first.bare},${args.serverFirst},${withoutProof}`;

  const { hash } = args;
  const sp = saltedPassword(args.password, hash, salt, iterations);
  const clientKey = hmac(hash, sp, "Client Key");
  const clientSignature = hmac(hash, digest(hash, clientKey), authMessage);
  const serverSignature = hmac(hash, hmac(hash, sp, "Server Key"), authMessage);
  return {
    message: `${withoutProof},p=${toBase64(xor(clientKey, clientSignature))}`,
    expectedServerFinal: `v=${toBase64(serverSignature)}`,
  };
}
