/**
 * The session reducer: (session, event, ctx) -> [session', outputs]. It dispatches on the
 * event and the session's state to the module that owns the concern.
 * @module
 */
import { isHibernating, type Roster, type Session } from "../core/session.ts";
import { child, childElements, type Element, withAttrs } from "../xml/element.ts";
import { errorReply } from "../xmpp/errors.ts";
import { normalizeJid, parseJid } from "../xmpp/jid.ts";
import { stripStanzaIds } from "../core/archive.ts";
import { isMamPayload, onMamIq } from "../modules/mam/iq.ts";
import { ACCOUNT_IQ, payloadKey } from "../modules/registry.ts";
import { NS_BIND, NS_CLIENT, NS_SESSION } from "../xmpp/namespaces.ts";
import { onBind } from "./bind.ts";
import {
  blockedInbound,
  BLOCKLIST_REQUEST,
  onBlocklist,
  refuseBlocked,
  withoutBlockedRoutes,
} from "../modules/blocking.ts";
import { onOutboundMessage } from "../modules/carbons.ts";
import { deliver, isCsiNonza, onCsiNonza } from "../modules/csi.ts";
import { destroy } from "./destroy.ts";
import { badRequest, iqProblem, onServerIq } from "./iq.ts";
import { isSasl, onAbort, onAuth, onCredentials, onResponse } from "./sasl.ts";
import { isStartTls, onStartTls, onStreamOpen, onTlsDone } from "./stream.ts";
import { onOutboundPresence } from "../account/presence.ts";
import { isCapsAnswer, onCapsAnswer } from "../modules/client_caps.ts";
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
import type { Ctx, Event, Output, Step } from "../core/types.ts";

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

/** Reduces one event. A destroyed session swallows everything. */
export function reduce(s: Session, ev: Event, ctx: Ctx): Step {
  if (s.destroyed) return [s, []];
  if (isHibernating(s) && FROM_CONNECTION.has(ev.kind)) return [s, []];
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
      return blockedInbound(s, ev.stanza) ?? deliver(s, ev.stanza, ctx);
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
  // XEP-0352 nonzas are not stanzas: handled before the stanza checks, in stream order.
  if (isCsiNonza(el)) return onCsiNonza(s, el);
  // So are XEP-0198's.
  if (isSmNonza(el)) return ended(onSmNonza(s, el, ctx), ctx);
  if (el.xmlns !== NS_CLIENT) {
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

/** True when `jid` is one of our hosts or an account on one of them. */
function isLocal(jid: string, ctx: Ctx): boolean {
  const parsed = parseJid(jid);
  return parsed !== undefined && ctx.hosts.includes(parsed.domain);
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
  // Error replies go to the sender as the server knows it, whatever 'from' the client wrote.
  const sender = withAttrs(raw, { from: s.fullJid });
  if (raw.name === "iq") {
    const problem = iqProblem(raw);
    if (problem !== undefined) {
      const type = raw.attrs.type;
      // An iq without an id cannot be answered usefully, but RFC 6120 §8.2.3 asks for an error.
      if (type === "result" || type === "error") return [s, []];
      return [s, [{ kind: "send", stanza: badRequest(sender, problem) }]];
    }
    if (raw.attrs.type === "get" || raw.attrs.type === "set") {
      const bind = child(raw, "bind", NS_BIND);
      if (bind !== undefined) return onBind(s, sender, bind, ctx);
    }
  }
  let to = raw.attrs.to;
  if (to !== undefined) {
    const normal = normalizeJid(to);
    if (normal === undefined) {
      if (raw.attrs.type === "error") return [s, []];
      return [s, [{ kind: "send", stanza: errorReply(sender, "jid-malformed") }]];
    }
    to = normal;
  }
  // Every from is ours to stamp: no spoofing (RFC 6120 §8.1.2.1).
  // RFC 6120 §4.7.4: the stream's language is the default of every stanza it carries.
  const el = withAttrs(raw, { from: s.fullJid, to, "xml:lang": raw.attrs["xml:lang"] ?? s.lang });
  const bare = `${s.username}@${s.host}`;
  // XEP-0191 §3.6: nothing goes to a JID the user blocked.
  const refused = refuseBlocked(s, el);
  if (refused !== undefined) return refused;
  // XEP-0115: the answer to a PEP service's caps question is the server's, whoever asked.
  if (isCapsAnswer(el)) return onCapsAnswer(s, el, ctx);
  if (el.name === "iq" && (to === undefined || to === s.host || to === bare)) {
    const payload = childElements(el)[0];
    const own = to === undefined || to === bare;
    if (own && payload !== undefined && isRosterQuery(payload) && el.attrs.type !== "result") {
      if (el.attrs.type === "error") return [s, []];
      return onRosterIq(s, el, payload);
    }
    if (
      own && ctx.archiving && payload !== undefined && isMamPayload(payload) &&
      (el.attrs.type === "get" || el.attrs.type === "set")
    ) {
      return onMamIq(s, el, payload);
    }
    if (
      own && payload !== undefined && ACCOUNT_IQ.has(payloadKey(payload)) &&
      (el.attrs.type === "get" || el.attrs.type === "set")
    ) {
      // XEP-0191 §3.2: a resource that asked for the block list is told of its changes.
      const asked = el.attrs.type === "get" && payloadKey(payload) === BLOCKLIST_REQUEST &&
        s.blocklistInterested !== true;
      const next: Session = asked ? { ...s, blocklistInterested: true } : s;
      return [next, [{ kind: "account", bare, op: { kind: "module-iq", iq: el } }]];
    }
    return onServerIq(s, el, ctx, own ? "self" : "host");
  }
  if (el.name === "presence") return withoutBlockedRoutes(s, onOutboundPresence(s, el, ctx));
  // XEP-0359 §5: a client cannot forge the ids our archives hand out. RFC 6120 §10.3: a message
  // without 'to' is handled as if addressed to the sender's own bare JID.
  const message = stripStanzaIds(
    to === undefined ? withAttrs(el, { to: bare }) : el,
    (by) => isLocal(by, ctx),
  );
  // XEP-0280: routed with sent copies for the user's other resources.
  return onOutboundMessage(s, message, ctx.resourcesOf(bare));
}
