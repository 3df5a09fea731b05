/**
 * Resource binding (RFC 6120 §7) and the legacy session establishment (RFC 3921 §3, kept as a
 * no-op per RFC 6121 Appendix E).
 * @module
 */
import type { Session } from "../core/session.ts";
import { child, elem, type Element, text } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { prepResourcepart } from "../xmpp/jid.ts";
import { NS_BIND } from "../xmpp/namespaces.ts";
import type { Ctx, Step } from "../core/types.ts";

/** `<iq type="set"><bind/></iq>` from an authenticated, unbound session. */
export function onBind(s: Session, iq: Element, bind: Element, ctx: Ctx): Step {
  if (iq.attrs.type !== "set") {
    return [s, [{ kind: "send", stanza: errorReply(iq, "bad-request") }]];
  }
  if (s.fullJid !== undefined) {
    // One resource per stream (RFC 6120 §7.7.2.2 leaves multiple bindings to policy).
    return [s, [{ kind: "send", stanza: errorReply(iq, "not-allowed") }]];
  }
  const requested = child(bind, "resource", NS_BIND);
  let resource: string;
  if (requested === undefined || text(requested).trim() === "") {
    resource = ctx.newId();
  } else {
    const prepped = prepResourcepart(text(requested));
    // RFC 6120 §7.7.2.1: a resource that cannot be processed is bad-request.
    if (prepped === undefined) {
      return [s, [{
        kind: "send",
        stanza: errorReply(iq, "bad-request", { text: "Invalid resource" }),
      }]];
    }
    resource = prepped;
  }
  const fullJid = `${s.username}@${s.host}/${resource}`;
  // RFC 6120 §7.6.2.1: an account may not bind more than `limits.resourcesPerAccount` resources
  // (hibernating ones included, they are still bound); replacing one of them adds none.
  const others = ctx.resourcesOf(`${s.username}@${s.host}`);
  if (
    others.length >= ctx.limits.resourcesPerAccount && !others.some((r) => r.fullJid === fullJid)
  ) {
    return [s, [{
      kind: "send",
      stanza: errorReply(iq, "resource-constraint", {
        type: "wait",
        text: "Too many resources are bound for this account",
      }),
    }]];
  }
  const reply = iqResult(
    { ...iq, attrs: { id: iq.attrs.id } },
    elem("bind", { xmlns: NS_BIND }, [elem("jid", {}, [fullJid])]),
  );
  return [{ ...s, resource, fullJid }, [
    // Registering first replaces an older session with this JID (RFC 6120 §7.7.2.2 case 1)
    // before the client hears it is bound.
    { kind: "bind", fullJid },
    { kind: "send", stanza: reply },
    // The account owns the roster: it answers the bound session with roster-loaded.
    { kind: "account", bare: `${s.username}@${s.host}`, op: { kind: "session-bound", fullJid } },
  ]];
}
