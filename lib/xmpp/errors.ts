/**
 * Stream errors (RFC 6120 §4.9) and stanza errors (RFC 6120 §8.3) as data and as elements.
 * @module
 */
import { elem, type Element, stanza } from "../xml/element.ts";
import { NS_STANZA_ERRORS, NS_STREAM_ERRORS, NS_STREAMS } from "./namespaces.ts";

/** RFC 6120 §4.9.3 defined stream error conditions. */
export type StreamErrorCondition =
  | "bad-format"
  | "bad-namespace-prefix"
  | "conflict"
  | "connection-timeout"
  | "host-gone"
  | "host-unknown"
  | "improper-addressing"
  | "internal-server-error"
  | "invalid-from"
  | "invalid-namespace"
  | "invalid-xml"
  | "not-authorized"
  | "not-well-formed"
  | "policy-violation"
  | "remote-connection-failed"
  | "reset"
  | "resource-constraint"
  | "restricted-xml"
  | "see-other-host"
  | "system-shutdown"
  | "undefined-condition"
  | "unsupported-encoding"
  | "unsupported-feature"
  | "unsupported-stanza-type"
  | "unsupported-version";

/** A stream error to send before closing. */
export interface StreamError {
  readonly condition: StreamErrorCondition;
  readonly text?: string;
  /** An application-specific condition element (RFC 6120 §4.9.4). */
  readonly app?: Element;
}

/** The `<stream:error>` element for a condition (serialize with parent namespace NS_STREAMS). */
export function streamErrorElement(err: StreamError): Element {
  return elem("error", { xmlns: NS_STREAMS }, [
    elem(err.condition, { xmlns: NS_STREAM_ERRORS }),
    err.text !== undefined &&
    elem("text", { xmlns: NS_STREAM_ERRORS, "xml:lang": "en" }, [err.text]),
    err.app,
  ]);
}

/** RFC 6120 §8.3.2 error types. */
export type StanzaErrorType = "auth" | "cancel" | "continue" | "modify" | "wait";

/** RFC 6120 §8.3.3 defined stanza error conditions. */
export type StanzaErrorCondition =
  | "bad-request"
  | "conflict"
  | "feature-not-implemented"
  | "forbidden"
  | "gone"
  | "internal-server-error"
  | "item-not-found"
  | "jid-malformed"
  | "not-acceptable"
  | "not-allowed"
  | "not-authorized"
  | "policy-violation"
  | "recipient-unavailable"
  | "redirect"
  | "registration-required"
  | "remote-server-not-found"
  | "remote-server-timeout"
  | "resource-constraint"
  | "service-unavailable"
  | "subscription-required"
  | "undefined-condition"
  | "unexpected-request";

/** The type RFC 6120 §8.3.3 gives each condition in its examples. */
const DEFAULT_ERROR_TYPE: Readonly<Record<StanzaErrorCondition, StanzaErrorType>> = {
  "bad-request": "modify",
  "conflict": "cancel",
  "feature-not-implemented": "cancel",
  "forbidden": "auth",
  "gone": "cancel",
  "internal-server-error": "cancel",
  "item-not-found": "cancel",
  "jid-malformed": "modify",
  "not-acceptable": "modify",
  "not-allowed": "cancel",
  "not-authorized": "auth",
  "policy-violation": "modify",
  "recipient-unavailable": "wait",
  "redirect": "modify",
  "registration-required": "auth",
  "remote-server-not-found": "cancel",
  "remote-server-timeout": "wait",
  "resource-constraint": "wait",
  "service-unavailable": "cancel",
  "subscription-required": "auth",
  "undefined-condition": "cancel",
  "unexpected-request": "wait",
};

/** Options of a stanza error reply. */
export interface StanzaErrorOptions {
  readonly type?: StanzaErrorType;
  readonly text?: string;
  /** Who generated the error (RFC 6120 §8.3.1 `by`). */
  readonly by?: string;
  /** An application-specific condition element. */
  readonly extra?: Element;
}

/** The `<error/>` child of a stanza error. */
function stanzaErrorElement(
  condition: StanzaErrorCondition,
  opts: StanzaErrorOptions = {},
): Element {
  return elem("error", { type: opts.type ?? DEFAULT_ERROR_TYPE[condition], by: opts.by }, [
    elem(condition, { xmlns: NS_STANZA_ERRORS }),
    opts.text !== undefined &&
    elem("text", { xmlns: NS_STANZA_ERRORS, "xml:lang": "en" }, [opts.text]),
    opts.extra,
  ]);
}

/**
 * The error reply to a stanza (RFC 6120 §8.3.1): to and from swapped, same id and name, type
 * error, the original payload kept for iq only when it is small (we keep none: clients match
 * by id).
 */
export function errorReply(
  original: Element,
  condition: StanzaErrorCondition,
  opts: StanzaErrorOptions = {},
): Element {
  const { from, to, id } = original.attrs;
  return stanza(original.name as "message" | "presence" | "iq", {
    type: "error",
    id,
    from: to,
    to: from,
  }, [stanzaErrorElement(condition, opts)]);
}

/** A result reply to an iq, with optional payload. */
export function iqResult(iq: Element, payload?: Element): Element {
  const { from, to, id } = iq.attrs;
  return stanza("iq", { type: "result", id, from: to, to: from }, [payload]);
}

/** True when the stanza is itself an error (never answered with an error, RFC 6120 §8.3.1). */
export function isError(el: Element): boolean {
  return el.attrs.type === "error";
}
