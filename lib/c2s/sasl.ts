/**
 * SASL authentication (RFC 6120 §6): SCRAM-SHA-1, SCRAM-SHA-256 and their -PLUS variants
 * (RFC 5802, RFC 7677, channel binding per XEP-0440), and PLAIN (RFC 4616) under TLS.
 * Credentials arrive asynchronously: the reducer asks with `load-credentials` and continues on
 * `credentials-loaded`.
 *
 * Only a failed password check is reported to the login throttle (`auth-result`): a wrong
 * SCRAM proof, a wrong PLAIN password, or either for an account that does not exist (which
 * must cost the same, or the throttle would tell which accounts exist). Everything refused
 * before a password was checked (unknown mechanisms, malformed or aborted exchanges, channel
 * binding a client cannot do, the `y` flag) is not: real clients walk through mechanisms that
 * way, and none of it tells anyone anything about a password.
 * @module
 */
import {
  type ClientFirst,
  decoyCredentialSet,
  INVALID_PROOF,
  MIN_ITERATIONS,
  parseClientFirst,
  type ScramCredentials,
  type ScramCredentialSet,
  type ScramHash,
  serverFirstMessage,
  verifyClientFinal,
  verifyPassword,
} from "../xmpp/scram.ts";
import type { ChannelBindings, SaslExchange, Session } from "../core/session.ts";
import { elem, type Element, text } from "../xml/element.ts";
import { prepDomainpart, prepLocalpart } from "../xmpp/jid.ts";
import { NS_SASL } from "../xmpp/namespaces.ts";
import { type Mechanism, offeredMechanisms } from "./features.ts";
import type { Ctx, Step } from "../core/types.ts";

/** RFC 6120 §6.5 failure conditions. */
export type SaslCondition =
  | "aborted"
  | "account-disabled"
  | "credentials-expired"
  | "encryption-required"
  | "incorrect-encoding"
  | "invalid-authzid"
  | "invalid-mechanism"
  | "malformed-request"
  | "mechanism-too-weak"
  | "not-authorized"
  | "temporary-auth-failure";

/** The `<failure/>` element. */
function saslFailure(condition: SaslCondition, reason?: string): Element {
  return elem("failure", { xmlns: NS_SASL }, [
    elem(condition),
    reason !== undefined && elem("text", { "xml:lang": "en" }, [reason]),
  ]);
}

/** Ends the exchange with a failure that does not count towards throttling. */
function fail(s: Session, condition: SaslCondition, reason?: string): Step {
  return [{ ...s, sasl: undefined }, [{ kind: "send", stanza: saslFailure(condition, reason) }]];
}

/** Ends the exchange after a password check failed: counted against the address and account. */
function wrongCredentials(s: Session, username: string): Step {
  return [{ ...s, sasl: undefined }, [
    { kind: "send", stanza: saslFailure("not-authorized") },
    { kind: "auth-result", ok: false, username },
  ]];
}

const B64 = /^[A-Za-z0-9+/]*={0,2}$/;
// deno-lint-ignore no-control-regex
const ASCII = /^[\x00-\x7f]*$/;
// One for the process: making a TextDecoder costs more than the rest of a SASL step (it showed
// as onAuth's own time in the profiles), and decode() without `stream` keeps no state.
const UTF8 = new TextDecoder("utf-8", { fatal: true });
const ENCODER = new TextEncoder();

/** Decodes the base64 payload of `<auth/>` or `<response/>`; "=" is the empty string. */
function decodePayload(el: Element): string | undefined {
  const t = text(el).trim();
  if (t === "=" || t === "") return "";
  if (t.length % 4 !== 0 || !B64.test(t)) return undefined;
  try {
    // SCRAM messages are ASCII but for a non-ASCII username: then atob's binary string is the
    // text itself, and no bytes need making and decoding.
    const bin = atob(t);
    return ASCII.test(bin) ? bin : UTF8.decode(Uint8Array.fromBase64(t));
  } catch {
    return undefined;
  }
}

function encode(s: string): string {
  return ASCII.test(s) ? btoa(s) : ENCODER.encode(s).toBase64();
}

function hashOf(m: string): ScramHash {
  return m.startsWith("SCRAM-SHA-256") ? "SHA-256" : "SHA-1";
}

/** The authzid may only name the authenticating user (RFC 6120 §6.3.8). */
function authzidOk(authzid: string | undefined, username: string, host: string): boolean {
  if (authzid === undefined || authzid === "") return true;
  const at = authzid.indexOf("@");
  if (at < 0) return prepLocalpart(authzid) === username;
  const slash = authzid.indexOf("/");
  if (slash >= 0) return false;
  return prepLocalpart(authzid.slice(0, at)) === username &&
    prepDomainpart(authzid.slice(at + 1)) === host;
}

/** `<auth mechanism=...>`: start an exchange. */
export function onAuth(s: Session, el: Element, ctx: Ctx): Step {
  if (s.type !== "c2s_unauthed") return fail(s, "aborted", "Already authenticated");
  const host = s.host ?? ctx.hosts[0];
  const mechanism = el.attrs.mechanism ?? "";
  if (!s.secure && ctx.requireEncryption) return fail(s, "encryption-required");
  const offered = offeredMechanisms(s, ctx);
  if (mechanism === "PLAIN" && !s.secure) return fail(s, "encryption-required");
  if (!offered.includes(mechanism as Mechanism)) return fail(s, "invalid-mechanism");
  const payload = decodePayload(el);
  if (payload === undefined) return fail(s, "incorrect-encoding");
  if (ctx.isAuthThrottled(s.ip)) {
    return fail(s, "temporary-auth-failure", "Too many failed logins; try again later");
  }
  if (mechanism === "PLAIN") return startPlain(s, payload, host, ctx);
  return startScram(s, mechanism as Mechanism, payload, host, ctx);
}

function startPlain(s: Session, payload: string, host: string, ctx: Ctx): Step {
  const parts = payload.split("\0");
  if (parts.length !== 3) return fail(s, "malformed-request");
  const [authzid, authcid, password] = parts;
  const username = prepLocalpart(authcid);
  if (username === undefined || password === "") return fail(s, "not-authorized");
  if (!authzidOk(authzid, username, host)) return fail(s, "invalid-authzid");
  if (ctx.isAuthThrottled(s.ip, username)) {
    return fail(s, "temporary-auth-failure", "Too many failed logins; try again later");
  }
  const sasl: SaslExchange = {
    mechanism: "PLAIN",
    step: "await-credentials",
    username,
    state: { password },
  };
  return [{ ...s, sasl }, [{ kind: "load-credentials", host, username }]];
}

function startScram(
  s: Session,
  mechanism: Mechanism,
  payload: string,
  host: string,
  ctx: Ctx,
): Step {
  const first = parseClientFirst(payload);
  if ("error" in first) return fail(s, first.error, first.text);
  // Normalised first: every auth-result must name the account the way the throttle keys it.
  const username = prepLocalpart(first.username);
  if (username === undefined) return fail(s, "not-authorized");
  const plus = mechanism.endsWith("-PLUS");
  if (plus) {
    if (first.cbFlag !== "p") return fail(s, "malformed-request", "-PLUS needs channel binding");
    if (bindingData(s, first.cbName) === undefined) {
      return fail(s, "malformed-request", "Unsupported channel binding type");
    }
  } else {
    if (first.cbFlag === "p") {
      return fail(s, "malformed-request", "Channel binding needs a -PLUS mechanism");
    }
    // RFC 5802 §6: "y" means the client thinks we do not support binding; we do: downgrade.
    if (first.cbFlag === "y" && offeredMechanisms(s, ctx).some((m) => m.endsWith("-PLUS"))) {
      return fail(s, "not-authorized", "Channel binding downgrade detected");
    }
  }
  if (!authzidOk(first.authzid, username, host)) return fail(s, "invalid-authzid");
  if (ctx.isAuthThrottled(s.ip, username)) {
    return fail(s, "temporary-auth-failure", "Too many failed logins; try again later");
  }
  const sasl: SaslExchange = {
    mechanism,
    step: "await-credentials",
    username,
    state: {
      gs2Header: first.gs2Header,
      cbFlag: first.cbFlag,
      cbName: first.cbName ?? "",
      authzid: first.authzid ?? "",
      clientUsername: first.username,
      clientNonce: first.clientNonce,
      bare: first.bare,
    },
  };
  return [{ ...s, sasl }, [{ kind: "load-credentials", host, username }]];
}

/**
 * The channel binding data for a client-chosen type name. Own keys only: a name such as
 * "constructor" must not find Object.prototype members and pass them off as binding data.
 */
function bindingData(s: Session, name: string | undefined): Uint8Array | undefined {
  if (name === undefined || !Object.hasOwn(s.channelBindings, name)) return undefined;
  return s.channelBindings[name as keyof ChannelBindings];
}

function firstOf(state: Readonly<Record<string, string>>): ClientFirst {
  return {
    gs2Header: state.gs2Header,
    cbFlag: state.cbFlag as ClientFirst["cbFlag"],
    cbName: state.cbName === "" ? undefined : state.cbName,
    authzid: state.authzid === "" ? undefined : state.authzid,
    username: state.clientUsername,
    clientNonce: state.clientNonce,
    bare: state.bare,
  };
}

/**
 * Stand-in credentials when none could be loaded. The shell answers an unknown account with
 * stable decoys of its own (`AccountStore.decoyCredentials`); this covers a failed load, so
 * that even then the exchange and its cost look like those of a real account.
 */
function fallbackCredentials(ctx: Ctx, username: string): ScramCredentialSet {
  return decoyCredentialSet(ENCODER.encode(ctx.nonce()), username, MIN_ITERATIONS);
}

/**
 * The account's credentials arrived (undefined: they could not be loaded; an unknown account
 * comes with decoy credentials that no password or proof matches).
 */
export function onCredentials(
  s: Session,
  username: string,
  creds: ScramCredentialSet | undefined,
  ctx: Ctx,
): Step {
  const sasl = s.sasl;
  if (sasl === undefined || sasl.step !== "await-credentials" || sasl.username !== username) {
    return [s, []];
  }
  if (sasl.mechanism === "PLAIN") {
    // The derivation runs whatever was loaded: the same work for every answer.
    const ok = verifyPassword(sasl.state.password, creds ?? fallbackCredentials(ctx, username));
    if (!ok || creds === undefined) return wrongCredentials(s, username);
    return succeed(s, username, undefined);
  }
  const hash = hashOf(sasl.mechanism);
  const c = creds?.[hash] ?? fallbackCredentials(ctx, username)[hash]!;
  const first = firstOf(sasl.state);
  const serverFirst = serverFirstMessage(first, ctx.nonce(), c);
  const next: SaslExchange = {
    ...sasl,
    step: "await-final",
    state: { ...sasl.state, serverFirst, known: creds?.[hash] !== undefined ? "1" : "" },
  };
  const challenge = elem("challenge", { xmlns: NS_SASL }, [encode(serverFirst)]);
  // Keep the credentials used in the challenge: the proof is checked against the same ones.
  return [{ ...s, sasl: { ...next, state: { ...next.state, ...credsState(c) } } }, [
    { kind: "send", stanza: challenge },
  ]];
}

function credsState(c: ScramCredentials): Record<string, string> {
  return {
    salt: c.salt,
    iterations: String(c.iterations),
    storedKey: c.storedKey,
    serverKey: c.serverKey,
  };
}

/** `<response/>`: the client-final-message of SCRAM. */
export function onResponse(s: Session, el: Element): Step {
  const sasl = s.sasl;
  if (sasl === undefined || sasl.step !== "await-final") {
    return fail(s, "malformed-request", "No exchange in progress");
  }
  const payload = decodePayload(el);
  if (payload === undefined) return fail(s, "incorrect-encoding");
  const st = sasl.state;
  const first = firstOf(st);
  const result = verifyClientFinal({
    hash: hashOf(sasl.mechanism),
    creds: {
      salt: st.salt,
      iterations: Number(st.iterations),
      storedKey: st.storedKey,
      serverKey: st.serverKey,
    },
    first,
    serverFirst: st.serverFirst,
    clientFinal: payload,
    channelBinding: first.cbFlag === "p" ? bindingData(s, first.cbName) : undefined,
  });
  if (result.ok ? st.known !== "1" : result.text === INVALID_PROOF) {
    return wrongCredentials(s, sasl.username);
  }
  if (!result.ok) return fail(s, result.error);
  return succeed(s, sasl.username, result.serverFinal);
}

/** `<abort/>` (RFC 6120 §6.4.4). */
export function onAbort(s: Session): Step {
  return fail(s, "aborted");
}

function succeed(s: Session, username: string, additional: string | undefined): Step {
  const success = elem("success", { xmlns: NS_SASL }, [
    additional !== undefined ? encode(additional) : undefined,
  ]);
  return [{
    ...s,
    type: "c2s",
    username,
    sasl: undefined,
    notopen: true,
    streamId: undefined,
  }, [
    { kind: "send", stanza: success },
    { kind: "auth-result", ok: true, username },
    { kind: "reset-stream", authenticated: true },
  ]];
}

/** True for elements of the SASL namespace. */
export function isSasl(el: Element): boolean {
  return el.xmlns === NS_SASL;
}
