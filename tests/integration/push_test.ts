/**
 * XEP-0357 push notifications over real sockets: an external component (XEP-0114) stands in for
 * the app server and receives the notifications when the recipient is offline and when their
 * session hibernates (XEP-0198); the sender and body only when asked for; disable stops them;
 * registrations survive a restart.
 */
import assert from "node:assert/strict";
import { handshakeDigest } from "../../lib/component/component.ts";
import { configFromObject } from "../../lib/config.ts";
import { type RunningServer, startServer } from "../../lib/shell/server.ts";
import { child, elem, type Element, serialize, stanza } from "../../lib/xml/element.ts";
import { NS_COMPONENT, NS_SM, NS_STREAMS } from "../../lib/xmpp/namespaces.ts";
import { RawClient } from "./_raw_client.ts";
import { startTestServer } from "./_server.ts";

const APP = "push.localhost";
const SECRET = "s3cret";
const NS_PUSH = "urn:xmpp:push:0";
const OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";
const SETTINGS = {
  require_encryption: false,
  components: [{ domain: APP, secret: SECRET }],
};

/** Connects the app server stand-in as a component of `port`. */
async function appServer(port: number): Promise<RawClient> {
  const c = await RawClient.connect(port);
  c.write(
    `<?xml version='1.0'?><stream:stream xmlns='${NS_COMPONENT}' ` +
      `xmlns:stream='${NS_STREAMS}' to='${APP}'>`,
  );
  const opened = await c.event();
  assert.ok(opened?.kind === "stream-open" && opened.attrs.id !== undefined);
  c.write(`<handshake>${handshakeDigest(opened.attrs.id, SECRET)}</handshake>`);
  assert.equal((await c.next("the handshake answer")).name, "handshake");
  return c;
}

/** The next notification the app server gets, serialized with its random id replaced. */
async function notified(app: RawClient, what: string): Promise<string> {
  const iq = await app.next(what);
  assert.equal(iq.name, "iq");
  const id = iq.attrs.id;
  // Answered as an app server does; the answer goes to the user's bare JID and is dropped.
  app.write(`<iq type='result' from='${APP}' to='alice@localhost' id='${id}'/>`);
  return serialize(iq, NS_COMPONENT).replace(` id="${id}"`, ` id="ID"`);
}

/** Nothing reaches the app server within `ms`. */
async function quiet(app: RawClient, ms = 700): Promise<void> {
  const ev = await app.event(ms);
  assert.equal(ev, undefined, ev?.kind === "stanza" ? serialize(ev.stanza, NS_COMPONENT) : "");
}

function field(v: string, value: string): Element {
  return elem("field", { var: v }, [elem("value", {}, [value])]);
}

/** Alice registers the app server's `node` (with the enable form's fields) and gets a result. */
async function enable(c: RawClient, node: string, fields: readonly Element[] = []) {
  const x = fields.length === 0 ? [] : [
    elem("x", { xmlns: "jabber:x:data", type: "submit" }, [field("FORM_TYPE", OPTIONS), ...fields]),
  ];
  c.send(stanza("iq", { type: "set", id: "en" }, [
    elem("enable", { xmlns: NS_PUSH, jid: APP, node }, x),
  ]));
  const r = await c.until("the enable result", (el) => el.attrs.id === "en");
  assert.equal(r.attrs.type, "result", serialize(r));
}

function chat(body: string): Element {
  return stanza("message", { to: "alice@localhost", type: "chat", id: body }, [
    elem("body", {}, [body]),
  ]);
}

function summary(count: string, more = ""): string {
  return `<x xmlns="jabber:x:data" type="form">` +
    `<field type="hidden" var="FORM_TYPE"><value>urn:xmpp:push:summary</value></field>` +
    `<field var="message-count"><value>${count}</value></field>${more}</x>`;
}

function notification(node: string, form: string, options = ""): string {
  return `<iq type="set" from="alice@localhost" to="${APP}" id="ID">` +
    `<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="${node}"><item>` +
    `<notification xmlns="${NS_PUSH}">${form}</notification></item></publish>${options}` +
    `</pubsub></iq>`;
}

function isStanza(el: Element): boolean {
  return el.xmlns === "jabber:client" && ["message", "presence", "iq"].includes(el.name);
}

Deno.test("push: the app server hears of messages for an offline and a hibernating recipient", async () => {
  const server = await startTestServer(SETTINGS);
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    const app = await appServer(server.componentPort!);
    const alice = await RawClient.online(server.c2sPort, "alice", "phone");
    await enable(alice, "n1");
    // The account announces the feature (XEP-0357 §4).
    alice.send(stanza("iq", { type: "get", id: "d1", to: "alice@localhost" }, [
      elem("query", { xmlns: "http://jabber.org/protocol/disco#info" }),
    ]));
    const info = await alice.until("disco#info", (el) => el.attrs.id === "d1");
    assert.match(serialize(info), new RegExp(`<feature var="${NS_PUSH}"/>`));
    await alice.close();

    // (1) Offline: stored, then the app server hears of it, without sender or body.
    const bob = await RawClient.online(server.c2sPort, "bob", "pc");
    bob.send(chat("for your eyes only"));
    assert.equal(
      await notified(app, "the offline notification"),
      notification("n1", summary("1")),
    );

    // (2) Hibernating: Alice comes back with resumable stream management, acknowledges what
    // she got (the offline message), and her connection drops without closing the stream.
    const again = await RawClient.online(server.c2sPort, "alice", "phone");
    again.send(elem("enable", { xmlns: NS_SM, resume: "true" }));
    assert.equal((await again.next("enabled")).name, "enabled");
    again.send(stanza("presence", {}));
    const got: Element[] = [];
    await again.until("the offline message", (el) => {
      got.push(el);
      return el.name === "message";
    });
    got.push(...await again.barrier());
    again.send(elem("a", { xmlns: NS_SM, h: String(got.filter(isStanza).length + 1) }));
    await again.barrier();
    await quiet(app, 200);
    again.cut();
    // Everything was acknowledged: hibernating alone notifies nobody.
    await quiet(app, 300);
    bob.send(chat("while you sleep"));
    assert.equal(
      await notified(app, "the hibernation notification"),
      notification("n1", summary("1")),
    );
    // Within push_interval and with Alice still away: no more.
    bob.send(chat("and again"));
    await quiet(app);
    await bob.close();
    app.cut();
  } finally {
    await server.stop();
  }
});

async function start(dataDir: string): Promise<RunningServer> {
  return await startServer(configFromObject({
    hosts: ["localhost"],
    data_dir: dataDir,
    interfaces: ["127.0.0.1"],
    c2s_port: 0,
    c2s_direct_tls_port: 0,
    component_port: 0,
    s2s_port: false,
    log_level: "error",
    http: { http_port: false, https_port: false },
    // Every message notifies: this test is about what the notifications hold.
    limits: { push_interval: 0 },
    ...SETTINGS,
  }, "test"));
}

Deno.test("push: body and sender when asked; registrations survive a restart; disable stops them", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "xmpp-test-" });
  let server = await start(dataDir);
  try {
    for (const u of ["alice", "bob"]) await server.accounts.create("localhost", u, "pw");
    let app = await appServer(server.componentPort!);
    const alice = await RawClient.online(server.c2sPort, "alice", "phone");
    const asked = [
      field("secret", "eruio"),
      field("include-body", "1"),
      field("include-sender", "1"),
    ];
    await enable(alice, "n1", asked);
    await alice.close();
    let bob = await RawClient.online(server.c2sPort, "bob", "pc");
    bob.send(chat("Wherefore art thou?"));
    const options = `<publish-options><x xmlns="jabber:x:data" type="submit">` +
      `<field var="FORM_TYPE"><value>${OPTIONS}</value></field>` +
      `<field var="secret"><value>eruio</value></field></x></publish-options>`;
    assert.equal(
      await notified(app, "the notification with body"),
      notification(
        "n1",
        summary(
          "1",
          `<field var="last-message-sender"><value>bob@localhost/pc</value></field>` +
            `<field var="last-message-body"><value>Wherefore art thou?</value></field>`,
        ),
        options,
      ),
    );
    // A chat state alone is not worth waking a phone for.
    bob.send(stanza("message", { to: "alice@localhost", type: "chat" }, [
      elem("active", { xmlns: "http://jabber.org/protocol/chatstates" }),
    ]));
    await quiet(app);
    await bob.close();
    app.cut();

    // The registration is the account's: it outlives the server.
    await server.shutdown();
    server = await start(dataDir);
    app = await appServer(server.componentPort!);
    bob = await RawClient.online(server.c2sPort, "bob", "pc");
    bob.send(chat("still there?"));
    const after = await notified(app, "the notification after the restart");
    assert.match(after, /<field var="message-count"><value>3<\/value><\/field>/);
    assert.match(after, /<value>still there\?<\/value>/);

    // Disabled (every node of the service): no more notifications.
    const back = await RawClient.online(server.c2sPort, "alice", "phone");
    back.send(stanza("iq", { type: "set", id: "dis" }, [
      elem("disable", { xmlns: NS_PUSH, jid: APP }),
    ]));
    const r = await back.until("the disable result", (el) => el.attrs.id === "dis");
    assert.equal(r.attrs.type, "result");
    assert.equal(child(r, "error"), undefined);
    await back.close();
    bob.send(chat("anyone?"));
    await bob.barrier();
    await quiet(app);
    await bob.close();
    app.cut();
  } finally {
    await server.shutdown();
    await Deno.remove(dataDir, { recursive: true });
  }
});
