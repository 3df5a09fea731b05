/**
 * Issue 9, personal eventing (XEP-0163) and private storage (XEP-0049) against a real server:
 * node names, item ids and private namespaces named like Object.prototype's members; the
 * per-item and per-account byte caps and the node cap; `pubsub#itemreply`.
 * @module
 */
import assert from "node:assert/strict";
import { child, childElements, elem, type Element, stanza, text } from "../../lib/xml/element.ts";
import { RawClient } from "../integration/_raw_client.ts";
import { withServer } from "../integration/_server.ts";
import {
  NS_PRIVATE,
  NS_PUBSUB,
  NS_PUBSUB_ERRORS,
  NS_PUBSUB_OWNER,
} from "../../lib/xmpp/namespaces.ts";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const BASE = { require_encryption: false, archive_enabled: false };
const PROTO_NAMES = ["constructor", "toString", "hasOwnProperty", "__proto__", "valueOf"];

let ids = 0;

/** Sends an iq and returns its answer. */
async function iq(
  c: RawClient,
  type: "get" | "set",
  payload: Element,
  to?: string,
): Promise<Element> {
  const id = `q${++ids}`;
  c.send(stanza("iq", { type, id, to }, [payload]));
  return await c.until(`the answer to ${id}`, (el) => el.name === "iq" && el.attrs.id === id);
}

/** The error condition and its pubsub#errors detail, or the type when it is not an error. */
function outcome(el: Element): string {
  if (el.attrs.type !== "error") return el.attrs.type ?? "";
  const error = child(el, "error", el.xmlns) ?? elem("error");
  const condition = childElements(error, STANZAS).find((e) => e.name !== "text")?.name ?? "?";
  const detail = childElements(error, NS_PUBSUB_ERRORS)[0]?.name;
  return `${error.attrs.type} ${condition}${detail === undefined ? "" : ` ${detail}`}`;
}

function publish(node: string, id: string, payload: Element, options?: Element): Element {
  return elem("pubsub", { xmlns: NS_PUBSUB }, [
    elem("publish", { node }, [elem("item", { id }, [payload])]),
    options !== undefined && elem("publish-options", {}, [options]),
  ]);
}

function note(body: string): Element {
  return elem("note", { xmlns: "urn:example:note" }, [body]);
}

function options(fields: Readonly<Record<string, string>>): Element {
  return elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    elem("field", { var: "FORM_TYPE", type: "hidden" }, [
      elem("value", {}, [`${NS_PUBSUB}#publish-options`]),
    ]),
    ...Object.entries(fields).map(([k, v]) => elem("field", { var: k }, [elem("value", {}, [v])])),
  ]);
}

Deno.test("abuse: PEP requests for prototype-named nodes are answered and drop no neighbour", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const alice = await RawClient.online(server.c2sPort, "alice");
    const bob = await RawClient.online(server.c2sPort, "bob");
    try {
      alice.send(stanza("presence", {}));
      await alice.ping();
      // The reproduction: messages to Alice with PEP requests to her bare JID among them.
      const answers: Promise<Element>[] = [];
      let messages = 0;
      for (let round = 0; round < 4; round++) {
        for (const node of PROTO_NAMES) {
          bob.send(stanza("message", { to: "alice@localhost", type: "chat", id: `m${messages}` }, [
            elem("body", {}, [`${messages++}`]),
          ]));
          const payload = round % 2 === 0
            ? elem("pubsub", { xmlns: NS_PUBSUB }, [elem("items", { node })])
            : elem("pubsub", { xmlns: NS_PUBSUB }, [
              elem("publish", { node }, [elem("item", { id: node }, [note("x")])]),
            ]);
          answers.push(iq(bob, round % 2 === 0 ? "get" : "set", payload, "alice@localhost"));
          // iq() waits: each answer comes before the next message is sent.
          await answers.at(-1);
        }
      }
      const got = await Promise.all(answers);
      // Reading another user's unknown node: item-not-found; publishing there: forbidden.
      assert.deepEqual(
        got.map(outcome),
        Array.from(
          { length: 4 },
          (_, r) => PROTO_NAMES.map(() => r % 2 === 0 ? "cancel item-not-found" : "auth forbidden"),
        ).flat(),
      );
      const bodies: string[] = [];
      while (bodies.length < messages) {
        const m = await alice.until("bob's messages", (el) => el.name === "message");
        bodies.push(text(child(m, "body", m.xmlns) ?? elem("body")));
      }
      assert.deepEqual(bodies, Array.from({ length: messages }, (_, i) => `${i}`));

      // Alice herself: prototype names as nodes, item ids and private storage.
      for (const node of PROTO_NAMES) {
        assert.equal(outcome(await iq(alice, "set", publish(node, node, note(node)))), "result");
        const items = await iq(
          alice,
          "get",
          elem("pubsub", { xmlns: NS_PUBSUB }, [
            elem("items", { node }),
          ]),
        );
        const item = child(
          child(child(items, "pubsub", NS_PUBSUB)!, "items", NS_PUBSUB)!,
          "item",
          NS_PUBSUB,
        );
        assert.equal(item?.attrs.id, node);
        const configure = elem("pubsub", { xmlns: NS_PUBSUB_OWNER }, [
          elem("configure", { node: `${node}-missing` }),
        ]);
        assert.equal(outcome(await iq(alice, "get", configure)), "cancel item-not-found");
        const fragment = elem(node, { xmlns: node });
        const set = elem("query", { xmlns: NS_PRIVATE }, [elem(node, { xmlns: node }, ["v"])]);
        assert.equal(outcome(await iq(alice, "set", set)), "result");
        const read = await iq(alice, "get", elem("query", { xmlns: NS_PRIVATE }, [fragment]));
        assert.equal(text(childElements(child(read, "query", NS_PRIVATE)!)[0]), "v");
      }
      const affiliations = await iq(
        alice,
        "get",
        elem("pubsub", { xmlns: NS_PUBSUB }, [
          elem("affiliations"),
        ]),
      );
      const nodes = childElements(
        child(child(affiliations, "pubsub", NS_PUBSUB)!, "affiliations", NS_PUBSUB)!,
        NS_PUBSUB,
      ).map((a) => a.attrs.node);
      assert.deepEqual(nodes, PROTO_NAMES);
    } finally {
      alice.cut();
      bob.cut();
    }
  }, BASE);
});

Deno.test("abuse: pep_item_bytes, pep_bytes and pep_nodes bound what an account keeps", async () => {
  await withServer(["alice"], async (server) => {
    const alice = await RawClient.online(server.c2sPort, "alice");
    try {
      const max = options({ "pubsub#max_items": "max" });
      // 2000 bytes of payload is over pep_item_bytes: payload-too-big, nothing stored.
      const tooBig = await iq(alice, "set", publish("urn:n", "big", note("x".repeat(2000)), max));
      assert.equal(outcome(tooBig), "modify not-acceptable payload-too-big");
      // Items of ~900 bytes until pep_bytes refuses.
      const results: string[] = [];
      for (let i = 0; i < 8; i++) {
        results.push(outcome(
          await iq(alice, "set", publish("urn:n", `i${i}`, note("y".repeat(900)), max)),
        ));
      }
      assert.deepEqual(results, [
        ...Array(4).fill("result"),
        ...Array(4).fill("wait resource-constraint"),
      ]);
      // What is stored stays near the quota (JSON of the elements costs more than their XML).
      const file = `${server.dataDir}/localhost/pep/alice.json`;
      const stored = (await Deno.stat(file)).size;
      assert.ok(stored < 3 * 4096, `${stored} bytes stored`);
      // Retracting frees room.
      const retract = elem("pubsub", { xmlns: NS_PUBSUB }, [
        elem("retract", { node: "urn:n" }, [elem("item", { id: "i0" })]),
      ]);
      assert.equal(outcome(await iq(alice, "set", retract)), "result");
      assert.equal(
        outcome(await iq(alice, "set", publish("urn:n", "again", note("y".repeat(900)), max))),
        "result",
      );
      // Nodes: two more fit (three in all), the fourth is refused.
      const created: string[] = [];
      for (const node of ["urn:b", "urn:c", "urn:d"]) {
        created.push(outcome(await iq(alice, "set", publish(node, "1", note("z")))));
      }
      assert.deepEqual(created, ["result", "result", "wait resource-constraint"]);
    } finally {
      alice.cut();
    }
  }, { ...BASE, limits: { pep_item_bytes: 1024, pep_bytes: 4096, pep_nodes: 3 } });
});

Deno.test("abuse: private_bytes bounds private storage", async () => {
  await withServer(["alice"], async (server) => {
    const alice = await RawClient.online(server.c2sPort, "alice");
    try {
      const set = (name: string, n: number) =>
        elem("query", { xmlns: NS_PRIVATE }, [elem(name, { xmlns: "urn:example:p" }, [
          "p".repeat(n),
        ])]);
      assert.equal(outcome(await iq(alice, "set", set("a", 1500))), "result");
      assert.equal(outcome(await iq(alice, "set", set("b", 1500))), "modify not-acceptable");
      // Replacing the fragment with a smaller one still works.
      assert.equal(outcome(await iq(alice, "set", set("a", 100))), "result");
      assert.equal(outcome(await iq(alice, "set", set("b", 1500))), "result");
    } finally {
      alice.cut();
    }
  }, { ...BASE, limits: { private_bytes: 2048 } });
});

Deno.test("abuse: itemreply=publisher puts the publisher on retrieved items", async () => {
  await withServer(["alice"], async (server) => {
    const alice = await RawClient.online(server.c2sPort, "alice");
    try {
      const opts = options({ "pubsub#itemreply": "publisher" });
      assert.equal(
        outcome(await iq(alice, "set", publish("urn:n", "a", note("1"), opts))),
        "result",
      );
      const items = await iq(
        alice,
        "get",
        elem("pubsub", { xmlns: NS_PUBSUB }, [
          elem("items", { node: "urn:n" }),
        ]),
      );
      const item = child(
        child(child(items, "pubsub", NS_PUBSUB)!, "items", NS_PUBSUB)!,
        "item",
        NS_PUBSUB,
      );
      assert.deepEqual(item?.attrs, { id: "a", publisher: "alice@localhost" });
    } finally {
      alice.cut();
    }
  }, BASE);
});
