import assert from "node:assert/strict";
import { reduce } from "../../lib/c2s/mod.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { NS_PING } from "../../lib/xmpp/namespaces.ts";
import { bound, HOST, show, stanzaEvent, testCtx } from "../_ctx.ts";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const ME = `user@${HOST}/res`;

function ping(attrs: Readonly<Record<string, string>>): Element {
  return stanza("iq", { type: "get", id: "p1", ...attrs }, [elem("ping", { xmlns: NS_PING })]);
}

function badRequest(text: string, id?: string): string {
  const idAttr = id === undefined ? "" : ` id="${id}"`;
  return `<iq type="error"${idAttr} to="${ME}"><error type="modify">` +
    `<bad-request xmlns="${STANZAS}"/><text xmlns="${STANZAS}" xml:lang="en">${text}</text>` +
    "</error></iq>";
}

/** Each case: a stanza from the bound client, and exactly what it produces. */
const CASES: readonly {
  readonly name: string;
  readonly stanza: Element;
  readonly outputs: readonly unknown[];
}[] = [
  // XEP-0199 ping.
  {
    name: "ping to the server -> result",
    stanza: ping({ to: HOST }),
    outputs: [{ kind: "send", xml: `<iq type="result" id="p1" from="${HOST}" to="${ME}"/>` }],
  },
  {
    name: "ping without to -> result from nobody",
    stanza: ping({}),
    outputs: [{ kind: "send", xml: `<iq type="result" id="p1" to="${ME}"/>` }],
  },
  {
    name: "ping to the own bare JID, in another case -> result from the bare JID",
    stanza: ping({ to: "User@EXAMPLE.com" }),
    outputs: [{
      kind: "send",
      xml: `<iq type="result" id="p1" from="user@${HOST}" to="${ME}"/>`,
    }],
  },
  // Unknown payloads.
  {
    name: "unknown namespace get -> service-unavailable",
    stanza: stanza("iq", { type: "get", id: "u1", to: HOST }, [
      elem("query", { xmlns: "urn:example:unknown" }),
    ]),
    outputs: [{
      kind: "send",
      xml: `<iq type="error" id="u1" from="${HOST}" to="${ME}">` +
        `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/></error></iq>`,
    }],
  },
  {
    name: "unknown namespace set -> service-unavailable",
    stanza: stanza("iq", { type: "set", id: "u2" }, [
      elem("query", { xmlns: "urn:example:unknown" }),
    ]),
    outputs: [{
      kind: "send",
      xml: `<iq type="error" id="u2" to="${ME}">` +
        `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/></error></iq>`,
    }],
  },
  {
    name: "a known name in another namespace is still unknown",
    stanza: stanza("iq", { type: "get", id: "u3" }, [elem("ping", { xmlns: "urn:example" })]),
    outputs: [{
      kind: "send",
      xml: `<iq type="error" id="u3" to="${ME}">` +
        `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/></error></iq>`,
    }],
  },
  // Malformed iqs (RFC 6120 §8.2.3).
  {
    name: "no id -> bad-request",
    stanza: stanza("iq", { type: "get" }, [elem("ping", { xmlns: NS_PING })]),
    outputs: [{ kind: "send", xml: badRequest("An iq needs an id") }],
  },
  {
    name: "no type -> bad-request",
    stanza: stanza("iq", { id: "t1" }, [elem("ping", { xmlns: NS_PING })]),
    outputs: [{
      kind: "send",
      xml: badRequest("An iq type must be get, set, result or error", "t1"),
    }],
  },
  {
    name: "unknown type -> bad-request",
    stanza: stanza("iq", { id: "t2", type: "fetch" }, [elem("ping", { xmlns: NS_PING })]),
    outputs: [{
      kind: "send",
      xml: badRequest("An iq type must be get, set, result or error", "t2"),
    }],
  },
  {
    name: "get with no child -> bad-request",
    stanza: stanza("iq", { id: "c0", type: "get" }),
    outputs: [{
      kind: "send",
      xml: badRequest("A get or set iq must have exactly one child element", "c0"),
    }],
  },
  {
    name: "set with two children -> bad-request",
    stanza: stanza("iq", { id: "c2", type: "set" }, [
      elem("ping", { xmlns: NS_PING }),
      elem("ping", { xmlns: NS_PING }),
    ]),
    outputs: [{
      kind: "send",
      xml: badRequest("A get or set iq must have exactly one child element", "c2"),
    }],
  },
  {
    name: "malformed iq with a spoofed from: the error still goes to the full JID",
    stanza: stanza("iq", { id: "c3", type: "get", from: "mallory@example.com/x" }),
    outputs: [{
      kind: "send",
      xml: badRequest("A get or set iq must have exactly one child element", "c3"),
    }],
  },
  // Results and errors are never answered.
  {
    name: "result to the server -> nothing",
    stanza: stanza("iq", { type: "result", id: "r1", to: HOST }),
    outputs: [],
  },
  {
    name: "error to the server -> nothing",
    stanza: stanza("iq", { type: "error", id: "e1" }, [elem("error", { type: "cancel" })]),
    outputs: [],
  },
  {
    name: "malformed result (two children) -> nothing",
    stanza: stanza("iq", { type: "result", id: "r2" }, [elem("a"), elem("b")]),
    outputs: [],
  },
  {
    name: "result without id -> nothing",
    stanza: stanza("iq", { type: "result" }),
    outputs: [],
  },
  // Addressing.
  {
    name: "malformed to -> jid-malformed",
    stanza: ping({ to: "@example.com", id: "j1" }),
    outputs: [{
      kind: "send",
      xml: `<iq type="error" id="j1" from="@example.com" to="${ME}">` +
        `<error type="modify"><jid-malformed xmlns="${STANZAS}"/></error></iq>`,
    }],
  },
  {
    name: "message with malformed to -> jid-malformed",
    stanza: stanza("message", { to: "romeo@", id: "m1" }, [elem("body", {}, ["hi"])]),
    outputs: [{
      kind: "send",
      xml: `<message type="error" id="m1" from="romeo@" to="${ME}">` +
        `<error type="modify"><jid-malformed xmlns="${STANZAS}"/></error></message>`,
    }],
  },
  {
    name: "error with malformed to -> nothing",
    stanza: stanza("message", { to: "romeo@", type: "error" }),
    outputs: [],
  },
  {
    name: "iq to another user's full JID -> routed, to normalised, from stamped",
    stanza: stanza("iq", { type: "get", id: "v1", to: "Romeo@Example.COM/Orchard" }, [
      elem("query", { xmlns: "jabber:iq:version" }),
    ]),
    outputs: [{
      kind: "route",
      xml: `<iq type="get" id="v1" to="romeo@${HOST}/Orchard" from="${ME}">` +
        '<query xmlns="jabber:iq:version"/></iq>',
    }],
  },
  {
    name: "message without to -> routed to the sender's own bare JID (RFC 6120 §10.3)",
    stanza: stanza("message", { type: "chat", id: "n1" }, [elem("body", {}, ["note"])]),
    outputs: [{
      kind: "route",
      xml:
        `<message type="chat" id="n1" from="${ME}" to="user@${HOST}"><body>note</body></message>`,
    }],
  },
  {
    name: "iq to another user's bare JID -> routed",
    stanza: ping({ to: "romeo@example.com" }),
    outputs: [{
      kind: "route",
      xml: `<iq type="get" id="p1" to="romeo@${HOST}" from="${ME}"><ping xmlns="${NS_PING}"/></iq>`,
    }],
  },
  {
    name: "result to another user -> routed (it answers their request)",
    stanza: stanza("iq", { type: "result", id: "x1", to: "romeo@example.com/Orchard" }),
    outputs: [{
      kind: "route",
      xml: `<iq type="result" id="x1" to="romeo@${HOST}/Orchard" from="${ME}"/>`,
    }],
  },
  {
    name: "spoofed from on a routed message is replaced by the full JID",
    stanza: stanza("message", { to: "romeo@example.com", from: "juliet@example.com/balcony" }, [
      elem("body", {}, ["hi"]),
    ]),
    outputs: [{
      kind: "route",
      xml: `<message to="romeo@${HOST}" from="${ME}"><body>hi</body></message>`,
    }],
  },
  {
    name: "spoofed from on a server iq: the result goes to the full JID",
    stanza: ping({ to: HOST, from: "juliet@example.com/balcony" }),
    outputs: [{ kind: "send", xml: `<iq type="result" id="p1" from="${HOST}" to="${ME}"/>` }],
  },
];

for (const c of CASES) {
  Deno.test(`iq: ${c.name}`, () => {
    const s = bound();
    const [next, out] = reduce(s, stanzaEvent(c.stanza), testCtx());
    assert.deepEqual(show(out), c.outputs);
    // None of these change the session.
    assert.equal(next, s);
  });
}

Deno.test("iq: inbound stanzas are written to a bound resource as they are", () => {
  const s = bound();
  const msg = stanza("message", { from: "romeo@example.com/Orchard", to: ME }, [
    elem("body", {}, ["hi"]),
  ]);
  const [next, out] = reduce(s, { kind: "inbound", stanza: msg }, testCtx());
  assert.deepEqual(out, [{ kind: "send", stanza: msg }]);
  assert.equal(next, s);
});

Deno.test("iq: the loaded roster is kept on the session", () => {
  const s = bound();
  const roster = {
    version: "3",
    items: {
      "romeo@example.com": {
        jid: "romeo@example.com",
        subscription: "both" as const,
        groups: ["Friends"],
      },
    },
    pendingIn: {},
  };
  const [next, out] = reduce(s, { kind: "roster-loaded", roster }, testCtx());
  assert.deepEqual(out, []);
  assert.deepEqual(next, { ...s, roster });
});
