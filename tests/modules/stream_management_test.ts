import { serializeTop } from "../../lib/xmpp/stream_xml.ts";
import assert from "node:assert/strict";
import { reduce } from "../../lib/c2s/mod.ts";
import { goodbyeOutputs } from "../../lib/account/presence.ts";
import { streamFeatures } from "../../lib/c2s/features.ts";
import { MAX_UNACKED } from "../../lib/modules/stream_management.ts";
import { NS_SM } from "../../lib/xmpp/namespaces.ts";
import type { Event, Output, ResourceView } from "../../lib/core/types.ts";
import type { Roster, Session, StreamManagement } from "../../lib/core/session.ts";
import { child, elem, type Element, stanza, withAttrs } from "../../lib/xml/element.ts";
import { stanzaBytes } from "../../lib/core/stanza_size.ts";
import { authed, bound, HOST, NOW, record, run, show, stanzaEvent, testCtx } from "../_ctx.ts";

const ME = `user@${HOST}/res`;
const BARE = `user@${HOST}`;
const FRIEND = "friend@example.com";
const ROSTER: Roster = {
  version: "1",
  items: { [FRIEND]: { jid: FRIEND, subscription: "both", groups: [] } },
  pendingIn: {},
};

function nonza(name: string, attrs: Readonly<Record<string, string>> = {}): Event {
  return stanzaEvent(elem(name, { xmlns: NS_SM, ...attrs }));
}

function inbound(el: Element): Event {
  return { kind: "inbound", stanza: el };
}

function chat(body: string, from = `${FRIEND}/pc`): Element {
  return stanza("message", { from, to: ME, type: "chat", id: body }, [elem("body", {}, [body])]);
}

const R = '<r xmlns="urn:xmpp:sm:3"/>';

/** A bound, available session with stream management as given. */
function managed(sm: Partial<StreamManagement> = {}, over: Partial<Session> = {}): Session {
  return bound({
    roster: ROSTER,
    presence: stanza("presence", { from: ME }),
    sm: { id: "smid", max: 300, inbound: 0, outbound: 0, unacked: [], ...sm },
    ...over,
  });
}

function offline(el: Element): Output {
  return {
    kind: "account",
    bare: BARE,
    op: { kind: "offline-message", stanza: withAttrs(el, { to: BARE }) },
  };
}

/** Issue 10: what a hibernating session holds is on disk too, dropped when it is settled. */
function stashed(...els: Element[]): Output {
  return {
    kind: "account",
    bare: BARE,
    op: { kind: "sm-stash", sid: "smid", messages: els.map((el) => withAttrs(el, { to: BARE })) },
  };
}

const UNSTASH: Output = { kind: "account", bare: BARE, op: { kind: "sm-unstash", sid: "smid" } };

function isOffline(o: Output): boolean {
  return o.kind === "account" && o.op.kind === "offline-message";
}

function unavailableRoutes(out: readonly Output[]): number {
  return out.filter((o) =>
    o.kind === "route" && o.stanza.name === "presence" && o.stanza.attrs.type === "unavailable"
  ).length;
}

// ---------------------------------------------------------------------------------------------
// Negotiation (XEP-0198 §2, §3).

Deno.test("sm: offered after authentication, not before", () => {
  const ctx = testCtx();
  const after = streamFeatures(authed(), ctx);
  assert.ok(child(after, "sm", NS_SM) !== undefined);
  const before = streamFeatures({ ...authed(), type: "c2s_unauthed" }, ctx);
  assert.equal(child(before, "sm", NS_SM), undefined);
});

Deno.test("sm: <enable resume='true'/> after bind -> enabled with id and max", () => {
  const s = bound();
  const [next, out] = reduce(s, nonza("enable", { resume: "true" }), testCtx());
  assert.deepEqual(show(out), [
    { kind: "send", xml: '<enabled xmlns="urn:xmpp:sm:3" id="id1" resume="true" max="300"/>' },
    { kind: "sm-resumable", id: "id1" },
  ]);
  assert.deepEqual(next.sm, { id: "id1", max: 300, inbound: 0, outbound: 0, unacked: [] });
});

Deno.test("sm: the client may ask for a shorter max, never a longer one", () => {
  const ctx = testCtx({ smResumeTimeout: 120 });
  const [shorter] = reduce(bound(), nonza("enable", { resume: "1", max: "60" }), ctx);
  assert.equal(shorter.sm?.max, 60);
  const [longer] = reduce(bound(), nonza("enable", { resume: "true", max: "9999" }), testCtx());
  assert.equal(longer.sm?.max, 300);
});

Deno.test("sm: <enable/> without resume counts only", () => {
  const [next, out] = reduce(bound(), nonza("enable"), testCtx());
  assert.deepEqual(show(out), [{ kind: "send", xml: '<enabled xmlns="urn:xmpp:sm:3"/>' }]);
  assert.deepEqual(next.sm, { inbound: 0, outbound: 0, unacked: [] });
});

Deno.test("sm: <enable/> before bind or twice -> failed unexpected-request, state kept", () => {
  const failed = '<failed xmlns="urn:xmpp:sm:3">' +
    '<unexpected-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></failed>';
  for (const s of [authed(), managed()]) {
    const [next, out] = reduce(s, nonza("enable", { resume: "true" }), testCtx());
    assert.deepEqual(show(out), [{ kind: "send", xml: failed }]);
    assert.deepEqual(next, s);
  }
});

// ---------------------------------------------------------------------------------------------
// Counting (XEP-0198 §4).

Deno.test("sm: stanzas from the client are counted, nonzas are not; <r/> -> durable <a h/>", () => {
  const ping = stanza("iq", { type: "get", id: "p1", to: HOST }, [
    elem("ping", { xmlns: "urn:xmpp:ping" }),
  ]);
  const { session, outputs } = run(managed({ outbound: 7, unacked: [] }), [
    stanzaEvent(stanza("presence", {})),
    stanzaEvent(elem("inactive", { xmlns: "urn:xmpp:csi:0" })),
    stanzaEvent(ping),
    nonza("r"),
  ], testCtx());
  assert.equal(session.sm?.inbound, 2);
  // Written by the shell once the effects of those stanzas are durable (issue 10).
  const last = outputs.at(-1);
  assert.ok(last?.kind === "send-durable");
  assert.equal(serializeTop(last.stanza), '<a xmlns="urn:xmpp:sm:3" h="2"/>');
});

Deno.test("sm: sent stanzas are queued; one <r/> until answered, again every 5", () => {
  const ctx = testCtx();
  const msgs = [1, 2, 3, 4, 5, 6, 7].map((i) => chat(`m${i}`));
  const first = reduce(managed(), inbound(msgs[0]), ctx);
  assert.deepEqual(show(first[1]), [
    {
      kind: "send",
      xml: `<message from="${FRIEND}/pc" to="${ME}" type="chat" id="m1">` +
        "<body>m1</body></message>",
    },
    { kind: "send", xml: R },
  ]);
  assert.equal(first[0].sm?.requestedAt, 1);
  const { session, outputs } = run(first[0], msgs.slice(1).map(inbound), ctx);
  // m2..m5 without a request, m6 is the fifth since the last one: a second <r/>.
  assert.deepEqual(outputs.filter((o) => o.kind === "send").length, 6 + 1);
  assert.deepEqual(show(outputs).at(5), { kind: "send", xml: R });
  assert.deepEqual(session.sm?.unacked, msgs);
  assert.equal(session.sm?.outbound, 7);
});

Deno.test("sm: <a h/> drops what it acknowledges; too high ends the stream", () => {
  const msgs = [chat("m1"), chat("m2"), chat("m3")];
  const s = managed({ outbound: 3, unacked: msgs, requestedAt: 3 });
  const [acked, out] = reduce(s, nonza("a", { h: "2" }), testCtx());
  assert.deepEqual(out, []);
  // The queue's bytes follow it (each stanza measured once, when it was queued).
  const size = stanzaBytes(msgs[2]);
  assert.deepEqual(acked.sm, {
    ...s.sm,
    unacked: [msgs[2]],
    unackedSizes: [size],
    unackedBytes: size,
    requestedAt: undefined,
  });
  // Repeating the same h acknowledges nothing more.
  assert.deepEqual(reduce(acked, nonza("a", { h: "2" }), testCtx())[0].sm, acked.sm);
  // Nor does an h behind it (a client that restarted its count), and the stream goes on.
  const [behind, behindOut] = reduce(acked, nonza("a", { h: "0" }), testCtx());
  assert.deepEqual(behind.sm, acked.sm);
  assert.equal(behind.destroyed, acked.destroyed);
  assert.deepEqual(behindOut, []);

  const ctx = testCtx();
  const [ended, closing] = reduce(acked, nonza("a", { h: "5" }), ctx);
  assert.equal(ended.destroyed, true);
  assert.deepEqual(show(closing).slice(0, 1), [
    {
      kind: "close-stream",
      xml: '<stream:error><undefined-condition xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>' +
        '<text xmlns="urn:ietf:params:xml:ns:xmpp-streams" xml:lang="en">' +
        "Acknowledged more stanzas than were sent</text>" +
        '<handled-count-too-high xmlns="urn:xmpp:sm:3" h="5" send-count="3"/></stream:error>',
    },
  ]);
  // The one stanza still unacknowledged is kept for later.
  assert.deepEqual(closing.filter(isOffline), [offline(msgs[2])]);
});

Deno.test("sm: counters wrap at 2^32", () => {
  const s = managed({ inbound: 0xffffffff, outbound: 0xffffffff, unacked: [] });
  const { session } = run(s, [stanzaEvent(stanza("presence", {})), inbound(chat("m"))], testCtx());
  assert.equal(session.sm?.inbound, 0);
  // Two sent: the presence echoed back, then the message.
  assert.equal(session.sm?.outbound, 1);
  const [acked] = reduce(session, nonza("a", { h: "1" }), testCtx());
  assert.deepEqual(acked.sm?.unacked, []);
});

Deno.test("sm: past MAX_UNACKED the stream ends with resource-constraint, nothing lost", () => {
  const queued = Array.from({ length: MAX_UNACKED }, (_, i) => chat(`m${i}`));
  const s = managed({ outbound: MAX_UNACKED, unacked: queued, requestedAt: MAX_UNACKED });
  const extra = chat("one too many");
  const ctx = testCtx();
  const [ended, out] = reduce(s, inbound(extra), ctx);
  assert.equal(ended.destroyed, true);
  const shown = show(out);
  assert.deepEqual(shown[0], {
    kind: "send",
    xml: `<message from="${FRIEND}/pc" to="${ME}" type="chat" id="one too many">` +
      "<body>one too many</body></message>",
  });
  assert.ok(
    shown.some((o) => o.kind === "close-stream" && o.xml?.includes("<resource-constraint")),
  );
  const stored = out.filter((o) => o.kind === "account" && o.op.kind === "offline-message");
  assert.deepEqual(stored, [...queued, extra].map(offline));
  assert.equal(unavailableRoutes(out), 1);
});

// ---------------------------------------------------------------------------------------------
// Hibernation (XEP-0198 §5): the destroy path decides.

Deno.test("sm: a dropped resumable session hibernates: not destroyed, not unbound", () => {
  const s = managed({ outbound: 1, unacked: [chat("m1")], requestedAt: 1 });
  const [next, out] = reduce(s, { kind: "disconnected", reason: "end" }, testCtx());
  assert.deepEqual(out, [
    stashed(chat("m1")),
    { kind: "hibernate", seconds: 300 },
    { kind: "log", level: "debug", message: `${ME} hibernates (XEP-0198)` },
  ]);
  assert.equal(next.destroyed, false);
  assert.deepEqual(next.sm, {
    ...s.sm,
    hibernating: true,
    hibernatedAt: NOW,
    requestedAt: undefined,
  });
  assert.equal(next.presence, s.presence);
});

Deno.test("sm: counting only, a clean close, or a replacement destroy at once", () => {
  const cases: readonly [Session, Event][] = [
    [managed({ id: undefined }), { kind: "disconnected", reason: "end" }],
    [managed(), { kind: "stream-close" }],
    [managed(), { kind: "replaced" }],
  ];
  for (const [s, ev] of cases) {
    const ctx = testCtx();
    const [next, out] = reduce(s, ev, ctx);
    assert.equal(next.destroyed, true, ev.kind);
    assert.equal(unavailableRoutes(out), 1, ev.kind);
    assert.ok(out.some((o) => o.kind === "unbind"), ev.kind);
    assert.ok(!out.some((o) => o.kind === "hibernate"), ev.kind);
  }
});

Deno.test("sm: a hibernating session queues what it receives and ignores its old connection", () => {
  const s = managed({ hibernating: true, outbound: 1, unacked: [chat("m1")] });
  const ctx = testCtx();
  const { session, outputs } = run(s, [
    inbound(chat("m2")),
    { kind: "idle-timeout" },
    { kind: "disconnected", reason: "close" },
    stanzaEvent(stanza("presence", { type: "unavailable" })),
    { kind: "stream-close" },
  ], ctx);
  // Nothing is written, nothing ends; what it was sent is stashed on disk.
  assert.deepEqual(outputs, [stashed(chat("m2"))]);
  assert.equal(session.destroyed, false);
  assert.deepEqual(session.sm?.unacked, [chat("m1"), chat("m2")]);
  assert.equal(session.sm?.outbound, 2);
});

Deno.test("sm: at the timeout: unavailable once, unacked chat/normal messages go offline", () => {
  const carbon = stanza("message", { from: BARE, to: ME, type: "chat" }, [
    elem("received", { xmlns: "urn:xmpp:carbons:2" }),
  ]);
  const headline = stanza("message", { from: HOST, to: ME, type: "headline" });
  const normal = stanza("message", { from: `${FRIEND}/pc`, to: ME }, [elem("body", {}, ["n"])]);
  const presence = stanza("presence", { from: `${FRIEND}/pc`, to: ME });
  const unacked = [chat("m1"), presence, carbon, headline, normal];
  const s = managed({ hibernating: true, outbound: 5, unacked });
  const ctx = testCtx();
  const [next, out] = reduce(s, { kind: "hibernation-timeout" }, ctx);
  assert.equal(next.destroyed, true);
  assert.equal(next.sm, undefined);
  assert.deepEqual(out, [
    ...goodbyeOutputs(s, testCtx()),
    offline(chat("m1")),
    offline(normal),
    UNSTASH,
    { kind: "unbind", fullJid: ME },
    { kind: "disconnect", error: undefined },
  ]);
  assert.equal(unavailableRoutes(out), 1);
  // Anything later is swallowed: no second goodbye.
  assert.deepEqual(reduce(next, { kind: "hibernation-timeout" }, ctx)[1], []);
  assert.deepEqual(reduce(next, { kind: "shutdown" }, ctx)[1], []);
});

Deno.test("sm: a stale timeout does not end a session that is not hibernating", () => {
  const s = managed();
  assert.deepEqual(reduce(s, { kind: "hibernation-timeout" }, testCtx()), [s, []]);
});

Deno.test("sm: shutdown of a hibernating session writes nothing but says goodbye", () => {
  const s = managed({ hibernating: true });
  const [next, out] = reduce(s, { kind: "shutdown" }, testCtx());
  assert.equal(next.destroyed, true);
  assert.ok(
    !out.some((o) => o.kind === "send" || o.kind === "open-stream" || o.kind === "close-stream"),
  );
  assert.equal(unavailableRoutes(out), 1);
});

// ---------------------------------------------------------------------------------------------
// Resumption (XEP-0198 §5).

Deno.test("sm: <resume/> on an authenticated, unbound stream asks the shell", () => {
  const s = authed();
  const [next, out] = reduce(s, nonza("resume", { previd: "smid", h: "1" }), testCtx());
  assert.deepEqual(out, [{ kind: "sm-resume", previd: "smid", h: 1 }]);
  assert.equal(next, s);
});

Deno.test("sm: <resume/> malformed or after bind fails", () => {
  const bad = reduce(authed(), nonza("resume", { previd: "smid", h: "-1" }), testCtx());
  assert.deepEqual(show(bad[1]), [{
    kind: "send",
    xml: '<failed xmlns="urn:xmpp:sm:3">' +
      '<bad-request xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></failed>',
  }]);
  const late = reduce(bound(), nonza("resume", { previd: "smid", h: "1" }), testCtx());
  assert.match(show(late[1]).map((o) => "xml" in o ? o.xml : "").join(), /unexpected-request/);
});

Deno.test("sm: <resume/> before authentication is refused like any stanza", () => {
  const s = { ...authed(), type: "c2s_unauthed" as const, username: undefined };
  const [next, out] = reduce(s, nonza("resume", { previd: "smid", h: "0" }), testCtx());
  assert.equal(next.destroyed, true);
  assert.ok(show(out).some((o) => o.kind === "close-stream" && o.xml?.includes("not-authorized")));
});

const NOT_FOUND = '<failed xmlns="urn:xmpp:sm:3">' +
  '<item-not-found xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/></failed>';

Deno.test("sm: no session, another account's or another id -> failed item-not-found", () => {
  const s = authed({ id: "c2" });
  const olds: (Session | undefined)[] = [
    undefined,
    managed({ hibernating: true }, { username: "other", fullJid: `other@${HOST}/res` }),
    managed({ hibernating: true, id: "another" }),
    { ...managed({ hibernating: true }), destroyed: true },
  ];
  for (const old of olds) {
    const ev: Event = { kind: "sm-resume-answer", previd: "smid", h: 0, old };
    const [next, out] = reduce(s, ev, testCtx());
    assert.deepEqual(show(out), [{ kind: "send", xml: NOT_FOUND }]);
    assert.equal(next, s);
  }
});

Deno.test("sm: resumed: acknowledged dropped, the rest resent in order, the session moves", () => {
  const msgs = [chat("m1"), chat("m2"), chat("m3")];
  const old = managed({ hibernating: true, inbound: 4, outbound: 3, unacked: msgs }, {
    id: "c1",
    streamId: "old-stream",
    ip: "198.51.100.7",
  });
  const s = authed({ id: "c2", streamId: "new-stream" });
  const ev: Event = { kind: "sm-resume-answer", previd: "smid", h: 1, old };
  const [next, out] = reduce(s, ev, testCtx());
  assert.deepEqual(show(out), [
    { kind: "bind", fullJid: ME },
    UNSTASH,
    { kind: "sm-resumable", id: "smid" },
    { kind: "send", xml: '<resumed xmlns="urn:xmpp:sm:3" previd="smid" h="4"/>' },
    ...show(msgs.slice(1).map((stanza) => ({ kind: "send" as const, stanza }))),
    { kind: "send", xml: R },
  ]);
  assert.deepEqual(
    record(next),
    record({
      ...old,
      id: "c2",
      streamId: "new-stream",
      ip: s.ip,
      sm: {
        id: "smid",
        max: 300,
        inbound: 4,
        outbound: 3,
        unacked: msgs.slice(1),
        unackedSizes: msgs.slice(1).map(stanzaBytes),
        unackedBytes: stanzaBytes(msgs[1]) + stanzaBytes(msgs[2]),
        requestedAt: 3,
      },
    }),
  );
});

Deno.test("sm: resumed with an h past what was sent -> the session ends, nothing lost", () => {
  const msgs = [chat("m1")];
  const old = managed({ hibernating: true, outbound: 1, unacked: msgs });
  const ev: Event = { kind: "sm-resume-answer", previd: "smid", h: 3, old };
  const [next, out] = reduce(authed({ id: "c2" }), ev, testCtx());
  assert.equal(next.destroyed, true);
  // The registry points at this connection before the session leaves it.
  assert.deepEqual(out[0], { kind: "bind", fullJid: ME });
  assert.ok(
    show(out).some((o) => o.kind === "close-stream" && o.xml?.includes("handled-count-too-high")),
  );
  assert.equal(unavailableRoutes(out), 1);
  assert.deepEqual(out.filter(isOffline), [offline(msgs[0])]);
  assert.deepEqual(out.at(-2), { kind: "unbind", fullJid: ME });
});

Deno.test("sm: taken over: a live connection closes with conflict, the session goes on", () => {
  const live = reduce(managed(), { kind: "sm-taken-over" }, testCtx());
  assert.equal(live[0].destroyed, true);
  assert.deepEqual(show(live[1]), [
    {
      kind: "close-stream",
      xml: '<stream:error><conflict xmlns="urn:ietf:params:xml:ns:xmpp-streams"/>' +
        '<text xmlns="urn:ietf:params:xml:ns:xmpp-streams" xml:lang="en">' +
        "The session was resumed elsewhere</text></stream:error>",
    },
    { kind: "disconnect" },
  ]);
  const asleep = reduce(managed({ hibernating: true }), { kind: "sm-taken-over" }, testCtx());
  assert.deepEqual(asleep[1], [{ kind: "disconnect" }]);
});

// ---------------------------------------------------------------------------------------------
// Bounds (issue 9): the queue's bytes, and hibernating sessions per account.

Deno.test("sm: past sm_queue_bytes the stream ends with resource-constraint, nothing lost", () => {
  const big = (i: number) =>
    stanza("message", { from: `${FRIEND}/pc`, to: ME, type: "chat", id: `b${i}` }, [
      elem("body", {}, ["x".repeat(30000)]),
    ]);
  const ctx = testCtx({ limits: { smQueueBytes: 65536 } });
  // Two fit under 64 KiB; the third does not, though the count is far from sm_queue.
  const { session, outputs } = run(managed(), [inbound(big(1)), inbound(big(2))], ctx);
  assert.equal(session.destroyed, false);
  assert.equal(session.sm?.unacked.length, 2);
  assert.equal(session.sm?.unackedBytes, stanzaBytes(big(1)) + stanzaBytes(big(2)));
  assert.equal(outputs.filter(isOffline).length, 0);
  const [ended, out] = reduce(session, inbound(big(3)), ctx);
  assert.equal(ended.destroyed, true);
  assert.ok(
    show(out).some((o) => o.kind === "close-stream" && o.xml?.includes("<resource-constraint")),
  );
  assert.deepEqual(out.filter(isOffline), [big(1), big(2), big(3)].map(offline));
  // An acknowledgement gives the bytes back.
  const [acked] = reduce(session, nonza("a", { h: "2" }), ctx);
  assert.deepEqual(acked.sm?.unacked, []);
  assert.equal(acked.sm?.unackedBytes, undefined);
  const [fits] = reduce(acked, inbound(big(3)), ctx);
  assert.equal(fits.destroyed, false);
  assert.equal(fits.sm?.unackedBytes, stanzaBytes(big(3)));
});

Deno.test("sm: sm_queue bounds the count", () => {
  const ctx = testCtx({ limits: { smQueue: 3 } });
  const { session } = run(managed(), [inbound(chat("m1")), inbound(chat("m2"))], ctx);
  assert.equal(session.destroyed, false);
  const { session: ended, outputs } = run(session, [inbound(chat("m3")), inbound(chat("m4"))], ctx);
  assert.equal(ended.destroyed, true);
  assert.deepEqual(
    outputs.filter(isOffline),
    ["m1", "m2", "m3", "m4"].map((b) => offline(chat(b))),
  );
});

/** Another resource of the user, hibernating since `since`. */
function sleeper(resource: string, since: number): ResourceView {
  return {
    fullJid: `${BARE}/${resource}`,
    resource,
    priority: 0,
    available: true,
    interested: true,
    hibernatingSince: since,
  };
}

Deno.test("sm: past resumable_per_account hibernating sessions, the oldest ones end", () => {
  const others = [sleeper("b", 300), sleeper("a", 100), sleeper("c", 200), {
    ...sleeper("awake", 0),
    hibernatingSince: undefined,
  }];
  const ctx = testCtx({
    resourcesOf: (bare) => bare === BARE ? others : [],
    limits: { resumablePerAccount: 2 },
  });
  const [next, out] = reduce(managed(), { kind: "disconnected", reason: "end" }, ctx);
  assert.equal(next.sm?.hibernating, true);
  // Three others hibernate; with this one, two must go: the two oldest.
  assert.deepEqual(out[0], {
    kind: "hibernate",
    seconds: 300,
    evict: [`${BARE}/a`, `${BARE}/c`],
  });
  // Under the bound nobody is ended.
  const roomy = testCtx({
    resourcesOf: (bare) => bare === BARE ? others : [],
    limits: { resumablePerAccount: 4 },
  });
  assert.deepEqual(reduce(managed(), { kind: "disconnected", reason: "end" }, roomy)[1][0], {
    kind: "hibernate",
    seconds: 300,
  });
});

Deno.test("sm: an evicted hibernating session ends as at its timeout, messages kept", () => {
  const s = managed({ hibernating: true, hibernatedAt: 1, outbound: 1, unacked: [chat("m1")] });
  const [next, out] = reduce(s, { kind: "hibernation-timeout" }, testCtx());
  assert.equal(next.destroyed, true);
  assert.deepEqual(out.filter(isOffline), [offline(chat("m1"))]);
  assert.ok(out.some((o) => o.kind === "unbind"));
});

Deno.test("sm: with resumable_per_account 0 nothing hibernates", () => {
  const ctx = testCtx({ limits: { resumablePerAccount: 0 } });
  // Resumption is not offered at all: counting only.
  const [enabled, said] = reduce(bound(), nonza("enable", { resume: "true" }), ctx);
  assert.deepEqual(show(said), [{ kind: "send", xml: '<enabled xmlns="urn:xmpp:sm:3"/>' }]);
  assert.equal(enabled.sm?.id, undefined);
  const [next, out] = reduce(managed(), { kind: "disconnected", reason: "end" }, ctx);
  assert.equal(next.destroyed, true);
  assert.ok(!out.some((o) => o.kind === "hibernate"));
});
