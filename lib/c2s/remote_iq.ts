/**
 * Iqs to one of our domains from outside the client sessions (another server, a component, a
 * service): answered by the same host handlers a local user's session reaches (ping, disco,
 * version, time ...), run against a stand-in session that has no account, so that a handler
 * can only answer, never act for a user.
 * @module
 */
import { newSession } from "../core/session.ts";
import type { Ctx } from "../core/types.ts";
import type { Element } from "../xml/element.ts";
import { errorReply } from "../xmpp/errors.ts";
import { iqProblem, onServerIq } from "./iq.ts";

/** The answers to an iq get or set addressed to one of our domains by a remote entity. */
export function answerRemoteIq(iq: Element, ctx: Ctx): readonly Element[] {
  const type = iq.attrs.type;
  if (type !== "get" && type !== "set") return [];
  const problem = iqProblem(iq);
  if (problem !== undefined) return [errorReply(iq, "bad-request", { text: problem })];
  const from = iq.attrs.from ?? "";
  const stranger = { ...newSession("remote", { ip: "", secure: true }), fullJid: from };
  const [, outputs] = onServerIq(stranger, iq, ctx, "host");
  // Only replies leave: anything a handler would do for a session of ours does not apply.
  return outputs.flatMap((o) => o.kind === "send" ? [o.stanza] : []);
}
