/**
 * Certificate authentication in the server-to-server reducers (XEP-0178): the shell reports the
 * peer's certificate with `tls-done`, the reducers decide. Incoming: EXTERNAL offered only for a
 * trusted certificate naming the header's `from`, its authzid checked, success restarting the
 * stream. Outgoing: EXTERNAL when offered and the remote's certificate is valid, dialback on
 * failure, and `s2s_secure_auth` failing a remote whose certificate is not valid.
 */
import assert from "node:assert/strict";
import {
  newS2sIn,
  reduceS2sIn,
  type S2sInCtx,
  type S2sInEvent,
  type S2sInOutput,
  type S2sInSession,
} from "../../lib/s2s/inbound.ts";
import {
  newS2sOut,
  reduceS2sOut,
  type S2sOutCtx,
  type S2sOutEvent,
  type S2sOutOutput,
  type S2sOutSession,
} from "../../lib/s2s/outbound.ts";
import type { PeerCert } from "../../lib/xmpp/cert_names.ts";
import { elem, type Element } from "../../lib/xml/element.ts";
import { serializeTopIn } from "../../lib/xmpp/stream_xml.ts";
import {
  NS_DIALBACK_FEATURE,
  NS_SASL,
  NS_SERVER,
  NS_STREAMS,
  NS_TLS,
} from "../../lib/xmpp/namespaces.ts";

const GOOD: PeerCert = {
  trusted: true,
  names: { dns: ["b.example"], srv: [], xmpp: [], uri: [], cn: [] },
};

const IN_CTX: S2sInCtx = {
  isLocal: (d) => d === "a.example",
  tlsAvailable: true,
  requireEncryption: true,
  secureAuth: false,
  secret: "s3cret",
  newId: () => "sid1",
  maxDomains: 4,
};

const OPEN: S2sInEvent = {
  kind: "stream-open",
  name: "stream",
  prefix: "stream",
  xmlns: NS_STREAMS,
  contentXmlns: NS_SERVER,
  attrs: { from: "b.example", to: "a.example", version: "1.0" },
};

function wire(out: readonly (S2sInOutput | S2sOutOutput)[]): string[] {
  return out.map((o) =>
    o.kind === "send" ? serializeTopIn(o.stanza, NS_SERVER) : JSON.stringify(o)
  );
}

function runIn(
  events: readonly S2sInEvent[],
  ctx = IN_CTX,
  start: S2sInSession = newS2sIn("192.0.2.1", true),
): { s: S2sInSession; out: S2sInOutput[] } {
  let s = start;
  const out: S2sInOutput[] = [];
  for (const ev of events) {
    const [next, o] = reduceS2sIn(s, ev, ctx);
    s = next;
    out.push(...o);
  }
  return { s, out };
}

function auth(text: string): S2sInEvent {
  return {
    kind: "stanza",
    stanza: elem("auth", { xmlns: NS_SASL, mechanism: "EXTERNAL" }, [text]),
  } as S2sInEvent;
}

Deno.test("s2s in: EXTERNAL is offered for a trusted certificate naming the header's from", () => {
  const { s, out } = runIn([{ kind: "tls-done", peer: GOOD }, OPEN]);
  assert.deepEqual(s.external, { remote: "b.example", local: "a.example" });
  const features = wire(out)[1];
  assert.match(
    features,
    /<mechanisms xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><mechanism>EXTERNAL<\/mechanism><\/mechanisms><dialback /,
  );
  // Not trusted, or not naming the claimed domain: dialback only.
  for (
    const peer of [{ ...GOOD, trusted: false }, {
      ...GOOD,
      names: { ...GOOD.names, dns: ["c.example"] },
    }]
  ) {
    const r = runIn([{ kind: "tls-done", peer }, OPEN]);
    assert.equal(r.s.external, undefined);
    assert.doesNotMatch(wire(r.out)[1], /mechanisms/);
  }
  // Without TLS there is no certificate to speak of.
  const plain = runIn([OPEN], { ...IN_CTX, requireEncryption: false }, newS2sIn("192.0.2.1"));
  assert.doesNotMatch(wire(plain.out)[1], /mechanisms/);
});

Deno.test("s2s in: EXTERNAL with an empty or matching authzid succeeds and restarts the stream", () => {
  for (const authzid of ["=", "", btoa("b.example")]) {
    const { s, out } = runIn([{ kind: "tls-done", peer: GOOD }, OPEN, auth(authzid)]);
    assert.deepEqual(wire(out).slice(2), [
      '<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/>',
      JSON.stringify({ kind: "reset-stream" }),
      JSON.stringify({
        kind: "authenticated",
        remote: "b.example",
        local: "a.example",
        via: "sasl-external",
      }),
    ]);
    assert.equal(s.state, "opening");
    assert.deepEqual(s.authed, ["b.example a.example"]);
    // The new stream offers no SASL again, and its stanzas from b.example are accepted.
    const again = runIn([OPEN], IN_CTX, s);
    assert.doesNotMatch(wire(again.out)[1], /mechanisms/);
    const msg = runIn(
      [{
        kind: "stanza",
        stanza: elem("message", { xmlns: NS_SERVER, from: "u@b.example", to: "v@a.example" }),
      } as S2sInEvent],
      IN_CTX,
      again.s,
    );
    assert.equal(msg.out[0].kind, "route");
  }
});

Deno.test("s2s in: a wrong authzid, bad base64, another mechanism, or EXTERNAL not offered fail", () => {
  const cases: [S2sInEvent, string, PeerCert][] = [
    [auth(btoa("c.example")), "invalid-authzid", GOOD],
    [auth("%%%"), "incorrect-encoding", GOOD],
    [
      {
        kind: "stanza",
        stanza: elem("auth", { xmlns: NS_SASL, mechanism: "PLAIN" }),
      } as S2sInEvent,
      "invalid-mechanism",
      GOOD,
    ],
    [auth("="), "not-authorized", { ...GOOD, trusted: false }],
  ];
  for (const [ev, condition, peer] of cases) {
    const { s, out } = runIn([{ kind: "tls-done", peer }, OPEN, ev]);
    assert.deepEqual(wire(out).slice(2), [
      `<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><${condition}/></failure>`,
    ]);
    assert.equal(s.state, "open");
    assert.deepEqual(s.authed, []);
  }
});

const OUT_CTX: S2sOutCtx = {
  secret: "s3cret",
  requireEncryption: true,
  maxVerifies: 4,
  external: true,
};

const REMOTE_GOOD: PeerCert = {
  trusted: true,
  names: { dns: ["b.example"], srv: [], xmpp: [], uri: [], cn: [] },
};

function openOut(id = "x1"): S2sOutEvent {
  return {
    kind: "stream-open",
    name: "stream",
    prefix: "stream",
    xmlns: NS_STREAMS,
    contentXmlns: NS_SERVER,
    attrs: { from: "b.example", to: "a.example", version: "1.0", id },
  };
}

function featuresOut(external: boolean): S2sOutEvent {
  const children: Element[] = [];
  if (external) {
    children.push(elem("mechanisms", { xmlns: NS_SASL }, [elem("mechanism", {}, ["EXTERNAL"])]));
  }
  children.push(elem("dialback", { xmlns: NS_DIALBACK_FEATURE }));
  return { kind: "stanza", stanza: elem("features", { xmlns: NS_STREAMS }, children) };
}

function runOut(
  events: readonly S2sOutEvent[],
  ctx = OUT_CTX,
  start: S2sOutSession = newS2sOut("a.example", "b.example"),
): { s: S2sOutSession; out: S2sOutOutput[] } {
  let s = start;
  const out: S2sOutOutput[] = [];
  for (const ev of events) {
    const [next, o] = reduceS2sOut(s, ev, ctx);
    s = next;
    out.push(...o);
  }
  return { s, out };
}

const TLS_FEATURES: S2sOutEvent = {
  kind: "stanza",
  stanza: elem("features", { xmlns: NS_STREAMS }, [elem("starttls", { xmlns: NS_TLS })]),
};

Deno.test("s2s out: EXTERNAL when offered and the remote's certificate is valid, then ready", () => {
  const before = [
    { kind: "connected" },
    openOut(),
    TLS_FEATURES,
    { kind: "stanza", stanza: elem("proceed", { xmlns: NS_TLS }) },
    { kind: "tls-done", peer: REMOTE_GOOD },
    openOut("x2"),
    featuresOut(true),
  ] as S2sOutEvent[];
  const a = runOut(before);
  assert.equal(a.s.state, "sasl");
  assert.deepEqual(
    wire(a.out).at(-1),
    [
      `<auth xmlns="urn:ietf:params:xml:ns:xmpp-sasl" mechanism="EXTERNAL">${
        btoa("a.example")
      }</auth>`,
    ][0],
  );
  const b = runOut(
    [
      { kind: "stanza", stanza: elem("success", { xmlns: NS_SASL }) },
    ],
    OUT_CTX,
    a.s,
  );
  assert.deepEqual(b.out.map((o) => o.kind), ["reset-stream", "open-stream"]);
  const c = runOut([openOut("x3"), featuresOut(false)], OUT_CTX, b.s);
  assert.deepEqual(c.out, [{ kind: "ready", via: "sasl-external" }]);
  assert.equal(c.s.state, "ready");

  // A failure falls back to dialback on the same stream.
  const f = runOut([{ kind: "stanza", stanza: elem("failure", { xmlns: NS_SASL }) }], OUT_CTX, a.s);
  assert.equal(f.s.state, "dialback");
  assert.match(wire(f.out)[0], /^<db:result /);
});

Deno.test("s2s out: dialback when the remote's certificate is not valid; none with secure_auth", () => {
  const events = (peer?: PeerCert, offer = true) =>
    [
      { kind: "connected", directTls: true, ...(peer === undefined ? {} : { peer }) },
      openOut(),
      featuresOut(offer),
    ] as S2sOutEvent[];
  const bad = { ...REMOTE_GOOD, trusted: false };
  assert.equal(runOut(events(bad)).s.state, "dialback");
  assert.equal(runOut(events(REMOTE_GOOD), { ...OUT_CTX, external: false }).s.state, "dialback");
  for (const peer of [bad, undefined]) {
    const r = runOut(events(peer), { ...OUT_CTX, secureAuth: true });
    assert.equal(r.s.state, "closed");
    const failed = r.out.find((o) => o.kind === "failed");
    assert.equal(failed?.kind === "failed" && failed.condition, "remote-server-not-found");
  }
  // Valid, but the remote does not offer EXTERNAL: dialback is still how we prove ourselves.
  assert.equal(
    runOut(events(REMOTE_GOOD, false), { ...OUT_CTX, secureAuth: true }).s.state,
    "dialback",
  );
});
