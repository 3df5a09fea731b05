/**
 * Last activity of accounts (XEP-0012 §4): a query to a user's bare JID, answered by the server
 * on their behalf, tells how long ago the user last logged out and the status of their last
 * unavailable presence; `0` while a resource is available. Only those who may see the user's
 * presence learn it. The logout is recorded per account in the `lastlog` store, by a `logout`
 * account op each time an available resource goes (the latest one is the last logout).
 * @module
 */
import { childElements, elem, type Element, text } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { bareJid, type Session } from "../core/session.ts";
import type { AccountIqCtx, AccountIqResult, Ctx, Module, PresenceVerdict } from "../core/types.ts";
import { NS_LAST } from "../xmpp/namespaces.ts";

/** The keyval store of the last logout. */
const LAST_STORE = "lastlog";

/** What the `lastlog` store holds for an account. */
export interface LastLogout {
  /** When the user's last available resource went (ms). */
  readonly at: number;
  /** The status text of the unavailable presence, when it had one. */
  readonly status?: string;
}

/** The stored record, or undefined when the user never logged out (or it is unreadable). */
function lastLogout(data: unknown): LastLogout | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const d = data as Record<string, unknown>;
  if (typeof d.at !== "number") return undefined;
  return { at: d.at, status: typeof d.status === "string" ? d.status : undefined };
}

/** The status text of an unavailable presence (the one without xml:lang first), if any. */
function statusOf(el: Element): string | undefined {
  const all = childElements(el).filter((c) => c.name === "status");
  const status = all.find((c) => c.attrs["xml:lang"] === undefined) ?? all[0];
  const t = status === undefined ? "" : text(status);
  return t === "" ? undefined : t;
}

/** The record of a logout at `now`: the account's `logout` op stores it, whatever was there. */
function onLogout(now: number, status: string | undefined): { readonly data: LastLogout } {
  return { data: status === undefined ? { at: now } : { at: now, status } };
}

/**
 * An unavailable broadcast presence from a resource that was available: the account records the
 * logout with its status (after the presence went out). The destroy path sends the same
 * presence, without status, for a session that ends without saying goodbye.
 */
function onPresence(s: Session, presence: Element, _ctx: Ctx): PresenceVerdict | undefined {
  const { type, to } = presence.attrs;
  if (type !== "unavailable" || to !== undefined || s.presence === undefined) return undefined;
  const status = statusOf(presence);
  const op = status === undefined
    ? { kind: "logout" as const }
    : { kind: "logout" as const, status };
  return { after: [{ kind: "account", bare: bareJid(s)!, op }] };
}

/** `<query xmlns="jabber:iq:last"/>` to a user's bare JID (XEP-0012 §4). */
export function onLastIq(
  data: unknown,
  iq: Element,
  _payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  // Nothing can be set: last activity is the server's record.
  if (iq.attrs.type !== "get") return { replies: [errorReply(iq, "service-unavailable")] };
  const online = (ctx.resourcesOf?.(ctx.bare) ?? []).some((r) => r.available);
  if (online) {
    return { replies: [iqResult(iq, elem("query", { xmlns: NS_LAST, seconds: "0" }))] };
  }
  const last = lastLogout(data);
  // Never logged out since the record was kept: there is nothing to tell (as ejabberd answers).
  if (last === undefined) return { replies: [errorReply(iq, "service-unavailable")] };
  const seconds = Math.max(0, Math.floor((ctx.now - last.at) / 1000));
  return {
    replies: [
      iqResult(
        iq,
        elem(
          "query",
          { xmlns: NS_LAST, seconds: String(seconds) },
          last.status === undefined ? [] : [last.status],
        ),
      ),
    ],
  };
}

/** Last activity of accounts, in the `lastlog` store. */
export const LAST_ACTIVITY: Module = {
  name: "last_activity",
  accountFeatures: [NS_LAST],
  account: {
    store: LAST_STORE,
    iq: { [`${NS_LAST} query`]: onLastIq },
    // §4 and §9: only those allowed to see the user's presence; the others get forbidden. A set
    // is anyone's to try: the handler answers that nothing can be set.
    access: { [`${NS_LAST} query`]: { get: "contacts", set: "anyone", refusal: "forbidden" } },
    onLogout,
  },
  presence: onPresence,
};
