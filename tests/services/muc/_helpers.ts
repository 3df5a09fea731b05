/**
 * Shared pieces of the MUC reducer tests: a deterministic context, stanzas written as XML, and
 * outputs shown as canonical XML (attributes sorted, since their order means nothing), so that
 * a test states the exact stanzas a transition sends, in order.
 */
import { type Element, type XmlNode } from "../../../lib/xml/element.ts";
import { createStreamParser } from "../../../lib/xml/parser.ts";
import {
  DEFAULT_MUC_LIMITS,
  type MucCtx,
  reduceRoom,
  type Room,
  type RoomOutput,
} from "../../../lib/services/muc/mod.ts";
import { NS_CLIENT } from "../../../lib/xmpp/namespaces.ts";

export const SERVICE = "conference.localhost";
export const ROOM = `room@${SERVICE}`;
export const NOW = Date.UTC(2025, 0, 1, 12, 0, 0);
export const ROMEO = "romeo@localhost/r1";
export const JULIET = "juliet@localhost/j1";
export const ROSALINE = "rosaline@localhost/s1";
export const ADMIN = "admin@localhost/a1";

/** A context with fixed time, counting ids, and readable occupant-ids. */
export function mucCtx(over: Partial<MucCtx> = {}): MucCtx {
  let n = 0;
  return {
    domain: SERVICE,
    now: () => NOW,
    newId: () => `id${++n}`,
    limits: DEFAULT_MUC_LIMITS,
    creation: "local",
    admins: new Set(["admin@localhost"]),
    isLocal: (jid) => /^[^@/]*@?localhost(\/|$)/.test(jid),
    archiving: true,
    occupantId: (_room, bare) => `oid-${bare.split("@")[0]}`,
    ...over,
  };
}

/** Parses one stanza (or several) written as XML in the client namespace. */
export function xml(s: string): Element {
  const all = xmls(s);
  if (all.length !== 1) throw new Error(`expected one stanza, got ${all.length}`);
  return all[0];
}

/** Parses stanzas written as XML; whitespace between elements is dropped. */
export function xmls(s: string): Element[] {
  const p = createStreamParser({ maxStanzaBytes: 1 << 20 });
  const head =
    `<stream:stream xmlns="${NS_CLIENT}" xmlns:stream="http://etherx.jabber.org/streams">`;
  const out: Element[] = [];
  for (const e of p.push(new TextEncoder().encode(head + s))) {
    if (e.kind === "stanza") out.push(trim(e.stanza));
    else if (e.kind === "error") throw new Error(`${e.condition}: ${e.text}`);
  }
  return out;
}

function trim(el: Element): Element {
  const children: XmlNode[] = [];
  for (const c of el.children) {
    if (typeof c !== "string") children.push(trim(c));
    else if (c.trim() !== "") children.push(c);
  }
  return { ...el, children };
}

function escape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(
    /"/g,
    "&quot;",
  );
}

/** Canonical XML: namespaces declared where they change, attributes sorted. */
export function canon(el: Element, parentNs = NS_CLIENT): string {
  // "" is only for detached elements: anything the room sends has its namespace resolved.
  if (el.xmlns === "") throw new Error(`<${el.name}> without a namespace`);
  let s = `<${el.name}`;
  if (el.xmlns !== parentNs) s += ` xmlns="${escape(el.xmlns)}"`;
  for (const k of Object.keys(el.attrs).sort()) s += ` ${k}="${escape(el.attrs[k])}"`;
  // An empty text node writes `<value></value>`, the same XML as `<value/>`.
  if (el.children.every((c) => c === "")) return s + "/>";
  s += ">";
  for (const c of el.children) s += typeof c === "string" ? escape(c) : canon(c, el.xmlns);
  return `${s}</${el.name}>`;
}

/** The canonical form of stanzas written as XML. */
export function expected(s: string): string[] {
  return xmls(s).map((e) => canon(e));
}

/** Outputs shown for comparison: routed stanzas as canonical XML, others as data. */
export function show(out: readonly RoomOutput[]): unknown[] {
  return out.map((o) => {
    switch (o.kind) {
      case "route":
        return canon(o.stanza);
      case "archive-append":
        return {
          kind: o.kind,
          jid: o.jid,
          id: o.item.id,
          peer: o.item.peer,
          xml: canon(o.item.stanza),
        };
      case "store-room":
        return { kind: o.kind, jid: o.jid };
      case "mam-query":
        return { kind: o.kind, jid: o.jid, id: o.iq.attrs.id, query: o.query };
      default:
        return o;
    }
  });
}

/** Only the routed stanzas, as canonical XML. */
export function routed(out: readonly RoomOutput[]): string[] {
  return out.filter((o) => o.kind === "route").map((o) => canon((o as { stanza: Element }).stanza));
}

/** Reduces stanzas one after another, returning the room and the last step's outputs. */
export function step(
  room: Room | undefined,
  stanzaXml: string,
  ctx: MucCtx,
): readonly [Room | undefined, readonly RoomOutput[]] {
  return reduceRoom(room, xml(stanzaXml), ctx);
}

/** Runs stanzas in order and returns the final room (outputs dropped): for setting a scene. */
export function scene(room: Room | undefined, stanzas: readonly string[], ctx: MucCtx): Room {
  let r = room;
  for (const s of stanzas) [r] = step(r, s, ctx);
  if (r === undefined) throw new Error("the room went away while setting the scene");
  return r;
}

/** A join presence from `from` to the room as `nick`. */
export function joinXml(from: string, nick: string, extra = ""): string {
  return `<presence from="${from}" to="${ROOM}/${nick}"><x xmlns="http://jabber.org/protocol/muc">${extra}</x></presence>`;
}

/** The instant-room submission (XEP-0045 §10.1.2). */
export function instantXml(from = ROMEO): string {
  return `<iq from="${from}" to="${ROOM}" type="set" id="cfg"><query xmlns="http://jabber.org/protocol/muc#owner"><x xmlns="jabber:x:data" type="submit"/></query></iq>`;
}

/** Romeo created and unlocked the room; Juliet is in as a participant. */
export function twoOccupants(ctx: MucCtx): Room {
  return scene(undefined, [joinXml(ROMEO, "Romeo"), instantXml(), joinXml(JULIET, "Juliet")], ctx);
}
