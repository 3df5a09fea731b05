/**
 * Server-side TLS on an accepted Deno connection through `node:tls`: the connection is adapted
 * to a Node Duplex and wrapped in a server TLSSocket, which serves both STARTTLS and direct TLS.
 * @module
 */
import { Duplex } from "node:stream";
import tls from "node:tls";

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

/** Certificates by host name, for SNI; the first is the default. */
export interface TlsContexts {
  readonly byHost: ReadonlyMap<string, tls.SecureContext>;
  readonly defaultHost: string;
  /**
   * Ask the peer for its certificate (server-to-server: XEP-0178), without refusing one we
   * cannot verify: dialback may still authenticate that peer. Its verdict is ours to make.
   */
  readonly requestCert?: boolean;
  /** Told of the session once the handshake is done (to read the peer's certificate). */
  readonly onSecure?: (socket: tls.TLSSocket) => void;
}

/** Builds secure contexts from PEM material per host. */
export function secureContexts(
  material: ReadonlyMap<string, { readonly certPem: string; readonly keyPem: string }>,
): TlsContexts {
  const byHost = new Map<string, tls.SecureContext>();
  for (const [host, m] of material) {
    byHost.set(host, tls.createSecureContext({ cert: m.certPem, key: m.keyPem }));
  }
  return { byHost, defaultHost: [...material.keys()][0] };
}

/** Starts a server-side TLS session on the connection; resolves once the handshake is done. */
export function acceptTls(
  conn: Deno.Conn,
  contexts: TlsContexts,
  opts: { readonly alpn?: readonly string[] } = {},
): Promise<tls.TLSSocket> {
  const socket = new tls.TLSSocket(connDuplex(conn), {
    isServer: true,
    secureContext: contexts.byHost.get(contexts.defaultHost),
    SNICallback: (name, cb) => cb(null, contexts.byHost.get(name.toLowerCase())),
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
