/** Stanzas for service reducer tests, written as client stream XML and parsed like the wire. */
import assert from "node:assert/strict";
import type { Element } from "../../lib/xml/element.ts";
import { createStreamParser } from "../../lib/xml/parser.ts";

/** Parses one stanza written as client stream XML. */
export function xml(s: string): Element {
  const p = createStreamParser({ maxStanzaBytes: 1 << 20 });
  const events = p.push(new TextEncoder().encode(
    `<stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">${s}`,
  ));
  const st = events.find((e) => e.kind === "stanza");
  assert.ok(st !== undefined && st.kind === "stanza", `not parsed: ${s}`);
  return st.stanza;
}
