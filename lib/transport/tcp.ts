/**
 * The TCP transport (RFC 6120 over a socket): plain, upgraded with STARTTLS, or direct TLS
 * (XEP-0368). It frames outputs with ./tcp_framing.ts, writes in order with one batch per tick,
 * counts what the peer has taken (for the backlog guard), and reads with a buffer that stays
 * small while the connection is idle, waiting while the driver says reading must wait.
 * @module
 */
import type tls from "node:tls";
import type { ChannelBindings } from "../core/session.ts";
import { utf8Bytes } from "../limits.ts";
import { type Driver, hangUp, pressured, receive, type Transport } from "./driver.ts";
import { whenRelieved } from "./flow.ts";
import { tcpFrame } from "./tcp_framing.ts";
import { acceptTls, type TlsContexts } from "./tls.ts";

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

/** The peer's address, for limits and logs. */
export function remoteIp(conn: Deno.Conn): string {
  const addr = conn.remoteAddr;
  return addr.transport === "tcp" ? addr.hostname : "unknown";
}

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
      exportKeyingMaterial.call(socket, 32, "EXPORTER-Channel-Binding", new Uint8Array(0)),
    );
  } catch {
    return undefined;
  }
}

function bindingsFor(socket: tls.TLSSocket, opts: TcpOptions): ChannelBindings {
  const endPoints = opts.endPoints ?? new Map<string, Uint8Array>();
  const name = (socket as unknown as { servername?: string }).servername;
  const host = typeof name === "string" && endPoints.has(name) ? name : opts.tls!.defaultHost;
  const endPoint = endPoints.get(host);
  const exporter = tlsExporter(socket);
  return {
    ...(endPoint === undefined ? {} : { "tls-server-end-point": endPoint }),
    ...(exporter === undefined ? {} : { "tls-exporter": exporter }),
  };
}

/** The transport of `d` over `conn`; reading starts with `read()`. */
export function tcpTransport<S, E, O>(
  d: Driver<S, E, O>,
  conn: Deno.Conn,
  opts: TcpOptions,
): Transport {
  // Plain writes: batched per tick, counted per partial write, so that a peer reading a large
  // write is seen to make progress.
  let pending: string[] = [];
  let pendingBytes = 0;
  let inFlight = 0;
  let taken = 0;
  let chain = Promise.resolve();
  let scheduled = false;
  // After TLS: bytes, not strings, so that writableLength counts in the same unit as `accepted`.
  let socket: tls.TLSSocket | undefined;
  let accepted = 0;
  let readingPlain = true;

  const writeCounted = async (data: Uint8Array) => {
    let off = 0;
    try {
      while (off < data.length) {
        const n = await conn.write(data.subarray(off));
        off += n;
        inFlight -= n;
        taken += n;
      }
    } finally {
      inFlight -= data.length - off;
    }
  };
  const flush = (): Promise<void> => {
    scheduled = false;
    if (pending.length === 0) return chain;
    const data = encoder.encode(pending.join(""));
    pending = [];
    pendingBytes = 0;
    inFlight += data.length;
    chain = chain.then(() => writeCounted(data)).catch(() => hangUp(d, "write"));
    return chain;
  };
  const closeConn = () => {
    try {
      conn.close();
    } catch {
      // already closed
    }
  };

  function readTls(s: tls.TLSSocket): void {
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

  async function readPlain(): Promise<void> {
    // The pending read holds its buffer for as long as the connection is idle, which is most of
    // its life, so the buffer starts small and grows only while reads fill it. The parser copies
    // what it keeps, so the buffer is reused without copying each chunk.
    let buf = new Uint8Array(READ_MIN);
    // A pending read cannot be cancelled, so a STARTTLS upgrade must happen between reads: the
    // client sends nothing after <starttls/> until it sees <proceed/>.
    while (readingPlain && !d.done) {
      if (pressured(d)) {
        await whenRelieved(() => pressured(d), () => d.done);
        if (!readingPlain || d.done) break;
      }
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        n = null;
      }
      if (n === null) {
        if (readingPlain) hangUp(d, "end");
        break;
      }
      receive(d, buf.subarray(0, n));
      if (n === buf.length) {
        if (n < READ_MAX) buf = new Uint8Array(Math.min(n * 4, READ_MAX));
      } else if (n <= READ_MIN && buf.length > READ_MIN) buf = new Uint8Array(READ_MIN);
    }
  }

  return {
    backlog: () => socket === undefined ? inFlight + pendingBytes : socket.writableLength,
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
      pending.push(text);
      pendingBytes += utf8Bytes(text);
      if (!scheduled) {
        scheduled = true;
        queueMicrotask(flush);
      }
    },
    read() {
      if (socket === undefined) return readPlain();
      readTls(socket);
      return Promise.resolve();
    },
    async starttls(alpn) {
      readingPlain = false;
      await flush();
      const s = await acceptTls(conn, opts.tls!, alpn === undefined ? undefined : { alpn });
      socket = s;
      return bindingsFor(s, opts);
    },
    close() {
      if (socket === undefined) {
        flush().finally(closeConn);
        return;
      }
      const s = socket;
      s.end();
      setTimeout(() => s.destroy(), 2000).unref?.();
    },
    abort() {
      if (socket !== undefined) {
        socket.destroy();
        return;
      }
      pending = [];
      pendingBytes = 0;
      closeConn();
    },
  };
}
