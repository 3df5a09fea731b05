/**
 * A stopped server leaves its data directory alone: the list stores close at shutdown (every
 * lease ends before it returns, none lapses later), and what was archived is all there for the
 * next start.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { removeDataDir, startTestServer } from "./_server.ts";
import { testClient, xml, type XmppClient } from "./_xmpp_client.ts";

/** Every file under `dir` with its size and modification time. */
async function listing(dir: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  const walk = async (at: string) => {
    for await (const entry of Deno.readDir(at)) {
      const path = join(at, entry.name);
      if (entry.isDirectory) await walk(path);
      else {
        const info = await Deno.stat(path);
        out.set(path, `${info.size} ${info.mtime?.getTime()}`);
      }
    }
  };
  await walk(dir);
  return out;
}

/** Bodies of bob's archive, oldest first, through a MAM query. */
async function archivedBodies(bob: XmppClient): Promise<string[]> {
  const queryid = crypto.randomUUID();
  const bodies: string[] = [];
  const onStanza = (st: XmppClient) => {
    const r = st.is("message") ? st.getChild("result", "urn:xmpp:mam:2") : undefined;
    if (r?.attrs.queryid !== queryid) return;
    bodies.push(
      r.getChild("forwarded", "urn:xmpp:forward:0").getChild("message").getChildText("body"),
    );
  };
  bob.on("stanza", onStanza);
  try {
    await bob.iqCaller.request(
      xml(
        "iq",
        { type: "set" },
        xml("query", { xmlns: "urn:xmpp:mam:2", queryid }, [
          xml("set", { xmlns: "http://jabber.org/protocol/rsm" }, xml("max", {}, "50")),
        ]),
      ),
    );
  } finally {
    bob.removeListener("stanza", onStanza);
  }
  return bodies;
}

Deno.test("shutdown: nothing under the data directory changes once it returns; the archive is whole at the next start", async () => {
  const first = await startTestServer({ archive_policy: "always" });
  const dataDir = first.dataDir;
  try {
    for (const u of ["alice", "bob"]) await first.accounts.create("localhost", u, "pw");
    const alice = testClient({ port: first.c2sPort, username: "alice", password: "pw" });
    const bob = testClient({ port: first.c2sPort, username: "bob", password: "pw" });
    const sent = Array.from({ length: 20 }, (_, i) => `before shutdown ${i}`);
    try {
      await alice.start();
      await bob.start();
      await bob.send(xml("presence"));
      let got = 0;
      const all = new Promise<void>((resolve) =>
        bob.on("stanza", (st: XmppClient) => {
          if (st.is("message") && st.getChildText("body") !== null && ++got === sent.length) {
            resolve();
          }
        })
      );
      for (const body of sent) {
        await alice.send(xml("message", { to: "bob@localhost", type: "chat" }, [
          xml("body", {}, body),
        ]));
      }
      await all;
    } finally {
      for (const c of [alice, bob]) await c.stop().catch(() => {});
    }
    // The leases taken by those appends would lapse some 250 ms after the last use and then
    // write their index: shut down well inside that, and watch for four times as long.
    await first.shutdown();
    const stopped = await listing(dataDir);
    assert.ok([...stopped.keys()].some((p) => p.endsWith(".list")), "an archive list file");
    await new Promise((r) => setTimeout(r, 1000));
    assert.deepEqual(await listing(dataDir), stopped);

    const second = await startTestServer({ archive_policy: "always", data_dir: dataDir });
    const bob2 = testClient({ port: second.c2sPort, username: "bob", password: "pw" });
    try {
      await bob2.start();
      assert.deepEqual(await archivedBodies(bob2), sent);
    } finally {
      await bob2.stop().catch(() => {});
      await second.shutdown();
    }
  } finally {
    await first.shutdown(); // once only: a second call returns the first one's promise
    await removeDataDir(dataDir);
  }
});
