/**
 * The readonly element model every other module speaks: stanzas from the parser, stanzas built
 * by reducers, and the serializer that writes them back.
 *
 * `xmlns` is always resolved; an element built without one inherits its parent's namespace when
 * the parent is built (the empty string means "not yet known"). An element in no namespace, as
 * `<x xmlns=''/>` puts it, has `NO_NAMESPACE`: it must neither inherit nor lose its `xmlns=''`
 * on the way out, or the server and the recipient would read the stanza differently.
 *
 * @module
 */

/** The client namespace (lib/xmpp/namespaces.ts names it too; xml/ sits below xmpp/). */
const NS_CLIENT = "jabber:client";

/** A text node is a plain string; everything else is an element. */
export type XmlNode = Element | string;

/** One XML element, immutable. */
export interface Element {
  /** Local name (no prefix). */
  readonly name: string;
  /**
   * Namespace URI; `NO_NAMESPACE` for an element in no namespace; "" only for a detached
   * element built without one.
   */
  readonly xmlns: string;
  /** Attributes by qualified name (`type`, `xml:lang`); namespace declarations excluded. */
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: readonly XmlNode[];
}

/**
 * The `xmlns` of an element in no namespace. It holds U+0000, which no namespace read from XML
 * can contain, so it never stands for a real URI.
 */
export const NO_NAMESPACE = "\u0000none";

/**
 * Attribute input for the builder: undefined values are left out, `xmlns` sets the namespace
 * (`NO_NAMESPACE` for none).
 */
export type AttrsInput = Readonly<Record<string, string | undefined>>;

/** Characters allowed by XML 1.0 §2.2 (Char production). */
// deno-lint-ignore no-control-regex
const INVALID_CHAR = /[^\u0009\u000A\u000D\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/u;
const NAME = /^[A-Za-z_][\w.\-]*(?::[A-Za-z_][\w.\-]*)?$/;

/** Thrown by the builder for input that cannot be represented as XML. */
export class XmlBuildError extends Error {
  override name = "XmlBuildError";
}

/** True when `s` holds only characters XML 1.0 allows (lone surrogates are refused too). */
export function isValidXmlText(s: string): boolean {
  return !INVALID_CHAR.test(s);
}

function checkText(s: string): string {
  if (!isValidXmlText(s)) throw new XmlBuildError("invalid character in XML text");
  return s;
}

function inherit(node: XmlNode, xmlns: string): XmlNode {
  if (typeof node === "string" || node.xmlns !== "") return node;
  return { ...node, xmlns, children: node.children.map((c) => inherit(c, xmlns)) };
}

/**
 * Builds an element, validating its name, attribute names and values, and text children.
 * Children built without a namespace take this element's.
 */
export function elem(
  name: string,
  attrs: AttrsInput = {},
  children: readonly (XmlNode | undefined | false)[] = [],
): Element {
  if (!isName(name)) throw new XmlBuildError(`invalid element name: ${name}`);
  const xmlns = attrs.xmlns === NO_NAMESPACE ? NO_NAMESPACE : checkText(attrs.xmlns ?? "");
  const clean: Record<string, string> = {};
  // for-in rather than Object.entries: no array of pairs made for every element built.
  for (const k in attrs) {
    const v = attrs[k];
    if (v === undefined || k === "xmlns" || !Object.hasOwn(attrs, k)) continue;
    if (!isName(k)) throw new XmlBuildError(`invalid attribute name: ${k}`);
    clean[k] = checkText(v);
  }
  const kids: XmlNode[] = [];
  for (const c of children) {
    if (c === undefined || c === false) continue;
    kids.push(typeof c === "string" ? checkText(c) : xmlns === "" ? c : inherit(c, xmlns));
  }
  return { name, xmlns, attrs: clean, children: kids };
}

/** Builds a top-level stanza (`message`, `presence`, `iq`) in the client namespace. */
export function stanza(
  name: "message" | "presence" | "iq",
  attrs: AttrsInput = {},
  children: readonly (XmlNode | undefined | false)[] = [],
): Element {
  return elem(name, { xmlns: NS_CLIENT, ...attrs }, children);
}

/** The first child element with this name and namespace (namespace defaults to the parent's). */
export function child(el: Element, name: string, xmlns: string = el.xmlns): Element | undefined {
  for (const c of el.children) {
    if (typeof c !== "string" && c.name === name && c.xmlns === xmlns) return c;
  }
  return undefined;
}

/** Every child element, optionally only those in one namespace. */
export function childElements(el: Element, xmlns?: string): Element[] {
  const out: Element[] = [];
  for (const c of el.children) {
    if (typeof c !== "string" && (xmlns === undefined || c.xmlns === xmlns)) out.push(c);
  }
  return out;
}

/** The concatenated text children of an element. */
export function text(el: Element): string {
  let s = "";
  for (const c of el.children) if (typeof c === "string") s += c;
  return s;
}

/** The text of the named child, or undefined when the child is missing. */
export function childText(el: Element, name: string, xmlns?: string): string | undefined {
  const c = child(el, name, xmlns);
  return c === undefined ? undefined : text(c);
}

/** A copy with some attributes changed (undefined removes one). */
export function withAttrs(el: Element, attrs: AttrsInput): Element {
  // Built key by key rather than copied and then `delete`d: an object that loses a key falls
  // out of V8's fast shapes, and this runs several times for every stanza.
  // Attributes keep their order: a changed one stays where it was, new ones come last.
  const next: Record<string, string> = {};
  for (const k in el.attrs) {
    const old = el.attrs[k];
    if (!Object.hasOwn(attrs, k)) next[k] = old;
    else {
      const v = attrs[k];
      // A value the element already holds was checked when it got it (stamping a stanza sets
      // `to` and `xml:lang` to what they were, mostly).
      if (v !== undefined) next[k] = v === old ? old : checkText(v);
    }
  }
  for (const k in attrs) {
    const v = attrs[k];
    if (v === undefined || Object.hasOwn(el.attrs, k)) continue;
    if (!isName(k)) throw new XmlBuildError(`invalid attribute name: ${k}`);
    next[k] = checkText(v);
  }
  return { ...el, attrs: next };
}

/**
 * Names our code already used (element and attribute names), so that the same few are not
 * matched again for every element built.
 */
const KNOWN_NAMES = new Set<string>();

function isName(k: string): boolean {
  if (KNOWN_NAMES.has(k)) return true;
  if (!NAME.test(k)) return false;
  // Bounded: the names come from our code, but nothing here may grow without a limit.
  if (KNOWN_NAMES.size < 256) KNOWN_NAMES.add(k);
  return true;
}

/** A copy with other children. */
export function withChildren(el: Element, children: readonly XmlNode[]): Element {
  return { ...el, children };
}

// A raw CR in character data would be read back as LF (XML 1.0 §2.11), so it is escaped too.
const ESC_TEXT: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "\r": "&#13;" };
const ESC_ATTR: Record<string, string> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&apos;",
  "\t": "&#9;",
  "\n": "&#10;",
  "\r": "&#13;",
};

/** Escapes character data. */
export function escapeText(s: string): string {
  return /[&<>\r]/.test(s) ? s.replace(/[&<>\r]/g, (c) => ESC_TEXT[c]) : s;
}

/** Escapes an attribute value for double quotes, keeping whitespace characters exact. */
export function escapeAttr(s: string): string {
  return /[&<>"'\t\n\r]/.test(s) ? s.replace(/[&<>"'\t\n\r]/g, (c) => ESC_ATTR[c]) : s;
}

/**
 * Serializes an element. `parentXmlns` is the default namespace in scope where it is written (the
 * stream's content namespace for a stanza; "" or `NO_NAMESPACE` for none); a differing namespace
 * is declared on the element, `xmlns=""` for an element in no namespace.
 */
export function serialize(el: Element, parentXmlns: string = NS_CLIENT): string {
  const scope = parentXmlns === "" ? NO_NAMESPACE : parentXmlns;
  const ns = el.xmlns === "" ? scope : el.xmlns;
  let s = "<" + el.name;
  if (ns !== scope) s += ' xmlns="' + (ns === NO_NAMESPACE ? "" : escapeAttr(ns)) + '"';
  for (const k in el.attrs) s += " " + k + '="' + escapeAttr(el.attrs[k]) + '"';
  if (el.children.length === 0) return s + "/>";
  s += ">";
  for (const c of el.children) s += typeof c === "string" ? escapeText(c) : serialize(c, ns);
  return s + "</" + el.name + ">";
}

/**
 * A copy of `el` with every element in namespace `from` moved to `to`: the stanza namespace
 * differs between client, component and server streams, while payloads keep theirs.
 */
export function renamespace(el: Element, from: string, to: string): Element {
  const children: XmlNode[] = el.children.map((c) =>
    typeof c === "string" ? c : renamespace(c, from, to)
  );
  return { ...el, xmlns: el.xmlns === from ? to : el.xmlns, children };
}
