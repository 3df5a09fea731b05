/**
 * The conformance scripts of the pubsub service (`pubsub_*.scs` that talk to
 * `pubsub.localhost`), replayed against the reducer alone: every stanza a client sends to the
 * service is reduced (its `from` stamped as the router would), what the service routes goes to
 * the client of that JID, and every expected stanza that answers the service must arrive, with
 * the scripts' own matching rules. Steps between clients and their server (presence, PEP) are
 * the server's, not the service's, and are skipped.
 */
import assert from "node:assert/strict";
import type { Element } from "../../../lib/xml/element.ts";
import { serializeTop } from "../../../lib/xmpp/stream_xml.ts";
import { bareJidOf } from "../../../lib/xmpp/jid.ts";
import { EMPTY_ROSTER } from "../../../lib/core/session.ts";
import {
  DEFAULT_SERVICE_LIMITS,
  EMPTY_SERVICE,
  type PubsubServiceCtx,
  reducePubsub,
  type ServiceState,
} from "../../../lib/services/pubsub/service.ts";
import { parseScript, substituteVariables } from "../../conformance/script.ts";
import { defaultScriptDir } from "../../conformance/scansion.ts";
import { matchStanza } from "../../conformance/match.ts";

const DOMAIN = "pubsub.localhost";
const SCRIPTS = [
  "pubsub_basic.scs",
  "pubsub_createdelete.scs",
  "pubsub_advanced.scs",
  "pubsub_max_items.scs",
  "pubsub_multi_items.scs",
];

function ctx(): PubsubServiceCtx {
  let n = 0;
  return {
    domain: DOMAIN,
    newId: () => `id${++n}`,
    admins: new Set(["admin@localhost"]),
    limits: DEFAULT_SERVICE_LIMITS,
    create: "admins",
    isLocal: (bare) => bare.endsWith("@localhost"),
    rosterOf: () => EMPTY_ROSTER,
  };
}

/** Replays `file`; returns how many expected stanzas were the service's (and arrived). */
function replay(file: string): number {
  const script = parseScript(Deno.readTextFileSync(`${defaultScriptDir()}/${file}`));
  const fullJid = new Map(script.clients.map((c) => [c.name, `${c.jid}/scansion`]));
  const resolve = (r: { client: string; full: boolean }) => {
    const full = fullJid.get(r.client)!;
    return r.full ? full : bareJidOf(full)!;
  };
  const queues = new Map<string, Element[]>(script.clients.map((c) => [c.name, []]));
  const online = new Set<string>();
  // Ids of the iqs each client sent to the service: their answers are the service's.
  const asked = new Map<string, Set<string>>(script.clients.map((c) => [c.name, new Set()]));
  let state: ServiceState = EMPTY_SERVICE;
  let checked = 0;
  const c = ctx();
  for (const step of script.steps) {
    const where = `${file}:${step.line} ${step.source}`;
    if (step.kind === "connects") online.add(step.client);
    else if (step.kind === "disconnects") online.delete(step.client);
    else if (step.kind === "sends") {
      if (!online.has(step.client)) continue;
      for (const raw of step.stanzas) {
        const s = substituteVariables(raw, resolve);
        if (s.attrs.to !== DOMAIN) continue;
        if (s.attrs.id !== undefined) asked.get(step.client)!.add(s.attrs.id);
        const stamped = { ...s, attrs: { ...s.attrs, from: fullJid.get(step.client)! } };
        const [next, outputs] = reducePubsub(state, stamped, c);
        state = next;
        for (const o of outputs) {
          assert.notEqual(o.kind, "need-roster", where);
          if (o.kind !== "route") continue;
          assert.equal(o.stanza.attrs.from, DOMAIN, where);
          for (const [name, jid] of fullJid) {
            const to = o.stanza.attrs.to;
            if (online.has(name) && (to === jid || to === bareJidOf(jid))) {
              queues.get(name)!.push(o.stanza);
            }
          }
        }
      }
    } else if (step.kind === "receives") {
      for (const raw of step.stanzas) {
        const expected = substituteVariables(raw, resolve);
        const ours = expected.attrs.from === DOMAIN ||
          (expected.name === "iq" && asked.get(step.client)!.has(expected.attrs.id ?? ""));
        if (!ours) continue;
        const queue = queues.get(step.client)!;
        // As scansion: stanzas that do not match are passed over until one does.
        let found = false;
        while (queue.length > 0 && !found) {
          const got = queue.shift()!;
          found = matchStanza(expected, got) !== undefined;
        }
        assert.ok(found, `${where}: expected ${serializeTop(expected)}`);
        checked++;
      }
    }
  }
  return checked;
}

/** The service's stanzas each script expects (a replay that skipped them would prove nothing). */
const EXPECTED: Readonly<Record<string, number>> = {
  "pubsub_basic.scs": 6,
  "pubsub_createdelete.scs": 4,
  "pubsub_advanced.scs": 11,
  "pubsub_max_items.scs": 7,
  "pubsub_multi_items.scs": 7,
};

for (const file of SCRIPTS) {
  Deno.test(`pubsub service: ${file} replayed against the reducer`, () => {
    assert.equal(replay(file), EXPECTED[file]);
  });
}
