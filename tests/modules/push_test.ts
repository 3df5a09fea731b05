/** XEP-0357 push notifications: registrations, which messages notify, the summary, backoff. */
import assert from "node:assert/strict";
import { DEFAULT_LIMITS, type Limits } from "../../lib/limits.ts";
import { reduceAccount } from "../../lib/account/account.ts";
import {
  type AccountCtx,
  type AccountIqCtx,
  type AccountOutput,
  type AccountState,
  NO_OFFLINE,
  type WaitingCtx,
} from "../../lib/core/types.ts";
import {
  isImportant,
  NS_PUSH,
  onDisable,
  onEnable,
  onWaiting,
  PUSH_STORE,
  type PushData,
  registrationsOf,
} from "../../lib/modules/push.ts";
import { MODULES } from "../../lib/modules/registry.ts";
import { EMPTY_ROSTER } from "../../lib/core/session.ts";
import { elem, type Element, stanza } from "../../lib/xml/element.ts";
import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import { HOST, NOW } from "../_ctx.ts";

const JULIET = `juliet@${HOST}`;
const BALCONY = `${JULIET}/balcony`;
const ROMEO = `romeo@${HOST}/orchard`;
const APP = "push.example.org";
const STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";

function ictx(limits: Partial<Limits> = {}): AccountIqCtx {
  return {
    bare: JULIET,
    self: true,
    now: NOW,
    limits: { ...DEFAULT_LIMITS, ...limits },
    newId: () => "id",
  };
}

function field(v: string, value: string, type?: string): Element {
  return elem("field", { var: v, type }, [elem("value", {}, [value])]);
}

function form(fields: readonly Element[], type = OPTIONS): Element {
  return elem("x", { xmlns: "jabber:x:data", type: "submit" }, [
    field("FORM_TYPE", type, "hidden"),
    ...fields,
  ]);
}

function enable(node = "n1", x?: Element, jid = APP): Element {
  return elem("enable", { xmlns: NS_PUSH, jid, node }, x === undefined ? [] : [x]);
}

function iq(payload: Element, type = "set"): Element {
  return stanza("iq", { type, id: "p1", from: BALCONY }, [payload]);
}

function enabled(data: unknown, payload: Element, limits: Partial<Limits> = {}) {
  return onEnable(data, iq(payload), payload, ictx(limits));
}

const RESULT = `<iq type="result" id="p1" to="${BALCONY}"/>`;

function error(condition: string, type: string, text: string): string {
  return `<iq type="error" id="p1" to="${BALCONY}"><error type="${type}">` +
    `<${condition} xmlns="${STANZAS}"/><text xmlns="${STANZAS}" xml:lang="en">${text}</text>` +
    `</error></iq>`;
}

function replies(r: { readonly replies: readonly Element[] }): string[] {
  return r.replies.map(serializeTop);
}

Deno.test("push: enable stores the service, its node and its publish-options", () => {
  const secret = form([field("secret", "s3")]);
  const r = enabled(undefined, enable("n1", secret));
  assert.deepEqual(replies(r), [RESULT]);
  assert.deepEqual(r.data, { registrations: [{ jid: APP, node: "n1", options: secret }] });
  // Enabling the same service and node again replaces it (here: without options now).
  const again = enabled(r.data, enable("n1"));
  assert.deepEqual(again.data, { registrations: [{ jid: APP, node: "n1" }] });
  // Another node of the same service is another registration, kept after the first.
  const two = enabled(r.data, enable("n2"));
  assert.deepEqual(registrationsOf(two.data).map((g) => g.node), ["n1", "n2"]);
});

Deno.test("push: include-sender and include-body are ours: kept as flags, not sent back", () => {
  const x = form([
    field("secret", "s3"),
    field("include-body", "1"),
    field("include-sender", "true"),
  ]);
  const r = enabled(undefined, enable("n1", x));
  assert.deepEqual(r.data, {
    registrations: [{
      jid: APP,
      node: "n1",
      options: form([field("secret", "s3")]),
      sender: true,
      body: true,
    }],
  });
  // A false value asks for nothing.
  const off = enabled(undefined, enable("n1", form([field("include-body", "0")])));
  assert.deepEqual(off.data, { registrations: [{ jid: APP, node: "n1", options: form([]) }] });
});

Deno.test("push: malformed enables are bad requests and store nothing", () => {
  const cases: [Element, string][] = [
    [elem("enable", { xmlns: NS_PUSH, node: "n1" }), "The push service needs a valid jid"],
    [
      elem("enable", { xmlns: NS_PUSH, jid: "a@@b", node: "n1" }),
      "The push service needs a valid jid",
    ],
    [elem("enable", { xmlns: NS_PUSH, jid: APP }), "The push service needs a node"],
    [enable("n1", undefined, `${JULIET}/other`), "The account cannot be its own push service"],
    [
      enable("n1", form([], "urn:example:other")),
      `The form must be of type ${OPTIONS}`,
    ],
  ];
  for (const [payload, why] of cases) {
    const r = enabled(undefined, payload);
    assert.deepEqual(replies(r), [error("bad-request", "modify", why)]);
    assert.ok(!("data" in r));
  }
  const get = onEnable(undefined, iq(enable(), "get"), enable(), ictx());
  assert.deepEqual(replies(get), [error("bad-request", "modify", "Enable is an iq set")]);
});

Deno.test("push: past push_registrations or push_bytes an enable is a resource-constraint", () => {
  let data: unknown;
  for (const node of ["a", "b"]) data = enabled(data, enable(node), { pushRegistrations: 2 }).data;
  const over = enabled(data, enable("c"), { pushRegistrations: 2 });
  assert.deepEqual(replies(over), [
    error("resource-constraint", "wait", "At most 2 push services per account"),
  ]);
  assert.ok(!("data" in over));
  // Replacing one at the cap is no more.
  assert.deepEqual(replies(enabled(data, enable("b"), { pushRegistrations: 2 })), [RESULT]);
  const big = form([field("secret", "x".repeat(2000))]);
  assert.deepEqual(replies(enabled(undefined, enable("a", big), { pushBytes: 1024 })), [
    error("resource-constraint", "wait", "Push registrations are limited to 1024 bytes"),
  ]);
  // No registrations at all: every enable is over.
  assert.deepEqual(replies(enabled(undefined, enable("a"), { pushRegistrations: 0 })), [
    error("resource-constraint", "wait", "At most 0 push services per account"),
  ]);
});

Deno.test("push: disable removes one node, or every node of the service", () => {
  let data: unknown;
  for (const [jid, node] of [[APP, "a"], [APP, "b"], ["other.example", "a"]]) {
    data = enabled(data, enable(node, undefined, jid)).data;
  }
  const one = elem("disable", { xmlns: NS_PUSH, jid: APP, node: "a" });
  const r1 = onDisable(data, iq(one), one, ictx());
  assert.deepEqual(replies(r1), [RESULT]);
  assert.deepEqual(registrationsOf(r1.data).map((g) => `${g.jid} ${g.node}`), [
    `${APP} b`,
    "other.example a",
  ]);
  const all = elem("disable", { xmlns: NS_PUSH, jid: APP });
  const r2 = onDisable(data, iq(all), all, ictx());
  assert.deepEqual(r2.data, { registrations: [{ jid: "other.example", node: "a" }] });
  // The last one gone: the store's entry goes.
  const last = elem("disable", { xmlns: NS_PUSH, jid: "other.example" });
  const r3 = onDisable(r2.data, iq(last), last, ictx());
  assert.ok("data" in r3 && r3.data === undefined);
  // Nothing to disable: a success that writes nothing.
  const none = onDisable(undefined, iq(last), last, ictx());
  assert.deepEqual(replies(none), [RESULT]);
  assert.ok(!("data" in none));
  const noJid = elem("disable", { xmlns: NS_PUSH });
  assert.deepEqual(replies(onDisable(data, iq(noJid), noJid, ictx())), [
    error("bad-request", "modify", "The push service needs a valid jid"),
  ]);
});

function message(children: readonly Element[], type = "chat", from = ROMEO): Element {
  return stanza("message", { from, to: JULIET, type, id: "m1" }, children);
}

const BODY = elem("body", {}, ["Wherefore art thou?"]);

Deno.test("push: which messages are important (Prosody's rules, MUC invitations too)", () => {
  assert.equal(isImportant(message([BODY])), true);
  assert.equal(isImportant(message([BODY], "normal")), true);
  assert.equal(isImportant(message([elem("body")])), false);
  assert.equal(
    isImportant(message([elem("active", { xmlns: "http://jabber.org/protocol/chatstates" })])),
    false,
  );
  assert.equal(isImportant(message([BODY], "error")), false);
  assert.equal(isImportant(message([elem("subject", {}, ["Topic"]), BODY], "groupchat")), false);
  assert.equal(isImportant(message([BODY], "groupchat")), true);
  for (
    const payload of [
      elem("encrypted", { xmlns: "eu.siacs.conversations.axolotl" }),
      elem("encrypted", { xmlns: "urn:xmpp:omemo:2" }),
      elem("x", { xmlns: "jabber:x:encrypted" }),
      elem("openpgp", { xmlns: "urn:xmpp:openpgp:0" }),
      elem("propose", { xmlns: "urn:xmpp:jingle-message:0", id: "c1" }),
      elem("x", { xmlns: "jabber:x:conference", jid: "room@muc.example.com" }),
      elem("x", { xmlns: "http://jabber.org/protocol/muc#user" }, [
        elem("invite", { from: ROMEO }),
      ]),
    ]
  ) assert.equal(isImportant(message([payload])), true, serializeTop(payload));
  // A MUC status without an invitation is not.
  assert.equal(
    isImportant(message([elem("x", { xmlns: "http://jabber.org/protocol/muc#user" })])),
    false,
  );
  assert.equal(isImportant(stanza("presence", { from: ROMEO })), false);
});

function wctx(now = NOW, limits: Partial<Limits> = {}): WaitingCtx {
  let n = 0;
  return { bare: JULIET, now, newId: () => `n${++n}`, limits: { ...DEFAULT_LIMITS, ...limits } };
}

function routed(out: readonly AccountOutput[] | undefined): string[] {
  return (out ?? []).map((o) => o.kind === "route" ? serializeTop(o.stanza) : o.kind);
}

function summary(fields: string): string {
  return `<x xmlns="jabber:x:data" type="form">` +
    `<field type="hidden" var="FORM_TYPE"><value>urn:xmpp:push:summary</value></field>` +
    fields + `</x>`;
}

function push(node: string, id: string, fields: string, options = ""): string {
  return `<iq type="set" from="${JULIET}" to="${APP}" id="${id}">` +
    `<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="${node}"><item>` +
    `<notification xmlns="${NS_PUSH}">${summary(fields)}</notification></item></publish>` +
    options + `</pubsub></iq>`;
}

const COUNT1 = `<field var="message-count"><value>1</value></field>`;

Deno.test("push: a message stored offline notifies each service, without sender or body", () => {
  const secret = form([field("secret", "s3")]);
  let data = enabled(undefined, enable("n1", secret)).data;
  data = enabled(data, enable("n2")).data;
  const r = onWaiting(data, { kind: "offline", message: message([BODY]), stored: 1 }, wctx());
  assert.deepEqual(routed(r?.outputs), [
    push(
      "n1",
      "n1",
      COUNT1,
      `<publish-options><x xmlns="jabber:x:data" type="submit">` +
        `<field var="FORM_TYPE" type="hidden"><value>${OPTIONS}</value></field>` +
        `<field var="secret"><value>s3</value></field></x></publish-options>`,
    ),
    push("n2", "n2", COUNT1),
  ]);
  // Each registration remembers when it was told.
  assert.deepEqual(registrationsOf(r?.data).map((g) => g.sentAt), [NOW, NOW]);
  // An unimportant message tells nobody and writes nothing.
  const chatState = message([elem("active", { xmlns: "http://jabber.org/protocol/chatstates" })]);
  assert.equal(
    onWaiting(data, { kind: "offline", message: chatState, stored: 2 }, wctx()),
    undefined,
  );
  // No registrations: nothing.
  assert.equal(
    onWaiting(undefined, { kind: "offline", message: message([BODY]), stored: 1 }, wctx()),
    undefined,
  );
});

Deno.test("push: the sender and body are in the summary only when asked for", () => {
  const x = form([field("include-sender", "1"), field("include-body", "1")]);
  const data = enabled(undefined, enable("n1", x)).data;
  const r = onWaiting(data, { kind: "offline", message: message([BODY]), stored: 3 }, wctx());
  assert.deepEqual(routed(r?.outputs), [
    push(
      "n1",
      "n1",
      `<field var="message-count"><value>3</value></field>` +
        `<field var="last-message-sender"><value>${ROMEO}</value></field>` +
        `<field var="last-message-body"><value>Wherefore art thou?</value></field>`,
      `<publish-options><x xmlns="jabber:x:data" type="submit">` +
        `<field var="FORM_TYPE" type="hidden"><value>${OPTIONS}</value></field>` +
        `</x></publish-options>`,
    ),
  ]);
  // An encrypted message has no body to give.
  const omemo = message([elem("encrypted", { xmlns: "urn:xmpp:omemo:0" })]);
  const e = onWaiting(data, { kind: "offline", message: omemo, stored: 1 }, wctx());
  assert.match(routed(e?.outputs)[0], /last-message-sender/);
  assert.doesNotMatch(routed(e?.outputs)[0], /last-message-body/);
});

Deno.test("push: messages queued for a hibernating session notify, counted, the last one named", () => {
  const data = enabled(undefined, enable("n1", form([field("include-body", "1")]))).data;
  const m2 = stanza("message", { from: ROMEO, to: BALCONY, type: "chat" }, [
    elem("body", {}, ["second"]),
  ]);
  const state = message([elem("gone", { xmlns: "http://jabber.org/protocol/chatstates" })]);
  const r = onWaiting(data, { kind: "hibernated", messages: [message([BODY]), m2, state] }, wctx());
  assert.equal(routed(r?.outputs).length, 1);
  assert.match(routed(r?.outputs)[0], /<field var="message-count"><value>2<\/value><\/field>/);
  assert.match(
    routed(r?.outputs)[0],
    /<field var="last-message-body"><value>second<\/value><\/field>/,
  );
  assert.equal(onWaiting(data, { kind: "hibernated", messages: [state] }, wctx()), undefined);
});

Deno.test("push: the app server's errors back off and drop the registration; a result clears them", () => {
  const data = enabled(undefined, enable("n1")).data;
  const wait = { kind: "offline" as const, message: message([BODY]), stored: 1 };
  const answer = (type: string, id: string, from = APP) =>
    stanza("iq", { type, id, from, to: JULIET }, []);
  let current: unknown = data;
  let now = NOW;
  const send = () => {
    const r = onWaiting(current, wait, wctx(now));
    const out = r?.outputs[0];
    current = r?.data ?? current;
    return out?.kind === "route" ? out.stanza.attrs.id : undefined;
  };
  const id1 = send()!;
  // An answer from someone else, or to another id, changes nothing.
  assert.equal(
    onWaiting(current, { kind: "reply", iq: answer("error", id1, ROMEO) }, wctx()),
    undefined,
  );
  assert.equal(
    onWaiting(current, { kind: "reply", iq: answer("error", "other") }, wctx()),
    undefined,
  );
  current = onWaiting(current, { kind: "reply", iq: answer("error", id1) }, wctx())!.data;
  assert.equal(registrationsOf(current)[0].failures, 1);
  // One failure: the wait doubles (120 s).
  now += 60_000;
  assert.equal(send(), undefined);
  now += 60_000;
  const id2 = send()!;
  current = onWaiting(current, { kind: "reply", iq: answer("error", id2) }, wctx())!.data;
  now += 240_000;
  const id3 = send()!;
  // The third error in a row drops the registration.
  const dropped = onWaiting(current, { kind: "reply", iq: answer("error", id3) }, wctx());
  assert.deepEqual(dropped, { data: undefined, outputs: [] });
  // A result clears the count.
  let again: unknown = data;
  const r1 = onWaiting(again, wait, wctx(NOW));
  again = r1!.data;
  const rid = r1!.outputs[0].kind === "route" ? r1!.outputs[0].stanza.attrs.id : "";
  again = onWaiting(again, { kind: "reply", iq: answer("error", rid) }, wctx())!.data;
  const r2 = onWaiting(again, wait, wctx(NOW + 120_000));
  const rid2 = r2!.outputs[0].kind === "route" ? r2!.outputs[0].stanza.attrs.id : "";
  again = onWaiting(r2!.data, { kind: "reply", iq: answer("result", rid2) }, wctx())!.data;
  assert.equal(registrationsOf(again)[0].failures, undefined);
  assert.equal(registrationsOf(again)[0].pending, undefined);
});

Deno.test("push: backoff: one notification per interval until the user is back", () => {
  const data = enabled(undefined, enable("n1")).data;
  const waiting = { kind: "offline" as const, message: message([BODY]), stored: 1 };
  const first = onWaiting(data, waiting, wctx(NOW));
  assert.equal(routed(first?.outputs).length, 1);
  // Within push_interval (60 s by default): nothing more, nothing written.
  assert.equal(onWaiting(first?.data, waiting, wctx(NOW + 59_999)), undefined);
  // Past it: one more.
  const later = onWaiting(first?.data, waiting, wctx(NOW + 60_000));
  assert.deepEqual(registrationsOf(later?.data).map((g) => g.sentAt), [NOW + 60_000]);
  // The user came back: the next message notifies at once (the answer is still awaited).
  const back = onWaiting(first?.data, { kind: "back" }, wctx(NOW + 1000));
  const sent = first?.outputs[0];
  const sentId = sent?.kind === "route" ? sent.stanza.attrs.id : undefined;
  assert.deepEqual(back, {
    data: { registrations: [{ jid: APP, node: "n1", pending: sentId }] },
    outputs: [],
  });
  assert.equal(routed(onWaiting(back?.data, waiting, wctx(NOW + 2000))?.outputs).length, 1);
  // Back with nothing sent: nothing to write.
  assert.equal(onWaiting(data, { kind: "back" }, wctx()), undefined);
  // push_interval = 0: every message.
  assert.equal(
    routed(onWaiting(first?.data, waiting, wctx(NOW + 1, { pushInterval: 0 }))?.outputs).length,
    1,
  );
});

function accountCtx(limits: Partial<Limits> = {}): AccountCtx {
  return {
    now: () => NOW,
    newId: () => "id",
    resourcesOf: () => [],
    limits: { ...DEFAULT_LIMITS, ...limits },
    archive: { enabled: false, policy: "roster" },
    random: () => "rnd",
  };
}

function account(push?: PushData): AccountState {
  return {
    bare: JULIET,
    exists: true,
    roster: EMPTY_ROSTER,
    offline: NO_OFFLINE,
    lastArchived: 0,
    modules: { [PUSH_STORE]: push },
  };
}

function kinds(out: readonly AccountOutput[]): string[] {
  return out.map((o) => o.kind === "route" ? serializeTop(o.stanza) : o.kind);
}

Deno.test("push: the account enables from the user's own resource only", () => {
  const [s, out] = reduceAccount(account(), { kind: "module-iq", iq: iq(enable()) }, accountCtx());
  assert.deepEqual(kinds(out), ["store-module", RESULT]);
  assert.deepEqual(s.modules[PUSH_STORE], { registrations: [{ jid: APP, node: "n1" }] });
  const other = stanza("iq", { type: "set", id: "p1", from: ROMEO, to: JULIET }, [enable()]);
  const [, refused] = reduceAccount(account(), { kind: "module-iq", iq: other }, accountCtx());
  assert.deepEqual(kinds(refused), [
    `<iq type="error" id="p1" from="${JULIET}" to="${ROMEO}"><error type="auth">` +
    `<forbidden xmlns="${STANZAS}"/></error></iq>`,
  ]);
});

Deno.test("push: the account notifies after storing offline, after stashing, and resets at bind", () => {
  const reg = { registrations: [{ jid: APP, node: "n1" }] };
  const m = message([BODY]);
  const [s1, out1] = reduceAccount(
    account(reg),
    { kind: "offline-message", stanza: m },
    accountCtx(),
  );
  // Stored durably first, then the registration's timestamp, then the notification.
  assert.deepEqual(kinds(out1), ["store-offline", "store-module", push("n1", "id", COUNT1)]);
  assert.deepEqual(out1[1], {
    kind: "store-module",
    store: PUSH_STORE,
    data: { registrations: [{ jid: APP, node: "n1", sentAt: NOW, pending: "id" }] },
  });
  // Within the interval another offline message is stored without a notification.
  const [s2, out2] = reduceAccount(s1, { kind: "offline-message", stanza: m }, accountCtx());
  assert.deepEqual(kinds(out2), ["store-offline"]);
  // A bind is the user coming back: the timestamp goes, after the roster is sent.
  const [s3, out3] = reduceAccount(s2, { kind: "session-bound", fullJid: BALCONY }, accountCtx());
  assert.deepEqual(kinds(out3), ["blocklist", "send-roster", "store-module"]);
  assert.deepEqual(s3.modules[PUSH_STORE], {
    registrations: [{ jid: APP, node: "n1", pending: "id" }],
  });
  // Messages queued for a hibernating session notify after they are stashed.
  const [s4, out4] = reduceAccount(
    s3,
    { kind: "sm-stash", sid: "sm1", messages: [m] },
    accountCtx(),
  );
  assert.deepEqual(kinds(out4), ["sm-stash", "store-module", push("n1", "id", COUNT1)]);
  // Resumed (or ended): back again.
  const [, out5] = reduceAccount(s4, { kind: "sm-unstash", sid: "sm1" }, accountCtx());
  assert.deepEqual(kinds(out5), ["sm-unstash", "store-module"]);
  // A message that bounces for a full store notifies nobody.
  const full = { ...account(reg), offline: { count: 100, bytes: 0 } };
  const [, bounced] = reduceAccount(full, { kind: "offline-message", stanza: m }, accountCtx());
  assert.equal(bounced.length, 1);
  assert.match(kinds(bounced)[0], /service-unavailable/);
  // Without registrations, the ops are as before.
  const [, plain] = reduceAccount(account(), { kind: "offline-message", stanza: m }, accountCtx());
  assert.deepEqual(kinds(plain), ["store-offline"]);
});

Deno.test("push: the account's disco features announce urn:xmpp:push:0", () => {
  assert.ok(MODULES.some((m) => m.accountFeatures?.includes(NS_PUSH)));
});
