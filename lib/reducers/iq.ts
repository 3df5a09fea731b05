/**
 * IQ basics (RFC 6120 §8.2.3): validation, the handlers the server answers itself, and
 * `service-unavailable` for namespaces nobody handles.
 * @module
 */
import type { Session } from "../session.ts";
import { childElements, type Element } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { NS_PING, NS_SESSION } from "../xmpp/namespaces.ts";
import type { Ctx, Step } from "./types.ts";

/** An IQ handler for one payload (`namespace name`), answering on behalf of the server. */
export type IqHandler = (s: Session, iq: Element, payload: Element, ctx: Ctx) => Step;

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

/** Handlers answered by the server for its own domain and for the user's own account. */
export const SERVER_IQ_HANDLERS: Readonly<Record<string, IqHandler>> = {
  // XEP-0199 client-to-server ping.
  [`${NS_PING} ping`]: (s, iq) => reply(s, iqResult(iq)),
  // RFC 6121 Appendix E: the legacy session request succeeds and does nothing.
  [`${NS_SESSION} session`]: (s, iq) => reply(s, iqResult(iq)),
};

/** An iq addressed to the server or the user's own bare JID (from is already stamped). */
export function onServerIq(s: Session, iq: Element, ctx: Ctx): Step {
  const type = iq.attrs.type;
  // Results and errors are never answered (RFC 6120 §8.2.3).
  if (type === "result" || type === "error") return [s, []];
  const payload = childElements(iq)[0];
  const handler = SERVER_IQ_HANDLERS[`${payload.xmlns} ${payload.name}`];
  if (handler === undefined) return reply(s, errorReply(iq, "service-unavailable"));
  return handler(s, iq, payload, ctx);
}

/** Disco-style list of the features the iq handlers provide. */
export function iqFeatures(): string[] {
  return Object.keys(SERVER_IQ_HANDLERS).map((k) => k.split(" ")[0]);
}

/** A bad-request reply, for malformed iqs that can be answered. */
export function badRequest(iq: Element, why: string): Element {
  return errorReply(iq, "bad-request", { text: why });
}
