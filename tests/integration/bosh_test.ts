/**
 * XMPP over BOSH (XEP-0124/0206) against a real server on ephemeral ports: a login over
 * `/http-bind` that messages a TCP client, CORS preflight, discovery, and refusals.
 *
 * `@xmpp/client` 0.14.0 has no BOSH transport (its packages are TCP, TLS and WebSocket only), so
 * the BOSH client here is a small one over `fetch`, speaking SCRAM-SHA-256 as the other tests do.
 */
import assert from "node:assert/strict";
import { withServer } from "./_server.ts";
import { RawClient } from "./_raw_client.ts";
import { child, elem, type Element, serialize, text } from "../../lib/xml/element.ts";
import { parseMessage } from "../../lib/transport/websocket.ts";
import { clientFinalMessage, clientFirstMessage } from "../../lib/xmpp/scram.ts";

const HTTPBIND = "http://jabber.org/protocol/httpbind";
const SASL = "urn:ietf:params:xml:ns:xmpp-sasl";
const BIND = "urn:ietf:params:xml:ns:xmpp-bind";
const PLAIN_OK = { http: { http_port: 0 }, require_encryption: false };

const b64 = (s: string) => btoa(String.fromCharCode(...new TextEncoder().encode(s)));
const unb64 = (s: string) =>
  new TextDecoder().decode(Uint8Array.from(atob(s.trim()), (c) => c.charCodeAt(0)));

function parseBody(xml: string): Element {
  const ev = parseMessage(new TextEncoder().encode(xml), 1 << 20);
  if (ev?.kind !== "stanza" || ev.stanza.name !== "body") throw new Error(`not a body: ${xml}`);
  return ev.stanza;
}

const elementsOf = (body: Element) =>
  body.children.filter((c): c is Element => typeof c !== "string");

/** A minimal BOSH client over fetch. */
class BoshClient {
  rid = 1000 + Math.floor(Math.random() * 1000);
  sid = "";
  constructor(readonly url: string) {}

  async post(attrs: Record<string, string>, children: readonly Element[] = []): Promise<Element> {
    const body = elem("body", { xmlns: HTTPBIND, ...attrs, rid: String(this.rid++) }, [
      ...children,
    ]);
    const res = await fetch(this.url, {
      method: "POST",
      headers: { "content-type": "text/xml; charset=utf-8" },
      body: serialize(body, ""),
    });
    assert.equal(res.status, 200);
    return parseBody(await res.text());
  }

  send(...children: Element[]): Promise<Element> {
    return this.post({ sid: this.sid }, children);
  }

  /** Posts (empty bodies, as long polls) until an element `pred` accepts comes. */
  async next(what: string, pred: (el: Element) => boolean, first?: Element): Promise<Element> {
    let body = first ?? await this.send();
    for (let i = 0; i < 10; i++) {
      assert.notEqual(body.attrs.type, "terminate", `terminated before ${what}`);
      const hit = elementsOf(body).find(pred);
      if (hit !== undefined) return hit;
      body = await this.send();
    }
    throw new Error(`no ${what}`);
  }
}

Deno.test("bosh: a login over /http-bind messages a TCP client and back", async () => {
  await withServer(["alice", "bob"], async (server) => {
    const bob = await RawClient.online(server.c2sPort, "bob");
    const c = new BoshClient(`http://127.0.0.1:${server.httpPort}/http-bind`);
    try {
      const created = await c.post({
        to: "localhost",
        wait: "5",
        hold: "1",
        ver: "1.6",
        "xml:lang": "en",
        "xmlns:xmpp": "urn:xmpp:xbosh",
        "xmpp:version": "1.0",
      });
      c.sid = created.attrs.sid;
      assert.ok(c.sid.length > 8);
      assert.equal(created.attrs.wait, "5");
      assert.equal(created.attrs.hold, "1");
      assert.equal(created.attrs.requests, "2");
      assert.equal(created.attrs.inactivity, "60");
      assert.equal(created.attrs.from, "localhost");
      assert.equal(created.attrs["xmpp:version"], "1.0");
      assert.ok(created.attrs.authid);
      const features = await c.next("features", (el) => el.name === "features", created);
      assert.ok(child(features, "mechanisms", SASL));

      const nonce = b64(crypto.randomUUID());
      const clientFirst = clientFirstMessage("alice", nonce);
      const challenge = await c.next(
        "the challenge",
        (el) => el.xmlns === SASL,
        await c.send(elem("auth", { xmlns: SASL, mechanism: "SCRAM-SHA-256" }, [b64(clientFirst)])),
      );
      assert.equal(challenge.name, "challenge", serialize(challenge));
      const final = clientFinalMessage({
        hash: "SHA-256",
        password: "pw",
        clientFirst,
        serverFirst: unb64(text(challenge)),
      });
      const success = await c.next(
        "success",
        (el) => el.xmlns === SASL,
        await c.send(elem("response", { xmlns: SASL }, [b64(final.message)])),
      );
      assert.equal(success.name, "success", serialize(success));

      // xmpp:restart='true' restarts the stream: new features, with bind.
      const restarted = await c.next(
        "features after restart",
        (el) => el.name === "features",
        await c.post({
          sid: c.sid,
          "xmpp:restart": "true",
          "xmlns:xmpp": "urn:xmpp:xbosh",
          to: "localhost",
        }),
      );
      assert.ok(child(restarted, "bind", BIND));
      const bound = await c.next(
        "bind result",
        (el) => el.name === "iq",
        await c.send(
          elem("iq", { xmlns: "jabber:client", type: "set", id: "b1" }, [
            elem("bind", { xmlns: BIND }, [elem("resource", {}, ["web"])]),
          ]),
        ),
      );
      assert.equal(bound.attrs.type, "result");
      assert.equal(text(child(child(bound, "bind", BIND)!, "jid", BIND)!), "alice@localhost/web");

      // Held: nothing to answer it with yet.
      const sent = c.send(
        elem("message", { xmlns: "jabber:client", to: "bob@localhost/r", type: "chat" }, [
          elem("body", {}, ["hi bob"]),
        ]),
      );
      const got = await bob.until("alice's message", (el) => el.name === "message");
      assert.equal(got.attrs.from, "alice@localhost/web");
      assert.equal(text(child(got, "body")!), "hi bob");

      // And back: a held request is answered as soon as the message arrives.
      // A new request (hold='1') makes the server answer the held one at once.
      const poll = c.send();
      assert.equal(elementsOf(await sent).length, 0);
      bob.send(elem("message", { to: "alice@localhost/web", type: "chat" }, [
        elem("body", {}, ["hi alice"]),
      ]));
      const reply = await c.next("bob's message", (el) => el.name === "message", await poll);
      assert.equal(text(child(reply, "body")!), "hi alice");

      const bye = await c.post({ sid: c.sid, type: "terminate" });
      assert.equal(bye.attrs.type, "terminate");
      // The session is gone.
      const after = await c.send();
      assert.equal(after.attrs.type, "terminate");
      assert.equal(after.attrs.condition, "item-not-found");
    } finally {
      bob.cut();
    }
  }, PLAIN_OK);
});

Deno.test("bosh: CORS preflight, discovery, and refusals", async () => {
  await withServer([], async (server) => {
    const url = `http://127.0.0.1:${server.httpPort}/http-bind`;
    const pre = await fetch(url, {
      method: "OPTIONS",
      headers: { origin: "https://chat.example.org", "access-control-request-method": "POST" },
    });
    await pre.body?.cancel();
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get("access-control-allow-origin"), "https://chat.example.org");
    assert.match(pre.headers.get("access-control-allow-methods")!, /POST/);
    const foreign = await fetch(url, {
      method: "OPTIONS",
      headers: { origin: "https://evil.example" },
    });
    await foreign.body?.cancel();
    assert.equal(foreign.status, 403);

    const post = async (body: string) => {
      const res = await fetch(url, { method: "POST", body });
      return parseBody(await res.text());
    };
    const unknown = await post(`<body xmlns='${HTTPBIND}' sid='nope' rid='5'/>`);
    assert.equal(unknown.attrs.condition, "item-not-found");
    const malformed = await post(`<body xmlns='${HTTPBIND}' rid='5'`);
    assert.equal(malformed.attrs.condition, "bad-request");
    const noRid = await post(`<body xmlns='${HTTPBIND}' to='localhost'/>`);
    assert.equal(noRid.attrs.condition, "bad-request");
    const huge = await post(`<body xmlns='${HTTPBIND}' rid='5'>${"x".repeat(300_000)}</body>`);
    assert.equal(huge.attrs.condition, "policy-violation");

    const json =
      await (await fetch(`http://127.0.0.1:${server.httpPort}/.well-known/host-meta.json`))
        .json();
    assert.deepEqual(json.links[1], {
      rel: "urn:xmpp:alt-connections:xbosh",
      href: `http://127.0.0.1:${server.httpPort}/http-bind`,
    });
    const xrd = await (await fetch(`http://127.0.0.1:${server.httpPort}/.well-known/host-meta`))
      .text();
    assert.match(
      xrd,
      /<Link rel='urn:xmpp:alt-connections:xbosh' href='http:\/\/127.0.0.1:\d+\/http-bind'\/>/,
    );
  }, { ...PLAIN_OK, http: { http_port: 0, cors_origins: ["https://chat.example.org"] } });
});
