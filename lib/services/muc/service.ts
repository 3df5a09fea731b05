/**
 * Stanzas to the MUC service's own domain (conference.example.com): service discovery with the
 * public rooms (XEP-0045 §6.1-6.3), unique room names (§10.1.4), pings, and the ad-hoc command
 * Prosody's admin tools use to destroy rooms (`http://prosody.im/protocol/muc#destroy`).
 * The service holds no state of its own: what it needs of the rooms comes through the view.
 * @module
 */
import { childElements, elem, type Element } from "../../xml/element.ts";
import { iqResult } from "../../xmpp/errors.ts";
import { findForm, parseForm } from "../../xmpp/forms.ts";
import { bareJidOf, normalizeJid } from "../../xmpp/jid.ts";
import { NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_PING } from "../../xmpp/namespaces.ts";
import {
  NODE_PROSODY_DESTROY,
  NS_COMMANDS,
  NS_MUC,
  NS_MUC_UNIQUE,
  NS_OCCUPANT_ID,
} from "./namespaces.ts";
import type { MucCtx } from "./types.ts";
import { mucError } from "./views.ts";

/** A room as the service lists it. */
export interface RoomListing {
  readonly jid: string;
  readonly name: string;
}

/** What the service reducer may consult beside the room context. */
export interface ServiceCtx extends MucCtx {
  /** The public rooms (configured, public), for disco#items. */
  readonly publicRooms: () => readonly RoomListing[];
  /** The service's name in disco. */
  readonly name?: string;
}

/** Something the shell must do for the service. */
export type ServiceOutput =
  | { readonly kind: "route"; readonly stanza: Element }
  /**
   * Destroy these rooms (each with `destroyRoom`, those that exist), then route
   * {@link destroyCommandResult} with the ones destroyed.
   */
  | {
    readonly kind: "destroy-rooms";
    readonly rooms: readonly string[];
    readonly reason?: string;
    readonly iq: Element;
    readonly sessionId: string;
  };

/** Rooms one destroy command may name. */
const MAX_DESTROY = 1000;

const route = (stanza: Element): ServiceOutput => ({ kind: "route", stanza });

/** Reduces a stanza to the service's domain (`from` stamped, `to` the domain). */
export function reduceService(st: Element, ctx: ServiceCtx): readonly ServiceOutput[] {
  if (st.name !== "iq") {
    // Messages and presence to the service itself mean nothing; errors are never answered.
    if (st.name === "message" && st.attrs.type !== "error" && st.attrs.type !== "groupchat") {
      return [route(mucError(st, "service-unavailable"))];
    }
    return [];
  }
  const type = st.attrs.type;
  if (type !== "get" && type !== "set") return [];
  const payload = childElements(st)[0];
  if (payload === undefined) return [route(mucError(st, "bad-request"))];
  const from = st.attrs.from ?? "";
  const isAdmin = ctx.admins.has(bareJidOf(from) ?? from);
  const node = payload.attrs.node;
  switch (`${type} ${payload.xmlns} ${payload.name}`) {
    case `get ${NS_DISCO_INFO} query`:
      if (node !== undefined) return [route(mucError(st, "item-not-found"))];
      return [route(iqResult(
        st,
        elem("query", { xmlns: NS_DISCO_INFO }, [
          elem("identity", { category: "conference", type: "text", name: ctx.name ?? "Chatrooms" }),
          ...[
            NS_DISCO_INFO,
            NS_DISCO_ITEMS,
            NS_MUC,
            NS_MUC_UNIQUE,
            NS_OCCUPANT_ID,
            NS_COMMANDS,
            NS_PING,
          ]
            .map((v) => elem("feature", { var: v })),
        ]),
      ))];
    case `get ${NS_DISCO_ITEMS} query`:
      if (node === NS_COMMANDS) {
        return [route(iqResult(
          st,
          elem("query", { xmlns: NS_DISCO_ITEMS, node }, [
            isAdmin &&
            elem("item", { jid: ctx.domain, node: NODE_PROSODY_DESTROY, name: "Destroy rooms" }),
          ]),
        ))];
      }
      if (node !== undefined) return [route(mucError(st, "item-not-found"))];
      return [route(iqResult(
        st,
        elem(
          "query",
          { xmlns: NS_DISCO_ITEMS },
          ctx.publicRooms().map((r) => elem("item", { jid: r.jid, name: r.name })),
        ),
      ))];
    case `get ${NS_MUC_UNIQUE} unique`:
      return [route(iqResult(
        st,
        elem("unique", { xmlns: NS_MUC_UNIQUE }, [ctx.newId().toLowerCase()]),
      ))];
    case `get ${NS_PING} ping`:
      return [route(iqResult(st))];
    case `set ${NS_COMMANDS} command`:
      if (node !== NODE_PROSODY_DESTROY) return [route(mucError(st, "item-not-found"))];
      if (!isAdmin) return [route(mucError(st, "forbidden"))];
      return destroyCommand(st, payload, ctx);
  }
  return [route(mucError(st, "service-unavailable"))];
}

/**
 * The destroy command: without a form it answers with one (XEP-0050 §3.4 executing); with the
 * submitted form it asks the shell to destroy the rooms listed.
 */
function destroyCommand(iq: Element, command: Element, ctx: ServiceCtx): readonly ServiceOutput[] {
  if (command.attrs.action === "cancel") {
    return [route(iqResult(
      iq,
      elem("command", {
        xmlns: NS_COMMANDS,
        node: NODE_PROSODY_DESTROY,
        sessionid: command.attrs.sessionid,
        status: "canceled",
      }),
    ))];
  }
  const x = findForm(command);
  const sessionId = command.attrs.sessionid ?? ctx.newId();
  if (x === undefined) {
    return [route(iqResult(
      iq,
      elem("command", {
        xmlns: NS_COMMANDS,
        node: NODE_PROSODY_DESTROY,
        sessionid: sessionId,
        status: "executing",
      }, [
        elem("actions", { execute: "complete" }, [elem("complete")]),
        elem("x", { xmlns: NS_DATA, type: "form" }, [
          elem("title", {}, ["Destroy rooms"]),
          elem("field", { type: "jid-multi", var: "rooms", label: "Rooms to destroy" }, [
            elem("required"),
          ]),
          elem("field", { type: "text-single", var: "reason", label: "Reason" }),
        ]),
      ]),
    ))];
  }
  const form = parseForm(x);
  const rooms: string[] = [];
  for (const v of form.byVar.get("rooms")?.values ?? []) {
    const jid = normalizeJid(v);
    if (jid === undefined || bareJidOf(jid) !== jid || !jid.endsWith(`@${ctx.domain}`)) {
      return [route(mucError(iq, "bad-request", { text: `Not a room here: ${v}` }))];
    }
    if (!rooms.includes(jid)) rooms.push(jid);
    if (rooms.length > MAX_DESTROY) return [route(mucError(iq, "policy-violation"))];
  }
  const reason = form.byVar.get("reason")?.values[0];
  return [{
    kind: "destroy-rooms",
    rooms,
    ...(reason !== undefined && reason !== "" ? { reason } : {}),
    iq,
    sessionId,
  }];
}

/** The destroy command's completion, naming the rooms destroyed (as Prosody words it). */
export function destroyCommandResult(
  iq: Element,
  destroyed: readonly string[],
  sessionId: string,
): Element {
  return iqResult(
    iq,
    elem("command", {
      xmlns: NS_COMMANDS,
      node: NODE_PROSODY_DESTROY,
      status: "completed",
      sessionid: sessionId,
    }, [
      elem("note", { type: "info" }, [
        `The following rooms were destroyed:\n${destroyed.join("\n")}`,
      ]),
    ]),
  );
}
