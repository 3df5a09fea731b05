/**
 * The TCP transport of connections we open (server-to-server): a `node:net` socket, upgraded
 * with `node:tls` as a client after STARTTLS. `node:tls` rather than `Deno.startTls` because a
 * peer's certificate must be looked at, not only trusted or refused: dialback (XEP-0220) works
 * with certificates no CA signed, and XEP-0178 needs to know whether one did.
 * @module
 */
import net from "node:net";
import tls from "node:tls";
import { type Driver, hangUp, pressured, receive, type Transport } from "./driver.ts";
import { whenRelieved } from "./flow.ts";
import { tcpFrame } from "./tcp_framing.ts";

/** What TLS says of the peer's certificate. */
export interface PeerCertificate {
  /** A CA we trust signed it (the name is checked by the caller, with XMPP's rules). */
  readonly authorized: boolean;
  /** Why not, when it is not. */
  readonly error?: string;
  /** The peer's certificate in DER, when it sent one. */
  readonly der?: Uint8Array;
}

/** How to be a TLS client. */
export interface ClientTlsOptions {
  /** Extra trusted CAs (PEM), besides the system's roots. */
  readonly ca?: readonly string[];
  /** Our certificate (chain) and key (PEM), presented when the server asks (XEP-0178). */
  readonly cert?: string;
  readonly key?: string;
  /** ALPN protocols to offer (XEP-0368: `xmpp-server`). */
  readonly alpn?: readonly string[];
}

/** A client transport: the driver's, and the client side of STARTTLS. */
export interface ClientTransport extends Transport {
  /** Upgrades to TLS as a client for `servername` (SNI, and the name the caller checks). */
  startClientTls(servername: string, opts?: ClientTlsOptions): Promise<PeerCertificate>;
}

/** Opens a TCP connection; rejects on error or after `timeoutMs`. */
export function connectTcp(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`connecting to ${host}:${port} timed out`));
    }, timeoutMs);
    socket.once("connect", () => {
      clearTimeout(timer);
      socket.off("error", onError);
      resolve(socket);
    });
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(err);
    };
    socket.once("error", onError);
  });
}

/**
 * TLS as a client over a connected `socket` (after STARTTLS, or from the first byte for
 * XEP-0368): the secured socket and what it says of the server's certificate.
 */
export function secureClient(
  socket: net.Socket,
  servername: string,
  opts: ClientTlsOptions = {},
): Promise<[tls.TLSSocket, PeerCertificate]> {
  return new Promise((resolve, reject) => {
    const secured = tls.connect({
      socket,
      servername,
      // Looked at, not enforced: dialback authenticates a peer whose certificate is not.
      rejectUnauthorized: false,
      // The chain alone decides `authorized`: XMPP names (SRV-ID, XmppAddr) are not HTTPS
      // names, so the caller matches them (lib/xmpp/cert_names.ts).
      checkServerIdentity: () => undefined,
      ca: [...tls.rootCertificates, ...(opts.ca ?? [])],
      ...(opts.cert === undefined || opts.key === undefined
        ? {}
        : { cert: opts.cert, key: opts.key }),
      ...(opts.alpn === undefined ? {} : { ALPNProtocols: [...opts.alpn] }),
    });
    const onError = (err: Error) => {
      secured.destroy();
      reject(err);
    };
    secured.once("error", onError);
    // A socket closed mid-handshake (a timeout destroyed it) may close without an error.
    const onClose = () => reject(new Error("the connection closed during the TLS handshake"));
    secured.once("close", onClose);
    secured.once("secureConnect", () => {
      secured.off("error", onError);
      secured.off("close", onClose);
      const error = secured.authorizationError;
      const raw = secured.getPeerCertificate()?.raw;
      resolve([secured, {
        authorized: secured.authorized,
        ...(error === null || error === undefined ? {} : { error: String(error) }),
        ...(raw === undefined ? {} : { der: new Uint8Array(raw) }),
      }]);
    });
  });
}

const encoder = new TextEncoder();

/**
 * The transport of `d` over a connected `socket` (plain, or already TLS for XEP-0368), framed
 * as a TCP stream in namespace `ns`.
 */
export function clientTransport<S, E, O>(
  d: Driver<S, E, O>,
  socket: net.Socket,
  ns: string,
): ClientTransport {
  let current: net.Socket = socket;
  let accepted = 0;
  const listen = (s: net.Socket) => {
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
    s.on("error", () => hangUp(d, "error"));
  };
  return {
    backlog: () => current.writableLength,
    taken: () => accepted - current.writableLength,
    send(frame) {
      if (current.destroyed) return;
      const data = encoder.encode(tcpFrame(frame, ns));
      accepted += data.length;
      current.write(data);
    },
    read() {
      listen(current);
      return Promise.resolve();
    },
    startClientTls(servername, opts = {}) {
      // The plain socket's readers go: from here on its bytes are TLS records.
      socket.removeAllListeners("data");
      socket.removeAllListeners("end");
      socket.removeAllListeners("close");
      socket.removeAllListeners("error");
      socket.on("error", () => {});
      return secureClient(socket, servername, opts).then(([secured, peer]) => {
        current = secured;
        accepted = 0;
        return peer;
      });
    },
    close() {
      const s = current;
      if (s.destroyed) return;
      s.end();
      setTimeout(() => s.destroy(), 2000).unref?.();
    },
    abort() {
      current.destroy();
    },
  };
}
