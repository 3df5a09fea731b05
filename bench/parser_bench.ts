/**
 * Parse throughput of the stream parser on a realistic stanza mix, pushed in 16 KiB chunks.
 *
 * `deno bench -A bench/parser_bench.ts` for the bench cases, or
 * `deno run bench/parser_bench.ts` to print MB/s per mix.
 *
 * @module
 */

import { SaxesParser } from "saxes";
import { createStreamParser } from "../lib/xml/parser.ts";

const CHUNK = 16 * 1024;
const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' " +
  "xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>";

function chat(i: number): string {
  return `<message from='juliet@example.com/balcony' to='romeo@example.net' type='chat' id='m${i}'>` +
    `<body>Wherefore art thou, Romeo? Message ${i} &amp; more, caf\u00e9 \u{1F339}</body>` +
    `<active xmlns='http://jabber.org/protocol/chatstates'/>` +
    `<request xmlns='urn:xmpp:receipts'/><origin-id xmlns='urn:xmpp:sid:0' id='o${i}'/>` +
    `</message>`;
}

function receipt(i: number): string {
  return `<message from='romeo@example.net/orchard' to='juliet@example.com/balcony' id='r${i}'>` +
    `<received xmlns='urn:xmpp:receipts' id='m${i}'/></message>`;
}

function presence(i: number): string {
  return `<presence from='user${i}@example.com/phone' xml:lang='en'><show>away</show>` +
    `<status>In a meeting until 3</status><priority>5</priority>` +
    `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' ` +
    `ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>` +
    `<x xmlns='vcard-temp:x:update'><photo>01b87fcd030b72895ff8e88db57ec525450f000d</photo></x>` +
    `</presence>`;
}

function roster(): string {
  let items = "";
  for (let i = 0; i < 50; i++) {
    items +=
      `<item jid='contact${i}@example.org' name='Contact \u00c5sa ${i}' subscription='both'>` +
      `<group>Friends</group>${i % 3 === 0 ? "<group>Work</group>" : ""}</item>`;
  }
  return `<iq type='result' id='roster1' to='juliet@example.com/balcony'>` +
    `<query xmlns='jabber:iq:roster' ver='ver42'>${items}</query></iq>`;
}

function pubsub(i: number): string {
  const para = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " +
    "incididunt ut labore et dolore magna aliqua &amp; \u4e2d\u6587\u6587\u672c. ";
  return `<message from='pubsub.example.com' to='juliet@example.com' id='p${i}'>` +
    `<event xmlns='http://jabber.org/protocol/pubsub#event'><items node='urn:xmpp:microblog:0'>` +
    `<item id='item${i}'><entry xmlns='http://www.w3.org/2005/Atom'>` +
    `<title type='text'>Post ${i}</title><author><name>Juliet</name>` +
    `<uri>xmpp:juliet@example.com</uri></author>` +
    `<content type='text'>${para.repeat(24)}</content>` +
    `<published>2024-05-01T12:00:00Z</published></entry></item></items></event></message>`;
}

/** The stanza mix: mostly chat and presence, some receipts, a roster and a few pubsub items. */
function mixedStream(): Uint8Array {
  const parts = [HEADER];
  for (let i = 0; i < 400; i++) {
    parts.push(chat(i), "\n", receipt(i), presence(i));
    if (i % 100 === 0) parts.push(roster());
    if (i % 40 === 0) parts.push(pubsub(i));
    if (i % 10 === 0) parts.push(" ");
  }
  return new TextEncoder().encode(parts.join(""));
}

function chatOnly(): Uint8Array {
  const parts = [HEADER];
  for (let i = 0; i < 2000; i++) parts.push(chat(i));
  return new TextEncoder().encode(parts.join(""));
}

function chunked(data: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < data.length; i += CHUNK) out.push(data.subarray(i, i + CHUNK));
  return out;
}

/** Parses a whole stream; returns the stanza count so the work cannot be optimized away. */
function run(chunks: readonly Uint8Array[]): number {
  const p = createStreamParser({ maxStanzaBytes: 1 << 20 });
  let n = 0;
  for (const c of chunks) {
    for (const e of p.push(c)) {
      if (e.kind === "stanza") n++;
      else if (e.kind === "error") throw new Error(e.text);
    }
  }
  return n;
}

/**
 * The baseline: saxes alone, with a streaming decoder and a close-tag counter, on the same
 * chunks. Our parser's figure is reported as a ratio to it, measured in the same run.
 */
function runBare(chunks: readonly Uint8Array[]): number {
  const p = new SaxesParser({ xmlns: true });
  const dec = new TextDecoder();
  let depth = 0;
  let n = 0;
  p.on("opentag", () => depth++);
  p.on("closetag", () => {
    depth--;
    if (depth === 1) n++;
  });
  for (const c of chunks) p.write(dec.decode(c, { stream: true }));
  return n;
}

function measure(chunks: readonly Uint8Array[], bytes: number, fn: typeof run) {
  for (let i = 0; i < 5; i++) fn(chunks); // warm up
  let rounds = 0;
  let stanzas = 0;
  const t0 = performance.now();
  let elapsed = 0;
  while (elapsed < 2000) {
    stanzas += fn(chunks);
    rounds++;
    elapsed = performance.now() - t0;
  }
  return {
    mbps: (bytes * rounds) / (elapsed / 1000) / 1e6,
    perSec: stanzas / (elapsed / 1000),
    rounds,
  };
}

const MIXES: readonly (readonly [string, Uint8Array])[] = [
  ["mixed stanzas", mixedStream()],
  ["chat messages", chatOnly()],
];

for (const [name, data] of MIXES) {
  const chunks = chunked(data);
  Deno.bench({
    name: `parse ${name} (${(data.length / 1024).toFixed(0)} KiB in 16 KiB chunks)`,
    fn(b) {
      b.start();
      const n = run(chunks);
      b.end();
      if (n === 0) throw new Error("no stanzas parsed");
    },
  });
}

if (import.meta.main) {
  for (const [name, data] of MIXES) {
    const chunks = chunked(data);
    const ours = measure(chunks, data.length, run);
    const bare = measure(chunks, data.length, runBare);
    console.log(
      `${name}: ${ours.mbps.toFixed(1)} MB/s, ${Math.round(ours.perSec)} stanzas/s; ` +
        `bare saxes ${bare.mbps.toFixed(1)} MB/s; ratio ${(ours.mbps / bare.mbps).toFixed(2)} ` +
        `(${ours.rounds} rounds of ${data.length} bytes)`,
    );
  }
}
