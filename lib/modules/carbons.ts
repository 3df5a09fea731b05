/**
 * Message carbons (XEP-0280): a resource that enabled them gets a copy of every chat message
 * its user sends or receives on another resource, wrapped in `<sent/>` or `<received/>`. The
 * decisions are pure: which messages are copied (§6), to which resources, and how the copy
 * looks (§7, §8). Everything plugs in through the module contract, so nothing outside this
 * file and its registry line knows of carbons: `selfIq` turns them on and off (the flag lives in
 * the session's module state, `s.modules.carbons`, which the registry's resource views carry),
 * `outbound` refuses client-made copies and adds sent copies, `delivery` removes `<private/>`
 * and adds received copies.
 * @module
 */
import { bareJid, type Session } from "../core/session.ts";
import { child, elem, type Element, stanza, withChildren } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import type { Ctx, Module, OutboundVerdict, ResourceView, Step } from "../core/types.ts";
import { NS_CARBONS, NS_FORWARD, NS_HINTS } from "../xmpp/namespaces.ts";

/** True when the message carries a carbon (`<sent/>` or `<received/>`) itself. */
function isCarbon(el: Element): boolean {
  return child(el, "sent", NS_CARBONS) !== undefined ||
    child(el, "received", NS_CARBONS) !== undefined;
}

/**
 * Whether a message is copied (XEP-0280 §6): chat, normal with a body, and error bounces of
 * copied messages (errors from a bare JID, since chat sent to a bare JID bounces from there);
 * never a message marked private or no-copy, and never a carbon itself (no loops).
 * `outbound`: the user sent it (the error rule is for received messages only).
 */
export function isCopied(el: Element, outbound: boolean): boolean {
  if (el.name !== "message" || isCarbon(el)) return false;
  if (child(el, "private", NS_CARBONS) !== undefined) return false;
  if (child(el, "no-copy", NS_HINTS) !== undefined) return false;
  const type = el.attrs.type ?? "normal";
  if (type === "chat") return true;
  if (type === "normal") return child(el, "body") !== undefined;
  if (type === "error" && !outbound) return !(el.attrs.from ?? "").includes("/");
  return false;
}

/** The carbon of `original` for one resource (XEP-0280 §7, §8). */
function carbon(
  kind: "sent" | "received",
  original: Element,
  bare: string,
  to: string,
): Element {
  return stanza("message", { from: bare, to, type: original.attrs.type }, [
    elem(kind, { xmlns: NS_CARBONS }, [elem("forwarded", { xmlns: NS_FORWARD }, [original])]),
  ]);
}

/** This module's name, the key of its state in `Session.modules` and `ResourceView.modules`. */
const NAME = "carbons";

/** True when the session (or resource view) enabled carbons. */
function enabledIn(modules: Readonly<Record<string, unknown>> | undefined): boolean {
  return modules?.[NAME] === true;
}

/** The user's carbons-enabled available resources, except the ones named. */
function enabledExcept(resources: readonly ResourceView[], except: readonly string[]) {
  return resources.filter((r) =>
    enabledIn(r.modules) && r.available && !except.includes(r.fullJid)
  );
}

/**
 * Received copies of a message delivered to some of the user's resources (`deliveredTo`): every
 * other carbons-enabled available resource gets one. A message to the bare JID that already
 * reached several resources is not copied to those.
 */
export function receivedCarbons(
  message: Element,
  bare: string,
  deliveredTo: readonly string[],
  resources: readonly ResourceView[],
): { readonly to: string; readonly stanza: Element }[] {
  if (!isCopied(message, false)) return [];
  return enabledExcept(resources, deliveredTo).map((r) => ({
    to: r.fullJid,
    stanza: carbon("received", message, bare, r.fullJid),
  }));
}

/**
 * XEP-0280 §7 (receiving side): the recipient's server removes `<private/>` before delivery,
 * since it concerns only the sender's server.
 */
function withoutPrivate(message: Element): Element {
  if (child(message, "private", NS_CARBONS) === undefined) return message;
  return withChildren(
    message,
    message.children.filter((c) =>
      typeof c === "string" || !(c.name === "private" && c.xmlns === NS_CARBONS)
    ),
  );
}

/**
 * The outbound hook: a message the user's session sends (from stamped, `to` set). Refused when
 * it carries a carbon (only the server forwards those; XEP-0280 §11), else it goes on with a
 * sent copy for each of the user's other carbons-enabled resources, routed after it (past the
 * sender's archive, so that the copies keep the message's order).
 */
function onOutbound(s: Session, message: Element, ctx: Ctx): OutboundVerdict | undefined {
  if (message.name !== "message") return undefined;
  if (isCarbon(message)) {
    if (message.attrs.type === "error") return { stop: [s, []] };
    return {
      stop: [s, [{
        kind: "send",
        stanza: errorReply(message, "not-acceptable", {
          text: "Carbons are forwarded by the server, not sent by clients",
        }),
      }]],
    };
  }
  const bare = bareJid(s)!;
  // A message to one of the user's own resources is received there and copied as such.
  if (!isCopied(message, true) || isOwn(message.attrs.to, bare)) return undefined;
  const then = enabledExcept(ctx.resourcesOf(bare), [s.fullJid!]).map((r) =>
    carbon("sent", message, bare, r.fullJid)
  );
  return then.length === 0 ? undefined : { then };
}

function isOwn(to: string | undefined, bare: string): boolean {
  if (to === undefined) return false;
  // Compared in place: no `bare + "/"` string made for every message.
  const n = bare.length;
  return to.length === n
    ? to === bare
    : to.length > n && to.charCodeAt(n) === 0x2f && to.startsWith(bare);
}

function setCarbons(s: Session, iq: Element, on: boolean): Step {
  if (iq.attrs.type !== "set") {
    return [s, [{ kind: "send", stanza: errorReply(iq, "bad-request") }]];
  }
  const next: Session = { ...s, modules: { ...s.modules, [NAME]: on } };
  return [next, [{ kind: "send", stanza: iqResult(iq) }]];
}

/** XEP-0280 §4: enable and disable, sent to the user's own account. */
export const CARBONS: Module = {
  name: NAME,
  hostFeatures: [NS_CARBONS],
  outbound: onOutbound,
  delivery: { rewrite: withoutPrivate, copies: receivedCarbons },
  selfIq: {
    [`${NS_CARBONS} enable`]: (s, iq) => setCarbons(s, iq, true),
    [`${NS_CARBONS} disable`]: (s, iq) => setCarbons(s, iq, false),
  },
};
