/**
 * Presence sent by a user's resource (RFC 6121 §4): broadcast to subscribers and the user's own
 * resources, probes at initial presence, directed presence remembered so that its recipients
 * hear when the resource goes, and subscription requests handed to the account.
 * @module
 */
import { subscriptionTypeOf } from "../core/subscription.ts";
import { contactsWith } from "../core/roster.ts";
import { bareJid, EMPTY_ROSTER, NO_DIRECTED, type Session } from "../core/session.ts";
import { errorReply } from "../xmpp/errors.ts";
import { child, type Element, stanza, text, withAttrs } from "../xml/element.ts";
import { bareJidOf } from "../xmpp/jid.ts";
import { type Ctx, isEnabled, type Module, type Output, type Step } from "../core/types.ts";
import { MODULES, PRESENCE_MODULES } from "../modules/registry.ts";

/** The priority of an available presence, clamped to -128..127 (RFC 6121 §4.7.2.3). */
function priorityOf(el: Element): number {
  const p = child(el, "priority");
  if (p === undefined) return 0;
  const n = Number.parseInt(text(p).trim(), 10);
  return Number.isNaN(n) ? 0 : Math.max(-128, Math.min(127, n));
}

function routeTo(el: Element, to: string): Output {
  return { kind: "route", stanza: withAttrs(el, { to }) };
}

/** The user's other available resources, as the registry sees them now. */
function otherAvailable(s: Session, ctx: Ctx) {
  return ctx.resourcesOf(bareJid(s)!).filter((r) => r.available && r.fullJid !== s.fullJid);
}

/** What the modules' presence hooks made of a presence, and what they add around it. */
interface Hooked {
  readonly session: Session;
  readonly presence: Element;
  readonly before: readonly Output[];
  readonly after: readonly Output[];
}

/** The modules with a presence hook: the server's, or those of `ctx.modules` (tests). */
function presenceModules(ctx: Ctx): readonly Module[] {
  return ctx.modules === undefined || ctx.modules === MODULES
    ? PRESENCE_MODULES
    : ctx.modules.filter((m) => m.presence !== undefined);
}

/**
 * Runs the modules' presence hooks in registry order (XEP-0153 adds the avatar hash, XEP-0115
 * learns the client's caps, XEP-0012 records the logout), each seeing what the ones before it
 * made of the session and the presence. A module that is off takes no part.
 */
function runHooks(s: Session, presence: Element, ctx: Ctx): Hooked {
  let session = s;
  let el = presence;
  const before: Output[] = [];
  const after: Output[] = [];
  for (const m of presenceModules(ctx)) {
    if (!isEnabled(m, ctx)) continue;
    const v = m.presence!(session, el, ctx);
    if (v === undefined) continue;
    session = v.session ?? session;
    el = v.presence ?? el;
    before.push(...v.outputs ?? []);
    after.push(...v.after ?? []);
  }
  return { session, presence: el, before, after };
}

/** Presence from a bound session; `from` is stamped and `to` normalised (or absent). */
export function onOutboundPresence(s: Session, raw: Element, ctx: Ctx): Step {
  const hooked = runHooks(s, raw, ctx);
  const [next, out] = presenceStep(hooked.session, hooked.presence, ctx);
  if (hooked.before.length === 0 && hooked.after.length === 0) return [next, out];
  return [next, [...hooked.before, ...out, ...hooked.after]];
}

/** What presence itself does, once the hooks had their say. */
function presenceStep(s: Session, el: Element, ctx: Ctx): Step {
  const type = el.attrs.type;
  const to = el.attrs.to;
  if (to === undefined) {
    if (type === undefined) return onAvailable(s, el, ctx);
    if (type === "unavailable") return onUnavailable(s, el, ctx);
    return [s, []];
  }
  if (subscriptionTypeOf(type) !== undefined) {
    // RFC 6121 §3: subscription state belongs to the account, whichever resource asked.
    const contact = bareJidOf(to)!;
    const bare = bareJid(s)!;
    return [s, [{
      kind: "account",
      bare,
      op: { kind: "outbound-subscription", stanza: withAttrs(el, { from: bare, to: contact }) },
    }]];
  }
  // A client's probe goes to the contact's account like the server's own (as Prosody does): it
  // answers subscribers only (RFC 6121 §4.3.2), and a removed account answers from its tombstone.
  if (type === "probe") return [s, [{ kind: "route", stanza: el }]];
  if (type === undefined) {
    if (s.directed.has(to)) return [s, [{ kind: "route", stanza: el }]];
    // RFC 6121 §4.6.3 makes the server remember every recipient, to tell it when the resource
    // goes. Past the bound the presence is refused rather than sent unremembered: a recipient
    // that is never told would show the user online for good, and the client hears why.
    if (s.directed.size >= ctx.limits.directedPresences) {
      return [s, [{
        kind: "send",
        stanza: errorReply(el, "resource-constraint", { text: "Too many directed presences" }),
      }]];
    }
    // Copied only when a new JID joins, and never past the bound.
    const directed = new Set(s.directed).add(to);
    return [{ ...s, directed }, [{ kind: "route", stanza: el }]];
  }
  if (type === "unavailable") {
    if (!s.directed.has(to)) return [s, [{ kind: "route", stanza: el }]];
    const directed = new Set(s.directed);
    directed.delete(to);
    return [{ ...s, directed: directed.size === 0 ? NO_DIRECTED : directed }, [{
      kind: "route",
      stanza: el,
    }]];
  }
  return [s, [{ kind: "route", stanza: el }]];
}

/** Initial or updated available presence (RFC 6121 §4.2.2, §4.4.2). */
function onAvailable(s: Session, el: Element, ctx: Ctx): Step {
  const initial = s.presence === undefined;
  const roster = s.roster ?? EMPTY_ROSTER;
  const priority = priorityOf(el);
  const next: Session = { ...s, presence: el, priority, presenceAt: ctx.now() };
  const out: Output[] = [];
  // 1. To every contact subscribed to the user's presence.
  for (const contact of contactsWith(roster, ["from", "both"])) out.push(routeTo(el, contact));
  // 2. To the user's other available resources, and back to this one.
  const others = otherAvailable(s, ctx);
  for (const r of others) out.push(routeTo(el, r.fullJid));
  out.push({ kind: "send", stanza: el });
  if (initial) {
    // 3. Probe the contacts the user is subscribed to, answered to this resource.
    for (const contact of contactsWith(roster, ["to", "both"])) {
      out.push({
        kind: "route",
        stanza: stanza("presence", { type: "probe", from: s.fullJid, to: contact }),
      });
    }
    // 4. Learn the presence of the user's other resources.
    for (const r of others) {
      if (r.presence !== undefined) {
        out.push({ kind: "send", stanza: withAttrs(r.presence, { to: s.fullJid }) });
      }
    }
    // 5. Pending subscription requests and offline messages.
    out.push({
      kind: "account",
      bare: bareJid(s)!,
      op: { kind: "initial-presence", fullJid: s.fullJid!, priority },
    });
  }
  // 6. The hooks' `after` outputs follow (onOutboundPresence): XEP-0115 questions or items.
  return [next, out];
}

/** Everyone who must hear that this resource is gone (RFC 6121 §4.5.2, §4.6.3). */
function unavailableRecipients(s: Session, ctx: Ctx): string[] {
  // A Set: each once, in order, without a scan per recipient.
  const targets = new Set<string>();
  if (s.presence !== undefined) {
    for (const c of contactsWith(s.roster ?? EMPTY_ROSTER, ["from", "both"])) targets.add(c);
    for (const r of otherAvailable(s, ctx)) targets.add(r.fullJid);
  }
  for (const j of s.directed) targets.add(j);
  return [...targets];
}

function onUnavailable(s: Session, el: Element, ctx: Ctx): Step {
  const out: Output[] = unavailableRecipients(s, ctx).map((to) => routeTo(el, to));
  if (s.presence !== undefined) out.push({ kind: "send", stanza: el });
  return [{ ...s, presence: undefined, directed: NO_DIRECTED }, out];
}

/**
 * The unavailable presence routes of a session that ends without saying so itself, with what
 * the presence hooks add to it (XEP-0012: the logout, without status).
 */
export function goodbyeOutputs(s: Session, ctx: Ctx): Output[] {
  if (s.fullJid === undefined) return [];
  const hooked = runHooks(s, stanza("presence", { type: "unavailable", from: s.fullJid }), ctx);
  const el = hooked.presence;
  return [
    ...hooked.before,
    ...unavailableRecipients(hooked.session, ctx).map((to) => routeTo(el, to)),
    ...hooked.after,
  ];
}
