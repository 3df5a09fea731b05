import assert from "node:assert/strict";
import type { ResourceView } from "../lib/reducers/types.ts";
import { serializeTop } from "../lib/reducers/stream_xml.ts";
import { type Delivery, route, type RouterView } from "../lib/router.ts";
import { elem, type Element, stanza } from "../lib/xml/element.ts";

const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const ROMEO = "romeo@example.com/orchard";

function resource(
  name: string,
  priority: number,
  available = true,
  bare = "juliet@example.com",
): ResourceView {
  return { fullJid: `${bare}/${name}`, resource: name, priority, available, interested: false };
}

function view(online: Readonly<Record<string, readonly ResourceView[]>>): RouterView {
  return { hosts: ["example.com"], resourcesOf: (bare) => online[bare] ?? [] };
}

/** Deliveries with their stanzas serialized, for exact comparison. */
function shown(ds: readonly Delivery[]): unknown[] {
  return ds.map((d) =>
    d.kind === "deliver"
      ? { kind: d.kind, to: d.to, xml: serializeTop(d.stanza) }
      : { kind: d.kind, xml: serializeTop(d.stanza) }
  );
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

function bounced(el: Element): string {
  const to = el.attrs.to;
  return `<${el.name} type="error" id="${el.attrs.id}" from="${to}" to="${ROMEO}">` +
    `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/></error></${el.name}>`;
}

const JULIET_ONLINE = view({
  "juliet@example.com": [
    resource("balcony", 5),
    resource("chamber", 5),
    resource("garden", 1),
    resource("tomb", 10, false),
  ],
});

const CASES: readonly {
  readonly name: string;
  readonly stanza: Element;
  readonly view: RouterView;
  /** Full JIDs that get the stanza as it is; `bounce` for a service-unavailable reply. */
  readonly expect: readonly string[] | "bounce" | "nothing";
}[] = [
  {
    name: "message to a connected full JID is delivered there",
    stanza: message("juliet@example.com/garden"),
    view: JULIET_ONLINE,
    expect: ["juliet@example.com/garden"],
  },
  {
    name: "iq to a connected but unavailable full JID is delivered there",
    stanza: iq("juliet@example.com/tomb"),
    view: JULIET_ONLINE,
    expect: ["juliet@example.com/tomb"],
  },
  {
    name: "message to a gone resource follows the bare JID rules",
    stanza: message("juliet@example.com/gone"),
    view: JULIET_ONLINE,
    expect: ["juliet@example.com/balcony", "juliet@example.com/chamber"],
  },
  {
    name: "iq to a gone resource bounces with service-unavailable",
    stanza: iq("juliet@example.com/gone"),
    view: JULIET_ONLINE,
    expect: "bounce",
  },
  {
    name: "presence to a gone resource is dropped",
    stanza: presence("juliet@example.com/gone"),
    view: JULIET_ONLINE,
    expect: "nothing",
  },
  {
    name: "message to the bare JID: every available resource of the top priority",
    stanza: message("juliet@example.com"),
    view: JULIET_ONLINE,
    expect: ["juliet@example.com/balcony", "juliet@example.com/chamber"],
  },
  {
    name: "message to the bare JID: a single top resource alone",
    stanza: message("juliet@example.com"),
    view: view({ "juliet@example.com": [resource("a", 0), resource("b", 3)] }),
    expect: ["juliet@example.com/b"],
  },
  {
    name: "message to the bare JID: negative priorities never get it",
    stanza: message("juliet@example.com"),
    view: view({ "juliet@example.com": [resource("a", -1), resource("b", -5)] }),
    expect: "bounce",
  },
  {
    name: "message to the bare JID: connected but unavailable resources never get it",
    stanza: message("juliet@example.com"),
    view: view({ "juliet@example.com": [resource("a", 5, false)] }),
    expect: "bounce",
  },
  {
    name: "message to an offline user bounces",
    stanza: message("juliet@example.com"),
    view: view({}),
    expect: "bounce",
  },
  {
    name: "iq to a bare JID bounces (the server answers for the account)",
    stanza: iq("juliet@example.com"),
    view: JULIET_ONLINE,
    expect: "bounce",
  },
  {
    name: "presence to the bare JID reaches every available resource (RFC 6121 §8.5.2.1.1)",
    stanza: presence("juliet@example.com"),
    view: JULIET_ONLINE,
    expect: [
      "juliet@example.com/balcony",
      "juliet@example.com/chamber",
      "juliet@example.com/garden",
    ],
  },
  {
    name: "presence to the bare JID ignores priority but not availability",
    stanza: presence("juliet@example.com", { type: "unavailable" }),
    view: view({ "juliet@example.com": [resource("a", -1), resource("b", 2, false)] }),
    expect: ["juliet@example.com/a"],
  },
  {
    name: "presence to the bare JID of an offline user is dropped",
    stanza: presence("juliet@example.com"),
    view: view({}),
    expect: "nothing",
  },
  {
    name: "error message to an offline user is not bounced",
    stanza: message("juliet@example.com", { type: "error" }),
    view: view({}),
    expect: "nothing",
  },
  {
    name: "error iq to a gone resource is not bounced",
    stanza: iq("juliet@example.com/gone", "error"),
    view: JULIET_ONLINE,
    expect: "nothing",
  },
  {
    name: "result iq to a gone resource is not bounced",
    stanza: iq("juliet@example.com/gone", "result"),
    view: JULIET_ONLINE,
    expect: "nothing",
  },
  {
    name: "message to an unknown domain bounces",
    stanza: message("juliet@elsewhere.example"),
    view: JULIET_ONLINE,
    expect: "bounce",
  },
  {
    name: "message to the server's own domain bounces",
    stanza: message("example.com"),
    view: JULIET_ONLINE,
    expect: "bounce",
  },
  {
    name: "malformed to is dropped",
    stanza: message("@example.com"),
    view: JULIET_ONLINE,
    expect: "nothing",
  },
];

for (const c of CASES) {
  Deno.test(`router: ${c.name}`, () => {
    const got = shown(route(c.stanza, c.view));
    const expected = c.expect === "nothing"
      ? []
      : c.expect === "bounce"
      ? [{ kind: "bounce", xml: bounced(c.stanza) }]
      : c.expect.map((to) => ({ kind: "deliver", to, xml: serializeTop(c.stanza) }));
    assert.deepEqual(got, expected);
  });
}

Deno.test("router: a bounce is addressed back to the sender, from the intended recipient", () => {
  const [d] = route(iq("juliet@example.com/gone"), JULIET_ONLINE);
  assert.equal(d.kind, "bounce");
  assert.equal(
    serializeTop(d.stanza),
    `<iq type="error" id="i1" from="juliet@example.com/gone" to="${ROMEO}">` +
      `<error type="cancel"><service-unavailable xmlns="${STANZAS}"/></error></iq>`,
  );
});

Deno.test("router: broadcast presence reaches the sender's available resources and itself", () => {
  const online = view({
    "romeo@example.com": [
      resource("orchard", 0, false, "romeo@example.com"),
      resource("hall", 0, true, "romeo@example.com"),
      resource("street", 0, false, "romeo@example.com"),
    ],
  });
  const p = stanza("presence", { from: ROMEO });
  assert.deepEqual(shown(route(p, online)), [
    { kind: "deliver", to: ROMEO, xml: `<presence from="${ROMEO}"/>` },
    { kind: "deliver", to: "romeo@example.com/hall", xml: `<presence from="${ROMEO}"/>` },
  ]);
});

Deno.test("router: a message without to is not routed", () => {
  const m = stanza("message", { from: ROMEO }, [elem("body", {}, ["hi"])]);
  assert.deepEqual(route(m, JULIET_ONLINE), []);
});
