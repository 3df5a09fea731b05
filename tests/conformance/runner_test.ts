import assert from "node:assert/strict";
import { elem, stanza } from "../../lib/xml/element.ts";
import { isStrict, matchStanza } from "./match.ts";
import { NS_SCANSION, parseScript, ScriptError, substituteVariables } from "./script.ts";
import { NS_CLIENT } from "../../lib/xmpp/namespaces.ts";

const DISCO = "http://jabber.org/protocol/disco#info";

Deno.test("match: name and namespace must be equal", () => {
  assert.ok(matchStanza(stanza("presence"), stanza("presence")));
  assert.equal(matchStanza(stanza("presence"), stanza("message")), undefined);
  assert.equal(
    matchStanza(stanza("presence"), elem("presence", { xmlns: "jabber:server" })),
    undefined,
  );
});

Deno.test("match: expected attributes must be present and equal; extras allowed when not strict", () => {
  const expected = stanza("message", { type: "chat", to: "a@localhost" });
  assert.ok(matchStanza(expected, stanza("message", { type: "chat", to: "a@localhost", id: "1" })));
  assert.equal(matchStanza(expected, stanza("message", { type: "chat" })), undefined);
  assert.equal(
    matchStanza(expected, stanza("message", { type: "normal", to: "a@localhost" })),
    undefined,
  );
});

Deno.test("match: strictness follows the README's inheritance rule", () => {
  const query = elem("query", { xmlns: DISCO });
  assert.equal(isStrict(stanza("iq"), NS_CLIENT, false), false);
  assert.equal(isStrict(query, NS_CLIENT, false), true);
  assert.equal(isStrict(elem("identity", { xmlns: DISCO }), DISCO, true), true);
  assert.equal(isStrict(elem("identity", { xmlns: DISCO }), DISCO, false), false);
  assert.equal(
    isStrict(elem("query", { xmlns: DISCO, "scansion:strict": "false" }), NS_CLIENT, false),
    false,
  );
  assert.equal(isStrict(elem("body", { xmlns: NS_CLIENT }), DISCO, true), true);
  assert.equal(isStrict(elem("body", { xmlns: NS_CLIENT }), DISCO, false), false);
  assert.equal(isStrict(stanza("iq", { "scansion:strict": "true" }), NS_CLIENT, false), true);
});

Deno.test("match: a strict payload forbids extra attributes, scansion:* never counts", () => {
  const expected = stanza("iq", { type: "result" }, [elem("query", { xmlns: DISCO, node: "n" })]);
  const extra = stanza("iq", { type: "result" }, [
    elem("query", { xmlns: DISCO, node: "n", x: "1" }),
  ]);
  assert.equal(matchStanza(expected, extra), undefined);
  const loose = stanza("iq", { type: "result" }, [
    elem("query", { xmlns: DISCO, node: "n", "scansion:strict": "false" }),
  ]);
  assert.ok(matchStanza(loose, extra));
  assert.ok(
    matchStanza(
      expected,
      stanza("iq", { type: "result", id: "x" }, [elem("query", { xmlns: DISCO, node: "n" })]),
    ),
  );
});

Deno.test("match: strict children are counted and ordered; loose ones any order with extras", () => {
  const f = (v: string) => elem("feature", { var: v });
  const strict = stanza("iq", {}, [elem("query", { xmlns: DISCO }, [f("a"), f("b")])]);
  const recv = (...vs: string[]) => stanza("iq", {}, [elem("query", { xmlns: DISCO }, vs.map(f))]);
  assert.ok(matchStanza(strict, recv("a", "b")));
  assert.equal(matchStanza(strict, recv("b", "a")), undefined);
  assert.equal(matchStanza(strict, recv("a", "b", "c")), undefined);
  const loose = stanza("iq", {}, [
    elem("query", { xmlns: DISCO, "scansion:strict": "false" }, [f("a"), f("b")]),
  ]);
  assert.ok(matchStanza(loose, recv("c", "b", "a")));
  assert.equal(matchStanza(loose, recv("a", "c")), undefined);
  // Two expected children cannot both match one received child.
  const twice = stanza("iq", {}, [
    elem("query", { xmlns: DISCO, "scansion:strict": "false" }, [f("a"), f("a")]),
  ]);
  assert.equal(matchStanza(twice, recv("a", "b")), undefined);
  assert.ok(matchStanza(twice, recv("a", "b", "a")));
});

Deno.test("match: unordered matching backtracks to find an assignment", () => {
  const item = (attrs: Record<string, string>) => elem("item", attrs);
  const expected = stanza("iq", {}, [
    elem("query", { xmlns: "jabber:iq:roster", "scansion:strict": "false" }, [
      item({ jid: "{scansion:any}" }),
      item({ jid: "a@x" }),
    ]),
  ]);
  const received = stanza("iq", {}, [
    elem("query", { xmlns: "jabber:iq:roster" }, [item({ jid: "a@x" }), item({ jid: "b@x" })]),
  ]);
  assert.ok(matchStanza(expected, received));
});

Deno.test("match: text is trimmed, compared only on childless elements with text", () => {
  const expected = stanza("message", {}, [elem("body", {}, ["\n\t\tHello  "])]);
  assert.ok(matchStanza(expected, stanza("message", {}, [elem("body", {}, ["Hello"])])));
  assert.equal(
    matchStanza(expected, stanza("message", {}, [elem("body", {}, ["Bye"])])),
    undefined,
  );
  const empty = stanza("message", {}, [elem("body")]);
  assert.ok(matchStanza(empty, stanza("message", {}, [elem("body", {}, ["anything"])])));
});

Deno.test("match: {scansion:any} accepts any attribute value or text but needs the attribute", () => {
  const expected = stanza("message", { id: "{scansion:any}" }, [
    elem("body", {}, ["{scansion:any}"]),
  ]);
  assert.ok(matchStanza(expected, stanza("message", { id: "42" }, [elem("body", {}, ["hi"])])));
  assert.equal(matchStanza(expected, stanza("message", {}, [elem("body", {}, ["hi"])])), undefined);
});

Deno.test("match: captures store the first value and require it later", () => {
  const expected = stanza("message", { id: "{scansion:capture:first}" });
  const caps = matchStanza(expected, stanza("message", { id: "abc" }));
  assert.deepEqual(caps, { first: "abc" });
  assert.ok(matchStanza(expected, stanza("message", { id: "abc" }), caps));
  assert.equal(matchStanza(expected, stanza("message", { id: "xyz" }), caps), undefined);
  // A capture made by an element that then fails to match is not kept.
  const partial = stanza("message", { id: "{scansion:capture:c}", type: "chat" });
  const before = {};
  assert.equal(
    matchStanza(partial, stanza("message", { id: "1", type: "normal" }), before),
    undefined,
  );
  assert.deepEqual(before, {});
});

const SCRIPT = `# A title
# more comment

[Client] Romeo
	jid: romeo@localhost
	password: password

[Client] Juliet's phone
	jid: juliet@localhost/balcony
	password: secret

---------

// a whole step commented out:
-- Romeo connects

Romeo connects

Juliet's phone connects

Romeo sends:
	<message to="\${Juliet's phone's full JID}" type="chat">
		<body>Hi</body>
	</message>
	<presence/>

Juliet's phone receives
	<message from="\${Romeo's JID}/x" type="chat"><body>Hi</body></message>

Juliet's phone receives: nothing

Romeo receives:
	<iq type="result"><query xmlns="jabber:iq:version" scansion:strict="false"/></iq>

Romeo disconnects
`;

Deno.test("script: clients, actions, comments and blocks", () => {
  const s = parseScript(SCRIPT);
  assert.equal(s.title, "A title");
  assert.deepEqual(s.clients.map((c) => [c.name, c.jid, c.password, c.resource]), [
    ["Romeo", "romeo@localhost", "password", undefined],
    ["Juliet's phone", "juliet@localhost/balcony", "secret", "balcony"],
  ]);
  assert.deepEqual(s.steps.map((st) => [st.client, st.kind]), [
    ["Romeo", "connects"],
    ["Juliet's phone", "connects"],
    ["Romeo", "sends"],
    ["Juliet's phone", "receives"],
    ["Juliet's phone", "receives-nothing"],
    ["Romeo", "receives"],
    ["Romeo", "disconnects"],
  ]);
  const lines = SCRIPT.split("\n");
  for (const st of s.steps) assert.equal(lines[st.line - 1].trim(), st.source);
});

Deno.test("script: blocks parse as jabber:client stanzas, several per block", () => {
  const s = parseScript(SCRIPT);
  const sends = s.steps[2];
  assert.equal(sends.kind, "sends");
  if (sends.kind !== "sends") return;
  assert.deepEqual(sends.stanzas.map((x) => [x.name, x.xmlns]), [
    ["message", NS_CLIENT],
    ["presence", NS_CLIENT],
  ]);
  const body = sends.stanzas[0].children.find((c) => typeof c !== "string");
  assert.ok(body !== undefined && typeof body !== "string");
  assert.equal(body.xmlns, NS_CLIENT);
  const recv = s.steps[5];
  if (recv.kind !== "receives") throw new Error("expected a receives step");
  const query = recv.stanzas[0].children.find((c) => typeof c !== "string");
  assert.ok(query !== undefined && typeof query !== "string");
  assert.equal(query.xmlns, "jabber:iq:version");
  assert.equal(query.attrs["scansion:strict"], "false");
  assert.equal(isStrict(query, NS_CLIENT, false), false);
  assert.ok(NS_SCANSION.startsWith("https://"));
});

Deno.test("script: variables are substituted in attributes and text", () => {
  const s = parseScript(SCRIPT);
  const sends = s.steps[2];
  if (sends.kind !== "sends") throw new Error("expected a sends step");
  const jids: Record<string, string> = { "Juliet's phone": "juliet@localhost/balcony" };
  const out = substituteVariables(sends.stanzas[0], (ref) => {
    assert.equal(ref.full, true);
    return jids[ref.client];
  });
  assert.equal(out.attrs.to, jids["Juliet's phone"]);
  const text = substituteVariables(
    elem("body", { xmlns: NS_CLIENT }, ["to ${Romeo's JID}!"]),
    (ref) => ref.full ? "full" : "romeo@localhost",
  );
  assert.deepEqual(text.children, ["to romeo@localhost!"]);
});

Deno.test("script: errors name the line", () => {
  const bad = (text: string, line: number) =>
    assert.throws(
      () => parseScript(text),
      (e: unknown) => e instanceof ScriptError && e.line === line,
    );
  bad("[Client] A\n\tjid: a@localhost\n---\nB connects\n", 4);
  bad("[Client] A\n\tjid: a@localhost\n---\nA sends:\n\t<message>\n", 4);
  bad("[Client] A\n\tjid: a@localhost\n---\nA dances\n", 4);
  bad("[Client] A\n\tpassword: x\n---\n", 1);
});
