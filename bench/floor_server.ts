/**
 * The minimal servers of bench/floor.ts, one per process: each does only the work no XMPP
 * server on Deno can avoid (accept, read, TLS, write), so that what it costs is a floor under
 * ours. It prints `listening <port>` once it accepts connections on 127.0.0.1.
 *
 *   floor_server.ts relay tls=0|1 xml=0|1 cert=PATH key=PATH
 *     connections pair up in accept order (0 with 1, 2 with 3, ...); what one sends goes to
 *     its partner unchanged (xml=0), or parsed by lib/xml/parser.ts and serialized again by
 *     lib/xml/element.ts (xml=1, after a stream header that is not relayed)
 *   floor_server.ts fanout tls=0|1 xml=0|1 cert=PATH key=PATH
 *     the first connection accepted publishes, every later one is its contact: what the
 *     publisher sends goes to all contacts unchanged (xml=0), or parsed once by
 *     lib/xml/parser.ts, stamped with the publisher's `from`, and serialized once per contact
 *     with that contact's `to` (xml=1: each delivery carries its own `to`, as a real server's)
 *   floor_server.ts archive tls=0|1 xml=0|1 dir=PATH cert=PATH key=PATH
 *     the relay, plus per message with a body two durable appends (the sender's archive and the
 *     recipient's) through lib/storage/file/list_store.ts with the data directory's journal
 *     (journal.ts), as our server archives: the message goes on once both resolved, in order.
 *     xml=0 splits the stream at `</message>` (no parser); xml=1 parses, stamps `from` and
 *     serializes as the relay does
 *   floor_server.ts login engine=openssl|node|tcp xml=0|1 script=PATH cert=PATH key=PATH
 *     each connection goes through the steps of bench/fixtures/floor_login.json: once a step's
 *     client bytes are in (counted, not read), its canned server bytes go out; TLS starts after
 *     the `starttls` step: OpenSSL through lib/transport/openssl.ts, or node:tls as our server
 *     runs it where OpenSSL cannot (lib/transport/tls.ts acceptTls: a TLSSocket over the
 *     Deno connection); tcp is the plain login's steps, without TLS. xml=1 adds the work no
 *     login can skip: the client's bytes parsed by lib/xml/parser.ts (a new parser at each
 *     stream restart), each reply's elements serialized (lib/xmpp/stream_xml.ts) behind a stream
 *     header with a fresh id, and SCRAM's proof checked (lib/xmpp/scram.ts) with credentials
 *     derived at start from the recorded salt and xmppbench's password
 *   floor_server.ts idle engine=tcp|openssl|node|rustls read=1|0 cert=PATH key=PATH
 *     holds every connection after its TLS handshake (direct TLS), with a pending read into a
 *     buffer of the size lib/transport/tcp.ts keeps while idle (read=1) or none (read=0); node
 *     is `node:tls` createServer (always reading), rustls `Deno.listenTls`. SIGUSR1 runs the
 *     heap trim our server runs once quiet (V8's compacting collection and `malloc_trim`).
 *
 * Reads and writes are those of lib/transport/tcp.ts: `conn.read` into a buffer that starts at
 * 512 bytes and grows while reads fill it, writes gathered per tick (a microtask) and written in
 * order; over OpenSSL the batch is sealed with one `sslEncrypt`.
 * @module
 */
import {
  sslAccept,
  type SslContexts,
  sslContexts,
  sslEncrypt,
  sslFeed,
  sslFree,
  type SslSession,
  sslShutdown,
} from "../lib/transport/openssl.ts";
import { acceptTls } from "../lib/transport/tls.ts";
import { openMallocTrim } from "../lib/shell/malloc_trim.ts";
import { createStreamParser, type StreamParser } from "../lib/xml/parser.ts";
import { type Element, serialize, text, withAttrs } from "../lib/xml/element.ts";
import { NS_CLIENT } from "../lib/xmpp/namespaces.ts";
import { serializeTopIn } from "../lib/xmpp/stream_xml.ts";
import {
  type ClientFirst,
  deriveCredentials,
  parseClientFirst,
  type ScramCredentials,
  verifyClientFinal,
} from "../lib/xmpp/scram.ts";
import { isArchivable, newArchiveId } from "../lib/core/archive.ts";
import { openListStore } from "../lib/storage/file/list_store.ts";
import { openListJournal } from "../lib/storage/file/journal.ts";

const READ_MIN = 512;
const READ_MAX = 16384;
const encoder = new TextEncoder();

type Args = Readonly<Record<string, string>>;

function parseArgs(args: readonly string[]): Args {
  return Object.fromEntries(
    args.slice(1).map((a) => {
      const i = a.indexOf("=");
      return i < 0 ? [a, "1"] : [a.slice(0, i), a.slice(i + 1)];
    }),
  );
}

async function material(a: Args): Promise<{ certPem: string; keyPem: string }> {
  return { certPem: await Deno.readTextFile(a.cert), keyPem: await Deno.readTextFile(a.key) };
}

async function nodeMaterial(a: Args): Promise<{ cert: string; key: string }> {
  const m = await material(a);
  return { cert: m.certPem, key: m.keyPem };
}

async function openssl(a: Args): Promise<SslContexts> {
  const ctx = sslContexts(new Map([["localhost", await material(a)]]));
  if (ctx === undefined) throw new Error("OpenSSL cannot serve here (--allow-ffi, libssl 3)");
  return ctx;
}

function listening(port: number): void {
  console.log(`listening ${port}`);
}

function closeQuietly(conn: { close(): void }): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

/** The write side of tcp.ts: a batch per tick, sealed when TLS is on, written in order. */
interface Out {
  push(data: Uint8Array | string): void;
  /** Bytes for the wire as they are (handshake flights, close_notify). */
  wire(data: Uint8Array): void;
  /** Resolves once everything queued so far is written. */
  drained(): Promise<void>;
}

function makeOut(conn: Deno.Conn, tls: () => SslSession | undefined): Out {
  let strs: string[] = [];
  let bufs: Uint8Array[] = [];
  let scheduled = false;
  let chain = Promise.resolve();
  const wire = (data: Uint8Array) => {
    chain = chain.then(() => writeAll(conn, data)).catch(() => {});
  };
  const flush = () => {
    scheduled = false;
    const s = tls();
    // A partner's bytes that come before this connection's handshake is done wait for it (the
    // client may send as soon as its own side is done): drained() sends them then.
    if (s !== undefined && !s.established) return;
    if (strs.length === 0 && bufs.length === 0) return;
    let data: Uint8Array;
    if (strs.length > 0) {
      data = encoder.encode(strs.join(""));
      strs = [];
    } else if (bufs.length === 1) {
      data = bufs[0];
      bufs = [];
    } else {
      data = new Uint8Array(bufs.reduce((n, b) => n + b.length, 0));
      let off = 0;
      for (const b of bufs) {
        data.set(b, off);
        off += b.length;
      }
      bufs = [];
    }
    if (s === undefined) return wire(data);
    const sealed = sslEncrypt(s, data);
    if (sealed !== undefined) wire(sealed);
  };
  return {
    push(data) {
      if (typeof data === "string") strs.push(data);
      else bufs.push(data);
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(flush);
      }
    },
    wire,
    drained() {
      flush();
      return chain;
    },
  };
}

/** OpenSSL's handshake on the connection's reads, as tcp.ts runs it (a 4 KiB buffer). */
async function handshake(conn: Deno.Conn, s: SslSession, out: Out): Promise<void> {
  const buf = new Uint8Array(4096);
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("closed during the TLS handshake");
    const r = sslFeed(s, buf.subarray(0, n), () => {}, false);
    if (r.out !== undefined) out.wire(r.out);
    if (r.error !== undefined) throw new Error(r.error);
    if (r.established) return;
  }
}

/**
 * tcp.ts's read loop: bytes (decrypted when `ssl` is given) go to `onBytes` until the peer
 * closes or `stop()` says so. The buffer stays small while reads do not fill it.
 */
async function readLoop(
  conn: Deno.Conn,
  out: Out,
  onBytes: (b: Uint8Array) => void,
  ssl?: SslSession,
  stop: () => boolean = () => false,
): Promise<boolean> {
  let buf = new Uint8Array(READ_MIN);
  if (ssl !== undefined) {
    // What came with the handshake's last flight is already inside the session.
    const r = sslFeed(ssl, new Uint8Array(0), onBytes);
    if (r.out !== undefined) out.wire(r.out);
  }
  while (!stop()) {
    let n: number | null;
    try {
      n = await conn.read(buf);
    } catch {
      n = null;
    }
    if (n === null) return false;
    if (ssl === undefined) onBytes(buf.subarray(0, n));
    else {
      const r = sslFeed(ssl, buf.subarray(0, n), onBytes);
      if (r.out !== undefined) out.wire(r.out);
      if (r.error !== undefined || ssl.peerClosed) return false;
    }
    if (n === buf.length) {
      if (n < READ_MAX) buf = new Uint8Array(Math.min(n * 4, READ_MAX));
    } else if (n <= READ_MIN && buf.length > READ_MIN) buf = new Uint8Array(READ_MIN);
  }
  return true;
}

/**
 * Listens on 127.0.0.1, says so (`listening <port>`), and yields each connection accepted,
 * Nagle's algorithm off unless `noDelay` is false.
 */
async function* accepted(noDelay = true): AsyncGenerator<Deno.Conn> {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  listening((listener.addr as Deno.NetAddr).port);
  for await (const conn of listener) {
    if (noDelay) conn.setNoDelay(true);
    yield conn;
  }
}

/**
 * A connection of the relay, fanout and archive floors: its write side, and `serve`, which runs
 * the direct TLS handshake (when `tls` is given), then the read loop into `onBytes` until the
 * client goes away, and closes the connection.
 */
function floorConn(conn: Deno.Conn, tls: SslContexts | undefined) {
  let ssl: SslSession | undefined;
  const out = makeOut(conn, () => ssl);
  const serve = async (onBytes: (b: Uint8Array) => void) => {
    try {
      if (tls !== undefined) {
        ssl = sslAccept(tls);
        await handshake(conn, ssl, out);
        void out.drained();
      }
      await readLoop(conn, out, onBytes, ssl);
    } catch {
      // the client went away
    }
    closeQuietly(conn);
    if (ssl !== undefined) sslFree(ssl);
  };
  return { out, serve };
}

// ---------------------------------------------------------------------------------- relay --

async function relay(a: Args): Promise<void> {
  const tls = a.tls === "1" ? await openssl(a) : undefined;
  const xml = a.xml === "1";
  const outs: Out[] = [];
  for await (const conn of accepted()) {
    const me = outs.length;
    // The routing table: fixed by accept order, 0 <-> 1, 2 <-> 3, ...
    const partner = me ^ 1;
    const { out, serve } = floorConn(conn, tls);
    outs.push(out);
    let onBytes: (b: Uint8Array) => void;
    if (xml) {
      const parser = createStreamParser({ maxStanzaBytes: 262144 });
      onBytes = (b) => {
        for (const ev of parser.push(b)) {
          if (ev.kind === "stanza") outs[partner].push(serialize(ev.stanza));
        }
      };
    } else {
      // A copy: the read buffer (or OpenSSL's plaintext buffer) is reused at once.
      onBytes = (b) => outs[partner].push(b.slice());
    }
    void serve(onBytes);
  }
}

// --------------------------------------------------------------------------------- fanout --

async function fanout(a: Args): Promise<void> {
  const tls = a.tls === "1" ? await openssl(a) : undefined;
  const xml = a.xml === "1";
  const outs: Out[] = [];
  // Each contact's full JID: the `to` of every delivery to it.
  const jids: string[] = [];
  const publisher = "fanhub@localhost/floor-hub";
  const parser = createStreamParser({ maxStanzaBytes: 262144 });
  const publish = xml
    ? (b: Uint8Array) => {
      for (const ev of parser.push(b)) {
        if (ev.kind !== "stanza") continue;
        const stamped = withAttrs(ev.stanza, { from: publisher });
        for (let i = 1; i < outs.length; i++) {
          outs[i].push(serialize(withAttrs(stamped, { to: jids[i] })));
        }
      }
    }
    : (b: Uint8Array) => {
      // One copy for all: the read buffer (or OpenSSL's plaintext buffer) is reused at once.
      const copy = b.slice();
      for (let i = 1; i < outs.length; i++) outs[i].push(copy);
    };
  for await (const conn of accepted()) {
    const me = outs.length;
    const { out, serve } = floorConn(conn, tls);
    outs.push(out);
    jids.push(`fan${me}@localhost/floor-${me}`);
    // Contacts send nothing after their handshake; their reads stay pending, as ours do.
    const onBytes = me === 0 ? publish : () => {};
    void serve(onBytes);
  }
}

// -------------------------------------------------------------------------------- archive --

/** An archived message as lib/core/archive.ts's ArchivedMessage, the stanza as a string. */
interface Archived {
  readonly id: string;
  readonly ts: number;
  readonly peer: string;
  readonly stanza: string;
}

async function archive(a: Args): Promise<void> {
  const tls = a.tls === "1" ? await openssl(a) : undefined;
  const xml = a.xml === "1";
  // As our server opens its data directory: the journal first, then the stores find it.
  if (await openListJournal(a.dir) === undefined) throw new Error(`journal of ${a.dir} is held`);
  const store = openListStore<Archived>(a.dir, "archive");
  const outs: Out[] = [];
  for await (const conn of accepted()) {
    const me = outs.length;
    const partner = me ^ 1;
    const user = `bench${me + 1}`;
    const peerUser = `bench${partner + 1}`;
    const meJid = `${user}@localhost/floor`;
    const partnerJid = `${peerUser}@localhost/floor`;
    const { out, serve } = floorConn(conn, tls);
    outs.push(out);
    // Messages go on in the order they came, each once both its appends are durable.
    let pending = 0;
    let chain: Promise<void> = Promise.resolve();
    const forward = (s: string, archived: boolean) => {
      if (!archived) {
        if (pending === 0) outs[partner].push(s);
        else chain = chain.then(() => outs[partner].push(s));
        return;
      }
      pending++;
      const ts = Date.now();
      const item = (peer: string): Archived => ({
        id: newArchiveId(ts, crypto.randomUUID().slice(0, 8)),
        ts,
        peer,
        stanza: s,
      });
      const sender = store.append("localhost", user, [item(partnerJid)]);
      const recipient = store.append("localhost", peerUser, [item(meJid)]);
      chain = Promise.all([chain, sender, recipient]).then(() => {
        pending--;
        outs[partner].push(s);
      }, (e) => {
        // Nothing may be forwarded that was not archived: the run fails at once.
        console.error(`append failed: ${e}`);
        Deno.exit(1);
      });
    };
    let onBytes: (b: Uint8Array) => void;
    if (xml) {
      const parser = createStreamParser({ maxStanzaBytes: 262144 });
      onBytes = (b) => {
        for (const ev of parser.push(b)) {
          if (ev.kind !== "stanza") continue;
          const stamped: Element = withAttrs(ev.stanza, { from: meJid });
          forward(serialize(stamped), isArchivable(stamped));
        }
      };
    } else {
      const decoder = new TextDecoder();
      let rest = "";
      onBytes = (b) => {
        rest += decoder.decode(b, { stream: true });
        let end;
        while ((end = rest.indexOf("</message>")) >= 0) {
          const s = rest.slice(0, end + 10);
          rest = rest.slice(end + 10);
          forward(s, s.includes("<body>"));
        }
      };
    }
    void serve(onBytes);
  }
}

// ---------------------------------------------------------------------------------- login --

interface Step {
  readonly c: readonly string[];
  readonly s: string;
  readonly starttls?: boolean;
}

interface Script {
  readonly tls: readonly Step[];
  readonly tcp: readonly Step[];
  readonly close: Step;
}

/** Counts a connection's bytes through its steps; says when a reply is due and TLS starts. */
function stepper(steps: readonly Step[], reply: (k: number) => void) {
  const need = steps.map((s) => s.c.reduce((n, c) => n + encoder.encode(c).length, 0));
  let k = 0;
  let got = 0;
  return {
    /** Returns true when the step just answered was `starttls`. */
    feed(b: Uint8Array): boolean {
      got += b.length;
      while (k < steps.length && got >= need[k]) {
        got -= need[k];
        reply(k);
        if (steps[k++].starttls === true) return true;
      }
      return false;
    },
    get done() {
      return k === steps.length;
    },
  };
}

const STREAM_HEADER = /^(?:<\?xml[^>]*\?>)?<stream:stream[^>]*>/;
const PARSER_LIMITS = { maxStanzaBytes: 65536 };

/** The stanzas in `content` (what follows a stream header), parsed as a client stream's. */
function parseContent(content: string): Element[] {
  const parser = createStreamParser(PARSER_LIMITS);
  const events = parser.push(encoder.encode(
    `<stream:stream xmlns='${NS_CLIENT}' xmlns:stream='http://etherx.jabber.org/streams'>${content}`,
  ));
  return events.flatMap((e) => e.kind === "stanza" ? [e.stanza] : []);
}

/**
 * A canned reply made as our server makes it: the stream header as text with a fresh id, the
 * elements serialized. Checked against the recording, since the client counts the bytes.
 */
function xmlReply(recorded: string): () => string {
  const header = STREAM_HEADER.exec(recorded)?.[0] ?? "";
  const rest = recorded.slice(header.length);
  if (rest.startsWith("</stream:stream>")) return () => recorded;
  const elements = parseContent(rest);
  const serialized = () => elements.map((el) => serializeTopIn(el, NS_CLIENT)).join("");
  if (serialized() !== rest) throw new Error(`reply not reproduced: ${recorded}`);
  const idAt = header.indexOf(" id='") + 5;
  const idEnd = idAt < 5 ? -1 : header.indexOf("'", idAt);
  if (idEnd < 0) return () => header + serialized();
  // A fresh stream id of the recorded length, as ours draws one per stream.
  const before = header.slice(0, idAt);
  const after = header.slice(idEnd);
  const id = new Uint8Array(idEnd - idAt);
  return () => {
    crypto.getRandomValues(id);
    return before + String.fromCharCode(...id.map((b) => 97 + b % 26)) + after + serialized();
  };
}

/** SCRAM-SHA-1's server side for the recorded exchange in `steps`: what ours computes per login. */
function scramCheck(steps: readonly Step[]) {
  const payloadOf = (xml: string, name: string) => {
    const el = parseContent(xml).find((e) => e.name === name);
    if (el === undefined) throw new Error(`no <${name}/> in the script`);
    return atob(text(el));
  };
  const serverFirst = payloadOf(steps.find((s) => s.s.includes("<challenge"))!.s, "challenge");
  const attrs = Object.fromEntries(serverFirst.split(",").map((p) => [p[0], p.slice(2)]));
  const creds: ScramCredentials = deriveCredentials(
    "benchpass",
    "SHA-1",
    Uint8Array.from(atob(attrs.s), (c) => c.charCodeAt(0)),
    Number(attrs.i),
  );
  const check = {
    first(el: Element): ClientFirst | undefined {
      const r = parseClientFirst(atob(text(el)));
      return "error" in r ? undefined : r;
    },
    final(first: ClientFirst | undefined, el: Element): boolean {
      if (first === undefined) return false;
      const clientFinal = atob(text(el));
      return verifyClientFinal({ hash: "SHA-1", creds, first, serverFirst, clientFinal }).ok;
    },
  };
  // The recording must verify, or the floor would measure a failure's path.
  const auth = parseContent(steps.find((s) => s.c.join("").includes("<auth"))!.c.join(""))[0];
  const resp = parseContent(steps.find((s) => s.c.join("").includes("<response"))!.c.join(""))[0];
  if (!check.final(check.first(auth), resp)) throw new Error("the recorded SCRAM does not verify");
  return check;
}

/** Per connection: the client's bytes through a stream parser, SCRAM checked on the way. */
function loginXml(check: ReturnType<typeof scramCheck>) {
  let parser: StreamParser | undefined;
  let first: ClientFirst | undefined;
  return {
    feed(b: Uint8Array): void {
      parser ??= createStreamParser(PARSER_LIMITS);
      for (const ev of parser.push(b)) {
        if (ev.kind === "error") throw new Error(`parse error: ${ev.text}`);
        if (ev.kind !== "stanza") continue;
        if (ev.stanza.name === "auth") first = check.first(ev.stanza);
        else if (ev.stanza.name === "response" && !check.final(first, ev.stanza)) {
          throw new Error("SCRAM proof refused");
        }
      }
    },
    /** After <proceed/> and <success/>: the client opens a new stream. */
    restart(): void {
      parser = undefined;
    },
  };
}

async function login(a: Args): Promise<void> {
  const script: Script = JSON.parse(await Deno.readTextFile(a.script));
  const engine = a.engine;
  const tls = engine === "openssl" ? await openssl(a) : undefined;
  // node:tls as our server runs it where OpenSSL cannot: lib/transport/tls.ts's acceptTls.
  const nodeContexts = engine === "node"
    ? { material: new Map([["localhost", await material(a)]]), defaultHost: "localhost" }
    : undefined;
  const steps = [...(engine === "tcp" ? script.tcp : script.tls), script.close];
  const check = a.xml === "1" ? scramCheck(steps) : undefined;
  const replies = steps.map((s) => check === undefined ? () => s.s : xmlReply(s.s));
  const restarts = steps.map((s) => s.s.includes("<proceed") || s.s.includes("<success"));
  for await (const conn of accepted()) {
    (async () => {
      let ssl: SslSession | undefined;
      const out = makeOut(conn, () => ssl);
      let upgrade = false;
      let node: { write(s: string): unknown; end(): unknown } | undefined;
      const xml = check === undefined ? undefined : loginXml(check);
      const st = stepper(steps, (k) => {
        const s = replies[k]();
        if (restarts[k]) xml?.restart();
        return node === undefined ? out.push(s) : node.write(s);
      });
      const onBytes = (b: Uint8Array) => {
        xml?.feed(b);
        if (st.feed(b)) upgrade = true;
      };
      try {
        // Plain until the client's <starttls/> is answered; nothing follows it until TLS.
        await readLoop(conn, out, onBytes, undefined, () => upgrade || st.done);
        if (upgrade && nodeContexts !== undefined) {
          await out.drained();
          const sock = await acceptTls(conn, nodeContexts);
          node = sock;
          sock.on("data", (b: Uint8Array) => {
            onBytes(b);
            if (st.done) sock.end();
          });
          sock.on("error", () => sock.destroy());
          return;
        }
        if (upgrade) {
          await out.drained();
          ssl = sslAccept(tls!);
          await handshake(conn, ssl, out);
          await readLoop(conn, out, onBytes, ssl, () => st.done);
        }
        if (st.done) {
          await out.drained();
          if (ssl !== undefined) {
            const bye = sslShutdown(ssl);
            if (bye !== undefined) out.wire(bye);
            await out.drained();
          }
        }
      } catch {
        // the client went away
      }
      closeQuietly(conn);
      if (ssl !== undefined) sslFree(ssl);
    })();
  }
}

// ----------------------------------------------------------------------------------- idle --

const held: unknown[] = [];

type GcCall = (opts: {
  readonly type: "major";
  readonly execution: "sync";
  readonly flavor: "last-resort";
}) => void;

/**
 * What our server's heap trim does once it has gone quiet (lib/shell/heap_trim.ts): V8's
 * compacting collection, then glibc's `malloc_trim(0)` for what native code freed.
 */
function compact(): void {
  const gc = (globalThis as { gc?: GcCall }).gc;
  if (typeof gc === "function") gc({ type: "major", execution: "sync", flavor: "last-resort" });
  openMallocTrim()?.();
}

/** Keeps a read pending on `conn` (tcp.ts's idle buffer), or holds it without one. */
function hold(conn: Deno.Conn, read: boolean, ssl?: SslSession, out?: Out): void {
  held.push(conn);
  if (!read) return;
  readLoop(conn, out ?? makeOut(conn, () => ssl), () => {}, ssl).catch(() => {}).finally(() =>
    closeQuietly(conn)
  );
}

async function idle(a: Args): Promise<void> {
  const read = a.read !== "0";
  // bench/floor.ts asks for a trim before it reads RSS, as our server makes one once quiet.
  Deno.addSignalListener("SIGUSR1", compact);
  if (a.engine === "node") {
    const { default: nodeTls } = await import("node:tls");
    const server = nodeTls.createServer(await nodeMaterial(a), (sock) => {
      held.push(sock);
      sock.on("data", () => {});
      sock.on("error", () => sock.destroy());
      if (!read) sock.pause();
    });
    server.listen(0, "127.0.0.1", () => {
      listening((server.address() as { port: number }).port);
    });
    return await new Promise(() => {});
  }
  if (a.engine === "rustls") {
    const m = await material(a);
    const listener = Deno.listenTls({
      hostname: "127.0.0.1",
      port: 0,
      cert: m.certPem,
      key: m.keyPem,
    });
    listening(listener.addr.port);
    for await (const conn of listener) {
      conn.handshake().then(() => hold(conn, read), () => closeQuietly(conn));
    }
    return;
  }
  const tls = a.engine === "openssl" ? await openssl(a) : undefined;
  for await (const conn of accepted(false)) {
    if (tls === undefined) {
      hold(conn, read);
      continue;
    }
    const ssl = sslAccept(tls);
    const out = makeOut(conn, () => ssl);
    handshake(conn, ssl, out).then(() => hold(conn, read, ssl, out), () => {
      closeQuietly(conn);
      sslFree(ssl);
    });
  }
}

const modes: Record<string, (a: Args) => Promise<void>> = { relay, fanout, archive, login, idle };
const mode = modes[Deno.args[0]];
if (mode === undefined) {
  console.error("usage: floor_server.ts relay|fanout|archive|login|idle key=value...");
  Deno.exit(2);
}
await mode(parseArgs(Deno.args));
