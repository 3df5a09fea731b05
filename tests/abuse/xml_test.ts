/**
 * XML namespaces on the wire, against a real server: an element in no namespace (`xmlns=''`)
 * inside a stanza reaches the recipient in no namespace, live and from offline storage.
 * @module
 */
import assert from "node:assert/strict";
import { withServer } from "../integration/_server.ts";
import { RawClient } from "../integration/_raw_client.ts";
import {
  child,
  childText,
  type Element,
  NO_NAMESPACE,
  serialize,
  text,
} from "../../lib/xml/element.ts";

const SETTINGS = { require_encryption: false };

// As a client writes it: `x` and its unqualified child are in no namespace, `z` in its own, and
// `w` back in none; `body` is in the stanza's namespace.
function message(to: string, id: string): string {
  return `<message xmlns='jabber:client' to='${to}' type='chat' id='${id}'>` +
    `<x xmlns=''><y a='1'>t</y><z xmlns='urn:z'><w xmlns=''/></z></x>` +
    `<body>hello</body></message>`;
}

const EXPECTED_X = '<x xmlns=""><y a="1">t</y><z xmlns="urn:z"><w xmlns=""/></z></x>';

function checkReceived(received: Element, id: string): void {
  assert.equal(received.name, "message");
  assert.equal(received.attrs.id, id);
  assert.equal(childText(received, "body"), "hello");
  const x = child(received, "x", NO_NAMESPACE);
  assert.ok(x !== undefined, `no <x/> in no namespace in ${serialize(received)}`);
  // Written back as the recipient's stream carries it: the empty default namespace declared.
  assert.equal(serialize(x, "jabber:client"), EXPECTED_X);
  const w = child(child(x, "z", "urn:z")!, "w", NO_NAMESPACE);
  assert.ok(w !== undefined);
  assert.equal(text(child(x, "y", NO_NAMESPACE)!), "t");
}

async function nextMessage(c: RawClient): Promise<Element> {
  for (;;) {
    const st = await c.next("a message");
    if (st.name === "message") return st;
  }
}

Deno.test("xmlns='' inside a message reaches the recipient in no namespace", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const alice = await RawClient.connect(server.c2sPort);
    const bob = await RawClient.connect(server.c2sPort);
    try {
      await alice.login("alice", "pw");
      await alice.bind("a");
      await bob.login("bob", "pw");
      const bobJid = await bob.bind("b");
      alice.write(message(bobJid, "m1"));
      checkReceived(await nextMessage(bob), "m1");
    } finally {
      await alice.close();
      await bob.close();
    }
  }, SETTINGS);
});

Deno.test("xmlns='' survives offline storage", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const alice = await RawClient.connect(server.c2sPort);
    const bob = await RawClient.connect(server.c2sPort);
    try {
      await alice.login("alice", "pw");
      await alice.bind("a");
      alice.write(message("bob@localhost", "m2"));
      // Once the ping is answered, the message before it has been handled.
      await alice.ping();
      await bob.login("bob", "pw");
      await bob.bind("b");
      // Offline messages come after the initial presence (RFC 6121 §8.5.2.1.1 / XEP-0160).
      bob.write("<presence/>");
      checkReceived(await nextMessage(bob), "m2");
    } finally {
      await alice.close();
      await bob.close();
    }
  }, SETTINGS);
});
