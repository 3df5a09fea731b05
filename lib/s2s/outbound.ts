/**
 * Outgoing server-to-server streams as a pure reducer: from one local domain to one remote
 * domain, we open the stream, negotiate TLS, and authenticate with dialback (XEP-0220: a key
 * the remote checks with our domain's authoritative server, which is us, over a stream of its
 * own). Once the remote says `valid`, stanzas flow (`ready`); the shell keeps the queue of what
 * waits for that. The same stream carries our `<db:verify/>` checks of keys that servers of the
 * remote domain gave us on their incoming streams.
 *
 * With certificates (XEP-0178): when the remote's certificate is trusted and names its domain,
 * and it offers SASL EXTERNAL, we authenticate with our own certificate instead of dialback;
 * `s2s_secure_auth` makes a remote certificate that is not valid fail the link.
 *
 * XEP-0288: when the remote offers bidirectionality we ask for it before authenticating, and
 * once ready accept stanzas from the remote's domain to ours on this stream, because the
 * remote's identity is then established for that direction: with SASL EXTERNAL its certificate
 * was found valid for its domain (we try EXTERNAL only then), and with dialback it is the server
 * we reached for its domain and it answered `valid` to exactly our pair (the XEP's examples;
 * the same DNS trust as dialback in the other direction). A `valid` result we did not ask for
 * proves nothing (XEP-0288 §4). Its dialback requests for other domains on this stream are
 * refused with a dialback error: those take a stream of their own.
 * @module
 */
import { elem, type Element, renamespace } from "../xml/element.ts";
import type { ParseEvent } from "../xml/parser.ts";
import { certValidFor, type PeerCert } from "../xmpp/cert_names.ts";
import { dbResult, dbVerify, dialbackKey } from "../xmpp/dialback.ts";
import { parseJid, prepDomainpart } from "../xmpp/jid.ts";
import { bidiRequest, NS_BIDI_FEATURE } from "./bidi.ts";
import type { StanzaErrorCondition, StreamError } from "../xmpp/errors.ts";
import {
  NS_CLIENT,
  NS_DIALBACK,
  NS_SASL,
  NS_SERVER,
  NS_STREAMS,
  NS_TLS,
} from "../xmpp/namespaces.ts";
import type { StreamOutput } from "../xmpp/stream_xml.ts";

/** A key check to send: does `key` come from `remote` for stream `id` to `local`? */
export interface VerifyRequest {
  readonly local: string;
  readonly id: string;
  readonly key: string;
}

/** An outgoing stream's state. */
export interface S2sOutSession {
  /**
   * `connecting`: no socket yet; `opening`: our header sent, theirs awaited; `features`:
   * theirs came, features awaited; `starttls`: TLS asked for; `sasl`: SASL EXTERNAL asked
   * for; `dialback`: our key sent; `ready`: stanzas flow; `closed`.
   */
  readonly state:
    | "connecting"
    | "opening"
    | "features"
    | "starttls"
    | "sasl"
    | "dialback"
    | "ready"
    | "closed";
  readonly local: string;
  readonly remote: string;
  readonly secure: boolean;
  /** The id of the stream the remote gave us: what our key is made for. */
  readonly streamId?: string;
  /** Key checks waiting for the stream to be open. */
  readonly verifies: readonly VerifyRequest[];
  /** The remote's TLS certificate, as the shell found it. */
  readonly peer?: PeerCert;
  /** SASL EXTERNAL succeeded: the next stream's features make the link ready. */
  readonly sasl?: boolean;
  /**
   * XEP-0288: `asked`, we sent `<bidi/>`; `on`, ready with the remote's identity established:
   * its stanzas to us come on this stream too.
   */
  readonly bidi?: "asked" | "on";
}

/** A stream from `local` to `remote` about to connect. */
export function newS2sOut(local: string, remote: string): S2sOutSession {
  return { state: "connecting", local, remote, secure: false, verifies: [] };
}

/** What happens to an outgoing stream. */
export type S2sOutEvent =
  | Exclude<ParseEvent, { readonly kind: "error" }>
  | { readonly kind: "parse-error"; readonly condition: StreamError["condition"] }
  /** The socket is up; `directTls`: with TLS from the first byte (XEP-0368), `peer` its certificate. */
  | { readonly kind: "connected"; readonly directTls?: boolean; readonly peer?: PeerCert }
  /** STARTTLS is done; `peer`: the remote's certificate. */
  | { readonly kind: "tls-done"; readonly peer?: PeerCert }
  /** Check a key with the remote (we are the receiving server of one of its streams). */
  | { readonly kind: "verify"; readonly request: VerifyRequest }
  /** A stanza to send; the shell only gives it once `ready`. */
  | { readonly kind: "outbound"; readonly stanza: Element }
  /** Not ready in time. */
  | { readonly kind: "timeout" }
  /** Nothing was sent or received for a while. */
  | { readonly kind: "idle" }
  | { readonly kind: "disconnected" }
  | { readonly kind: "shutdown" };

/** What the shell does for an outgoing stream, in order. */
export type S2sOutOutput =
  | StreamOutput
  | { readonly kind: "send"; readonly stanza: Element }
  /** Upgrade the socket to TLS (client side), then `tls-done`, and a new stream. */
  | { readonly kind: "starttls" }
  /**
   * Authenticated: what waits may be sent (`via` SASL EXTERNAL, else dialback); `bidi`: the
   * remote's stanzas to us come on this stream too (XEP-0288).
   */
  | { readonly kind: "ready"; readonly via?: "sasl-external"; readonly bidi?: boolean }
  /** A stanza from the remote over a bidirectional stream, client namespace, `from` checked. */
  | { readonly kind: "route"; readonly stanza: Element }
  /** After SASL: a new stream starts, with a fresh parser (RFC 6120 §6.4.6). */
  | { readonly kind: "reset-stream" }
  /**
   * The stream will not carry stanzas: bounce what waits with `condition` (RFC 6120 §10.4.3),
   * `why` for the log.
   */
  | { readonly kind: "failed"; readonly condition: StanzaErrorCondition; readonly why: string }
  /** The remote's answer to a key check. */
  | {
    readonly kind: "verified";
    readonly local: string;
    readonly id: string;
    readonly valid: boolean;
  }
  | { readonly kind: "disconnect" };

/** What the reducer may consult. */
export interface S2sOutCtx {
  /** Our dialback secret (XEP-0185). */
  readonly secret: string;
  /** TLS is required (`s2s_require_encryption`). */
  readonly requireEncryption: boolean;
  /** Key checks one stream may hold while it opens. */
  readonly maxVerifies: number;
  /** Only a remote whose certificate is valid for its domain may be linked (`s2s_secure_auth`). */
  readonly secureAuth?: boolean;
  /** We present a certificate for our domain, so SASL EXTERNAL may be tried (XEP-0178). */
  readonly external?: boolean;
  /** Ask for XEP-0288 bidirectional streams where offered. */
  readonly bidi?: boolean;
}

/** One reduction's result. */
export type S2sOutStep = readonly [S2sOutSession, readonly S2sOutOutput[]];

function header(s: S2sOutSession): StreamOutput {
  return {
    kind: "open-stream",
    header: { ns: NS_SERVER, id: "", from: s.local, to: s.remote, version: "1.0", dialback: true },
  };
}

function end(
  s: S2sOutSession,
  why: string,
  opts: { error?: StreamError; condition?: StanzaErrorCondition } = {},
): S2sOutStep {
  const out: S2sOutOutput[] = [];
  if (s.state !== "ready") {
    out.push({ kind: "failed", condition: opts.condition ?? "remote-server-not-found", why });
  }
  // Key checks that never went out fail too: the incoming stream waiting for them learns so.
  for (const v of s.verifies) {
    out.push({ kind: "verified", local: v.local, id: v.id, valid: false });
  }
  if (s.state !== "connecting") out.push({ kind: "close-stream", error: opts.error });
  out.push({ kind: "disconnect" });
  return [{ ...s, state: "closed", verifies: [] }, out];
}

function child(el: Element, name: string, xmlns: string): Element | undefined {
  for (const c of el.children) {
    if (typeof c !== "string" && c.name === name && c.xmlns === xmlns) return c;
  }
  return undefined;
}

function verifyStanza(s: S2sOutSession, v: VerifyRequest): Element {
  return dbVerify(v.local, s.remote, v.id, v.key);
}

/** The stream is open (TLS done or not needed): send our key and the waiting checks. */
function authenticate(s: S2sOutSession, ctx: S2sOutCtx): S2sOutStep {
  const key = dialbackKey(ctx.secret, s.remote, s.local, s.streamId ?? "");
  return [{ ...s, state: "dialback", verifies: [] }, [
    { kind: "send", stanza: dbResult(s.local, s.remote, key) },
    ...s.verifies.map((v) => ({ kind: "send" as const, stanza: verifyStanza(s, v) })),
  ]];
}

/** The remote must prove its domain with its certificate (`s2s_secure_auth`) and does not. */
function insecure(s: S2sOutSession): S2sOutStep {
  const why = !s.secure
    ? "no TLS"
    : s.peer === undefined
    ? "no certificate"
    : !s.peer.trusted
    ? "not signed by a trusted CA"
    : "not issued for this domain";
  return end(s, `the remote server's certificate is not valid for ${s.remote} (${why})`, {
    error: {
      condition: "policy-violation",
      text: `A valid certificate for ${s.remote} is required`,
    },
  });
}

function offersExternal(features: Element): boolean {
  const mechanisms = child(features, "mechanisms", NS_SASL);
  return mechanisms !== undefined &&
    mechanisms.children.some((m) =>
      typeof m !== "string" && m.name === "mechanism" &&
      m.children.join("").trim() === "EXTERNAL"
    );
}

function base64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

/**
 * `<bidi/>` before authenticating (XEP-0288 §2.2), when offered, after TLS when TLS is required
 * (as Prosody's mod_s2s_bidi), and only with a stream that can become ready.
 */
function askBidi(s: S2sOutSession, features: Element, ctx: S2sOutCtx): S2sOutStep {
  const offered = child(features, "bidi", NS_BIDI_FEATURE) !== undefined;
  if (ctx.bidi !== true || !offered || s.bidi !== undefined) return [s, []];
  if (!s.secure && ctx.requireEncryption) return [s, []];
  return [{ ...s, bidi: "asked" }, [{ kind: "send", stanza: bidiRequest() }]];
}

/** Ready: `bidi` on when we asked for it, the remote's identity being established by now. */
function ready(s: S2sOutSession, via?: "sasl-external"): S2sOutStep {
  const bidi = s.bidi === "asked";
  return [{ ...s, state: "ready", ...(bidi ? { bidi: "on" as const } : {}) }, [{
    kind: "ready",
    ...(via === undefined ? {} : { via }),
    ...(bidi ? { bidi } : {}),
  }]];
}

function onFeatures(s: S2sOutSession, el: Element, ctx: S2sOutCtx): S2sOutStep {
  if (!s.secure && child(el, "starttls", NS_TLS) !== undefined) {
    return [{ ...s, state: "starttls" }, [{
      kind: "send",
      stanza: elem("starttls", { xmlns: NS_TLS }),
    }]];
  }
  if (!s.secure && ctx.requireEncryption) {
    return end(s, "the remote server does not offer TLS", {
      error: { condition: "policy-violation", text: "TLS is required" },
    });
  }
  if (s.sasl === true) {
    // The stream after SASL success (RFC 6120 §6.4.6): authenticated, what waited goes now.
    const [d, out] = ready({ ...s, verifies: [] }, "sasl-external");
    return [d, [
      ...s.verifies.map((v) => ({ kind: "send" as const, stanza: verifyStanza(s, v) })),
      ...out,
    ]];
  }
  const remoteValid = s.secure && certValidFor(s.peer, s.remote);
  if (ctx.secureAuth === true && !remoteValid) return insecure(s);
  const [asked, bidi] = askBidi(s, el, ctx);
  // XEP-0178 §3: our certificate speaks for our domain; the authorization identity names it.
  if (ctx.external === true && remoteValid && offersExternal(el)) {
    return [{ ...asked, state: "sasl" }, [...bidi, {
      kind: "send",
      stanza: elem("auth", { xmlns: NS_SASL, mechanism: "EXTERNAL" }, [base64(s.local)]),
    }]];
  }
  const [d, out] = authenticate(asked, ctx);
  return [d, [...bidi, ...out]];
}

/** The answer to our SASL EXTERNAL: a new stream, or dialback instead (XEP-0178 §3.2). */
function onSaslOutcome(s: S2sOutSession, el: Element, ctx: S2sOutCtx): S2sOutStep {
  if (el.name === "success") {
    return [{ ...s, state: "opening", sasl: true }, [{ kind: "reset-stream" }, header(s)]];
  }
  return authenticate(s, ctx);
}

function onResult(s: S2sOutSession, el: Element): S2sOutStep {
  const type = el.attrs.type;
  if (type === undefined && s.bidi === "on") {
    // The remote asks to add a pair on our bidirectional stream (XEP-0288 §2.2, a MAY): not
    // done here, refused alone with a dialback error (XEP-0220 §2.4), the stream stays up.
    const from = el.attrs.from ?? "";
    const to = el.attrs.to ?? "";
    return [s, [{
      kind: "send",
      stanza: elem("result", { xmlns: NS_DIALBACK, from: to, to: from, type: "error" }, [
        elem("error", { xmlns: NS_SERVER, type: "cancel" }, [
          elem("feature-not-implemented", { xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas" }),
        ]),
      ]),
    }]];
  }
  if (s.state !== "dialback") return [s, []];
  // Only the answer for our pair counts: a `valid` for another proves nothing (XEP-0288 §4).
  const ours = prepDomainpart(el.attrs.from ?? "") === s.remote &&
    prepDomainpart(el.attrs.to ?? "") === s.local;
  if (!ours) return [s, []];
  if (type === "valid") return ready(s);
  return end(s, `the remote server refused our dialback key (${type ?? "no type"})`, {
    condition: "remote-server-not-found",
  });
}

/**
 * A stanza from the remote over our bidirectional stream: from its domain to ours only, the
 * pair whose identities this stream established (XEP-0288 §2.2).
 */
function onStanza(s: S2sOutSession, el: Element): S2sOutStep {
  const from = el.attrs.from === undefined ? undefined : parseJid(el.attrs.from);
  const to = el.attrs.to === undefined ? undefined : parseJid(el.attrs.to);
  if (from === undefined || to === undefined) {
    return end(s, "a stanza without from or to", { error: { condition: "improper-addressing" } });
  }
  if (from.domain !== s.remote || to.domain !== s.local) {
    return end(s, `a stanza from ${from.domain} to ${to.domain}`, {
      error: {
        condition: "invalid-from",
        text: `Only ${s.remote} to ${s.local} is authenticated on this stream`,
      },
    });
  }
  return [s, [{ kind: "route", stanza: renamespace(el, NS_SERVER, NS_CLIENT) }]];
}

function onElement(s: S2sOutSession, el: Element, ctx: S2sOutCtx): S2sOutStep {
  if (el.xmlns === NS_STREAMS && el.name === "features" && s.state === "features") {
    return onFeatures(s, el, ctx);
  }
  if (el.xmlns === NS_STREAMS && el.name === "error") {
    const condition = el.children.find((c): c is Element => typeof c !== "string");
    return end(s, `stream error from the remote server: ${condition?.name ?? "?"}`);
  }
  if (el.xmlns === NS_TLS && el.name === "proceed" && s.state === "starttls") {
    return [s, [{ kind: "starttls" }]];
  }
  if (el.xmlns === NS_TLS && el.name === "failure") {
    return end(s, "the remote server failed TLS");
  }
  if (
    el.xmlns === NS_SASL && (el.name === "success" || el.name === "failure") &&
    s.state === "sasl"
  ) {
    return onSaslOutcome(s, el, ctx);
  }
  if (el.xmlns === NS_DIALBACK && el.name === "result") return onResult(s, el);
  if (el.xmlns === NS_DIALBACK && el.name === "verify") {
    const id = el.attrs.id;
    const local = el.attrs.to;
    if (id === undefined || local === undefined) return [s, []];
    return [s, [{ kind: "verified", local, id, valid: el.attrs.type === "valid" }]];
  }
  if (
    s.bidi === "on" && el.xmlns === NS_SERVER &&
    (el.name === "message" || el.name === "presence" || el.name === "iq")
  ) {
    return onStanza(s, el);
  }
  // Without XEP-0288 nothing else comes this way.
  return end(s, `unexpected <${el.name}/> from the remote server`, {
    error: { condition: "unsupported-stanza-type" },
  });
}

/** Reduces one event of an outgoing server-to-server stream. */
export function reduceS2sOut(s: S2sOutSession, ev: S2sOutEvent, ctx: S2sOutCtx): S2sOutStep {
  if (s.state === "closed") {
    // A late key check still gets its answer: no.
    if (ev.kind === "verify") {
      return [s, [{ kind: "verified", local: ev.request.local, id: ev.request.id, valid: false }]];
    }
    return [s, []];
  }
  switch (ev.kind) {
    case "connected":
      if (ev.directTls === true) {
        const secured = { ...s, secure: true, ...(ev.peer === undefined ? {} : { peer: ev.peer }) };
        return [{ ...secured, state: "opening" }, [header(secured)]];
      }
      return [{ ...s, state: "opening" }, [header(s)]];
    case "stream-open": {
      if (s.state !== "opening") return end(s, "a second stream header");
      if (ev.xmlns !== NS_STREAMS || ev.contentXmlns !== NS_SERVER) {
        return end(s, "the remote server's stream is not a server stream", {
          error: { condition: "invalid-namespace" },
        });
      }
      const next = { ...s, state: "features" as const, streamId: ev.attrs.id ?? "" };
      // A pre-1.0 server sends no features: dialback at once, if plain text is allowed.
      if ((ev.attrs.version ?? "0.9") < "1.0") {
        if (ctx.requireEncryption) {
          return end(next, "the remote server cannot do TLS (no version 1.0)", {
            error: { condition: "policy-violation" },
          });
        }
        if (ctx.secureAuth === true) return insecure(next);
        return authenticate(next, ctx);
      }
      return [next, []];
    }
    case "stanza":
      if (s.state === "opening" || s.state === "connecting") {
        return end(s, "a stanza before the stream header");
      }
      return onElement(s, ev.stanza, ctx);
    case "tls-done":
      // A new stream over TLS (RFC 6120 §5.4.3.3).
      return [{
        ...s,
        state: "opening",
        secure: true,
        ...(ev.peer === undefined ? {} : { peer: ev.peer }),
      }, [header(s)]];
    case "verify": {
      if (s.state === "dialback" || s.state === "ready") {
        return [s, [{ kind: "send", stanza: verifyStanza(s, ev.request) }]];
      }
      if (s.verifies.length >= ctx.maxVerifies) {
        return [s, [{
          kind: "verified",
          local: ev.request.local,
          id: ev.request.id,
          valid: false,
        }]];
      }
      return [{ ...s, verifies: [...s.verifies, ev.request] }, []];
    }
    case "outbound":
      if (s.state !== "ready") return [s, []];
      return [s, [{ kind: "send", stanza: renamespace(ev.stanza, NS_CLIENT, NS_SERVER) }]];
    case "parse-error":
      return end(s, `the remote server sent bad XML (${ev.condition})`, {
        error: { condition: ev.condition },
      });
    case "timeout":
      return s.state === "ready"
        ? [s, []]
        : end(s, "the remote server did not authenticate us in time", {
          condition: "remote-server-timeout",
          error: { condition: "connection-timeout" },
        });
    case "idle":
      return end(s, "idle");
    case "shutdown":
      return end(s, "shutting down", { error: { condition: "system-shutdown" } });
    case "stream-close":
      return end(s, "the remote server closed the stream");
    case "disconnected": {
      const [d, out] = end({ ...s, state: s.state }, "the connection was lost");
      // The socket is gone: nothing to close.
      return [d, out.filter((o) => o.kind !== "close-stream")];
    }
  }
}
