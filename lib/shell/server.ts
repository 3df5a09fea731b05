/**
 * Starts the server: TLS material, stores, the registry, the listeners, and the shared context
 * reducers read. Returns a handle to learn the chosen ports and to shut down.
 * @module
 */
import type { Config } from "../config.ts";
import { getLogger } from "../log.ts";
import type { Ctx } from "../core/types.ts";
import type { Roster } from "../core/session.ts";
import { type AccountStore, loadSecretKey, openAccountStore } from "../storage/accounts.ts";
import { parseJid } from "../xmpp/jid.ts";
import { openKeyvalStore, removeTempFiles } from "../storage/file/datamanager.ts";
import { type ListJournal, openListJournal } from "../storage/file/journal.ts";
import { openArchiveStore } from "../storage/file/archive.ts";
import { openOfflineStore } from "../storage/offline.ts";
import { openSmStash } from "../storage/sm_stash.ts";
import type { ArchivePrefs } from "../core/archive.ts";
import type { ArchiveStore, OfflineStore, SmStash } from "../storage/mod.ts";
import {
  ensureSelfSigned,
  loadTlsMaterial,
  type TlsMaterial,
  tlsServerEndPoint,
} from "../transport/certs.ts";
import { type ConnectionDeps, serveBosh, serveConnection, serveWebSocket } from "./connection.ts";
import type { HttpService } from "../transport/http.ts";
import type { UploadService } from "../transport/upload_http.ts";
import { route, type RouteOptions } from "../core/router.ts";
import type { Element } from "../xml/element.ts";
import { createAccountHub, type Reservation } from "./account_hub.ts";
import { ACCOUNT_IQ, DELIVERY, MODULE_STORES } from "../modules/registry.ts";
import { expireArchives } from "./archive_expiry.ts";
import { createRegistry } from "./registry.ts";
import { type CapsCacheSize, createCapsCache } from "./caps_cache.ts";
import { createQuietWatch } from "./quiet.ts";
import { createHeapTrim } from "./heap_trim.ts";
import { createAuthThrottle } from "./throttle.ts";
import { createRegistration } from "./registration.ts";
import { hasTombstone, openTombstoneStore, removeAccount } from "../storage/tombstones.ts";
import { openModuleStore, openUserData } from "../storage/user_data.ts";
import { secureContexts } from "../transport/tls.ts";
import type { S2s, S2sTarget } from "./s2s.ts";
import { answerRemoteIq } from "../c2s/remote_iq.ts";
import { createRemotePresence } from "./remote_presence.ts";
import type { ServiceRunner } from "./service_runner.ts";
import type { MucRunner } from "./muc_runner.ts";
import type { StoredRoom } from "../services/muc/mod.ts";
import type { StoredNode } from "../services/pubsub/service.ts";
import {
  createAdmission,
  createHandshakeThrottle,
  isLoopback,
  refuseConnection,
} from "./admission.ts";
import type { ComponentHandle, ComponentRegistry } from "./component_listener.ts";

/** Stanzas routed after another one once it is archived (a module's `then`: sent carbons). */
interface Then {
  readonly then?: readonly Element[];
  /**
   * Do not wait for in-process services (rooms, pubsub) to finish with what is routed to
   * them. Accounts and services route this way, so that no account ever waits for a service:
   * a room may then wait for an account (to keep its stanzas in order) without a cycle.
   */
  readonly detachServices?: boolean;
}

const settled = (ps: readonly Promise<void>[]): Promise<void> =>
  Promise.allSettled(ps).then(() => {});

/** Name and version reported to peers. */
const SERVER_NAME = "deno-xmpp";
const SERVER_VERSION = "0.1.0";

/** A started server. */
export interface RunningServer {
  /** The STARTTLS client port actually bound (the first interface's). */
  readonly c2sPort: number;
  /** The direct TLS port actually bound, when enabled. */
  readonly directTlsPort?: number;
  /** The external component port (XEP-0114) actually bound, when enabled. */
  readonly componentPort?: number;
  /** The server-to-server port actually bound, when federation is on. */
  readonly s2sPort?: number;
  /** The server-to-server direct TLS port (XEP-0368) actually bound, when enabled. */
  readonly s2sDirectTlsPort?: number;
  /** The HTTP port (WebSocket, discovery) actually bound, when enabled. */
  readonly httpPort?: number;
  /** The HTTPS port (the same, with the first host's certificate) actually bound, when enabled. */
  readonly httpsPort?: number;
  readonly accounts: AccountStore;
  /** Operations waiting in an account's queue (for tests of backpressure). */
  accountQueueLength(bare: string): number;
  /** What the entity capabilities cache holds (for tests of its bounds). */
  capsCacheSize(): CapsCacheSize;
  /** Closes every stream with `<system-shutdown/>` and stops listening. */
  shutdown(): Promise<void>;
}

/** Thrown when a port cannot be bound; the message names the address. */
export class ListenError extends Error {
  override name = "ListenError";
}

/**
 * Binds one address. "*" is the IPv6 wildcard, which also takes IPv4 on dual-stack hosts,
 * falling back to the IPv4 wildcard where IPv6 is off.
 */
function bind(address: string, port: number): Deno.Listener {
  const attempt = (hostname: string) => Deno.listen({ hostname, port, transport: "tcp" });
  try {
    if (address !== "*") return attempt(address);
    try {
      return attempt("::");
    } catch (err) {
      if (err instanceof Deno.errors.AddrInUse) throw err;
      return attempt("0.0.0.0");
    }
  } catch (err) {
    const why = err instanceof Deno.errors.AddrInUse ? "the address is in use" : String(err);
    throw new ListenError(`cannot listen on ${address} port ${port}: ${why}`);
  }
}

const NO_STANZAS: readonly Element[] = Object.freeze([]);

// URL-safe alphabet: no commas (SCRAM) and nothing that needs escaping in XML.
const TOKEN_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
// Random bytes drawn from the system's generator a pool at a time: ids are made for every
// archived message and every stream, and one getRandomValues call (an op, a new buffer) per id
// cost more than the id. Each byte is used once.
const tokenPool = new Uint8Array(4096);
let tokenPoolAt = tokenPool.length;

/** `bytes` random bytes as unpadded base64url (RFC 4648 §5). */
export function randomToken(bytes: number): string {
  if (bytes > tokenPool.length) throw new RangeError("token too long");
  if (tokenPoolAt + bytes > tokenPool.length) {
    crypto.getRandomValues(tokenPool);
    tokenPoolAt = 0;
  }
  const b = tokenPool;
  const end = tokenPoolAt + bytes;
  let i = tokenPoolAt;
  let s = "";
  for (; i + 3 <= end; i += 3) {
    const n = (b[i] << 16) | (b[i + 1] << 8) | b[i + 2];
    s += TOKEN_ALPHABET[n >> 18] + TOKEN_ALPHABET[(n >> 12) & 63] +
      TOKEN_ALPHABET[(n >> 6) & 63] + TOKEN_ALPHABET[n & 63];
  }
  if (end - i === 1) {
    const n = b[i] << 16;
    s += TOKEN_ALPHABET[n >> 18] + TOKEN_ALPHABET[(n >> 12) & 63];
  } else if (end - i === 2) {
    const n = (b[i] << 16) | (b[i + 1] << 8);
    s += TOKEN_ALPHABET[n >> 18] + TOKEN_ALPHABET[(n >> 12) & 63] + TOKEN_ALPHABET[(n >> 6) & 63];
  }
  tokenPoolAt = end;
  return s;
}

async function tlsMaterial(config: Config): Promise<Map<string, TlsMaterial>> {
  const out = new Map<string, TlsMaterial>();
  if (config.tls.cert !== undefined && config.tls.key !== undefined) {
    const m = await loadTlsMaterial(config.tls.cert, config.tls.key);
    for (const host of config.hosts) out.set(host, m);
  } else {
    for (const host of config.hosts) out.set(host, await ensureSelfSigned(config.dataDir, host));
  }
  return out;
}

/** Waits for `p`, at most `ms` milliseconds. */
async function within(ms: number, p: Promise<unknown>): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

/** Stanzas waiting for one remote domain's link. */
const S2S_QUEUE_MAX = 1000;
const S2S_CONNECT_TIMEOUT_MS = 10_000;
/** Remote contacts' resources tracked for PEP, and caps questions to them in flight. */
const REMOTE_PRESENCE_LIMITS = { resources: 10_000, perBare: 32, questions: 1000 };
/** Domains one incoming server stream may authenticate (piggybacking). */
const S2S_MAX_DOMAINS = 16;

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** One SRV service's targets, by priority and then weight; none without records. */
async function srvTargets(name: string, directTls: boolean): Promise<S2sTarget[]> {
  let records: Deno.SrvRecord[];
  try {
    records = await Deno.resolveDns(name, "SRV");
  } catch {
    return [];
  }
  // A single "." target says the service is not offered there (RFC 2782).
  if (records.length === 1 && (records[0].target === "." || records[0].target === "")) return [];
  return records
    .toSorted((a, b) => a.priority - b.priority || b.weight - a.weight)
    .map((r) => ({
      host: r.target.replace(/\.$/, ""),
      port: r.port,
      ...(directTls ? { directTls } : {}),
    }));
}

/**
 * A domain's servers from DNS SRV: `_xmpps-server._tcp` with TLS from the first byte
 * (XEP-0368) before `_xmpp-server._tcp` with STARTTLS (RFC 6120 §3.2.1); none when there is no
 * record (the caller then tries the domain on 5269).
 */
async function resolveServers(domain: string): Promise<readonly S2sTarget[]> {
  const [direct, starttls] = await Promise.all([
    srvTargets(`_xmpps-server._tcp.${domain}`, true),
    srvTargets(`_xmpp-server._tcp.${domain}`, false),
  ]);
  return [...direct, ...starttls];
}

/** The CAs of `[s2s] ca_file` (PEM), or an error naming the file. */
async function readCaFile(
  path: string,
  pemCertificates: (text: string) => string[],
): Promise<string[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (err) {
    throw new Error(`cannot read [s2s] ca_file ${path}: ${String(err)}`);
  }
  const pems = pemCertificates(text);
  if (pems.length === 0) throw new Error(`[s2s] ca_file ${path}: no PEM certificate found`);
  return pems;
}

/** Accept errors back off from the first to the last delay, doubling. */
const ACCEPT_BACKOFF_MIN_MS = 10;
const ACCEPT_BACKOFF_MAX_MS = 1000;

/** True for the errors a listener gives once it is closed (at shutdown). */
function listenerClosed(err: unknown): boolean {
  return err instanceof Deno.errors.BadResource || err instanceof Deno.errors.Interrupted;
}

/**
 * The modules of the parts only some configurations use, loaded when the configuration turns
 * them on (a server without HTTP, federation, components, rooms or pubsub never loads their
 * code: the idle server's memory is mostly code). The specifiers are string literals, so
 * `deno compile` still embeds every one of them.
 */
async function loadSubsystems(config: Config) {
  const web = config.http.port !== false || config.http.httpsPort !== false;
  const [http, bosh, webClient, upload, s2s, peerCert, component, muc, mucRunner, pubsub, runner] =
    await Promise.all([
      web ? import("../transport/http.ts") : undefined,
      web ? import("../transport/bosh.ts") : undefined,
      web && config.webClient.enabled ? import("../transport/web_client.ts") : undefined,
      // Upload serves its slots on the HTTP port: without it the service stays off.
      config.http.port !== false && config.upload !== undefined
        ? import("../transport/upload_http.ts")
        : undefined,
      config.s2s.port !== false ? import("./s2s.ts") : undefined,
      config.s2s.port !== false ? import("../transport/peer_cert.ts") : undefined,
      config.componentPort !== false ? import("./component_listener.ts") : undefined,
      config.muc !== undefined ? import("../services/muc/mod.ts") : undefined,
      config.muc !== undefined ? import("./muc_runner.ts") : undefined,
      config.pubsub !== undefined ? import("../services/pubsub/service.ts") : undefined,
      config.pubsub !== undefined ? import("./service_runner.ts") : undefined,
    ]);
  return {
    http,
    bosh,
    webClient,
    upload,
    s2s,
    peerCert,
    component,
    muc,
    mucRunner,
    pubsub,
    runner,
  };
}

/** What {@link loadSubsystems} loaded. */
type Subsystems = Awaited<ReturnType<typeof loadSubsystems>>;

/** A module {@link loadSubsystems} loaded, where the configuration says it did. */
function loaded<T>(mod: T | undefined, what: string): T {
  if (mod === undefined) throw new Error(`${what} was not loaded`);
  return mod;
}

/** The list stores (one list file per user, over the journal) and the journal itself. */
interface ListStores {
  readonly journal: ListJournal | undefined;
  readonly archive: ArchiveStore;
  readonly offline: OfflineStore;
  readonly smStash: SmStash;
}

/** Opens the list stores over `journal` (nothing on disk is touched until first use). */
function openListStores(config: Config, journal: ListJournal | undefined): ListStores {
  return {
    journal,
    archive: openArchiveStore(config.dataDir),
    // Written by the account hub alone (see `soleWriter` in startWith).
    offline: openOfflineStore(config.dataDir, { soleWriter: true }),
    smStash: openSmStash(config.dataDir),
  };
}

/**
 * Closes the list stores, then the journal: a store's leases end as they would lapse (writing
 * what they held back and their index), and the journal's last checkpoint then syncs that. A
 * lease left open would write its index when it lapsed, after shutdown returned. A store that
 * fails to close is logged: the journal still closes, and keeps what it could not sync.
 */
async function closeListStores(stores: ListStores): Promise<void> {
  const closing = [stores.archive, stores.offline, stores.smStash].map((store) =>
    store.close().catch((err) =>
      getLogger("server").error("Closing a list store failed: {err}", { err: String(err) })
    )
  );
  // Capped like the other waits of a shutdown: a store waits for the calls made before it.
  await within(3000, Promise.all(closing));
  await stores.journal?.close();
}

/** How a server is started beyond its configuration. */
export interface StartOptions {
  /**
   * The wall clock of stamps, expiries and throttles, in ms since the epoch (default
   * `Date.now`). Socket timers keep the real clock.
   */
  readonly clock?: () => number;
}

/** Starts listening as the configuration says. */
export async function startServer(
  config: Config,
  options: StartOptions = {},
): Promise<RunningServer> {
  const log = getLogger("server");
  const lazy = await loadSubsystems(config);
  // Temporary files of writes a crash cut short: never read as data, removed before anything
  // opens the stores.
  const leftovers = await removeTempFiles(config.dataDir);
  if (leftovers > 0) log.info("Removed {n} temporary files left by a crash", { n: leftovers });
  // One fdatasync for the appends of many list files (archives, offline, SM stashes); it
  // first writes back what an unclean stop left only in it.
  const journal = await openListJournal(config.dataDir);
  // Closed if the start fails too: recovering SM stashes may have leased offline lists.
  const lists = openListStores(config, journal);
  try {
    return await startWith(config, lazy, lists, options.clock ?? Date.now);
  } catch (err) {
    await closeListStores(lists);
    throw err;
  }
}

/** The rest of {@link startServer}, once the stores are ready to open. */
async function startWith(
  config: Config,
  lazy: Subsystems,
  lists: ListStores,
  clock: () => number,
): Promise<RunningServer> {
  const log = getLogger("server");
  const material = await tlsMaterial(config);
  const caps = createCapsCache(config.limits);
  const registry = createRegistry(caps.get);
  const throttle = createAuthThrottle({
    maxFailures: config.auth.maxFailures,
    maxFailuresPerAddress: config.auth.maxFailuresPerAddress,
    slowDownAfter: config.auth.slowDownAfter,
    windowMs: config.auth.failureWindow * 1000,
  });
  const accounts = openAccountStore(config.dataDir, { iterations: config.auth.scramIterations });
  // HTTP upload needs the HTTP port to serve its slots: without it the service stays off.
  const uploadConfig = config.http.port === false ? undefined : config.upload;
  const ctx: Ctx = {
    hosts: config.hosts,
    requireEncryption: config.requireEncryption,
    tlsAvailable: material.size > 0,
    allowPlain: config.auth.allowPlain,
    archiving: config.archive.enabled,
    maxStanzaSize: config.limits.stanzaSize,
    maxStanzaSizeUnauthed: config.limits.stanzaSizeUnauthed,
    idleSeconds: config.limits.idleTimeout,
    smResumeTimeout: config.limits.smResumeTimeout,
    now: clock,
    newId: () => randomToken(12),
    nonce: () => randomToken(18),
    isAuthThrottled: (ip, username) => throttle.isThrottled(ip, username, clock()),
    resourcesOf: (bare) => registry.resourcesOf(bare),
    capsFeatures: caps.get,
    serverName: SERVER_NAME,
    serverVersion: SERVER_VERSION,
    limits: config.limits,
    settings: {
      startedAt: clock(),
      contactInfo: config.contactInfo,
      allowRegistration: config.allowRegistration,
      externalServices: config.externalServices,
      components: [
        ...config.components.map((c) => c.domain),
        ...(config.muc === undefined ? [] : [config.muc.domain]),
        ...(config.pubsub === undefined ? [] : [config.pubsub.domain]),
        ...(uploadConfig === undefined ? [] : [uploadConfig.domain]),
      ],
    },
  };
  const endPoints = new Map<string, Uint8Array>();
  for (const [host, m] of material) endPoints.set(host, tlsServerEndPoint(m.certDer));
  const { archive, offline, smStash } = lists;
  const tombstones = openTombstoneStore(config.dataDir);
  const components: ComponentRegistry = new Map();
  const secrets = new Map(config.components.map((c) => [c.domain, c.secret]));
  const view = {
    componentFor: (domain: string) =>
      components.has(domain)
        ? "connected" as const
        : secrets.has(domain)
        ? "disconnected" as const
        : undefined,
    hosts: config.hosts,
    archiving: config.archive.enabled,
    resourcesOf: registry.resourcesOf,
    accountIq: (key: string) => ACCOUNT_IQ.has(key),
    delivery: DELIVERY,
    serviceFor: (domain: string) => services.has(domain),
    federation: config.s2s.port !== false,
  };
  // Set once federation starts, below (routes before that find no remote domain to reach).
  let s2s: S2s | undefined;
  const services = new Map<string, ServiceRunner>();
  // The hub's stores are written by the hub alone (the CLI only deletes from them), so each
  // may keep its directory listing: a login then finds the roster, vCard, block list ... it
  // does not have without a file operation.
  const soleWriter = { soleWriter: true };
  // Messages of sessions that hibernated when the server crashed: to offline storage, before
  // anyone can log in (XEP-0198 resumption cannot survive a restart; the messages must).
  const recovered = await smStash.recover(config.hosts, offline);
  if (recovered > 0) {
    log.info("Moved {n} messages of sessions that were waiting to be resumed to offline storage", {
      n: recovered,
    });
  }
  /**
   * Routes a stanza; resolves once its effects are durable: stored by the accounts it went to
   * (and what they routed on), or handed to a live session. `then` (stanzas a module routes after it) follow the
   * stanza past the sender's archive.
   */
  // Messages between their sender's archive and their recipient's queue, with the place they keep.
  const placesKept = new WeakMap<Element, Reservation & { readonly bare: string }>();
  const routeStanza = (stanza: Element, opts: RouteOptions & Then = {}): Promise<void> | void => {
    const waits: Promise<void>[] = [];
    let then = opts.then ?? NO_STANZAS;
    for (const d of route(stanza, view, opts)) {
      if (d.kind === "deliver") registry.get(d.to)?.dispatch({ kind: "inbound", stanza: d.stanza });
      else if (d.kind === "bounce") {
        const bounced = routeStanza(d.stanza, { detachServices: opts.detachServices });
        if (bounced !== undefined) waits.push(bounced);
      } else if (d.kind === "component") {
        components.get(d.domain)?.dispatch({ kind: "inbound", stanza: d.stanza });
      } else if (d.kind === "remote") {
        s2s?.send(d.stanza, d.domain);
      } else if (d.kind === "host-iq") {
        for (const answer of answerRemoteIq(d.stanza, ctx)) {
          const routed = routeStanza(answer, { detachServices: opts.detachServices });
          if (routed !== undefined) waits.push(routed);
        }
      } else if (d.kind === "service") {
        const handled = services.get(d.domain)?.submit(d.stanza);
        if (handled !== undefined && !opts.detachServices) waits.push(handled);
      } else if (d.op.kind === "outgoing-message") {
        const sent = hub.submit(d.bare, then.length > 0 ? { ...d.op, then } : d.op);
        then = NO_STANZAS;
        // After the submit: a message to oneself keeps its place behind its own archiving.
        const kept = keepPlace(d.op.stanza);
        // Not routed on (blocked, failed): its place is given up.
        if (kept !== undefined) {
          const stanza = d.op.stanza;
          void sent.then(() => {
            placesKept.delete(stanza);
            kept.cancel();
          });
        }
        waits.push(sent);
      } else if (d.op.kind === "incoming-message" && opts.senderArchived) {
        const kept = placesKept.get(stanza);
        placesKept.delete(stanza);
        waits.push(kept?.bare === d.bare ? kept.fill(d.op) : hub.submit(d.bare, d.op));
        kept?.cancel();
      } else waits.push(hub.submit(d.bare, d.op));
    }
    for (const c of then) {
      const routed = routeStanza(c, { detachServices: opts.detachServices });
      if (routed !== undefined) waits.push(routed);
    }
    // Nothing to wait for (handed to live sessions): no promise at all, the common case.
    return waits.length === 0 ? undefined : waits.length === 1 ? waits[0] : settled(waits);
  };
  /**
   * Keeps, for a message on its way through its sender's archive, its place in its local
   * recipient's queue (AccountHub.reserve): what reaches the recipient's account after the
   * message reached the server (her own presence, say) is carried out after it, as Prosody
   * would, whatever the time the sender's archive takes.
   */
  const keepPlace = (stanza: Element): (Reservation & { readonly bare: string }) | undefined => {
    const to = stanza.attrs.to;
    const jid = to === undefined ? undefined : parseJid(to);
    if (jid?.local === undefined || !config.hosts.includes(jid.domain)) return undefined;
    const bare = `${jid.local}@${jid.domain}`;
    const kept = { ...hub.reserve(bare), bare };
    placesKept.set(stanza, kept);
    return kept;
  };
  const detachedRoute = (stanza: Element, opts: RouteOptions & Then = {}) =>
    routeStanza(stanza, { ...opts, detachServices: true });
  // Contacts on other servers, for PEP: what their presence and caps say they can do.
  const remotePresence = createRemotePresence(
    caps,
    (st) => void detachedRoute(st),
    () => randomToken(9),
    REMOTE_PRESENCE_LIMITS,
  );
  const hub = createAccountHub({
    accounts,
    rosters: openKeyvalStore<Roster>(config.dataDir, "roster", soleWriter),
    offline,
    smStash,
    archive,
    prefs: openKeyvalStore<ArchivePrefs>(config.dataDir, "archive_prefs", soleWriter),
    openStore: (name) => openModuleStore<unknown>(config.dataDir, name, soleWriter),
    registry,
    ctx: {
      now: ctx.now,
      newId: ctx.newId,
      resourcesOf: ctx.resourcesOf,
      remoteResourcesOf: remotePresence.resourcesOf,
      federated: (domain) =>
        config.s2s.port !== false && !config.hosts.includes(domain) && !services.has(domain) &&
        !secrets.has(domain),
      limits: config.limits,
      archive: { enabled: config.archive.enabled, policy: config.archive.policy },
      random: () => randomToken(6),
    },
    route: detachedRoute,
    isTombstoned: (host, user) =>
      hasTombstone(tombstones, host, user, { now: clock(), expiry: config.tombstoneExpiry }),
    removeAccount: (host, user) =>
      removeAccount(
        { accounts, tombstones, data: openUserData(config.dataDir, MODULE_STORES) },
        host,
        user,
        clock(),
      ),
    log: getLogger("account"),
  });
  let muc: MucRunner | undefined;
  if (config.muc !== undefined) {
    const { domain, admins, creation, archiving } = config.muc;
    const { DEFAULT_MUC_LIMITS } = loaded(lazy.muc, "MUC");
    muc = await loaded(lazy.mucRunner, "MUC").startMucRunner({
      store: openKeyvalStore<StoredRoom>(config.dataDir, "muc_rooms", soleWriter),
      archive,
      ctx: {
        domain,
        now: ctx.now,
        newId: ctx.newId,
        limits: {
          ...DEFAULT_MUC_LIMITS,
          roomsPerCreator: config.limits.mucRoomsPerCreator,
          occupantsPerRoom: config.limits.mucOccupants,
          historyMessages: config.limits.mucHistory,
          historyBytes: config.limits.mucHistoryBytes,
          messageBytes: config.limits.mucMessageBytes,
          subjectBytes: config.limits.mucSubjectBytes,
          affiliations: config.limits.mucAffiliations,
        },
        creation,
        admins: new Set(admins),
        isLocal: (jid) => {
          const parsed = parseJid(jid);
          return parsed !== undefined && config.hosts.includes(parsed.domain);
        },
        archiving: archiving && config.archive.enabled,
      },
      occupantKey: await loadSecretKey(config.dataDir, "muc-occupant-id.key"),
      joinsPerSecond: config.limits.mucJoinsPerSecond,
      route: detachedRoute,
      maxQueue: config.limits.accountQueue,
      log: getLogger("muc"),
    });
    services.set(domain, muc);
  }
  if (config.pubsub !== undefined) {
    const { domain, admins, create } = config.pubsub;
    const { DEFAULT_SERVICE_LIMITS } = loaded(lazy.pubsub, "pubsub");
    services.set(
      domain,
      await loaded(lazy.runner, "pubsub").startPubsubRunner({
        store: openKeyvalStore<StoredNode>(config.dataDir, "pubsub_nodes", soleWriter),
        rosters: openKeyvalStore<Roster>(config.dataDir, "roster"),
        ctx: {
          domain,
          newId: ctx.newId,
          admins: new Set(admins),
          limits: {
            ...DEFAULT_SERVICE_LIMITS,
            nodes: config.limits.pubsubNodes,
            items: config.limits.pubsubItems,
            itemBytes: config.limits.pubsubItemBytes,
            bytes: config.limits.pubsubBytes,
            subscriptions: config.limits.pubsubSubscriptions,
            affiliations: config.limits.pubsubSubscriptions,
          },
          create,
          isLocal: (bare) => config.hosts.includes(bare.slice(bare.indexOf("@") + 1)),
        },
        route: detachedRoute,
        maxQueue: config.limits.accountQueue,
        log: getLogger("pubsub"),
      }),
    );
  }
  let upload: UploadService | undefined;
  // The slot URLs name the HTTP port, bound below: asked for per slot.
  let uploadBase = "";
  if (uploadConfig !== undefined) {
    const uploadLog = getLogger("upload");
    upload = await loaded(lazy.upload, "upload").startUploadService({
      ...uploadConfig,
      dataDir: config.dataDir,
      key: await loadSecretKey(config.dataDir, "upload.key"),
      isLocal: (bare) => config.hosts.includes(bare.slice(bare.indexOf("@") + 1)),
      baseUrl: () => uploadBase,
      newId: () => randomToken(18),
      route: detachedRoute,
      log: (message) => uploadLog.info(message),
    });
    services.set(uploadConfig.domain, upload);
  }
  // Once every connection has gone quiet (or away) after a burst, the burst's garbage goes back
  // to the system (V8's with --expose-gc in the V8 flags, see README, Server V8 flags; glibc's
  // with --allow-ffi).
  const heapLog = getLogger("memory");
  const trimHeap = createHeapTrim((r) =>
    heapLog.info("Heap trimmed from {before} to {after} MB, RSS {rss0} to {rss1} MB, in {ms} ms", {
      before: (r.beforeBytes / 1048576).toFixed(1),
      after: (r.afterBytes / 1048576).toFixed(1),
      rss0: (r.rssBeforeBytes / 1048576).toFixed(1),
      rss1: (r.rssAfterBytes / 1048576).toFixed(1),
      ms: r.ms.toFixed(0),
    })
  );
  // Quiet for 1-2 s: long after the bytes of one exchange, short against how long clients idle.
  const quiet = createQuietWatch(1000, trimHeap);
  const deps: ConnectionDeps = {
    ctx,
    registry,
    accounts,
    route: routeStanza,
    hub,
    caps,
    throttle,
    registration: createRegistration({
      accounts,
      tombstones,
      perMinute: config.registrationThrottle,
      tombstoneExpiry: config.tombstoneExpiry,
      now: clock,
      log: getLogger("register"),
    }),
    tls: secureContexts(material),
    endPoints,
    maxDepth: config.limits.maxDepth,
    authTimeoutMs: config.limits.authTimeout * 1000,
    quiet,
    resumable: new Map(),
    log: getLogger("c2s"),
  };

  if (config.s2s.port !== false) {
    const { pemCertificates, trustStore } = loaded(lazy.peerCert, "s2s");
    const extraCas = config.s2s.caFile === undefined
      ? []
      : await readCaFile(config.s2s.caFile, pemCertificates);
    s2s = loaded(lazy.s2s, "s2s").createS2s({
      isLocal: (domain) =>
        config.hosts.includes(domain) || services.has(domain) || secrets.has(domain),
      route: (stanza) => remotePresence.observe(stanza) ? undefined : detachedRoute(stanza),
      inflightMax: config.limits.accountQueue,
      secret: toHex(await loadSecretKey(config.dataDir, "dialback.key")),
      tls: material.size > 0 ? deps.tls : undefined,
      trust: trustStore(extraCas),
      extraCas,
      // Our host's certificate, presented as a client certificate (XEP-0178).
      certFor: (local) => material.get(local),
      requireEncryption: config.s2s.requireEncryption,
      secureAuth: config.s2s.secureAuth,
      staticHosts: config.s2s.hosts,
      resolve: resolveServers,
      newId: ctx.newId,
      maxStanzaBytes: config.limits.stanzaSize,
      maxStanzaBytesUnauthed: config.limits.stanzaSizeUnauthed,
      maxDepth: config.limits.maxDepth,
      writeBacklog: config.limits.writeBacklog,
      queueMax: S2S_QUEUE_MAX,
      connectTimeoutMs: S2S_CONNECT_TIMEOUT_MS,
      authTimeoutMs: config.limits.authTimeout * 1000,
      idleTimeoutMs: config.limits.idleTimeout * 1000,
      maxDomains: S2S_MAX_DOMAINS,
      admit: (ip) => admission.admit(ip),
      log: getLogger("s2s"),
    });
  }

  const listeners: Deno.Listener[] = [];
  const serving = new Set<Promise<void>>();
  // Component connections, to tell them of a shutdown (connected or not yet).
  const componentConns = new Set<ComponentHandle>();
  const componentDeps = {
    secrets,
    registry: components,
    route: routeStanza,
    newId: ctx.newId,
    maxStanzaBytes: config.limits.stanzaSize,
    maxDepth: config.limits.maxDepth,
    handshakeTimeoutMs: config.limits.authTimeout * 1000,
    writeBacklog: config.limits.writeBacklog,
    // Wrong secrets are counted per address with the per-account threshold: a component
    // domain is one "account", and its real peer is one address that knows the secret.
    handshakeThrottle: createHandshakeThrottle({
      maxFailures: config.auth.maxFailures,
      windowMs: config.auth.failureWindow * 1000,
    }),
    log: getLogger("component"),
  };
  const admission = createAdmission(
    config.limits,
    config.exemptLoopback ? isLoopback : undefined,
  );
  type Kind = "c2s" | "direct-tls" | "component" | "s2s" | "s2s-tls";
  const serve = (conn: Deno.Conn, kind: Kind): Promise<void> => {
    if (kind === "s2s") return s2s!.serveInbound(conn);
    if (kind === "s2s-tls") return s2s!.serveInbound(conn, { directTls: true });
    if (kind !== "component") {
      const ip = conn.remoteAddr.transport === "tcp" ? conn.remoteAddr.hostname : "unknown";
      const admitted = admission.admit(ip);
      if (admitted.ok) {
        return serveConnection(conn, deps, { directTls: kind !== "c2s", ticket: admitted.ticket })
          .finally(() => admitted.ticket.release());
      }
      log.warn("{ip}: connection refused, {reason}", { ip, reason: admitted.reason });
      // On the direct TLS port a refusal is a plain close: a TLS handshake for a connection
      // that is turned away anyway would be work an attacker could make us do.
      if (kind === "direct-tls") {
        try {
          conn.close();
        } catch {
          // already closed
        }
        return Promise.resolve();
      }
      return refuseConnection(conn, {
        hosts: config.hosts,
        reason: admitted.reason,
        maxBytes: config.limits.stanzaSizeUnauthed,
        timeoutMs: Math.min(5000, config.limits.authTimeout * 1000),
      });
    }
    let h: ComponentHandle | undefined;
    const { serveComponent } = loaded(lazy.component, "components");
    return serveComponent(conn, componentDeps, (opened) => componentConns.add(h = opened))
      .finally(() => h !== undefined && componentConns.delete(h));
  };
  let stopping = false;
  // Backoff waits, cut short at shutdown so that no timer outlives the server.
  const backoffs = new Map<ReturnType<typeof setTimeout>, () => void>();
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        backoffs.delete(t);
        resolve();
      }, ms);
      backoffs.set(t, resolve);
    });
  // An accept error (EMFILE when descriptors run out, ENOBUFS, a connection reset before it
  // was taken) must not end the listener: log it, wait a little for descriptors to free, and
  // go on. Only closing the listener ends the loop.
  const accept = async (listener: Deno.Listener, kind: Kind) => {
    let backoff = 0;
    while (!stopping) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (err) {
        if (stopping || listenerClosed(err)) return;
        backoff = Math.min(ACCEPT_BACKOFF_MAX_MS, Math.max(ACCEPT_BACKOFF_MIN_MS, backoff * 2));
        log.error("Accepting a connection failed, retrying in {ms} ms: {err}", {
          ms: backoff,
          err: String(err),
        });
        await pause(backoff);
        continue;
      }
      backoff = 0;
      const p = serve(conn, kind).catch((err) =>
        log.error("Connection failed: {err}", { err: String(err) })
      );
      serving.add(p);
      p.finally(() => serving.delete(p));
    }
  };
  const listen = (port: number, kind: Kind, interfaces = config.interfaces): number => {
    let bound = port;
    for (const [i, address] of interfaces.entries()) {
      // With port 0, every interface shares the port the first one got.
      const l = bind(address, i === 0 ? port : bound);
      if (i === 0) bound = (l.addr as Deno.NetAddr).port;
      listeners.push(l);
      accept(l, kind).catch((err) =>
        log.error("The {kind} listener stopped: {err}", { kind, err: String(err) })
      );
      log.info("Listening for {who} on {host}:{port}{tls}", {
        who: kind === "component"
          ? "components"
          : kind === "s2s" || kind === "s2s-tls"
          ? "servers"
          : "clients",
        host: (l.addr as Deno.NetAddr).hostname,
        port: bound,
        tls: kind === "direct-tls" || kind === "s2s-tls" ? " (direct TLS)" : "",
      });
    }
    return bound;
  };
  const c2sPort = listen(config.c2sPort, "c2s");
  const directTlsPort = config.c2sDirectTlsPort === false
    ? undefined
    : listen(config.c2sDirectTlsPort, "direct-tls");
  const componentPort = config.componentPort === false
    ? undefined
    : listen(config.componentPort, "component", config.componentInterfaces);
  const s2sPort = config.s2s.port === false ? undefined : listen(config.s2s.port, "s2s");
  const s2sDirectTlsPort = config.s2s.port === false || config.s2s.directTlsPort === false
    ? undefined
    : listen(config.s2s.directTlsPort, "s2s-tls");

  // XMPP over WebSocket: the same client kind, reducer, limits and throttles as TCP, with
  // admission per upgrade. There is no STARTTLS on a WebSocket: the session is encrypted only
  // over our HTTPS port or when a trusted proxy says it terminated TLS, else
  // `require_encryption` refuses the login.
  const wsDeps: ConnectionDeps = { ...deps, ctx: { ...ctx, tlsAvailable: false } };
  // BOSH (XEP-0206): one service for both HTTP ports, each session a client connection like a
  // WebSocket's, admitted at its creation.
  const bosh = lazy.bosh?.createBosh({
    maxBodyBytes: ctx.maxStanzaSize,
    corsOrigins: config.http.corsOrigins,
    admit: (peer) => {
      const admitted = admission.admit(peer.ip);
      if (!admitted.ok) return admitted;
      const { ticket } = admitted;
      return {
        ok: true,
        start(transport) {
          const p = serveBosh(wsDeps, { ip: peer.ip, secure: peer.secure, ticket }, transport)
            .catch((err) => log.error("BOSH failed: {err}", { err: String(err) }))
            .finally(() => ticket.release());
          serving.add(p);
          p.finally(() => serving.delete(p));
          return p;
        },
      };
    },
  });
  const webClient = lazy.webClient !== undefined
    ? lazy.webClient.createWebClient({
      domain: config.hosts[0],
      uploadOrigin: () =>
        upload === undefined || uploadBase === "" ? undefined : new URL(uploadBase).origin,
    })
    : undefined;
  // One service per port: plain HTTP, or HTTPS when `tls` is given.
  const startWeb = (port: number, tls?: { cert: string; key: string }): HttpService => {
    const { interfaces, corsOrigins, trustedProxies, publicUrl } = config.http;
    const httpLog = getLogger("http");
    const scheme = tls === undefined ? "HTTP" : "HTTPS";
    const { startHttp } = loaded(lazy.http, "HTTP");
    let http: HttpService;
    try {
      http = startHttp({
        port,
        tls,
        interfaces,
        corsOrigins,
        trustedProxies,
        publicUrl,
        defaultHost: config.hosts[0],
        upload: upload?.handle,
        bosh: loaded(bosh, "BOSH").handle,
        webClient,
        secureLoopback: config.http.secureLoopback,
        admitWebSocket: (peer) => {
          const admitted = admission.admit(peer.ip);
          if (!admitted.ok) return admitted;
          const { ticket } = admitted;
          return {
            ok: true,
            release: () => ticket.release(),
            serve(socket) {
              const p = serveWebSocket(socket, wsDeps, { ip: peer.ip, secure: peer.secure, ticket })
                .catch((err) => log.error("WebSocket failed: {err}", { err: String(err) }))
                .finally(() => ticket.release());
              serving.add(p);
              p.finally(() => serving.delete(p));
            },
          };
        },
        refused: (peer, status, why) =>
          httpLog.info("{ip}: HTTP {status}, {why}", { ip: peer.ip, status, why }),
      });
    } catch (err) {
      for (const l of listeners) {
        try {
          l.close();
        } catch {
          // already closed
        }
      }
      const why = err instanceof Deno.errors.AddrInUse ? "the address is in use" : String(err);
      throw new ListenError(`cannot listen for ${scheme} on port ${port}: ${why}`);
    }
    log.info("Listening for {scheme} (WebSocket, discovery) on {hosts} port {port}", {
      scheme,
      hosts: interfaces.join(", "),
      port: http.port,
    });
    if (webClient !== undefined) {
      log.info("Web client at {url}", {
        url: `${tls === undefined ? "http" : "https"}://${config.hosts[0]}:${http.port}/`,
      });
    }
    return http;
  };
  const http = config.http.port === false ? undefined : startWeb(config.http.port);
  if (http !== undefined) {
    uploadBase = config.http.publicUrl === undefined
      ? `http://${config.hosts[0]}:${http.port}`
      : config.http.publicUrl.replace(/\/+$/, "");
  }
  let https: HttpService | undefined;
  if (config.http.httpsPort !== false) {
    // Deno.serve takes one certificate, without SNI: the first host's.
    const first = material.get(config.hosts[0])!;
    try {
      https = startWeb(config.http.httpsPort, { cert: first.certPem, key: first.keyPem });
    } catch (err) {
      void http?.shutdown();
      throw err;
    }
  }

  // One sweep for all connections instead of a timer each: idle streams are closed
  // (XEP-0478 idle-seconds; clients keep alive with whitespace or pings).
  const idleMs = config.limits.idleTimeout * 1000;
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const h of registry.connections()) {
      if (now - h.lastActivity() > idleMs) h.dispatch({ kind: "idle-timeout" });
    }
  }, Math.min(30_000, Math.max(250, idleMs / 4)));

  // Archive expiry: soon after start, then hourly.
  const expire = () =>
    // Room archives (XEP-0313 on the MUC domain) expire by the same rules as users'.
    expireArchives(archive, [...config.hosts, ...(config.muc ? [config.muc.domain] : [])], {
      now: clock(),
      expiresAfter: config.archive.expiresAfter,
      maxItems: config.archive.maxItems,
    }).then(
      (r) => r.removed > 0 && log.info("Archive expiry removed {n} messages", { n: r.removed }),
      (err) => log.error("Archive expiry failed: {err}", { err: String(err) }),
    );
  let expiring: Promise<unknown> = Promise.resolve();
  const runExpiry = () => {
    expiring = expiring.then(expire);
  };
  const firstExpiry = setTimeout(runExpiry, 10_000);
  const expiryTimer = setInterval(runExpiry, 3600_000);

  let stopped: Promise<void> | undefined;
  const shutdown = (): Promise<void> =>
    stopped ??= (async () => {
      clearInterval(sweep);
      quiet.stop();
      clearTimeout(firstExpiry);
      clearInterval(expiryTimer);
      await expiring;
      stopping = true;
      for (const [t, resolve] of backoffs) {
        clearTimeout(t);
        resolve();
      }
      backoffs.clear();
      for (const l of listeners) {
        try {
          l.close();
        } catch {
          // already closed
        }
      }
      // New requests are refused from here; WebSocket sessions close below with the others.
      const httpStopped = Promise.allSettled([http?.shutdown(), https?.shutdown()]);
      await upload?.stop();
      // Occupants hear that the rooms go (XEP-0045 status 332) before their streams close.
      await within(3000, muc?.shutdown() ?? Promise.resolve());
      for (const h of registry.connections()) h.dispatch({ kind: "shutdown" });
      for (const h of componentConns) h.dispatch({ kind: "shutdown" });
      s2s?.shutdown();
      await within(3000, Promise.allSettled([...serving]));
      await within(3000, httpStopped);
      // Let the accounts finish what the last sessions asked of them (stores, goodbyes).
      await within(3000, hub.idle());
      // Nothing under the data directory is written once this returns.
      await closeListStores(lists);
    })();

  return {
    c2sPort,
    directTlsPort,
    componentPort,
    s2sPort,
    s2sDirectTlsPort,
    httpPort: http?.port,
    httpsPort: https?.port,
    accounts,
    accountQueueLength: hub.queueLength,
    capsCacheSize: caps.size,
    shutdown,
  };
}
