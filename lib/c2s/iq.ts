/**
 * IQ basics (RFC 6120 §8.2.3): validation, the handlers the server answers itself, and
 * `service-unavailable` for namespaces nobody handles.
 * @module
 */
import type { Session } from "../core/session.ts";
import { childElements, type Element } from "../xml/element.ts";
import { errorReply } from "../xmpp/errors.ts";
import { HOST_IQ, SELF_IQ } from "../modules/registry.ts";
import type { Ctx, Step } from "../core/types.ts";

/** Why an iq is malformed, or undefined when it is well-formed (RFC 6120 §8.2.3). */
export function iqProblem(iq: Element): string | undefined {
  const type = iq.attrs.type;
  if (iq.attrs.id === undefined) return "An iq needs an id";
  if (type !== "get" && type !== "set" && type !== "result" && type !== "error") {
    return "An iq type must be get, set, result or error";
  }
  const payloads = childElements(iq);
  if ((type === "get" || type === "set") && payloads.length !== 1) {
    return "A get or set iq must have exactly one child element";
  }
  if (type === "result" && payloads.length > 1) return "A result iq has at most one child";
  return undefined;
}

function reply(s: Session, stanza: Element): Step {
  return [s, [{ kind: "send", stanza }]];
}

/**
 * An iq to the server's domain (`host`) or to the user's own account (`self`), from stamped:
 * answered by the module registered for its payload, else `service-unavailable`.
 */
export function onServerIq(s: Session, iq: Element, ctx: Ctx, target: "host" | "self"): Step {
  const type = iq.attrs.type;
  // Results and errors are never answered (RFC 6120 §8.2.3).
  if (type === "result" || type === "error") return [s, []];
  const payload = childElements(iq)[0];
  const handlers = target === "host" ? HOST_IQ : SELF_IQ;
  const handler = Object.hasOwn(handlers, `${payload.xmlns} ${payload.name}`)
    ? handlers[`${payload.xmlns} ${payload.name}`]
    : undefined;
  if (handler === undefined) return reply(s, errorReply(iq, "service-unavailable"));
  return handler(s, iq, payload, ctx);
}

/** A bad-request reply, for malformed iqs that can be answered. */
export function badRequest(iq: Element, why: string): Element {
  return errorReply(iq, "bad-request", { text: why });
}
