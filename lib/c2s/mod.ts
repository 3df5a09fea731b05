/**
 * The session reducer: (session, event, ctx) -> [session', outputs]. It dispatches on the
 * event and the session's state: the stream, authentication, binding, the roster and stream
 * management are c2s's own; everything else is found through the module registry's hooks
 * (`outbound`, `inbound`, `nonza`, iq handlers), so that a module plugs in without a line here.
 * @module
 */
import { isHibernating, phaseOf, type Roster, type Session } from "../core/session.ts";
import { child, childElements, type Element, withAttrs } from "../xml/element.ts";
import { errorReply } from "../xmpp/errors.ts";
import { normalizeJid } from "../xmpp/jid.ts";
import { registryOf } from "../modules/registry.ts";
import { NS_BIND, NS_CLIENT, NS_SESSION } from "../xmpp/namespaces.ts";
import { onBind } from "./bind.ts";
import { onBlocklist } from "../modules/blocking.ts";
import { destroy } from "./destroy.ts";
import { badRequest, iqProblem, onServerIq } from "./iq.ts";
import { isSasl, onAbort, onAuth, onCredentials, onResponse } from "./sasl.ts";
import { isStartTls, onStartTls, onStreamOpen, onTlsDone } from "./stream.ts";
import { onOutboundPresence } from "../account/presence.ts";
import { isRegisterIq, onRegistrationResult, onUnauthedRegister } from "../modules/register.ts";
import { isRosterQuery, onRosterIq } from "./roster.ts";
import {
  isSmNonza,
  onResumeAnswer,
  onSmNonza,
  onTakenOver,
  type SmEnd,
  trackStanzas,
} from "../modules/stream_management.ts";
import { type Ctx, type Event, isEnabled, type Output, type Step } from "../core/types.ts";

/** Events that come from the connection itself: a hibernating session has none (XEP-0198). */
const FROM_CONNECTION: ReadonlySet<Event["kind"]> = new Set([
  "stream-open",
  "stanza",
  "stream-close",
  "parse-error",
  "tls-done",
  "disconnected",
  "auth-timeout",
  "idle-timeout",
]);

/** Reduces one event. An ended session swallows everything, a hibernating one its socket's. */
export function reduce(s: Session, ev: Event, ctx: Ctx): Step {
  const phase = phaseOf(s);
  if (phase === "ended") return [s, []];
  if (phase === "hibernating" && FROM_CONNECTION.has(ev.kind)) return [s, []];
  // XEP-0198: every reduction's stanzas are counted in one place.
  return ended(trackStanzas(s, ev, reduceEvent(s, ev, ctx), ctx), ctx);
}

/** A stream management violation ends the session through the destroy path. */
function ended(r: Step | SmEnd, ctx: Ctx): Step {
  if (!("end" in r)) return r;
  const [d, out] = destroy(r.session, ctx, { writable: true, error: r.end });
  return [d, [...r.before, ...out]];
}

function reduceEvent(s: Session, ev: Event, ctx: Ctx): Step {
  switch (ev.kind) {
    case "stream-open":
      if (!s.notopen) {
        return destroy(s, ctx, {
          writable: true,
          error: { condition: "not-well-formed", text: "A second stream header" },
        });
      }
      return onStreamOpen(s, ev, ctx);
    case "stanza":
      return onStanza(s, ev.stanza, ctx);
    case "stream-close":
      return destroy(s, ctx, { writable: true });
    case "parse-error":
      return destroy(s, ctx, { writable: true, error: { condition: ev.condition, text: ev.text } });
    case "tls-done":
      return onTlsDone(s, ev.channelBindings);
    case "credentials-loaded":
      return onCredentials(s, ev.username, ev.credentials, ctx);
    case "roster-loaded":
      return onRosterLoaded(s, ev.roster, ctx);
    case "inbound":
      if (s.fullJid === undefined) return [s, []];
      return onInbound(s, ev.stanza, ctx);
    case "replaced":
      return destroy(s, ctx, {
        writable: true,
        error: { condition: "conflict", text: "Replaced by a new session with the same resource" },
      });
    case "auth-timeout":
      if (s.type === "c2s" && s.fullJid !== undefined) return [s, []];
      return destroy(s, ctx, {
        writable: true,
        error: { condition: "connection-timeout", text: "Authentication took too long" },
      });
    case "idle-timeout":
      return destroy(s, ctx, {
        writable: true,
        error: { condition: "connection-timeout", text: "Idle for too long" },
      });
    case "disconnected":
      // A resumable session hibernates instead (XEP-0198 §5): the destroy path decides.
      return destroy(s, ctx, { writable: false, dropped: true });
    case "hibernation-timeout":
      return isHibernating(s) ? destroy(s, ctx, { writable: false }) : [s, []];
    case "sm-resume-answer":
      return ended(onResumeAnswer(s, ev), ctx);
    case "sm-taken-over":
      return onTakenOver(s);
    case "shutdown":
      return destroy(s, ctx, {
        writable: true,
        error: { condition: "system-shutdown", text: "The server is shutting down" },
      });
    case "avatar-hash":
      return [{ ...s, avatarHash: ev.hash }, []];
    case "blocklist":
      return onBlocklist(s, ev.blocklist);
    case "registration-result":
      return onRegistrationResult(s, ev.iq, ev.outcome);
    case "account-removed": {
      // XEP-0077 §3.2: the requester gets its result, then every session of the account ends.
      if (s.type !== "c2s") return [s, []];
      const [next, out] = destroy(s, ctx, {
        writable: true,
        error: { condition: "not-authorized", text: "Account removed" },
      });
      return [next, ev.reply === undefined ? out : [{ kind: "send", stanza: ev.reply }, ...out]];
    }
  }
}

function notAuthorized(s: Session, ctx: Ctx, text: string): Step {
  return destroy(s, ctx, { writable: true, error: { condition: "not-authorized", text } });
}

function onStanza(s: Session, el: Element, ctx: Ctx): Step {
  if (s.type === "c2s_unauthed") {
    if (isStartTls(el)) return onStartTls(s, ctx);
    if (isSasl(el)) {
      switch (el.name) {
        case "auth":
          return onAuth(s, el, ctx);
        case "response":
          return onResponse(s, el);
        case "abort":
          return onAbort(s);
      }
    }
    // XEP-0077: registration is the one iq allowed before authentication (under TLS if required).
    if (isRegisterIq(el) && (s.secure || !ctx.requireEncryption)) {
      const problem = iqProblem(el);
      if (problem === undefined) return onUnauthedRegister(s, el, ctx);
      return el.attrs.type === "result" || el.attrs.type === "error"
        ? [s, []]
        : [s, [{ kind: "send", stanza: badRequest(el, problem) }]];
    }
    // Nothing but negotiation is allowed before authentication (RFC 6120 §6.3.2, §5.3.1).
    if (!s.secure && ctx.requireEncryption) {
      return destroy(s, ctx, {
        writable: true,
        error: { condition: "policy-violation", text: "Encryption is required (STARTTLS)" },
      });
    }
    return notAuthorized(s, ctx, "Authenticate first");
  }
  if (el.xmlns !== NS_CLIENT) {
    // Nonzas are not stanzas: handled before the stanza checks, in stream order. A module's
    // (XEP-0352 csi) through its hook; XEP-0198's by name, since stream management is part of
    // c2s (it counts every reduction's stanzas and may end the session through destroy).
    for (const m of registryOf(ctx).nonza) {
      const step = isEnabled(m, ctx) ? m.nonza(s, el, ctx) : undefined;
      if (step !== undefined) return step;
    }
    if (isSmNonza(el)) return ended(onSmNonza(s, el, ctx), ctx);
    return destroy(s, ctx, {
      writable: true,
      error: { condition: "unsupported-stanza-type", text: `Unknown element <${el.name}/>` },
    });
  }
  if (el.name !== "message" && el.name !== "presence" && el.name !== "iq") {
    return destroy(s, ctx, {
      writable: true,
      error: { condition: "unsupported-stanza-type", text: `Unknown stanza <${el.name}/>` },
    });
  }
  if (s.fullJid === undefined) return onUnbound(s, el, ctx);
  return onBoundStanza(s, el, ctx);
}

/** Before binding only the bind and session iqs are allowed. */
function onUnbound(s: Session, el: Element, ctx: Ctx): Step {
  if (el.name === "iq") {
    const bind = child(el, "bind", NS_BIND);
    if (bind !== undefined) return onBind(s, el, bind, ctx);
    if (child(el, "session", NS_SESSION) !== undefined) {
      return onServerIq(s, el, ctx, el.attrs.to === undefined ? "self" : "host");
    }
  }
  return notAuthorized(s, ctx, "Bind a resource first");
}

/** Stanzas held while the roster loads; past this the client is flooding. */
const MAX_HELD = 100;

/** The roster arrived (after binding) or changed: replay what waited for it. */
function onRosterLoaded(s: Session, roster: Roster, ctx: Ctx): Step {
  const first = s.roster === undefined;
  let next: Session = { ...s, roster, held: [] };
  if (!first || s.held.length === 0) return [next, []];
  const out: Output[] = [];
  for (const el of s.held) {
    const [after, more] = onBoundStanza(next, el, ctx);
    next = after;
    out.push(...more);
    if (next.destroyed) break;
  }
  return [next, out];
}

function onBoundStanza(s: Session, raw: Element, ctx: Ctx): Step {
  if (s.roster === undefined) {
    // Presence needs the roster; everything waits for it so that order is kept.
    if (s.held.length >= MAX_HELD) {
      return destroy(s, ctx, {
        writable: true,
        error: { condition: "resource-constraint", text: "Too many stanzas before the roster" },
      });
    }
    return [{ ...s, held: [...s.held, raw] }, []];
  }
  if (raw.name === "iq") {
    const problem = iqProblem(raw);
    if (problem !== undefined) {
      const type = raw.attrs.type;
      // An iq without an id cannot be answered usefully, but RFC 6120 §8.2.3 asks for an error.
      if (type === "result" || type === "error") return [s, []];
      return [s, [{ kind: "send", stanza: badRequest(asSender(raw, s), problem) }]];
    }
    if (raw.attrs.type === "get" || raw.attrs.type === "set") {
      const bind = child(raw, "bind", NS_BIND);
      if (bind !== undefined) return onBind(s, asSender(raw, s), bind, ctx);
    }
  }
  let to = raw.attrs.to;
  if (to !== undefined) {
    const normal = normalizeJid(to);
    if (normal === undefined) {
      if (raw.attrs.type === "error") return [s, []];
      return [s, [{ kind: "send", stanza: errorReply(asSender(raw, s), "jid-malformed") }]];
    }
    to = normal;
  }
  // Every from is ours to stamp: no spoofing (RFC 6120 §8.1.2.1).
  // RFC 6120 §4.7.4: the stream's language is the default of every stanza it carries.
  const stamped = withAttrs(raw, {
    from: s.fullJid,
    to,
    "xml:lang": raw.attrs["xml:lang"] ?? s.lang,
  });
  const bare = `${s.username}@${s.host}`;
  // RFC 6120 §10.3: a message without 'to' is handled as if addressed to the sender's own bare
  // JID (an iq without one is to the account; presence without one is a broadcast).
  const addressed = raw.name === "message" && to === undefined
    ? withAttrs(stamped, { to: bare })
    : stamped;
  // The modules' outbound hooks, in registry order: each may stop the stanza (an error reply),
  // change it, change the session, or add stanzas to route after it.
  const passed = runOutbound(s, addressed, ctx);
  if ("stop" in passed) return passed.stop;
  const [after, out] = dispatchOutbound(passed.session, passed.stanza, to, bare, ctx, passed.then);
  return [after, passed.outputs.length === 0 ? out : [...passed.outputs, ...out]];
}

/**
 * The stanza as error replies see it: from the sender as the server knows it, whatever 'from'
 * the client wrote (made only when needed: most stanzas are not answered here).
 */
function asSender(raw: Element, s: Session): Element {
  return withAttrs(raw, { from: s.fullJid });
}

/** What the outbound hooks left of a stanza: stopped, or going on as changed. */
type Outbound =
  | { readonly stop: Step }
  | {
    readonly session: Session;
    readonly stanza: Element;
    readonly outputs: readonly Output[];
    readonly then: readonly Element[];
  };

function runOutbound(s: Session, el: Element, ctx: Ctx): Outbound {
  let session = s;
  let stanza = el;
  const outputs: Output[] = [];
  const then: Element[] = [];
  for (const m of registryOf(ctx).outbound) {
    if (!isEnabled(m, ctx)) continue;
    const verdict = m.outbound(session, stanza, ctx);
    if (verdict === undefined) continue;
    if ("stop" in verdict) {
      const [next, out] = verdict.stop;
      return { stop: [next, outputs.length === 0 ? out : [...outputs, ...out]] };
    }
    session = verdict.session ?? session;
    stanza = verdict.stanza ?? stanza;
    outputs.push(...(verdict.outputs ?? []));
    then.push(...(verdict.then ?? []));
  }
  return { session, stanza, outputs, then };
}

/**
 * A stanza the hooks let through (`to` as the client wrote it, normalised): c2s's own (the
 * roster), the registry's iq handlers, presence, or routed. `then` follow a routed message
 * past the sender's archive; after anything else they are routed after its outputs.
 */
function dispatchOutbound(
  s: Session,
  el: Element,
  to: string | undefined,
  bare: string,
  ctx: Ctx,
  then: readonly Element[],
): Step {
  if (el.name === "message") {
    const route = { kind: "route" as const, stanza: el };
    return [s, [then.length === 0 ? route : { ...route, then }]];
  }
  const [next, out] = dispatchOther(s, el, to, bare, ctx);
  if (then.length === 0) return [next, out];
  return [next, [...out, ...then.map((stanza): Output => ({ kind: "route", stanza }))]];
}

function dispatchOther(
  s: Session,
  el: Element,
  to: string | undefined,
  bare: string,
  ctx: Ctx,
): Step {
  if (el.name === "iq" && (to === undefined || to === s.host || to === bare)) {
    const payload = childElements(el)[0];
    const own = to === undefined || to === bare;
    // The roster is c2s's own (RFC 6121 §2): it waits for the account's roster in order.
    if (own && payload !== undefined && isRosterQuery(payload) && el.attrs.type !== "result") {
      if (el.attrs.type === "error") return [s, []];
      return onRosterIq(s, el, payload);
    }
    return onServerIq(s, el, ctx, own ? "self" : "host");
  }
  // Presence is the account's and the presence hooks'; what it routes passes the modules'
  // filters (XEP-0191: no broadcast or probe to a blocked JID).
  if (el.name === "presence") {
    const [next, out] = onOutboundPresence(s, el, ctx);
    let routed = out;
    for (const m of registryOf(ctx).presenceRoutes) {
      if (isEnabled(m, ctx)) routed = m.presenceRoutes(s, routed);
    }
    return [next, routed];
  }
  // An iq to someone else: routed.
  return [s, [{ kind: "route", stanza: el }]];
}

/**
 * A stanza routed to this bound session: the modules' inbound hooks in registry order, the
 * first that takes it decides (XEP-0191 drops, XEP-0352 holds); else it is written now.
 */
function onInbound(s: Session, stanza: Element, ctx: Ctx): Step {
  for (const m of registryOf(ctx).inbound) {
    const step = isEnabled(m, ctx) ? m.inbound(s, stanza, ctx) : undefined;
    if (step !== undefined) return step;
  }
  return [s, [{ kind: "send", stanza }]];
}
