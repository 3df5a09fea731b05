/**
 * Stanza matching as scansion does it, with the rules that proved right against Prosody (see
 * the conformance README): strictness per element, attributes, trimmed text, children in order
 * (strict) or in any order (not strict), and the `{scansion:any}` / `{scansion:capture:NAME}`
 * markers.
 *
 * @module
 */
import { childElements, type Element, text } from "../../lib/xml/element.ts";
import { NS_CLIENT } from "../../lib/xmpp/namespaces.ts";

/** Values captured by `{scansion:capture:NAME}`, by name. */
export type Captures = Readonly<Record<string, string>>;

const ANY = "{scansion:any}";
const CAPTURE = /^\{scansion:capture:([^}]+)\}$/;

function isMarkerAttr(name: string): boolean {
  return name.startsWith("scansion:") || name === "xmlns" || name.startsWith("xmlns:");
}

/** Matches one value against an expected one that may be a marker; undefined means no match. */
function matchValue(expected: string, actual: string, captures: Captures): Captures | undefined {
  if (expected === ANY) return captures;
  const cap = CAPTURE.exec(expected);
  if (cap === null) return expected === actual ? captures : undefined;
  const name = cap[1];
  if (name in captures) return captures[name] === actual ? captures : undefined;
  return { ...captures, [name]: actual };
}

/**
 * Whether an expected element is strict: an explicit `scansion:strict` wins; otherwise an element
 * whose namespace differs from its parent's (and is not `jabber:client`) is strict; otherwise it
 * inherits its parent's strictness.
 */
export function isStrict(expected: Element, parentXmlns: string, parentStrict: boolean): boolean {
  const explicit = expected.attrs["scansion:strict"];
  if (explicit !== undefined) return explicit.trim() === "true";
  if (expected.xmlns !== parentXmlns && expected.xmlns !== NS_CLIENT) return true;
  return parentStrict;
}

function matchElement(
  expected: Element,
  actual: Element,
  strict: boolean,
  captures: Captures,
): Captures | undefined {
  if (expected.name !== actual.name || expected.xmlns !== actual.xmlns) return undefined;
  let caps: Captures | undefined = captures;
  const wanted = Object.keys(expected.attrs).filter((k) => !isMarkerAttr(k));
  for (const k of wanted) {
    const v = actual.attrs[k];
    if (v === undefined) return undefined;
    caps = matchValue(expected.attrs[k], v, caps);
    if (caps === undefined) return undefined;
  }
  if (strict) {
    for (const k of Object.keys(actual.attrs)) {
      if (!isMarkerAttr(k) && !(k in expected.attrs)) return undefined;
    }
  }
  const expectedKids = childElements(expected);
  const actualKids = childElements(actual);
  if (expectedKids.length === 0) {
    const want = text(expected).trim();
    if (want !== "") {
      caps = matchValue(want, text(actual).trim(), caps);
      if (caps === undefined) return undefined;
    }
  }
  const kidStrict = expectedKids.map((k) => isStrict(k, expected.xmlns, strict));
  if (strict) {
    if (expectedKids.length !== actualKids.length) return undefined;
    for (let i = 0; i < expectedKids.length && caps !== undefined; i++) {
      caps = matchElement(expectedKids[i], actualKids[i], kidStrict[i], caps);
    }
    return caps;
  }
  return matchUnordered(expectedKids, kidStrict, actualKids, new Set(), 0, caps);
}

/** Each expected child against a different received child, any order; backtracks on failure. */
function matchUnordered(
  expected: readonly Element[],
  strict: readonly boolean[],
  actual: readonly Element[],
  used: ReadonlySet<number>,
  index: number,
  captures: Captures,
): Captures | undefined {
  if (index === expected.length) return captures;
  for (let j = 0; j < actual.length; j++) {
    if (used.has(j)) continue;
    const caps = matchElement(expected[index], actual[j], strict[index], captures);
    if (caps === undefined) continue;
    const rest = matchUnordered(expected, strict, actual, new Set([...used, j]), index + 1, caps);
    if (rest !== undefined) return rest;
  }
  return undefined;
}

/**
 * Matches a received top-level stanza against an expected one (its parent being the script's
 * `jabber:client` wrapper). Returns the captures extended with any new ones, or undefined when it
 * does not match; `captures` itself is never changed.
 */
export function matchStanza(
  expected: Element,
  received: Element,
  captures: Captures = {},
): Captures | undefined {
  return matchElement(expected, received, isStrict(expected, NS_CLIENT, false), captures);
}
