import assert from "node:assert/strict";
import { reduce } from "../../lib/c2s/mod.ts";
import { streamFeatures } from "../../lib/c2s/features.ts";
import type { Ctx, ModuleSettings, Output } from "../../lib/core/types.ts";
import type { Session } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { serialize } from "../../lib/xml/element.ts";
import { bound, fresh, HOST, show, stanzaEvent, testCtx, type TestCtxOptions } from "../_ctx.ts";

const NS = "jabber:iq:register";
const ME = `user@${HOST}/res`;

function ctx(settings: Partial<ModuleSettings> = {}, opts: TestCtxOptions = {}): Ctx {
  const base = testCtx(opts);
  return { ...base, settings: { ...base.settings, ...settings } };
}

/** An unauthenticated session whose stream is open. */
function unauthed(secure = false): Session {
  return { ...fresh(secure), notopen: false, streamId: "sid", host: HOST };
}

function registerIq(type: string, children: readonly Element[] = [], id = "r1"): Element {
  return stanza("iq", { type, id }, [elem("query", { xmlns: NS }, children)]);
}

function fields(username: string, password: string): Element[] {
  return [elem("username", {}, [username]), elem("password", {}, [password])];
}

const OPEN = { allowRegistration: true };

/** The serialized stanza of the output at `i`, which must be a send. */
function sent(out: readonly Output[], i = 0): string {
  const o = show(out)[i];
  assert.ok(o.kind === "send", `output ${i} is ${o.kind}, not send`);
  return o.xml;
}

Deno.test("register: the stream feature is offered only when registration is open", () => {
  const has = (s: Session, c: Ctx) =>
    serialize(streamFeatures(s, c)).includes(
      '<register xmlns="http://jabber.org/features/iq-register"/>',
    );
  assert.equal(has(unauthed(), ctx()), false);
  assert.equal(has(unauthed(), ctx(OPEN)), true);
  // Under TLS only when encryption is required.
  assert.equal(has(unauthed(false), ctx(OPEN, { requireEncryption: true })), false);
  assert.equal(has(unauthed(true), ctx(OPEN, { requireEncryption: true })), true);
  // Never once authenticated.
  assert.equal(has(bound(), ctx(OPEN)), false);
});

Deno.test("register: off by default, a request gets service-unavailable and the stream stays", () => {
  const s = unauthed();
  const [next, out] = reduce(s, stanzaEvent(registerIq("get")), ctx());
  assert.deepEqual(show(out), [{
    kind: "send",
    xml: `<iq type="error" id="r1"><error type="cancel">` +
      `<service-unavailable xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`,
  }]);
  assert.equal(next, s);
});

Deno.test("register: the form lists username and password", () => {
  const [, out] = reduce(unauthed(), stanzaEvent(registerIq("get")), ctx(OPEN));
  assert.deepEqual(show(out), [{
    kind: "send",
    xml: `<iq type="result" id="r1"><query xmlns="${NS}"><instructions>` +
      `Choose a username and password for use with this service.</instructions>` +
      `<username/><password/></query></iq>`,
  }]);
});

Deno.test("register: a set asks the shell to create the account, without the payload", () => {
  const s = unauthed();
  const [next, out] = reduce(s, stanzaEvent(registerIq("set", fields("NewUser", "pw"))), ctx(OPEN));
  assert.deepEqual(out, [{
    kind: "register-account",
    iq: stanza("iq", { type: "set", id: "r1" }),
    host: HOST,
    username: "newuser",
    password: "pw",
  }]);
  assert.equal(next, s);
});

Deno.test("register: missing fields, empty password and bad names are not acceptable", () => {
  for (
    const children of [
      [elem("username", {}, ["a"])],
      fields("a", ""),
      fields("a b@c", "pw"),
    ]
  ) {
    const [, out] = reduce(unauthed(), stanzaEvent(registerIq("set", children)), ctx(OPEN));
    assert.equal(out.length, 1);
    assert.match(sent(out), /<not-acceptable /);
  }
});

Deno.test("register: before TLS when it is required, the stream ends as for any stanza", () => {
  const [next, out] = reduce(
    unauthed(false),
    stanzaEvent(registerIq("get")),
    ctx(OPEN, { requireEncryption: true }),
  );
  assert.equal(next.destroyed, true);
  assert.ok(out.some((o) => o.kind === "disconnect" && o.error?.condition === "policy-violation"));
});

Deno.test("register: an iq without an id gets bad-request, not a registration", () => {
  const iq = stanza("iq", { type: "get" }, [elem("query", { xmlns: NS })]);
  const [, out] = reduce(unauthed(), stanzaEvent(iq), ctx(OPEN));
  assert.equal(out.length, 1);
  assert.match(sent(out), /<bad-request /);
});

Deno.test("register: the shell's outcomes become the answers", () => {
  const iq = stanza("iq", { type: "set", id: "r1" });
  const cases = [
    ["ok", `<iq type="result" id="r1"/>`],
    [
      "conflict",
      `<iq type="error" id="r1"><error type="cancel"><conflict xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
      `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">The username is not available</text></error></iq>`,
    ],
    [
      "throttled",
      `<iq type="error" id="r1"><error type="wait"><resource-constraint xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/>` +
      `<text xmlns="urn:ietf:params:xml:ns:xmpp-stanzas" xml:lang="en">Too many registrations; try later</text></error></iq>`,
    ],
    [
      "failed",
      `<iq type="error" id="r1"><error type="cancel"><internal-server-error xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></error></iq>`,
    ],
  ] as const;
  for (const [outcome, xml] of cases) {
    const s = unauthed();
    const [next, out] = reduce(s, { kind: "registration-result", iq, outcome }, ctx(OPEN));
    assert.deepEqual(show(out), [{ kind: "send", xml }], outcome);
    assert.equal(next, s);
  }
});

Deno.test("register: an authenticated user is told they are registered", () => {
  const [, out] = reduce(bound(), stanzaEvent(registerIq("get")), ctx());
  assert.deepEqual(show(out), [{
    kind: "send",
    xml: `<iq type="result" id="r1" to="${ME}"><query xmlns="${NS}"><registered/>` +
      `<username>user</username></query></iq>`,
  }]);
});

Deno.test("register: a password change goes to the shell, whatever the registration setting", () => {
  const [, out] = reduce(bound(), stanzaEvent(registerIq("set", fields("user", "new"))), ctx());
  assert.deepEqual(out, [{
    kind: "change-password",
    iq: stanza("iq", { type: "set", id: "r1", from: ME, "xml:lang": undefined }),
    host: HOST,
    username: "user",
    password: "new",
  }]);
});

Deno.test("register: another user's name or an empty password is refused", () => {
  const other = reduce(bound(), stanzaEvent(registerIq("set", fields("bob", "x"))), ctx())[1];
  assert.match(sent(other), /<bad-request /);
  const empty = reduce(bound(), stanzaEvent(registerIq("set", fields("user", ""))), ctx())[1];
  assert.match(sent(empty), /<not-acceptable /);
});

Deno.test("register: <remove/> goes to the account's queue; with other children, bad-request", () => {
  const remove = registerIq("set", [elem("remove")]);
  const [, out] = reduce(bound(), stanzaEvent(remove), ctx());
  assert.equal(out.length, 1);
  const o = out[0];
  assert.ok(o.kind === "account" && o.op.kind === "remove-account");
  assert.equal(o.bare, `user@${HOST}`);
  assert.equal(o.op.iq.attrs.from, ME);
  const mixed = registerIq("set", [elem("remove"), elem("username", {}, ["user"])]);
  const bad = reduce(bound(), stanzaEvent(mixed), ctx())[1];
  assert.match(sent(bad), /<bad-request /);
});

Deno.test("register: account-removed sends the result, then ends with not-authorized", () => {
  const reply = stanza("iq", { type: "result", id: "r1", to: ME });
  const [next, out] = reduce(bound(), { kind: "account-removed", reply }, ctx());
  assert.equal(next.destroyed, true);
  assert.equal(sent(out, 0), `<iq type="result" id="r1" to="${ME}"/>`);
  assert.deepEqual(out[1], {
    kind: "close-stream",
    error: { condition: "not-authorized", text: "Account removed" },
  });
  assert.deepEqual(out.at(-1), {
    kind: "disconnect",
    error: { condition: "not-authorized", text: "Account removed" },
  });
  // Another session of the account ends the same way, with nothing to answer.
  const [gone, other] = reduce(bound({ fullJid: `user@${HOST}/b`, resource: "b" }), {
    kind: "account-removed",
  }, ctx());
  assert.equal(gone.destroyed, true);
  assert.deepEqual(other[0], {
    kind: "close-stream",
    error: { condition: "not-authorized", text: "Account removed" },
  });
});
