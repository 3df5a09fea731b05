/**
 * The size of a stanza for byte caps (XEP-0198 queue, XEP-0352 held stanzas): about its
 * serialized UTF-8 length, counted by walking the tree without building the text. Escapes and
 * namespace declarations are left out, so it is a lower bound within a few percent; what it
 * bounds is memory, which holds the unescaped strings anyway. Measured once per stanza, when it
 * joins a queue, and remembered beside it.
 * @module
 */
import { utf8Bytes } from "../limits.ts";
import type { Element } from "../xml/element.ts";

/** About the serialized size of `el` in bytes. */
export function stanzaBytes(el: Element): number {
  // `<name` + `>` + `</name>`, or `<name/>`: counted as the longer form.
  let n = 2 * utf8Bytes(el.name) + 5;
  for (const key in el.attrs) n += utf8Bytes(key) + utf8Bytes(el.attrs[key]) + 4;
  for (const c of el.children) n += typeof c === "string" ? utf8Bytes(c) : stanzaBytes(c);
  return n;
}
