/**
 * Last activity (XEP-0012) across SIGKILL: once the server has answered a query with a logout's
 * time and status, a kill and a restart on the same data answer the same, since the logout was
 * durable before anything that depends on it was answered (lib/storage/log_keyval.ts).
 * @module
 */
import assert from "node:assert/strict";
import { openAccountStore } from "../../lib/storage/accounts.ts";
import { child, elem, type Element, stanza, text } from "../../lib/xml/element.ts";
import { NS_LAST } from "../../lib/xmpp/namespaces.ts";
import { RawClient } from "./_raw_client.ts";
import { type ServerProcess, startServerProcess, writeConfig } from "./_process.ts";

async function online(server: ServerProcess, user: string): Promise<RawClient> {
  const c = await RawClient.online(server.port, user);
  c.send(stanza("presence", {}));
  await c.ping();
  return c;
}

const isPresence = (from: string, type?: string) => (el: Element) =>
  el.name === "presence" && el.attrs.from === from && el.attrs.type === type;

/** Bob's last-activity query about alice; the answer's query element. */
async function askLast(bob: RawClient, id: string): Promise<Element> {
  bob.send(elem("iq", { xmlns: "jabber:client", type: "get", id, to: "alice@localhost" }, [
    elem("query", { xmlns: NS_LAST }),
  ]));
  const answer = await bob.until("the last activity answer", (el) => el.attrs.id === id);
  assert.equal(answer.attrs.type, "result");
  return child(answer, "query", NS_LAST)!;
}

Deno.test("last activity: a logout that was answered survives SIGKILL", async () => {
  const dir = await Deno.makeTempDir({ prefix: "xmpp-last-crash-" });
  const dataDir = `${dir}/data`;
  const accounts = openAccountStore(dataDir);
  for (const u of ["alice", "bob"]) await accounts.create("localhost", u, "pw");
  const config = await writeConfig(dataDir);
  let server: ServerProcess | undefined = await startServerProcess(config);
  try {
    const alice = await online(server, "alice");
    const bob = await online(server, "bob");
    // Bob may see alice's presence, so he may ask (XEP-0012 §4).
    bob.send(stanza("presence", { to: "alice@localhost", type: "subscribe" }));
    await alice.until("the request", isPresence("bob@localhost", "subscribe"));
    alice.send(stanza("presence", { to: "bob@localhost", type: "subscribed" }));
    await bob.until("the approval", isPresence("alice@localhost", "subscribed"));
    alice.send(stanza("presence", { type: "unavailable" }, [elem("status", {}, ["Heading Home"])]));
    await bob.until("alice leaving", isPresence("alice@localhost/r", "unavailable"));
    const before = await askLast(bob, "q1");
    assert.equal(text(before), "Heading Home");
    await server.kill();
    alice.cut();
    bob.cut();

    server = await startServerProcess(config);
    const again = await online(server, "bob");
    const after = await askLast(again, "q2");
    assert.equal(text(after), "Heading Home");
    assert.ok(Number(after.attrs.seconds) >= Number(before.attrs.seconds));
    again.cut();
  } finally {
    await server?.kill();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await Deno.remove(config).catch(() => {});
  }
});
