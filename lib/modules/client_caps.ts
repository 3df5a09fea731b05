/**
 * What clients can do, learned from their entity capabilities (XEP-0115), so that PEP sends a
 * resource only the notifications it asked for with `NODE+notify` (XEP-0163 §4.3). A presence
 * with an unknown `ver` makes each PEP service that hears it (the user's own, and those of local
 * contacts it is broadcast to) ask the resource with disco#info, as Prosody's mod_pep does; the
 * answer is verified and cached process-wide by the shell (`caps-learned`), and each service
 * that asked sends the resource the last items it now wants. A known `ver` needs no question.
 *
 * Only answers to our own questions are learned: the session remembers each question (its id,
 * the full JID asked and the service asking) with the caps it is about, and forgets it once
 * answered or when the caps change. An unsolicited `<iq type='result'/>` teaches nothing, so a
 * client cannot fill the process-wide cache by sending answers nobody asked for.
 * @module
 */
import { contactsWith } from "../core/roster.ts";
import {
  bareJid,
  type CapsQuestion,
  type ClientCaps,
  EMPTY_ROSTER,
  type Session,
} from "../core/session.ts";
import { child, childElements, elem, type Element, stanza } from "../xml/element.ts";
import { bareJidOf, parseJid } from "../xmpp/jid.ts";
import type { Ctx, Module, Output, PresenceVerdict, Step } from "../core/types.ts";
import { NS_CAPS, NS_DISCO_INFO } from "../xmpp/namespaces.ts";

/** The id of our caps questions: Prosody's, which the conformance scripts expect. */
const CAPS_IQ_ID = "disco";

/** The caps a presence advertises; undefined without (usable) caps. */
function capsOf(presence: Element): ClientCaps | undefined {
  const c = child(presence, "c", NS_CAPS);
  const { hash, node, ver } = c?.attrs ?? {};
  // Legacy caps (no hash, XEP-0115 before 1.5) name feature bundles we would not understand.
  if (hash === undefined || node === undefined || ver === undefined) return undefined;
  return { node, ver, hash };
}

/** The local PEP services that hear this resource's broadcast presence. */
function contactServices(s: Session, ctx: Ctx): string[] {
  return contactsWith(s.roster ?? EMPTY_ROSTER, ["from", "both"]).filter((jid) => {
    const parsed = parseJid(jid);
    return parsed?.local !== undefined && ctx.hosts.includes(parsed.domain);
  });
}

function question(from: string, to: string, caps: ClientCaps): Element {
  return stanza("iq", { type: "get", id: CAPS_IQ_ID, from, to }, [
    elem("query", { xmlns: NS_DISCO_INFO, node: `${caps.node}#${caps.ver}` }),
  ]);
}

function lastItems(service: string, fullJid: string, features: readonly string[]): Output {
  return { kind: "account", bare: service, op: { kind: "resource-caps", fullJid, features } };
}

/**
 * Caps of an available broadcast presence (the presence hook, run before `s.presence` is
 * updated). The user's own service asks before the presence comes back to the resource
 * (`outputs`); after the broadcast the contacts' services ask, or the last items are sent
 * (`after`). Nothing happens when the caps did not change since the last available presence of
 * this resource.
 */
function capsOnPresence(s: Session, el: Element, ctx: Ctx): PresenceVerdict | undefined {
  if (el.attrs.type !== undefined || el.attrs.to !== undefined) return undefined;
  const advertised = capsOf(el);
  const own = bareJid(s)!;
  if (advertised === undefined) return { session: { ...s, caps: undefined } };
  const same = s.caps !== undefined && s.presence !== undefined &&
    s.caps.ver === advertised.ver && s.caps.node === advertised.node;
  if (same) return undefined;
  const features = s.caps?.ver === advertised.ver && s.caps.features !== undefined
    ? s.caps.features
    : ctx.capsFeatures(advertised.ver);
  const services = contactServices(s, ctx);
  if (features === undefined) {
    const to = s.fullJid!;
    // Questions about earlier caps are forgotten with them: only these answers are learned.
    const asked = [own, ...services].map((from) => ({ id: CAPS_IQ_ID, to, from }));
    const caps: ClientCaps = { ...advertised, features, asked };
    return {
      session: { ...s, caps },
      outputs: [{ kind: "send", stanza: question(own, to, caps) }],
      after: services.map((svc) => ({ kind: "send", stanza: question(svc, to, caps) })),
    };
  }
  return {
    session: { ...s, caps: { ...advertised, features } },
    after: [own, ...services].map((svc) => lastItems(svc, s.fullJid!, features)),
  };
}

/**
 * Client caps: no feature of its own to announce (the server's caps are the `caps` module's),
 * only what the user's resources can do, learned from their presence.
 */
export const CLIENT_CAPS: Module = {
  name: "client_caps",
  presence: capsOnPresence,
  // The answer to a PEP service's caps question is the server's, whoever it was sent to.
  outbound: (s, el, ctx) => isCapsAnswer(el) ? { stop: onCapsAnswer(s, el, ctx) } : undefined,
};

/**
 * True for what may be the client's answer to one of our caps questions: those come from bare
 * JIDs, so an answer to a full JID is another client's own caps lookup and passes untouched.
 * {@link onCapsAnswer} decides whether we asked it.
 */
export function isCapsAnswer(el: Element): boolean {
  if (el.name !== "iq" || el.attrs.type !== "result" || el.attrs.id !== CAPS_IQ_ID) return false;
  const to = el.attrs.to;
  if (to !== undefined && parseJid(to)?.resource !== undefined) return false;
  const query = child(el, "query", NS_DISCO_INFO);
  return query !== undefined && (query.attrs.node ?? "").includes("#");
}

/** The question `answer` answers, if we asked it: same id, from the JID asked, to the asker. */
function questionOf(s: Session, answer: Element, node: string): CapsQuestion | undefined {
  const caps = s.caps;
  if (caps?.asked === undefined || node !== `${caps.node}#${caps.ver}`) return undefined;
  const service = answer.attrs.to === undefined ? bareJid(s) : bareJidOf(answer.attrs.to);
  return caps.asked.find((q) =>
    q.id === answer.attrs.id && q.to === answer.attrs.from && q.from === service
  );
}

/**
 * A caps-shaped result from the client. When it answers one of our questions, the shell learns
 * the `ver` (it verifies the hash and bounds the cache) the first time, the session keeps the
 * features, the question is forgotten, and the service that asked sends the last items the
 * resource now wants. Anything else is an iq result like any other: to the user's account or
 * the server it ends here (RFC 6120 §8.2.3), to someone else it is routed.
 */
export function onCapsAnswer(s: Session, el: Element, ctx: Ctx): Step {
  const query = child(el, "query", NS_DISCO_INFO)!;
  const question = questionOf(s, el, query.attrs.node!);
  if (question === undefined) {
    const to = el.attrs.to;
    const ours = to === undefined || to === bareJid(s) || ctx.hosts.includes(to);
    return [s, ours ? [] : [{ kind: "route", stanza: el }]];
  }
  const caps = s.caps!;
  const features = childElements(query, NS_DISCO_INFO)
    .filter((f) => f.name === "feature" && f.attrs.var !== undefined)
    .map((f) => f.attrs.var);
  // The first answer teaches the cache; the other services' copies only tell them.
  const out: Output[] = caps.features === undefined
    ? [{ kind: "caps-learned", ver: caps.ver, query }]
    : [];
  out.push(lastItems(question.from, s.fullJid!, features));
  const asked = caps.asked!.filter((q) => q !== question);
  const next: ClientCaps = asked.length === 0
    ? { node: caps.node, ver: caps.ver, hash: caps.hash, features }
    : { ...caps, features, asked };
  return [{ ...s, caps: next }, out];
}
