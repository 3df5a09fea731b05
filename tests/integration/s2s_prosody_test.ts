/**
 * Federation with a real Prosody 0.12 (Debian's `prosody` package): one user on each server,
 * subscription, presence and messages both ways, over TLS with dialback (XEP-0220).
 *
 * Prosody runs from a throw-away config in a temp dir (as ../../../shared/bench/prosody/ does),
 * in the foreground as our child process, its data, pidfile and debug log in that dir.
 *
 * How the two servers find each other without DNS records or /etc/hosts:
 * - Our domain is `a.localhost`. Prosody resolves it with libunbound (lua5.4-unbound, which the
 *   package recommends), whose built-in `localhost.` zone answers every `*.localhost` name with
 *   127.0.0.1 (and ::1) and no SRV record, so Prosody connects to 127.0.0.1:5269. The test's
 *   proxy to ours must therefore listen there: the fixed port is checked first and a clash fails
 *   clearly. An IP
 *   literal domain (Prosody's resolver connects to those directly) is not an option for our side:
 *   our `hosts` accepts domain names only.
 * - Prosody's domain is `b.localhost` on ephemeral ports; ours finds it through `[s2s] hosts`.
 *
 * Dialback: ours is the self-signed certificate it makes per host, Prosody's is made by the same
 * code (lib/transport/certs.ts) into the temp dir. Neither is signed by a CA, so both sides fall
 * back to dialback (`s2s_secure_auth = false` on both).
 *
 * Certificates (XEP-0178): a CA the test makes (./_certs.ts) signs both servers' certificates,
 * ours trusts it through `[s2s] ca_file`, Prosody through `ssl = { cafile = ... }`, and
 * `s2s_secure_auth = true` on both refuses dialback, so the links that work used SASL EXTERNAL;
 * Prosody's log says so for each of its streams (mod_saslauth: "Accepting SASL EXTERNAL
 * identity from a.localhost" on its incoming one, "SASL EXTERNAL with a.localhost succeeded" on
 * its outgoing one).
 *
 * Bidirectional streams (XEP-0288): Prosody 0.12 ships mod_s2s_bidi; with it enabled, one
 * connection carries both directions whichever side connects first. Each server reaches the
 * other through a counting TCP proxy (./_proxy.ts; Prosody's reaches ours at 127.0.0.1:5269),
 * so the tests count the connections each side opened.
 *
 * `OUR_LOG_LEVEL=debug` logs our side to the console; Prosody's log is printed on failure.
 */
import assert from "node:assert/strict";
import { type LogLevel, setupLogging } from "../../lib/log.ts";
import { ensureSelfSigned } from "../../lib/transport/certs.ts";
import {
  closeAll,
  connectPeer,
  type Peer,
  presenceFrom,
  rosterOf,
  subscribeMutually,
} from "./_peer.ts";
import { retryWhenPortTaken, startTestServer, type TestServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";
import { makeCa, makeLeaf, type TestCert, writeCert } from "./_certs.ts";
import { type Proxy, startProxy } from "./_proxy.ts";

const PROSODY = "/usr/bin/prosody";
const PROSODYCTL = "/usr/bin/prosodyctl";
const OURS = "a.localhost";
const THEIRS = "b.localhost";
/** Where Prosody looks for `a.localhost` (libunbound: 127.0.0.1, no SRV record). */
const S2S_PORT = 5269;

function installed(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

const hasProsody = installed(PROSODY) && installed(PROSODYCTL);
if (!hasProsody) {
  console.warn(
    `s2s_prosody_test: skipped, ${PROSODY} is not installed (apt-get install prosody; .ci/run does)`,
  );
}

/** A port free right now on 127.0.0.1. */
function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Fails clearly when `port` cannot be bound on 127.0.0.1 (a Prosody daemon, another test). */
function needPort(port: number): void {
  try {
    Deno.listen({ hostname: "127.0.0.1", port }).close();
  } catch (err) {
    throw new Error(
      `port ${port} on 127.0.0.1 is taken (${err}): Prosody finds a *.localhost server there, ` +
        "so this test needs it. A Prosody daemon from the Debian package? " +
        "(`service prosody stop`; `ss -ltnp 'sport = :5269'` shows who holds it)",
    );
  }
}

async function canConnect(port: number): Promise<boolean> {
  try {
    (await Deno.connect({ hostname: "127.0.0.1", port })).close();
    return true;
  } catch {
    return false;
  }
}

async function run(cmd: string, args: readonly string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args: [...args], stdin: "null" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  if (!out.success) throw new Error(`${cmd} ${args.join(" ")} failed (${out.code}): ${text}`);
  return text;
}

interface Prosody {
  readonly c2sPort: number;
  readonly s2sPort: number;
  /** The last lines of its log, for failure messages. */
  logTail(lines?: number): Promise<string>;
  stop(): Promise<void>;
}

/** Lua string literal (paths from makeTempDir have no quotes, but be safe). */
function lua(s: string): string {
  return JSON.stringify(s);
}

/** How Prosody authenticates servers. */
interface ProsodyOptions {
  /**
   * Certificates (XEP-0178): Prosody's CA-signed certificate, the CA it trusts (`ssl.cafile`),
   * and `s2s_secure_auth = true`; absent: a self-signed certificate and dialback.
   */
  readonly secure?: { readonly ca: string; readonly cert: TestCert };
  /** mod_s2s_bidi (XEP-0288), in Prosody 0.12 since 0.12.0. */
  readonly bidi?: boolean;
}

/** Prosody could not bind a port probed free moments before: another test took it meanwhile. */
class ProsodyPortTaken extends Error {}

/**
 * Starts Prosody serving `THEIRS` with `users` (password "pw"), ready for c2s and s2s; on
 * fresh ports again when one it was given was taken before it could bind it.
 */
async function startProsody(
  users: readonly string[],
  opts: ProsodyOptions = {},
  attempts = 5,
): Promise<Prosody> {
  for (let attempt = 1;; attempt++) {
    try {
      return await startProsodyOnce(users, opts);
    } catch (err) {
      if (!(err instanceof ProsodyPortTaken) || attempt >= attempts) throw err;
    }
  }
}

async function startProsodyOnce(
  users: readonly string[],
  opts: ProsodyOptions,
): Promise<Prosody> {
  const dir = await Deno.makeTempDir({ prefix: "prosody-s2s-" });
  const c2sPort = freePort();
  const s2sPort = freePort();
  const tls = opts.secure === undefined
    ? await ensureSelfSigned(dir, THEIRS).then(() => ({
      cert: `${dir}/certs/${THEIRS}.crt`,
      key: `${dir}/certs/${THEIRS}.key`,
    }))
    : await writeCert(dir, THEIRS, opts.secure.cert);
  const caFile = `${dir}/ca.pem`;
  if (opts.secure !== undefined) await Deno.writeTextFile(caFile, opts.secure.ca);
  const modules = ["roster", "saslauth", "tls", "dialback", "disco", "ping"];
  if (opts.bidi === true) modules.push("s2s_bidi");
  const logFile = `${dir}/prosody.log`;
  const cfg = `${dir}/prosody.cfg.lua`;
  await Deno.mkdir(`${dir}/data`);
  await Deno.writeTextFile(
    cfg,
    `-- Throw-away config written by tests/integration/s2s_prosody_test.ts
pidfile = ${lua(`${dir}/prosody.pid`)}
data_path = ${lua(`${dir}/data`)}
plugin_paths = { }
-- The test may run as root (CI containers); Prosody then refuses to start without this.
run_as_root = true
log = { { levels = { min = "debug" }, to = "file", filename = ${lua(logFile)} } }
interfaces = { "127.0.0.1" }
c2s_ports = { ${c2sPort} }
c2s_direct_tls_ports = { }
legacy_ssl_ports = { }
s2s_ports = { ${s2sPort} }
http_ports = { }
https_ports = { }
-- The test client may log in without TLS; federation is what is under test.
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
-- TLS between the servers (the default). With a CA: certificates only (SASL EXTERNAL), else
-- dialback since neither certificate is CA-signed.
s2s_require_encryption = true
s2s_secure_auth = ${opts.secure !== undefined}
-- Plain storage lets Prosody offer SCRAM-SHA-256, the test client's mechanism.
authentication = "internal_plain"
storage = "internal"
modules_enabled = { ${modules.map(lua).join("; ")} }
ssl = { certificate = ${lua(tls.cert)}; key = ${lua(tls.key)}${
      opts.secure === undefined ? "" : `; cafile = ${lua(caFile)}`
    } }

VirtualHost ${lua(THEIRS)}
`,
  );
  for (const u of users) await run(PROSODYCTL, ["--config", cfg, "register", u, THEIRS, "pw"]);

  const child = new Deno.Command(PROSODY, {
    args: ["--config", cfg, "-F"],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Its console output, kept (bounded) for failure messages; reading it keeps pipes from filling.
  let output = "";
  const keep = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      output = (output + chunk).slice(-8000);
    }
  };
  const drained = Promise.all([keep(child.stdout), keep(child.stderr)]);
  let exited = false;
  const status = child.status.finally(() => exited = true);

  const logTail = async (lines = 80) => {
    const log = await Deno.readTextFile(logFile).catch(() => "");
    return `--- prosody console ---\n${output}\n--- ${logFile} ---\n` +
      log.trimEnd().split("\n").slice(-lines).join("\n");
  };
  const stop = async () => {
    if (!exited) {
      child.kill("SIGTERM");
      const killer = setTimeout(() => !exited && child.kill("SIGKILL"), 5000);
      await status;
      clearTimeout(killer);
    }
    await drained;
    await Deno.remove(dir, { recursive: true });
  };

  // Prosody logs a port it cannot bind and carries on; what answers there is someone else.
  const portTaken = async () =>
    /Failed to open server port/.test(await Deno.readTextFile(logFile).catch(() => ""));
  const deadline = Date.now() + 15000;
  while (!(await canConnect(c2sPort) && await canConnect(s2sPort))) {
    if (exited || Date.now() > deadline) {
      const why = exited ? "exited" : "did not listen within 15 s";
      const tail = await logTail();
      const taken = await portTaken();
      await stop();
      throw new (taken ? ProsodyPortTaken : Error)(`prosody ${why}\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  if (await portTaken()) {
    const tail = await logTail();
    await stop();
    throw new ProsodyPortTaken(`prosody could not bind its ports\n${tail}`);
  }
  return { c2sPort, s2sPort, logTail, stop };
}

function bodyIs(text: string): (st: XmppClient) => boolean {
  return (st) => st.is("message") && st.getChildText("body") === text;
}

function bare(jid: string): string {
  return jid.split("/")[0];
}

/** What one interop run sets up on each side. */
interface Setup {
  readonly prosody?: ProsodyOptions;
  /** Our server's settings besides the common ones (certificates, `[s2s]`). */
  readonly ours?: (dir: string) => Promise<Record<string, unknown>>;
  /** Checks after the exchange. */
  readonly after?: (seen: Seen) => void;
  /** Prosody connects first: bob writes to alice before anything else, and she replies. */
  readonly prosodyFirst?: boolean;
}

/** What a run saw. */
interface Seen {
  /** Prosody's whole log. */
  readonly log: string;
  /** Connections our server opened to Prosody. */
  readonly toProsody: number;
  /** Connections Prosody opened to our server. */
  readonly toOurs: number;
}

/**
 * Subscription, presence and messages both ways between alice (ours) and bob (Prosody's), then
 * `setup.after` with Prosody's log.
 */
async function federate(setup: Setup): Promise<void> {
  const level = Deno.env.get("OUR_LOG_LEVEL");
  if (level !== undefined) await setupLogging(level as LogLevel);
  needPort(S2S_PORT);
  const prosody = await startProsody(["bob"], setup.prosody);
  const dir = await Deno.makeTempDir({ prefix: "ours-s2s-" });
  // Both ways through counting proxies: Prosody reaches ours at 127.0.0.1:5269, the proxy.
  const toProsody = startProxy(prosody.s2sPort);
  let toOurs: Proxy | undefined;
  let ours: TestServer | undefined;
  let alice: Peer | undefined;
  let bob: Peer | undefined;
  try {
    const extra = await setup.ours?.(dir) ?? {};
    // Our s2s port is probed free; taken before ours binds it, both start again elsewhere.
    ours = await retryWhenPortTaken(async () => {
      const ourPort = freePort();
      const proxy = startProxy(ourPort, false, S2S_PORT);
      try {
        const started = await startTestServer({
          hosts: [OURS],
          s2s_port: ourPort,
          muc: { enabled: false },
          pubsub: { enabled: false },
          upload: { enabled: false },
          ...(level === undefined ? {} : { log_level: level }),
          ...extra,
          s2s: {
            hosts: { [THEIRS]: `127.0.0.1:${toProsody.port}` },
            ...(extra.s2s as object | undefined),
          },
        });
        toOurs = proxy;
        return started;
      } catch (err) {
        await proxy.close();
        throw err;
      }
    });
    await ours.accounts.create(OURS, "alice", "pw");
    alice = await connectPeer(ours, "alice", undefined, { domain: OURS });
    // connectPeer only needs the c2s port of the server it logs in to.
    bob = await connectPeer({ c2sPort: prosody.c2sPort } as TestServer, "bob", undefined, {
      domain: THEIRS,
    });
    // Both fetch their rosters first: Prosody sends a `subscribed` only to "interested"
    // resources (RFC 6121 §2.1.6), those that asked for the roster.
    assert.deepEqual(await rosterOf(alice), {});
    assert.deepEqual(await rosterOf(bob), {});
    await alice.xmpp.send(xml("presence"));
    await bob.xmpp.send(xml("presence"));
    if (setup.prosodyFirst === true) {
      await bob.xmpp.send(
        xml("message", { to: bare(alice.jid), type: "chat" }, xml("body", {}, "first")),
      );
      await alice.waitFor(bodyIs("first"), "bob's first message", 10000);
      await alice.xmpp.send(
        xml("message", { to: bob.jid, type: "chat" }, xml("body", {}, "first reply")),
      );
      await bob.waitFor(bodyIs("first reply"), "alice's reply to bob's first message", 10000);
    }

    // Ours asks first; Prosody approves and asks back; ours approves. Then each side has the
    // other's available presence (RFC 6121 §3.1.5 and the probes after approval).
    await subscribeMutually(alice, bob);
    await alice.waitFor(presenceFrom(bob.jid), "bob's presence", 10000);
    assert.deepEqual(await rosterOf(alice), { [bare(bob.jid)]: "both" });
    assert.deepEqual(await rosterOf(bob), { [bare(alice.jid)]: "both" });

    await alice.xmpp.send(
      xml("message", { to: bare(bob.jid), type: "chat" }, xml("body", {}, "hi bob")),
    );
    const got = await bob.waitFor(bodyIs("hi bob"), "alice's message");
    assert.equal(got.attrs.from, alice.jid);
    await bob.xmpp.send(
      xml("message", { to: bare(alice.jid), type: "chat" }, xml("body", {}, "hi alice")),
    );
    const back = await alice.waitFor(bodyIs("hi alice"), "bob's message");
    assert.equal(back.attrs.from, bob.jid);
    // To a full JID, each way.
    await alice.xmpp.send(
      xml("message", { to: bob.jid, type: "chat" }, xml("body", {}, "to your resource")),
    );
    await bob.waitFor(bodyIs("to your resource"), "alice's message to bob's full JID");
    await bob.xmpp.send(
      xml("message", { to: alice.jid, type: "chat" }, xml("body", {}, "and to yours")),
    );
    await alice.waitFor(bodyIs("and to yours"), "bob's message to alice's full JID");

    // Presence changes both ways, then going offline both ways.
    const away = (jid: string) => (st: XmppClient) =>
      presenceFrom(jid)(st) && st.getChildText("show") === "away";
    await alice.xmpp.send(xml("presence", {}, xml("show", {}, "away")));
    await bob.waitFor(away(alice.jid), "alice's away presence");
    await bob.xmpp.send(xml("presence", {}, xml("show", {}, "away")));
    await alice.waitFor(away(bob.jid), "bob's away presence");
    const bobJid = bob.jid;
    await closeAll(bob);
    bob = undefined;
    await alice.waitFor(presenceFrom(bobJid, "unavailable"), "bob's unavailable presence");
    const aliceJid = alice.jid;
    bob = await connectPeer({ c2sPort: prosody.c2sPort } as TestServer, "bob", undefined, {
      domain: THEIRS,
    });
    await rosterOf(bob);
    await bob.xmpp.send(xml("presence"));
    // Prosody probes our server for alice's presence when bob comes back.
    await bob.waitFor(presenceFrom(aliceJid), "alice's presence after bob's new login");
    await closeAll(alice);
    alice = undefined;
    await bob.waitFor(presenceFrom(aliceJid, "unavailable"), "alice's unavailable presence");
    setup.after?.({
      log: await prosody.logTail(1_000_000),
      toProsody: toProsody.count(),
      toOurs: toOurs!.count(),
    });
  } catch (err) {
    const log = await prosody.logTail(100000);
    const hint = log.includes("Using legacy DNS API")
      ? "\nProsody runs without libunbound and cannot resolve a.localhost: apt-get install " +
        "lua5.4-unbound\n"
      : "";
    throw new Error(`${(err as Error).stack ?? err}${hint}\n${await prosody.logTail()}`);
  } finally {
    await closeAll(...[alice, bob].filter((p): p is Peer => p !== undefined));
    await ours?.stop();
    await prosody.stop();
    await toOurs?.close();
    await toProsody.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "s2s with Prosody 0.12: subscription, presence and messages both ways over dialback",
  ignore: !hasProsody,
  // Prosody's child process and its pipes are awaited in stop().
  fn: () => federate({}),
});

/** Certificates from one test CA for both servers, trusted by both; dialback refused by both. */
async function certificates(): Promise<Pick<Setup, "prosody" | "ours">> {
  const ca = await makeCa();
  const theirs = await makeLeaf(ca, { dns: [THEIRS] });
  const mine = await makeLeaf(ca, { dns: [OURS] });
  return {
    prosody: { secure: { ca: ca.certPem, cert: theirs } },
    ours: async (dir) => {
      await Deno.writeTextFile(`${dir}/ca.pem`, ca.certPem);
      return {
        tls: await writeCert(dir, OURS, mine),
        s2s_secure_auth: true,
        s2s: { ca_file: `${dir}/ca.pem` },
      };
    },
  };
}

/** Prosody's log says both of its streams used SASL EXTERNAL (mod_saslauth's lines). */
function externalBothWays({ log }: Seen): void {
  // Prosody accepted our certificate on its incoming stream...
  assert.match(
    log,
    new RegExp(`Accepting SASL EXTERNAL identity from ${OURS.replace(".", "\\.")}`),
  );
  // ...and authenticated with its own on its outgoing stream to us.
  assert.match(log, new RegExp(`SASL EXTERNAL with ${OURS.replace(".", "\\.")} succeeded`));
}

Deno.test({
  name: "s2s with Prosody 0.12: over certificates (SASL EXTERNAL, XEP-0178), no dialback",
  ignore: !hasProsody,
  fn: async () => federate({ ...await certificates(), after: externalBothWays }),
});

Deno.test({
  name: "s2s with Prosody 0.12: bidirectional (XEP-0288, mod_s2s_bidi) over certificates, " +
    "one connection",
  ignore: !hasProsody,
  fn: async () => {
    const certs = await certificates();
    await federate({
      ...certs,
      prosody: { ...certs.prosody, bidi: true },
      after: (seen) => {
        // Prosody accepted our certificate; it never authenticated a stream of its own to us,
        // having none: what it sent came back over ours, authenticated by our SASL EXTERNAL
        // (Prosody's SASL offer needs our certificate valid for a.localhost).
        assert.match(seen.log, /Accepting SASL EXTERNAL identity from a\.localhost/);
        assert.doesNotMatch(seen.log, /SASL EXTERNAL with a\.localhost succeeded/);
        // Prosody's mod_s2s_bidi took our <bidi/> on its incoming stream...
        assert.match(seen.log, /Requested bidirectional stream/);
        // ...and sent everything back over it: ours opened one connection, Prosody none.
        assert.equal(seen.toProsody, 1, "connections from ours to Prosody");
        assert.equal(seen.toOurs, 0, "connections from Prosody to ours");
      },
    });
  },
});

Deno.test({
  name: "s2s with Prosody 0.12: bidirectional (XEP-0288, mod_s2s_bidi) over dialback",
  ignore: !hasProsody,
  fn: () =>
    federate({
      prosody: { bidi: true },
      after: (seen) => {
        assert.match(seen.log, /Requested bidirectional stream/);
        assert.equal(seen.toProsody, 1, "connections from ours to Prosody");
        // Prosody checks our dialback key over a connection of its own, no more.
        assert.ok(seen.toOurs <= 1, `${seen.toOurs} connections from Prosody to ours`);
      },
    }),
});

Deno.test({
  name: "s2s with Prosody 0.12: bidirectional, Prosody connecting, over certificates",
  ignore: !hasProsody,
  fn: async () => {
    const certs = await certificates();
    await federate({
      ...certs,
      prosody: { ...certs.prosody, bidi: true },
      prosodyFirst: true,
      after: (seen) => {
        // Prosody asked for bidi on its outgoing stream and authenticated with its certificate.
        assert.match(seen.log, /Requesting bidirectional stream/);
        assert.match(seen.log, /SASL EXTERNAL with a\.localhost succeeded/);
        // Everything of ours went back over Prosody's stream.
        assert.equal(seen.toOurs, 1, "connections from Prosody to ours");
        assert.equal(seen.toProsody, 0, "connections from ours to Prosody");
      },
    });
  },
});

Deno.test({
  name: "s2s with Prosody 0.12: bidirectional, Prosody connecting, over dialback",
  ignore: !hasProsody,
  fn: () =>
    federate({
      prosody: { bidi: true },
      prosodyFirst: true,
      after: (seen) => {
        assert.match(seen.log, /Requesting bidirectional stream/);
        assert.equal(seen.toOurs, 1, "connections from Prosody to ours");
        // We check Prosody's dialback key over a connection of our own, no more.
        assert.ok(seen.toProsody <= 1, `${seen.toProsody} connections from ours to Prosody`);
      },
    }),
});
