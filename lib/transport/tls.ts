/**
 * Server-side TLS on an accepted Deno connection. ./openssl.ts serves it where it can (Linux
 * with libssl 3 and `--allow-ffi`): see there why. Otherwise, and where the peer's certificate
 * is asked for (server-to-server), `node:tls`: the connection is adapted to a Node Duplex and
 * wrapped in a server TLSSocket, which serves both STARTTLS and direct TLS.
 * @module
 */
import { Duplex } from "node:stream";
import type tls from "node:tls";
import { opensslAvailable, type SslContexts, sslContexts } from "./openssl.ts";

/** Writes all of `data`, however many calls it takes. */
export async function writeAll(conn: Deno.Conn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}

// Read buffer bounds in bytes. A pending read holds its buffer for as long as the connection
// is idle, which is most of its life: it starts small and grows only while reads fill it (a TLS
// record is at most 16 KiB and some).
const READ_MIN = 1024;
const READ_MAX = 17 * 1024;

/** A Node Duplex over a Deno connection, reading only when the consumer asks. */
function connDuplex(conn: Deno.Conn): Duplex {
  let reading = false;
  let size = READ_MIN;
  return new Duplex({
    read() {
      if (reading) return;
      reading = true;
      // A fresh buffer each time: what is pushed belongs to the TLS layer from then on.
      const buf = new Uint8Array(size);
      conn.read(buf).then((n) => {
        reading = false;
        if (n !== null) {
          if (n === buf.length) size = Math.min(size * 4, READ_MAX);
          else if (n <= READ_MIN) size = READ_MIN;
        }
        this.push(n === null ? null : buf.subarray(0, n));
      }, (err) => this.destroy(err));
    },
    write(chunk: Uint8Array, _enc, cb) {
      writeAll(conn, chunk).then(() => cb(), (err) => cb(err));
    },
    final(cb) {
      conn.closeWrite().then(() => cb(), () => cb());
    },
    destroy(err, cb) {
      try {
        conn.close();
      } catch {
        // already closed
      }
      cb(err);
    },
  });
}

/** A certificate (chain) and its key, both PEM. */
export interface TlsMaterial {
  readonly certPem: string;
  readonly keyPem: string;
}

/** Certificates by host name, for SNI; the first is the default. */
export interface TlsContexts {
  readonly material: ReadonlyMap<string, TlsMaterial>;
  readonly defaultHost: string;
  /** `node` keeps to node:tls even where OpenSSL could serve (tests of that path). */
  readonly engine?: "auto" | "node";
  /**
   * Ask the peer for its certificate (server-to-server: XEP-0178), without refusing one we
   * cannot verify: dialback may still authenticate that peer. Its verdict is ours to make.
   */
  readonly requestCert?: boolean;
  /** Told of the session once the handshake is done (to read the peer's certificate). */
  readonly onSecure?: (socket: tls.TLSSocket) => void;
}

/**
 * Contexts for PEM material per host. The OpenSSL contexts are made now, so that a certificate
 * OpenSSL refuses stops the start; node:tls's only when a connection first needs them.
 */
export function secureContexts(
  material: ReadonlyMap<string, TlsMaterial>,
): TlsContexts {
  sslContextsFor(material);
  return { material, defaultHost: [...material.keys()][0] };
}

const sslMade = new WeakMap<ReadonlyMap<string, TlsMaterial>, SslContexts | null>();
const nodeMade = new WeakMap<
  ReadonlyMap<string, TlsMaterial>,
  ReadonlyMap<string, tls.SecureContext>
>();

function sslContextsFor(material: ReadonlyMap<string, TlsMaterial>): SslContexts | undefined {
  let made = sslMade.get(material);
  if (made === undefined) {
    made = sslContexts(material) ?? null;
    sslMade.set(material, made);
  }
  return made ?? undefined;
}

/** The OpenSSL contexts to serve a connection with, or undefined when node:tls must. */
export function opensslContexts(contexts: TlsContexts): SslContexts | undefined {
  if (contexts.engine === "node" || contexts.requestCert === true) return undefined;
  if (!opensslAvailable()) return undefined;
  return sslContextsFor(contexts.material);
}

async function nodeContexts(
  material: ReadonlyMap<string, TlsMaterial>,
): Promise<ReadonlyMap<string, tls.SecureContext>> {
  const { default: nodeTls } = await import("node:tls");
  let made = nodeMade.get(material);
  if (made === undefined) {
    const byHost = new Map<string, tls.SecureContext>();
    for (const [host, m] of material) {
      byHost.set(host, nodeTls.createSecureContext({ cert: m.certPem, key: m.keyPem }));
    }
    nodeMade.set(material, made = byHost);
  }
  return made;
}

/**
 * Starts a node:tls server session on the connection; resolves once the handshake is done.
 */
export async function acceptTls(
  conn: Deno.Conn,
  contexts: TlsContexts,
  opts: { readonly alpn?: readonly string[] } = {},
): Promise<tls.TLSSocket> {
  const { default: nodeTls } = await import("node:tls");
  const byHost = await nodeContexts(contexts.material);
  const socket = new nodeTls.TLSSocket(connDuplex(conn), {
    isServer: true,
    secureContext: byHost.get(contexts.defaultHost),
    SNICallback: (name, cb) => cb(null, byHost.get(name.toLowerCase())),
    ALPNProtocols: opts.alpn ? [...opts.alpn] : undefined,
    // No CA list goes with the request: the peer may send any certificate (and a list of the
    // system's roots would be larger than some clients take in one handshake message).
    ...(contexts.requestCert ? { requestCert: true, rejectUnauthorized: false } : {}),
  });
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    socket.once("error", onError);
    socket.once("secure", () => {
      socket.off("error", onError);
      contexts.onSecure?.(socket);
      resolve(socket);
    });
  });
}
