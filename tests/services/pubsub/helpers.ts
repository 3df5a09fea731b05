/** Shared fixtures of the pubsub service tests: a context with fixed ids, stanzas from XML. */
import { xml } from "../_xml.ts";
export { xml };
import { serializeTop } from "../../../lib/xmpp/stream_xml.ts";
import { EMPTY_ROSTER, type Roster } from "../../../lib/core/session.ts";
import {
  DEFAULT_SERVICE_LIMITS,
  EMPTY_SERVICE,
  type PubsubOutput,
  type PubsubServiceCtx,
  reducePubsub,
  type ServiceState,
} from "../../../lib/services/pubsub/service.ts";

export const DOMAIN = "pubsub.example.com";
export const ADMIN = "admin@example.com/desk";
export const ROMEO = "romeo@example.com/orchard";
export const JULIET = "juliet@example.com/balcony";
export const NURSE = "nurse@example.com/kitchen";
export const STRANGER = "iago@elsewhere.example/x";

/** A context: ids `id1`, `id2` ... (fresh for each context), rosters from `rosters`. */
export function ctx(
  over: Partial<PubsubServiceCtx> = {},
  rosters: ReadonlyMap<string, Roster> = new Map(),
): PubsubServiceCtx {
  let n = 0;
  return {
    domain: DOMAIN,
    newId: () => `id${++n}`,
    admins: new Set(["admin@example.com"]),
    limits: DEFAULT_SERVICE_LIMITS,
    create: "local",
    isLocal: (bare) => bare.endsWith("@example.com"),
    rosterOf: (bare) => rosters.get(bare) ?? EMPTY_ROSTER,
    ...over,
  };
}

/** What the outputs say, readable: routed stanzas as XML, stores and roster loads as text. */
export function show(outputs: readonly PubsubOutput[]): string[] {
  return outputs.map((o) =>
    o.kind === "route"
      ? serializeTop(o.stanza)
      : o.kind === "store"
      ? `store ${o.key} ${o.value === undefined ? "-" : o.value.name}`
      : `need-roster ${o.owners.join(" ")}`
  );
}

/** A conversation with one service: `send` reduces a stanza from `from` and shows the outputs. */
export function service(c: PubsubServiceCtx = ctx(), start: ServiceState = EMPTY_SERVICE) {
  let state = start;
  return {
    get state() {
      return state;
    },
    send(from: string, stanza: string, cx: PubsubServiceCtx = c): string[] {
      const el = xml(stanza);
      const [next, outputs] = reducePubsub(
        state,
        { ...el, attrs: { ...el.attrs, from, to: el.attrs.to ?? DOMAIN } },
        cx,
      );
      state = next;
      return show(outputs);
    },
  };
}

/** `<iq type id to=service>` around a payload. */
export function iq(type: "get" | "set", id: string, payload: string): string {
  return `<iq type="${type}" id="${id}" to="${DOMAIN}">${payload}</iq>`;
}

export const PS = "http://jabber.org/protocol/pubsub";
export const OWNER = "http://jabber.org/protocol/pubsub#owner";

export function pubsub(inner: string): string {
  return `<pubsub xmlns="${PS}">${inner}</pubsub>`;
}

export function owner(inner: string): string {
  return `<pubsub xmlns="${OWNER}">${inner}</pubsub>`;
}

/** A submitted form of `formType` with `fields` (var → values). */
export function form(formType: string, fields: Readonly<Record<string, string | string[]>>) {
  const f = Object.entries(fields).map(([k, v]) =>
    `<field var="${k}">${
      (Array.isArray(v) ? v : [v]).map((x) => `<value>${x}</value>`).join("")
    }</field>`
  ).join("");
  return `<x xmlns="jabber:x:data" type="submit"><field var="FORM_TYPE" type="hidden"><value>${formType}</value></field>${f}</x>`;
}

export const NODE_CONFIG = "http://jabber.org/protocol/pubsub#node_config";
export const PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";
