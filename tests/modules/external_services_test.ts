import assert from "node:assert/strict";
import { createHmac } from "node:crypto";
import { reduce } from "../../lib/c2s/mod.ts";
import { turnRestCredentials } from "../../lib/modules/external_services.ts";
import type { Ctx, ExternalService } from "../../lib/core/types.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { bound, HOST, NOW, show, stanzaEvent, testCtx } from "../_ctx.ts";

const NS = "urn:xmpp:extdisco:2";
const ME = `user@${HOST}/res`;
/** NOW in Unix seconds plus the default one-day lifetime. */
const EXPIRES = NOW / 1000 + 86400;

const SERVICES: readonly ExternalService[] = [
  { type: "stun", host: "stun.example", port: 3478, transport: "udp" },
  { type: "turn", host: "turn.example", port: 3478, transport: "udp", secret: "foo" },
  {
    type: "turn",
    host: "turn.example",
    port: 5349,
    transport: "tcp",
    secret: "foo",
    ttl: 60,
    username: "alice",
  },
  {
    type: "ftp",
    host: "ftp.example",
    port: 21,
    transport: "tcp",
    username: "john",
    password: "pw",
  },
];

function ctx(services: readonly ExternalService[] = SERVICES): Ctx {
  const base = testCtx();
  return { ...base, settings: { ...base.settings, externalServices: services } };
}

function ask(payload: Element, type = "get"): string[] {
  const iq = stanza("iq", { type, id: "x1", to: HOST }, [payload]);
  return show(reduce(bound(), stanzaEvent(iq), ctx())[1]).map((o) =>
    o.kind === "send" ? o.xml : o.kind
  );
}

function hmac(secret: string, username: string): string {
  return createHmac("sha1", secret).update(username).digest("base64");
}

const STUN = `<service type="stun" transport="udp" host="stun.example" port="3478"/>`;
const TURN_UDP = `<service type="turn" transport="udp" host="turn.example" port="3478" ` +
  `username="${EXPIRES}" password="${hmac("foo", String(EXPIRES))}" restricted="1"/>`;
const TURN_TCP = `<service type="turn" transport="tcp" host="turn.example" port="5349" ` +
  `username="${NOW / 1000 + 60}:alice" password="${hmac("foo", `${NOW / 1000 + 60}:alice`)}" ` +
  `restricted="1"/>`;
const FTP = `<service type="ftp" transport="tcp" host="ftp.example" port="21" username="john" ` +
  `password="pw" restricted="1"/>`;

Deno.test("extdisco: TURN REST credentials follow draft-uberti-behave-turn-rest", () => {
  // The draft's construction: username = expiry timestamp, password = base64(HMAC-SHA1).
  const c = turnRestCredentials("secret", 1_000_000_000_000, 3600);
  assert.deepEqual(c, { username: "1000003600", password: hmac("secret", "1000003600") });
  assert.equal(turnRestCredentials("secret", 0, 10, "bob").username, "10:bob");
});

Deno.test("extdisco: services lists every service, with credentials, never the secret", () => {
  const [xml] = ask(elem("services", { xmlns: NS }));
  assert.equal(
    xml,
    `<iq type="result" id="x1" from="${HOST}" to="${ME}"><services xmlns="${NS}">` +
      `${STUN}${TURN_UDP}${TURN_TCP}${FTP}</services></iq>`,
  );
  assert.ok(!xml.includes('"foo"'));
});

Deno.test("extdisco: services of one type", () => {
  assert.deepEqual(ask(elem("services", { xmlns: NS, type: "ftp" })), [
    `<iq type="result" id="x1" from="${HOST}" to="${ME}"><services xmlns="${NS}">${FTP}</services></iq>`,
  ]);
});

Deno.test("extdisco: credentials for the restricted services matching type, host and port", () => {
  const creds = (attrs: Record<string, string>) =>
    ask(elem("credentials", { xmlns: NS }, [elem("service", attrs)]));
  const wrap = (inner: string) =>
    `<iq type="result" id="x1" from="${HOST}" to="${ME}"><credentials xmlns="${NS}">${inner}</credentials></iq>`;
  assert.deepEqual(creds({ type: "turn", host: "turn.example" }), [wrap(TURN_UDP + TURN_TCP)]);
  assert.deepEqual(creds({ type: "turn", host: "turn.example", port: "5349" }), [wrap(TURN_TCP)]);
  // The stun service needs no credentials: nothing to give.
  assert.deepEqual(creds({ type: "stun", host: "stun.example" }), [
    `<iq type="result" id="x1" from="${HOST}" to="${ME}"><credentials xmlns="${NS}"/></iq>`,
  ]);
});

Deno.test("extdisco: a credentials request without a type, or a set, is a bad request", () => {
  const bad = `<iq type="error" id="x1" from="${HOST}" to="${ME}"><error type="modify">` +
    `<bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`;
  assert.deepEqual(
    ask(elem("credentials", { xmlns: NS }, [elem("service", { host: "turn.example" })])),
    [bad],
  );
  assert.deepEqual(ask(elem("services", { xmlns: NS }), "set"), [bad]);
});

Deno.test("extdisco: with nothing configured the list is empty", () => {
  const iq = stanza("iq", { type: "get", id: "x1", to: HOST }, [elem("services", { xmlns: NS })]);
  const out = show(reduce(bound(), stanzaEvent(iq), ctx([]))[1]);
  assert.deepEqual(out, [{
    kind: "send",
    xml: `<iq type="result" id="x1" from="${HOST}" to="${ME}"><services xmlns="${NS}"/></iq>`,
  }]);
});
