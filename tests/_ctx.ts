/**
 * A fixed reducer context for tests, and helpers to drive and inspect reductions. Everything a
 * reducer may consult is deterministic here, so tests can assert exact outputs.
 * @module
 */
import type { Session } from "../lib/core/session.ts";
import { EMPTY_ROSTER, newSession } from "../lib/core/session.ts";
import type { Ctx, Event, Output, ResourceView } from "../lib/core/types.ts";
import { reduce } from "../lib/c2s/mod.ts";
import { DEFAULT_LIMITS, type Limits } from "../lib/limits.ts";
import { serializeTop, type StreamHeader } from "../lib/xmpp/stream_xml.ts";
import { streamErrorElement } from "../lib/xmpp/errors.ts";
import { childElements, elem, type Element, stanza } from "../lib/xml/element.ts";
import { capsInputOf, verificationString } from "../lib/modules/caps.ts";
import { NS_CLIENT, NS_DISCO_INFO, NS_STREAMS } from "../lib/xmpp/namespaces.ts";

/** The host every test session talks to. */
export const HOST = "example.com";
/** The fixed clock's reading. */
export const NOW = 1_700_000_000_000;

/** What a test may change about the context. */
export interface TestCtxOptions {
  readonly hosts?: readonly string[];
  readonly requireEncryption?: boolean;
  readonly tlsAvailable?: boolean;
  readonly allowPlain?: boolean;
  readonly archiving?: boolean;
  readonly maxStanzaSize?: number;
  readonly maxStanzaSizeUnauthed?: number;
  readonly idleSeconds?: number;
  readonly smResumeTimeout?: number;
  /** Values `nonce()` returns, in order; drawing past the end throws. */
  readonly nonces?: readonly string[];
  readonly isAuthThrottled?: (ip: string, username?: string) => boolean;
  readonly resourcesOf?: (bareJid: string) => readonly ResourceView[];
  /** The caps cache: features by `ver` (none known unless told). */
  readonly capsFeatures?: (ver: string) => readonly string[] | undefined;
  /** Bounds that differ from the defaults. */
  readonly limits?: Partial<Limits>;
}

/** A Ctx with a fixed clock, ids "id1", "id2"... and nonces from a list. */
export function testCtx(opts: TestCtxOptions = {}): Ctx {
  let ids = 0;
  let nonceIndex = 0;
  const nonces = opts.nonces ?? [];
  return {
    hosts: opts.hosts ?? [HOST],
    requireEncryption: opts.requireEncryption ?? false,
    tlsAvailable: opts.tlsAvailable ?? true,
    allowPlain: opts.allowPlain ?? true,
    archiving: opts.archiving ?? false,
    maxStanzaSize: opts.maxStanzaSize ?? 262144,
    maxStanzaSizeUnauthed: opts.maxStanzaSizeUnauthed ?? 10000,
    idleSeconds: opts.idleSeconds ?? 300,
    smResumeTimeout: opts.smResumeTimeout ?? 300,
    now: () => NOW,
    newId: () => `id${++ids}`,
    nonce: () => {
      // An unexpected draw is a test failure, not a silent default.
      if (nonceIndex >= nonces.length) throw new Error("test ctx: out of nonces");
      return nonces[nonceIndex++];
    },
    isAuthThrottled: opts.isAuthThrottled ?? (() => false),
    resourcesOf: opts.resourcesOf ?? (() => []),
    capsFeatures: opts.capsFeatures ?? (() => undefined),
    serverName: "test-server",
    serverVersion: "0.0.0",
    settings: { startedAt: 0, contactInfo: {} },
    limits: { ...DEFAULT_LIMITS, ...opts.limits },
  };
}

/** A stream header event, valid unless overridden. */
export function streamOpen(
  attrs: Readonly<Record<string, string>> = { to: HOST, version: "1.0" },
  over: Partial<Omit<Extract<Event, { kind: "stream-open" }>, "kind" | "attrs">> = {},
): Event {
  return {
    kind: "stream-open",
    name: "stream",
    prefix: "stream",
    xmlns: NS_STREAMS,
    contentXmlns: NS_CLIENT,
    attrs,
    ...over,
  };
}

/** A stanza event. */
export function stanzaEvent(stanza: Element): Event {
  return { kind: "stanza", stanza };
}

/** A fresh connection, plain TCP unless told otherwise. */
export function fresh(secure = false): Session {
  return newSession("c1", { ip: "192.0.2.1", secure });
}

/** An authenticated session whose restarted stream is open, not yet bound. */
export function authed(over: Partial<Session> = {}): Session {
  return {
    ...fresh(true),
    type: "c2s",
    notopen: false,
    streamId: "sid",
    host: HOST,
    username: "user",
    ...over,
  };
}

/**
 * An authenticated session bound to `user@example.com/res` whose roster (empty unless told)
 * has arrived, so its stanzas are handled rather than held. Pass `roster: undefined` for a
 * session still waiting for it.
 */
export function bound(over: Partial<Session> = {}): Session {
  return authed({ resource: "res", fullJid: `user@${HOST}/res`, roster: EMPTY_ROSTER, ...over });
}

/** An output with its stanza serialized, so expectations can be written as XML text. */
export type Shown =
  | { readonly kind: "send" | "route"; readonly xml: string }
  /** Closing the stream, with the stream error the transport writes first, if any. */
  | { readonly kind: "close-stream"; readonly xml?: string }
  | Exclude<Output, { kind: "send" } | { kind: "route" } | { kind: "close-stream" }>;

/** Replaces stanzas (and the error of a closing stream) in outputs by their serialization. */
export function show(outputs: readonly Output[]): Shown[] {
  return outputs.map((o) =>
    o.kind === "send" || o.kind === "route"
      ? { kind: o.kind, xml: serializeTop(o.stanza) }
      : o.kind === "close-stream"
      ? o.error === undefined
        ? { kind: o.kind }
        : { kind: o.kind, xml: serializeTop(streamErrorElement(o.error)) }
      : o
  );
}

/** Our header on a client stream, as the reducers describe it to the transport. */
export function ourHeader(id: string, from = HOST): StreamHeader {
  return { ns: "jabber:client", id, from, version: "1.0", lang: "en" };
}

/** Reduces events in order; returns the last session and every output. */
export function run(
  s: Session,
  events: readonly Event[],
  ctx: Ctx,
): { readonly session: Session; readonly outputs: Output[] } {
  const outputs: Output[] = [];
  let cur = s;
  for (const ev of events) {
    const [next, out] = reduce(cur, ev, ctx);
    outputs.push(...out);
    cur = next;
  }
  return { session: cur, outputs };
}

/** Base64 of UTF-8 text, as a SASL payload. */
export function b64(text: string): string {
  let bin = "";
  for (const b of new TextEncoder().encode(text)) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** Bytes of base64 text. */
export function unb64(text: string): Uint8Array {
  return Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
}

/**
 * A session record without its undefined-valued fields: a field set to undefined and an absent
 * field mean the same, and reducers produce both.
 */
export function record(s: Session): Record<string, unknown> {
  return Object.fromEntries(Object.entries(s).filter(([, v]) => v !== undefined));
}

/**
 * The `ver` a client computes (XEP-0115 §5.4) from the server's own disco#info reply under
 * `ctx`: asked through the reducer, not taken from the registry, so it checks the announcement.
 */
export function discoCapsVer(ctx: Ctx): string {
  const get = stanza("iq", { type: "get", id: "caps", to: HOST }, [
    elem("query", { xmlns: NS_DISCO_INFO }),
  ]);
  const [, out] = reduce(bound(), stanzaEvent(get), ctx);
  const reply = out[0];
  if (out.length !== 1 || reply.kind !== "send") throw new Error("no disco#info reply");
  return verificationString(capsInputOf(childElements(reply.stanza)[0]));
}

/** What the server offers after authentication beside bind, session and limits, as XML. */
export function authedExtrasXml(ctx: Ctx): string {
  return '<csi xmlns="urn:xmpp:csi:0"/><sm xmlns="urn:xmpp:sm:3"/>' +
    '<c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="https://deno-xmpp.invalid" ' +
    `ver="${discoCapsVer(ctx)}"/>`;
}
