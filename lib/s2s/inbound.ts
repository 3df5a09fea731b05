/**
 * Incoming server-to-server streams (RFC 6120 §4, §5, §13.7; XEP-0220 dialback) as a pure
 * reducer. A peer server connects, negotiates TLS, and proves for each of its domains that it
 * may speak for it: we ask that domain's authoritative server to check the dialback key
 * (a `verify` output the shell carries out over an outgoing stream) and, once it says so, accept
 * stanzas from that domain to the local domain it was checked with. Several domains may be
 * authenticated on one stream (piggybacking, RFC 6120 §13.7.1.2.2), each checked alone.
 *
 * The same stream also answers `<db:verify/>` for keys we made: we are then the authoritative
 * server of the local domain, and the secret tells whether the key is ours.
 *
 * A peer whose TLS certificate is trusted and names the domain in its header's `from`
 * (XEP-0178, RFC 6120 §13.7.1.2) is offered SASL EXTERNAL besides dialback; succeeding
 * authenticates that domain for the header's `to`. The shell only reports the certificate
 * (`tls-done` with `peer`); what it proves is decided here.
 *
 * XEP-0288: we offer bidirectionality; a peer that asks for it before authenticating gets our
 * stanzas back over its stream, for the inverse of each pair it authenticated (SASL: the
 * header's `to` to its `from`; dialback: each pair it claimed and proved). The peer's identity
 * is what it proved to us, so nothing more is needed for that direction. The shell is told
 * once per pair (`bidi`), when stanzas may go (after the new stream header that follows SASL).
 * @module
 */
import { elem, type Element, renamespace } from "../xml/element.ts";
import type { ParseEvent } from "../xml/parser.ts";
import { certValidFor, type PeerCert } from "../xmpp/cert_names.ts";
import { bidiFeature, NS_BIDI } from "./bidi.ts";
import { dbResult, dbVerify, dialbackKey, dialbackKeyMatches } from "../xmpp/dialback.ts";
import type { StreamError } from "../xmpp/errors.ts";
import { parseJid, prepDomainpart } from "../xmpp/jid.ts";
import {
  NS_CLIENT,
  NS_DIALBACK,
  NS_DIALBACK_FEATURE,
  NS_SASL,
  NS_SERVER,
  NS_STREAMS,
  NS_TLS,
} from "../xmpp/namespaces.ts";
import type { StreamHeader, StreamOutput } from "../xmpp/stream_xml.ts";

/** An incoming server-to-server stream's state. */
export interface S2sInSession {
  /** `opening`: no header on this stream (yet, or again after TLS); `open`; `closed`. */
  readonly state: "opening" | "open" | "closed";
  readonly streamId?: string;
  /** TLS protects the connection. */
  readonly secure: boolean;
  /** The peer's address, for the log. */
  readonly ip: string;
  /** `"remote local"` pairs authenticated on this stream: stanzas may flow from remote to local. */
  readonly authed: readonly string[];
  /** `"remote local"` pairs whose dialback key the authoritative server is checking. */
  readonly pending: readonly string[];
  /** The peer's TLS certificate, when it sent one. */
  readonly peer?: PeerCert;
  /** SASL EXTERNAL is offered on this stream: what it would authenticate (`from` for `to`). */
  readonly external?: { readonly remote: string; readonly local: string };
  /** The peer asked for XEP-0288 bidirectionality before authenticating. */
  readonly bidi?: boolean;
  /** `"remote local"` pairs the shell was told (`bidi`) it may send local to remote over. */
  readonly bidiPairs?: readonly string[];
}

/** A fresh incoming stream from `ip`; `peer`: the certificate of a direct TLS (XEP-0368) peer. */
export function newS2sIn(ip: string, secure = false, peer?: PeerCert): S2sInSession {
  return {
    state: "opening",
    secure,
    ip,
    authed: [],
    pending: [],
    ...(peer === undefined ? {} : { peer }),
  };
}

/** What happens to an incoming stream. */
export type S2sInEvent =
  | Exclude<ParseEvent, { readonly kind: "error" }>
  | { readonly kind: "parse-error"; readonly condition: StreamError["condition"] }
  /** TLS is up; `peer`: the certificate the peer presented, as the shell found it. */
  | { readonly kind: "tls-done"; readonly peer?: PeerCert }
  /** The authoritative server of `remote` answered our check of its key. */
  | {
    readonly kind: "verified";
    readonly remote: string;
    readonly local: string;
    readonly valid: boolean;
  }
  /** No domain was authenticated in time. */
  | { readonly kind: "auth-timeout" }
  /** A stanza of ours (client namespace) to send back over a bidirectional stream (XEP-0288). */
  | { readonly kind: "outbound"; readonly stanza: Element }
  /** Nothing arrived for a while. */
  | { readonly kind: "idle" }
  | { readonly kind: "disconnected" }
  | { readonly kind: "shutdown" };

/** What the shell does for an incoming stream, in order. */
export type S2sInOutput =
  | StreamOutput
  | { readonly kind: "send"; readonly stanza: Element }
  /** Upgrade to TLS after `<proceed/>` is written; then `tls-done`, and a new stream. */
  | { readonly kind: "starttls" }
  /** A stanza for the router, in the client namespace, its `from` checked. */
  | { readonly kind: "route"; readonly stanza: Element }
  /**
   * Ask `remote`'s authoritative server whether `key` is the one it made for this stream; the
   * answer comes back as `verified`.
   */
  | {
    readonly kind: "verify";
    readonly remote: string;
    readonly local: string;
    readonly streamId: string;
    readonly key: string;
  }
  /** `remote` may now send to `local` on this stream (for the log); `via` SASL EXTERNAL. */
  | {
    readonly kind: "authenticated";
    readonly remote: string;
    readonly local: string;
    readonly via?: "sasl-external";
  }
  /** After SASL: a new stream starts, with a fresh parser (RFC 6120 §6.4.6). */
  | { readonly kind: "reset-stream" }
  /** XEP-0288: stanzas from `local` to `remote` may now go over this stream (`outbound`). */
  | { readonly kind: "bidi"; readonly remote: string; readonly local: string }
  /** An `outbound` stanza this stream may not carry (now): the shell sends it another way. */
  | { readonly kind: "unsent"; readonly stanza: Element }
  | { readonly kind: "disconnect" };

/** What the reducer may consult. */
export interface S2sInCtx {
  /** True for a domain this server answers for (hosts and services). */
  readonly isLocal: (domain: string) => boolean;
  readonly tlsAvailable: boolean;
  /** Peers must use TLS before anything else (`s2s_require_encryption`). */
  readonly requireEncryption: boolean;
  /** Dialback is refused (`s2s_secure_auth`): only certificates would do. */
  readonly secureAuth: boolean;
  /** Our dialback secret (XEP-0185), to answer `<db:verify/>` for keys we made. */
  readonly secret: string;
  readonly newId: () => string;
  /** Domains one stream may authenticate (piggybacking), checks in flight included. */
  readonly maxDomains: number;
  /** XEP-0288 bidirectional streams are offered and accepted. */
  readonly bidi?: boolean;
}

/** One reduction's result. */
export type S2sInStep = readonly [S2sInSession, readonly S2sInOutput[]];

const STANZAS = new Set(["message", "presence", "iq"]);

function header(id: string, local?: string, remote?: string): StreamHeader {
  return {
    ns: NS_SERVER,
    id,
    ...(local === undefined ? {} : { from: local }),
    ...(remote === undefined ? {} : { to: remote }),
    version: "1.0",
    dialback: true,
  };
}

function close(s: S2sInSession, error?: StreamError): S2sInStep {
  const out: S2sInOutput[] = [];
  // A header must precede a stream error (RFC 6120 §4.9.1.2).
  if (s.state === "opening") out.push({ kind: "open-stream", header: header(s.streamId ?? "") });
  out.push({ kind: "close-stream", error }, { kind: "disconnect" });
  return [{ ...s, state: "closed" }, out];
}

/** The features after our header (RFC 6120 §4.3.2): TLS first, then SASL, then dialback. */
function features(s: S2sInSession, ctx: S2sInCtx): Element {
  const children: Element[] = [];
  if (!s.secure && ctx.tlsAvailable) {
    children.push(elem("starttls", { xmlns: NS_TLS }, [
      ctx.requireEncryption && elem("required"),
    ]));
  }
  if (s.external !== undefined) {
    children.push(elem("mechanisms", { xmlns: NS_SASL }, [
      elem("mechanism", {}, ["EXTERNAL"]),
    ]));
  }
  if ((s.secure || !ctx.requireEncryption) && !ctx.secureAuth) {
    // XEP-0220 §2.4.3; `<errors/>`: we send and understand dialback errors.
    children.push(elem("dialback", { xmlns: NS_DIALBACK_FEATURE }, [elem("errors")]));
  }
  if (bidiPossible(s, ctx)) children.push(bidiFeature());
  return elem("features", { xmlns: NS_STREAMS }, children);
}

/**
 * XEP-0288 §2: the peer may still ask for bidirectionality: before it authenticated anything,
 * and after TLS when TLS is required (as Prosody's mod_s2s_bidi).
 */
function bidiPossible(s: S2sInSession, ctx: S2sInCtx): boolean {
  return ctx.bidi === true && s.bidi !== true && s.authed.length === 0 &&
    s.pending.length === 0 && (s.secure || !ctx.requireEncryption);
}

/** `bidi` outputs for authenticated pairs the shell was not told of yet. */
function announceBidi(s: S2sInSession): S2sInStep {
  if (s.bidi !== true || s.state !== "open") return [s, []];
  const told = s.bidiPairs ?? [];
  const fresh = s.authed.filter((p) => !told.includes(p));
  if (fresh.length === 0) return [s, []];
  return [
    { ...s, bidiPairs: [...told, ...fresh] },
    fresh.map((p) => {
      const [remote, local] = p.split(" ");
      return { kind: "bidi" as const, remote, local };
    }),
  ];
}

/** A stanza of ours for the peer: only for a pair announced with `bidi`, on an open stream. */
function onOutbound(s: S2sInSession, stanza: Element): S2sInStep {
  const from = stanza.attrs.from === undefined ? undefined : parseJid(stanza.attrs.from);
  const to = stanza.attrs.to === undefined ? undefined : parseJid(stanza.attrs.to);
  const ok = s.state === "open" && from !== undefined && to !== undefined &&
    (s.bidiPairs ?? []).includes(pair(to.domain, from.domain));
  if (!ok) return [s, [{ kind: "unsent", stanza }]];
  return [s, [{ kind: "send", stanza: renamespace(stanza, NS_CLIENT, NS_SERVER) }]];
}

function onOpen(
  s: S2sInSession,
  ev: Extract<S2sInEvent, { kind: "stream-open" }>,
  ctx: S2sInCtx,
): S2sInStep {
  const id = ctx.newId();
  const opening = { ...s, streamId: id };
  if (ev.xmlns !== NS_STREAMS || ev.name !== "stream") {
    return close(opening, { condition: "invalid-namespace" });
  }
  if (ev.contentXmlns !== NS_SERVER) {
    return close(opening, {
      condition: "invalid-namespace",
      text: "A server-to-server stream must be in " + NS_SERVER,
    });
  }
  const local = prepDomainpart(ev.attrs.to ?? "");
  const remote = ev.attrs.from === undefined ? undefined : prepDomainpart(ev.attrs.from);
  if (local === undefined || !ctx.isLocal(local)) {
    const [d, out] = close(opening, {
      condition: "host-unknown",
      text: "This server does not serve " + (ev.attrs.to ?? "(no to)"),
    });
    return [d, [{ kind: "open-stream", header: header(id) }, ...out.slice(1)]];
  }
  // XEP-0178 §3: EXTERNAL when the certificate proves the domain the header claims, and once.
  const external = remote !== undefined && s.secure && certValidFor(s.peer, remote) &&
      !s.authed.includes(pair(remote, local))
    ? { remote, local }
    : undefined;
  const open: S2sInSession = {
    ...opening,
    state: "open",
    ...(external === undefined ? {} : { external }),
  };
  const [announced, bidi] = announceBidi(open);
  return [announced, [
    { kind: "open-stream", header: header(id, local, remote) },
    { kind: "send", stanza: features(open, ctx) },
    ...bidi,
  ]];
}

function textOf(el: Element): string {
  return el.children.filter((c) => typeof c === "string").join("");
}

function pair(remote: string, local: string): string {
  return `${remote} ${local}`;
}

/** `<db:result from to>key</db:result>`: the peer claims `from` (XEP-0220 §2.1.1). */
function onResult(s: S2sInSession, el: Element, ctx: S2sInCtx): S2sInStep {
  if (!s.secure && ctx.requireEncryption) {
    return close(s, { condition: "policy-violation", text: "Use TLS first" });
  }
  if (ctx.secureAuth) {
    return close(s, {
      condition: "not-authorized",
      text: "Dialback is not accepted here: authenticate with a certificate",
    });
  }
  const remote = prepDomainpart(el.attrs.from ?? "");
  const local = prepDomainpart(el.attrs.to ?? "");
  if (remote === undefined || local === undefined) {
    return close(s, { condition: "improper-addressing" });
  }
  if (!ctx.isLocal(local)) return close(s, { condition: "host-unknown" });
  const key = textOf(el).trim();
  const p = pair(remote, local);
  if (s.authed.includes(p)) {
    return [s, [{ kind: "send", stanza: dbResult(local, remote, undefined, "valid") }]];
  }
  if (s.pending.includes(p)) return [s, []];
  if (key === "" || s.authed.length + s.pending.length >= ctx.maxDomains) {
    // A check that cannot start is refused alone (XEP-0220 §2.4), the stream stays up.
    return [s, [{
      kind: "send",
      stanza: elem("result", { xmlns: NS_DIALBACK, from: local, to: remote, type: "error" }, [
        // Unprefixed inside `<db:result>` on the wire: the stream's namespace (XEP-0220 §2.4).
        elem("error", { xmlns: NS_SERVER, type: "cancel" }, [
          elem(key === "" ? "bad-request" : "resource-constraint", {
            xmlns: "urn:ietf:params:xml:ns:xmpp-stanzas",
          }),
        ]),
      ]),
    }]];
  }
  return [{ ...s, pending: [...s.pending, p] }, [{
    kind: "verify",
    remote,
    local,
    streamId: s.streamId!,
    key,
  }]];
}

/** `<db:verify from to id>key</db:verify>`: is `key` one we made (XEP-0220 §2.1.2)? */
function onVerify(s: S2sInSession, el: Element, ctx: S2sInCtx): S2sInStep {
  const asker = prepDomainpart(el.attrs.from ?? "");
  const local = prepDomainpart(el.attrs.to ?? "");
  const id = el.attrs.id;
  if (asker === undefined || local === undefined || id === undefined) {
    return close(s, { condition: "improper-addressing" });
  }
  if (!ctx.isLocal(local)) return close(s, { condition: "host-unknown" });
  const valid = dialbackKeyMatches(textOf(el), dialbackKey(ctx.secret, asker, local, id));
  return [s, [{
    kind: "send",
    stanza: dbVerify(local, asker, id, undefined, valid ? "valid" : "invalid"),
  }]];
}

function onVerified(
  s: S2sInSession,
  ev: Extract<S2sInEvent, { kind: "verified" }>,
): S2sInStep {
  const p = pair(ev.remote, ev.local);
  if (!s.pending.includes(p)) return [s, []];
  const pending = s.pending.filter((x) => x !== p);
  if (!ev.valid) {
    const next = { ...s, pending };
    const reply = dbResult(ev.local, ev.remote, undefined, "invalid");
    if (next.authed.length > 0 || pending.length > 0) {
      return [next, [{ kind: "send", stanza: reply }]];
    }
    const [d, out] = close(next, { condition: "not-authorized", text: "Dialback failed" });
    return [d, [{ kind: "send", stanza: reply }, ...out]];
  }
  const [announced, bidi] = announceBidi({ ...s, pending, authed: [...s.authed, p] });
  return [announced, [
    { kind: "send", stanza: dbResult(ev.local, ev.remote, undefined, "valid") },
    { kind: "authenticated", remote: ev.remote, local: ev.local },
    ...bidi,
  ]];
}

function saslFailure(condition: string): S2sInOutput {
  return {
    kind: "send",
    stanza: elem("failure", { xmlns: NS_SASL }, [elem(condition)]),
  };
}

/**
 * `<auth mechanism='EXTERNAL'>` (RFC 6120 §6.4, XEP-0178 §3): the authorization identity is
 * empty (`=`) or the domain the certificate was found valid for; success authenticates that
 * domain for the stream's `to`, and the stream restarts. A failure leaves the stream open for
 * dialback.
 */
function onAuth(s: S2sInSession, el: Element): S2sInStep {
  const ext = s.external;
  if (ext === undefined || el.attrs.mechanism !== "EXTERNAL") {
    return [s, [saslFailure(ext === undefined ? "not-authorized" : "invalid-mechanism")]];
  }
  const response = textOf(el).trim();
  let authzid = "";
  if (response !== "" && response !== "=") {
    try {
      authzid = new TextDecoder("utf-8", { fatal: true }).decode(
        Uint8Array.from(atob(response), (c) => c.charCodeAt(0)),
      );
    } catch {
      return [s, [saslFailure("incorrect-encoding")]];
    }
  }
  if (authzid !== "" && prepDomainpart(authzid) !== ext.remote) {
    return [s, [saslFailure("invalid-authzid")]];
  }
  const p = pair(ext.remote, ext.local);
  const { external: _done, ...rest } = s;
  return [{ ...rest, state: "opening", authed: [...s.authed.filter((x) => x !== p), p] }, [
    { kind: "send", stanza: elem("success", { xmlns: NS_SASL }) },
    { kind: "reset-stream" },
    { kind: "authenticated", remote: ext.remote, local: ext.local, via: "sasl-external" },
  ]];
}

/** A stanza from the peer: its `from` must be a domain authenticated for its `to`. */
function onStanza(s: S2sInSession, el: Element, ctx: S2sInCtx): S2sInStep {
  const from = el.attrs.from === undefined ? undefined : parseJid(el.attrs.from);
  const to = el.attrs.to === undefined ? undefined : parseJid(el.attrs.to);
  if (from === undefined || to === undefined) {
    return close(s, { condition: "improper-addressing" });
  }
  if (!ctx.isLocal(to.domain)) return close(s, { condition: "host-unknown" });
  if (!s.authed.includes(pair(from.domain, to.domain))) {
    return close(s, {
      condition: "invalid-from",
      text: `${from.domain} is not authenticated for ${to.domain} on this stream`,
    });
  }
  return [s, [{ kind: "route", stanza: renamespace(el, NS_SERVER, NS_CLIENT) }]];
}

function onElement(s: S2sInSession, el: Element, ctx: S2sInCtx): S2sInStep {
  if (el.xmlns === NS_TLS && el.name === "starttls") {
    if (s.secure || !ctx.tlsAvailable) {
      const [d, out] = close(s);
      return [d, [{ kind: "send", stanza: elem("failure", { xmlns: NS_TLS }) }, ...out]];
    }
    // The next bytes are a TLS handshake, then a new stream (RFC 6120 §5.4.3.3); what was
    // negotiated before TLS does not carry over (XEP-0288 §2.1: bidi after TLS).
    const { bidi: _before, ...rest } = s;
    return [{ ...rest, state: "opening" }, [
      { kind: "send", stanza: elem("proceed", { xmlns: NS_TLS }) },
      { kind: "starttls" },
    ]];
  }
  if (el.xmlns === NS_SASL && el.name === "auth") return onAuth(s, el);
  if (el.xmlns === NS_BIDI && el.name === "bidi") {
    // XEP-0288 §2.2; asked for too late (or not offered), it is ignored: our stanzas then take
    // a connection of our own, which works with any peer.
    return bidiPossible(s, ctx) ? [{ ...s, bidi: true }, []] : [s, []];
  }
  if (el.xmlns === NS_DIALBACK && el.name === "result") return onResult(s, el, ctx);
  if (el.xmlns === NS_DIALBACK && el.name === "verify") return onVerify(s, el, ctx);
  if (el.xmlns === NS_SERVER && STANZAS.has(el.name)) {
    if (!s.secure && ctx.requireEncryption) {
      return close(s, { condition: "policy-violation", text: "Use TLS first" });
    }
    return onStanza(s, el, ctx);
  }
  return close(s, { condition: "unsupported-stanza-type" });
}

/** Reduces one event of an incoming server-to-server stream. */
export function reduceS2sIn(s: S2sInSession, ev: S2sInEvent, ctx: S2sInCtx): S2sInStep {
  if (s.state === "closed") {
    // The shell's stanza still goes, another way.
    return ev.kind === "outbound" ? [s, [{ kind: "unsent", stanza: ev.stanza }]] : [s, []];
  }
  switch (ev.kind) {
    case "stream-open":
      if (s.state !== "opening") return close(s, { condition: "invalid-xml" });
      return onOpen(s, ev, ctx);
    case "stanza":
      if (s.state !== "open") return close(s, { condition: "invalid-xml" });
      return onElement(s, ev.stanza, ctx);
    case "tls-done":
      return [{ ...s, secure: true, ...(ev.peer === undefined ? {} : { peer: ev.peer }) }, []];
    case "verified":
      return onVerified(s, ev);
    case "outbound":
      return onOutbound(s, ev.stanza);
    case "parse-error":
      return close(s, { condition: ev.condition });
    case "auth-timeout":
      return s.authed.length > 0 ? [s, []] : close(s, { condition: "connection-timeout" });
    case "shutdown":
      return close(s, { condition: "system-shutdown" });
    case "idle":
    case "stream-close":
      return close(s);
    case "disconnected":
      return [{ ...s, state: "closed" }, [{ kind: "disconnect" }]];
  }
}
