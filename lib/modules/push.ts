/**
 * Push notifications (XEP-0357, `urn:xmpp:push:0`): a client that may sleep registers an app
 * server (`<enable jid node/>`, with a XEP-0004 publish-options form for it), and while none of
 * the user's clients reads, the server tells that app server a message is waiting: an iq set
 * from the user's bare JID publishing a `<notification/>` with the `urn:xmpp:push:summary`
 * form to the registered node (§5), the stored publish-options beside it.
 *
 * Registrations belong to the account (as Prosody's mod_cloud_notify keeps them): they live in
 * the `push` store, survive logouts and restarts, and are capped in count (`push_registrations`)
 * and bytes (`push_bytes`). Everything plugs in through the module contract: `account.iq`
 * answers enable and disable from the user's own resources, and `account.onWaiting` hears of
 * messages that wait for the user: stored offline, or queued for a hibernating session
 * (XEP-0198: what it had not acknowledged when it hibernated, then each message sent to it).
 *
 * Which messages notify: Prosody's "important" ones (mod_cloud_notify `is_important`): a
 * non-empty body (not a groupchat subject), an encrypted payload (OMEMO, XEP-0027, OX), a call
 * proposal (XEP-0353), and, beside Prosody, a MUC invitation (XEP-0249 direct or XEP-0045
 * mediated), which a sleeping client also wants to hear of.
 *
 * What the summary holds: `message-count`, and the sender and body only when the client asked
 * for them, per registration: the boolean fields `include-sender` and `include-body` of the
 * enable form (off when absent, as Prosody's `push_notification_with_sender` and
 * `push_notification_with_body` are by default). They are the server's, not the app server's:
 * they are taken out of the form that is sent back.
 *
 * Backoff: after a notification to a registration, the next one waits `push_interval` seconds
 * unless the user came back in between (a resource bound, a hibernating session resumed or
 * ended). The app server's answer comes back to the user's bare JID and reaches the module as a
 * `reply`: an error (or a bounce: the app server's server is down) counts a failure and doubles
 * the wait, a result clears the count, and after `MAX_FAILURES` errors in a row the registration
 * is dropped (as Prosody's mod_cloud_notify disables one its app server refuses). The state is
 * the last notification's id, its time and the failure count per registration.
 * @module
 */
import { child, childElements, elem, type Element, stanza, text } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { bareJidOf, normalizeJid } from "../xmpp/jid.ts";
import { buildForm, type FieldSpec, formTypeField, parseForm } from "../xmpp/forms.ts";
import { NS_DATA, NS_PUBSUB } from "../xmpp/namespaces.ts";
import { utf8Bytes } from "../limits.ts";
import type {
  AccountIqCtx,
  AccountIqResult,
  AccountOutput,
  Module,
  WaitingCtx,
  WaitingEvent,
} from "../core/types.ts";

/** XEP-0357's namespace. */
export const NS_PUSH = "urn:xmpp:push:0";
/** The FORM_TYPE of the notification's summary (XEP-0357 §5). */
export const NS_PUSH_SUMMARY = "urn:xmpp:push:summary";
/** The FORM_TYPE of the form a client gives with `enable` (XEP-0357 §5, XEP-0060 §7.1.5). */
export const NS_PUBLISH_OPTIONS = "http://jabber.org/protocol/pubsub#publish-options";

/** The enable form's fields that ask for the sender and the body in the summary (ours). */
export const INCLUDE_SENDER = "include-sender";
export const INCLUDE_BODY = "include-body";

/** The per-account store. */
export const PUSH_STORE = "push";

/** One app server (`jid`, `node`) the user registered. */
export interface PushRegistration {
  readonly jid: string;
  readonly node: string;
  /** The publish-options form as the client gave it, without our `include-*` fields. */
  readonly options?: Element;
  /** The summary names the sender (`include-sender`). */
  readonly sender?: true;
  /** The summary carries the body (`include-body`). */
  readonly body?: true;
  /** When the last notification went (ms); cleared when the user comes back. */
  readonly sentAt?: number;
  /** The id of the last notification, whose answer is awaited. */
  readonly pending?: string;
  /** Errors the app server answered in a row. */
  readonly failures?: number;
}

/** Errors in a row after which a registration is dropped. */
export const MAX_FAILURES = 3;

/** What the `push` store holds for an account. */
export interface PushData {
  readonly registrations: readonly PushRegistration[];
}

/** The registrations stored (none when nothing or something else is stored). */
export function registrationsOf(data: unknown): readonly PushRegistration[] {
  const list = (data as PushData | undefined)?.registrations;
  return Array.isArray(list) ? list : [];
}

/** The data to store for `list`: undefined (the store's entry goes) when it is empty. */
function dataOf(list: readonly PushRegistration[]): PushData | undefined {
  return list.length === 0 ? undefined : { registrations: list };
}

// Payloads that make a message worth waking a device for (Prosody's mod_cloud_notify).
const NS_OMEMO_LEGACY = "eu.siacs.conversations.axolotl";
const NS_OMEMO = "urn:xmpp:omemo:0";
const NS_OMEMO2 = "urn:xmpp:omemo:2";
const NS_PGP_ENCRYPTED = "jabber:x:encrypted";
const NS_OX = "urn:xmpp:openpgp:0";
const NS_JINGLE_MESSAGE = "urn:xmpp:jingle-message:0";
const NS_CONFERENCE = "jabber:x:conference";
const NS_MUC_USER = "http://jabber.org/protocol/muc#user";

/**
 * Whether a message is worth a notification (Prosody's `is_important`): a non-empty body (a
 * groupchat subject change is not), an encrypted payload whose body cannot be judged, a call
 * proposal, or a MUC invitation. Errors are never.
 */
export function isImportant(el: Element): boolean {
  if (el.name !== "message" || el.attrs.type === "error") return false;
  if (
    child(el, "encrypted", NS_OMEMO_LEGACY) !== undefined ||
    child(el, "encrypted", NS_OMEMO) !== undefined ||
    child(el, "encrypted", NS_OMEMO2) !== undefined ||
    child(el, "x", NS_PGP_ENCRYPTED) !== undefined ||
    child(el, "openpgp", NS_OX) !== undefined ||
    child(el, "propose", NS_JINGLE_MESSAGE) !== undefined ||
    child(el, "x", NS_CONFERENCE) !== undefined
  ) return true;
  const mucUser = child(el, "x", NS_MUC_USER);
  if (mucUser !== undefined && child(mucUser, "invite", NS_MUC_USER) !== undefined) return true;
  if (el.attrs.type === "groupchat" && child(el, "subject") !== undefined) return false;
  const body = child(el, "body");
  return body !== undefined && text(body) !== "";
}

/** A boolean form field (XEP-0004 §3.3: `1` or `true`). */
function isTrue(values: readonly string[] | undefined): boolean {
  return values !== undefined && (values[0] === "1" || values[0] === "true");
}

/** The form without our `include-*` fields: what the app server gets back. */
function withoutOurFields(form: Element): Element {
  return {
    ...form,
    children: form.children.filter((c) =>
      typeof c === "string" || c.name !== "field" ||
      (c.attrs.var !== INCLUDE_SENDER && c.attrs.var !== INCLUDE_BODY)
    ),
  };
}

function bad(iq: Element, why: string): AccountIqResult {
  return { replies: [errorReply(iq, "bad-request", { text: why })] };
}

/** The bytes `list` counts against `limits.pushBytes`: the UTF-8 length of its JSON. */
function sizeOf(list: readonly PushRegistration[]): number {
  return utf8Bytes(JSON.stringify(list));
}

/**
 * XEP-0357 §5 `<enable jid node>` with an optional publish-options form: stored, replacing a
 * registration of the same service and node. One past `push_registrations` or `push_bytes` is
 * a `resource-constraint` and nothing changes.
 */
export function onEnable(
  data: unknown,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  if (iq.attrs.type !== "set") return bad(iq, "Enable is an iq set");
  const jid = payload.attrs.jid === undefined ? undefined : normalizeJid(payload.attrs.jid);
  if (jid === undefined) return bad(iq, "The push service needs a valid jid");
  const node = payload.attrs.node;
  if (node === undefined || node === "") return bad(iq, "The push service needs a node");
  // Notifications go from the account: to itself, they would publish into its own PEP.
  if (bareJidOf(jid) === ctx.bare) return bad(iq, "The account cannot be its own push service");
  const x = childElements(payload, NS_DATA).find((c) => c.name === "x");
  const form = x === undefined ? undefined : parseForm(x);
  if (form !== undefined && form.formType !== NS_PUBLISH_OPTIONS) {
    return bad(iq, `The form must be of type ${NS_PUBLISH_OPTIONS}`);
  }
  const registration: PushRegistration = {
    jid,
    node,
    ...(x === undefined ? {} : { options: withoutOurFields(x) }),
    ...(isTrue(form?.byVar.get(INCLUDE_SENDER)?.values) ? { sender: true as const } : {}),
    ...(isTrue(form?.byVar.get(INCLUDE_BODY)?.values) ? { body: true as const } : {}),
  };
  const list = [
    ...registrationsOf(data).filter((r) => r.jid !== jid || r.node !== node),
    registration,
  ];
  if (list.length > ctx.limits.pushRegistrations) {
    const text = `At most ${ctx.limits.pushRegistrations} push services per account`;
    return { replies: [errorReply(iq, "resource-constraint", { text })] };
  }
  if (sizeOf(list) > ctx.limits.pushBytes) {
    const text = `Push registrations are limited to ${ctx.limits.pushBytes} bytes`;
    return { replies: [errorReply(iq, "resource-constraint", { text })] };
  }
  return { data: dataOf(list), replies: [iqResult(iq)] };
}

/**
 * XEP-0357 §6 `<disable jid [node]>`: that registration, or without a node every one of that
 * service. Nothing to disable is still a success (the client's wish holds).
 */
export function onDisable(
  data: unknown,
  iq: Element,
  payload: Element,
  _ctx: AccountIqCtx,
): AccountIqResult {
  if (iq.attrs.type !== "set") return bad(iq, "Disable is an iq set");
  const jid = payload.attrs.jid === undefined ? undefined : normalizeJid(payload.attrs.jid);
  if (jid === undefined) return bad(iq, "The push service needs a valid jid");
  const node = payload.attrs.node;
  const before = registrationsOf(data);
  const list = before.filter((r) => r.jid !== jid || (node !== undefined && r.node !== node));
  if (list.length === before.length) return { replies: [iqResult(iq)] };
  return { data: dataOf(list), replies: [iqResult(iq)] };
}

/** The summary of what waits (XEP-0357 §5), with what this registration asked for. */
function summary(r: PushRegistration, count: number, last: Element | undefined): Element {
  const fields: FieldSpec[] = [
    formTypeField(NS_PUSH_SUMMARY),
    { var: "message-count", values: [String(count)] },
  ];
  const from = last?.attrs.from;
  if (r.sender === true && from !== undefined) {
    fields.push({ var: "last-message-sender", values: [from] });
  }
  const body = last === undefined ? undefined : child(last, "body");
  if (r.body === true && body !== undefined && text(body) !== "") {
    fields.push({ var: "last-message-body", values: [text(body)] });
  }
  // `form`, as Prosody sends it (XEP-0357's example gives no type).
  return buildForm("form", fields);
}

/** The notification iq to one registration (XEP-0357 §5), from the user's bare JID. */
export function notification(
  r: PushRegistration,
  bare: string,
  id: string,
  count: number,
  last: Element | undefined,
): Element {
  return stanza("iq", { type: "set", from: bare, to: r.jid, id }, [
    elem("pubsub", { xmlns: NS_PUBSUB }, [
      elem("publish", { node: r.node }, [
        elem("item", {}, [elem("notification", { xmlns: NS_PUSH }, [summary(r, count, last)])]),
      ]),
      r.options === undefined ? undefined : elem("publish-options", {}, [r.options]),
    ]),
  ]);
}

/** True when `r` may be notified now (see the module comment on backoff). */
function due(r: PushRegistration, ctx: WaitingCtx): boolean {
  const wait = ctx.limits.pushInterval * 1000 * 2 ** (r.failures ?? 0);
  return r.sentAt === undefined || ctx.now - r.sentAt >= wait;
}

/** The app server answered notification `iq.id`: count a failure, or clear the count. */
function onReply(list: readonly PushRegistration[], iq: Element) {
  const from = iq.attrs.from === undefined ? undefined : normalizeJid(iq.attrs.from);
  const i = list.findIndex((r) => r.pending !== undefined && r.pending === iq.attrs.id);
  if (i === -1 || from !== list[i].jid) return undefined;
  const { pending: _, failures, ...r } = list[i];
  const next = [...list];
  if (iq.attrs.type === "error") {
    const count = (failures ?? 0) + 1;
    if (count >= MAX_FAILURES) next.splice(i, 1);
    else next[i] = { ...r, failures: count };
  } else next[i] = r;
  return { data: dataOf(next), outputs: [] };
}

/**
 * The account hook: a notification to each registration that is due when an important message
 * waits; every `sentAt` cleared when the user is back. Nothing is written otherwise.
 */
export function onWaiting(
  data: unknown,
  event: WaitingEvent,
  ctx: WaitingCtx,
): { readonly data?: unknown; readonly outputs: readonly AccountOutput[] } | undefined {
  const list = registrationsOf(data);
  if (list.length === 0) return undefined;
  if (event.kind === "reply") return onReply(list, event.iq);
  if (event.kind === "back") {
    if (list.every((r) => r.sentAt === undefined)) return undefined;
    return { data: dataOf(list.map(({ sentAt: _, ...r }) => r)), outputs: [] };
  }
  const important = event.kind === "offline"
    ? (isImportant(event.message) ? [event.message] : [])
    : event.messages.filter(isImportant);
  if (important.length === 0) return undefined;
  const count = event.kind === "offline" ? event.stored : important.length;
  const last = important[important.length - 1];
  const outputs: AccountOutput[] = [];
  const next = list.map((r) => {
    if (!due(r, ctx)) return r;
    const id = ctx.newId();
    outputs.push({ kind: "route", stanza: notification(r, ctx.bare, id, count, last) });
    return { ...r, sentAt: ctx.now, pending: id };
  });
  if (outputs.length === 0) return undefined;
  return { data: dataOf(next), outputs };
}

/** XEP-0357 on the account: enable and disable from the user's own resources. */
export const PUSH: Module = {
  name: "push",
  accountFeatures: [NS_PUSH],
  account: {
    store: PUSH_STORE,
    iq: { [`${NS_PUSH} enable`]: onEnable, [`${NS_PUSH} disable`]: onDisable },
    // Another entity's registrations are none of its business.
    access: {
      [`${NS_PUSH} enable`]: { get: "self", set: "self", refusal: "forbidden" },
      [`${NS_PUSH} disable`]: { get: "self", set: "self", refusal: "forbidden" },
    },
    onWaiting,
  },
};
