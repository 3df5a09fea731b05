import assert from "node:assert/strict";
import type { ResourceView } from "../../lib/core/types.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { type Delivery, route, type RouterView } from "../../lib/core/router.ts";
import { DELIVERY } from "../../lib/modules/registry.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const ROMEO = "romeo@example.com/orchard";
const JULIET = "juliet@example.com";

function resource(
  name: string,
  priority: number,
  available = true,
  bare = JULIET,
): ResourceView {
  return { fullJid: `${bare}/${name}`, resource: name, priority, available, interested: false };
}

function view(online: Readonly<Record<string, readonly ResourceView[]>>): RouterView {
  return {
    hosts: ["example.com"],
    archiving: false,
    resourcesOf: (bare) => online[bare] ?? [],
    delivery: DELIVERY,
  };
}

/** Deliveries with their stanzas serialized, for exact comparison. */
function shown(ds: readonly Delivery[]): unknown[] {
  return ds.map((d) => {
    switch (d.kind) {
      case "deliver":
        return { kind: d.kind, to: d.to, xml: serializeTop(d.stanza) };
      case "bounce":
        return { kind: d.kind, xml: serializeTop(d.stanza) };
      case "component":
        return { kind: d.kind, domain: d.domain, xml: serializeTop(d.stanza) };
      case "account":
        return {
          kind: d.kind,
          bare: d.bare,
          op: d.op.kind,
          xml: "stanza" in d.op ? serializeTop(d.op.stanza) : undefined,
        };
    }
  });
}

function message(to: string, attrs: Readonly<Record<string, string>> = {}): Element {
  return stanza("message", { from: ROMEO, to, id: "m1", ...attrs }, [elem("body", {}, ["hi"])]);
}

function iq(to: string, type = "get"): Element {
  return stanza("iq", { from: ROMEO, to, id: "i1", type }, [elem("query", { xmlns: "urn:x" })]);
}

function presence(to: string, attrs: Readonly<Record<string, string>> = {}): Element {
  return stanza("presence", { from: ROMEO, to, ...attrs });
}

/** The error types RFC 6120 §8.3.3 gives these conditions. */
const ERROR_TYPES = {
  "service-unavailable": "cancel",
  "remote-server-not-found": "cancel",
  "jid-malformed": "modify",
} as const;

type Condition = keyof typeof ERROR_TYPES;

/** The error reply to `el`: name and id kept, to and from swapped, no payload. */
function bounced(el: Element, condition: Condition): string {
  return `<${el.name} type="error" id="${el.attrs.id}" from="${el.attrs.to}" to="${ROMEO}">` +
    `<error type="${ERROR_TYPES[condition]}"><${condition} xmlns="${STANZAS}"/></error>` +
    `</${el.name}>`;
}

/** What one delivery should be, the stanza being the routed one unless it bounces. */
type Expected =
  | { readonly deliver: string }
  | { readonly bounce: Condition }
  | { readonly account: "offline-message" | "inbound-subscription" | "probe" };

function expected(el: Element, e: Expected): unknown {
  if ("deliver" in e) return { kind: "deliver", to: e.deliver, xml: serializeTop(el) };
  if ("bounce" in e) return { kind: "bounce", xml: bounced(el, e.bounce) };
  return { kind: "account", bare: JULIET, op: e.account, xml: serializeTop(el) };
}

const JULIET_ONLINE = view({
  [JULIET]: [
    resource("balcony", 5),
    resource("chamber", 5),
    resource("garden", 1),
    resource("tomb", 10, false),
  ],
});

/** The bare-JID priority layout of the brief: 1, 1, 0, -1, plus one not available. */
const PRIORITIES = view({
  [JULIET]: [
    resource("a", 1),
    resource("b", 1),
    resource("c", 0),
    resource("d", -1),
    resource("e", 9, false),
  ],
});

const OFFLINE = view({});

const GARDEN = `${JULIET}/garden`;
const GONE = `${JULIET}/gone`;
const TOMB = `${JULIET}/tomb`;

const CASES: readonly {
  readonly name: string;
  readonly stanza: Element;
  readonly view: RouterView;
  readonly expect: readonly Expected[];
}[] = [
  // -- Full JID, the resource is connected: delivered there, whatever the type (RFC 6121
  // §8.5.3.1), except subscription stanzas and probes, which belong to the account (§3, §4.3).
  ...(["chat", "normal", "headline", "groupchat", "error"] as const).map((type) => ({
    name: `message ${type} to a connected full JID is delivered there`,
    stanza: message(GARDEN, { type }),
    view: JULIET_ONLINE,
    expect: [{ deliver: GARDEN }],
  })),
  {
    name: "message without type to a connected full JID is delivered there",
    stanza: message(GARDEN),
    view: JULIET_ONLINE,
    expect: [{ deliver: GARDEN }],
  },
  {
    name: "iq get to a connected but unavailable full JID is delivered there",
    stanza: iq(TOMB),
    view: JULIET_ONLINE,
    expect: [{ deliver: TOMB }],
  },
  {
    name: "iq result to a connected full JID is delivered there",
    stanza: iq(GARDEN, "result"),
    view: JULIET_ONLINE,
    expect: [{ deliver: GARDEN }],
  },
  {
    name: "available presence to a connected full JID is delivered there",
    stanza: presence(GARDEN),
    view: JULIET_ONLINE,
    expect: [{ deliver: GARDEN }],
  },
  {
    name: "unavailable presence to a connected but unavailable full JID is delivered there",
    stanza: presence(TOMB, { type: "unavailable" }),
    view: JULIET_ONLINE,
    expect: [{ deliver: TOMB }],
  },
  ...(["subscribe", "subscribed", "unsubscribe", "unsubscribed"] as const).map((type) => ({
    name: `presence ${type} to a connected full JID goes to the account`,
    stanza: presence(GARDEN, { type }),
    view: JULIET_ONLINE,
    expect: [{ account: "inbound-subscription" as const }],
  })),
  {
    name: "probe to a connected full JID goes to the account",
    stanza: presence(GARDEN, { type: "probe" }),
    view: JULIET_ONLINE,
    expect: [{ account: "probe" }],
  },

  // -- Full JID, the resource is gone (RFC 6121 §8.5.3.2).
  {
    name: "chat to a gone resource follows the bare JID rules",
    stanza: message(GONE, { type: "chat" }),
    view: JULIET_ONLINE,
    expect: [{ deliver: `${JULIET}/balcony` }, { deliver: `${JULIET}/chamber` }],
  },
  {
    name: "normal message to a gone resource follows the bare JID rules",
    stanza: message(GONE),
    view: PRIORITIES,
    expect: [{ deliver: `${JULIET}/a` }, { deliver: `${JULIET}/b` }, { deliver: `${JULIET}/c` }],
  },
  {
    name: "chat to a gone resource of an offline user is stored",
    stanza: message(GONE, { type: "chat" }),
    view: OFFLINE,
    expect: [{ account: "offline-message" }],
  },
  {
    name: "normal message to a gone resource of an offline user is stored",
    stanza: message(GONE, { type: "normal" }),
    view: OFFLINE,
    expect: [{ account: "offline-message" }],
  },
  {
    name: "headline to a gone resource is dropped",
    stanza: message(GONE, { type: "headline" }),
    view: JULIET_ONLINE,
    expect: [],
  },
  {
    name: "groupchat to a gone resource bounces",
    stanza: message(GONE, { type: "groupchat" }),
    view: JULIET_ONLINE,
    expect: [{ bounce: "service-unavailable" }],
  },
  {
    name: "error message to a gone resource is dropped",
    stanza: message(GONE, { type: "error" }),
    view: OFFLINE,
    expect: [],
  },
  {
    name: "iq get to a gone resource bounces with service-unavailable",
    stanza: iq(GONE),
    view: JULIET_ONLINE,
    expect: [{ bounce: "service-unavailable" }],
  },
  {
    name: "iq set to a gone resource of an offline user bounces",
    stanza: iq(GONE, "set"),
    view: OFFLINE,
    expect: [{ bounce: "service-unavailable" }],
  },
  {
    name: "iq result to a gone resource is not bounced",
    stanza: iq(GONE, "result"),
    view: JULIET_ONLINE,
    expect: [],
  },
  {
    name: "iq error to a gone resource is not bounced",
    stanza: iq(GONE, "error"),
    view: JULIET_ONLINE,
    expect: [],
  },
  {
    name: "available presence to a gone resource is dropped",
    stanza: presence(GONE),
    view: JULIET_ONLINE,
    expect: [],
  },
  {
    name: "unavailable presence to a gone resource is dropped",
    stanza: presence(GONE, { type: "unavailable" }),
    view: OFFLINE,
    expect: [],
  },
  {
    name: "subscribe to a gone resource of an offline user goes to the account",
    stanza: presence(GONE, { type: "subscribe" }),
    view: OFFLINE,
    expect: [{ account: "inbound-subscription" }],
  },
  {
    name: "probe to a gone resource of an offline user goes to the account",
    stanza: presence(GONE, { type: "probe" }),
    view: OFFLINE,
    expect: [{ account: "probe" }],
  },

  // -- Bare JID with resources at priorities 1, 1, 0, -1 (and one not available).
  {
    name: "chat to the bare JID: the available resources of the top priority",
    stanza: message(JULIET, { type: "chat" }),
    view: PRIORITIES,
    expect: [{ deliver: `${JULIET}/a` }, { deliver: `${JULIET}/b` }],
  },
  {
    name: "normal message to the bare JID: every non-negative available resource",
    stanza: message(JULIET),
    view: PRIORITIES,
    expect: [{ deliver: `${JULIET}/a` }, { deliver: `${JULIET}/b` }, { deliver: `${JULIET}/c` }],
  },
  {
    name: "headline to the bare JID: every non-negative available resource (RFC 6121 §8.5.2.1.1)",
    stanza: message(JULIET, { type: "headline" }),
    view: PRIORITIES,
    expect: [{ deliver: `${JULIET}/a` }, { deliver: `${JULIET}/b` }, { deliver: `${JULIET}/c` }],
  },
  {
    name: "groupchat to the bare JID bounces with service-unavailable",
    stanza: message(JULIET, { type: "groupchat" }),
    view: PRIORITIES,
    expect: [{ bounce: "service-unavailable" }],
  },
  {
    name: "error message to the bare JID is silently dropped (RFC 6121 §8.5.2.1.1)",
    stanza: message(JULIET, { type: "error" }),
    view: PRIORITIES,
    expect: [],
  },
  {
    name: "chat to the bare JID: a single top resource alone",
    stanza: message(JULIET, { type: "chat" }),
    view: view({ [JULIET]: [resource("a", 0), resource("b", 3)] }),
    expect: [{ deliver: `${JULIET}/b` }],
  },
  {
    name: "iq get to the bare JID bounces (the server answers for the account)",
    stanza: iq(JULIET),
    view: PRIORITIES,
    expect: [{ bounce: "service-unavailable" }],
  },
  {
    name: "available presence to the bare JID reaches every available resource, any priority",
    stanza: presence(JULIET),
    view: PRIORITIES,
    expect: [
      { deliver: `${JULIET}/a` },
      { deliver: `${JULIET}/b` },
      { deliver: `${JULIET}/c` },
      { deliver: `${JULIET}/d` },
    ],
  },
  {
    name: "unavailable presence to the bare JID reaches every available resource",
    stanza: presence(JULIET, { type: "unavailable" }),
    view: PRIORITIES,
    expect: [
      { deliver: `${JULIET}/a` },
      { deliver: `${JULIET}/b` },
      { deliver: `${JULIET}/c` },
      { deliver: `${JULIET}/d` },
    ],
  },
  ...(["subscribe", "subscribed", "unsubscribe", "unsubscribed"] as const).map((type) => ({
    name: `presence ${type} to the bare JID goes to the account`,
    stanza: presence(JULIET, { type }),
    view: PRIORITIES,
    expect: [{ account: "inbound-subscription" as const }],
  })),
  {
    name: "probe to the bare JID goes to the account",
    stanza: presence(JULIET, { type: "probe" }),
    view: PRIORITIES,
    expect: [{ account: "probe" }],
  },

  // -- Bare JID with no available resource with non-negative priority (§8.5.2.2).
  {
    name: "chat to the bare JID, only negative priorities: stored",
    stanza: message(JULIET, { type: "chat" }),
    view: view({ [JULIET]: [resource("a", -1), resource("b", -5)] }),
    expect: [{ account: "offline-message" }],
  },
  {
    name: "normal message to the bare JID, only unavailable resources: stored",
    stanza: message(JULIET),
    view: view({ [JULIET]: [resource("a", 5, false)] }),
    expect: [{ account: "offline-message" }],
  },
  {
    name: "chat to an offline user: stored (or bounced by the account if there is none)",
    stanza: message(JULIET, { type: "chat" }),
    view: OFFLINE,
    expect: [{ account: "offline-message" }],
  },
  {
    name: "headline to an offline user is dropped",
    stanza: message(JULIET, { type: "headline" }),
    view: OFFLINE,
    expect: [],
  },
  {
    name: "groupchat to an offline user bounces",
    stanza: message(JULIET, { type: "groupchat" }),
    view: OFFLINE,
    expect: [{ bounce: "service-unavailable" }],
  },
  {
    name: "error message to an offline user is not bounced",
    stanza: message(JULIET, { type: "error" }),
    view: OFFLINE,
    expect: [],
  },
  {
    name: "iq get to an offline user bounces",
    stanza: iq(JULIET),
    view: OFFLINE,
    expect: [{ bounce: "service-unavailable" }],
  },
  {
    name: "available presence to an offline user is dropped",
    stanza: presence(JULIET),
    view: OFFLINE,
    expect: [],
  },
  {
    name: "subscribe to an offline user goes to the account",
    stanza: presence(JULIET, { type: "subscribe" }),
    view: OFFLINE,
    expect: [{ account: "inbound-subscription" }],
  },
  {
    name: "probe to an offline user goes to the account",
    stanza: presence(JULIET, { type: "probe" }),
    view: OFFLINE,
    expect: [{ account: "probe" }],
  },

  // -- Other domains and the server's own domain.
  {
    name: "message to an unknown domain bounces with remote-server-not-found",
    stanza: message("juliet@elsewhere.example"),
    view: JULIET_ONLINE,
    expect: [{ bounce: "remote-server-not-found" }],
  },
  {
    name: "iq to an unknown domain bounces with remote-server-not-found",
    stanza: iq("elsewhere.example"),
    view: JULIET_ONLINE,
    expect: [{ bounce: "remote-server-not-found" }],
  },
  {
    name: "presence to an unknown domain is dropped, never answered with an error",
    stanza: presence("juliet@elsewhere.example", { type: "subscribe" }),
    view: JULIET_ONLINE,
    expect: [],
  },
  {
    name: "error message to an unknown domain is not bounced",
    stanza: message("juliet@elsewhere.example", { type: "error" }),
    view: JULIET_ONLINE,
    expect: [],
  },
  {
    name: "message to the server's own domain is dropped (the server handles what it knows)",
    stanza: message("example.com"),
    view: JULIET_ONLINE,
    expect: [],
  },
  {
    name: "presence to the server's own domain is dropped",
    stanza: presence("example.com"),
    view: JULIET_ONLINE,
    expect: [],
  },
  {
    name: "malformed to bounces with jid-malformed",
    stanza: message("@example.com"),
    view: JULIET_ONLINE,
    expect: [{ bounce: "jid-malformed" }],
  },
];

for (const c of CASES) {
  Deno.test(`router: ${c.name}`, () => {
    assert.deepEqual(shown(route(c.stanza, c.view)), c.expect.map((e) => expected(c.stanza, e)));
  });
}

Deno.test("router: an iq result or error to a bare JID is the account's (answers to its iqs)", () => {
  for (const type of ["result", "error"]) {
    const st = iq(JULIET, type);
    assert.deepEqual(route(st, PRIORITIES), [
      { kind: "account", bare: JULIET, op: { kind: "iq-reply", iq: st } },
    ]);
  }
});

Deno.test("router: an iq get or set to our own domain from elsewhere goes to the host's handlers", () => {
  for (const type of ["get", "set"]) {
    const st = iq("example.com", type);
    assert.deepEqual(route(st, JULIET_ONLINE), [{ kind: "host-iq", stanza: st }]);
  }
  // Results and errors to the domain have nowhere to go.
  assert.deepEqual(route(iq("example.com", "result"), JULIET_ONLINE), []);
  assert.deepEqual(route(iq("example.com", "error"), JULIET_ONLINE), []);
});

Deno.test("router: with federation, other domains are remote; a local sender archives first", () => {
  const fed = { ...JULIET_ONLINE, federation: true };
  for (const st of [iq("juliet@elsewhere.example"), presence("elsewhere.example")]) {
    assert.deepEqual(route(st, fed), [{ kind: "remote", domain: "elsewhere.example", stanza: st }]);
  }
  const m = message("juliet@elsewhere.example", { type: "chat" });
  assert.deepEqual(route(m, fed), [{ kind: "remote", domain: "elsewhere.example", stanza: m }]);
  // Archiving: the local sender's copy first, then on to the remote server.
  const archiving = { ...fed, archiving: true };
  assert.deepEqual(route(m, archiving), [
    { kind: "account", bare: "romeo@example.com", op: { kind: "outgoing-message", stanza: m } },
  ]);
  assert.deepEqual(route(m, archiving, { senderArchived: true }), [
    { kind: "remote", domain: "elsewhere.example", stanza: m },
  ]);
});

Deno.test("router: a bounce is addressed back to the sender, from the intended recipient", () => {
  const [d] = route(iq(GONE), JULIET_ONLINE);
  assert.equal(d.kind, "bounce");
  assert.equal(
    serializeTop(d.stanza),
    `<iq type="error" id="i1" from="${GONE}" to="${ROMEO}">` +
      `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/></error></iq>`,
  );
});

Deno.test("router: an account delivery names the bare JID of the addressed user", () => {
  // The stanza keeps the full JID it was sent to; the account is keyed by the bare JID.
  const ds = route(presence(`${JULIET}/Balcony`, { type: "subscribe" }), OFFLINE);
  assert.deepEqual(shown(ds), [{
    kind: "account",
    bare: JULIET,
    op: "inbound-subscription",
    xml: `<presence from="${ROMEO}" to="juliet@example.com/Balcony" type="subscribe"/>`,
  }]);
});

Deno.test("router: presence without to is not routed (the session addresses each target)", () => {
  const online = view({
    "romeo@example.com": [resource("hall", 0, true, "romeo@example.com")],
  });
  assert.deepEqual(route(stanza("presence", { from: ROMEO }), online), []);
});

Deno.test("router: a message without to is not routed", () => {
  const m = stanza("message", { from: ROMEO }, [elem("body", {}, ["hi"])]);
  assert.deepEqual(route(m, JULIET_ONLINE), []);
});

Deno.test("stanzas to an external component's domain go to the component (XEP-0114)", () => {
  const v: RouterView = {
    ...view({}),
    componentFor: (d) =>
      d === "gw.example.com" ? "connected" : d === "off.example.com" ? "disconnected" : undefined,
  };
  for (const to of ["gw.example.com", "user@gw.example.com", "user@gw.example.com/r"]) {
    for (const name of ["message", "presence", "iq"] as const) {
      const el = stanza(name, {
        from: ROMEO,
        to,
        id: "c1",
        type: name === "iq" ? "get" : undefined,
      });
      assert.deepEqual(shown(route(el, v)), [
        { kind: "component", domain: "gw.example.com", xml: serializeTop(el) },
      ]);
    }
  }
  // Not connected: iq and message bounce service-unavailable, presence is dropped.
  const msg = stanza("message", { from: ROMEO, to: "user@off.example.com", id: "m1" });
  assert.deepEqual(shown(route(msg, v)), [{
    kind: "bounce",
    xml: bounced(msg, "service-unavailable").replace(
      `from="${msg.attrs.to}"`,
      `from="user@off.example.com"`,
    ),
  }]);
  const iqEl = stanza("iq", { from: ROMEO, to: "off.example.com", id: "i1", type: "get" });
  assert.equal(route(iqEl, v)[0].kind, "bounce");
  assert.deepEqual(route(stanza("presence", { from: ROMEO, to: "off.example.com" }), v), []);
  // Other domains still bounce remote-server-not-found.
  const far = stanza("message", { from: ROMEO, to: "x@far.example", id: "f1" });
  assert.deepEqual(shown(route(far, v)), [{
    kind: "bounce",
    xml: bounced(far, "remote-server-not-found"),
  }]);
});

Deno.test("archiving: a local user's message goes to the sender's archive first, then on", () => {
  const v: RouterView = { ...view({ [JULIET]: [resource("balcony", 0)] }), archiving: true };
  const msg = stanza("message", { type: "chat", from: ROMEO, to: JULIET, id: "m1" }, [
    elem("body", {}, ["hi"]),
  ]);
  const xml = serializeTop(msg);
  // Issue 10: nothing reaches the recipient that the sender's archive could still lose.
  assert.deepEqual(shown(route(msg, v)), [
    { kind: "account", bare: "romeo@example.com", op: "outgoing-message", xml },
  ]);
  // Once the sender's copy is durable, the recipient's account archives and delivers.
  assert.deepEqual(shown(route(msg, v, { senderArchived: true })), [
    { kind: "account", bare: JULIET, op: "incoming-message", xml },
  ]);
  // A message the archive does not keep (no body) goes straight on.
  const state = stanza("message", { type: "chat", from: ROMEO, to: JULIET }, [
    elem("active", { xmlns: "http://jabber.org/protocol/chatstates" }),
  ]);
  assert.deepEqual(shown(route(state, v)).map((d) => (d as { op: string }).op), [
    "incoming-message",
  ]);
  // A sender who is not ours has no archive here.
  const remote = stanza("message", { type: "chat", from: "x@elsewhere.example/r", to: JULIET }, [
    elem("body", {}, ["hi"]),
  ]);
  assert.deepEqual(shown(route(remote, v)).map((d) => (d as { op: string }).op), [
    "incoming-message",
  ]);
});
