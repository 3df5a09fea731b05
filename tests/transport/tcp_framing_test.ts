/** The TCP framing of stream outputs: the exact bytes of headers, errors and the close. */
import assert from "node:assert/strict";
import { clientHeader } from "../../lib/xmpp/stream_xml.ts";
import { componentHeader } from "../../lib/component/component.ts";
import { STREAM_CLOSE, tcpFrame } from "../../lib/transport/tcp_framing.ts";
import { elem } from "../../lib/xml/element.ts";

const STREAMS = "http://etherx.jabber.org/streams";
const ERR_NS = "urn:ietf:params:xml:ns:xmpp-streams";

Deno.test("tcp framing: a client header has id, from, version and xml:lang, in that order", () => {
  assert.equal(
    tcpFrame({ kind: "open-stream", header: clientHeader("example.com", "id1") }, "jabber:client"),
    "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='" + STREAMS +
      "' id='id1' from='example.com' version='1.0' xml:lang='en'>",
  );
});

Deno.test("tcp framing: a component header has no version (XEP-0114 §3)", () => {
  const ns = "jabber:component:accept";
  assert.equal(
    tcpFrame({ kind: "open-stream", header: componentHeader("gw.localhost", "sid1") }, ns),
    "<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='" + STREAMS +
      "' id='sid1' from='gw.localhost'>",
  );
  // Refused before its header was checked: an empty id, no from.
  assert.equal(
    tcpFrame({ kind: "open-stream", header: componentHeader(undefined, "") }, ns),
    "<?xml version='1.0'?><stream:stream xmlns='" + ns + "' xmlns:stream='" + STREAMS +
      "' id=''>",
  );
});

Deno.test("tcp framing: attribute values are escaped", () => {
  assert.match(
    tcpFrame({ kind: "open-stream", header: clientHeader("a'b", "<&>") }, "jabber:client"),
    / id='&lt;&amp;&gt;' from='a&apos;b' /,
  );
});

Deno.test("tcp framing: close-stream writes the stream error, then the closing tag", () => {
  assert.equal(tcpFrame({ kind: "close-stream" }, "jabber:client"), STREAM_CLOSE);
  assert.equal(STREAM_CLOSE, "</stream:stream>");
  assert.equal(
    tcpFrame({
      kind: "close-stream",
      error: {
        condition: "undefined-condition",
        text: "Too high",
        app: elem("handled-count-too-high", { xmlns: "urn:xmpp:sm:3", h: "5" }),
      },
    }, "jabber:client"),
    `<stream:error><undefined-condition xmlns="${ERR_NS}"/>` +
      `<text xmlns="${ERR_NS}" xml:lang="en">Too high</text>` +
      '<handled-count-too-high xmlns="urn:xmpp:sm:3" h="5"/></stream:error></stream:stream>',
  );
});

Deno.test("tcp framing: stanzas are written in the stream's namespace", () => {
  const msg = elem("message", { xmlns: "jabber:component:accept", to: "a@b" });
  assert.equal(
    tcpFrame({ kind: "send", stanza: msg }, "jabber:component:accept"),
    '<message to="a@b"/>',
  );
});
