/**
 * The HTTP service (`[http]`): one `Deno.serve` per interface on the HTTP port, with
 *
 * - `/xmpp-websocket`: XMPP over WebSocket (RFC 7395). The subprotocol `xmpp` is required, the
 *   Origin is checked against `cors_origins`, and an admitted upgrade is handed to the shell,
 *   which serves it with the client kind of the driver (./websocket.ts frames it);
 * - `/http-bind`: BOSH (XEP-0124/0206), answered by ./bosh.ts when the shell enables it;
 * - `/.well-known/host-meta` and `/.well-known/host-meta.json` (XEP-0156): where the WebSocket
 *   endpoint is, as the public URL when a proxy stands in front (`public_url`).
 *
 * Who the peer is comes from the socket, or from `X-Forwarded-For` and `X-Forwarded-Proto` when
 * the socket's peer is one of `trusted_proxies`: only then can a WebSocket count as encrypted
 * (the proxy terminated TLS and says so). Plain `ws://` from anyone else is unencrypted.
 * @module
 */
import { isIP } from "node:net";
import { ipInRanges } from "./cidr.ts";

/** Who is at the other end of a request. */
export interface HttpPeer {
  /** The client's address: the socket's, or the one a trusted proxy forwarded for. */
  readonly ip: string;
  /** TLS protected the request on its way to us (a trusted proxy said `https`). */
  readonly secure: boolean;
}

/** The shell's answer to a WebSocket that passed the HTTP checks. */
export type WebSocketAdmission =
  | {
    readonly ok: true;
    /** Serves the upgraded socket. */
    serve(socket: WebSocket): void;
    /** The upgrade failed after all: give back the place in the connection limits. */
    release(): void;
  }
  | { readonly ok: false; readonly reason: string };

/** How the HTTP service is set up. */
export interface HttpOptions {
  /** The port; 0 picks a free one (shared by every interface). */
  readonly port: number;
  /**
   * Serve HTTPS with this certificate (chain) and key, both PEM. `Deno.serve` takes one pair
   * and has no SNI callback, so every host name gets this one certificate.
   */
  readonly tls?: { readonly cert: string; readonly key: string };
  /** Addresses to listen on; `"*"` is every address. */
  readonly interfaces: readonly string[];
  /** Browser origins allowed to open a WebSocket besides the page's own; `"*"`: any. */
  readonly corsOrigins: readonly string[];
  /** Addresses of reverse proxies whose `X-Forwarded-*` headers are believed. */
  readonly trustedProxies: readonly string[];
  /** The public base URL (`https://xmpp.example.org/`), when a proxy stands in front. */
  readonly publicUrl?: string;
  /** The host discovery names when the request names none. */
  readonly defaultHost: string;
  /** Counts an upgrade in the connection limits, or refuses it. */
  readonly admitWebSocket: (peer: HttpPeer) => WebSocketAdmission;
  /** Answers requests to `/http-bind` (BOSH, ./bosh.ts), when BOSH is on. */
  readonly bosh?: (req: Request, peer: HttpPeer) => Promise<Response>;
  /** Answers requests under `/upload/` (XEP-0363, ./upload_http.ts), when upload is on. */
  readonly upload?: (req: Request) => Promise<Response>;
  /** The built-in web client (./web_client.ts), when it is on; undefined: not its path. */
  readonly webClient?: (req: Request) => Promise<Response> | undefined;
  /**
   * A request from a loopback address, not through a proxy, counts as encrypted: it never
   * crossed a network.
   */
  readonly secureLoopback?: boolean;
  /** Called for a refused request, for the log. */
  readonly refused?: (peer: HttpPeer, status: number, why: string) => void;
}

/** A started HTTP service. */
export interface HttpService {
  /** The port actually bound. */
  readonly port: number;
  /** Stops listening; upgraded WebSockets are the shell's to close. */
  shutdown(): Promise<void>;
}

/** The WebSocket endpoint's path. */
export const WEBSOCKET_PATH = "/xmpp-websocket";
/** XEP-0156's link relation for a WebSocket endpoint. */
export const REL_WEBSOCKET = "urn:xmpp:alt-connections:websocket";
/** The BOSH endpoint's path. */
export const BOSH_PATH = "/http-bind";
/** XEP-0156's link relation for a BOSH endpoint. */
export const REL_XBOSH = "urn:xmpp:alt-connections:xbosh";

/** The BOSH URL beside a WebSocket URL: same authority, `http(s)` and `/http-bind`. */
export function boshUrlOf(wsUrl: string): string {
  return wsUrl.replace(/^ws/, "http").slice(0, -WEBSOCKET_PATH.length) + BOSH_PATH;
}
const NS_XRD = "http://docs.oasis-open.org/ns/xri/xrd-1.0";

/** Without the IPv4-mapped prefix a dual-stack socket reports (`::ffff:127.0.0.1`). */
function plainIp(ip: string): string {
  return ip.startsWith("::ffff:") && isIP(ip.slice(7)) === 4 ? ip.slice(7) : ip;
}

/**
 * The peer of a request from the socket address `remote`: a trusted proxy's forwarded address
 * (the rightmost one that is not itself a trusted proxy) and scheme, else the socket's
 * (`socketSecure`: the request came over our own HTTPS).
 */
export function peerOf(
  headers: Headers,
  remote: string,
  trusted: readonly string[],
  socketSecure = false,
): HttpPeer {
  const socketIp = plainIp(remote);
  // Entries may be CIDR ranges (`10.0.0.0/8`, `fd00::/8`) as well as addresses (./cidr.ts).
  if (!ipInRanges(socketIp, trusted)) return { ip: socketIp, secure: socketSecure };
  let ip = socketIp;
  const hops = (headers.get("x-forwarded-for") ?? "").split(",").map((h) => h.trim());
  for (let i = hops.length - 1; i >= 0; i--) {
    const hop = plainIp(hops[i]);
    if (isIP(hop) === 0) break;
    ip = hop;
    if (!ipInRanges(hop, trusted)) break;
  }
  const proto = (headers.get("x-forwarded-proto") ?? "").split(",").at(-1)!.trim().toLowerCase();
  // A proxy that came over our HTTPS without naming the client's scheme: our link is all we know.
  if (proto === "") return { ip, secure: socketSecure };
  return { ip, secure: proto === "https" };
}

// Headers by which a proxy speaks for someone else: such a request did cross a network.
const FORWARDING_HEADERS = ["forwarded", "x-forwarded-for", "x-forwarded-proto", "x-real-ip"];

/**
 * `peer`, counted as encrypted when `secureLoopback` is on and the socket's peer is a loopback
 * address that is no trusted proxy and sent no forwarding header.
 */
export function loopbackSecured(
  peer: HttpPeer,
  headers: Headers,
  remote: string,
  opts: Pick<HttpOptions, "secureLoopback" | "trustedProxies">,
): HttpPeer {
  if (peer.secure || opts.secureLoopback !== true) return peer;
  const ip = plainIp(remote);
  const loopback = ip === "::1" || (isIP(ip) === 4 && ip.startsWith("127."));
  if (!loopback || peer.ip !== ip || ipInRanges(ip, opts.trustedProxies)) return peer;
  if (FORWARDING_HEADERS.some((h) => headers.has(h))) return peer;
  return { ip, secure: true };
}

function normalOrigin(origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, "");
}

/**
 * Whether a browser page from `origin` may open a WebSocket: no Origin (not a browser), the
 * page's own origin (same host as the request), or one of `allowed` (`"*"`: any). Without this
 * any web page a user visits could open an XMPP session from their browser.
 */
export function originAllowed(
  origin: string | null,
  host: string | null,
  allowed: readonly string[],
): boolean {
  if (origin === null) return true;
  if (allowed.includes("*")) return true;
  const o = normalOrigin(origin);
  if (allowed.some((a) => normalOrigin(a) === o)) return true;
  try {
    return host !== null && new URL(o).host === host.trim().toLowerCase();
  } catch {
    return false; // "null" (a sandboxed page) or garbage
  }
}

// A Host header worth echoing into a URL: a name or address, and a port.
const HOST_HEADER = /^(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

/** The WebSocket URL discovery lists for a request. */
export function webSocketUrl(
  headers: Headers,
  peer: HttpPeer,
  opts: Pick<HttpOptions, "publicUrl" | "defaultHost">,
  port: number,
): string {
  if (opts.publicUrl !== undefined) {
    const base = opts.publicUrl.endsWith("/") ? opts.publicUrl : opts.publicUrl + "/";
    const url = new URL(WEBSOCKET_PATH.slice(1), base);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }
  const host = headers.get("host");
  const authority = host !== null && HOST_HEADER.test(host) ? host : `${opts.defaultHost}:${port}`;
  return `${peer.secure ? "wss" : "ws"}://${authority}${WEBSOCKET_PATH}`;
}

function escapeXml(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/'/g, "&apos;")
    .replace(/"/g, "&quot;");
}

/** The XRD host-meta document (RFC 6415) listing `wsUrl` and `boshUrl` (XEP-0156 §3). */
export function hostMetaXrd(wsUrl: string, boshUrl?: string): string {
  return `<?xml version='1.0' encoding='utf-8'?>\n<XRD xmlns='${NS_XRD}'>\n` +
    `  <Link rel='${REL_WEBSOCKET}' href='${escapeXml(wsUrl)}'/>\n` +
    (boshUrl === undefined ? "" : `  <Link rel='${REL_XBOSH}' href='${escapeXml(boshUrl)}'/>\n`) +
    `</XRD>\n`;
}

/** The JSON (JRD) host-meta document listing `wsUrl` and `boshUrl`. */
export function hostMetaJson(wsUrl: string, boshUrl?: string): string {
  const links = [{ rel: REL_WEBSOCKET, href: wsUrl }];
  if (boshUrl !== undefined) links.push({ rel: REL_XBOSH, href: boshUrl });
  return JSON.stringify({ links });
}

function text(status: number, body: string, headers: Record<string, string> = {}): Response {
  return new Response(body + "\n", {
    status,
    headers: { "content-type": "text/plain; charset=utf-8", ...headers },
  });
}

// Discovery is public: any page may read it (XEP-0156 §3.3 asks for CORS on host-meta).
const DISCOVERY_HEADERS = {
  "access-control-allow-origin": "*",
  "access-control-allow-methods": "GET, HEAD, OPTIONS",
  "x-content-type-options": "nosniff",
};

function discovery(req: Request, body: string, type: string): Response {
  if (req.method === "OPTIONS") {
    return new Response(null, { status: 204, headers: DISCOVERY_HEADERS });
  }
  if (req.method !== "GET" && req.method !== "HEAD") {
    return text(405, "Method not allowed", { allow: "GET, HEAD, OPTIONS" });
  }
  return new Response(req.method === "HEAD" ? null : body, {
    headers: { ...DISCOVERY_HEADERS, "content-type": type },
  });
}

/**
 * Answers one request; `port` is the bound port (for discovery URLs), `stopping` refuses new
 * work during shutdown.
 */
export function handleHttp(
  req: Request,
  remote: string,
  opts: HttpOptions,
  port: number,
  stopping = false,
): Response | Promise<Response> {
  const url = new URL(req.url);
  // `link`: how the request reached us, which decides the scheme discovery names; `peer`: whether
  // a session over it counts as encrypted, where loopback may count too.
  const link = peerOf(req.headers, remote, opts.trustedProxies, opts.tls !== undefined);
  const peer = loopbackSecured(link, req.headers, remote, opts);
  const refuse = (status: number, why: string, headers: Record<string, string> = {}) => {
    opts.refused?.(peer, status, why);
    return text(status, why, headers);
  };
  if (stopping) return refuse(503, "Shutting down");
  switch (url.pathname) {
    case WEBSOCKET_PATH:
      return upgrade(req, peer, opts, refuse);
    case BOSH_PATH:
      return opts.bosh === undefined ? text(404, "Not found") : opts.bosh(req, peer);
    case "/.well-known/host-meta": {
      const ws = webSocketUrl(req.headers, link, opts, port);
      const bosh = opts.bosh === undefined ? undefined : boshUrlOf(ws);
      return discovery(req, hostMetaXrd(ws, bosh), "application/xrd+xml; charset=utf-8");
    }
    case "/.well-known/host-meta.json": {
      const ws = webSocketUrl(req.headers, link, opts, port);
      const bosh = opts.bosh === undefined ? undefined : boshUrlOf(ws);
      return discovery(req, hostMetaJson(ws, bosh), "application/json");
    }
    default: {
      if (opts.upload !== undefined && url.pathname.startsWith("/upload/")) return opts.upload(req);
      return opts.webClient?.(req) ?? text(404, "Not found");
    }
  }
}

function upgrade(
  req: Request,
  peer: HttpPeer,
  opts: HttpOptions,
  refuse: (status: number, why: string, headers?: Record<string, string>) => Response,
): Response {
  if ((req.headers.get("upgrade") ?? "").toLowerCase() !== "websocket") {
    return refuse(426, "XMPP over WebSocket (RFC 7395) needs a WebSocket upgrade", {
      upgrade: "websocket",
    });
  }
  // RFC 7395 §3.1: without the `xmpp` subprotocol this is not an XMPP connection.
  const offered = (req.headers.get("sec-websocket-protocol") ?? "").split(",").map((p) => p.trim());
  if (!offered.includes("xmpp")) return refuse(400, "The WebSocket subprotocol must be xmpp");
  if (!originAllowed(req.headers.get("origin"), req.headers.get("host"), opts.corsOrigins)) {
    return refuse(403, "This origin may not connect");
  }
  const admitted = opts.admitWebSocket(peer);
  if (!admitted.ok) return refuse(503, admitted.reason);
  let upgraded: { socket: WebSocket; response: Response };
  try {
    upgraded = Deno.upgradeWebSocket(req, { protocol: "xmpp" });
  } catch (err) {
    admitted.release();
    return refuse(
      400,
      `Not a valid WebSocket upgrade: ${err instanceof Error ? err.message : err}`,
    );
  }
  admitted.serve(upgraded.socket);
  return upgraded.response;
}

/**
 * Starts the service. "*" is the IPv6 wildcard, which also takes IPv4 on dual-stack hosts,
 * falling back to the IPv4 wildcard where IPv6 is off. Throws when an address cannot be bound.
 */
export function startHttp(opts: HttpOptions): HttpService {
  const servers: Deno.HttpServer<Deno.NetAddr>[] = [];
  let bound = opts.port;
  let stopping = false;
  const handler = (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) =>
    handleHttp(req, info.remoteAddr.hostname, opts, bound, stopping);
  const serveOn = (hostname: string, port: number) =>
    Deno.serve({ hostname, port, onListen: () => {}, handler, ...opts.tls });
  try {
    for (const [i, address] of opts.interfaces.entries()) {
      // With port 0, every interface shares the port the first one got.
      const port = i === 0 ? opts.port : bound;
      let server: Deno.HttpServer<Deno.NetAddr>;
      if (address !== "*") server = serveOn(address, port);
      else {
        try {
          server = serveOn("::", port);
        } catch (err) {
          if (err instanceof Deno.errors.AddrInUse) throw err;
          server = serveOn("0.0.0.0", port);
        }
      }
      servers.push(server);
      if (i === 0) bound = server.addr.port;
    }
  } catch (err) {
    for (const s of servers) void s.shutdown();
    throw err;
  }
  return {
    port: bound,
    async shutdown() {
      stopping = true;
      await Promise.allSettled(servers.map((s) => s.shutdown()));
    },
  };
}
