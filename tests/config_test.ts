import { DEFAULT_LIMITS } from "../lib/limits.ts";
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  type Config,
  ConfigError,
  configFromObject,
  DEFAULT_CONFIG_PATH,
  defaultConfig,
  loadConfig,
  parseCommonArgs,
  parseConfig,
} from "../lib/config.ts";

const DEFAULTS: Config = {
  hosts: ["localhost"],
  dataDir: "./data",
  interfaces: ["*"],
  c2sPort: 5222,
  c2sDirectTlsPort: 5223,
  requireEncryption: true,
  tls: {},
  limits: DEFAULT_LIMITS,
  auth: {
    scramIterations: 4096,
    allowPlain: true,
    maxFailures: 5,
    maxFailuresPerAddress: 30,
    slowDownAfter: 5,
    failureWindow: 300,
  },
  archive: { enabled: true, expiresAfter: 604800, maxItems: 10000, policy: "always" },
  contactInfo: {},
  logLevel: "info",
  allowRegistration: false,
  registrationThrottle: 5,
  tombstoneExpiry: 2592000,
  externalServices: [],
  componentPort: 5347,
  componentInterfaces: ["127.0.0.1"],
  components: [],
  exemptLoopback: true,
  muc: { domain: "conference.localhost", admins: [], creation: "local", archiving: true },
  pubsub: { domain: "pubsub.localhost", admins: [], create: "admins" },
  http: {
    port: 5280,
    httpsPort: 5281,
    interfaces: ["127.0.0.1"],
    corsOrigins: [],
    trustedProxies: [],
    secureLoopback: true,
  },
  upload: {
    domain: "upload.localhost",
    maxFileSize: 10485760,
    allowedTypes: [],
    quotaPerUser: 104857600,
    quotaTotal: 1073741824,
    expiresAfter: 604800,
  },
  webClient: { enabled: true },
  s2s: {
    port: 5269,
    directTlsPort: 5270,
    requireEncryption: true,
    secureAuth: false,
    hosts: new Map(),
  },
};

/** Asserts that `fn` throws a ConfigError whose message is exactly `message`. */
function assertConfigError(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    if (typeof message === "string") assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

Deno.test("defaults: no keys, empty text and defaultConfig() agree", () => {
  assert.deepEqual(defaultConfig(), DEFAULTS);
  assert.deepEqual(parseConfig("", "empty.toml"), DEFAULTS);
  assert.deepEqual(configFromObject({}, "obj"), DEFAULTS);
  assert.deepEqual(
    parseConfig("[tls]\n[limits]\n[auth]\n", "tables.toml"),
    DEFAULTS,
  );
});

Deno.test("the example file sets every key to its default", async () => {
  const url = new URL("../xmpp.example.toml", import.meta.url);
  const text = await Deno.readTextFile(url);
  assert.deepEqual(parseConfig(text, "xmpp.example.toml"), DEFAULTS);
  // Each key of the schema appears in the example (uncommented, except tls paths).
  for (
    const key of [
      "hosts",
      "data_dir",
      "interfaces",
      "c2s_port",
      "c2s_direct_tls_port",
      "component_port",
      "component_interfaces",
      "# domain",
      "# secret",
      "require_encryption",
      "log_level",
      "stanza_size",
      "stanza_size_unauthed",
      "max_depth",
      "auth_timeout",
      "idle_timeout",
      "scram_iterations",
      "allow_plain",
      "max_failures",
      "failure_window",
      "offline_messages",
      "sm_resume_timeout",
      "archive_enabled",
      "archive_expires_after",
      "archive_max_items",
      "archive_policy",
      "allow_registration",
      "registration_throttle",
      "tombstone_expiry",
      "# type",
      "enabled",
      "admins",
      "create",
      "creation",
      "archiving",
      "# cert",
      "# key",
      "http_port",
      "https_port",
      "http_interfaces",
      "cors_origins",
      "trusted_proxies",
      "# public_url",
      "# secure_loopback",
      "s2s_port",
      "s2s_direct_tls_port",
      "s2s_require_encryption",
      "s2s_secure_auth",
      "# hosts",
      "# ca_file",
      "# enabled",
    ]
  ) {
    assert.match(text, new RegExp(`^${key} = `, "m"), key);
  }
});

Deno.test("every key is parsed", () => {
  const text = `
hosts = ["Example.ORG", "chat.example.org"]
data_dir = "/var/lib/xmpp"
interfaces = ["127.0.0.1", "::1"]
c2s_port = 0
c2s_direct_tls_port = false
require_encryption = false
log_level = "debug"
archive_enabled = false
archive_expires_after = "2d"
archive_max_items = 50
archive_policy = "always"
allow_registration = true
registration_throttle = 2
tombstone_expiry = "never"
component_port = 5400
component_interfaces = ["*"]
exempt_loopback = false
s2s_port = 5300
s2s_direct_tls_port = 5301
s2s_require_encryption = false
s2s_secure_auth = true

[muc]
domain = "Rooms.example.org"
admins = ["Boss@example.org"]
creation = "admins"
archiving = false

[pubsub]
domain = "PubSub.example.org"
admins = ["Boss@example.org"]
create = "local"

[http]
http_port = 8080
https_port = 8443
http_interfaces = ["*"]
cors_origins = ["https://chat.example.org", "*"]
trusted_proxies = ["10.0.0.1", "::1"]
public_url = "https://xmpp.example.org/"

[s2s]
hosts = { "Remote.example" = "192.0.2.9:5270", "v6.example" = "[2001:db8::1]:5269", "d.example" = "tls://192.0.2.8:5270" }
ca_file = "/etc/xmpp/ca.pem"

[upload]
domain = "Files.example.org"
max_file_size = 5000
allowed_types = ["Image/*", "text/plain"]
quota_per_user = 20000
quota_total = 90000
expires_after = "1d"

[[components]]
domain = "Gateway.example.org"
secret = "s"

[[external_services]]
type = "turn"
host = "turn.example.org"
port = 3478
transport = "udp"
secret = "s3cret"
ttl = 600

[[external_services]]
type = "ftp"
host = "ftp.example.org"
username = "john"
password = "pw"
restricted = true

[contact_info]
abuse = ["mailto:abuse@example.org"]
admin = []

[tls]
cert = "/etc/xmpp/cert.pem"
key = "/etc/xmpp/key.pem"

[limits]
stanza_size = 65536
stanza_size_unauthed = 4096
max_depth = 16
auth_timeout = 30
idle_timeout = 300
offline_messages = 10
sm_resume_timeout = 60

[auth]
scram_iterations = 10000
allow_plain = false
max_failures = 3
failure_window = 60
`;
  const expected: Config = {
    hosts: ["example.org", "chat.example.org"],
    dataDir: "/var/lib/xmpp",
    interfaces: ["127.0.0.1", "::1"],
    c2sPort: 0,
    c2sDirectTlsPort: false,
    requireEncryption: false,
    tls: { cert: "/etc/xmpp/cert.pem", key: "/etc/xmpp/key.pem" },
    limits: {
      ...DEFAULT_LIMITS,
      stanzaSize: 65536,
      stanzaSizeUnauthed: 4096,
      maxDepth: 16,
      authTimeout: 30,
      idleTimeout: 300,
      offlineMessages: 10,
      smResumeTimeout: 60,
    },
    auth: {
      scramIterations: 10000,
      allowPlain: false,
      maxFailures: 3,
      maxFailuresPerAddress: 30,
      slowDownAfter: 5,
      failureWindow: 60,
    },
    archive: { enabled: false, expiresAfter: 172800, maxItems: 50, policy: "always" },
    contactInfo: { abuse: ["mailto:abuse@example.org"], admin: [] },
    logLevel: "debug",
    allowRegistration: true,
    registrationThrottle: 2,
    tombstoneExpiry: Infinity,
    externalServices: [
      {
        type: "turn",
        host: "turn.example.org",
        port: 3478,
        transport: "udp",
        secret: "s3cret",
        ttl: 600,
      },
      { type: "ftp", host: "ftp.example.org", username: "john", password: "pw", restricted: true },
    ],
    componentPort: 5400,
    componentInterfaces: ["*"],
    components: [{ domain: "gateway.example.org", secret: "s" }],
    exemptLoopback: false,
    muc: {
      domain: "rooms.example.org",
      admins: ["boss@example.org"],
      creation: "admins",
      archiving: false,
    },
    pubsub: { domain: "pubsub.example.org", admins: ["boss@example.org"], create: "local" },
    http: {
      port: 8080,
      httpsPort: 8443,
      interfaces: ["*"],
      corsOrigins: ["https://chat.example.org", "*"],
      trustedProxies: ["10.0.0.1", "::1"],
      publicUrl: "https://xmpp.example.org/",
      secureLoopback: false,
    },
    upload: {
      domain: "files.example.org",
      maxFileSize: 5000,
      allowedTypes: ["image/*", "text/plain"],
      quotaPerUser: 20000,
      quotaTotal: 90000,
      expiresAfter: 86400,
    },
    webClient: { enabled: false },
    s2s: {
      port: 5300,
      directTlsPort: 5301,
      caFile: "/etc/xmpp/ca.pem",
      requireEncryption: false,
      secureAuth: true,
      hosts: new Map<string, { host: string; port: number; directTls?: boolean }>([
        ["remote.example", { host: "192.0.2.9", port: 5270 }],
        ["v6.example", { host: "2001:db8::1", port: 5269 }],
        ["d.example", { host: "192.0.2.8", port: 5270, directTls: true }],
      ]),
    },
  };
  assert.deepEqual(parseConfig(text, "full.toml"), expected);
});

Deno.test("s2s: static hosts named like prototype properties are kept or refused, never dropped", () => {
  const c = parseConfig('[s2s]\nhosts = { "constructor" = "127.0.0.1:5270" }', "a");
  assert.deepEqual(c.s2s.hosts.get("constructor")?.port, 5270);
  assert.equal(c.s2s.hosts.size, 1);
  // Not a domain name at all: said so.
  assert.throws(
    () => parseConfig('[s2s]\nhosts = { "__proto__" = "127.0.0.1:5271" }', "a"),
    /s2s\.hosts\.__proto__: expected a domain name/,
  );
  assert.throws(
    () => parseConfig('[s2s]\nhosts = { "constructor" = "nope" }', "a"),
    /s2s\.hosts\.constructor: expected "host:port"/,
  );
});

Deno.test("s2s: ports, static hosts and their errors", () => {
  assert.equal(parseConfig("s2s_port = false", "a").s2s.port, false);
  assertConfigError(
    () => parseConfig("s2s_port = 5222", "a"),
    "config a: s2s_port: must differ from the client and component ports",
  );
  assertConfigError(
    () => parseConfig("s2s_direct_tls_port = 5269", "a"),
    "config a: s2s_direct_tls_port: must differ from the client, component and s2s ports",
  );
  assert.equal(parseConfig("s2s_direct_tls_port = false", "a").s2s.directTlsPort, false);
  for (const bad of ["nohost", "h:0", "h:70000", "[::1:5269", "a:b:c", "tls://h", "tcp://h:1"]) {
    assert.throws(
      () => parseConfig(`[s2s]\nhosts = { "x.example" = "${bad}" }`, "a"),
      /s2s\.hosts\.x\.example: expected "host:port"/,
      bad,
    );
  }
});

Deno.test("the web client and loopback as encrypted: on for localhost only, unless set", () => {
  const local = parseConfig("", "a");
  assert.equal(local.webClient.enabled, true);
  assert.equal(local.http.secureLoopback, true);
  const real = parseConfig('hosts = ["example.org"]', "a");
  assert.equal(real.webClient.enabled, false);
  assert.equal(real.http.secureLoopback, false);
  const mixed = parseConfig('hosts = ["localhost", "example.org"]', "a");
  assert.equal(mixed.webClient.enabled, false);
  const set = parseConfig(
    'hosts = ["example.org"]\n[web_client]\nenabled = true\n[http]\nsecure_loopback = true',
    "a",
  );
  assert.equal(set.webClient.enabled, true);
  assert.equal(set.http.secureLoopback, true);
  const off = parseConfig("[web_client]\nenabled = false\n[http]\nsecure_loopback = false", "a");
  assert.equal(off.webClient.enabled, false);
  assert.equal(off.http.secureLoopback, false);
  assert.throws(
    () => parseConfig('[web_client]\nenabled = "yes"', "a"),
    /web_client\.enabled: expected true or false/,
  );
});

Deno.test("a direct TLS port number and a free port are accepted", () => {
  assert.equal(parseConfig("c2s_direct_tls_port = 5300", "a").c2sDirectTlsPort, 5300);
  assert.equal(parseConfig("c2s_direct_tls_port = 0", "a").c2sDirectTlsPort, 0);
  // Both ports 0: two free ports are picked, so they do not clash.
  const both = parseConfig("c2s_port = 0\nc2s_direct_tls_port = 0", "a");
  assert.equal(both.c2sPort, 0);
  assert.equal(both.c2sDirectTlsPort, 0);
});

Deno.test("unknown keys are errors naming the key path", () => {
  assertConfigError(
    () => parseConfig('hostz = ["a.org"]', "xmpp.toml"),
    "config xmpp.toml: hostz: unknown key",
  );
  assertConfigError(
    () => parseConfig("[limits]\nstanza_sise = 5000", "xmpp.toml"),
    "config xmpp.toml: limits.stanza_sise: unknown key",
  );
  assertConfigError(
    () => parseConfig("[nope]\nx = 1", "xmpp.toml"),
    "config xmpp.toml: nope: unknown key",
  );
});

Deno.test("wrong types name the key path, the expectation and the value", () => {
  const cases: readonly (readonly [string, string])[] = [
    [
      '[limits]\nstanza_size = "big"',
      'limits.stanza_size: expected an integer >= 1024, got "big"',
    ],
    ["[limits]\nstanza_size = 100", "limits.stanza_size: expected an integer >= 1024, got 100"],
    ["[limits]\nmax_depth = 1.5", "limits.max_depth: expected an integer from 2 to 10000, got 1.5"],
    [
      "[auth]\nscram_iterations = 1000",
      "auth.scram_iterations: expected an integer >= 4096, got 1000",
    ],
    ['[auth]\nallow_plain = "yes"', 'auth.allow_plain: expected true or false, got "yes"'],
    ["require_encryption = 1", "require_encryption: expected true or false, got 1"],
    ['hosts = "localhost"', 'hosts: expected an array of domain names, got "localhost"'],
    ['hosts = ["ok.org", 5]', 'hosts[1]: expected a domain name such as "example.org", got 5'],
    [
      'hosts = ["bad host"]',
      'hosts[0]: expected a domain name such as "example.org", got "bad host"',
    ],
    ["hosts = []", "hosts: expected at least one host, got an array"],
    ['interfaces = ["eth0"]', 'interfaces[0]: expected "*" or an IP address, got "eth0"'],
    ["data_dir = 7", "data_dir: expected a directory path, got 7"],
    [
      'log_level = "loud"',
      'log_level: expected one of "trace", "debug", "info", "warning", "error", "fatal", got "loud"',
    ],
    ["limits = 5", "limits: expected a table, got 5"],
    ["limits = []", "limits: expected a table, got an array"],
    ['[tls]\ncert = 1\nkey = "k"', "tls.cert: expected a file path, got 1"],
    ["c2s_port = 2024-01-01", "c2s_port: expected an integer from 0 to 65535, got the date"],
  ];
  for (const [text, message] of cases) {
    assertConfigError(
      () => parseConfig(text, "xmpp.toml"),
      new RegExp(`^${RegExp.escape(`config xmpp.toml: ${message}`)}`),
    );
  }
});

Deno.test("port ranges", () => {
  for (const port of [0, 1, 5222, 65535]) {
    assert.equal(configFromObject({ c2s_port: port }, "p").c2sPort, port);
  }
  for (const port of [-1, 65536, 1.5]) {
    assertConfigError(
      () => configFromObject({ c2s_port: port }, "p"),
      `config p: c2s_port: expected an integer from 0 to 65535, got ${port}`,
    );
    assertConfigError(
      () => configFromObject({ c2s_direct_tls_port: port }, "p"),
      `config p: c2s_direct_tls_port: expected an integer from 0 to 65535, or false, got ${port}`,
    );
  }
  assertConfigError(
    () => configFromObject({ c2s_direct_tls_port: true }, "p"),
    "config p: c2s_direct_tls_port: expected an integer from 0 to 65535, or false, got true",
  );
  assertConfigError(
    () => configFromObject({ c2s_port: 6000, c2s_direct_tls_port: 6000 }, "p"),
    "config p: c2s_direct_tls_port: must differ from c2s_port",
  );
});

Deno.test("tls cert and key: both or neither", () => {
  assertConfigError(
    () => parseConfig('[tls]\ncert = "c.pem"', "x.toml"),
    "config x.toml: tls.key: required when tls.cert is set",
  );
  assertConfigError(
    () => parseConfig('[tls]\nkey = "k.pem"', "x.toml"),
    "config x.toml: tls.cert: required when tls.key is set",
  );
  assert.deepEqual(parseConfig("[tls]", "x.toml").tls, {});
  assert.deepEqual(
    configFromObject({ tls: { cert: "c", key: "k" } }, "x").tls,
    { cert: "c", key: "k" },
  );
});

Deno.test("relations between keys are checked", () => {
  assertConfigError(
    () => configFromObject({ interfaces: ["*", "127.0.0.1"] }, "r"),
    'config r: interfaces: "*" already means every address and cannot be combined',
  );
  assertConfigError(
    () => configFromObject({ hosts: ["a.org", "A.org"] }, "r"),
    'config r: hosts[1]: duplicate host "a.org"',
  );
  assertConfigError(
    () => configFromObject({ limits: { stanza_size: 2048, stanza_size_unauthed: 4096 } }, "r"),
    "config r: limits.stanza_size_unauthed: must not exceed limits.stanza_size",
  );
});

Deno.test("several problems are all reported", () => {
  assert.throws(
    () => configFromObject({ c2s_port: "x", log_level: 3 }, "m"),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const lines = err.message.split("\n");
      assert.equal(lines.length, 2);
      assert.match(lines[0], /^config m: c2s_port: /);
      assert.match(lines[1], /^config m: log_level: /);
      return true;
    },
  );
});

Deno.test("a non-table document and invalid TOML are errors", () => {
  assertConfigError(() => configFromObject(null, "n"), "config n: expected a table, got nothing");
  assertConfigError(() => configFromObject([], "n"), "config n: expected a table, got an array");
  assertConfigError(
    () => parseConfig("hosts = [", "bad.toml"),
    /^config bad\.toml: invalid TOML: /,
  );
});

Deno.test("internationalised host names are accepted and lowercased", () => {
  assert.deepEqual(configFromObject({ hosts: ["Bücher.Example"] }, "i").hosts, ["bücher.example"]);
});

Deno.test("parseCommonArgs extracts --config", () => {
  assert.deepEqual(parseCommonArgs([]), { rest: [] });
  assert.deepEqual(parseCommonArgs(["serve"]), { rest: ["serve"] });
  assert.deepEqual(parseCommonArgs(["--config", "a.toml", "serve"]), {
    configPath: "a.toml",
    rest: ["serve"],
  });
  assert.deepEqual(parseCommonArgs(["adduser", "--config=b.toml", "alice@localhost"]), {
    configPath: "b.toml",
    rest: ["adduser", "alice@localhost"],
  });
  // After "--" nothing is interpreted.
  assert.deepEqual(parseCommonArgs(["x", "--", "--config", "c"]), {
    rest: ["x", "--", "--config", "c"],
  });
  for (
    const args of [["--config"], ["--config="], ["--config", "--verbose"], ["serve", "--config"]]
  ) {
    assert.throws(() => parseCommonArgs(args), {
      name: "ConfigError",
      message: "--config needs a file path",
    });
  }
  assert.throws(() => parseCommonArgs(["--config=a", "--config", "b"]), {
    name: "ConfigError",
    message: "--config given more than once",
  });
});

Deno.test("loadConfig reads the given file, and a missing given file is an error", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = join(dir, "server.toml");
    await Deno.writeTextFile(file, 'hosts = ["example.net"]\n[limits]\nmax_depth = 8\n');
    const config = await loadConfig(file);
    assert.deepEqual(config.hosts, ["example.net"]);
    assert.equal(config.limits.maxDepth, 8);
    assert.equal(config.c2sPort, 5222);

    const missing = join(dir, "missing.toml");
    await assert.rejects(() => loadConfig(missing), {
      name: "ConfigError",
      message: `config ${missing}: cannot read: file not found`,
    });

    await Deno.writeTextFile(file, 'log_level = "chatty"\n');
    await assert.rejects(() => loadConfig(file), (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.ok(err.message.startsWith(`config ${file}: log_level: `), err.message);
      return true;
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("loadConfig without a path: ./xmpp.toml if present, else defaults", async () => {
  // Run in a child process with its own working directory: Deno.chdir would affect tests in
  // other files that run in parallel in this process.
  const moduleUrl = new URL("../lib/config.ts", import.meta.url).href;
  const script = `
    const { loadConfig } = await import(${JSON.stringify(moduleUrl)});
    try {
      console.log(JSON.stringify(await loadConfig()));
    } catch (err) {
      console.log(JSON.stringify({ error: err.name + ": " + err.message }));
    }
  `;
  const configUrl = new URL("../deno.json", import.meta.url);
  async function loadIn(dir: string): Promise<unknown> {
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--config", configUrl.pathname, script],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(code, 0, new TextDecoder().decode(stderr));
    return JSON.parse(new TextDecoder().decode(stdout));
  }
  const dir = await Deno.makeTempDir();
  // What the child prints is JSON (a Map prints as {}).
  const asJson = (c: Config) => JSON.parse(JSON.stringify(c));
  try {
    assert.deepEqual(await loadIn(dir), asJson(DEFAULTS));
    await Deno.writeTextFile(join(dir, DEFAULT_CONFIG_PATH), "c2s_port = 15222\n");
    assert.deepEqual(await loadIn(dir), asJson({ ...DEFAULTS, c2sPort: 15222 }));
    await Deno.writeTextFile(join(dir, DEFAULT_CONFIG_PATH), 'c2s_port = "x"\n');
    assert.deepEqual(await loadIn(dir), {
      error: "ConfigError: config xmpp.toml: c2s_port: expected an integer from 0 to 65535, " +
        'got "x"',
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("archive durations accept seconds, units and never", () => {
  assert.equal(parseConfig("archive_expires_after = 3600", "a").archive.expiresAfter, 3600);
  assert.equal(parseConfig('archive_expires_after = "1w"', "a").archive.expiresAfter, 604800);
  assert.equal(parseConfig('archive_expires_after = "never"', "a").archive.expiresAfter, Infinity);
  assertConfigError(
    () => parseConfig('archive_expires_after = "soon"', "a.toml"),
    /archive_expires_after: expected seconds, a duration/,
  );
});

Deno.test("external services are checked per key", () => {
  assertConfigError(
    () => parseConfig('[[external_services]]\ntype = "stun"', "x.toml"),
    "config x.toml: external_services[0].host: required",
  );
  assertConfigError(
    () => parseConfig('[[external_services]]\ntype = "stun"\nhost = "h"\ntransport = "sctp"', "x"),
    /external_services\[0\]\.transport: expected "tcp" or "udp", got "sctp"/,
  );
  assertConfigError(
    () => parseConfig('[[external_services]]\ntype = "stun"\nhost = "h"\nport = 0', "x"),
    /external_services\[0\]\.port: expected an integer from 1 to 65535, got 0/,
  );
  assertConfigError(() => parseConfig('tombstone_expiry = "soon"', "x"), /tombstone_expiry: /);
});

Deno.test("components are validated", () => {
  assert.equal(parseConfig("component_port = false", "a").componentPort, false);
  assert.equal(parseConfig("component_port = 0", "a").componentPort, 0);
  assertConfigError(
    () => configFromObject({ components: [{ domain: "not a domain", secret: "s" }] }, "c"),
    'config c: components[0].domain: expected a domain name such as "example.org", got "not a domain"',
  );
  assertConfigError(
    () => configFromObject({ components: [{ domain: "gw.localhost", secret: "" }] }, "c"),
    'config c: components[0].secret: expected a shared secret, got ""',
  );
  assertConfigError(
    () => configFromObject({ components: [{ domain: "gw.localhost" }] }, "c"),
    "config c: components[0].secret: required",
  );
  assertConfigError(
    () =>
      configFromObject({
        components: [{ domain: "gw.localhost", secret: "a" }, {
          domain: "GW.localhost",
          secret: "b",
        }],
      }, "c"),
    'config c: components[1].domain: duplicate "gw.localhost"',
  );
  assertConfigError(
    () => configFromObject({ components: [{ domain: "localhost", secret: "a" }] }, "c"),
    'config c: components[0].domain: "localhost" is already one of hosts',
  );
  assertConfigError(
    () => configFromObject({ component_port: 5222 }, "c"),
    "config c: component_port: must differ from the client ports",
  );
  assertConfigError(
    () => configFromObject({ component_port: "x" }, "c"),
    'config c: component_port: expected an integer from 0 to 65535, or false, got "x"',
  );
});

Deno.test("[pubsub]: off, or a domain that is already a host, a bad admin", () => {
  assert.equal(parseConfig("[pubsub]\nenabled = false", "a").pubsub, undefined);
  assert.equal(parseConfig('hosts = ["a.org", "b.org"]', "a").pubsub?.domain, "pubsub.a.org");
  assertConfigError(
    () => parseConfig('hosts = ["a.org", "pubsub.a.org"]', "a"),
    'config a: pubsub.domain: "pubsub.a.org" is already a host, a component or a service',
  );
  assertConfigError(
    () => parseConfig('[pubsub]\nadmins = ["a.org"]', "a"),
    'config a: pubsub.admins[0]: expected a bare JID, got "a.org"',
  );
});

Deno.test("[http]: off, a free port, and bad values name the key", () => {
  assert.equal(parseConfig("[http]\nhttp_port = false", "a").http.port, false);
  assert.equal(parseConfig("[http]\nhttp_port = 0", "a").http.port, 0);
  assertConfigError(
    () => parseConfig("[http]\nhttp_port = 5222", "a"),
    "config a: http.http_port: must differ from the client and component ports",
  );
  assert.equal(parseConfig("[http]\nhttps_port = false", "a").http.httpsPort, false);
  assert.equal(parseConfig("[http]\nhttps_port = 0", "a").http.httpsPort, 0);
  // Both on a free port is fine: each gets its own.
  assert.equal(parseConfig("[http]\nhttp_port = 0\nhttps_port = 0", "a").http.port, 0);
  for (const clash of ["https_port = 5280", "https_port = 5222", "https_port = 5223"]) {
    assertConfigError(
      () => parseConfig(`[http]\n${clash}`, "a"),
      "config a: http.https_port: must differ from the client, component and HTTP ports",
    );
  }
  assertConfigError(
    () => parseConfig("component_port = 9000\n[http]\nhttps_port = 9000", "a"),
    "config a: http.https_port: must differ from the client, component and HTTP ports",
  );
  assertConfigError(
    () => parseConfig('[http]\nhttps_port = "443"', "a"),
    'config a: http.https_port: expected an integer from 0 to 65535, or false, got "443"',
  );
  assertConfigError(
    () => parseConfig('[http]\ncors_origins = ["https://a.org/path"]', "a"),
    'config a: http.cors_origins[0]: expected "*" or an origin such as ' +
      '"https://chat.example.org", got "https://a.org/path"',
  );
  assertConfigError(
    () => parseConfig('[http]\ntrusted_proxies = ["proxy.local"]', "a"),
    "config a: http.trusted_proxies[0]: expected an IP address or a CIDR range such as " +
      '"10.0.0.0/8", got "proxy.local"',
  );
  assertConfigError(
    () => parseConfig('[http]\npublic_url = "ftp://a.org/"', "a"),
    'config a: http.public_url: expected an http(s) URL such as "https://xmpp.example.org/", ' +
      'got "ftp://a.org/"',
  );
  assertConfigError(
    () => parseConfig('[http]\nhttp_interfaces = ["*", "::1"]', "a"),
    'config a: http.http_interfaces: "*" already means every address and cannot be combined',
  );
});

Deno.test("[upload]: off, a taken domain, bad sizes and types", () => {
  assert.equal(parseConfig("[upload]\nenabled = false", "a").upload, undefined);
  assert.equal(parseConfig('hosts = ["a.org"]', "a").upload?.domain, "upload.a.org");
  assert.equal(
    parseConfig('[upload]\nexpires_after = "never"', "a").upload?.expiresAfter,
    Infinity,
  );
  assert.throws(
    () => parseConfig('[pubsub]\ndomain = "x.org"\n[upload]\ndomain = "x.org"', "a"),
    { message: 'config a: upload.domain: "x.org" is already a host, a component or a service' },
  );
  assert.throws(
    () => parseConfig("[upload]\nmax_file_size = 0", "a"),
    { message: "config a: upload.max_file_size: expected an integer >= 1, got 0" },
  );
  assert.throws(
    () => parseConfig('[upload]\nallowed_types = ["png"]', "a"),
    {
      message:
        'config a: upload.allowed_types[0]: expected a MIME type such as "image/png" or "image/*", got "png"',
    },
  );
});
