/** Real clients (`@xmpp/client`) against a real server on ephemeral ports. */
import assert from "node:assert/strict";
import { startTestServer } from "./_server.ts";
import { testClient, xml, type XmppClient } from "./_xmpp_client.ts";

function waitFor<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

async function online(xmpp: XmppClient): Promise<string> {
  const jid = await waitFor(xmpp.start(), 10000, "login");
  return String(jid);
}

async function stopQuietly(xmpp: XmppClient): Promise<void> {
  try {
    await waitFor(xmpp.stop(), 3000, "logout");
  } catch {
    // already closed by the server
  }
}

Deno.test("real clients log in", async (t) => {
  const server = await startTestServer();
  await server.accounts.create("localhost", "alice", "wonderland");
  await server.accounts.create("localhost", "bob", "builder");
  try {
    await t.step("STARTTLS + SCRAM-SHA-256, then ping the server", async () => {
      const xmpp = testClient({ port: server.c2sPort, username: "alice", password: "wonderland" });
      const jid = await online(xmpp);
      assert.match(jid, /^alice@localhost\/.+$/);
      const pong = await xmpp.iqCaller.request(
        xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      );
      assert.equal(pong.attrs.type, "result");
      assert.equal(pong.attrs.from, "localhost");
      await stopQuietly(xmpp);
    });

    await t.step("direct TLS (XEP-0368) + SCRAM-SHA-256", async () => {
      const xmpp = testClient({
        port: server.directTlsPort!,
        directTls: true,
        username: "alice",
        password: "wonderland",
        resource: "direct",
      });
      assert.equal(await online(xmpp), "alice@localhost/direct");
      await stopQuietly(xmpp);
    });

    for (const mechanism of ["SCRAM-SHA-1", "PLAIN"] as const) {
      await t.step(`STARTTLS + ${mechanism}`, async () => {
        const xmpp = testClient({
          port: server.c2sPort,
          username: "bob",
          password: "builder",
          mechanism,
        });
        assert.match(await online(xmpp), /^bob@localhost\//);
        await stopQuietly(xmpp);
      });
    }

    await t.step("a wrong password fails with not-authorized", async () => {
      const xmpp = testClient({ port: server.c2sPort, username: "alice", password: "nope" });
      const err = await waitFor(xmpp.start().then(() => undefined, (e: Error) => e), 10000, "fail");
      assert.ok(err instanceof Error, "login must fail");
      assert.equal((err as Error & { condition?: string }).condition, "not-authorized");
      await stopQuietly(xmpp);
    });

    await t.step("an unknown account fails like a wrong password", async () => {
      const xmpp = testClient({ port: server.c2sPort, username: "nobody", password: "x" });
      const err = await waitFor(xmpp.start().then(() => undefined, (e: Error) => e), 10000, "fail");
      assert.equal((err as Error & { condition?: string }).condition, "not-authorized");
      await stopQuietly(xmpp);
    });

    await t.step("a second bind of the same resource replaces the first", async () => {
      const first = testClient({
        port: server.c2sPort,
        username: "alice",
        password: "wonderland",
        resource: "phone",
      });
      await online(first);
      const streamError = new Promise<string>((resolve) => {
        first.on("error", (err: Error & { condition?: string }) => resolve(err.condition ?? ""));
      });
      const second = testClient({
        port: server.c2sPort,
        username: "alice",
        password: "wonderland",
        resource: "phone",
      });
      assert.equal(await online(second), "alice@localhost/phone");
      assert.equal(await waitFor(streamError, 5000, "conflict"), "conflict");
      // The new session is the one that stays reachable.
      const pong = await second.iqCaller.request(
        xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
      );
      assert.equal(pong.attrs.type, "result");
      await stopQuietly(first);
      await stopQuietly(second);
    });

    await t.step("a message to a full JID is delivered with a stamped from", async () => {
      const alice = testClient({
        port: server.c2sPort,
        username: "alice",
        password: "wonderland",
        resource: "a",
      });
      const bob = testClient({
        port: server.c2sPort,
        username: "bob",
        password: "builder",
        resource: "b",
      });
      await online(alice);
      await online(bob);
      const got = new Promise<{ from: string; body: string }>((resolve) => {
        bob.on("stanza", (st: XmppClient) => {
          if (st.is("message")) resolve({ from: st.attrs.from, body: st.getChildText("body") });
        });
      });
      await alice.send(
        xml("message", { to: "bob@localhost/b", from: "mallory@localhost/x", type: "chat" }, [
          xml("body", {}, "hi bob"),
        ]),
      );
      assert.deepEqual(await waitFor(got, 5000, "message"), {
        from: "alice@localhost/a",
        body: "hi bob",
      });
      await stopQuietly(alice);
      await stopQuietly(bob);
    });

    await t.step("an iq for a namespace nobody serves gets service-unavailable", async () => {
      const xmpp = testClient({ port: server.c2sPort, username: "bob", password: "builder" });
      await online(xmpp);
      const err = await xmpp.iqCaller.request(
        xml("iq", { type: "get", to: "localhost" }, xml("query", { xmlns: "urn:example:none" })),
      ).then(() => undefined, (e: Error & { condition?: string }) => e.condition);
      assert.equal(err, "service-unavailable");
      await stopQuietly(xmpp);
    });
  } finally {
    await server.stop();
  }
});

Deno.test("failed logins are throttled per address and account", async () => {
  const server = await startTestServer({ auth: { max_failures: 2, failure_window: 60 } });
  await server.accounts.create("localhost", "eve", "right");
  try {
    const attempt = async (password: string) => {
      const xmpp = testClient({ port: server.c2sPort, username: "eve", password });
      const res = await waitFor(
        xmpp.start().then(() => "ok", (e: Error & { condition?: string }) => e.condition),
        10000,
        "login",
      );
      await stopQuietly(xmpp);
      return res;
    };
    assert.equal(await attempt("wrong"), "not-authorized");
    assert.equal(await attempt("wrong"), "not-authorized");
    // Held back now, even with the right password.
    assert.equal(await attempt("right"), "temporary-auth-failure");
  } finally {
    await server.stop();
  }
});

Deno.test("a stanza over the authenticated limit closes the stream with policy-violation", async () => {
  const server = await startTestServer({ limits: { stanza_size: 16384 } });
  await server.accounts.create("localhost", "big", "pw");
  try {
    const xmpp = testClient({ port: server.c2sPort, username: "big", password: "pw" });
    await online(xmpp);
    const streamError = new Promise<string>((resolve) => {
      xmpp.on("error", (err: Error & { condition?: string }) => resolve(err.condition ?? ""));
    });
    // Under the limit is fine: a ping still answers.
    await xmpp.send(xml("message", { to: "big@localhost/x" }, xml("body", {}, "y".repeat(8000))));
    const pong = await xmpp.iqCaller.request(
      xml("iq", { type: "get", to: "localhost" }, xml("ping", { xmlns: "urn:xmpp:ping" })),
    );
    assert.equal(pong.attrs.type, "result");
    await xmpp.send(xml("message", { to: "big@localhost/x" }, xml("body", {}, "y".repeat(20000))));
    assert.equal(await waitFor(streamError, 5000, "stream error"), "policy-violation");
    await stopQuietly(xmpp);
  } finally {
    await server.stop();
  }
});
