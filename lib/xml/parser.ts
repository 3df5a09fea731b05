/**
 * The streaming XML parser for XMPP streams (RFC 6120 §4, §11): bytes in, stream events out.
 *
 * It wraps saxes and adds what XMPP needs on top of plain XML: one event per stanza (a direct
 * child of the stream root), restricted XML (no DOCTYPE, comments or processing instructions),
 * and limits on stanza size and depth that fire while the offending stanza is still arriving,
 * so a peer can never make us buffer more than about one limit's worth of input.
 *
 * @module
 */

import { utf8Bytes } from "../limits.ts";
import { type SaxesAttributeNS, SaxesParser, type SaxesTagNS } from "saxes";
import { type Element, NO_NAMESPACE, type XmlNode } from "./element.ts";

/** Why a stream could not be parsed; each maps to the stream error of the same name. */
export type ParseErrorCondition =
  | "not-well-formed"
  | "restricted-xml"
  | "policy-violation"
  | "bad-namespace-prefix"
  | "bad-format";

/** What a chunk of input completed. */
export type ParseEvent =
  | {
    readonly kind: "stream-open";
    /** Local name of the root (`stream`). */
    readonly name: string;
    /** Prefix of the root (`stream`), or "" when unprefixed. */
    readonly prefix: string;
    /** Resolved namespace URI of the root. */
    readonly xmlns: string;
    /** Default namespace declared on the root, "" when none. */
    readonly contentXmlns: string;
    /** Attributes by qualified name, namespace declarations left out. */
    readonly attrs: Readonly<Record<string, string>>;
  }
  | { readonly kind: "stanza"; readonly stanza: Element }
  | { readonly kind: "stream-close" }
  | { readonly kind: "error"; readonly condition: ParseErrorCondition; readonly text: string };

/** Limits for one stream. */
export interface StreamParserOptions {
  /** Largest stanza (and stream header) in bytes, from its `<` to its end. */
  readonly maxStanzaBytes: number;
  /** Deepest element nesting inside a stanza (the stanza itself is depth 1); default 32. */
  readonly maxDepth?: number;
}

/** A parser for one stream; a stream restart takes a new parser. */
export interface StreamParser {
  /**
   * Feeds bytes; returns the events they complete, in order. After an error event the parser is
   * dead and returns []. The chunk is not kept: the caller may reuse it once this returns.
   */
  push(chunk: Uint8Array): readonly ParseEvent[];
  /** Changes the stanza size limit (raised after authentication). */
  setMaxStanzaBytes(n: number): void;
  /**
   * Lets go of the XML parser while the stream is between stanzas, for a connection that has
   * gone quiet: an idle stream then keeps only a copy of its header, which the next push
   * replays into a new XML parser. Does nothing elsewhere in the stream.
   */
  compact(): void;
}

/**
 * saxes's handler slots. Its `on()` adds them with computed keys, and after a few such adds V8
 * turns the parser object into a dictionary: every write saxes makes to its own state then takes
 * a generic store, which cost two thirds of the throughput here. Assigned by name, the object
 * keeps fast properties. The names are those of saxes 6.0.0 as pinned in deno.json; if they
 * changed, no handler would run and every parser test would fail.
 */
interface SaxesSlots {
  errorHandler?: (err: Error) => void;
  doctypeHandler?: () => void;
  commentHandler?: () => void;
  piHandler?: () => void;
  cdataHandler?: (cdata: string) => void;
  openTagStartHandler?: () => void;
  attributeHandler?: (attr: SaxesAttributeNS) => void;
  openTagHandler?: (tag: SaxesTagNS) => void;
  closeTagHandler?: () => void;
  textHandler?: (text: string) => void;
}

/** An element under construction: its children grow until its end tag. */
interface Building {
  readonly name: string;
  readonly xmlns: string;
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: XmlNode[];
}

// saxes is fed at most this many bytes at a time, so the limits are checked at least this often
// and an oversized stanza is refused after at most limit + SLICE bytes.
const SLICE = 4096;

// Where we are in the stream.
const PROLOG = 0; // before the root start tag is complete
const GAP = 1; // between stanzas
const STANZA = 2; // inside a stanza (from the `<` of its start tag)
const CLOSED = 3; // root end tag read, stream-close not yet emitted
const DONE = 4; // stream closed or failed

const NONE: readonly ParseEvent[] = Object.freeze([]);
const NO_ATTRS: Readonly<Record<string, string>> = Object.freeze({});

// Shared by all streams: push() only ever decodes whole characters, so no decoder holds state
// between calls. The byte order mark is dropped by feed(), at the start of the stream only.
const DECODER = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function newSaxes(): SaxesParser {
  return new SaxesParser({ xmlns: true, defaultXMLVersion: "1.0", forceXMLVersion: true });
}

// Thrown out of saxes callbacks to stop parsing at once; never escapes push().
const ABORT = new Error("stream parser aborted");

/** Creates a parser for one XMPP stream. */
export function createStreamParser(opts: StreamParserOptions): StreamParser {
  let maxBytes = opts.maxStanzaBytes;
  const maxDepth = opts.maxDepth ?? 32;
  // Undefined while compacted; `header` is the stream's root start tag to replay then, and
  // `posShift` maps the current saxes's positions (which count the replay) onto the stream's.
  let sax: SaxesParser | undefined = newSaxes();
  let slots = sax as unknown as SaxesSlots;
  let header = "";
  let posShift = 0;

  let out: ParseEvent[] = [];
  // saxes reports a mismatched end tag only after the close tag callback for the element it
  // popped, so a completed stanza or stream end is held here until the next callback shows the
  // end tag was right.
  let pending: ParseEvent | undefined;
  let phase = PROLOG;
  const stack: Building[] = [];
  // Bytes of an unfinished UTF-8 sequence at the end of the last chunk.
  let carry: Uint8Array | undefined;

  // Byte accounting. saxes reports positions in UTF-16 code units over everything written to it;
  // each slice we write is whole characters, so its code units map to its bytes exactly.
  let totalBytes = 0;
  let totalChars = 0;
  let sliceStr = "";
  let sliceCharStart = 0;
  let sliceByteStart = 0;
  let sliceAscii = true;
  let memoRel = 0; // bytesAt() walks forward from its last answer within a non-ASCII slice
  let memoBytes = 0;
  let startByte = 0; // where the stream header or the current stanza began
  let gapStart = 0; // code unit position where the current gap between stanzas began
  let ltKnown = false; // whether the `<` ending the gap has been located (at ltByte)
  let ltByte = 0;

  function fail(condition: ParseErrorCondition, text: string): never {
    if (phase !== DONE) {
      phase = DONE;
      out.push({ kind: "error", condition, text });
    }
    throw ABORT;
  }

  function flush(): void {
    if (pending === undefined) return;
    out.push(pending);
    pending = undefined;
    if (phase === CLOSED) {
      phase = DONE;
      throw ABORT;
    }
  }

  function bytesAt(pos: number): number {
    let rel = pos - sliceCharStart;
    if (rel < 0) rel = 0;
    if (sliceAscii) return sliceByteStart + rel;
    if (rel < memoRel) {
      memoRel = 0;
      memoBytes = 0;
    }
    memoBytes += utf8Bytes(sliceStr, memoRel, rel);
    memoRel = rel;
    return sliceByteStart + memoBytes;
  }

  // Text between stanzas must be whitespace (RFC 6120 §11.7). saxes is not given a text handler
  // there, so it does not buffer keepalives; the gap is checked here instead, in the slice text.
  function checkGap(from: number, to: number): void {
    if (!isXmlSpace(sliceStr, from, to)) fail("bad-format", "text between stanzas");
  }

  // Called when markup ends a gap (a stanza start tag or the stream end tag) at code unit `pos`.
  function endGap(pos: number): void {
    if (ltKnown) return;
    const from = gapStart > sliceCharStart ? gapStart - sliceCharStart : 0;
    // `pos` is past the character that ended the tag name, which is itself a `<` in `<a<`.
    let lt = sliceStr.lastIndexOf("<", pos - sliceCharStart - 2);
    if (lt < from) lt = from;
    checkGap(from, lt);
    ltKnown = true;
    ltByte = bytesAt(sliceCharStart + lt);
  }

  function startGap(pos: number): void {
    phase = GAP;
    gapStart = pos;
    ltKnown = false;
  }

  function onText(t: string): void {
    const kids = stack[stack.length - 1].children;
    const last = kids.length - 1;
    if (last >= 0 && typeof kids[last] === "string") kids[last] += t;
    else kids.push(t);
  }

  function errorHandler(err: Error): void {
    const message = err.message;
    if (pending !== undefined) {
      if (message.includes("unexpected close tag")) pending = undefined;
      // Anything after the stream end is not ours to judge.
      else flush();
    }
    // Text between stanzas that came before the error is the first problem in the stream,
    // however the input was cut (otherwise it would be found at the end of the chunk only).
    if (phase === GAP && !ltKnown) {
      const from = gapStart > sliceCharStart ? gapStart - sliceCharStart : 0;
      let to = sax!.position + posShift - sliceCharStart;
      const lt = sliceStr.indexOf("<", from);
      if (lt !== -1 && lt < to) to = lt;
      if (to > sliceStr.length) to = sliceStr.length;
      if (to > from) checkGap(from, to);
    }
    fail(classify(message), message);
  }
  function doctypeHandler(): void {
    flush();
    fail("restricted-xml", "DOCTYPE is not allowed");
  }
  function commentHandler(): void {
    flush();
    fail("restricted-xml", "comments are not allowed");
  }
  function piHandler(): void {
    flush();
    fail("restricted-xml", "processing instructions are not allowed");
  }
  function cdataHandler(t: string): void {
    if (pending !== undefined) flush();
    if (phase === STANZA) {
      if (t.length !== 0) onText(t);
    } else if (!isXmlSpace(t, 0, t.length)) fail("bad-format", "text between stanzas");
  }

  // The attributes of the tag being read, in document order: the records saxes reports one by
  // one and then resolves in place. Read from here rather than from `tag.attributes`, a
  // dictionary whose for-in cost more than the rest of building the element.
  const attrList: SaxesAttributeNS[] = [];
  function attributeHandler(attr: SaxesAttributeNS): void {
    attrList.push(attr);
  }

  function openTagStartHandler(): void {
    attrList.length = 0;
    if (pending !== undefined) flush();
    if (phase === GAP) {
      endGap(sax!.position + posShift);
      phase = STANZA;
      startByte = ltByte;
    }
  }

  function openTagHandler(tag: SaxesTagNS): void {
    if (phase === STANZA) {
      // An element in no namespace (`xmlns=''`) must not read as one whose namespace is unknown.
      const xmlns = tag.uri === "" ? NO_NAMESPACE : tag.uri;
      const attrs = attrList.length === 0 ? NO_ATTRS : attrsOf(attrList);
      const el: Building = { name: tag.local, xmlns, attrs, children: [] };
      if (stack.length === 0) slots.textHandler = onText;
      else stack[stack.length - 1].children.push(el);
      stack.push(el);
      if (stack.length > maxDepth) fail("policy-violation", "stanza nested too deeply");
    } else if (phase === PROLOG) {
      const pos = sax!.position + posShift;
      if (bytesAt(pos) > maxBytes) fail("policy-violation", "stream header too large");
      out.push({
        kind: "stream-open",
        name: tag.local,
        prefix: tag.prefix,
        xmlns: tag.uri,
        contentXmlns: tag.ns[""] ?? "",
        attrs: attrsOf(attrList, true),
      });
      header = startTagOf(tag);
      startGap(pos);
    }
    attrList.length = 0;
  }

  function closeTagHandler(): void {
    if (pending !== undefined) flush();
    if (phase === STANZA) {
      const el = stack.pop() as Building;
      if (stack.length !== 0) return;
      const pos = sax!.position + posShift;
      if (bytesAt(pos) - startByte > maxBytes) fail("policy-violation", "stanza too large");
      slots.textHandler = undefined;
      pending = { kind: "stanza", stanza: el };
      startGap(pos);
    } else if (phase === GAP) {
      endGap(sax!.position + posShift);
      pending = { kind: "stream-close" };
      phase = CLOSED;
    }
  }

  // Assigned by name, not through on(): see SaxesSlots.
  function attach(): void {
    slots.errorHandler = errorHandler;
    slots.doctypeHandler = doctypeHandler;
    slots.commentHandler = commentHandler;
    slots.piHandler = piHandler;
    slots.cdataHandler = cdataHandler;
    slots.openTagStartHandler = openTagStartHandler;
    slots.attributeHandler = attributeHandler;
    slots.openTagHandler = openTagHandler;
    slots.closeTagHandler = closeTagHandler;
  }
  attach();

  // A new saxes that has read the stream header again, its handlers silenced meanwhile; only
  // called between stanzas, where saxes holds nothing but the root element.
  function wake(): SaxesParser {
    const s = newSaxes();
    sax = s;
    slots = s as unknown as SaxesSlots;
    attach();
    const was = phase;
    phase = DONE;
    s.write(header);
    phase = was;
    posShift = sliceCharStart - header.length;
    return s;
  }

  function feed(bytes: Uint8Array): void {
    let str: string;
    // A byte order mark may start the stream, and is no character of it.
    const bom = totalBytes === 0 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf
      ? 3
      : 0;
    try {
      str = DECODER.decode(bom === 0 ? bytes : bytes.subarray(bom));
    } catch {
      // What came before the bad bytes is read first, so that the stanzas it completes do not
      // depend on where the input was cut into chunks.
      const ok = validUtf8Prefix(bytes, bom);
      if (ok > bom && ok < bytes.length) feed(bytes.subarray(0, ok));
      fail("not-well-formed", "invalid UTF-8");
    }
    sliceStr = str;
    sliceCharStart = totalChars;
    sliceByteStart = totalBytes + bom;
    // Every non-ASCII character takes more bytes than code units.
    sliceAscii = str.length === bytes.length - bom;
    memoRel = 0;
    memoBytes = 0;
    totalChars += str.length;
    totalBytes += bytes.length;

    (sax ?? wake()).write(str);
    if (pending !== undefined) flush();

    // An element still open here is at least as large as what has been read of it.
    if (phase === STANZA || phase === PROLOG) {
      if (totalBytes - startByte > maxBytes) {
        fail("policy-violation", phase === STANZA ? "stanza too large" : "stream header too large");
      }
    } else if (phase === GAP) {
      if (!ltKnown) {
        const from = gapStart > sliceCharStart ? gapStart - sliceCharStart : 0;
        const lt = str.indexOf("<", from);
        checkGap(from, lt === -1 ? str.length : lt);
        if (lt !== -1) {
          ltKnown = true;
          ltByte = bytesAt(sliceCharStart + lt);
        }
      }
      if (ltKnown && totalBytes - ltByte > maxBytes) fail("policy-violation", "stanza too large");
    }
  }

  function push(chunk: Uint8Array): readonly ParseEvent[] {
    if (phase === DONE) return NONE;
    out = [];
    try {
      let data = chunk;
      if (carry !== undefined) {
        data = new Uint8Array(carry.length + chunk.length);
        data.set(carry);
        data.set(chunk, carry.length);
        carry = undefined;
      }
      const end = data.length - incompleteTail(data);
      let pos = 0;
      while (pos < end) {
        let cut = pos + SLICE;
        if (cut >= end) cut = end;
        else {
          // Cut between characters, so that each slice decodes on its own.
          for (let k = 0; k < 3 && (data[cut] & 0xc0) === 0x80; k++) cut--;
        }
        feed(data.subarray(pos, cut));
        pos = cut;
      }
      if (end < data.length) carry = data.slice(end);
    } catch (e) {
      if (e !== ABORT) throw e;
    }
    return out;
  }

  return {
    push,
    setMaxStanzaBytes(n: number): void {
      maxBytes = n;
    },
    compact(): void {
      // saxes holds back a trailing CR to pair it with a following LF; only whitespace can be
      // in the gap, so a CR is the one thing it could be holding.
      if (
        phase !== GAP || ltKnown || pending !== undefined || carry !== undefined ||
        sliceStr.charCodeAt(sliceStr.length - 1) === 0x0d
      ) return;
      sax = undefined;
      slots = {};
      sliceStr = "";
      out = [];
    },
  };
}

/** The start tag `tag` was read from, namespace declarations included, to be parsed again. */
function startTagOf(tag: SaxesTagNS): string {
  let s = "<" + tag.name;
  const list = tag.attributes;
  for (const k in list) {
    s += " " + k + '="' +
      list[k].value.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/"/g, "&quot;") + '"';
  }
  return s + ">";
}

/** Maps a saxes error message to a stream error condition. */
function classify(message: string): ParseErrorCondition {
  if (message.includes("unbound namespace prefix")) return "bad-namespace-prefix";
  if (message.includes("doctype") || message.includes("processing instruction")) {
    return "restricted-xml";
  }
  return "not-well-formed";
}

/**
 * Attributes by qualified name without namespace declarations. On a stanza element, a prefix
 * used by one of its attributes keeps (or gains) its declaration, so that the element still
 * serializes to namespace-well-formed XML on its own.
 */
function attrsOf(
  list: readonly SaxesAttributeNS[],
  root = false,
): Readonly<Record<string, string>> {
  let attrs: Record<string, string> | undefined;
  let prefixed = false;
  for (let i = 0; i < list.length; i++) {
    const a = list[i];
    const p = a.prefix;
    const k = a.name;
    if (p === "xmlns" || k === "xmlns") continue;
    (attrs ??= {})[k] = a.value;
    if (p !== "" && p !== "xml") prefixed = true;
  }
  // Most payload elements carry nothing but their namespace: they share one empty record.
  if (attrs === undefined) return NO_ATTRS;
  if (prefixed && !root) {
    for (let i = 0; i < list.length; i++) {
      const a = list[i];
      const p = a.prefix;
      if (p !== "" && p !== "xml" && p !== "xmlns") attrs["xmlns:" + p] = a.uri;
    }
  }
  return attrs;
}

/**
 * Length of the longest prefix of `b` (from `from` on) made of whole, valid UTF-8 sequences, by
 * the rules of the WHATWG decoder (no overlong forms, surrogates or code points past U+10FFFF).
 */
function validUtf8Prefix(b: Uint8Array, from: number): number {
  let i = from;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    let n: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) n = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      n = 2;
      if (c === 0xe0) lo = 0xa0; // overlong
      if (c === 0xed) hi = 0x9f; // surrogates
    } else if (c >= 0xf0 && c <= 0xf4) {
      n = 3;
      if (c === 0xf0) lo = 0x90; // overlong
      if (c === 0xf4) hi = 0x8f; // past U+10FFFF
    } else return i;
    if (i + n >= b.length) return i;
    const d = b[i + 1];
    if (d < lo || d > hi) return i;
    for (let k = 2; k <= n; k++) if ((b[i + k] & 0xc0) !== 0x80) return i;
    i += n + 1;
  }
  return i;
}

/** Whether s[from, to) is XML whitespace only. */
function isXmlSpace(s: string, from: number, to: number): boolean {
  for (let i = from; i < to; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
  }
  return true;
}

/** Length of a UTF-8 sequence that was started but not finished at the end of `b` (0 if none). */
function incompleteTail(b: Uint8Array): number {
  for (let k = 1; k <= 3 && k <= b.length; k++) {
    const c = b[b.length - k];
    if (c < 0x80) return 0;
    if (c >= 0xc0) {
      const need = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : 2;
      return need > k ? k : 0;
    }
  }
  return 0;
}
