/**
 * Private XML storage (XEP-0049): a user keeps arbitrary XML fragments on their account, one per
 * qualified name of the fragment's root, readable and writable only by the user's own resources.
 * @module
 */
import { childElements, elem, type Element, serialize, text } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import type { AccountIqCtx, AccountIqResult, Module } from "./types.ts";

export const NS_PRIVATE = "jabber:iq:private";

/**
 * The most a user may keep, in bytes of the stored fragments' serializations: enough for
 * hundreds of bookmarks and client preferences, without turning the store into file hosting.
 */
export const MAX_PRIVATE_BYTES = 1024 * 1024;

/** What the `private` store holds: fragments by `name:namespace` (Prosody's keys). */
export type PrivateData = Readonly<Record<string, Element>>;

/** The storage key of a fragment. */
export function privateKey(el: Element): string {
  return `${el.name}:${el.xmlns}`;
}

/** The stored data, or an empty record when nothing is stored. */
export function privateData(data: unknown): PrivateData {
  return typeof data === "object" && data !== null ? data as PrivateData : {};
}

/**
 * XEP-0049 §2.3 lists namespaces reserved in Jabber; refusing them is optional there, and keeps
 * a fragment from posing as protocol (a fragment without a namespace of its own inherits
 * `jabber:iq:private` and is refused the same way).
 */
function isReserved(xmlns: string): boolean {
  return xmlns.startsWith("jabber:") || xmlns.startsWith("http://jabber.org/") ||
    xmlns === "vcard-temp";
}

/** A set of an empty fragment clears it (nothing to keep: a get answers the same). */
function isEmpty(el: Element): boolean {
  return Object.keys(el.attrs).length === 0 && childElements(el).length === 0 &&
    text(el).trim() === "";
}

function size(data: PrivateData): number {
  const encoder = new TextEncoder();
  let n = 0;
  for (const el of Object.values(data)) n += encoder.encode(serialize(el, NS_PRIVATE)).length;
  return n;
}

/** Get or set of `<query xmlns="jabber:iq:private"/>` on the user's own account. */
export function onPrivateIq(
  data: unknown,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  // §2.3: another user's private data is forbidden (preferred over service-unavailable).
  if (!ctx.self) return { replies: [errorReply(iq, "forbidden")] };
  const fragments = childElements(payload);
  // §2.3: at least one child element with a proper namespace, else not-acceptable.
  if (fragments.length === 0) {
    return { replies: [errorReply(iq, "not-acceptable", { text: "No element to get or set" })] };
  }
  if (fragments.some((f) => isReserved(f.xmlns))) {
    return {
      replies: [errorReply(iq, "not-acceptable", { text: "The namespace is reserved" })],
    };
  }
  const stored = privateData(data);
  if (iq.attrs.type === "get") {
    // §2.3: a client MUST NOT query for more than one namespace in a single get.
    if (fragments.length > 1) {
      return { replies: [errorReply(iq, "bad-request", { text: "Get one element at a time" })] };
    }
    const wanted = fragments[0];
    // Nothing stored: the requested element comes back as it was asked for.
    const found = stored[privateKey(wanted)] ?? wanted;
    return { replies: [iqResult(iq, elem("query", { xmlns: NS_PRIVATE }, [found]))] };
  }
  const next: Record<string, Element> = { ...stored };
  for (const f of fragments) {
    if (isEmpty(f)) delete next[privateKey(f)];
    else next[privateKey(f)] = f;
  }
  if (size(next) > MAX_PRIVATE_BYTES) {
    // A local quota: not-acceptable (modify) as for an oversized vCard; nothing is stored.
    return {
      replies: [errorReply(iq, "not-acceptable", {
        text: `Private storage is limited to ${MAX_PRIVATE_BYTES} bytes`,
      })],
    };
  }
  return {
    data: Object.keys(next).length === 0 ? undefined : next,
    replies: [iqResult(iq)],
  };
}

/** The private storage module, in the `private` store. */
export const PRIVATE: Module = {
  name: "private",
  accountFeatures: [NS_PRIVATE],
  account: { store: "private", iq: { [`${NS_PRIVATE} query`]: onPrivateIq } },
};
