/**
 * Issue 9, the entity capabilities cache (XEP-0115) against a real server: disco#info results
 * nobody asked for are not learned, so a client cannot fill the process-wide cache with them;
 * an answer to the server's own question still is.
 * @module
 */
import assert from "node:assert/strict";
import { verificationString } from "../../lib/modules/caps.ts";
import { child, elem, type Element, stanza } from "../../lib/xml/element.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { withServer } from "../integration/_server.ts";
import { NS_CAPS, NS_DISCO_INFO } from "../../lib/xmpp/namespaces.ts";

const NODE = "https://attacker.example/";
const BASE = { require_encryption: false, archive_enabled: false };

/** A disco#info answer with `n` features, its verified ver, as a client would compute it. */
function discoAnswer(tag: string, n: number): { readonly ver: string; readonly query: Element } {
  const identity = { category: "client", type: "pc", name: tag };
  const features = Array.from({ length: n }, (_, i) => `urn:${tag}:feature:${i}`);
  const ver = verificationString({ identities: [identity], features, forms: [] });
  const query = elem("query", { xmlns: NS_DISCO_INFO, node: `${NODE}#${ver}` }, [
    elem("identity", identity),
    ...features.map((f) => elem("feature", { var: f })),
  ]);
  return { ver, query };
}

function capsPresence(ver: string): Element {
  return stanza("presence", {}, [elem("c", { xmlns: NS_CAPS, hash: "sha-1", node: NODE, ver })]);
}

/** The disco#info questions the server sent before the client's own presence came back. */
async function questionsBeforeReflection(c: RawClient, fullJid: string): Promise<Element[]> {
  const questions: Element[] = [];
  for (;;) {
    const el = await c.next("the reflected presence");
    if (el.name === "presence" && el.attrs.from === fullJid) return questions;
    if (el.name === "iq" && el.attrs.type === "get" && child(el, "query", NS_DISCO_INFO)) {
      questions.push(el);
    }
  }
}

Deno.test("abuse: unsolicited disco#info results do not fill the caps cache", async () => {
  await withServer(["mallory", "alice"], async (server) => {
    const mallory = await RawClient.online(server.c2sPort, "mallory", "m");
    try {
      // Results the server never asked for, each with a correct hash, in the shape of an
      // answer to a caps question (id "disco", to the user's own service).
      const answers = Array.from({ length: 20 }, (_, i) => discoAnswer(`a${i}`, 50));
      for (const { query } of answers) {
        mallory.send(stanza("iq", { type: "result", id: "disco", to: "mallory@localhost" }, [
          query,
        ]));
      }
      await mallory.ping();
      // Nothing was learned: the cache holds what it held before (nothing).
      assert.deepEqual(server.capsCacheSize(), { items: 0, bytes: 0 });
      // Had one been learned, presence with its ver would raise no question: each still does.
      for (const { ver } of answers.slice(0, 3)) {
        mallory.send(capsPresence(ver));
        const asked = await questionsBeforeReflection(mallory, "mallory@localhost/m");
        assert.deepEqual(asked.map((q) => [q.attrs.id, q.attrs.from]), [
          ["disco", "mallory@localhost"],
        ]);
        assert.equal(child(asked[0], "query", NS_DISCO_INFO)?.attrs.node, `${NODE}#${ver}`);
      }

      // An answer to the server's own question is learned: another resource with the same
      // caps is not asked.
      const known = answers[3];
      mallory.send(capsPresence(known.ver));
      const [question] = await questionsBeforeReflection(mallory, "mallory@localhost/m");
      mallory.send(
        stanza("iq", { type: "result", id: question.attrs.id, to: question.attrs.from }, [
          known.query,
        ]),
      );
      await mallory.ping();
      assert.equal(server.capsCacheSize().items, 1);
      const alice = await RawClient.online(server.c2sPort, "alice", "a");
      try {
        alice.send(capsPresence(known.ver));
        assert.deepEqual(await questionsBeforeReflection(alice, "alice@localhost/a"), []);
        // A ver only sent unsolicited is still unknown to the server for anyone else too.
        alice.send(capsPresence(answers[10].ver));
        assert.equal((await questionsBeforeReflection(alice, "alice@localhost/a")).length, 1);
      } finally {
        alice.cut();
      }
    } finally {
      mallory.cut();
    }
  }, BASE);
});
