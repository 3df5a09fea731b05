/**
 * Pubsub refusals as data (XEP-0060 §7 to §8 error cases): the stanza error condition, the
 * `pubsub#errors` element that says which rule was broken, and a text. The engine returns them;
 * {@link errorStanza} turns one into the reply to the iq that asked.
 * @module
 */
import { elem, type Element } from "../xml/element.ts";
import { errorReply, type StanzaErrorCondition, type StanzaErrorType } from "../xmpp/errors.ts";
import { NS_PUBSUB_ERRORS, NS_STANZA_ERRORS } from "../xmpp/namespaces.ts";

/** One refusal. */
export interface PubsubError {
  readonly condition: StanzaErrorCondition;
  /** The application condition in `http://jabber.org/protocol/pubsub#errors`, if any. */
  readonly pubsub?: string;
  /** The `feature` attribute of an `unsupported` application condition. */
  readonly feature?: string;
  readonly text?: string;
  /**
   * The error type where XEP-0060's tables give another than the condition's usual one
   * (`unexpected-request` is `cancel` there, `policy-violation` is `wait`).
   */
  readonly type?: StanzaErrorType;
}

/** A refusal with its condition, application condition and text. */
export function refusal(
  condition: StanzaErrorCondition,
  pubsub?: string,
  text?: string,
): PubsubError {
  // Absent rather than undefined, so that refusals compare equal however they were built.
  return {
    condition,
    ...(pubsub === undefined ? {} : { pubsub }),
    ...(text === undefined ? {} : { text }),
  };
}

/**
 * The error reply to `iq` that says `error`. The text carries no `xml:lang`, as Prosody's
 * (clients and the conformance scripts compare pubsub errors with Prosody's exactly): the
 * stream's language applies (RFC 6120 §8.3.2).
 */
export function errorStanza(iq: Element, error: PubsubError): Element {
  const reply = errorReply(iq, error.condition, {
    type: error.type,
    extra: error.pubsub === undefined
      ? undefined
      : elem(error.pubsub, { xmlns: NS_PUBSUB_ERRORS, feature: error.feature }),
  });
  if (error.text === undefined) return reply;
  const err = reply.children[0] as Element;
  const [condition, ...rest] = err.children;
  const text = elem("text", { xmlns: NS_STANZA_ERRORS }, [error.text]);
  return { ...reply, children: [{ ...err, children: [condition, text, ...rest] }] };
}
