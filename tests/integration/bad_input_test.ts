/**
 * Each bad input over a real TCP connection gets the stream error RFC 6120 names, and the
 * server goes on serving the next connection.
 */
import assert from "node:assert/strict";
import { clientHeader, rawExchange, startTestServer } from "./_server.ts";
import { RawClient } from "./_raw_client.ts";
import { elem, stanza } from "../../lib/xml/element.ts";

const ERR_NS = "urn:ietf:params:xml:ns:xmpp-streams";

function streamError(text: string): string | undefined {
  const m = /<stream:error><([a-z-]+) xmlns="urn:ietf:params:xml:ns:xmpp-streams"\/>/.exec(text);
  return m?.[1];
}

const enc = new TextEncoder();
const big = (n: number) => "x".repeat(n);

/** name, input, expected condition */
const CASES: readonly [string, string | readonly (string | Uint8Array)[], string][] = [
  ["a comment", clientHeader() + "<!-- hello -->", "restricted-xml"],
  ["a processing instruction", clientHeader() + "<?evil x?>", "restricted-xml"],
  [
    "a DOCTYPE",
    "<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY a 'b'>]>" + clientHeader(),
    "restricted-xml",
  ],
  ["mismatched tags", clientHeader() + "<message><body></message>", "not-well-formed"],
  [
    "invalid UTF-8",
    [clientHeader(), new Uint8Array([0x3c, 0x61, 0xff, 0xfe, 0x3e])],
    "not-well-formed",
  ],
  [
    "an undeclared entity",
    clientHeader() + "<message><body>&nbsp;</body></message>",
    "not-well-formed",
  ],
  ["an unbound prefix", clientHeader() + "<foo:message/>", "bad-namespace-prefix"],
  [
    "an oversized stanza before auth",
    [clientHeader(), "<message><body>", big(9000)],
    "policy-violation",
  ],
  ["a stanza nested too deep", clientHeader() + "<a>".repeat(40), "policy-violation"],
  [
    "a wrong stream namespace",
    "<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='localhost' version='1.0'>",
    "invalid-namespace",
  ],
  [
    "a wrong content namespace",
    "<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    "invalid-namespace",
  ],
  [
    "a stream prefix other than stream",
    "<s:stream xmlns='jabber:client' xmlns:s='http://etherx.jabber.org/streams' to='localhost' version='1.0'>",
    "bad-namespace-prefix",
  ],
  [
    "no version",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost'>",
    "unsupported-version",
  ],
  [
    "version 2.0",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='2.0'>",
    "unsupported-version",
  ],
  ["an unknown host", clientHeader("example.org"), "host-unknown"],
  [
    "no to address",
    "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>",
    "improper-addressing",
  ],
  [
    "a stanza before authentication",
    clientHeader() + "<message to='a@localhost'/>",
    "policy-violation",
  ],
  ["text at stream level", clientHeader() + "hello", "bad-format"],
];

Deno.test("bad input gets the RFC 6120 stream error", async (t) => {
  const server = await startTestServer();
  try {
    for (const [name, input, condition] of CASES) {
      await t.step(name, async () => {
        const { text, closed } = await rawExchange(server.c2sPort, input);
        assert.equal(streamError(text), condition, text);
        assert.ok(text.includes(ERR_NS));
        assert.ok(text.endsWith("</stream:stream>"), text);
        assert.ok(closed, "the server closes the connection");
        // The header is always sent before the error, so the client sees a whole stream.
        assert.ok(text.startsWith("<?xml version='1.0'?><stream:stream "), text);
      });
    }
    await t.step("the server still serves a good stream afterwards", async () => {
      const { text } = await rawExchange(server.c2sPort, clientHeader() + "</stream:stream>");
      assert.ok(
        text.includes('<starttls xmlns="urn:ietf:params:xml:ns:xmpp-tls"><required/></starttls>'),
        text,
      );
      assert.equal(streamError(text), undefined);
    });
    await t.step("the size limit fires before the whole stanza was sent", async () => {
      // 1 MiB in 16 KiB pieces: the error arrives and the connection closes long before.
      const pieces = [clientHeader(), "<message><body>", ...Array(64).fill(big(16384))];
      const { text } = await rawExchange(server.c2sPort, pieces.map((p) => enc.encode(p)));
      assert.equal(streamError(text), "policy-violation");
    });
  } finally {
    await server.stop();
  }
});

Deno.test("plain-TCP stanzas and auth are refused while encryption is required", async () => {
  const server = await startTestServer();
  try {
    const auth = "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
      btoa("\0alice\0pw") + "</auth>";
    const { text } = await rawExchange(server.c2sPort, clientHeader() + auth, 1500);
    assert.ok(text.includes("<encryption-required/>"), text);
    // No mechanisms are offered before TLS.
    assert.ok(!text.includes("<mechanisms"), text);
  } finally {
    await server.stop();
  }
});

Deno.test("an unauthenticated connection is closed after auth_timeout", async () => {
  const server = await startTestServer({ limits: { auth_timeout: 1 } });
  try {
    const started = Date.now();
    const { text, closed } = await rawExchange(server.c2sPort, clientHeader(), 5000);
    assert.ok(closed);
    assert.equal(streamError(text), "connection-timeout");
    assert.ok(Date.now() - started >= 900);
  } finally {
    await server.stop();
  }
});

Deno.test("a silent connection is closed after idle_timeout", async () => {
  const server = await startTestServer({ limits: { idle_timeout: 1, auth_timeout: 30 } });
  try {
    const started = Date.now();
    const { text, closed } = await rawExchange(server.c2sPort, clientHeader(), 6000);
    assert.ok(closed);
    assert.equal(streamError(text), "connection-timeout");
    assert.ok(text.includes("<idle-seconds>1</idle-seconds>"), text);
    assert.ok(Date.now() - started >= 900);
  } finally {
    await server.stop();
  }
});

Deno.test("a client that stops reading is dropped instead of buffered without end", async () => {
  const server = await startTestServer({ require_encryption: false, archive_enabled: false });
  await server.accounts.create("localhost", "slow", "pw");
  await server.accounts.create("localhost", "fast", "pw");
  const slow = await RawClient.connect(server.c2sPort);
  const fast = await RawClient.connect(server.c2sPort);
  try {
    await slow.login("slow", "pw");
    const slowJid = await slow.bind("s");
    await fast.login("fast", "pw");
    await fast.bind("f");
    slow.pause();
    // ~24 MB for a reader that takes nothing: more than the kernel's socket buffers and the
    // server's write backlog limit together.
    const body = "z".repeat(200_000);
    for (let i = 0; i < 120; i++) {
      fast.send(stanza("message", { to: slowJid, type: "chat", id: `m${i}` }, [
        elem("body", {}, [body]),
      ]));
      if (i % 20 === 0) await fast.ping();
    }
    await fast.ping();
    slow.resume();
    const deadline = Date.now() + 15_000;
    while (!slow.closed && Date.now() < deadline) await slow.event(1000);
    assert.ok(slow.closed, "the server closed the connection of the client that did not read");
    // The server itself carries on.
    await fast.ping();
  } finally {
    slow.cut();
    await fast.close();
    await server.stop();
  }
});
