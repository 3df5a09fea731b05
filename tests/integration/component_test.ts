/** External components (XEP-0114) over real sockets: a raw component and a real client. */
import assert from "node:assert/strict";
import { handshakeDigest } from "../../lib/component/component.ts";
import { NS_COMPONENT } from "../../lib/xmpp/namespaces.ts";
import { serialize } from "../../lib/xml/element.ts";
import { NS_STREAMS } from "../../lib/xmpp/namespaces.ts";
import { closeAll, connectPeer } from "./_peer.ts";
import { RawClient } from "./_raw_client.ts";
import type { TestServer } from "./_server.ts";
import { withServer } from "./_server.ts";
import { xml, type XmppClient } from "./_xmpp_client.ts";

const SETTINGS = {
  component_port: 0,
  components: [{ domain: "gw.localhost", secret: "s3cret" }],
};

function header(to: string): string {
  return `<?xml version='1.0'?><stream:stream xmlns='${NS_COMPONENT}' ` +
    `xmlns:stream='${NS_STREAMS}' to='${to}'>`;
}

/** Connects a raw component for `domain` and sends the handshake; returns it and the answer. */
async function connectComponent(
  server: TestServer,
  domain = "gw.localhost",
  secret = "s3cret",
): Promise<{ readonly component: RawClient; readonly answer: string }> {
  const component = await RawClient.connect(server.componentPort!);
  component.write(header(domain));
  const opened = await component.event();
  assert.equal(opened?.kind, "stream-open");
  const id = opened.kind === "stream-open" ? opened.attrs.id : "";
  assert.ok(id !== undefined && id !== "");
  if (opened.kind === "stream-open") assert.equal(opened.contentXmlns, NS_COMPONENT);
  component.write(`<handshake>${handshakeDigest(id, secret)}</handshake>`);
  const answer = serialize(await component.next("the handshake answer"), NS_COMPONENT);
  return { component, answer };
}

Deno.test("a component handshakes and exchanges messages with a client", async () => {
  await withServer(["alice"], async (server) => {
    const { component, answer } = await connectComponent(server);
    assert.equal(answer, "<handshake/>");
    const alice = await connectPeer(server, "alice", "a");

    // Client to component: the stanza arrives in the component namespace, from stamped.
    await alice.xmpp.send(
      xml("message", { to: "user@gw.localhost", id: "m1" }, xml("body", {}, "hi")),
    );
    const got = await component.next("alice's message");
    assert.equal(got.xmlns, NS_COMPONENT);
    assert.equal(
      serialize(got, NS_COMPONENT),
      '<message to="user@gw.localhost" id="m1" from="alice@localhost/a"><body>hi</body></message>',
    );

    // Component to client.
    component.write(
      `<message from='user@gw.localhost/x' to='alice@localhost/a' id='m2'><body>hello</body></message>`,
    );
    const back = await alice.waitFor(
      (st: XmppClient) => st.is("message") && st.attrs.id === "m2",
      "the component's message",
    );
    assert.equal(back.attrs.from, "user@gw.localhost/x");
    assert.equal(back.getChildText("body"), "hello");

    // The domain lists the component among its items (XEP-0030 §4).
    const items = await alice.xmpp.iqCaller.request(
      xml(
        "iq",
        { type: "get", to: "localhost" },
        xml("query", {
          xmlns: "http://jabber.org/protocol/disco#items",
        }),
      ),
    );
    assert.deepEqual(
      items.getChild("query").getChildren("item").map((i: XmppClient) => i.attrs.jid),
      // The in-process MUC and pubsub services (on by default) are listed beside the component.
      ["gw.localhost", "conference.localhost", "pubsub.localhost"],
    );

    // A second connection for the same domain is refused; the first keeps working.
    const twin = await RawClient.connect(server.componentPort!);
    twin.write(header("gw.localhost"));
    const twinOpen = await twin.event();
    const twinId = twinOpen?.kind === "stream-open" ? twinOpen.attrs.id! : "";
    twin.write(`<handshake>${handshakeDigest(twinId, "s3cret")}</handshake>`);
    const conflict = await twin.next("the conflict");
    assert.equal(conflict.name, "error");
    assert.equal((conflict.children[0] as { name: string }).name, "conflict");

    // Gone: a message to the component bounces with service-unavailable.
    await component.close();
    await alice.xmpp.send(
      xml("message", { to: "user@gw.localhost", id: "m3" }, xml("body", {}, "?")),
    );
    const bounce = await alice.waitFor(
      (st: XmppClient) => st.is("message") && st.attrs.id === "m3",
      "the bounce",
    );
    assert.equal(bounce.attrs.type, "error");
    assert.ok(bounce.getChild("error").getChild("service-unavailable") !== undefined);
    twin.cut();
    await closeAll(alice);
  }, SETTINGS);
});

Deno.test("a wrong secret, an unknown domain and a foreign from close the stream", async () => {
  await withServer([], async (server) => {
    const wrong = await RawClient.connect(server.componentPort!);
    wrong.write(header("gw.localhost"));
    await wrong.event();
    wrong.write("<handshake>0000</handshake>");
    const err = await wrong.next("not-authorized");
    assert.equal((err.children[0] as { name: string }).name, "not-authorized");

    const unknown = await RawClient.connect(server.componentPort!);
    unknown.write(header("nope.localhost"));
    await unknown.event();
    const hostErr = await unknown.next("host-unknown");
    assert.equal((hostErr.children[0] as { name: string }).name, "host-unknown");

    const { component } = await connectComponent(server);
    component.write(`<message from='evil@localhost' to='alice@localhost'><body>x</body></message>`);
    const fromErr = await component.next("invalid-from");
    assert.equal((fromErr.children[0] as { name: string }).name, "invalid-from");
    for (const c of [wrong, unknown, component]) c.cut();
  }, SETTINGS);
});
