/**
 * Authentication against a real server, over STARTTLS with a raw client: real clients that
 * walk through mechanisms are not locked out, no one can lock another user out, and an unknown
 * account looks like a real one.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import * as net from "node:net";
import * as tls from "node:tls";
import { resetLogging, setupLogging } from "../../lib/log.ts";
import { pbkdf2Runs } from "../../lib/xmpp/scram.ts";
import { createStreamParser, type ParseEvent } from "../../lib/xml/parser.ts";
import { childElements, elem, type Element, serialize, text } from "../../lib/xml/element.ts";
import { NS_SASL, NS_STREAMS, NS_TLS } from "../../lib/xmpp/namespaces.ts";
import { startTestServer, type TestServer } from "../integration/_server.ts";

const b64 = (s: string) => Buffer.from(s, "utf8").toString("base64");
const unb64 = (s: string) => Buffer.from(s.trim(), "base64").toString("utf8");

/** A raw client stream upgraded with STARTTLS (certificates not verified: test servers). */
class TlsStream {
  #sock: net.Socket | tls.TLSSocket;
  #parser = createStreamParser({ maxStanzaBytes: 1 << 20 });
  #events: ParseEvent[] = [];
  #wake: (() => void) | undefined;
  #closed = false;

  private constructor(sock: net.Socket) {
    this.#sock = sock;
    this.#listen(sock);
  }

  #listen(sock: net.Socket | tls.TLSSocket): void {
    sock.on("data", (chunk: Uint8Array) => {
      this.#events.push(...this.#parser.push(chunk));
      this.#wake?.();
    });
    sock.on("close", () => {
      this.#closed = true;
      this.#wake?.();
    });
    sock.on("error", () => {});
  }

  /** Connects (from `localAddress`, any address of 127/8) and negotiates TLS. */
  static async open(port: number, localAddress = "127.0.0.1"): Promise<TlsStream> {
    const raw = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect({ host: "127.0.0.1", port, localAddress });
      s.once("connect", () => resolve(s));
      s.once("error", reject);
    });
    const stream = new TlsStream(raw);
    await stream.restart();
    stream.write(serialize(elem("starttls", { xmlns: NS_TLS })));
    const proceed = await stream.next("proceed");
    assert.equal(proceed.name, "proceed");
    raw.removeAllListeners("data");
    const secure = await new Promise<tls.TLSSocket>((resolve, reject) => {
      const t = tls.connect({ socket: raw, rejectUnauthorized: false, servername: "localhost" });
      t.once("secureConnect", () => resolve(t));
      t.once("error", reject);
    });
    stream.#sock = secure;
    stream.#listen(secure);
    return stream;
  }

  write(s: string): void {
    if (!this.#closed) this.#sock.write(s);
  }

  /** Opens (or reopens) the stream; returns the offered SASL mechanisms. */
  async restart(): Promise<string[]> {
    this.#parser = createStreamParser({ maxStanzaBytes: 1 << 20 });
    this.write(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAMS}'` +
        ` to='localhost' version='1.0'>`,
    );
    const features = await this.next("features");
    assert.equal(features.name, "features");
    const mechanisms = childElements(features).find((e) => e.name === "mechanisms");
    return mechanisms === undefined ? [] : childElements(mechanisms).map((m) => text(m).trim());
  }

  async next(what: string, ms = 10_000): Promise<Element> {
    const deadline = performance.now() + ms;
    for (;;) {
      const ev = this.#events.shift();
      if (ev?.kind === "stanza") return ev.stanza;
      if (ev !== undefined) continue;
      const left = deadline - performance.now();
      if (this.#closed || left <= 0) throw new Error(`no ${what}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = undefined;
    }
  }

  /** Sends `<auth/>`; returns the answer (`failure/<condition>`, `challenge` or `success`). */
  async auth(mechanism: string, payload: string): Promise<{ outcome: string; el: Element }> {
    this.write(serialize(elem("auth", { xmlns: NS_SASL, mechanism }, [b64(payload)])));
    const el = await this.next(`the answer to ${mechanism}`);
    const outcome = el.name === "failure" ? `failure/${childElements(el)[0]?.name}` : el.name;
    return { outcome, el };
  }

  close(): Promise<void> {
    this.write("</stream:stream>");
    this.#sock.end();
    return new Promise((resolve) => {
      if (this.#closed) resolve();
      else this.#sock.once("close", () => resolve());
      setTimeout(() => {
        this.#sock.destroy();
        resolve();
      }, 2000);
    });
  }
}

/** A PLAIN login from `from`; the outcome (`success`, `failure/not-authorized`...). */
async function plainLogin(
  server: TestServer,
  username: string,
  password: string,
  from = "127.0.0.1",
): Promise<string> {
  const c = await TlsStream.open(server.c2sPort, from);
  try {
    await c.restart();
    return (await c.auth("PLAIN", `\0${username}\0${password}`)).outcome;
  } finally {
    await c.close();
  }
}

/** The server-first-message of a SCRAM challenge for `username` (the exchange is then aborted). */
async function scramChallenge(
  c: TlsStream,
  mechanism: string,
  username: string,
): Promise<Map<string, string>> {
  const answer = await c.auth(mechanism, `n,,n=${username},r=${crypto.randomUUID()}`);
  assert.equal(answer.outcome, "challenge");
  const fields = new Map(unb64(text(answer.el)).split(",").map((p) => [p[0], p.slice(2)]));
  c.write(serialize(elem("abort", { xmlns: NS_SASL })));
  assert.equal((await c.next("aborted")).name, "failure");
  return fields;
}

Deno.test("abuse/auth: slixmpp 1.8.3's mechanism walk logs in ten times in a row", async () => {
  // Thresholds low enough that counting the walk's refusals would lock it out at once.
  const server = await startTestServer({
    auth: { max_failures: 3, max_failures_per_address: 3, slow_down_after: 3 },
  });
  await server.accounts.create("localhost", "alice", "secret");
  try {
    for (let login = 1; login <= 10; login++) {
      const c = await TlsStream.open(server.c2sPort);
      try {
        const mechanisms = await c.restart();
        assert.ok(mechanisms.includes("SCRAM-SHA-256-PLUS"), mechanisms.join(" "));
        const walk = [
          // TLS 1.3 has no tls-unique.
          await c.auth("SCRAM-SHA-256-PLUS", "p=tls-unique,,n=alice,r=abcdef"),
          await c.auth("SCRAM-SHA-1-PLUS", "p=tls-unique,,n=alice,r=abcdef"),
          // 'y' while -PLUS is offered: a downgrade, refused (RFC 5802 §6).
          await c.auth("SCRAM-SHA-256", "y,,n=alice,r=abcdef"),
          await c.auth("SCRAM-SHA-1", "y,,n=alice,r=abcdef"),
          await c.auth("PLAIN", "\0alice\0secret"),
        ].map((a) => a.outcome);
        assert.deepEqual(walk, [
          "failure/malformed-request",
          "failure/malformed-request",
          "failure/not-authorized",
          "failure/not-authorized",
          "success",
        ], `login ${login}`);
      } finally {
        await c.close();
      }
    }
    // Wrong passwords still count: three lock the pair.
    for (let i = 0; i < 3; i++) {
      assert.equal(await plainLogin(server, "alice", "wrong"), "failure/not-authorized");
    }
    assert.equal(await plainLogin(server, "alice", "secret"), "failure/temporary-auth-failure");
  } finally {
    await server.stop();
  }
});

Deno.test("abuse/auth: failing from five addresses does not lock the user out of a sixth", async () => {
  const lines: string[] = [];
  await setupLogging("info", { write: (_level, line) => lines.push(line) });
  // The [auth] defaults: 5 per pair, 30 per address, slow down after 5.
  const server = await startTestServer({ log_level: "info" });
  await server.accounts.create("localhost", "alice", "secret");
  try {
    for (let i = 2; i <= 6; i++) {
      assert.equal(
        await plainLogin(server, "alice", "guess", `127.0.0.${i}`),
        "failure/not-authorized",
      );
    }
    assert.equal(await plainLogin(server, "alice", "secret", "127.0.0.7"), "success");
    // The account is slowed down instead: the answer was held back.
    const delayed = lines.filter((l) => /answering the login for alice after \d+ ms/.test(l));
    assert.equal(delayed.length, 1, lines.join("\n"));
    assert.ok(Number(/after (\d+) ms/.exec(delayed[0])![1]) > 0);
  } finally {
    await server.stop();
    await resetLogging();
  }
});

Deno.test("abuse/auth: per-pair and per-address thresholds still refuse", async () => {
  const server = await startTestServer({ auth: { max_failures_per_address: 8 } });
  for (const u of ["bob", "carol"]) await server.accounts.create("localhost", u, "secret");
  try {
    // Five wrong passwords for bob from one address: that address may not try bob for now...
    for (let i = 0; i < 5; i++) {
      assert.equal(await plainLogin(server, "bob", "guess", "127.0.1.1"), "failure/not-authorized");
    }
    assert.equal(
      await plainLogin(server, "bob", "secret", "127.0.1.1"),
      "failure/temporary-auth-failure",
    );
    // ...but may still log in to carol, and bob may still log in from elsewhere.
    assert.equal(await plainLogin(server, "carol", "secret", "127.0.1.1"), "success");
    assert.equal(await plainLogin(server, "bob", "secret", "127.0.1.2"), "success");
    // Three more failures from that address, on names that do not even exist: eight in all,
    // and the address is refused for every account.
    for (const name of ["nobody1", "nobody2", "nobody3"]) {
      assert.equal(await plainLogin(server, name, "guess", "127.0.1.1"), "failure/not-authorized");
    }
    assert.equal(
      await plainLogin(server, "carol", "secret", "127.0.1.1"),
      "failure/temporary-auth-failure",
    );
    assert.equal(await plainLogin(server, "carol", "secret", "127.0.1.3"), "success");
  } finally {
    await server.stop();
  }
});

Deno.test("abuse/auth: an unknown account's challenge looks like a real one's", async () => {
  const server = await startTestServer({ auth: { scram_iterations: 5000 } });
  await server.accounts.create("localhost", "alice", "secret");
  try {
    const c = await TlsStream.open(server.c2sPort);
    try {
      await c.restart();
      for (const mechanism of ["SCRAM-SHA-256", "SCRAM-SHA-1"]) {
        const real = await scramChallenge(c, mechanism, "alice");
        const ghost1 = await scramChallenge(c, mechanism, "ghost");
        const ghost2 = await scramChallenge(c, mechanism, "ghost");
        assert.equal(ghost1.get("s"), ghost2.get("s"), `${mechanism}: a stable salt`);
        assert.equal(ghost1.get("s")!.length, real.get("s")!.length, `${mechanism}: salt length`);
        assert.notEqual(ghost1.get("s"), real.get("s"));
        assert.equal(real.get("i"), "5000");
        assert.equal(ghost1.get("i"), "5000", `${mechanism}: the configured iterations`);
      }
    } finally {
      await c.close();
    }
  } finally {
    await server.stop();
  }
});

Deno.test("abuse/auth: PLAIN for an unknown account runs the same derivation", async () => {
  const server = await startTestServer();
  await server.accounts.create("localhost", "alice", "secret");
  try {
    const runs = async (username: string) => {
      const c = await TlsStream.open(server.c2sPort);
      try {
        await c.restart();
        const before = pbkdf2Runs();
        assert.equal(
          (await c.auth("PLAIN", `\0${username}\0guess`)).outcome,
          "failure/not-authorized",
        );
        return pbkdf2Runs() - before;
      } finally {
        await c.close();
      }
    };
    assert.equal(await runs("alice"), 1);
    assert.equal(await runs("ghost"), 1);
  } finally {
    await server.stop();
  }
});
