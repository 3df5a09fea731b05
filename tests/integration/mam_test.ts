/** The message archive (XEP-0313) with real clients: archive, page both ways, filters, ids. */
import assert from "node:assert/strict";
import { startTestServer } from "./_server.ts";
import { testClient, xml, type XmppClient } from "./_xmpp_client.ts";

const MAM = "urn:xmpp:mam:2";
const RSM = "http://jabber.org/protocol/rsm";

interface Page {
  readonly bodies: string[];
  readonly ids: string[];
  readonly complete: boolean;
  readonly first?: string;
  readonly last?: string;
}

/** Runs a query and collects its results up to the fin. */
async function query(
  xmpp: XmppClient,
  opts: {
    fields?: Record<string, string | string[]>;
    max?: number;
    after?: string;
    before?: string | true;
    flip?: boolean;
  } = {},
): Promise<Page> {
  const queryid = crypto.randomUUID();
  const results: XmppClient[] = [];
  const onStanza = (st: XmppClient) => {
    const r = st.is("message") ? st.getChild("result", MAM) : undefined;
    if (r?.attrs.queryid === queryid) results.push(r);
  };
  xmpp.on("stanza", onStanza);
  const form = opts.fields === undefined
    ? undefined
    : xml("x", { xmlns: "jabber:x:data", type: "submit" }, [
      xml("field", { var: "FORM_TYPE", type: "hidden" }, xml("value", {}, MAM)),
      ...Object.entries(opts.fields).map(([name, value]) =>
        xml(
          "field",
          { var: name },
          ...(Array.isArray(value) ? value : [value]).map((v) => xml("value", {}, v)),
        )
      ),
    ]);
  const set = xml(
    "set",
    { xmlns: RSM },
    [
      opts.max !== undefined ? xml("max", {}, String(opts.max)) : undefined,
      opts.after !== undefined ? xml("after", {}, opts.after) : undefined,
      opts.before === true
        ? xml("before")
        : opts.before !== undefined
        ? xml("before", {}, opts.before)
        : undefined,
    ].filter((x) => x !== undefined),
  );
  try {
    const res = await xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "set" },
        xml(
          "query",
          { xmlns: MAM, queryid },
          [
            form,
            set,
            opts.flip ? xml("flip-page") : undefined,
          ].filter((x) => x !== undefined),
        ),
      ),
    );
    const fin = res.getChild("fin", MAM);
    const rsm = fin.getChild("set", RSM);
    return {
      bodies: results.map((r) =>
        r.getChild("forwarded", "urn:xmpp:forward:0").getChild("message").getChildText("body")
      ),
      ids: results.map((r) => r.attrs.id),
      complete: fin.attrs.complete === "true",
      first: rsm?.getChildText("first") ?? undefined,
      last: rsm?.getChildText("last") ?? undefined,
    };
  } finally {
    xmpp.removeListener("stanza", onStanza);
  }
}

Deno.test("messages are archived for both sides and can be paged, filtered and fetched by id", async () => {
  const server = await startTestServer({ archive_policy: "always" });
  for (const u of ["alice", "bob", "carol"]) await server.accounts.create("localhost", u, "pw");
  const alice = testClient({
    port: server.c2sPort,
    username: "alice",
    password: "pw",
    resource: "a",
  });
  const bob = testClient({ port: server.c2sPort, username: "bob", password: "pw", resource: "b" });
  const carol = testClient({
    port: server.c2sPort,
    username: "carol",
    password: "pw",
    resource: "c",
  });
  try {
    await alice.start();
    await bob.start();
    await carol.start();
    await bob.send(xml("presence"));
    const stanzaIds: string[] = [];
    const waiters: [number, () => void][] = [];
    bob.on("stanza", (st: XmppClient) => {
      const sid = st.is("message") ? st.getChild("stanza-id", "urn:xmpp:sid:0") : undefined;
      if (sid?.attrs.by === "bob@localhost") stanzaIds.push(sid.attrs.id);
      for (const [n, resolve] of waiters) if (stanzaIds.length >= n) resolve();
    });
    const received = (n: number) =>
      new Promise<void>((resolve) => {
        waiters.push([n, resolve]);
        if (stanzaIds.length >= n) resolve();
      });
    const before = Date.now();
    for (let i = 0; i < 25; i++) {
      // A forged stanza-id claiming our domain is removed on the way.
      await alice.send(xml("message", { to: "bob@localhost", type: "chat", id: `m${i}` }, [
        xml("body", {}, `hello ${i}`),
        xml("stanza-id", { xmlns: "urn:xmpp:sid:0", by: "bob@localhost", id: "forged" }),
      ]));
    }
    await received(25);
    await carol.send(
      xml("message", { to: "bob@localhost", type: "chat" }, xml("body", {}, "from carol")),
    );
    await received(26);
    assert.ok(!stanzaIds.includes("forged"));

    // Bob's archive: 25 from Alice, 1 from Carol. Page forward with max 10.
    const p1 = await query(bob, { max: 10 });
    assert.equal(p1.bodies.length, 10);
    assert.equal(p1.bodies[0], "hello 0");
    assert.equal(p1.complete, false);
    // The ids in the archive are the stanza-ids Bob received.
    assert.deepEqual(p1.ids, stanzaIds.slice(0, 10));
    const p2 = await query(bob, { max: 10, after: p1.last });
    assert.equal(p2.bodies[0], "hello 10");
    const p3 = await query(bob, { max: 10, after: p2.last });
    assert.equal(p3.bodies.length, 6);
    assert.equal(p3.bodies.at(-1), "from carol");
    assert.equal(p3.complete, true);

    // Backward from the end (empty before = last page).
    const last = await query(bob, { max: 5, before: true });
    assert.deepEqual(last.bodies, ["hello 21", "hello 22", "hello 23", "hello 24", "from carol"]);
    const prev = await query(bob, { max: 5, before: last.first });
    assert.deepEqual(prev.bodies, ["hello 16", "hello 17", "hello 18", "hello 19", "hello 20"]);
    const flipped = await query(bob, { max: 5, before: true, flip: true });
    assert.deepEqual(flipped.bodies, [...last.bodies].reverse());

    // Filters: with, start/end, ids.
    const withCarol = await query(bob, { fields: { with: "carol@localhost" } });
    assert.deepEqual(withCarol.bodies, ["from carol"]);
    const future = await query(bob, {
      fields: { start: new Date(Date.now() + 60_000).toISOString() },
    });
    assert.deepEqual(future.bodies, []);
    assert.equal(future.complete, true);
    const since = await query(bob, {
      fields: { start: new Date(before - 1000).toISOString() },
      max: 50,
    });
    assert.equal(since.bodies.length, 26);
    const byIds = await query(bob, { fields: { ids: [stanzaIds[3], stanzaIds[7]] } });
    assert.deepEqual(byIds.bodies, ["hello 3", "hello 7"]);

    // Alice has her own copies, as the sender.
    const sent = await query(alice, { max: 50 });
    assert.equal(sent.bodies.length, 25);

    // An unknown id is item-not-found.
    const err = await query(bob, { after: "nonexistent" }).then(
      () => undefined,
      (e: Error & { condition?: string }) => e.condition,
    );
    assert.equal(err, "item-not-found");
  } finally {
    for (const c of [alice, bob, carol]) await c.stop().catch(() => {});
    await server.stop();
  }
});

/**
 * Alice, with no roster, sends Bob one chat message under `settings`; returns whether Bob's copy
 * carried a stanza-id and what each archive then holds.
 */
async function strangerMessage(settings: Readonly<Record<string, unknown>>, body: string) {
  const server = await startTestServer(settings);
  for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
  const alice = testClient({
    port: server.c2sPort,
    username: "alice",
    password: "pw",
    resource: "a",
  });
  const bob = testClient({ port: server.c2sPort, username: "bob", password: "pw", resource: "b" });
  try {
    await alice.start();
    await bob.start();
    await bob.send(xml("presence"));
    const got = new Promise<XmppClient>((resolve) =>
      bob.on("stanza", (st: XmppClient) => st.is("message") && resolve(st))
    );
    await alice.send(
      xml("message", { to: "bob@localhost/b", type: "chat" }, xml("body", {}, body)),
    );
    const msg = await got;
    return {
      stanzaId: msg.getChild("stanza-id", "urn:xmpp:sid:0") !== undefined,
      bob: (await query(bob)).bodies,
      alice: (await query(alice)).bodies,
    };
  } finally {
    for (const c of [alice, bob]) await c.stop().catch(() => {});
    await server.stop();
  }
}

Deno.test("archive_policy = roster archives only conversations with roster contacts", async () => {
  const r = await strangerMessage({ archive_policy: "roster" }, "not kept");
  assert.deepEqual(r, { stanzaId: false, bob: [], alice: [] });
});

Deno.test("the default policy (always) archives conversations with strangers too", async () => {
  const r = await strangerMessage({}, "kept");
  assert.deepEqual(r, { stanzaId: true, bob: ["kept"], alice: ["kept"] });
});
