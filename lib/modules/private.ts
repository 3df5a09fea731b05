/**
 * Private XML storage (XEP-0049): a user keeps arbitrary XML fragments on their account, one per
 * qualified name of the fragment's root, readable and writable only by the user's own resources.
 * XEP-0048 bookmarks (`<storage xmlns="storage:bookmarks"/>`) are not kept here: they are read
 * from and written to the XEP-0402 PEP node (XEP-0402 §5, `urn:xmpp:bookmarks:1#compat`), so
 * that old and new clients share one list.
 * @module
 */
import { childElements, elem, type Element, serialize, text } from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import { utf8Bytes } from "../limits.ts";
import type { AccountOutput } from "../core/types.ts";
import { legacyBookmarks, nodeOf, PEP_STORE, pepData, withLegacyBookmarks } from "./pep.ts";
import type { AccountIqCtx, AccountIqResult, Module } from "../core/types.ts";
import {
  NS_BOOKMARKS2,
  NS_BOOKMARKS_COMPAT,
  NS_LEGACY_BOOKMARKS,
  NS_PRIVATE,
  NS_VCARD,
} from "../xmpp/namespaces.ts";

/** The storage key of the XEP-0048 bookmarks, which live in PEP. */
const BOOKMARKS_KEY = `storage:${NS_LEGACY_BOOKMARKS}`;

/**
 * What the `private` store holds: fragments by `name:namespace` (Prosody's keys). The keys are
 * peer-supplied: read them with {@link fragmentOf}, write them with `Object.fromEntries`.
 */
export type PrivateData = Readonly<Record<string, Element>>;

/** The fragment stored under `key`, if any (an own property only). */
function fragmentOf(data: PrivateData, key: string): Element | undefined {
  return Object.hasOwn(data, key) ? data[key] : undefined;
}

/** The storage key of a fragment. */
export function privateKey(el: Element): string {
  return `${el.name}:${el.xmlns}`;
}

/** The stored data, or an empty record when nothing is stored. */
function privateData(data: unknown): PrivateData {
  return typeof data === "object" && data !== null ? data as PrivateData : {};
}

/**
 * XEP-0049 §2.3 lists namespaces reserved in Jabber; refusing them is optional there, and keeps
 * a fragment from posing as protocol (a fragment without a namespace of its own inherits
 * `jabber:iq:private` and is refused the same way).
 */
function isReserved(xmlns: string): boolean {
  return xmlns.startsWith("jabber:") || xmlns.startsWith("http://jabber.org/") ||
    xmlns === NS_VCARD;
}

/** A set of an empty fragment clears it (nothing to keep: a get answers the same). */
function isEmpty(el: Element): boolean {
  return Object.keys(el.attrs).length === 0 && childElements(el).length === 0 &&
    text(el).trim() === "";
}

/** The bytes kept, counted in the stored fragments' serializations (`limits.privateBytes`). */
function size(data: ReadonlyMap<string, Element>): number {
  let n = 0;
  for (const el of data.values()) n += utf8Bytes(serialize(el, NS_PRIVATE));
  return n;
}

/** Get or set of `<query xmlns="jabber:iq:private"/>` on the user's own account. */
export function onPrivateIq(
  data: unknown,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
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
    const found = privateKey(wanted) === BOOKMARKS_KEY
      ? bookmarksOf(stored, ctx)
      : fragmentOf(stored, privateKey(wanted)) ?? wanted;
    return { replies: [iqResult(iq, elem("query", { xmlns: NS_PRIVATE }, [found]))] };
  }
  const next = new Map(Object.entries(stored));
  let pep: unknown = ctx.also?.[PEP_STORE];
  let pepChanged = false;
  const outputs: AccountOutput[] = [];
  for (const f of fragments) {
    if (privateKey(f) === BOOKMARKS_KEY) {
      // A copy kept from before the conversion goes: PEP holds the bookmarks from now on.
      next.delete(BOOKMARKS_KEY);
      // Clearing bookmarks that were never there creates no node.
      if (isEmpty(f) && nodeOf(pepData(pep), NS_BOOKMARKS2) === undefined) continue;
      const converted = withLegacyBookmarks(pep, f, ctx);
      if (converted === undefined) {
        // PEP's own bounds (XEP-0402 §5: the bookmarks live there), answered as PEP does.
        return {
          replies: [errorReply(iq, "resource-constraint", {
            text: `Personal eventing data is limited to ${ctx.limits.pepBytes} bytes`,
          })],
        };
      }
      pep = converted.data;
      pepChanged = true;
      outputs.push(...converted.outputs);
    } else if (isEmpty(f)) next.delete(privateKey(f));
    else next.set(privateKey(f), f);
  }
  if (size(next) > ctx.limits.privateBytes) {
    // A local quota: not-acceptable (modify) as for an oversized vCard; nothing is stored.
    return {
      replies: [errorReply(iq, "not-acceptable", {
        text: `Private storage is limited to ${ctx.limits.privateBytes} bytes`,
      })],
    };
  }
  const unchanged = next.size === Object.keys(stored).length &&
    [...next].every(([k, v]) => fragmentOf(stored, k) === v);
  return {
    ...(unchanged ? {} : { data: next.size === 0 ? undefined : Object.fromEntries(next) }),
    ...(pepChanged ? { alsoData: { [PEP_STORE]: pep } } : {}),
    outputs,
    replies: [iqResult(iq)],
  };
}

/**
 * XEP-0402 §5: the bookmarks a XEP-0048 client reads are the PEP node's; a copy stored here
 * before the conversion existed is read until the node does.
 */
function bookmarksOf(stored: PrivateData, ctx: AccountIqCtx): Element {
  const pep = ctx.also?.[PEP_STORE];
  const kept = fragmentOf(stored, BOOKMARKS_KEY);
  if (nodeOf(pepData(pep), NS_BOOKMARKS2) === undefined && kept !== undefined) return kept;
  return legacyBookmarks(pep);
}

/** The private storage module, in the `private` store. */
export const PRIVATE: Module = {
  name: "private",
  accountFeatures: [NS_PRIVATE, NS_BOOKMARKS_COMPAT],
  account: {
    store: "private",
    alsoStores: [PEP_STORE],
    iq: { [`${NS_PRIVATE} query`]: onPrivateIq },
    // §2.3: another user's private data is forbidden (preferred over service-unavailable).
    access: { [`${NS_PRIVATE} query`]: { get: "self", set: "self", refusal: "forbidden" } },
  },
};
