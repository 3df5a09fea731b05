import assert from "node:assert/strict";
import type { Roster } from "../../../lib/core/session.ts";
import {
  DEFAULT_SERVICE_LIMITS,
  EMPTY_SERVICE,
  loadService,
  type PubsubOutput,
  reducePubsub,
  type StoredNode,
} from "../../../lib/services/pubsub/service.ts";
import {
  ADMIN,
  ctx,
  DOMAIN,
  form,
  iq,
  JULIET,
  NODE_CONFIG,
  NURSE,
  owner,
  PUBLISH_OPTIONS,
  pubsub,
  ROMEO,
  service,
  STRANGER,
  xml,
} from "./helpers.ts";

const R = `from="${DOMAIN}"`;
const EV = "http://jabber.org/protocol/pubsub#event";
const ERR = "urn:ietf:params:xml:ns:xmpp-stanzas";
const PSE = "http://jabber.org/protocol/pubsub#errors";

function result(id: string, to: string, payload = ""): string {
  return payload === ""
    ? `<iq type="result" id="${id}" ${R} to="${to}"/>`
    : `<iq type="result" id="${id}" ${R} to="${to}">${payload}</iq>`;
}

function error(id: string, to: string, type: string, condition: string, extra = ""): string {
  return `<iq type="error" id="${id}" ${R} to="${to}"><error type="${type}"><${condition} xmlns="${ERR}"/>${extra}</error></iq>`;
}

function pse(name: string): string {
  return `<${name} xmlns="${PSE}"/>`;
}

function event(to: string, id: string, inner: string, type = "headline"): string {
  return `<message ${R} to="${to}" type="${type}" id="${id}"><event xmlns="${EV}">${inner}</event></message>`;
}

function x(id: string, text: string, publisher = "romeo@example.com"): string {
  return `<item id="${id}" publisher="${publisher}"><x xmlns="urn:x">${text}</x></item>`;
}

function publishX(node: string, id: string, text = id): string {
  return pubsub(
    `<publish node="${node}"><item id="${id}"><x xmlns="urn:x">${text}</x></item></publish>`,
  );
}

Deno.test("pubsub service: instant nodes get a generated name; creation follows the policy", () => {
  const s = service(ctx({ create: "admins" }));
  assert.deepEqual(s.send(ROMEO, iq("set", "c0", pubsub(`<create node="n"/>`))), [
    error("c0", ROMEO, "auth", "forbidden"),
  ]);
  assert.deepEqual(s.send(ADMIN, iq("set", "c1", pubsub(`<create/>`))), [
    "store id2 id1",
    result(
      "c1",
      ADMIN,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><create node="id1"/></pubsub>`,
    ),
  ]);
  assert.deepEqual(s.send(ADMIN, iq("set", "c2", pubsub(`<create node="id1"/>`))), [
    error("c2", ADMIN, "cancel", "conflict"),
  ]);
  const bad = form(NODE_CONFIG, { "pubsub#access_model": "secret" });
  assert.deepEqual(
    s.send(ADMIN, iq("set", "c3", pubsub(`<create node="m"/><configure>${bad}</configure>`))),
    [
      `<iq type="error" id="c3" ${R} to="${ADMIN}"><error type="modify"><not-acceptable xmlns="${ERR}"/><text xmlns="${ERR}">Invalid value for pubsub#access_model</text></error></iq>`,
    ],
  );
  // Local users may create under the `local` policy, remote ones may not.
  const local = service(ctx({ create: "local" }));
  assert.deepEqual(local.send(ROMEO, iq("set", "c4", pubsub(`<create node="n"/>`))), [
    "store id1 n",
    result("c4", ROMEO),
  ]);
  assert.deepEqual(local.send(STRANGER, iq("set", "c5", pubsub(`<create node="m"/>`))), [
    error("c5", STRANGER, "auth", "forbidden"),
  ]);
});

Deno.test("pubsub service: publish, notify with the publisher, trim to max_items, retrieve, retract, purge", () => {
  const s = service(ctx({ create: "admins" }));
  const config = form(NODE_CONFIG, {
    "pubsub#max_items": "2",
    "pubsub#send_last_published_item": "on_sub",
  });
  s.send(ADMIN, iq("set", "c1", pubsub(`<create node="n"/><configure>${config}</configure>`)));
  // XEP-0060 §6.1.3.1: only one's own JID may be subscribed.
  assert.deepEqual(
    s.send(JULIET, iq("set", "s0", pubsub(`<subscribe node="n" jid="${ROMEO}"/>`))),
    [
      error("s0", JULIET, "modify", "bad-request", pse("invalid-jid")),
    ],
  );
  assert.deepEqual(
    s.send(JULIET, iq("set", "s1", pubsub(`<subscribe node="n" jid="juliet@example.com"/>`))),
    [
      "store id1 n",
      result(
        "s1",
        JULIET,
        `<pubsub xmlns="http://jabber.org/protocol/pubsub"><subscription node="n" jid="juliet@example.com" subscription="subscribed"/></pubsub>`,
      ),
    ],
  );
  // Publishers publish (§4.1): Romeo only once the owner made him one.
  assert.deepEqual(s.send(ROMEO, iq("set", "p0", publishX("n", "a"))), [
    error("p0", ROMEO, "auth", "forbidden"),
  ]);
  s.send(
    ADMIN,
    iq(
      "set",
      "a1",
      owner(
        `<affiliations node="n"><affiliation jid="romeo@example.com" affiliation="publisher"/></affiliations>`,
      ),
    ),
  );
  assert.deepEqual(s.send(ROMEO, iq("set", "pa", publishX("n", "a"))), [
    "store id1 n",
    event("juliet@example.com", "id2", `<items node="n">${x("a", "a")}</items>`),
    result(
      "pa",
      ROMEO,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="n"><item id="a"/></publish></pubsub>`,
    ),
  ]);
  s.send(ROMEO, iq("set", "pb", publishX("n", "b")));
  s.send(ROMEO, iq("set", "pc", publishX("n", "c")));
  assert.deepEqual(s.send(JULIET, iq("get", "i1", pubsub(`<items node="n"/>`))), [
    result(
      "i1",
      JULIET,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="n">${x("b", "b")}${
        x("c", "c")
      }</items></pubsub>`,
    ),
  ]);
  assert.deepEqual(s.send(JULIET, iq("get", "i2", pubsub(`<items node="n" max_items="1"/>`))), [
    result(
      "i2",
      JULIET,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="n">${
        x("c", "c")
      }</items></pubsub>`,
    ),
  ]);
  // §7.1.5: publish-options are preconditions, and the error says which field differs.
  const whitelist = form(PUBLISH_OPTIONS, { "pubsub#access_model": "whitelist" });
  assert.deepEqual(
    s.send(
      ROMEO,
      iq(
        "set",
        "p4",
        pubsub(
          `<publish node="n"><item id="d"><x xmlns="urn:x">d</x></item></publish><publish-options>${whitelist}</publish-options>`,
        ),
      ),
    ),
    [
      `<iq type="error" id="p4" ${R} to="${ROMEO}"><error type="cancel"><conflict xmlns="${ERR}"/><text xmlns="${ERR}">Field does not match: access_model</text>${
        pse("precondition-not-met")
      }</error></iq>`,
    ],
  );
  const same = form(PUBLISH_OPTIONS, { "pubsub#access_model": "open", "pubsub#max_items": "2" });
  assert.deepEqual(
    s.send(
      ROMEO,
      iq(
        "set",
        "p5",
        pubsub(
          `<publish node="n"><item><x xmlns="urn:x">d</x></item></publish><publish-options>${same}</publish-options>`,
        ),
      ),
    ),
    [
      "store id1 n",
      event("juliet@example.com", "id6", `<items node="n">${x("id5", "d")}</items>`),
      result(
        "p5",
        ROMEO,
        `<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="n"><item id="id5"/></publish></pubsub>`,
      ),
    ],
  );
  assert.deepEqual(
    s.send(
      ROMEO,
      iq("set", "r1", pubsub(`<retract node="n" notify="true"><item id="c"/></retract>`)),
    ),
    [
      "store id1 n",
      event("juliet@example.com", "id7", `<items node="n"><retract id="c"/></items>`),
      result("r1", ROMEO),
    ],
  );
  // §6.1.7: the last item follows the subscription (send_last_published_item = on_sub).
  assert.deepEqual(s.send(NURSE, iq("set", "s2", pubsub(`<subscribe node="n" jid="${NURSE}"/>`))), [
    "store id1 n",
    result(
      "s2",
      NURSE,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><subscription node="n" jid="${NURSE}" subscription="subscribed"/></pubsub>`,
    ),
    event(NURSE, "id8", `<items node="n">${x("id5", "d")}</items>`),
  ]);
  // Subscription options (§6.3): delivery off leaves the nurse out of the purge notification.
  assert.deepEqual(s.send(NURSE, iq("get", "op1", pubsub(`<options node="n" jid="${NURSE}"/>`))), [
    result(
      "op1",
      NURSE,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><options node="n" jid="${NURSE}"><x xmlns="jabber:x:data" type="form"><field type="hidden" var="FORM_TYPE"><value>http://jabber.org/protocol/pubsub#subscribe_options</value></field><field type="boolean" var="pubsub#deliver" label="Enable delivery?"><value>1</value></field></x></options></pubsub>`,
    ),
  ]);
  const off = form("http://jabber.org/protocol/pubsub#subscribe_options", {
    "pubsub#deliver": "0",
  });
  assert.deepEqual(
    s.send(NURSE, iq("set", "op2", pubsub(`<options node="n" jid="${NURSE}">${off}</options>`))),
    [
      "store id1 n",
      result("op2", NURSE),
    ],
  );
  assert.deepEqual(s.send(ADMIN, iq("set", "pu", owner(`<purge node="n"/>`))), [
    "store id1 n",
    event("juliet@example.com", "id9", `<purge node="n"/>`),
    result("pu", ADMIN),
  ]);
  assert.deepEqual(
    s.send(ROMEO, iq("set", "r2", pubsub(`<retract node="n"><item id="a"/></retract>`))),
    [
      error("r2", ROMEO, "cancel", "item-not-found"),
    ],
  );
});

Deno.test("pubsub service: subscriptions and affiliations, own and managed by owners", () => {
  const s = service(ctx({ create: "admins" }));
  s.send(ADMIN, iq("set", "c1", pubsub(`<create node="n"/>`)));
  s.send(JULIET, iq("set", "s1", pubsub(`<subscribe node="n" jid="juliet@example.com"/>`)));
  s.send(NURSE, iq("set", "s2", pubsub(`<subscribe node="n" jid="${NURSE}"/>`)));
  s.send(
    ADMIN,
    iq(
      "set",
      "a1",
      owner(
        `<affiliations node="n"><affiliation jid="${ROMEO}" affiliation="publisher"/></affiliations>`,
      ),
    ),
  );
  assert.deepEqual(s.send(NURSE, iq("get", "o1", pubsub(`<subscriptions/>`))), [
    result(
      "o1",
      NURSE,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><subscriptions><subscription node="n" jid="${NURSE}" subscription="subscribed"/></subscriptions></pubsub>`,
    ),
  ]);
  assert.deepEqual(s.send(ROMEO, iq("get", "o2", pubsub(`<affiliations/>`))), [
    result(
      "o2",
      ROMEO,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><affiliations><affiliation node="n" affiliation="publisher"/></affiliations></pubsub>`,
    ),
  ]);
  assert.deepEqual(s.send(ADMIN, iq("get", "o3", owner(`<subscriptions node="n"/>`))), [
    result(
      "o3",
      ADMIN,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"><subscriptions node="n"><subscription jid="juliet@example.com" subscription="subscribed"/><subscription jid="${NURSE}" subscription="subscribed"/></subscriptions></pubsub>`,
    ),
  ]);
  // Only owners manage (§8.8, §8.9).
  assert.deepEqual(s.send(ROMEO, iq("get", "o4", owner(`<subscriptions node="n"/>`))), [
    error("o4", ROMEO, "auth", "forbidden"),
  ]);
  // §6.2.3: someone else's subscription, and none at all.
  assert.deepEqual(
    s.send(NURSE, iq("set", "u0", pubsub(`<unsubscribe node="n" jid="juliet@example.com"/>`))),
    [
      error("u0", NURSE, "auth", "forbidden"),
    ],
  );
  assert.deepEqual(
    s.send(STRANGER, iq("set", "u1", pubsub(`<unsubscribe node="n" jid="${STRANGER}"/>`))),
    [
      error("u1", STRANGER, "cancel", "unexpected-request", pse("not-subscribed")),
    ],
  );
  // An owner ends a subscription: the subscriber is told (§8.8.4).
  assert.deepEqual(
    s.send(
      ADMIN,
      iq(
        "set",
        "o5",
        owner(
          `<subscriptions node="n"><subscription jid="juliet@example.com" subscription="none"/></subscriptions>`,
        ),
      ),
    ),
    [
      "store id1 n",
      event(
        "juliet@example.com",
        "id2",
        `<subscription node="n" jid="juliet@example.com" subscription="none"/>`,
      ),
      result("o5", ADMIN),
    ],
  );
  // An outcast loses its subscriptions and may not subscribe again (§4.1).
  assert.deepEqual(
    s.send(
      ADMIN,
      iq(
        "set",
        "a2",
        owner(
          `<affiliations node="n"><affiliation jid="${NURSE}" affiliation="outcast"/></affiliations>`,
        ),
      ),
    ),
    [
      "store id1 n",
      result("a2", ADMIN),
    ],
  );
  assert.deepEqual(s.send(NURSE, iq("set", "s3", pubsub(`<subscribe node="n" jid="${NURSE}"/>`))), [
    error("s3", NURSE, "auth", "forbidden"),
  ]);
  assert.deepEqual(s.send(ADMIN, iq("get", "a3", owner(`<affiliations node="n"/>`))), [
    result(
      "a3",
      ADMIN,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub#owner"><affiliations node="n"><affiliation jid="admin@example.com" affiliation="owner"/><affiliation jid="romeo@example.com" affiliation="publisher"/><affiliation jid="nurse@example.com" affiliation="outcast"/></affiliations></pubsub>`,
    ),
  ]);
  assert.deepEqual(
    s.send(
      ADMIN,
      iq(
        "set",
        "a4",
        owner(
          `<affiliations node="n"><affiliation jid="admin@example.com" affiliation="none"/></affiliations>`,
        ),
      ),
    ),
    [
      `<iq type="error" id="a4" ${R} to="${ADMIN}"><error type="modify"><not-acceptable xmlns="${ERR}"/><text xmlns="${ERR}">A node keeps at least one owner</text></error></iq>`,
    ],
  );
  assert.deepEqual(
    s.send(
      ADMIN,
      iq(
        "set",
        "a5",
        owner(`<affiliations node="n"><affiliation jid="x@y" affiliation="king"/></affiliations>`),
      ),
    ),
    [
      `<iq type="error" id="a5" ${R} to="${ADMIN}"><error type="modify"><bad-request xmlns="${ERR}"/><text xmlns="${ERR}">Bad affiliation entry</text></error></iq>`,
    ],
  );
});

Deno.test("pubsub service: delete notifies with the redirect; unknown requests get errors", () => {
  const s = service(ctx({ create: "admins" }));
  s.send(ADMIN, iq("set", "c1", pubsub(`<create node="n"/>`)));
  s.send(JULIET, iq("set", "s1", pubsub(`<subscribe node="n" jid="${JULIET}"/>`)));
  assert.deepEqual(
    s.send(
      ADMIN,
      iq("set", "d1", owner(`<delete node="n"><redirect uri="xmpp:${DOMAIN}?;node=m"/></delete>`)),
    ),
    [
      "store id1 -",
      event(JULIET, "id2", `<delete node="n"><redirect uri="xmpp:${DOMAIN}?;node=m"/></delete>`),
      result("d1", ADMIN),
    ],
  );
  assert.equal(s.state.keys.size, 0);
  assert.deepEqual(s.send(ADMIN, iq("set", "d2", owner(`<delete node="n"/>`))), [
    error("d2", ADMIN, "cancel", "item-not-found"),
  ]);
  assert.deepEqual(s.send(ADMIN, iq("get", "x1", `<query xmlns="jabber:iq:version"/>`)), [
    error("x1", ADMIN, "cancel", "service-unavailable"),
  ]);
  assert.deepEqual(s.send(ADMIN, iq("get", "x2", pubsub(`<frobnicate/>`))), [
    `<iq type="error" id="x2" ${R} to="${ADMIN}"><error type="cancel"><feature-not-implemented xmlns="${ERR}"/><unsupported xmlns="${PSE}" feature="frobnicate"/></error></iq>`,
  ]);
  // Results and errors sent to the service are never answered.
  assert.deepEqual(s.send(ADMIN, `<iq type="result" id="r" to="${DOMAIN}"/>`), []);
  assert.deepEqual(s.send(ADMIN, `<iq type="error" id="r" to="${DOMAIN}"/>`), []);
});

const ROMEO_ROSTER: Roster = {
  version: "1",
  items: {
    "juliet@example.com": { jid: "juliet@example.com", subscription: "from", groups: ["Friends"] },
    "nurse@example.com": { jid: "nurse@example.com", subscription: "to", groups: ["Staff"] },
  },
  pendingIn: {},
};

Deno.test("pubsub service: presence and roster access ask for the owner's roster once", () => {
  const loaded = new Set<string>();
  const s = service(ctx({
    create: "local",
    rosterOf: (b) =>
      loaded.has(b) ? (b === "romeo@example.com" ? ROMEO_ROSTER : undefined) : undefined,
  }));
  const presence = form(NODE_CONFIG, { "pubsub#access_model": "presence" });
  s.send(ROMEO, iq("set", "c1", pubsub(`<create node="p"/><configure>${presence}</configure>`)));
  const subscribeJuliet = iq("set", "s1", pubsub(`<subscribe node="p" jid="${JULIET}"/>`));
  // Not loaded: nothing happens but the request for it (the wiring reduces the stanza again).
  assert.deepEqual(s.send(JULIET, subscribeJuliet), ["need-roster romeo@example.com"]);
  loaded.add("romeo@example.com");
  assert.deepEqual(s.send(JULIET, subscribeJuliet), [
    "store id1 p",
    result(
      "s1",
      JULIET,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><subscription node="p" jid="${JULIET}" subscription="subscribed"/></pubsub>`,
    ),
  ]);
  assert.deepEqual(s.send(NURSE, iq("set", "s2", pubsub(`<subscribe node="p" jid="${NURSE}"/>`))), [
    error("s2", NURSE, "auth", "not-authorized", pse("presence-subscription-required")),
  ]);
  const roster = form(NODE_CONFIG, {
    "pubsub#access_model": "roster",
    "pubsub#roster_groups_allowed": ["Staff"],
  });
  s.send(ROMEO, iq("set", "c2", pubsub(`<create node="r"/><configure>${roster}</configure>`)));
  assert.deepEqual(s.send(NURSE, iq("get", "i1", pubsub(`<items node="r"/>`))), [
    result(
      "i1",
      NURSE,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><items node="r"/></pubsub>`,
    ),
  ]);
  assert.deepEqual(s.send(JULIET, iq("get", "i2", pubsub(`<items node="r"/>`))), [
    error("i2", JULIET, "auth", "not-authorized", pse("not-in-roster-group")),
  ]);
  // The node listing shows what the nurse may see (and loads no roster).
  assert.deepEqual(
    s.send(NURSE, iq("get", "d1", `<query xmlns="http://jabber.org/protocol/disco#items"/>`)),
    [
      result(
        "d1",
        NURSE,
        `<query xmlns="http://jabber.org/protocol/disco#items"><item jid="${DOMAIN}" node="r"/></query>`,
      ),
    ],
  );
});

Deno.test("pubsub service: whitelist admits members; authorize asks the owner, who approves", () => {
  const s = service(ctx({ create: "local" }));
  const whitelist = form(NODE_CONFIG, { "pubsub#access_model": "whitelist" });
  s.send(ROMEO, iq("set", "c1", pubsub(`<create node="w"/><configure>${whitelist}</configure>`)));
  assert.deepEqual(
    s.send(JULIET, iq("set", "s1", pubsub(`<subscribe node="w" jid="${JULIET}"/>`))),
    [
      error("s1", JULIET, "cancel", "not-allowed", pse("closed-node")),
    ],
  );
  s.send(
    ROMEO,
    iq(
      "set",
      "a1",
      owner(
        `<affiliations node="w"><affiliation jid="juliet@example.com" affiliation="member"/></affiliations>`,
      ),
    ),
  );
  assert.deepEqual(
    s.send(JULIET, iq("set", "s2", pubsub(`<subscribe node="w" jid="${JULIET}"/>`))),
    [
      "store id1 w",
      result(
        "s2",
        JULIET,
        `<pubsub xmlns="http://jabber.org/protocol/pubsub"><subscription node="w" jid="${JULIET}" subscription="subscribed"/></pubsub>`,
      ),
    ],
  );
  const authorize = form(NODE_CONFIG, {
    "pubsub#access_model": "authorize",
    "pubsub#deliver_payloads": "0",
    "pubsub#notification_type": "normal",
  });
  s.send(ROMEO, iq("set", "c2", pubsub(`<create node="a"/><configure>${authorize}</configure>`)));
  assert.deepEqual(
    s.send(STRANGER, iq("set", "s3", pubsub(`<subscribe node="a" jid="${STRANGER}"/>`))),
    [
      "store id2 a",
      result(
        "s3",
        STRANGER,
        `<pubsub xmlns="http://jabber.org/protocol/pubsub"><subscription node="a" jid="${STRANGER}" subscription="pending"/></pubsub>`,
      ),
      `<message ${R} to="romeo@example.com" id="id3"><x xmlns="jabber:x:data" type="form"><title>PubSub subscriber request</title><instructions>To approve this entity's subscription request, click the OK button. To deny the request, click the cancel button.</instructions><field type="hidden" var="FORM_TYPE"><value>http://jabber.org/protocol/pubsub#subscribe_authorization</value></field><field type="text-single" var="pubsub#node" label="Node ID"><value>a</value></field><field type="jid-single" var="pubsub#subscriber_jid" label="Subscriber Address"><value>${STRANGER}</value></field><field type="boolean" var="pubsub#allow" label="Allow this JID to subscribe to this pubsub node?"><value>false</value></field></x></message>`,
    ],
  );
  assert.deepEqual(s.send(STRANGER, iq("get", "i1", pubsub(`<items node="a"/>`))), [
    error("i1", STRANGER, "auth", "not-authorized", pse("not-subscribed")),
  ]);
  const answer = (allow: string) =>
    `<message to="${DOMAIN}">${
      form("http://jabber.org/protocol/pubsub#subscribe_authorization", {
        "pubsub#node": "a",
        "pubsub#subscriber_jid": STRANGER,
        "pubsub#allow": allow,
      })
    }</message>`;
  // Only an owner's answer counts.
  assert.deepEqual(s.send(JULIET, answer("true")), []);
  assert.deepEqual(s.send(ROMEO, answer("true")), [
    "store id2 a",
    event(STRANGER, "id4", `<subscription node="a" jid="${STRANGER}" subscription="subscribed"/>`),
  ]);
  // deliver_payloads off and notification_type normal.
  assert.deepEqual(s.send(ROMEO, iq("set", "p1", publishX("a", "x", "secret"))), [
    "store id2 a",
    event(
      STRANGER,
      "id5",
      `<items node="a"><item id="x" publisher="romeo@example.com"/></items>`,
      "normal",
    ),
    result(
      "p1",
      ROMEO,
      `<pubsub xmlns="http://jabber.org/protocol/pubsub"><publish node="a"><item id="x"/></publish></pubsub>`,
    ),
  ]);
});

Deno.test("pubsub service: disco#info of the service and of a node; disco#items of a node", () => {
  const s = service(ctx({ create: "admins" }));
  const config = form(NODE_CONFIG, { "pubsub#title": "News", "pubsub#max_items": "2" });
  s.send(ADMIN, iq("set", "c1", pubsub(`<create node="news"/><configure>${config}</configure>`)));
  s.send(ADMIN, iq("set", "p1", publishX("news", "a")));
  const [info] = s.send(
    JULIET,
    iq("get", "d0", `<query xmlns="http://jabber.org/protocol/disco#info"/>`),
  );
  assert.ok(
    info.startsWith(
      `<iq type="result" id="d0" ${R} to="${JULIET}"><query xmlns="http://jabber.org/protocol/disco#info"><identity category="pubsub" type="service" name="Publish-Subscribe"/><feature var="http://jabber.org/protocol/disco#info"/>`,
    ),
  );
  assert.ok(info.includes(`<feature var="http://jabber.org/protocol/pubsub#publish-options"/>`));
  assert.deepEqual(
    s.send(
      JULIET,
      iq("get", "d1", `<query xmlns="http://jabber.org/protocol/disco#info" node="news"/>`),
    ),
    [
      result(
        "d1",
        JULIET,
        `<query xmlns="http://jabber.org/protocol/disco#info" node="news"><identity category="pubsub" type="leaf"/><feature var="http://jabber.org/protocol/pubsub"/><x xmlns="jabber:x:data" type="result"><field var="FORM_TYPE" type="hidden"><value>http://jabber.org/protocol/pubsub#meta-data</value></field><field var="pubsub#title"><value>News</value></field><field var="pubsub#description"/><field var="pubsub#type"/><field var="pubsub#access_model"><value>open</value></field><field var="pubsub#publish_model"><value>publishers</value></field><field var="pubsub#max_items"><value>2</value></field><field var="pubsub#owner" type="jid-multi"><value>admin@example.com</value></field></x></query>`,
      ),
    ],
  );
  assert.deepEqual(
    s.send(JULIET, iq("get", "d2", `<query xmlns="http://jabber.org/protocol/disco#items"/>`)),
    [
      result(
        "d2",
        JULIET,
        `<query xmlns="http://jabber.org/protocol/disco#items"><item jid="${DOMAIN}" node="news" name="News"/></query>`,
      ),
    ],
  );
  assert.deepEqual(
    s.send(
      JULIET,
      iq("get", "d3", `<query xmlns="http://jabber.org/protocol/disco#items" node="news"/>`),
    ),
    [
      result(
        "d3",
        JULIET,
        `<query xmlns="http://jabber.org/protocol/disco#items" node="news"><item jid="${DOMAIN}" name="a"/></query>`,
      ),
    ],
  );
  assert.deepEqual(
    s.send(
      JULIET,
      iq("get", "d4", `<query xmlns="http://jabber.org/protocol/disco#info" node="gone"/>`),
    ),
    [
      error("d4", JULIET, "cancel", "item-not-found"),
    ],
  );
});

Deno.test("pubsub service: the owner's configuration form, its changes and the default form", () => {
  const s = service(ctx({ create: "admins" }));
  s.send(ADMIN, iq("set", "c1", pubsub(`<create node="n"/>`)));
  for (const id of ["a", "b", "c"]) s.send(ADMIN, iq("set", `p${id}`, publishX("n", id)));
  const [got] = s.send(ADMIN, iq("get", "g1", owner(`<configure node="n"/>`)));
  assert.ok(
    got.startsWith(
      `<iq type="result" id="g1" ${R} to="${ADMIN}"><pubsub xmlns="http://jabber.org/protocol/pubsub#owner"><configure node="n"><x xmlns="jabber:x:data" type="form">`,
    ),
  );
  assert.ok(
    got.includes(
      `<validate xmlns="http://jabber.org/protocol/xdata-validate" datatype="pubsub:integer-or-max"><range min="1" max="256"/></validate><value>20</value>`,
    ),
  );
  assert.deepEqual(s.send(JULIET, iq("get", "g2", owner(`<configure node="n"/>`))), [
    error("g2", JULIET, "auth", "forbidden"),
  ]);
  // Fewer items kept: the oldest go; affiliations and subscriptions stay.
  const change = form(NODE_CONFIG, { "pubsub#max_items": "1", "pubsub#itemreply": "none" });
  assert.deepEqual(
    s.send(ADMIN, iq("set", "g3", owner(`<configure node="n">${change}</configure>`))),
    [
      "store id1 n",
      result("g3", ADMIN),
    ],
  );
  const node = s.state.data.nodes.n;
  assert.deepEqual(node.items.map((i) => i.id), ["c"]);
  assert.deepEqual(node.affiliations, { "admin@example.com": "owner" });
  const tooMany = form(NODE_CONFIG, { "pubsub#max_items": "257" });
  assert.deepEqual(
    s.send(ADMIN, iq("set", "g4", owner(`<configure node="n">${tooMany}</configure>`))),
    [
      `<iq type="error" id="g4" ${R} to="${ADMIN}"><error type="modify"><not-acceptable xmlns="${ERR}"/><text xmlns="${ERR}">pubsub#max_items must be 1 to 256 or max</text></error></iq>`,
    ],
  );
  const [def] = s.send(ADMIN, iq("get", "g5", owner(`<default/>`)));
  assert.ok(def.includes(`<default><x xmlns="jabber:x:data" type="form">`));
});

Deno.test("pubsub service: bounds on nodes, item size, subscriptions per JID and per node", () => {
  const limits = {
    ...DEFAULT_SERVICE_LIMITS,
    nodes: 1,
    itemBytes: 40,
    subscriptions: 3,
    subscriptionsPerJid: 2,
  };
  const s = service(ctx({ create: "admins", limits }));
  s.send(ADMIN, iq("set", "c1", pubsub(`<create node="n"/>`)));
  assert.deepEqual(s.send(ADMIN, iq("set", "c2", pubsub(`<create node="m"/>`))), [
    `<iq type="error" id="c2" ${R} to="${ADMIN}"><error type="wait"><resource-constraint xmlns="${ERR}"/><text xmlns="${ERR}">Too many nodes</text></error></iq>`,
  ]);
  assert.deepEqual(s.send(ADMIN, iq("set", "p1", publishX("n", "a", "x".repeat(40)))), [
    `<iq type="error" id="p1" ${R} to="${ADMIN}"><error type="modify"><not-acceptable xmlns="${ERR}"/><text xmlns="${ERR}">An item's payload is limited to 40 bytes</text>${
      pse("payload-too-big")
    }</error></iq>`,
  ]);
  s.send(JULIET, iq("set", "s1", pubsub(`<subscribe node="n" jid="${JULIET}/1"/>`)));
  s.send(JULIET, iq("set", "s2", pubsub(`<subscribe node="n" jid="${JULIET}/2"/>`)));
  assert.deepEqual(
    s.send(JULIET, iq("set", "s3", pubsub(`<subscribe node="n" jid="${JULIET}/3"/>`))),
    [
      error("s3", JULIET, "wait", "policy-violation", pse("too-many-subscriptions")),
    ],
  );
  // Asking again for a subscription one holds is not a new one.
  assert.deepEqual(
    s.send(JULIET, iq("set", "s4", pubsub(`<subscribe node="n" jid="${JULIET}/1"/>`))),
    [
      result(
        "s4",
        JULIET,
        `<pubsub xmlns="http://jabber.org/protocol/pubsub"><subscription node="n" jid="${JULIET}/1" subscription="subscribed"/></pubsub>`,
      ),
    ],
  );
  s.send(NURSE, iq("set", "s5", pubsub(`<subscribe node="n" jid="${NURSE}"/>`)));
  assert.deepEqual(s.send(ROMEO, iq("set", "s6", pubsub(`<subscribe node="n" jid="${ROMEO}"/>`))), [
    `<iq type="error" id="s6" ${R} to="${ROMEO}"><error type="wait"><resource-constraint xmlns="${ERR}"/><text xmlns="${ERR}">Too many subscriptions</text></error></iq>`,
  ]);
  // Everything a node holds counts towards the bytes bound.
  const tight = service(
    ctx({ create: "admins", limits: { ...DEFAULT_SERVICE_LIMITS, bytes: 100 } }),
  );
  tight.send(ADMIN, iq("set", "c1", pubsub(`<create node="n"/>`)));
  const [refused] = tight.send(ADMIN, iq("set", "p1", publishX("n", "a", "y".repeat(60))));
  assert.ok(refused.includes("The pubsub service holds at most 100 bytes"));
});

Deno.test("pubsub service: the stored records load back into the same service", () => {
  const c = ctx({ create: "admins" });
  let state = EMPTY_SERVICE;
  const records = new Map<string, StoredNode>();
  const run = (from: string, stanza: string) => {
    const el = xml(stanza);
    const [next, out] = reducePubsub(state, { ...el, attrs: { ...el.attrs, from } }, c);
    state = next;
    for (const o of out as PubsubOutput[]) {
      if (o.kind !== "store") continue;
      if (o.value === undefined) records.delete(o.key);
      else records.set(o.key, JSON.parse(JSON.stringify(o.value)));
    }
  };
  run(ADMIN, iq("set", "c1", pubsub(`<create node="n"/>`)));
  run(ADMIN, iq("set", "c2", pubsub(`<create node="__proto__"/>`)));
  run(ADMIN, iq("set", "c3", pubsub(`<create node="gone"/>`)));
  run(JULIET, iq("set", "s1", pubsub(`<subscribe node="n" jid="${JULIET}"/>`)));
  run(ADMIN, iq("set", "p1", publishX("n", "a")));
  run(ADMIN, iq("set", "d1", owner(`<delete node="gone"/>`)));
  const loaded = loadService(records);
  assert.deepEqual(Object.keys(loaded.data.nodes), ["n", "__proto__"]);
  assert.deepEqual(loaded.data, JSON.parse(JSON.stringify(state.data)));
  assert.deepEqual([...loaded.keys], [...state.keys]);
  assert.equal(loaded.data.bytes, state.data.bytes);
});
