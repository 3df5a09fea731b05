/**
 * startServer loads HTTP, BOSH, WebSocket, upload, federation, components, MUC and pubsub only
 * when the configuration turns them on: a server with every one of them off still serves
 * clients, and one with all of them on binds each port and lists each service.
 */
import assert from "node:assert/strict";
import { elem } from "../../lib/xml/element.ts";
import { NS_DISCO_ITEMS } from "../../lib/xmpp/namespaces.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { startTestServer, type TestServer } from "../integration/_server.ts";

/** The JIDs the host lists in disco#items, asked by a logged-in client. */
async function discoItems(server: TestServer): Promise<string[]> {
  const c = await RawClient.online(server.c2sPort, "alice");
  try {
    c.send(elem("iq", { xmlns: "jabber:client", type: "get", id: "items", to: "localhost" }, [
      elem("query", { xmlns: NS_DISCO_ITEMS }),
    ]));
    const answer = await c.until("the disco#items result", (el) => el.attrs.id === "items");
    assert.equal(answer.attrs.type, "result");
    const query = answer.children.find((ch) => typeof ch !== "string" && ch.name === "query");
    assert.ok(query !== undefined && typeof query !== "string");
    return query.children.flatMap((ch) =>
      typeof ch !== "string" && ch.name === "item" ? [String(ch.attrs.jid)] : []
    );
  } finally {
    await c.close();
  }
}

Deno.test("a server with every optional part off serves clients and lists no service", async () => {
  const server = await startTestServer({
    c2s_direct_tls_port: false,
    require_encryption: false,
    component_port: false,
    s2s_port: false,
    muc: { enabled: false },
    pubsub: { enabled: false },
    upload: { enabled: false },
    web_client: { enabled: false },
  });
  try {
    await server.accounts.create("localhost", "alice", "pw");
    assert.equal(server.componentPort, undefined);
    assert.equal(server.s2sPort, undefined);
    assert.equal(server.httpPort, undefined);
    assert.equal(server.httpsPort, undefined);
    assert.deepEqual(await discoItems(server), []);
  } finally {
    await server.stop();
  }
});

Deno.test("a server with every optional part on binds each port and lists each service", async () => {
  const server = await startTestServer({
    component_port: 0,
    require_encryption: false,
    s2s_port: 0,
    http: { http_port: 0, https_port: 0 },
    web_client: { enabled: true },
  });
  try {
    await server.accounts.create("localhost", "alice", "pw");
    for (const port of [server.componentPort, server.s2sPort, server.httpPort, server.httpsPort]) {
      assert.ok(typeof port === "number" && port > 0, `port ${port}`);
    }
    assert.deepEqual((await discoItems(server)).toSorted(), [
      "conference.localhost",
      "pubsub.localhost",
      "upload.localhost",
    ]);
    // The HTTP side answers: the web client's page and XEP-0156 discovery.
    const page = await fetch(`http://127.0.0.1:${server.httpPort}/`);
    assert.equal(page.status, 200);
    await page.body?.cancel();
    const meta = await fetch(`http://127.0.0.1:${server.httpPort}/.well-known/host-meta`);
    assert.match(await meta.text(), /urn:xmpp:alt-connections:websocket/);
  } finally {
    await server.stop();
  }
});

Deno.test("serve reports a port in use as an error with exit code 2 (server.ts loaded lazily)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-cli-listen-" });
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const port = (taken.addr as Deno.NetAddr).port;
    await Deno.writeTextFile(
      `${dir}/config.toml`,
      [
        `data_dir = ${JSON.stringify(`${dir}/data`)}`,
        `interfaces = ["127.0.0.1"]`,
        `c2s_port = ${port}`,
        `c2s_direct_tls_port = false`,
        `component_port = false`,
        `s2s_port = false`,
        `log_level = "error"`,
        `http = { http_port = false, https_port = false }`,
      ].join("\n"),
    );
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--allow-all",
        new URL("../../main.ts", import.meta.url).pathname,
        "serve",
        "--config",
        `${dir}/config.toml`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.match(stderr, new RegExp(`error: cannot listen on 127\\.0\\.0\\.1 port ${port}`));
  } finally {
    taken.close();
    await Deno.remove(dir, { recursive: true });
  }
});
