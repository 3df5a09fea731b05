/** The connection driver, with a fake transport and a toy kind of connection. */
import assert from "node:assert/strict";
import {
  arm,
  createDriver,
  disarm,
  dispatch,
  type Driver,
  type DriverKind,
  type Frame,
  pressured,
  receive,
  restartStream,
  type Transport,
} from "../../lib/transport/driver.ts";
import type { ParseEvent } from "../../lib/xml/parser.ts";
import type { Element } from "../../lib/xml/element.ts";

type Ev = { readonly kind: string; readonly name?: string };
type Out =
  | Frame
  | { readonly kind: "disconnect" }
  | { readonly kind: "note"; readonly text: string }
  | { readonly kind: "restart" }
  | { readonly kind: "echo"; readonly ev: Ev };
/** The toy session: every event it saw, in order. */
type S = readonly string[];

interface Toy extends Driver<S, Ev, Out> {
  readonly notes: string[];
  readonly log: string[];
  extraPressure: boolean;
}

const stanza = (name: string): Element => ({
  name,
  xmlns: "jabber:client",
  attrs: {},
  children: [],
});

const TOY: DriverKind<S, Ev, Out, Toy> = {
  reduce(s, ev) {
    const seen = [...s, ev.name === undefined ? ev.kind : `${ev.kind}:${ev.name}`];
    switch (ev.kind) {
      case "stanza":
        if (ev.name === "restart") return [seen, [{ kind: "restart" }]];
        if (ev.name === "bye") {
          return [seen, [{ kind: "close-stream" }, { kind: "disconnect" }, {
            kind: "note",
            text: "late",
          }]];
        }
        if (ev.name === "echo") {
          return [seen, [{ kind: "echo", ev: { kind: "echoed" } }, { kind: "note", text: "echo" }]];
        }
        if (ev.name === "big") return [seen, [{ kind: "send", stanza: stanza("big") }]];
        return [seen, [{ kind: "note", text: ev.name ?? "" }]];
      case "echoed":
        return [seen, [{ kind: "note", text: "echoed" }]];
      default:
        return [seen, []];
    }
  },
  execute(d, out) {
    if (out.kind === "note") d.notes.push(out.text);
    // Dispatched during a reduction: reduced after it, never inside it.
    else if (out.kind === "echo") dispatch(d, out.ev);
    else if (out.kind === "restart") restartStream(d, 1000);
  },
  parsed: (ev: ParseEvent) =>
    ev.kind === "stanza" ? { kind: "stanza", name: ev.stanza.name } : { kind: ev.kind },
  disconnected: (reason) => ({ kind: "disconnected", name: reason }),
  pressured: (d) => d.extraPressure,
  dropped: (d, why) => void d.log.push(`dropped ${why}`),
  ended: (d) => void d.log.push("ended"),
};

function fakeTransport(log: string[]) {
  const t = {
    backlogBytes: 0,
    backlog: () => t.backlogBytes,
    taken: () => 0,
    send: (f: Frame) => void log.push(`send ${f.kind === "send" ? f.stanza.name : f.kind}`),
    read: () => Promise.resolve(),
    close: () => void log.push("close"),
    abort: () => void log.push("abort"),
  };
  return t satisfies Transport;
}

function toy() {
  const log: string[] = [];
  const transport = fakeTransport(log);
  const released: string[] = [];
  const d = createDriver(
    TOY,
    [] as S,
    {
      writeBacklog: 100,
      maxStanzaBytes: 1000,
      maxDepth: 10,
      ticket: {
        authenticated: () => void released.push("authenticated"),
        release: () => void released.push("release"),
      },
    },
    { notes: [] as string[], log, extraPressure: false },
    () => transport,
  );
  return { d, log, transport, released };
}

const bytes = (s: string) => new TextEncoder().encode(s);
const HEADER =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>";

Deno.test("driver: events are reduced one at a time, in arrival order", () => {
  const { d } = toy();
  receive(d, bytes(HEADER + "<a/><echo/><b/>"));
  assert.deepEqual(d.session, ["stream-open", "stanza:a", "stanza:echo", "echoed", "stanza:b"]);
  // The event dispatched while <echo/>'s outputs ran was reduced after all of them.
  assert.deepEqual(d.notes, ["a", "echo", "echoed", "b"]);
});

Deno.test("driver: frames go to the transport; disconnect ends the connection", async () => {
  const { d, log, released } = toy();
  receive(d, bytes(HEADER + "<bye/><after/>"));
  // The outputs after `disconnect` in the same reduction still run; later events do not.
  assert.deepEqual(d.notes, ["late"]);
  assert.deepEqual(d.session, ["stream-open", "stanza:bye"]);
  assert.deepEqual(log, ["send close-stream", "ended", "close"]);
  assert.deepEqual(released, ["release"]);
  assert.equal(d.done, true);
  await d.finished;
  dispatch(d, { kind: "ignored" });
  assert.deepEqual(d.session, ["stream-open", "stanza:bye"]);
});

Deno.test("driver: events parsed before a stream restart are dropped", () => {
  const { d } = toy();
  receive(d, bytes(HEADER + "<restart/><stale/>"));
  assert.deepEqual(d.session, ["stream-open", "stanza:restart"]);
  // The new parser reads the new stream.
  receive(d, bytes(HEADER + "<fresh/>"));
  assert.deepEqual(d.session.slice(2), ["stream-open", "stanza:fresh"]);
});

Deno.test("driver: a peer whose backlog keeps growing is dropped, ahead of queued events", () => {
  const { d, log, transport } = toy();
  receive(d, bytes(HEADER));
  transport.backlogBytes = 150;
  receive(d, bytes("<big/>"));
  assert.equal(d.guard !== undefined, true);
  transport.backlogBytes = 300;
  receive(d, bytes("<big/>"));
  assert.deepEqual(log.filter((l) => !l.startsWith("send")), ["dropped growing", "abort"]);
  assert.equal(d.session.at(-1), "disconnected:write backlog");
  d.guard?.stop();
});

Deno.test("driver: reading waits on half the write backlog, or when the kind says so", () => {
  const { d, transport } = toy();
  assert.equal(pressured(d), false);
  transport.backlogBytes = 51;
  assert.equal(pressured(d), true);
  transport.backlogBytes = 0;
  d.extraPressure = true;
  assert.equal(pressured(d), true);
});

Deno.test("driver: the deadline queues its event unless cleared or replaced", async () => {
  const { d } = toy();
  arm(d, 1, { kind: "first" });
  arm(d, 1, { kind: "second" });
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(d.session, ["second"]);
  arm(d, 1, { kind: "third" });
  disarm(d);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(d.session, ["second"]);
});
