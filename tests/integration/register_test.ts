/**
 * Account management (XEP-0077) with real connections: in-band registration, password
 * change, removal with its tombstone, and external services (XEP-0215).
 */
import assert from "node:assert/strict";
import { clientHeader, startTestServer, type TestServer } from "./_server.ts";
import { testClient, xml, type XmppClient } from "./_xmpp_client.ts";

function waitFor<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Sends one registration iq on a fresh unauthenticated plain stream and returns everything
 * received up to its answer (the features included).
 */
async function rawRegister(port: number, query: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const enc = new TextEncoder();
  const dec = new TextDecoder();
  await conn.write(enc.encode(clientHeader()));
  await conn.write(enc.encode(`<iq type='set' id='reg1'>${query}</iq>`));
  let text = "";
  const buf = new Uint8Array(65536);
  const timer = setTimeout(() => conn.close(), 5000);
  try {
    while (!/<iq[^>]*id="reg1"/.test(text)) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += dec.decode(buf.subarray(0, n), { stream: true });
    }
    // Let the rest of the answer arrive.
    while (/<iq[^>]*id="reg1"[^>]*[^/]>/.test(text) && !/<\/iq>/.test(text)) {
      const n = await conn.read(buf);
      if (n === null) break;
      text += dec.decode(buf.subarray(0, n), { stream: true });
    }
  } catch {
    // closed by the timer
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
  return text;
}

function credentials(username: string, password: string): string {
  return `<query xmlns='jabber:iq:register'><username>${username}</username>` +
    `<password>${password}</password></query>`;
}

async function login(server: TestServer, username: string, password: string) {
  const xmpp = testClient({ port: server.c2sPort, username, password });
  await waitFor(xmpp.start(), 10000, `login of ${username}`);
  return xmpp;
}

/** The SASL condition of a login that must fail. */
async function failedLogin(server: TestServer, username: string, password: string) {
  const xmpp = testClient({ port: server.c2sPort, username, password });
  const err = await waitFor(xmpp.start().then(() => undefined, (e: Error) => e), 10000, "fail");
  await stop(xmpp);
  return (err as (Error & { condition?: string }) | undefined)?.condition;
}

async function stop(xmpp: XmppClient): Promise<void> {
  try {
    await waitFor(xmpp.stop(), 3000, "logout");
  } catch {
    // already closed by the server
  }
}

Deno.test({
  name: "in-band registration, password change and account removal",
  // node:tls sockets of the test client close asynchronously.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const server = await startTestServer({
      require_encryption: false,
      allow_registration: true,
      registration_throttle: 3,
    });
    await server.accounts.create("localhost", "alice", "old");
    await server.accounts.create("localhost", "bob", "pw");
    await server.accounts.create("localhost", "romeo", "pw");
    try {
      await t.step("a new account is registered in-band and can log in", async () => {
        const text = await rawRegister(server.c2sPort, credentials("newbie", "secret"));
        assert.match(text, /<register xmlns="http:\/\/jabber.org\/features\/iq-register"\/>/);
        assert.match(text, /<iq type="result" id="reg1"/);
        await stop(await login(server, "newbie", "secret"));
      });

      await t.step("an existing name is a conflict", async () => {
        const text = await rawRegister(server.c2sPort, credentials("alice", "x"));
        assert.match(text, /<iq type="error" id="reg1"[^>]*><error type="cancel"><conflict /);
      });

      await t.step("a user changes their password and logs in with the new one", async () => {
        const alice = await login(server, "alice", "old");
        const res = await alice.iqCaller.request(
          xml(
            "iq",
            { type: "set" },
            xml(
              "query",
              { xmlns: "jabber:iq:register" },
              xml("username", {}, "alice"),
              xml("password", {}, "new"),
            ),
          ),
        );
        assert.equal(res.attrs.type, "result");
        await stop(alice);
        assert.equal(await failedLogin(server, "alice", "old"), "not-authorized");
        await stop(await login(server, "alice", "new"));
      });

      await t.step("a removed account cannot log in, and messages to it bounce", async () => {
        const bob = await login(server, "bob", "pw");
        const closed = new Promise<string>((resolve) => {
          bob.on("element", (el: XmppClient) => {
            if (el.name === "stream:error") resolve(el.children[0]?.name ?? "?");
          });
        });
        const res = await bob.iqCaller.request(
          xml("iq", { type: "set" }, xml("query", { xmlns: "jabber:iq:register" }, xml("remove"))),
        );
        assert.equal(res.attrs.type, "result");
        // XEP-0077 §3.2: the stream ends with not-authorized.
        assert.equal(await waitFor(closed, 5000, "the stream error"), "not-authorized");
        await stop(bob);
        assert.equal(await failedLogin(server, "bob", "pw"), "not-authorized");

        const romeo = await login(server, "romeo", "pw");
        const bounce = new Promise<XmppClient>((resolve) => {
          romeo.on("stanza", (st: XmppClient) => {
            if (st.is("message") && st.attrs.type === "error") resolve(st);
          });
        });
        await romeo.send(
          xml("message", { type: "chat", to: "bob@localhost", id: "m1" }, xml("body", {}, "hi")),
        );
        const err = await waitFor(bounce, 5000, "the bounce");
        assert.equal(err.attrs.from, "bob@localhost");
        assert.ok(err.getChild("error").getChild("service-unavailable") !== undefined);
        await stop(romeo);
      });

      await t.step("the removed name cannot be registered while its tombstone stands", async () => {
        const text = await rawRegister(server.c2sPort, credentials("bob", "again"));
        assert.match(text, /<iq type="error" id="reg1"[^>]*><error type="cancel"><conflict /);
      });

      await t.step("registrations from one address are throttled", async () => {
        // Three attempts were made above (newbie, alice, bob): the fourth is held back.
        const text = await rawRegister(server.c2sPort, credentials("late", "pw"));
        assert.match(text, /<error type="wait"><resource-constraint /);
      });
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "registration is off by default: no feature, service-unavailable",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = await startTestServer({ require_encryption: false });
    try {
      const text = await rawRegister(server.c2sPort, credentials("newbie", "secret"));
      assert.doesNotMatch(text, /iq-register/);
      assert.match(
        text,
        /<iq type="error" id="reg1"[^>]*><error type="cancel"><service-unavailable /,
      );
      assert.equal(await server.accounts.exists("localhost", "newbie"), false);
    } finally {
      await server.stop();
    }
  },
});

Deno.test({
  name: "external services are listed with TURN credentials",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const server = await startTestServer({
      external_services: [
        { type: "turn", host: "turn.example", port: 3478, transport: "udp", secret: "k" },
      ],
    });
    await server.accounts.create("localhost", "alice", "pw");
    try {
      const alice = await login(server, "alice", "pw");
      const res = await alice.iqCaller.request(
        xml(
          "iq",
          { type: "get", to: "localhost" },
          xml("services", { xmlns: "urn:xmpp:extdisco:2" }),
        ),
      );
      const service = res.getChild("services", "urn:xmpp:extdisco:2").getChild("service");
      assert.equal(service.attrs.type, "turn");
      assert.equal(service.attrs.restricted, "1");
      // A Unix time about a day from now.
      const expires = Number(service.attrs.username);
      assert.ok(Math.abs(expires - (Date.now() / 1000 + 86400)) < 60, service.attrs.username);
      assert.ok(service.attrs.password.length > 0);
      assert.equal(service.attrs.secret, undefined);
      await stop(alice);
    } finally {
      await server.stop();
    }
  },
});
