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
import type { AccountOutput } from "./account.ts";
import {
  legacyBookmarks,
  NS_BOOKMARKS2,
  NS_LEGACY_BOOKMARKS,
  PEP_STORE,
  pepData,
  withLegacyBookmarks,
} from "./pep.ts";
import type { AccountIqCtx, AccountIqResult, Module } from "./types.ts";

export const NS_PRIVATE = "jabber:iq:private";
/** XEP-0402 §5: private-storage bookmarks are the PEP bookmarks. */
export const NS_BOOKMARKS_COMPAT = `${NS_BOOKMARKS2}#compat`;

/** The storage key of the XEP-0048 bookmarks, which live in PEP. */
const BOOKMARKS_KEY = `storage:${NS_LEGACY_BOOKMARKS}`;

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
    const found = privateKey(wanted) === BOOKMARKS_KEY
      ? bookmarksOf(stored, ctx)
      : stored[privateKey(wanted)] ?? wanted;
    return { replies: [iqResult(iq, elem("query", { xmlns: NS_PRIVATE }, [found]))] };
  }
  const next: Record<string, Element> = { ...stored };
  let pep: unknown = ctx.also?.[PEP_STORE];
  let pepChanged = false;
  const outputs: AccountOutput[] = [];
  for (const f of fragments) {
    if (privateKey(f) === BOOKMARKS_KEY) {
      // A copy kept from before the conversion goes: PEP holds the bookmarks from now on.
      delete next[BOOKMARKS_KEY];
      // Clearing bookmarks that were never there creates no node.
      if (isEmpty(f) && pepData(pep).nodes[NS_BOOKMARKS2] === undefined) continue;
      const converted = withLegacyBookmarks(pep, f, ctx);
      pep = converted.data;
      pepChanged = true;
      outputs.push(...converted.outputs);
    } else if (isEmpty(f)) delete next[privateKey(f)];
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
  const unchanged = Object.keys(next).length === Object.keys(stored).length &&
    Object.entries(next).every(([k, v]) => stored[k] === v);
  return {
    ...(unchanged ? {} : { data: Object.keys(next).length === 0 ? undefined : next }),
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
  if (pepData(pep).nodes[NS_BOOKMARKS2] === undefined && stored[BOOKMARKS_KEY] !== undefined) {
    return stored[BOOKMARKS_KEY];
  }
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
  },
};
