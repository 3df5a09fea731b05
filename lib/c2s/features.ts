/**
 * Stream features (RFC 6120 §4.3.2), derived from the session's state: each feature says which
 * state it needs, so the order of negotiation follows from data.
 * @module
 */
import type { Session } from "../core/session.ts";
import { elem, type Element } from "../xml/element.ts";
import {
  NS_BIND,
  NS_LIMITS,
  NS_SASL,
  NS_SASL_CB,
  NS_SESSION,
  NS_STREAMS,
  NS_TLS,
} from "../xmpp/namespaces.ts";
import { registryOf } from "../modules/registry.ts";
import { registerFeature } from "../modules/register.ts";
import { type Ctx, isEnabled } from "../core/types.ts";
import { markFixed } from "../xmpp/stream_xml.ts";

/** SASL mechanisms in order of preference. */
export type Mechanism =
  | "SCRAM-SHA-256-PLUS"
  | "SCRAM-SHA-1-PLUS"
  | "SCRAM-SHA-256"
  | "SCRAM-SHA-1"
  | "PLAIN";

/**
 * Channel binding types this session could use for SCRAM-*-PLUS. A type whose value the TLS
 * layer computes when first read (a getter) counts without being computed.
 */
export function bindingTypes(s: Session): string[] {
  const cb = s.channelBindings;
  return Object.keys(cb).filter((k) =>
    Object.getOwnPropertyDescriptor(cb, k)?.get !== undefined ||
    cb[k as keyof typeof cb] !== undefined
  );
}

/** Mechanisms offered to this session now (none before TLS when encryption is required). */
export function offeredMechanisms(s: Session, ctx: Ctx): Mechanism[] {
  if (!s.secure && ctx.requireEncryption) return [];
  const out: Mechanism[] = [];
  if (s.secure && bindingTypes(s).length > 0) out.push("SCRAM-SHA-256-PLUS", "SCRAM-SHA-1-PLUS");
  out.push("SCRAM-SHA-256", "SCRAM-SHA-1");
  // PLAIN sends the password itself: only under TLS.
  if (s.secure && ctx.allowPlain) out.push("PLAIN");
  return out;
}

function limits(maxBytes: number, ctx: Ctx): Element {
  return elem("limits", { xmlns: NS_LIMITS }, [
    elem("max-bytes", {}, [String(maxBytes)]),
    elem("idle-seconds", {}, [String(ctx.idleSeconds)]),
  ]);
}

/**
 * Built features per context, by what of the session they depend on (see `featuresKey`): every
 * stream restart of every login asks, and the answer for a context (the server's, the same
 * for every session) only changes with the session's stage, TLS and channel binding types.
 * Bounded per context, though the keys are few (the binding types are our TLS layer's names).
 */
const BUILT = new WeakMap<Ctx, Map<string, Element>>();
const BUILT_MAX = 32;

/** What of the session `buildFeatures` reads; the rest comes from `ctx` alone. */
function featuresKey(s: Session): string {
  const stage = s.type === "c2s_unauthed" ? "u" : s.fullJid === undefined ? "a" : "b";
  return `${stage}${s.secure ? "s" : "p"}${bindingTypes(s).join(",")}`;
}

/** The `<stream:features/>` element for the session's current state. */
export function streamFeatures(s: Session, ctx: Ctx): Element {
  let built = BUILT.get(ctx);
  if (built === undefined) BUILT.set(ctx, built = new Map());
  const key = featuresKey(s);
  let el = built.get(key);
  if (el === undefined) {
    el = markFixed(buildFeatures(s, ctx));
    if (built.size < BUILT_MAX) built.set(key, el);
  }
  return el;
}

function buildFeatures(s: Session, ctx: Ctx): Element {
  const children: Element[] = [];
  if (s.type === "c2s_unauthed") {
    if (!s.secure && ctx.tlsAvailable) {
      children.push(elem("starttls", { xmlns: NS_TLS }, [
        ctx.requireEncryption && elem("required"),
      ]));
    }
    const mechs = offeredMechanisms(s, ctx);
    if (mechs.length > 0) {
      children.push(elem(
        "mechanisms",
        { xmlns: NS_SASL },
        mechs.map((m) => elem("mechanism", {}, [m])),
      ));
      const types = bindingTypes(s);
      if (types.length > 0 && s.secure) {
        // XEP-0440: advertise only the binding types we can actually compute.
        children.push(elem(
          "sasl-channel-binding",
          { xmlns: NS_SASL_CB },
          types.map((type) => elem("channel-binding", { type })),
        ));
      }
    }
    // XEP-0077 §8: in-band registration, when it is open to this stream.
    const register = registerFeature(s, ctx);
    if (register !== undefined) children.push(register);
    children.push(limits(ctx.maxStanzaSizeUnauthed, ctx));
  } else if (s.fullJid === undefined) {
    children.push(elem("bind", { xmlns: NS_BIND }));
    // RFC 6121 Appendix E: session establishment is a no-op kept for old clients.
    children.push(elem("session", { xmlns: NS_SESSION }, [elem("optional")]));
    children.push(limits(ctx.maxStanzaSize, ctx));
    // What the registered modules that are on offer once authenticated (csi, sm, caps).
    for (const m of registryOf(ctx).authedFeatures) {
      if (isEnabled(m, ctx)) children.push(...m.authedFeatures(ctx));
    }
  }
  return elem("features", { xmlns: NS_STREAMS }, children);
}
