/**
 * Client state indication (XEP-0352). After authentication the server offers `<csi/>`; the
 * client then says `<inactive/>` or `<active/>` (nonzas, not stanzas: no reply). While it is
 * inactive, stanzas routed to it are held and collapsed instead of sent:
 * - a presence update (available or unavailable) keeps only the latest per sender full JID;
 * - a message that carries only a chat state (XEP-0085) keeps only the latest per sender;
 * - anything else (a message with a body or any other payload, an iq, a subscription request,
 *   an error) matters now: the held stanzas are sent first, in order, then it.
 * Going active flushes the queue; so does outgrowing its bounds: `MAX_CSI_HELD` stanzas or
 * `limits.csiBytes` bytes (each stanza measured once, when it is held).
 *
 * Since whatever matters flushes at once, the queue only ever holds presence updates and chat
 * states, which the next ones supersede. When the session ends they are dropped like the unsent
 * bytes of a socket buffer: the destroy path does not send them.
 * @module
 */
import type { CsiHold, Session } from "../core/session.ts";
import { childElements, elem, type Element } from "../xml/element.ts";
import { NS_CHATSTATES, NS_CLIENT, NS_CSI, NS_HINTS, NS_SID } from "../xmpp/namespaces.ts";
import { stanzaBytes } from "../core/stanza_size.ts";
import type { Ctx, Module, Output, Step } from "../core/types.ts";

/** Stanzas held for an inactive client; past this the whole queue is sent. */
export const MAX_CSI_HELD = 500;

const CHAT_STATES = new Set(["active", "composing", "paused", "inactive", "gone"]);

/**
 * XEP-0352 §4.1: offered in the stream features after authentication. No disco feature. The
 * nonzas turn holding on and off; the inbound hook holds while the client is inactive (and
 * passes everything on, to be written at once, while it is active).
 */
export const CSI: Module = {
  name: "csi",
  authedFeatures: () => [elem("csi", { xmlns: NS_CSI })],
  nonza: (s, el) => isCsiNonza(el) ? onCsiNonza(s, el) : undefined,
  inbound: (s, stanza, ctx) => s.csi === undefined ? undefined : deliver(s, stanza, ctx),
};

/** True for the `<active/>` and `<inactive/>` nonzas. */
function isCsiNonza(el: Element): boolean {
  return el.xmlns === NS_CSI && (el.name === "active" || el.name === "inactive");
}

function sendAll(held: readonly Element[]): Output[] {
  return held.map((stanza) => ({ kind: "send", stanza }));
}

/** `<inactive/>` starts holding; `<active/>` sends what was held. Repeating one changes nothing. */
function onCsiNonza(s: Session, el: Element): Step {
  if (el.name === "inactive") {
    return s.csi !== undefined ? [s, []] : [{ ...s, csi: NOTHING_HELD }, []];
  }
  if (s.csi === undefined) return [s, []];
  return [{ ...s, csi: undefined }, sendAll(s.csi.held)];
}

/** Children a chat-state notification may carry and still be only a chat state. */
function isMetadata(c: Element): boolean {
  return (c.xmlns === NS_CLIENT && c.name === "thread") || c.xmlns === NS_HINTS ||
    c.xmlns === NS_SID;
}

function isChatStateOnly(el: Element): boolean {
  let state = false;
  for (const c of childElements(el)) {
    if (c.xmlns === NS_CHATSTATES && CHAT_STATES.has(c.name)) state = true;
    else if (!isMetadata(c)) return false;
  }
  return state;
}

/**
 * What a held stanza may be collapsed with (a later stanza with the same key supersedes it), or
 * undefined when the stanza matters now.
 */
function collapseKey(el: Element): string | undefined {
  const type = el.attrs.type;
  const from = el.attrs.from ?? "";
  if (el.name === "presence" && (type === undefined || type === "unavailable")) {
    return `presence ${from}`;
  }
  if (el.name === "message" && type !== "error" && isChatStateOnly(el)) return `chatstate ${from}`;
  return undefined;
}

const NOTHING_HELD: CsiHold = { held: [] };

/** The sizes of the held stanzas: as recorded, or measured when a record lacks them. */
function sizesOf(csi: CsiHold): readonly number[] {
  const sizes = csi.sizes ?? [];
  return sizes.length === csi.held.length ? sizes : csi.held.map(stanzaBytes);
}

/** A stanza routed to this bound session: sent now, or held while the client is inactive. */
function deliver(s: Session, stanza: Element, ctx: Ctx): Step {
  const csi = s.csi;
  if (csi === undefined) return [s, [{ kind: "send", stanza }]];
  const key = collapseKey(stanza);
  if (key === undefined) return [{ ...s, csi: NOTHING_HELD }, sendAll([...csi.held, stanza])];
  // The superseded one goes and the new one joins at the end, so what is eventually sent keeps
  // the order in which the survivors arrived.
  const before = sizesOf(csi);
  const held: Element[] = [];
  const sizes: number[] = [];
  let bytes = 0;
  csi.held.forEach((h, i) => {
    if (collapseKey(h) === key) return;
    held.push(h);
    sizes.push(before[i]);
    bytes += before[i];
  });
  const size = stanzaBytes(stanza);
  held.push(stanza);
  sizes.push(size);
  bytes += size;
  if (held.length > MAX_CSI_HELD || bytes > ctx.limits.csiBytes) {
    return [{ ...s, csi: NOTHING_HELD }, sendAll(held)];
  }
  return [{ ...s, csi: { held, sizes, bytes } }, []];
}
