/**
 * Server configuration: one TOML file, validated in full before the server starts, so that a
 * mistake is reported once with the exact key instead of surfacing later as odd behaviour.
 *
 * Every key has a default; an empty file (or no file) is a working configuration for
 * `localhost`. Unknown keys are errors, because a misspelt key that is silently ignored leaves
 * the default in force without anyone noticing.
 *
 * @module
 */

import type { UploadPolicy } from "./services/upload/service.ts";
import { isIP } from "node:net";
import { domainToASCII } from "node:url";
import { parse as parseToml } from "smol-toml";
import * as v from "valibot";
import type { ExternalService } from "./core/types.ts";
import { DEFAULT_LIMITS, LIMIT_KEYS, LIMIT_MINIMUMS, type Limits } from "./limits.ts";

/** Log levels, least to most severe (the same names as the logging library's). */
const LOG_LEVELS = ["trace", "debug", "info", "warning", "error", "fatal"] as const;

/** One of {@link LOG_LEVELS}. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Resource limits: see lib/limits.ts. */
export type LimitsConfig = Limits;

/** Authentication settings. */
export interface AuthConfig {
  /** PBKDF2 iterations for newly stored SCRAM credentials (`auth.scram_iterations`). */
  readonly scramIterations: number;
  /** Whether SASL PLAIN is offered (only ever over TLS) (`auth.allow_plain`). */
  readonly allowPlain: boolean;
  /** Failed logins for one account from one address within {@link failureWindow} before that pair is refused. */
  readonly maxFailures: number;
  /** Failed logins from one address (any accounts) within the window before it is refused. */
  readonly maxFailuresPerAddress: number;
  /** Failed logins for one account (any addresses) within the window after which its answers are delayed, never refused. */
  readonly slowDownAfter: number;
  /** The window, in seconds, in which {@link maxFailures} are counted. */
  readonly failureWindow: number;
}

/** The message archive (XEP-0313). */
export interface ArchiveConfig {
  /** Archive messages at all (`archive_enabled`). */
  readonly enabled: boolean;
  /** Seconds after which archived messages are dropped; Infinity keeps them (`archive_expires_after`). */
  readonly expiresAfter: number;
  /** Items kept per user; the oldest go first (`archive_max_items`). */
  readonly maxItems: number;
  /** Default preference of users who set none (`archive_policy`). */
  readonly policy: "roster" | "always" | "never";
}

/** Paths of a PEM certificate (chain) and its private key; both or neither. */
export interface TlsConfig {
  readonly cert?: string;
  readonly key?: string;
}

/** The validated configuration, with defaults filled in. */
export interface Config {
  /** Served domains, lowercased (`hosts`). */
  readonly hosts: readonly string[];
  /** Where accounts, rosters, archives and generated certificates live (`data_dir`). */
  readonly dataDir: string;
  /** Addresses to listen on; `"*"` means every IPv4 and IPv6 address (`interfaces`). */
  readonly interfaces: readonly string[];
  /** Client port with STARTTLS; 0 picks a free port (`c2s_port`). */
  readonly c2sPort: number;
  /** Client port with TLS from the first byte; `false` disables it (`c2s_direct_tls_port`). */
  readonly c2sDirectTlsPort: number | false;
  /** Whether clients must negotiate TLS before authenticating (`require_encryption`). */
  readonly requireEncryption: boolean;
  /** Certificate and key files; when absent a self-signed pair is made per host. */
  readonly tls: TlsConfig;
  readonly limits: LimitsConfig;
  readonly auth: AuthConfig;
  readonly archive: ArchiveConfig;
  /** XEP-0157 contact addresses by kind (`[contact_info] abuse = ["mailto:..."]`). */
  readonly contactInfo: Readonly<Record<string, readonly string[]>>;
  /** XEP-0077: clients may create accounts in-band (`allow_registration`). */
  readonly allowRegistration: boolean;
  /** Accounts one address may create per minute (`registration_throttle`). */
  readonly registrationThrottle: number;
  /** Seconds a removed account's name stays taken; Infinity: forever (`tombstone_expiry`). */
  readonly tombstoneExpiry: number;
  /** XEP-0215 services announced to users (`[[external_services]]`). */
  readonly externalServices: readonly ExternalService[];
  /** Lowest level that is logged (`log_level`). */
  readonly logLevel: LogLevel;
  /** XEP-0114 component port; 0 picks a free port, `false` disables it (`component_port`). */
  readonly componentPort: number | false;
  /**
   * Addresses the component port listens on (`component_interfaces`). Loopback by default: the
   * handshake is a shared secret sent without TLS, so it belongs on a trusted network.
   */
  readonly componentInterfaces: readonly string[];
  /** External components (XEP-0114) allowed to connect (`[[components]]`). */
  readonly components: readonly ComponentConfig[];
  /**
   * Loopback addresses are exempt from the per-address connection caps (`exempt_loopback`):
   * the machine itself (a load test, a reverse proxy, a local bot) is not one peer.
   */
  readonly exemptLoopback: boolean;
  /** Multi-user chat (`[muc]`); absent when switched off. */
  readonly muc?: MucConfig;
  /** The XEP-0060 pubsub service (`[pubsub]`); absent when switched off. */
  readonly pubsub?: PubsubConfig;
  /** HTTP: XMPP over WebSocket and XEP-0156 discovery (`[http]`). */
  readonly http: HttpConfig;
  /** XEP-0363 HTTP file upload (`[upload]`); absent when switched off. */
  readonly upload?: UploadConfig;
  /** The built-in web client at `/` on the HTTP ports (`[web_client]`). */
  readonly webClient: WebClientConfig;
  /** Server-to-server federation (`s2s_*` keys and `[s2s]`). */
  readonly s2s: S2sConfig;
}

/** Server-to-server federation (RFC 6120 s2s, XEP-0220 dialback). */
export interface S2sConfig {
  /** Port for other servers; 0 picks a free port, `false` turns federation off (`s2s_port`). */
  readonly port: number | false;
  /**
   * Port for other servers with TLS from the first byte (XEP-0368, ALPN `xmpp-server`);
   * `false` turns it off, as does `s2s_port = false` (`s2s_direct_tls_port`, default 5270).
   */
  readonly directTlsPort: number | false;
  /** More CAs to trust for servers' certificates, besides the system's (`[s2s] ca_file`, PEM). */
  readonly caFile?: string;
  /** Other servers must use TLS (`s2s_require_encryption`, default true). */
  readonly requireEncryption: boolean;
  /** Dialback is refused: only certificates authenticate (`s2s_secure_auth`, default false). */
  readonly secureAuth: boolean;
  /**
   * Fixed addresses of remote domains, used before DNS (`[s2s] hosts`); `directTls` for a
   * `"tls://host:port"` entry (XEP-0368), else STARTTLS.
   */
  readonly hosts: ReadonlyMap<
    string,
    { readonly host: string; readonly port: number; readonly directTls?: boolean }
  >;
}

/** The built-in web client (converse.js from npm) served at `/` and `/chat`. */
export interface WebClientConfig {
  /** Served at all (`enabled`; default on when every host is `localhost`, off otherwise). */
  readonly enabled: boolean;
}

/** XEP-0363 HTTP file upload on its own domain (`[upload]`), served on the HTTP port. */
export type UploadConfig = UploadPolicy;

/** The HTTP service (`[http]`): WebSocket (RFC 7395) and discovery (XEP-0156). */
export interface HttpConfig {
  /** Plain HTTP port; 0 picks a free port, `false` disables it (`http_port`, default 5280). */
  readonly port: number | false;
  /**
   * HTTPS port with the first host's certificate; 0 picks a free port, `false` disables it
   * (`https_port`, default 5281). A WebSocket over it counts as encrypted.
   */
  readonly httpsPort: number | false;
  /** Addresses both listen on (`http_interfaces`); loopback by default, for a proxy in front. */
  readonly interfaces: readonly string[];
  /**
   * Browser origins (`https://chat.example.org`) allowed to open a WebSocket besides the
   * server's own pages; `"*"` allows any (`cors_origins`, default none).
   */
  readonly corsOrigins: readonly string[];
  /**
   * Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are believed
   * (`trusted_proxies`); a WebSocket counts as encrypted only when one of them says `https`.
   */
  readonly trustedProxies: readonly string[];
  /** The public base URL discovery announces (`public_url`), when a proxy stands in front. */
  readonly publicUrl?: string;
  /**
   * A WebSocket or BOSH request straight from this machine (a loopback peer with no forwarding
   * headers) counts as encrypted: it never crossed a network (`secure_loopback`; default on
   * when every host is `localhost`, so the built-in web client logs in over plain HTTP).
   */
  readonly secureLoopback: boolean;
}

/** Multi-user chat on its own domain (XEP-0045, `[muc]`). */
export interface MucConfig {
  /** Its domain (`domain`, default `conference.<first host>`). */
  readonly domain: string;
  /** Bare JIDs that own every room (`admins`). */
  readonly admins: readonly string[];
  /** Who may create rooms (`creation`): "local" users (default), "admins", "anyone". */
  readonly creation: "local" | "admins" | "anyone";
  /** Rooms may keep an archive (XEP-0313 on the room JID) when their owners turn it on. */
  readonly archiving: boolean;
}

/** The pubsub service on its own domain (XEP-0060, `[pubsub]`). */
export interface PubsubConfig {
  /** Its domain (`domain`, default `pubsub.<first host>`). */
  readonly domain: string;
  /** Bare JIDs that may do everything on every node (`admins`). */
  readonly admins: readonly string[];
  /** Who may create nodes (`create`): "admins" (default, as Prosody), "local" users, "anyone". */
  readonly create: "admins" | "local" | "anyone";
}

/** One external component (XEP-0114): the domain it serves and its shared secret. */
export interface ComponentConfig {
  readonly domain: string;
  readonly secret: string;
}

/** A configuration that cannot be read or is invalid; the message names file and key. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/** The file read when no `--config` is given, relative to the working directory. */
export const DEFAULT_CONFIG_PATH = "xmpp.toml";

function integer(min: number, max: number, fallback: number) {
  const expected = max === Number.MAX_SAFE_INTEGER
    ? `expected an integer >= ${min}`
    : `expected an integer from ${min} to ${max}`;
  return v.optional(
    v.pipe(
      v.number(expected),
      v.integer(expected),
      v.minValue(min, expected),
      v.maxValue(max, expected),
    ),
    fallback,
  );
}

function boolean(fallback: boolean) {
  return v.optional(v.boolean("expected true or false"), fallback);
}

function path() {
  return v.optional(v.pipe(v.string("expected a file path"), v.nonEmpty("expected a file path")));
}

function isTable(value: unknown): value is Record<string, unknown> {
  // Arrays and TOML dates are objects too, but never a table.
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

function table<const E extends v.ObjectEntries>(entries: E) {
  return v.pipe(
    v.custom<Record<string, unknown>>(isTable, "expected a table"),
    v.strictObject(entries, "expected a table"),
  );
}

/** A list of bare JIDs (service admins), lowercased. */
function bareJids() {
  return v.optional(
    v.array(
      v.pipe(
        v.string("expected a bare JID"),
        v.check((j) => /^[^@/\s]+@[^@/\s]+$/.test(j), "expected a bare JID"),
        v.toLowerCase(),
      ),
      "expected an array of bare JIDs",
    ),
    [],
  );
}

const PROXY_EXPECTED = 'expected an IP address or a CIDR range such as "10.0.0.0/8"';

/**
 * An address or a CIDR range (`10.0.0.0/8`, `fd00::/8`) for `trusted_proxies`: the rule of
 * lib/transport/cidr.ts `parseCidr`, which this layer cannot import (tests/transport/
 * cidr_test.ts checks that the two agree).
 */
function isAddressOrRange(value: string): boolean {
  const slash = value.indexOf("/");
  const family = isIP((slash === -1 ? value : value.slice(0, slash)).replace(/%.*$/, ""));
  if (family === 0 || slash === -1) return family !== 0;
  const len = value.slice(slash + 1);
  return /^\d{1,3}$/.test(len) && Number(len) <= (family === 4 ? 32 : 128);
}

function isPort(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 65535;
}

function isDomain(value: string): boolean {
  // Validate the ASCII (A-label) form so that internationalised names are accepted too.
  const ascii = domainToASCII(value);
  if (ascii === "" || ascii.length > 253 || isIP(value) !== 0) return false;
  return ascii.split(".").every((label) => /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/.test(label));
}

const DURATION_UNITS: Readonly<Record<string, number>> = {
  s: 1,
  m: 60,
  h: 3600,
  d: 86400,
  w: 604800,
  y: 31536000,
};
const MIME_EXPECTED = 'expected a MIME type such as "image/png" or "image/*"';
const DURATION_EXPECTED =
  'expected seconds, a duration such as "7d" (s, m, h, d, w, y), or "never"';

/** Seconds in a duration written as seconds or "7d"; `Infinity` for "never". */
function parseDuration(value: unknown): number | undefined {
  if (typeof value === "number") return Number.isInteger(value) && value > 0 ? value : undefined;
  if (typeof value !== "string") return undefined;
  if (value === "never") return Infinity;
  const m = /^(\d+)\s*([smhdwy])$/.exec(value.trim());
  return m === null || Number(m[1]) === 0 ? undefined : Number(m[1]) * DURATION_UNITS[m[2]];
}

function duration(fallback: string) {
  return v.optional(
    v.pipe(
      v.custom<number | string>((x) => parseDuration(x) !== undefined, DURATION_EXPECTED),
      v.transform((x) => parseDuration(x)!),
    ),
    fallback,
  );
}

const HOST_EXPECTED = 'expected a domain name such as "example.org"';
const INTERFACE_EXPECTED = 'expected "*" or an IP address';

function interfaces(fallback: readonly string[]) {
  return v.optional(
    v.pipe(
      v.array(
        v.pipe(
          v.string(INTERFACE_EXPECTED),
          v.check((s) => s === "*" || isIP(s) !== 0, INTERFACE_EXPECTED),
        ),
        'expected an array of IP addresses or ["*"]',
      ),
      v.nonEmpty("expected at least one interface"),
    ),
    () => [...fallback],
  );
}

const ORIGIN_EXPECTED = 'expected "*" or an origin such as "https://chat.example.org"';

/** `scheme://host[:port]`, nothing after it. */
function isOrigin(s: string): boolean {
  if (s === "*") return true;
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") &&
      u.origin === s.toLowerCase().replace(/\/$/, "");
  } catch {
    return false;
  }
}

function isHttpUrl(s: string): boolean {
  try {
    const u = new URL(s);
    return (u.protocol === "http:" || u.protocol === "https:") && u.search === "" &&
      u.hash === "";
  } catch {
    return false;
  }
}

const S2S_TARGET_EXPECTED =
  'expected "host:port" such as "127.0.0.1:5269" or "[::1]:5269", or "tls://host:port"';

/** `host:port` (IPv6 in brackets), or undefined when it is not one. */
function parseTarget(s: string): { host: string; port: number; directTls?: boolean } | undefined {
  // "tls://": TLS from the first byte (XEP-0368) instead of STARTTLS.
  const directTls = s.startsWith("tls://");
  const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:\[\]\/]+)):(\d{1,5})$/.exec(directTls ? s.slice(6) : s);
  if (m === null) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  return { host: m[1] ?? m[2], port, ...(directTls ? { directTls } : {}) };
}

/**
 * `[s2s] hosts` as a map. The schema checks each entry, but a record drops keys such as
 * `constructor` and `__proto__`, which are names too: those are read from the document's own
 * entries and checked here the same way, so that no entry is silently lost.
 */
function s2sHostsOf(
  obj: unknown,
  checked: Readonly<Record<string, string>>,
  source: string,
): ReadonlyMap<string, { readonly host: string; readonly port: number }> {
  const out = new Map<string, { readonly host: string; readonly port: number }>();
  for (const [domain, target] of Object.entries(checked)) out.set(domain, parseTarget(target)!);
  const given = (obj as { s2s?: { hosts?: unknown } } | undefined)?.s2s?.hosts;
  if (typeof given !== "object" || given === null) return out;
  for (const [key, target] of Object.entries(given)) {
    const domain = key.toLowerCase();
    if (out.has(domain)) continue;
    if (!isDomain(domain)) fail(source, `s2s.hosts.${key}: ${HOST_EXPECTED}`);
    const parsed = typeof target === "string" ? parseTarget(target) : undefined;
    if (parsed === undefined) fail(source, `s2s.hosts.${key}: ${S2S_TARGET_EXPECTED}`);
    out.set(domain, parsed);
  }
  return out;
}

/**
 * The schema, built for each read instead of at import: a server reads its configuration once,
 * and a schema held by the module would stay in the heap for the life of the process.
 */
const schema = () =>
  table({
    hosts: v.optional(
      v.pipe(
        v.array(
          v.pipe(
            v.string(HOST_EXPECTED),
            v.toLowerCase(),
            v.check(isDomain, HOST_EXPECTED),
          ),
          "expected an array of domain names",
        ),
        v.nonEmpty("expected at least one host"),
      ),
      () => ["localhost"],
    ),
    data_dir: v.optional(
      v.pipe(v.string("expected a directory path"), v.nonEmpty("expected a directory path")),
      "./data",
    ),
    interfaces: interfaces(["*"]),
    c2s_port: integer(0, 65535, 5222),
    c2s_direct_tls_port: v.optional(
      v.custom<number | false>(
        (x) => x === false || isPort(x),
        "expected an integer from 0 to 65535, or false",
      ),
      5223,
    ),
    require_encryption: boolean(true),
    tls: v.optional(
      table({ cert: path(), key: path() }),
      {},
    ),
    limits: v.optional(
      table(Object.fromEntries(
        (Object.keys(LIMIT_KEYS) as (keyof Limits)[]).map((k) => [
          LIMIT_KEYS[k],
          k === "maxDepth"
            ? integer(LIMIT_MINIMUMS[k], 10000, DEFAULT_LIMITS[k])
            : integer(LIMIT_MINIMUMS[k], Number.MAX_SAFE_INTEGER, DEFAULT_LIMITS[k]),
        ]),
      )),
      {},
    ),
    auth: v.optional(
      table({
        scram_iterations: integer(4096, Number.MAX_SAFE_INTEGER, 4096),
        allow_plain: boolean(true),
        max_failures: integer(1, Number.MAX_SAFE_INTEGER, 5),
        max_failures_per_address: integer(1, Number.MAX_SAFE_INTEGER, 30),
        slow_down_after: integer(1, Number.MAX_SAFE_INTEGER, 5),
        failure_window: integer(1, Number.MAX_SAFE_INTEGER, 300),
      }),
      {},
    ),
    contact_info: v.optional(
      table(Object.fromEntries(
        ["abuse", "admin", "feedback", "sales", "security", "status", "support"].map((k) => [
          k,
          v.optional(
            v.array(
              v.pipe(v.string("expected a URI"), v.nonEmpty("expected a URI")),
              "expected an array of URIs",
            ),
          ),
        ]),
      )),
      {},
    ),
    archive_enabled: boolean(true),
    archive_expires_after: duration("7d"),
    archive_max_items: integer(1, Number.MAX_SAFE_INTEGER, 10000),
    allow_registration: boolean(false),
    registration_throttle: integer(1, Number.MAX_SAFE_INTEGER, 5),
    tombstone_expiry: duration("30d"),
    external_services: v.optional(
      v.array(
        table({
          type: v.pipe(v.string("expected a service type"), v.nonEmpty("expected a service type")),
          host: v.pipe(v.string("expected a host name"), v.nonEmpty("expected a host name")),
          port: v.optional(
            v.custom<number>((x) => isPort(x) && x !== 0, "expected an integer from 1 to 65535"),
          ),
          transport: v.optional(v.picklist(["tcp", "udp"], 'expected "tcp" or "udp"')),
          username: v.optional(v.string("expected a string")),
          password: v.optional(v.string("expected a string")),
          secret: v.optional(
            v.pipe(v.string("expected a shared secret"), v.nonEmpty("expected a shared secret")),
          ),
          ttl: v.optional(
            v.pipe(
              v.number("expected seconds"),
              v.integer("expected seconds"),
              v.minValue(1, "expected seconds"),
            ),
          ),
          restricted: v.optional(v.boolean("expected true or false")),
        }),
        "expected an array of tables ([[external_services]])",
      ),
      [],
    ),
    archive_policy: v.optional(
      v.picklist(["roster", "always", "never"], 'expected "roster", "always" or "never"'),
      "always",
    ),
    component_port: v.optional(
      v.custom<number | false>(
        (x) => x === false || isPort(x),
        "expected an integer from 0 to 65535, or false",
      ),
      5347,
    ),
    s2s_port: v.optional(
      v.custom<number | false>(
        (x) => x === false || isPort(x),
        "expected an integer from 0 to 65535, or false",
      ),
      5269,
    ),
    s2s_direct_tls_port: v.optional(
      v.custom<number | false>(
        (x) => x === false || isPort(x),
        "expected an integer from 0 to 65535, or false",
      ),
      5270,
    ),
    s2s_require_encryption: boolean(true),
    s2s_secure_auth: boolean(false),
    s2s: v.optional(
      table({
        hosts: v.optional(
          v.record(
            v.pipe(v.string(), v.toLowerCase(), v.check(isDomain, HOST_EXPECTED)),
            v.pipe(
              v.string(S2S_TARGET_EXPECTED),
              v.check((x) => parseTarget(x) !== undefined, S2S_TARGET_EXPECTED),
            ),
            'expected a table of domain = "host:port"',
          ),
          {},
        ),
        ca_file: v.optional(
          v.pipe(v.string("expected a file path"), v.nonEmpty("expected a file path")),
        ),
      }),
      {},
    ),
    component_interfaces: interfaces(["127.0.0.1"]),
    exempt_loopback: boolean(true),
    components: v.optional(
      v.array(
        table({
          domain: v.pipe(
            v.string(HOST_EXPECTED),
            v.toLowerCase(),
            v.check(isDomain, HOST_EXPECTED),
          ),
          secret: v.pipe(
            v.string("expected a shared secret"),
            v.nonEmpty("expected a shared secret"),
          ),
        }),
        "expected an array of tables ([[components]])",
      ),
      [],
    ),
    muc: v.optional(
      table({
        enabled: boolean(true),
        domain: v.optional(
          v.pipe(v.string(HOST_EXPECTED), v.toLowerCase(), v.check(isDomain, HOST_EXPECTED)),
        ),
        admins: bareJids(),
        creation: v.optional(
          v.picklist(["local", "admins", "anyone"], 'expected "local", "admins" or "anyone"'),
          "local",
        ),
        archiving: boolean(true),
      }),
      {},
    ),
    pubsub: v.optional(
      table({
        enabled: boolean(true),
        domain: v.optional(
          v.pipe(v.string(HOST_EXPECTED), v.toLowerCase(), v.check(isDomain, HOST_EXPECTED)),
        ),
        admins: bareJids(),
        create: v.optional(
          v.picklist(["admins", "local", "anyone"], 'expected "admins", "local" or "anyone"'),
          "admins",
        ),
      }),
      {},
    ),
    http: v.optional(
      table({
        http_port: v.optional(
          v.custom<number | false>(
            (x) => x === false || isPort(x),
            "expected an integer from 0 to 65535, or false",
          ),
          5280,
        ),
        https_port: v.optional(
          v.custom<number | false>(
            (x) => x === false || isPort(x),
            "expected an integer from 0 to 65535, or false",
          ),
          5281,
        ),
        http_interfaces: interfaces(["127.0.0.1"]),
        cors_origins: v.optional(
          v.array(
            v.pipe(v.string(ORIGIN_EXPECTED), v.check(isOrigin, ORIGIN_EXPECTED)),
            "expected an array of origins",
          ),
          [],
        ),
        trusted_proxies: v.optional(
          v.array(
            v.pipe(
              v.string(PROXY_EXPECTED),
              v.check(isAddressOrRange, PROXY_EXPECTED),
            ),
            "expected an array of IP addresses or CIDR ranges",
          ),
          [],
        ),
        public_url: v.optional(
          v.pipe(
            v.string("expected an http(s) URL"),
            v.check(isHttpUrl, 'expected an http(s) URL such as "https://xmpp.example.org/"'),
          ),
        ),
        secure_loopback: v.optional(v.boolean("expected true or false")),
      }),
      {},
    ),
    web_client: v.optional(
      table({ enabled: v.optional(v.boolean("expected true or false")) }),
      {},
    ),
    upload: v.optional(
      table({
        enabled: boolean(true),
        domain: v.optional(
          v.pipe(v.string(HOST_EXPECTED), v.toLowerCase(), v.check(isDomain, HOST_EXPECTED)),
        ),
        max_file_size: integer(1, Number.MAX_SAFE_INTEGER, 10485760),
        allowed_types: v.optional(
          v.array(
            v.pipe(
              v.string(MIME_EXPECTED),
              v.toLowerCase(),
              v.check(
                (s) => /^[a-z0-9!#$&^_.+-]+\/(?:\*|[a-z0-9!#$&^_.+-]+)$/.test(s),
                MIME_EXPECTED,
              ),
            ),
            "expected an array of MIME types",
          ),
          [],
        ),
        quota_per_user: integer(1, Number.MAX_SAFE_INTEGER, 104857600),
        quota_total: integer(1, Number.MAX_SAFE_INTEGER, 1073741824),
        expires_after: duration("7d"),
      }),
      {},
    ),
    log_level: v.optional(
      v.picklist(LOG_LEVELS, `expected one of ${LOG_LEVELS.map((l) => `"${l}"`).join(", ")}`),
      "info",
    ),
  });

type RawConfig = v.InferOutput<ReturnType<typeof schema>>;

/** Describes a rejected value briefly, in TOML terms, for an error message. */
function describe(value: unknown): string {
  if (value === null || value === undefined) return "nothing";
  if (value instanceof Date) return `the date ${value.toISOString()}`;
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") return "a table";
  if (typeof value === "string") return JSON.stringify(value);
  return String(value);
}

function formatPath(path: readonly unknown[]): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out;
}

function issueMessage(issue: v.BaseIssue<unknown>): string {
  const keys = (issue.path ?? []).map((item) => item.key);
  const where = keys.length === 0 ? "" : `${formatPath(keys)}: `;
  // A strict object reports an unknown key with the key itself as the input.
  if (issue.type === "strict_object" && issue.expected === "never") return `${where}unknown key`;
  // A required key that is missing is reported by its table with nothing as the input.
  if (issue.type === "strict_object" && issue.input === undefined && keys.length > 0) {
    return `${where}required`;
  }
  return `${where}${issue.message}, got ${describe(issue.input)}`;
}

function fail(source: string, message: string): never {
  throw new ConfigError(`config ${source}: ${message}`);
}

/** Checks that relate several keys, which the per-key schema cannot express. */
function checkRelations(raw: RawConfig, source: string): void {
  if (raw.tls.cert !== undefined && raw.tls.key === undefined) {
    fail(source, "tls.key: required when tls.cert is set");
  }
  if (raw.tls.key !== undefined && raw.tls.cert === undefined) {
    fail(source, "tls.cert: required when tls.key is set");
  }
  const seen = new Set<string>();
  raw.hosts.forEach((host, i) => {
    if (seen.has(host)) fail(source, `hosts[${i}]: duplicate host "${host}"`);
    seen.add(host);
  });
  if (raw.c2s_direct_tls_port !== false && raw.c2s_direct_tls_port !== 0) {
    if (raw.c2s_direct_tls_port === raw.c2s_port) {
      fail(source, "c2s_direct_tls_port: must differ from c2s_port");
    }
  }
  for (
    const [key, list] of [
      ["interfaces", raw.interfaces],
      ["component_interfaces", raw.component_interfaces],
      ["http.http_interfaces", raw.http.http_interfaces],
    ] as const
  ) {
    if (list.length > 1 && list.includes("*")) {
      fail(source, `${key}: "*" already means every address and cannot be combined`);
    }
  }
  const components = new Set<string>();
  raw.components.forEach(({ domain }, i) => {
    if (components.has(domain)) fail(source, `components[${i}].domain: duplicate "${domain}"`);
    if (raw.hosts.includes(domain)) {
      fail(source, `components[${i}].domain: "${domain}" is already one of hosts`);
    }
    components.add(domain);
  });
  const taken = new Set([...raw.hosts, ...components]);
  for (
    const [key, on, domain] of [
      ["muc", raw.muc.enabled, raw.muc.domain ?? `conference.${raw.hosts[0]}`],
      ["pubsub", raw.pubsub.enabled, raw.pubsub.domain ?? `pubsub.${raw.hosts[0]}`],
      ["upload", raw.upload.enabled, raw.upload.domain ?? `upload.${raw.hosts[0]}`],
    ] as const
  ) {
    if (!on) continue;
    if (taken.has(domain)) {
      fail(source, `${key}.domain: "${domain}" is already a host, a component or a service`);
    }
    taken.add(domain);
  }
  if (raw.component_port !== false && raw.component_port !== 0) {
    if (raw.component_port === raw.c2s_port || raw.component_port === raw.c2s_direct_tls_port) {
      fail(source, "component_port: must differ from the client ports");
    }
  }
  const s2sPort = raw.s2s_port;
  if (s2sPort !== false && s2sPort !== 0) {
    if (
      s2sPort === raw.c2s_port || s2sPort === raw.c2s_direct_tls_port ||
      s2sPort === raw.component_port
    ) {
      fail(source, "s2s_port: must differ from the client and component ports");
    }
  }
  const s2sTlsPort = raw.s2s_direct_tls_port;
  if (s2sTlsPort !== false && s2sTlsPort !== 0) {
    if (
      s2sTlsPort === raw.c2s_port || s2sTlsPort === raw.c2s_direct_tls_port ||
      s2sTlsPort === raw.component_port || s2sTlsPort === s2sPort
    ) {
      fail(source, "s2s_direct_tls_port: must differ from the client, component and s2s ports");
    }
  }
  const httpPort = raw.http.http_port;
  if (httpPort !== false && httpPort !== 0) {
    if (
      httpPort === raw.c2s_port || httpPort === raw.c2s_direct_tls_port ||
      httpPort === raw.component_port
    ) {
      fail(source, "http.http_port: must differ from the client and component ports");
    }
  }
  const httpsPort = raw.http.https_port;
  if (httpsPort !== false && httpsPort !== 0) {
    if (
      httpsPort === raw.c2s_port || httpsPort === raw.c2s_direct_tls_port ||
      httpsPort === raw.component_port || httpsPort === httpPort
    ) {
      fail(source, "http.https_port: must differ from the client, component and HTTP ports");
    }
  }
  if (raw.limits.stanza_size_unauthed > raw.limits.stanza_size) {
    fail(source, "limits.stanza_size_unauthed: must not exceed limits.stanza_size");
  }
}

/**
 * Validates a plain object whose keys are the TOML key names (`data_dir`, `[limits]` as a nested
 * object, ...) and returns the configuration with defaults filled in.
 *
 * @param obj the parsed document
 * @param source names the origin in error messages, usually the file path
 * @throws {ConfigError} naming the first offending key path and what was expected
 */
export function configFromObject(obj: unknown, source: string): Config {
  const result = v.safeParse(schema(), obj);
  if (!result.success) {
    fail(source, result.issues.map(issueMessage).join(`\nconfig ${source}: `));
  }
  const raw = result.output;
  checkRelations(raw, source);
  // A server for this machine alone: the web client is on and loopback counts as encrypted.
  const localOnly = raw.hosts.every((h) => h === "localhost");
  const tls: TlsConfig = raw.tls.cert !== undefined && raw.tls.key !== undefined
    ? { cert: raw.tls.cert, key: raw.tls.key }
    : {};
  return {
    hosts: raw.hosts,
    dataDir: raw.data_dir,
    interfaces: raw.interfaces,
    c2sPort: raw.c2s_port,
    c2sDirectTlsPort: raw.c2s_direct_tls_port,
    requireEncryption: raw.require_encryption,
    tls,
    limits: Object.fromEntries(
      (Object.keys(LIMIT_KEYS) as (keyof Limits)[]).map((k) => [k, raw.limits[LIMIT_KEYS[k]]]),
    ) as unknown as Limits,
    auth: {
      scramIterations: raw.auth.scram_iterations,
      allowPlain: raw.auth.allow_plain,
      maxFailures: raw.auth.max_failures,
      maxFailuresPerAddress: raw.auth.max_failures_per_address,
      slowDownAfter: raw.auth.slow_down_after,
      failureWindow: raw.auth.failure_window,
    },
    contactInfo: Object.fromEntries(
      Object.entries(raw.contact_info).filter(([, v]) => v !== undefined),
    ) as Record<string, readonly string[]>,
    archive: {
      enabled: raw.archive_enabled,
      expiresAfter: raw.archive_expires_after,
      maxItems: raw.archive_max_items,
      policy: raw.archive_policy,
    },
    logLevel: raw.log_level,
    allowRegistration: raw.allow_registration,
    registrationThrottle: raw.registration_throttle,
    tombstoneExpiry: raw.tombstone_expiry,
    externalServices: raw.external_services,
    componentPort: raw.component_port,
    componentInterfaces: raw.component_interfaces,
    components: raw.components,
    exemptLoopback: raw.exempt_loopback,
    muc: raw.muc.enabled
      ? {
        domain: raw.muc.domain ?? `conference.${raw.hosts[0]}`,
        admins: raw.muc.admins,
        creation: raw.muc.creation,
        archiving: raw.muc.archiving,
      }
      : undefined,
    pubsub: raw.pubsub.enabled
      ? {
        domain: raw.pubsub.domain ?? `pubsub.${raw.hosts[0]}`,
        admins: raw.pubsub.admins,
        create: raw.pubsub.create,
      }
      : undefined,
    http: {
      port: raw.http.http_port,
      httpsPort: raw.http.https_port,
      interfaces: raw.http.http_interfaces,
      corsOrigins: raw.http.cors_origins,
      trustedProxies: raw.http.trusted_proxies,
      ...(raw.http.public_url === undefined ? {} : { publicUrl: raw.http.public_url }),
      secureLoopback: raw.http.secure_loopback ?? localOnly,
    },
    upload: raw.upload.enabled
      ? {
        domain: raw.upload.domain ?? `upload.${raw.hosts[0]}`,
        maxFileSize: raw.upload.max_file_size,
        allowedTypes: raw.upload.allowed_types,
        quotaPerUser: raw.upload.quota_per_user,
        quotaTotal: raw.upload.quota_total,
        expiresAfter: raw.upload.expires_after,
      }
      : undefined,
    webClient: { enabled: raw.web_client.enabled ?? localOnly },
    s2s: {
      port: raw.s2s_port,
      directTlsPort: raw.s2s_direct_tls_port,
      ...(raw.s2s.ca_file === undefined ? {} : { caFile: raw.s2s.ca_file }),
      requireEncryption: raw.s2s_require_encryption,
      secureAuth: raw.s2s_secure_auth,
      hosts: s2sHostsOf(obj, raw.s2s.hosts, source),
    },
  };
}

/** The configuration used when no file is given: every key at its default. */
export function defaultConfig(): Config {
  return configFromObject({}, "(defaults)");
}

/**
 * Parses and validates TOML text.
 *
 * @param text the document
 * @param source names the origin in error messages, usually the file path
 * @throws {ConfigError} on a syntax error or an invalid key
 */
export function parseConfig(text: string, source: string): Config {
  let doc: unknown;
  try {
    doc = parseToml(text);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    fail(source, `invalid TOML: ${detail}`);
  }
  return configFromObject(doc, source);
}

/**
 * Reads the configuration file.
 *
 * @param path a file that must exist; when omitted, {@link DEFAULT_CONFIG_PATH} is read if it
 *   exists, and the defaults are used if it does not
 * @throws {ConfigError} when the file cannot be read or is invalid
 */
export async function loadConfig(path?: string): Promise<Config> {
  const file = path ?? DEFAULT_CONFIG_PATH;
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (err) {
    if (path === undefined && err instanceof Deno.errors.NotFound) return defaultConfig();
    const detail = err instanceof Deno.errors.NotFound
      ? "file not found"
      : err instanceof Error
      ? err.message
      : String(err);
    fail(file, `cannot read: ${detail}`);
  }
  return parseConfig(text, file);
}

/** The result of {@link parseCommonArgs}. */
export interface CommonArgs {
  /** The value of `--config`, when given. */
  readonly configPath?: string;
  /** The other arguments, in order. */
  readonly rest: string[];
}

/**
 * Takes `--config FILE` or `--config=FILE` out of command-line arguments, wherever it appears
 * before a `--` terminator; everything after `--` is passed through untouched.
 *
 * @throws {ConfigError} when the option has no value or is given twice
 */
export function parseCommonArgs(args: readonly string[]): CommonArgs {
  let configPath: string | undefined;
  const rest: string[] = [];
  const take = (value: string | undefined) => {
    // A following option is far more likely a forgotten value than a file named "-x".
    if (value === undefined || value === "" || value.startsWith("-")) {
      throw new ConfigError("--config needs a file path");
    }
    if (configPath !== undefined) throw new ConfigError("--config given more than once");
    configPath = value;
  };
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    if (arg === "--") {
      rest.push(...args.slice(i));
      break;
    }
    if (arg === "--config") {
      take(args[i + 1]);
      i++;
    } else if (arg.startsWith("--config=")) {
      take(arg.slice("--config=".length));
    } else {
      rest.push(arg);
    }
  }
  return configPath === undefined ? { rest } : { configPath, rest };
}
