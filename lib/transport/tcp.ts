/**
 * The TCP transport (RFC 6120 over a socket): plain, upgraded with STARTTLS, or direct TLS
 * (XEP-0368). It frames outputs with ./tcp_framing.ts, writes in order with one batch per tick,
 * counts what the peer has taken (for the backlog guard), and reads with a buffer that stays
 * small while the connection is idle, waiting while the driver says reading must wait. TLS is
 * OpenSSL's (./openssl.ts) on the same reads and writes where it can serve, else node:tls.
 * @module
 */
import type tls from "node:tls";
import type { ChannelBindings } from "../core/session.ts";
import { type Driver, hangUp, pressured, receive, type Transport } from "./driver.ts";
import { whenRelieved } from "./flow.ts";
import { tcpFrame } from "./tcp_framing.ts";
import {
  sslAccept,
  sslEncrypt,
  sslExportKeyingMaterial,
  sslFeed,
  sslFree,
  sslServerName,
  type SslSession,
  sslShutdown,
  sslVersion,
} from "./openssl.ts";
import { acceptTls, opensslContexts, type TlsContexts } from "./tls.ts";

/** How a TCP connection is framed and secured. */
export interface TcpOptions {
  /** The stream's content namespace (`jabber:client`, `jabber:component:accept`). */
  readonly ns: string;
  /** Certificates, when TLS can be offered. */
  readonly tls?: TlsContexts;
  /** tls-server-end-point data per host (RFC 5929), for SCRAM-*-PLUS. */
  readonly endPoints?: ReadonlyMap<string, Uint8Array>;
}

const encoder = new TextEncoder();

// Read buffer bounds in bytes: an idle connection holds READ_MIN, a busy one up to READ_MAX.
const READ_MIN = 512;
const READ_MAX = 16384;

// Output is encoded as it is queued, into a buffer the connection holds only from its first
// frame of a tick until the batch is written (sealed by OpenSSL at once; on a plain socket
// once the write returns). Buffers of the common size are shared through this pool: an idle
// connection holds none, and a busy server does not make one per write. A presence broadcast
// takes one per recipient at once, hence a small size and a pool of a few hundred (at most
// OUT_SIZE * OUT_POOL_MAX bytes kept).
const OUT_SIZE = 1024;
const OUT_POOL_MAX = 256;
const outPool: Uint8Array[] = [];

function takeOut(need: number): Uint8Array {
  if (need <= OUT_SIZE) return outPool.pop() ?? new Uint8Array(OUT_SIZE);
  let size = OUT_SIZE * 2;
  while (size < need) size *= 2;
  return new Uint8Array(size);
}

function giveOut(buf: Uint8Array): void {
  // Larger ones were made for one large batch: they go with it.
  if (buf.length === OUT_SIZE && outPool.length < OUT_POOL_MAX) outPool.push(buf);
}

/** The peer's address, for limits and logs. */
export function remoteIp(conn: Deno.Conn): string {
  const addr = conn.remoteAddr;
  return addr.transport === "tcp" ? addr.hostname : "unknown";
}

const EXPORTER_LABEL = "EXPORTER-Channel-Binding";

/**
 * RFC 9266 tls-exporter data, when the runtime can export keying material and the session is
 * TLS 1.3 (the binding is undefined for older versions). Deno's node:tls lacks the call today,
 * so this turns on by itself once it exists.
 */
function tlsExporter(socket: tls.TLSSocket): Uint8Array | undefined {
  const exportKeyingMaterial = (socket as unknown as {
    exportKeyingMaterial?: (length: number, label: string, context?: Uint8Array) => Uint8Array;
  }).exportKeyingMaterial;
  if (typeof exportKeyingMaterial !== "function") return undefined;
  if (socket.getProtocol() !== "TLSv1.3") return undefined;
  try {
    return new Uint8Array(
      exportKeyingMaterial.call(socket, 32, EXPORTER_LABEL, new Uint8Array(0)),
    );
  } catch {
    return undefined;
  }
}

/**
 * The channel bindings of a connection. An exporter given as a function is computed the first
 * time it is read and kept: a login that does not choose a -PLUS mechanism never reads it, and
 * deriving it is ~2 % of a login's CPU. The property is there from the start, so that the
 * stream features can list the type without computing the value (see `bindingTypes`).
 */
function bindingsFor(
  name: string | undefined,
  exporter: Uint8Array | (() => Uint8Array | undefined) | undefined,
  opts: TcpOptions,
): ChannelBindings {
  const endPoints = opts.endPoints ?? new Map<string, Uint8Array>();
  const host = typeof name === "string" && endPoints.has(name) ? name : opts.tls!.defaultHost;
  const endPoint = endPoints.get(host);
  const bindings: ChannelBindings = endPoint === undefined
    ? {}
    : { "tls-server-end-point": endPoint };
  if (exporter === undefined) return bindings;
  if (typeof exporter !== "function") return { ...bindings, "tls-exporter": exporter };
  let derived: Uint8Array | undefined;
  let asked = false;
  return Object.defineProperty({ ...bindings }, "tls-exporter", {
    enumerable: true,
    get: () => {
      if (!asked) {
        asked = true;
        derived = exporter();
      }
      return derived;
    },
  });
}

/** The transport of `d` over `conn`; reading starts with `read()`. */
export function tcpTransport<S, E, O>(
  d: Driver<S, E, O>,
  conn: Deno.Conn,
  opts: TcpOptions,
): Transport {
  // Writes: batched per tick, counted per partial write, so that a peer reading a large write
  // is seen to make progress. Under OpenSSL the batch is encrypted as it leaves, so the counts
  // are of bytes on the wire.
  let out: Uint8Array | undefined;
  let outLen = 0;
  let inFlight = 0;
  let taken = 0;
  let chain = Promise.resolve();
  let scheduled = false;
  // Who reads: the plain loop, the OpenSSL handshake, the OpenSSL loop, or node:tls.
  let mode: "plain" | "handshake" | "tls" | "node" = "plain";
  let ssl: SslSession | undefined;
  // node:tls: bytes, not strings, so that writableLength counts in the same unit as `accepted`.
  let socket: tls.TLSSocket | undefined;
  let accepted = 0;

  // `pooled`: the pool buffer `data` is a view of, given back once it is written.
  const writeCounted = async (data: Uint8Array, pooled: Uint8Array | undefined) => {
    let off = 0;
    try {
      while (off < data.length) {
        const n = await conn.write(off === 0 ? data : data.subarray(off));
        off += n;
        inFlight -= n;
        taken += n;
      }
    } finally {
      inFlight -= data.length - off;
      if (pooled !== undefined) giveOut(pooled);
    }
  };
  const writeWire = (data: Uint8Array, pooled?: Uint8Array): Promise<void> => {
    inFlight += data.length;
    chain = chain.then(() => writeCounted(data, pooled)).catch(() => hangUp(d, "write"));
    return chain;
  };
  const flush = (): Promise<void> => {
    scheduled = false;
    const buf = out;
    if (buf === undefined) return chain;
    const data = buf.subarray(0, outLen);
    out = undefined;
    outLen = 0;
    if (ssl === undefined) return writeWire(data, buf);
    const sealed = sslEncrypt(ssl, data);
    // OpenSSL has copied what it sealed.
    giveOut(buf);
    // Nothing to seal with: the session was freed as the connection ended.
    return sealed === undefined ? chain : writeWire(sealed);
  };
  /** Encodes `text` after what is queued. */
  const queue = (text: string) => {
    let buf = out ?? (out = takeOut(text.length));
    let r = encoder.encodeInto(text, outLen === 0 ? buf : buf.subarray(outLen));
    outLen += r.written;
    if (r.read === text.length) return;
    // It did not fit: a larger buffer for the rest (UTF-8 takes at most three bytes per UTF-16
    // code unit), then encoded from where it stopped, on a character boundary.
    const rest = text.slice(r.read);
    const bigger = takeOut(outLen + rest.length * 3);
    bigger.set(buf.subarray(0, outLen));
    giveOut(buf);
    buf = out = bigger;
    r = encoder.encodeInto(rest, buf.subarray(outLen));
    outLen += r.written;
  };
  const freeSsl = () => {
    if (ssl !== undefined) sslFree(ssl);
  };
  const closeConn = () => {
    try {
      conn.close();
    } catch {
      // already closed
    }
    freeSsl();
  };

  function readNode(s: tls.TLSSocket): void {
    let paused = false;
    s.on("data", (chunk: Uint8Array) => {
      receive(d, chunk);
      if (paused || !pressured(d)) return;
      paused = true;
      s.pause();
      whenRelieved(() => pressured(d), () => d.done).then(() => {
        paused = false;
        if (!d.done) s.resume();
      });
    });
    s.on("end", () => hangUp(d, "end"));
    s.on("close", () => hangUp(d, "close"));
    s.on("error", () => hangUp(d, "tls error"));
  }

  const onPlain = (plain: Uint8Array) => receive(d, plain);

  /** Hands received bytes on: as they are, or through OpenSSL. False when reading must stop. */
  function deliver(chunk: Uint8Array): boolean {
    if (ssl === undefined) {
      receive(d, chunk);
      return true;
    }
    const r = sslFeed(ssl, chunk, onPlain);
    if (r.out !== undefined) void writeWire(r.out);
    if (r.error !== undefined) {
      hangUp(d, "tls error");
      return false;
    }
    if (ssl.peerClosed) {
      hangUp(d, "end");
      return false;
    }
    return true;
  }

  async function readLoop(): Promise<void> {
    const own = mode;
    // The pending read holds its buffer for as long as the connection is idle, which is most of
    // its life, so the buffer starts small and grows only while reads fill it. The parser copies
    // what it keeps, so the buffer is reused without copying each chunk.
    let buf = new Uint8Array(READ_MIN);
    if (own === "tls") {
      // What came with the handshake's last flight is already inside the session; it is read
      // once the caller has seen the handshake end (which resets the stream), not before.
      await Promise.resolve();
      if (!deliver(new Uint8Array(0))) return;
    }
    // A pending read cannot be cancelled, so a STARTTLS upgrade must happen between reads: the
    // client sends nothing after <starttls/> until it sees <proceed/>.
    while (mode === own && !d.done) {
      if (pressured(d)) {
        await whenRelieved(() => pressured(d), () => d.done);
        if (mode !== own || d.done) break;
      }
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) {
        if (mode === own) hangUp(d, "end");
        break;
      }
      if (!deliver(buf.subarray(0, n))) break;
      if (n === buf.length) {
        if (n < READ_MAX) buf = new Uint8Array(Math.min(n * 4, READ_MAX));
      } else if (n <= READ_MIN && buf.length > READ_MIN) buf = new Uint8Array(READ_MIN);
    }
    // The connection is over for this loop: a later write has nothing to say over TLS.
    if (own === "tls" && mode === own) freeSsl();
  }

  /** Runs OpenSSL's handshake on the connection's reads; leaves what follows in the session. */
  async function handshake(s: SslSession): Promise<void> {
    // A ClientHello with post-quantum key shares is over 1 KB: a larger buffer for the few reads.
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) throw new Error("connection closed during the TLS handshake");
      const r = sslFeed(s, buf.subarray(0, n), () => {}, false);
      if (r.out !== undefined) void writeWire(r.out);
      if (r.error !== undefined) throw new Error(r.error);
      if (r.established) return;
    }
  }

  return {
    backlog: () => socket === undefined ? inFlight + outLen : socket.writableLength,
    taken: () => socket === undefined ? taken : accepted - socket.writableLength,
    send(frame) {
      const text = tcpFrame(frame, opts.ns);
      if (socket !== undefined) {
        if (socket.destroyed) return;
        const data = encoder.encode(text);
        accepted += data.length;
        socket.write(data);
        return;
      }
      queue(text);
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(flush);
      }
    },
    read() {
      if (socket !== undefined) {
        readNode(socket);
        return Promise.resolve();
      }
      return readLoop();
    },
    async starttls(alpn) {
      mode = "handshake";
      await flush();
      const contexts = opensslContexts(opts.tls!);
      if (contexts === undefined) {
        const s = await acceptTls(conn, opts.tls!, alpn === undefined ? undefined : { alpn });
        mode = "node";
        socket = s;
        return bindingsFor(
          (s as unknown as { servername?: string }).servername,
          tlsExporter(s),
          opts,
        );
      }
      const s = sslAccept(contexts, alpn);
      ssl = s;
      try {
        await handshake(s);
      } catch (err) {
        freeSsl();
        throw err;
      }
      mode = "tls";
      const exporter = sslVersion(s) === "TLSv1.3"
        ? () => sslExportKeyingMaterial(s, 32, EXPORTER_LABEL)
        : undefined;
      return bindingsFor(sslServerName(s), exporter, opts);
    },
    close() {
      if (socket !== undefined) {
        const s = socket;
        s.end();
        setTimeout(() => s.destroy(), 2000).unref?.();
        return;
      }
      void flush();
      if (ssl !== undefined) {
        const bye = sslShutdown(ssl);
        if (bye !== undefined) void writeWire(bye);
      }
      chain.finally(closeConn);
    },
    abort() {
      if (socket !== undefined) {
        socket.destroy();
        return;
      }
      if (out !== undefined) giveOut(out);
      out = undefined;
      outLen = 0;
      closeConn();
    },
  };
}
