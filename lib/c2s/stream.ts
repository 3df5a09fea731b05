/**
 * Stream opening (RFC 6120 §4.7, §4.8) and STARTTLS (RFC 6120 §5).
 * @module
 */
import type { ChannelBindings, Session } from "../core/session.ts";
import { elem, type Element } from "../xml/element.ts";
import type { StreamErrorCondition } from "../xmpp/errors.ts";
import { prepDomainpart } from "../xmpp/jid.ts";
import { NS_CLIENT, NS_STREAMS, NS_TLS } from "../xmpp/namespaces.ts";
import { destroy } from "./destroy.ts";
import { streamFeatures } from "./features.ts";
import { clientHeader, markFixed } from "../xmpp/stream_xml.ts";
import type { Ctx, Event, Step } from "../core/types.ts";

type StreamOpen = Extract<Event, { kind: "stream-open" }>;

/** The first problem with a stream header, in the order RFC 6120 §4.9.3 lets us check. */
export function checkHeader(
  ev: StreamOpen,
  ctx: Ctx,
  knownHost: string | undefined,
): { readonly host: string } | { readonly condition: StreamErrorCondition; readonly text: string } {
  if (ev.xmlns !== NS_STREAMS || ev.name !== "stream") {
    return { condition: "invalid-namespace", text: "The stream element must be in " + NS_STREAMS };
  }
  if (ev.prefix !== "stream") {
    return {
      condition: "bad-namespace-prefix",
      text: "The stream element must use prefix 'stream'",
    };
  }
  if (ev.contentXmlns !== NS_CLIENT) {
    return { condition: "invalid-namespace", text: "The default namespace must be " + NS_CLIENT };
  }
  // RFC 6120 §4.7.5: no version means a pre-1.0 stream, which we do not speak.
  const version = ev.attrs.version;
  const major = version === "1.0" ? undefined : /^(\d+)\.\d+$/.exec(version ?? "");
  if (major === null || (major !== undefined && Number(major[1]) !== 1)) {
    return { condition: "unsupported-version", text: "Only XMPP 1.0 streams are supported" };
  }
  const to = ev.attrs.to;
  if (to === undefined || to === "") {
    return { condition: "improper-addressing", text: "The stream header needs a 'to' address" };
  }
  const host = prepDomainpart(to);
  if (host === undefined || !ctx.hosts.includes(host)) {
    return { condition: "host-unknown", text: "This server does not serve " + to };
  }
  // A restarted stream must stay on the same host (RFC 6120 §4.3.3).
  if (knownHost !== undefined && host !== knownHost) {
    return { condition: "host-unknown", text: "The restarted stream names another host" };
  }
  return { host };
}

/** A stream header arrived: answer with ours and the features, or with a stream error. */
export function onStreamOpen(s: Session, ev: StreamOpen, ctx: Ctx): Step {
  const checked = checkHeader(ev, ctx, s.host);
  if ("condition" in checked) {
    return destroy(s, ctx, {
      writable: true,
      error: { condition: checked.condition, text: checked.text },
    });
  }
  const streamId = ctx.newId();
  const next: Session = {
    ...s,
    notopen: false,
    streamId,
    host: checked.host,
    lang: ev.attrs["xml:lang"] ?? s.lang,
  };
  return [next, [
    { kind: "open-stream", header: clientHeader(checked.host, streamId) },
    { kind: "send", stanza: streamFeatures(next, ctx) },
  ]];
}

/** The same for every STARTTLS: built and serialized once. */
const PROCEED = markFixed(elem("proceed", { xmlns: NS_TLS }));

/** `<starttls/>` (RFC 6120 §5.4.2). */
export function onStartTls(s: Session, ctx: Ctx): Step {
  if (s.secure || !ctx.tlsAvailable || s.type !== "c2s_unauthed") {
    // RFC 6120 §5.4.2.2: failure, then the stream is closed.
    const [d, out] = destroy(s, ctx, { writable: true });
    return [d, [{ kind: "send", stanza: elem("failure", { xmlns: NS_TLS }) }, ...out]];
  }
  // RFC 6120 §5.4.3.3: nothing learnt before TLS survives it, so a SASL exchange started in
  // the clear cannot be finished under TLS.
  return [{ ...s, notopen: true, streamId: undefined, sasl: undefined }, [
    { kind: "send", stanza: PROCEED },
    { kind: "starttls" },
    { kind: "reset-stream", authenticated: false },
  ]];
}

/** The TLS handshake finished: the client now opens a new stream. */
export function onTlsDone(s: Session, channelBindings: ChannelBindings): Step {
  return [{ ...s, secure: true, channelBindings }, []];
}

/** True for the `<starttls/>` element. */
export function isStartTls(el: Element): boolean {
  return el.name === "starttls" && el.xmlns === NS_TLS;
}
