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

/** SASL mechanisms in order of preference. */
export type Mechanism =
  | "SCRAM-SHA-256-PLUS"
  | "SCRAM-SHA-1-PLUS"
  | "SCRAM-SHA-256"
  | "SCRAM-SHA-1"
  | "PLAIN";

/** Channel binding types this session could use for SCRAM-*-PLUS. */
export function bindingTypes(s: Session): string[] {
  return Object.keys(s.channelBindings).filter((k) =>
    s.channelBindings[k as keyof typeof s.channelBindings] !== undefined
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

/** The `<stream:features/>` element for the session's current state. */
export function streamFeatures(s: Session, ctx: Ctx): Element {
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
