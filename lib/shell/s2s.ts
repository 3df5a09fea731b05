/**
 * Server-to-server federation (RFC 6120): the incoming and outgoing kinds of the connection
 * driver, and the links to remote domains. What is shell here: finding the remote server
 * (`[s2s] hosts`, then DNS SRV, then the domain on 5269), connecting, the queue of stanzas
 * waiting for a link to be authenticated (capped, bounced per RFC 6120 §10.4.3 when the link
 * fails or times out), retrying with backoff, closing idle links, and carrying dialback key
 * checks from an incoming stream to an outgoing one and back. The reducers are lib/s2s/.
 *
 * Certificates (XEP-0178): incoming TLS asks the peer for its certificate, outgoing TLS
 * presents ours; the shell reports each peer's certificate (trusted or not, and its names) to
 * the reducer, which decides what it proves. XEP-0368: the direct TLS listener, and targets
 * reached with TLS from the first byte (`_xmpps-server._tcp`, `tls://` in `[s2s] hosts`).
 *
 * XEP-0288: an incoming stream whose peer asked for bidirectionality is, for each pair it
 * authenticated, the way our stanzas from that local domain to that remote domain go while it
 * lives (`bidi`), before any link of ours; an outgoing link that negotiated it routes what the
 * remote sends back over it. Key checks always use links of our own (XEP-0288 §2.2: never the
 * connection the claim came on).
 * @module
 */
import type { Logger } from "../log.ts";
import type { Element } from "../xml/element.ts";
import { errorReply, type StanzaErrorCondition } from "../xmpp/errors.ts";
import { parseJid } from "../xmpp/jid.ts";
import { NS_SERVER } from "../xmpp/namespaces.ts";
import {
  newS2sIn,
  reduceS2sIn,
  type S2sInCtx,
  type S2sInEvent,
  type S2sInOutput,
  type S2sInSession,
} from "../s2s/inbound.ts";
import {
  newS2sOut,
  reduceS2sOut,
  type S2sOutCtx,
  type S2sOutEvent,
  type S2sOutOutput,
  type S2sOutSession,
  type VerifyRequest,
} from "../s2s/outbound.ts";
import {
  arm,
  createDriver,
  disarm,
  dispatch,
  type Driver,
  type DriverKind,
  type DriverTicket,
  finish,
  restartStream,
} from "../transport/driver.ts";
import {
  type ClientTlsOptions,
  type ClientTransport,
  clientTransport,
  connectTcp,
  type PeerCertificate,
  secureClient,
} from "../transport/tcp_client.ts";
import { remoteIp, tcpTransport } from "../transport/tcp.ts";
import type { TlsContexts } from "../transport/tls.ts";
import { certNamesOf, peerCertOf, type TrustStore } from "../transport/peer_cert.ts";
import type { PeerCert } from "../xmpp/cert_names.ts";
import type net from "node:net";

/** Where a remote domain's server listens. */
export interface S2sTarget {
  readonly host: string;
  readonly port: number;
  /** TLS from the first byte (XEP-0368), not STARTTLS. */
  readonly directTls?: boolean;
}

/** ALPN protocol of server-to-server direct TLS (XEP-0368). */
export const ALPN_XMPP_SERVER = "xmpp-server";

/** What federation needs from the server. */
export interface S2sDeps {
  /** True for a domain this server answers for (hosts and services). */
  readonly isLocal: (domain: string) => boolean;
  /** Routes a stanza that came from a remote server (client namespace, `from` checked). */
  /**
   * Routes a stanza that came from a remote server; a promise while its effects are still on
   * their way (in accounts' queues), which holds the stream's reading past `inflightMax`.
   */
  readonly route: (stanza: Element) => Promise<void> | void;
  /**
   * Routed stanzas of one incoming stream still on their way before its reading waits: a
   * remote server cannot fill the accounts' queues faster than they drain.
   */
  readonly inflightMax?: number;
  /** Our dialback secret. */
  readonly secret: string;
  /** Certificates for incoming STARTTLS. */
  readonly tls?: TlsContexts;
  /** The CAs peers' certificates may chain to (system roots and `ca_file`). */
  readonly trust?: TrustStore;
  /** `ca_file`'s certificates (PEM), trusted by outgoing TLS besides the system's. */
  readonly extraCas?: readonly string[];
  /** Our certificate and key (PEM) for a local domain, presented to remote servers. */
  readonly certFor?: (
    local: string,
  ) => { readonly certPem: string; readonly keyPem: string } | undefined;
  readonly requireEncryption: boolean;
  readonly secureAuth: boolean;
  /** Fixed addresses of remote domains (`[s2s] hosts`), before DNS. */
  readonly staticHosts: ReadonlyMap<string, S2sTarget>;
  /** Finds a domain's servers in DNS (SRV); absent: only the static map and port 5269. */
  readonly resolve?: (domain: string) => Promise<readonly S2sTarget[]>;
  readonly newId: () => string;
  readonly maxStanzaBytes: number;
  /**
   * The stanza limit of an incoming stream until a domain is authenticated on it
   * (`stanza_size_unauthed`, as for clients); absent: `maxStanzaBytes`.
   */
  readonly maxStanzaBytesUnauthed?: number;
  readonly maxDepth: number;
  readonly writeBacklog: number;
  /** Stanzas waiting for one remote domain's link to be ready. */
  readonly queueMax: number;
  readonly connectTimeoutMs: number;
  /** From connecting to authenticated (either way). */
  readonly authTimeoutMs: number;
  /** A link with no traffic for this long is closed. */
  readonly idleTimeoutMs: number;
  /** Domains one incoming stream may authenticate. */
  readonly maxDomains: number;
  /** XEP-0288 bidirectional streams, offered and asked for (default true). */
  readonly bidi?: boolean;
  /** Counts an incoming connection in the limits, or refuses it. */
  readonly admit: (ip: string) => { ok: true; ticket: DriverTicket } | {
    ok: false;
    reason: string;
  };
  readonly log: Logger;
}

/** Federation as the server runs it. */
export interface S2s {
  /**
   * Serves an accepted connection on the server-to-server port, or with `directTls` on the
   * direct TLS port (XEP-0368).
   */
  serveInbound(conn: Deno.Conn, opts?: { readonly directTls?: boolean }): Promise<void>;
  /** Sends a stanza (client namespace) to the remote domain its `to` names. */
  send(stanza: Element, remote: string): void;
  /** Closes every stream with `system-shutdown`. */
  shutdown(): void;
  /** Links to remote domains, for tests and stats. */
  links(): number;
}

interface Inbound extends Driver<S2sInSession, S2sInEvent, S2sInOutput> {
  readonly fed: Federation;
  readonly ctx: S2sInCtx;
  /** Routed stanzas whose effects are still on their way. */
  inflight: number;
  /** The peer's certificate, once the TLS handshake saw it. */
  readonly tlsPeer: { cert?: PeerCert };
  /** When a stanza of ours last went over it (XEP-0288): use, for the idle sweep. */
  lastUsed: number;
}

interface Outbound extends Driver<S2sOutSession, S2sOutEvent, S2sOutOutput> {
  readonly link: Link;
  readonly fed: Federation;
  /** Routed stanzas (from a bidirectional remote) whose effects are still on their way. */
  inflight: number;
}

/** One local domain's link to one remote domain. */
interface Link {
  readonly key: string;
  readonly local: string;
  readonly remote: string;
  /** Stanzas waiting for `ready`. */
  queue: Element[];
  ready: boolean;
  driver: Outbound | undefined;
  /** Key checks sent on this link, by `local id`, with what to tell their incoming stream. */
  readonly waiters: Map<string, (valid: boolean) => void>;
  /** Key checks asked for before the socket was up, sent once it is. */
  early: VerifyRequest[];
  /** Opened to check a peer's key, and no stanza of ours has used it yet. */
  verifyOnly: boolean;
  lastUsed: number;
}

interface Federation {
  readonly deps: S2sDeps;
  readonly links: Map<string, Link>;
  readonly inbound: Set<Inbound>;
  /** XEP-0288: incoming streams our stanzas may use, by `local remote`. */
  readonly bidi: Map<string, Inbound>;
  /** Backoff per remote domain after a failed link: when the next try may start, and the delay. */
  readonly backoff: Map<string, { until: number; ms: number }>;
  readonly outCtx: S2sOutCtx;
}

const BACKOFF_MIN_MS = 1000;
const DEFAULT_INFLIGHT_MAX = 256;
// A peer can make us open links (its dialback claims name domains) and wait on checks: bounded.
const MAX_LINKS = 1000;
// Links opened only to check a key a peer gave: a peer's claims cannot take the budget of links
// our users' stanzas need.
const MAX_VERIFY_LINKS = 100;
/** Remote domains remembered as failing (their backoff). */
const MAX_BACKOFFS = 1000;
const MAX_WAITERS_PER_LINK = 64;
const BACKOFF_MAX_MS = 60_000;
const DEFAULT_PORT = 5269;

/** Bounces a stanza that cannot reach its remote domain (RFC 6120 §10.4.3). */
function bounce(fed: Federation, stanza: Element, condition: StanzaErrorCondition): void {
  const type = stanza.attrs.type;
  if (type === "error" || stanza.name === "presence") return;
  if (stanza.name === "iq" && type === "result") return;
  fed.deps.route(errorReply(stanza, condition));
}

/** Routes a stanza from a remote server, counting it while its effects are on their way. */
function routeCounted(fed: Federation, d: { inflight: number }, stanza: Element): void {
  const routed = fed.deps.route(stanza);
  if (routed !== undefined) {
    d.inflight++;
    routed.finally(() => d.inflight--);
  }
}

/** The stanza limit of an incoming stream as it is now: higher once a domain is authenticated. */
function inLimit(d: Inbound): number {
  const { deps } = d.fed;
  return d.session.authed.length > 0
    ? deps.maxStanzaBytes
    : deps.maxStanzaBytesUnauthed ?? deps.maxStanzaBytes;
}

const S2S_IN: DriverKind<S2sInSession, S2sInEvent, S2sInOutput, Inbound> = {
  reduce: (s, ev, d) => reduceS2sIn(s, ev, d.ctx),
  pressured: (d) => d.inflight > (d.fed.deps.inflightMax ?? DEFAULT_INFLIGHT_MAX),
  execute(d, out) {
    const { fed } = d;
    switch (out.kind) {
      case "starttls": {
        const t = d.transport;
        restartStream(d, inLimit(d));
        t.starttls!().then(() => {
          void t.read();
          dispatch(d, tlsDone(d.tlsPeer.cert));
        }, () => dispatch(d, { kind: "disconnected" }));
        return;
      }
      case "reset-stream":
        restartStream(d, inLimit(d));
        return;
      case "route":
        routeCounted(fed, d, out.stanza);
        return;
      case "bidi":
        // Newest wins: a peer that reconnected uses its new stream.
        fed.bidi.set(`${out.local} ${out.remote}`, d);
        fed.deps.log.info("{ip}: stanzas from {local} to {remote} go back over this stream", {
          ip: d.session.ip,
          local: out.local,
          remote: out.remote,
        });
        return;
      case "unsent": {
        // The stream cannot carry it after all: it no longer stands for any pair.
        for (const [key, via] of fed.bidi) if (via === d) fed.bidi.delete(key);
        const to = out.stanza.attrs.to === undefined ? undefined : parseJid(out.stanza.attrs.to);
        if (to !== undefined) sendStanza(fed, out.stanza, to.domain);
        return;
      }
      case "verify":
        verifyFor(fed, out.local, out.remote, out.streamId, out.key, (valid) =>
          dispatch(d, {
            kind: "verified",
            remote: out.remote,
            local: out.local,
            valid,
          }));
        return;
      case "authenticated":
        disarm(d);
        d.parser.setMaxStanzaBytes(inLimit(d));
        fed.deps.log.info("{ip}: {remote} authenticated by {how} for {local}", {
          ip: d.session.ip,
          remote: out.remote,
          local: out.local,
          how: out.via === "sasl-external" ? "certificate (SASL EXTERNAL)" : "dialback",
        });
        return;
    }
  },
  parsed: (ev) => ev.kind === "error" ? { kind: "parse-error", condition: ev.condition } : ev,
  disconnected: () => ({ kind: "disconnected" }),
  dropped(d, why) {
    d.fed.deps.log.warn("{ip}: incoming server stream dropped ({why})", { ip: d.session.ip, why });
  },
  ended(d) {
    d.fed.inbound.delete(d);
    for (const [key, via] of d.fed.bidi) if (via === d) d.fed.bidi.delete(key);
  },
};

const S2S_OUT: DriverKind<S2sOutSession, S2sOutEvent, S2sOutOutput, Outbound> = {
  reduce: (s, ev, d) => reduceS2sOut(s, ev, d.fed.outCtx),
  pressured: (d) => d.inflight > (d.fed.deps.inflightMax ?? DEFAULT_INFLIGHT_MAX),
  execute(d, out) {
    const { link, fed } = d;
    switch (out.kind) {
      case "starttls": {
        const t = d.transport as ClientTransport;
        t.startClientTls(link.remote, clientTls(fed, link.local)).then((peer) => {
          restartStream(d, fed.deps.maxStanzaBytes);
          void t.read();
          dispatch(d, tlsDone(peerCertFrom(peer)));
        }, (err) => {
          fed.deps.log.info("TLS to {remote} failed: {err}", {
            remote: link.remote,
            err: String(err),
          });
          dispatch(d, { kind: "disconnected" });
        });
        return;
      }
      case "reset-stream":
        restartStream(d, fed.deps.maxStanzaBytes);
        return;
      case "ready": {
        disarm(d);
        link.ready = true;
        fed.backoff.delete(link.remote);
        fed.deps.log.info("Linked {local} to {remote} ({how}{bidi})", {
          local: link.local,
          remote: link.remote,
          how: out.via === "sasl-external" ? "certificate, SASL EXTERNAL" : "dialback",
          bidi: out.bidi === true ? ", bidirectional" : "",
        });
        const waiting = link.queue;
        link.queue = [];
        for (const stanza of waiting) dispatch(d, { kind: "outbound", stanza });
        return;
      }
      case "failed":
        fail(fed, link, out.condition, out.why);
        return;
      case "route":
        routeCounted(fed, d, out.stanza);
        return;
      case "verified": {
        const key = `${out.local} ${out.id}`;
        const waiter = link.waiters.get(key);
        link.waiters.delete(key);
        waiter?.(out.valid);
        return;
      }
    }
  },
  parsed: (ev) => ev.kind === "error" ? { kind: "parse-error", condition: ev.condition } : ev,
  disconnected: () => ({ kind: "disconnected" }),
  dropped(d, why) {
    d.fed.deps.log.warn("Link to {remote} dropped ({why})", { remote: d.link.remote, why });
  },
  ended(d) {
    const { link, fed } = d;
    if (fed.links.get(link.key) === link) fed.links.delete(link.key);
    for (const w of link.waiters.values()) w(false);
    link.waiters.clear();
    for (const stanza of link.queue) bounce(fed, stanza, "remote-server-not-found");
    link.queue = [];
  },
};

function tlsDone(peer: PeerCert | undefined): S2sInEvent & S2sOutEvent {
  return peer === undefined ? { kind: "tls-done" } : { kind: "tls-done", peer };
}

/** What the client side of TLS saw, as facts for the reducer. */
function peerCertFrom(p: PeerCertificate): PeerCert | undefined {
  return p.der === undefined ? undefined : { trusted: p.authorized, names: certNamesOf(p.der) };
}

/** How we are a TLS client for `local`: its certificate, and the extra CAs. */
function clientTls(fed: Federation, local: string, alpn?: readonly string[]): ClientTlsOptions {
  const mine = fed.deps.certFor?.(local);
  return {
    ...(fed.deps.extraCas === undefined ? {} : { ca: fed.deps.extraCas }),
    ...(mine === undefined ? {} : { cert: mine.certPem, key: mine.keyPem }),
    ...(alpn === undefined ? {} : { alpn }),
  };
}

/** The link failed before it was ready: what waits bounces, and the domain backs off. */
function fail(fed: Federation, link: Link, condition: StanzaErrorCondition, why: string): void {
  if (fed.links.get(link.key) === link) fed.links.delete(link.key);
  const prev = fed.backoff.get(link.remote)?.ms ?? 0;
  const ms = Math.min(BACKOFF_MAX_MS, Math.max(BACKOFF_MIN_MS, prev * 2));
  // A peer's dialback claims can name any domain, each failing: the oldest entries go first.
  fed.backoff.delete(link.remote);
  while (fed.backoff.size >= MAX_BACKOFFS) fed.backoff.delete(fed.backoff.keys().next().value!);
  fed.backoff.set(link.remote, { until: Date.now() + ms, ms });
  fed.deps.log.info("No link from {local} to {remote}: {why}", {
    local: link.local,
    remote: link.remote,
    why,
  });
  const waiting = link.queue;
  link.queue = [];
  for (const stanza of waiting) bounce(fed, stanza, condition);
  for (const w of link.waiters.values()) w(false);
  link.waiters.clear();
}

async function targetsOf(fed: Federation, remote: string): Promise<readonly S2sTarget[]> {
  const fixed = fed.deps.staticHosts.get(remote);
  if (fixed !== undefined) return [fixed];
  const found = await fed.deps.resolve?.(remote).catch(() => []) ?? [];
  return found.length > 0 ? found : [{ host: remote, port: DEFAULT_PORT }];
}

/** Connects a new link: each target in turn, then the outgoing stream. */
async function connect(fed: Federation, link: Link): Promise<void> {
  const { deps } = fed;
  let socket: net.Socket | undefined;
  // With direct TLS (XEP-0368) the handshake is part of reaching a target: one that fails it
  // is passed over like one that does not answer.
  let direct: PeerCertificate | undefined;
  for (const target of await targetsOf(fed, link.remote)) {
    try {
      socket = await connectTcp(target.host, target.port, deps.connectTimeoutMs);
      if (target.directTls === true) {
        const plain: net.Socket = socket;
        socket = undefined;
        const timer = setTimeout(() => plain.destroy(), deps.connectTimeoutMs);
        try {
          [socket, direct] = await secureClient(
            plain,
            link.remote,
            clientTls(fed, link.local, [ALPN_XMPP_SERVER]),
          );
        } catch (err) {
          plain.destroy();
          throw err;
        } finally {
          clearTimeout(timer);
        }
      }
      break;
    } catch (err) {
      deps.log.info("Connecting to {remote} at {host}:{port} failed: {err}", {
        remote: link.remote,
        host: target.host,
        port: target.port,
        err: String(err),
      });
    }
  }
  if (socket === undefined) {
    fail(fed, link, "remote-server-not-found", "no server could be reached");
    return;
  }
  const connected = socket;
  const d = createDriver(
    S2S_OUT,
    newS2sOut(link.local, link.remote),
    {
      writeBacklog: deps.writeBacklog,
      maxStanzaBytes: deps.maxStanzaBytes,
      maxDepth: deps.maxDepth,
    },
    { link, fed, inflight: 0 },
    (d) => clientTransport(d, connected, NS_SERVER),
  );
  link.driver = d;
  arm(d, deps.authTimeoutMs, { kind: "timeout" });
  if (direct === undefined) dispatch(d, { kind: "connected" });
  else {
    const peer = peerCertFrom(direct);
    dispatch(d, { kind: "connected", directTls: true, ...(peer === undefined ? {} : { peer }) });
  }
  for (const request of link.early) dispatch(d, { kind: "verify", request });
  link.early = [];
  void d.transport.read();
}

/** Links that only check keys (`verifyOnly`), or the others. */
function countLinks(fed: Federation, verifyOnly: boolean): number {
  let n = 0;
  for (const l of fed.links.values()) if (l.verifyOnly === verifyOnly) n++;
  return n;
}

/** The link from `local` to `remote`, made (and connecting) when there is none. */
function linkFor(fed: Federation, local: string, remote: string): Link {
  const key = `${local} ${remote}`;
  let link = fed.links.get(key);
  if (link !== undefined) return link;
  link = {
    key,
    local,
    remote,
    queue: [],
    ready: false,
    driver: undefined,
    waiters: new Map(),
    early: [],
    lastUsed: Date.now(),
    verifyOnly: false,
  };
  fed.links.set(key, link);
  const made = link;
  connect(fed, made).catch((err) => fail(fed, made, "remote-server-not-found", String(err)));
  return link;
}

/**
 * Asks `remote`'s authoritative server whether `key` is the one it made for stream `id` to
 * `local`, over our link to it; `answer` gets the verdict (false when the link fails).
 */
function verifyFor(
  fed: Federation,
  local: string,
  remote: string,
  id: string,
  key: string,
  answer: (valid: boolean) => void,
): void {
  const existing = fed.links.get(`${local} ${remote}`);
  if (existing === undefined && countLinks(fed, true) >= MAX_VERIFY_LINKS) {
    answer(false);
    return;
  }
  const link = existing ?? linkFor(fed, local, remote);
  if (existing === undefined) link.verifyOnly = true;
  const wkey = `${local} ${id}`;
  if (link.waiters.has(wkey) || link.waiters.size >= MAX_WAITERS_PER_LINK) {
    answer(false);
    return;
  }
  link.waiters.set(wkey, answer);
  const request = { local, id, key };
  if (link.driver !== undefined) dispatch(link.driver, { kind: "verify", request });
  else link.early.push(request);
}

/**
 * Sends a stanza of ours (client namespace) to `remote`: over an incoming stream that offered
 * to carry it (XEP-0288), else over our link, made when there is none.
 */
function sendStanza(fed: Federation, stanza: Element, remote: string): void {
  const { deps } = fed;
  const from = stanza.attrs.from === undefined ? undefined : parseJid(stanza.attrs.from);
  // Only our own domains' stanzas leave: a server never relays for another.
  if (from === undefined || !deps.isLocal(from.domain)) return;
  const local = from.domain;
  const via = fed.bidi.get(`${local} ${remote}`);
  if (via !== undefined && via.done) fed.bidi.delete(`${local} ${remote}`);
  else if (via !== undefined) {
    via.lastUsed = Date.now();
    dispatch(via, { kind: "outbound", stanza });
    return;
  }
  const existing = fed.links.get(`${local} ${remote}`);
  if (existing === undefined) {
    const backoff = fed.backoff.get(remote);
    if (countLinks(fed, false) >= MAX_LINKS) {
      bounce(fed, stanza, "resource-constraint");
      return;
    }
    if (backoff !== undefined && Date.now() < backoff.until) {
      bounce(fed, stanza, "remote-server-not-found");
      return;
    }
  }
  const link = existing ?? linkFor(fed, local, remote);
  link.verifyOnly = false;
  link.lastUsed = Date.now();
  if (link.ready && link.driver !== undefined) {
    dispatch(link.driver, { kind: "outbound", stanza });
    return;
  }
  if (link.queue.length >= deps.queueMax) {
    bounce(fed, stanza, "resource-constraint");
    return;
  }
  link.queue.push(stanza);
}

/** Starts federation. */
export function createS2s(deps: S2sDeps): S2s {
  const fed: Federation = {
    deps,
    links: new Map(),
    inbound: new Set(),
    bidi: new Map(),
    backoff: new Map(),
    outCtx: {
      secret: deps.secret,
      requireEncryption: deps.requireEncryption,
      maxVerifies: deps.maxDomains,
      secureAuth: deps.secureAuth,
      external: deps.certFor !== undefined,
      bidi: deps.bidi ?? true,
    },
  };
  const inCtx: S2sInCtx = {
    isLocal: deps.isLocal,
    tlsAvailable: deps.tls !== undefined,
    requireEncryption: deps.requireEncryption,
    secureAuth: deps.secureAuth,
    secret: deps.secret,
    newId: deps.newId,
    maxDomains: deps.maxDomains,
    bidi: deps.bidi ?? true,
  };
  // Idle links and streams are closed; a link's use counts as traffic.
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const link of fed.links.values()) {
      const d = link.driver;
      if (d === undefined || !link.ready) continue;
      if (now - Math.max(link.lastUsed, d.lastActivity) > deps.idleTimeoutMs) {
        dispatch(d, { kind: "idle" });
      }
    }
    for (const d of fed.inbound) {
      if (now - Math.max(d.lastActivity, d.lastUsed) > deps.idleTimeoutMs) {
        dispatch(d, { kind: "idle" });
      }
    }
  }, Math.min(30_000, Math.max(1000, deps.idleTimeoutMs / 4)));
  Deno.unrefTimer(sweep);

  return {
    serveInbound(conn, opts = {}) {
      const ip = remoteIp(conn);
      const admitted = deps.admit(ip);
      if (!admitted.ok) {
        deps.log.warn("{ip}: server connection refused, {reason}", {
          ip,
          reason: admitted.reason,
        });
        try {
          conn.close();
        } catch {
          // already closed
        }
        return Promise.resolve();
      }
      const tlsPeer: { cert?: PeerCert } = {};
      // Per connection: the handshake asks for the peer's certificate and tells us what it was.
      const tls: TlsContexts | undefined = deps.tls === undefined ? undefined : {
        ...deps.tls,
        requestCert: true,
        onSecure: (socket) => {
          tlsPeer.cert = deps.trust === undefined ? undefined : peerCertOf(socket, deps.trust);
        },
      };
      const d = createDriver(
        S2S_IN,
        newS2sIn(ip),
        {
          writeBacklog: deps.writeBacklog,
          maxStanzaBytes: deps.maxStanzaBytesUnauthed ?? deps.maxStanzaBytes,
          maxDepth: deps.maxDepth,
          ticket: admitted.ticket,
        },
        { fed, ctx: inCtx, tlsPeer, inflight: 0, lastUsed: 0 },
        (d) => tcpTransport(d, conn, { ns: NS_SERVER, tls }),
      );
      fed.inbound.add(d);
      arm(d, deps.authTimeoutMs, { kind: "auth-timeout" });
      const started = opts.directTls !== true
        ? Promise.resolve()
        : tls === undefined
        ? Promise.resolve(finish(d))
        : d.transport.starttls!([ALPN_XMPP_SERVER]).then(
          () => dispatch(d, tlsDone(tlsPeer.cert)),
          () => finish(d),
        );
      void started.then(() => {
        if (!d.done) void d.transport.read();
      });
      return d.finished.finally(() => admitted.ticket.release());
    },
    send: (stanza, remote) => sendStanza(fed, stanza, remote),
    shutdown() {
      clearInterval(sweep);
      // Incoming streams closing hand their stanzas back (`unsent`): none may go anywhere now.
      fed.bidi.clear();
      for (const d of fed.inbound) dispatch(d, { kind: "shutdown" });
      for (const link of fed.links.values()) {
        if (link.driver !== undefined) dispatch(link.driver, { kind: "shutdown" });
        else fail(fed, link, "remote-server-not-found", "shutting down");
      }
      for (const d of fed.inbound) finish(d);
    },
    links: () => fed.links.size,
  };
}
