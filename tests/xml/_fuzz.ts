import { prng } from "../storage/_list_helpers.ts";
/**
 * A fuzz target for the stream parser and the session reducer: recorded client sessions, mutated
 * at random (bit flips, byte insertions and deletions, truncation, duplicated chunks) and cut
 * into random chunks, are fed to `createStreamParser` and then to `reduce` with a deterministic
 * context, as the connection shell would feed them. Every input is made from one seed, so a
 * failure is reproduced by that seed alone (`deno task bench:fuzz --seed N`).
 *
 * What must hold for every input:
 * - no exception escapes the parser, the reducer or the serializer;
 * - the parser reports only stream headers, stanzas, the stream end and errors with a stream error
 *   condition, and nothing after an error or the end;
 * - every stanza serializes to XML that parses back to the same element;
 * - a parse error ends the session with a stream error of the same condition;
 * - every element the reducer writes or routes serializes to well-formed XML;
 * - when the input runs out, the session is over (or hibernating, XEP-0198).
 *
 * And for the sessions as recorded: the parser reports the same events however a stream is cut
 * into chunks, and whenever it is compacted between them.
 * @module
 */
import { createStreamParser, type ParseEvent, type StreamParser } from "../../lib/xml/parser.ts";
import { type Element, NO_NAMESPACE, serialize } from "../../lib/xml/element.ts";
import { reduce } from "../../lib/c2s/mod.ts";
import type { Ctx, Event, Output } from "../../lib/core/types.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { EMPTY_ROSTER, isHibernating, newSession, type Session } from "../../lib/core/session.ts";
import { deriveCredentials, type ScramCredentialSet } from "../../lib/xmpp/scram.ts";
import { testCtx } from "../_ctx.ts";
import { NS_STREAMS } from "../../lib/xmpp/namespaces.ts";
import { streamErrorElement } from "../../lib/xmpp/errors.ts";

const enc = new TextEncoder();

/** A deterministic PRNG (mulberry32, shared with the list store tests). */
export const rng = prng;

function int(r: () => number, n: number): number {
  return Math.floor(r() * n);
}

// ---------------------------------------------------------------------------------------------
// Recorded sessions: what clients write, flight by flight (a flight is what a client sends
// before it waits for the server; TCP reads never span two). A flight that starts a stream
// begins with its header.

const DOMAIN = "example.com";
const USER = "juliet";
const PASSWORD = "s3cr\u00e9t";

function header(extra = ""): string {
  return `<?xml version='1.0'?><stream:stream to='${DOMAIN}' xmlns='jabber:client' ` +
    `xmlns:stream='${NS_STREAMS}' version='1.0' xml:lang='en'${extra}>`;
}

function b64(text: string): string {
  let bin = "";
  for (const b of enc.encode(text)) bin += String.fromCharCode(b);
  return btoa(bin);
}

function plain(user: string, password: string): string {
  return `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>` +
    `${b64(`\u0000${user}\u0000${password}`)}</auth>`;
}

const LOGIN = [header(), plain(USER, PASSWORD)];

function bind(resource: string): string {
  return `<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>` +
    `<resource>${resource}</resource></bind></iq>`;
}

const CAPS_PRESENCE = "<presence><priority>5</priority><show>chat</show>" +
  "<status>Ich bin da \u2014 \u00e0 bient\u00f4t \u{1F600}</status>" +
  "<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' " +
  "node='https://conversations.im' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>";

/** A session as a client records it: one array of flights per stream. */
export interface Recorded {
  readonly name: string;
  readonly streams: readonly (readonly string[])[];
}

export const SESSIONS: readonly Recorded[] = [
  {
    name: "im",
    streams: [
      LOGIN,
      [
        header(),
        bind("balcony"),
        "<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>" + CAPS_PRESENCE,
        "<message to='romeo@example.com/orchard' type='chat' id='m1' xml:lang='de'>" +
        "<body>Wo bist du? &lt;3 &amp; &#x2764;&#65039; caf\u00e9 \u4e2d\u6587 \u{1F339}</body>" +
        "<thread>t-1</thread><active xmlns='http://jabber.org/protocol/chatstates'/>" +
        "<request xmlns='urn:xmpp:receipts'/><markable xmlns='urn:xmpp:chat-markers:0'/>" +
        "<origin-id xmlns='urn:xmpp:sid:0' id='o-1'/></message>",
        "<message to='romeo@example.com' type='chat' id='m2'><body><![CDATA[<b>bold</b> & " +
        "]]>\r\nline two\u00a0\u{1F600}</body><x xmlns=''><y>unqualified</y></x>" +
        "<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'>" +
        "<p style='font-weight:bold'>hi</p></body></html></message>",
        "<iq type='set' id='pub1'><pubsub xmlns='http://jabber.org/protocol/pubsub'>" +
        "<publish node='urn:xmpp:microblog:0'><item id='post1'>" +
        "<entry xmlns='http://www.w3.org/2005/Atom'><title type='text'>Hallo</title>" +
        "<content type='xhtml'><div xmlns='http://www.w3.org/1999/xhtml'><p>\u00fc</p></div>" +
        "</content></entry></item></publish><publish-options><x xmlns='jabber:x:data' " +
        "type='submit'><field var='FORM_TYPE' type='hidden'>" +
        "<value>http://jabber.org/protocol/pubsub#publish-options</value></field>" +
        "<field var='pubsub#access_model'><value>presence</value></field></x>" +
        "</publish-options></pubsub></iq>",
        "<iq type='get' id='disco1' to='example.com'>" +
        "<query xmlns='http://jabber.org/protocol/disco#info'/></iq>" +
        "<iq type='get' id='ping1' to='example.com'><ping xmlns='urn:xmpp:ping'/></iq>",
        "<c:message xmlns:c='jabber:client' c:type='normal' to='romeo@example.com' " +
        "xmlns:e='urn:example:ext'><c:body>prefixed</c:body><e:ext e:a='1' b='&quot;&apos;'>" +
        "<e:inner/></e:ext></c:message>",
        "<presence type='unavailable'/></stream:stream>",
      ],
    ],
  },
  {
    name: "sm",
    streams: [
      LOGIN,
      [
        header(),
        bind("phone"),
        "<enable xmlns='urn:xmpp:sm:3' resume='true'/>",
        "<iq type='get' id='r1'><query xmlns='jabber:iq:roster' ver=''/></iq>" +
        "<iq type='get' id='bl1'><blocklist xmlns='urn:xmpp:blocking'/></iq>" +
        "<iq type='set' id='cb1'><enable xmlns='urn:xmpp:carbons:2'/></iq>" + CAPS_PRESENCE,
        "<r xmlns='urn:xmpp:sm:3'/><a xmlns='urn:xmpp:sm:3' h='0'/>",
        "<message to='nurse@example.com' id='s1' type='chat'><body>1</body></message>" +
        "<message to='nurse@example.com' id='s2' type='chat'><body>2</body>" +
        "<store xmlns='urn:xmpp:hints'/></message><r xmlns='urn:xmpp:sm:3'/>",
        "<iq type='set' id='q1'><query xmlns='urn:xmpp:mam:2' queryid='f27'>" +
        "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'>" +
        "<value>urn:xmpp:mam:2</value></field><field var='with'>" +
        "<value>romeo@example.com</value></field></x>" +
        "<set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set></query></iq>",
        "<inactive xmlns='urn:xmpp:csi:0'/><active xmlns='urn:xmpp:csi:0'/>",
        "<iq type='set' id='blk'><block xmlns='urn:xmpp:blocking'>" +
        "<item jid='spam@example.net'/></block></iq>" +
        "<iq type='set' id='pr1'><query xmlns='jabber:iq:private'>" +
        "<storage xmlns='storage:bookmarks'><conference jid='room@conf.example.com' " +
        "autojoin='true' name='\u00c9quipe'><nick>jul</nick></conference></storage></query></iq>",
        "<a xmlns='urn:xmpp:sm:3' h='3'/> \n\t </stream:stream>",
      ],
    ],
  },
  {
    name: "negotiation",
    streams: [
      [
        header(" id='ignored'"),
        "<iq type='get' id='reg1'><query xmlns='jabber:iq:register'/></iq>",
        plain(USER, "wrong password"),
        plain(USER, PASSWORD),
      ],
      [
        header(),
        "<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>",
        "<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>",
        "<iq type='set' id='v1'><vCard xmlns='vcard-temp'><FN>J\u00fcliet Capulet</FN>" +
        "<NICKNAME>\u30b8\u30e5\u30ea\u30a8\u30c3\u30c8</NICKNAME><PHOTO><TYPE>image/png</TYPE>" +
        "<BINVAL>iVBORw0KGgo=</BINVAL></PHOTO></vCard></iq>",
        "<presence to='romeo@example.com' type='subscribe' id='sub1'/>" +
        "<iq type='set' id='ros'><query xmlns='jabber:iq:roster'><item jid='romeo@example.com' " +
        "name='R\u00f6meo'><group>Fr\u00e4nde</group></item></query></iq>",
        "<message to='example.com' type='headline'><subject>s</subject></message>   ",
        "<iq type='get' id='ver' to='example.com'><query xmlns='jabber:iq:version'/></iq>",
      ],
    ],
  },
  {
    name: "resume",
    streams: [
      LOGIN,
      [header(), "<resume xmlns='urn:xmpp:sm:3' previd='c29tZS1pZA==' h='7'/>", bind("r")],
    ],
  },
];

// ---------------------------------------------------------------------------------------------
// Mutations

// Bytes that make a mutation more likely to reach parser states: markup, quotes, entity starts,
// UTF-8 lead and continuation bytes, and bytes XML does not allow.
const INTERESTING = [
  0x3c,
  0x3e,
  0x2f,
  0x26,
  0x27,
  0x22,
  0x3d,
  0x20,
  0x3b,
  0x5d,
  0x3a,
  0x21,
  0x3f,
  0x0d,
  0x00,
  0x01,
  0x80,
  0xbf,
  0xc0,
  0xc3,
  0xe2,
  0xed,
  0xef,
  0xf0,
  0xf4,
  0xff,
];

const TOKENS = [
  "<",
  "</",
  "/>",
  ">",
  "&amp;",
  "&#0;",
  "&#x1F600;",
  "&unknown;",
  "<![CDATA[",
  "]]>",
  "<!-- c -->",
  "<?pi x?>",
  "<!DOCTYPE x>",
  " xmlns=''",
  " xmlns:p='urn:p'",
  "p:",
  " xml:lang='fr'",
  "</stream:stream>",
  "<message>",
  "</message>",
  "<x xmlns=''/>",
  "\u{1F600}",
  "\ufeff",
  " a='1' a='2'",
  header(),
];

// Words a structure-aware mutation puts in place of a name or value: prototype names, numbers
// at the edges, JIDs, namespaces of other features, nothing at all.
const WORDS = [
  "constructor",
  "__proto__",
  "toString",
  "hasOwnProperty",
  "",
  "0",
  "-1",
  "4294967296",
  "1e309",
  "NaN",
  "a@b/c",
  "@example.com",
  "juliet@example.com/balcony",
  "example.com",
  "x".repeat(1100),
  "jabber:client",
  "jabber:iq:roster",
  "urn:xmpp:sm:3",
  "urn:ietf:params:xml:ns:xmpp-sasl",
  "urn:xmpp:mam:2",
  "http://jabber.org/protocol/pubsub",
  "result",
  "error",
  "get",
  "set",
  "unavailable",
  "subscribe",
  "groupchat",
  "iq",
  "message",
  "presence",
  "query",
  "item",
];

const WORD = /[A-Za-z0-9_.@\/#:-]+/g;

function concat(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
}

/** One random mutation of `b`; returns what it did, for the failure report. */
function mutateOnce(b: Uint8Array, r: () => number): [Uint8Array, string] {
  const at = int(r, b.length + 1);
  switch (int(r, 9)) {
    case 7:
    case 8: {
      // Keeps the markup intact more often than the byte-level mutations, so the reducers see
      // well-formed stanzas with odd names and values.
      const text = new TextDecoder().decode(b);
      const words = [...text.matchAll(WORD)];
      if (words.length === 0) return [b, "nothing"];
      const w = words[int(r, words.length)];
      const word = WORDS[int(r, WORDS.length)];
      const out = text.slice(0, w.index) + word + text.slice(w.index! + w[0].length);
      return [
        enc.encode(out),
        `replace ${JSON.stringify(w[0])} at ${w.index} by ${JSON.stringify(word.slice(0, 20))}`,
      ];
    }
    case 0: {
      if (b.length === 0) return [b, "nothing"];
      const i = int(r, b.length);
      const bit = int(r, 8);
      const out = b.slice();
      out[i] ^= 1 << bit;
      return [out, `flip bit ${bit} at ${i}`];
    }
    case 1: {
      const byte = r() < 0.7 ? INTERESTING[int(r, INTERESTING.length)] : int(r, 256);
      return [
        concat([b.subarray(0, at), Uint8Array.of(byte), b.subarray(at)]),
        `insert ${byte} at ${at}`,
      ];
    }
    case 2: {
      const token = TOKENS[int(r, TOKENS.length)];
      return [
        concat([b.subarray(0, at), enc.encode(token), b.subarray(at)]),
        `insert ${JSON.stringify(token)} at ${at}`,
      ];
    }
    case 3: {
      const n = 1 + int(r, r() < 0.8 ? 4 : 64);
      return [concat([b.subarray(0, at), b.subarray(at + n)]), `delete ${n} at ${at}`];
    }
    case 4:
      return [b.subarray(0, at), `truncate at ${at}`];
    case 5: {
      const from = int(r, b.length + 1);
      const n = 1 + int(r, 200);
      const piece = b.subarray(from, from + n);
      const times = r() < 0.9 ? 1 : 1 + int(r, 50);
      const parts = [b.subarray(0, at)];
      for (let k = 0; k < times; k++) parts.push(piece);
      parts.push(b.subarray(at));
      return [concat(parts), `duplicate ${piece.length}@${from} x${times} at ${at}`];
    }
    default: {
      // Swap two chunks, as reordered writes would.
      const i = int(r, b.length + 1);
      const j = int(r, b.length + 1);
      const [lo, hi] = i < j ? [i, j] : [j, i];
      const mid = lo + int(r, hi - lo + 1);
      return [
        concat([b.subarray(0, lo), b.subarray(mid, hi), b.subarray(lo, mid), b.subarray(hi)]),
        `swap [${lo},${mid}) and [${mid},${hi})`,
      ];
    }
  }
}

/** Random cut points in `n` bytes: sometimes none, sometimes many, now and then every byte. */
function cuts(n: number, r: () => number): number[] {
  const mode = r();
  if (n <= 1 || mode < 0.15) return [];
  if (mode < 0.2 && n <= 2000) return Array.from({ length: n - 1 }, (_, i) => i + 1);
  const count = 1 + int(r, mode < 0.6 ? 4 : 40);
  const out = new Set<number>();
  for (let k = 0; k < count; k++) out.add(1 + int(r, n - 1));
  return [...out].sort((a, b) => a - b);
}

function split(b: Uint8Array, at: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(b.subarray(prev, c));
    prev = c;
  }
  out.push(b.subarray(prev));
  return out;
}

/** One generated input: the flights as bytes, and how each is cut into reads. */
export interface Input {
  readonly seed: number;
  readonly session: string;
  /** What was done to the recording, in order. */
  readonly mutations: readonly string[];
  /** The reads, flight by flight. */
  readonly flights: readonly (readonly Uint8Array[])[];
  /** Whether the shell compacts its parser after each read (an idle connection's state). */
  readonly compact: readonly (readonly boolean[])[];
}

/** The input of one seed: a recorded session, mutated unless `mutate` is false, cut at random. */
export function makeInput(seed: number, mutate = true): Input {
  const r = rng(seed);
  const rec = SESSIONS[int(r, SESSIONS.length)];
  const flights: Uint8Array[] = rec.streams.flat().map((f) => enc.encode(f));
  const mutations: string[] = [];
  if (mutate) {
    const n = 1 + int(r, r() < 0.7 ? 2 : 8);
    for (let k = 0; k < n; k++) {
      const i = int(r, flights.length);
      const [next, what] = mutateOnce(flights[i], r);
      flights[i] = next;
      mutations.push(`flight ${i}: ${what}`);
    }
  }
  const reads = flights.map((f) => split(f, cuts(f.length, r)));
  const compact = reads.map((rs) => rs.map(() => r() < 0.3));
  return { seed, session: rec.name, mutations, flights: reads, compact };
}

// ---------------------------------------------------------------------------------------------
// The harness: the connection shell, reduced to what a single session needs, deterministic.

const PARSE_CONDITIONS = new Set([
  "not-well-formed",
  "restricted-xml",
  "policy-violation",
  "bad-namespace-prefix",
  "bad-format",
]);

const STREAM_CONDITIONS = new Set([
  "bad-format",
  "bad-namespace-prefix",
  "conflict",
  "connection-timeout",
  "host-gone",
  "host-unknown",
  "improper-addressing",
  "internal-server-error",
  "invalid-from",
  "invalid-namespace",
  "invalid-xml",
  "not-authorized",
  "not-well-formed",
  "policy-violation",
  "remote-connection-failed",
  "reset",
  "resource-constraint",
  "restricted-xml",
  "see-other-host",
  "system-shutdown",
  "undefined-condition",
  "unsupported-encoding",
  "unsupported-feature",
  "unsupported-stanza-type",
  "unsupported-version",
]);

/** An invariant that did not hold, or an exception that escaped. */
export class FuzzFailure extends Error {
  override name = "FuzzFailure";
  constructor(
    readonly stage: "parser" | "reducer" | "serializer" | "invariant",
    message: string,
    readonly original?: unknown,
  ) {
    super(message);
  }
}

/** What one input came to. */
export interface Outcome {
  /** Stanzas (and other top-level elements) the parser reported. */
  readonly stanzas: number;
  /** Stream errors the server sent, by condition. */
  readonly streamErrors: ReadonlyMap<string, number>;
  /** How the session ended: `error`, `close` (no stream error), `hibernate`, `eof-open`. */
  readonly end: string;
}

let credentials: ScramCredentialSet | undefined;
function creds(): ScramCredentialSet {
  // One iteration: PLAIN rederives the key on every login, and the fuzzer logs in a lot.
  credentials ??= {
    "SHA-1": deriveCredentials(PASSWORD, "SHA-1", enc.encode("salt-one-salt-one"), 1),
    "SHA-256": deriveCredentials(PASSWORD, "SHA-256", enc.encode("salt-two-salt-two"), 1),
  };
  return credentials;
}

function fuzzCtx(seed: number): Ctx {
  const base = testCtx({ hosts: [DOMAIN], archiving: true });
  let n = 0;
  return { ...base, nonce: () => `nonce${seed}x${++n}` };
}

// Parses serialized output as a client would, in a stream whose default namespace is `ns`.
function reparse(text: string, ns: string): ParseEvent[] {
  const p = createStreamParser({ maxStanzaBytes: 1 << 26, maxDepth: 1 << 10 });
  const head = `<stream:stream xmlns:stream='${NS_STREAMS}'` +
    (ns === "" || ns === NO_NAMESPACE
      ? ""
      : ` xmlns='${ns.replace(/&/g, "&amp;").replace(/'/g, "&apos;").replace(/</g, "&lt;")}'`) +
    ">";
  return [...p.push(enc.encode(head)), ...p.push(enc.encode(text))];
}

function guard<T>(stage: FuzzFailure["stage"], what: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FuzzFailure) throw e;
    throw new FuzzFailure(stage, `${what} threw: ${e instanceof Error ? e.stack : String(e)}`, e);
  }
}

function check(ok: boolean, message: () => string): void {
  if (!ok) throw new FuzzFailure("invariant", message());
}

// A stanza the parser reported must be written back as exactly what was read.
function checkRoundTrip(el: Element, contentXmlns: string): void {
  const text = guard("serializer", "serialize", () => serialize(el, contentXmlns));
  const back = reparse(text, contentXmlns);
  const got = back.find((e) => e.kind !== "stream-open");
  check(
    got?.kind === "stanza" && equal(got.stanza, el),
    () =>
      `stanza does not survive serialize/parse: ${JSON.stringify(text)} -> ${JSON.stringify(got)}`,
  );
}

// Whatever the server writes must be well-formed XML a client can read.
function checkWritten(o: Output): void {
  // A stream error is written before the closing tag: it must parse like any stanza.
  const el = o.kind === "send" || o.kind === "route"
    ? o.stanza
    : o.kind === "close-stream" && o.error !== undefined
    ? streamErrorElement(o.error)
    : undefined;
  if (el === undefined) return;
  const text = guard("serializer", "serializeTop", () => serializeTop(el));
  const events = reparse(text, "jabber:client");
  check(
    events.length === 2 && events[1].kind === "stanza",
    () =>
      `server wrote XML a client cannot parse: ${JSON.stringify(text)} -> ${
        JSON.stringify(events)
      }`,
  );
}

/** Structural equality of parsed elements (attribute order does not matter). */
export function equal(a: Element | string, b: Element | string): boolean {
  if (typeof a === "string" || typeof b === "string") return a === b;
  if (a.name !== b.name || a.xmlns !== b.xmlns || a.children.length !== b.children.length) {
    return false;
  }
  const ka = Object.keys(a.attrs);
  if (ka.length !== Object.keys(b.attrs).length) return false;
  for (const k of ka) if (!Object.hasOwn(b.attrs, k) || a.attrs[k] !== b.attrs[k]) return false;
  for (let i = 0; i < a.children.length; i++) {
    if (!equal(a.children[i], b.children[i])) return false;
  }
  return true;
}

/** Runs one input through parser and reducer; throws a FuzzFailure when an invariant breaks. */
export function runInput(input: Input): Outcome {
  const ctx = fuzzCtx(input.seed);
  let session: Session = newSession("c1", { ip: "192.0.2.7", secure: true });
  const newParser = (authenticated: boolean) =>
    createStreamParser({
      maxStanzaBytes: authenticated ? ctx.maxStanzaSize : ctx.maxStanzaSizeUnauthed,
    });
  let parser: StreamParser = newParser(false);
  let parserDone = false;
  let contentXmlns = "jabber:client";
  let stanzas = 0;
  const streamErrors = new Map<string, number>();
  let end: string | undefined;
  // Answers the shell would give later (after the read at hand is handled).
  let later: Event[] = [];
  let reset = false;
  // A parse error must end the session with its condition.
  let expectError: string | undefined;

  function execute(o: Output): void {
    checkWritten(o);
    switch (o.kind) {
      case "load-credentials":
        later.push({
          kind: "credentials-loaded",
          username: o.username,
          credentials: o.username === USER && o.host === DOMAIN ? creds() : undefined,
        });
        return;
      case "account":
        // The account answers a bound session with its roster (empty here).
        if (o.op.kind === "session-bound") {
          later.push({ kind: "roster-loaded", roster: EMPTY_ROSTER });
        }
        return;
      case "reset-stream":
        parser = newParser(o.authenticated);
        parserDone = false;
        reset = true;
        return;
      case "starttls":
        later.push({ kind: "tls-done", channelBindings: {} });
        parser = newParser(false);
        parserDone = false;
        reset = true;
        return;
      case "sm-resume":
        later.push({ kind: "sm-resume-answer", previd: o.previd, h: o.h });
        return;
      case "register-account":
      case "change-password":
        later.push({ kind: "registration-result", iq: o.iq, outcome: "failed" });
        return;
      case "hibernate":
        end ??= "hibernate";
        return;
      case "disconnect":
        if (o.error !== undefined) {
          const c = o.error.condition;
          check(STREAM_CONDITIONS.has(c), () => `unknown stream error condition ${c}`);
          streamErrors.set(c, (streamErrors.get(c) ?? 0) + 1);
          check(
            expectError === undefined || expectError === c,
            () => `parse error ${expectError} ended the session with ${c}`,
          );
          end ??= "error";
        } else {
          check(expectError === undefined, () => `parse error ${expectError} closed without it`);
          end ??= "close";
        }
        return;
      default:
        return;
    }
  }

  function dispatch(ev: Event): void {
    const [next, outs] = guard("reducer", `reduce(${ev.kind})`, () => reduce(session, ev, ctx));
    session = next;
    for (const o of outs) execute(o);
  }

  function drainLater(): void {
    for (let rounds = 0; later.length > 0 && end === undefined; rounds++) {
      check(rounds < 100, () => "the shell's answers never settle");
      const evs = later;
      later = [];
      for (const ev of evs) {
        if (end !== undefined) break;
        dispatch(ev);
      }
    }
  }

  outer: for (let f = 0; f < input.flights.length; f++) {
    const reads = input.flights[f];
    for (let k = 0; k < reads.length; k++) {
      if (end !== undefined) break outer;
      const p = parser;
      let dead: boolean = parserDone;
      const events = guard("parser", "push", () => p.push(reads[k]));
      if (dead) check(events.length === 0, () => "events after the stream ended");
      reset = false;
      for (let i = 0; i < events.length; i++) {
        const ev = events[i];
        check(!dead, () => `event after an error or the stream end: ${JSON.stringify(ev)}`);
        switch (ev.kind) {
          case "stream-open":
            contentXmlns = ev.contentXmlns;
            break;
          case "stanza":
            stanzas++;
            checkRoundTrip(ev.stanza, contentXmlns);
            break;
          case "stream-close":
            dead = true;
            break;
          case "error":
            check(PARSE_CONDITIONS.has(ev.condition), () => `unknown parse error ${ev.condition}`);
            check(i === events.length - 1, () => "events after a parse error");
            dead = true;
            break;
          default:
            throw new FuzzFailure("invariant", `unknown parse event ${JSON.stringify(ev)}`);
        }
        // The shell drops what the old parser read once the stream restarts.
        if (reset || end !== undefined) continue;
        if (ev.kind === "error") {
          expectError = ev.condition;
          dispatch({ kind: "parse-error", condition: ev.condition, text: ev.text });
          check(end !== undefined, () => `parse error ${ev.condition} did not end the session`);
        } else dispatch(ev);
      }
      // A restart (or STARTTLS) put a new parser in place, whatever became of the old one.
      if (parser === p) parserDone = dead;
      drainLater();
      if (input.compact[f][k]) parser.compact();
    }
  }
  if (end === undefined) {
    dispatch({ kind: "disconnected", reason: "eof" });
    drainLater();
    check(
      session.destroyed || isHibernating(session),
      () => "the session outlived its connection",
    );
    end ??= "eof-open";
  }
  return { stanzas, streamErrors, end };
}

/** The parser's events for `chunks`, compacting after the reads `compact` marks. */
function parseAll(
  chunks: readonly Uint8Array[],
  compact: (i: number) => boolean,
  maxStanzaBytes: number,
): ParseEvent[] {
  const p = createStreamParser({ maxStanzaBytes });
  const out: ParseEvent[] = [];
  chunks.forEach((c, i) => {
    out.push(...p.push(c));
    if (compact(i)) p.compact();
  });
  return out;
}

/**
 * Split invariance: every stream of a recorded session (as recorded if `mutate` is false) gives
 * the same events cut as the seed says and compacted now and then as it does in one piece.
 */
export function checkSplitInvariance(seed: number, mutate = false): number {
  const r = rng(seed);
  const rec = SESSIONS[int(r, SESSIONS.length)];
  let events = 0;
  for (const stream of rec.streams) {
    let bytes: Uint8Array = enc.encode(stream.join(""));
    let what = "as recorded";
    if (mutate) [bytes, what] = mutateOnce(bytes, r);
    const limit = 1 << 20;
    const whole = guard("parser", "push", () => parseAll([bytes], () => false, limit));
    const at = cuts(bytes.length, r);
    const compacted = new Set<number>();
    at.forEach((_, i) => r() < 0.3 && compacted.add(i));
    const cut = guard(
      "parser",
      "push",
      () => parseAll(split(bytes, at), (i) => compacted.has(i), limit),
    );
    check(
      sameEvents(whole, cut, mutate),
      () =>
        `cut differently, the events differ (${what}; cut at ${at.join(",")}; compacted after ` +
        `reads ${[...compacted].join(",")}):\ninput ${
          JSON.stringify(new TextDecoder().decode(bytes))
        }\nwhole ${JSON.stringify(whole)}\ncut   ${JSON.stringify(cut)}`,
    );
    events += whole.length;
  }
  return events;
}

function sameEvents(a: readonly ParseEvent[], b: readonly ParseEvent[], loose: boolean): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    const x = a[i];
    const y = b[i];
    if (x.kind !== y.kind) return false;
    if (x.kind === "stanza" && !equal(x.stanza, (y as typeof x).stanza)) return false;
    if (x.kind === "error") {
      const e = y as typeof x;
      if (x.condition !== e.condition || (!loose && x.text !== e.text)) return false;
    }
    if (x.kind === "stream-open" && JSON.stringify(x) !== JSON.stringify(y)) return false;
  }
  return true;
}

/** The input as text, for a failure report. */
export function describe(input: Input): string {
  const dec = new TextDecoder("utf-8", { fatal: false });
  const lines = [
    `seed ${input.seed}: session "${input.session}"`,
    ...input.mutations.map((m) => `  ${m}`),
  ];
  input.flights.forEach((reads, f) => {
    lines.push(`  flight ${f}: ${reads.map((c) => JSON.stringify(dec.decode(c))).join(" | ")}`);
  });
  return lines.join("\n");
}
