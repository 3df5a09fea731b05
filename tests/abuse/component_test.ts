/**
 * External components (XEP-0114) under abuse (issue 9): wrong secrets are throttled per
 * address, and a component that does not read is dropped like a client.
 * @module
 */
import assert from "node:assert/strict";
import { handshakeDigest } from "../../lib/component/component.ts";
import { NS_COMPONENT } from "../../lib/xmpp/namespaces.ts";
import { elem, serialize, stanza } from "../../lib/xml/element.ts";
import { NS_STREAMS } from "../../lib/xmpp/namespaces.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { startTestServer, type TestServer } from "../integration/_server.ts";

const COMPONENT = { domain: "gw.localhost", secret: "s3cret" };

/** A handshake for the component with `secret`; returns the client and what the server said. */
async function handshake(
  server: TestServer,
  secret: string,
): Promise<{ readonly component: RawClient; readonly answer: string }> {
  const component = await RawClient.connect(server.componentPort!);
  component.write(
    `<?xml version='1.0'?><stream:stream xmlns='${NS_COMPONENT}' ` +
      `xmlns:stream='${NS_STREAMS}' to='${COMPONENT.domain}'>`,
  );
  const opened = await component.event();
  assert.equal(opened?.kind, "stream-open");
  const id = opened.kind === "stream-open" ? opened.attrs.id ?? "" : "";
  component.write(`<handshake>${handshakeDigest(id, secret)}</handshake>`);
  const answer = serialize(await component.next("the handshake answer"), NS_COMPONENT);
  return { component, answer };
}

Deno.test("wrong component secrets are throttled per address", async () => {
  const server = await startTestServer({
    components: [COMPONENT],
    auth: { max_failures: 3 },
  });
  try {
    for (let i = 0; i < 3; i++) {
      const { component, answer } = await handshake(server, `guess${i}`);
      assert.ok(answer.includes("<not-authorized "), answer);
      assert.ok(answer.includes("Wrong handshake"), answer);
      await component.close();
    }
    // Now even the right secret is refused, without being checked.
    const { component, answer } = await handshake(server, COMPONENT.secret);
    assert.ok(answer.includes("<not-authorized "), answer);
    assert.ok(answer.includes("Too many wrong handshakes"), answer);
    await component.close();
  } finally {
    await server.stop();
  }
});

Deno.test("a component that does not read is dropped at the write backlog limit", async () => {
  const server = await startTestServer({
    require_encryption: false,
    archive_enabled: false,
    components: [COMPONENT],
    limits: { write_backlog: 65536 },
  });
  await server.accounts.create("localhost", "fast", "pw");
  const { component, answer } = await handshake(server, COMPONENT.secret);
  assert.equal(answer, "<handshake/>");
  const fast = await RawClient.connect(server.c2sPort);
  try {
    await fast.login("fast", "pw");
    await fast.bind("f");
    component.pause();
    const body = "c".repeat(200_000);
    const sent = 120;
    for (let i = 0; i < sent; i++) {
      fast.send(stanza("message", { to: `user@${COMPONENT.domain}`, id: `m${i}` }, [
        elem("body", {}, [body]),
      ]));
      if (i % 20 === 0) await fast.ping();
    }
    await fast.ping();
    component.resume();
    let received = 0;
    const deadline = Date.now() + 15_000;
    while (!component.closed && Date.now() < deadline) {
      const ev = await component.event(1000);
      if (ev?.kind === "stanza" && ev.stanza.name === "message") received++;
    }
    assert.ok(component.closed, "the server dropped the component that did not read");
    assert.ok(received < sent, `it got ${received} of ${sent} before it was dropped`);
    await fast.ping();
  } finally {
    component.cut();
    await fast.close();
    await server.stop();
  }
});
