/**
 * IQ basics (RFC 6120 §8.2.3): validation, dispatch to the registry's handlers, and
 * `service-unavailable` for namespaces nobody handles or whose module is off.
 * @module
 */
import type { Session } from "../core/session.ts";
import { childElements, type Element } from "../xml/element.ts";
import { errorReply } from "../xmpp/errors.ts";
import { enabledEntry, payloadKey, registryOf } from "../modules/registry.ts";
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
 * An iq from the user's session to the server's domain (`host`) or to the user's own account
 * (`self`), from stamped: answered by the module registered for its payload (for `self`, an
 * account module's data first, carried out by the account's queue), else, or when that module
 * is off, `service-unavailable` (RFC 6120 §8.2.3), as if it were absent. Who may ask is decided
 * here, by the table: `self` handlers only ever see the account's own sessions.
 */
export function onServerIq(s: Session, iq: Element, ctx: Ctx, target: "host" | "self"): Step {
  const type = iq.attrs.type;
  // Results and errors are never answered (RFC 6120 §8.2.3).
  if (type === "result" || type === "error") return [s, []];
  const payload = childElements(iq)[0];
  const key = payloadKey(payload);
  const registry = registryOf(ctx);
  if (target === "self" && enabledEntry(registry.accountIq, key, ctx) !== undefined) {
    const bare = `${s.username}@${s.host}`;
    return [s, [{ kind: "account", bare, op: { kind: "module-iq", iq } }]];
  }
  const entry = enabledEntry(target === "host" ? registry.hostIq : registry.selfIq, key, ctx);
  if (entry === undefined) return reply(s, errorReply(iq, "service-unavailable"));
  return entry.handler(s, iq, payload, ctx);
}

/** A bad-request reply, for malformed iqs that can be answered. */
export function badRequest(iq: Element, why: string): Element {
  return errorReply(iq, "bad-request", { text: why });
}
