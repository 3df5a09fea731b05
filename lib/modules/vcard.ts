/**
 * vcard-temp (XEP-0054): each account keeps one vCard, readable by anyone through the account's
 * bare JID and writable only by its owner; and the vCard-based avatar hash (XEP-0153) that the
 * server adds to the owner's presence for clients that do not add it themselves (as XEP-0398
 * servers do).
 * @module
 */
import { utf8Bytes } from "../limits.ts";
import { createHash } from "node:crypto";
import {
  child,
  childElements,
  elem,
  type Element,
  serialize,
  text,
  withChildren,
} from "../xml/element.ts";
import { errorReply, iqResult } from "../xmpp/errors.ts";
import type { AccountOutput } from "../core/types.ts";
import type { Session } from "../core/session.ts";
import type {
  AccountIqCtx,
  AccountIqResult,
  Ctx,
  Module,
  PresenceVerdict,
  Step,
} from "../core/types.ts";
import { NS_VCARD, NS_VCARD_UPDATE } from "../xmpp/namespaces.ts";

/** What the `vcard` store holds for an account. */
export interface VcardData {
  readonly vcard: Element;
  /** XEP-0153: hex SHA-1 of the PHOTO's binary data, when the vCard has one. */
  readonly avatarHash?: string;
}

function isElement(v: unknown): v is Element {
  if (typeof v !== "object" || v === null) return false;
  const e = v as Record<string, unknown>;
  return typeof e.name === "string" && typeof e.xmlns === "string" &&
    typeof e.attrs === "object" && Array.isArray(e.children);
}

/** The stored data, or undefined when nothing (valid) is stored. */
export function vcardData(data: unknown): VcardData | undefined {
  if (typeof data !== "object" || data === null) return undefined;
  const d = data as Record<string, unknown>;
  if (!isElement(d.vcard)) return undefined;
  return {
    vcard: d.vcard,
    avatarHash: typeof d.avatarHash === "string" ? d.avatarHash : undefined,
  };
}

/** XEP-0153 §2: the avatar hash is the SHA-1 of the image data, in lowercase hex. */
export function photoHash(vcard: Element): string | undefined {
  const photo = child(vcard, "PHOTO", NS_VCARD);
  const binval = photo === undefined ? undefined : child(photo, "BINVAL", NS_VCARD);
  if (binval === undefined) return undefined;
  // Base64 in XML is often wrapped over lines: whitespace is not data.
  const b64 = text(binval).replace(/\s+/g, "");
  if (b64 === "") return undefined;
  let binary: string;
  try {
    binary = atob(b64);
  } catch {
    // Not base64: there is no image whose hash we could announce.
    return undefined;
  }
  const bytes = Uint8Array.from(binary, (c) => c.charCodeAt(0));
  return createHash("sha1").update(bytes).digest("hex");
}

function isEmptyVcard(vcard: Element): boolean {
  return childElements(vcard).length === 0 && text(vcard).trim() === "";
}

/** Get or set of `<vCard xmlns="vcard-temp"/>` on an account (XEP-0054 §3). */
export function onVcardIq(
  data: unknown,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  const stored = vcardData(data);
  if (iq.attrs.type === "get") {
    if (stored !== undefined) return { replies: [iqResult(iq, stored.vcard)] };
    // §3.1: the owner may get an empty vCard; anyone else an error (§3.3, item-not-found).
    if (ctx.self) return { replies: [iqResult(iq, elem("vCard", { xmlns: NS_VCARD }))] };
    return { replies: [errorReply(iq, "item-not-found")] };
  }
  if (utf8Bytes(serialize(payload, NS_VCARD)) > ctx.limits.vcardBytes) {
    // XEP-0054 names no condition. not-acceptable (modify) says "this request does not meet
    // our criteria, change it", as XEP-0060 answers a too big item (payload-too-big), which is
    // what the same vCard published over PEP would get.
    return {
      replies: [errorReply(iq, "not-acceptable", {
        text: `The vCard is larger than ${ctx.limits.vcardBytes} bytes`,
      })],
    };
  }
  const before = stored?.avatarHash;
  // An empty vCard deletes the stored one.
  const next: VcardData | undefined = isEmptyVcard(payload)
    ? undefined
    : { vcard: payload, avatarHash: photoHash(payload) };
  const after = next?.avatarHash;
  const outputs: AccountOutput[] = after === before ? [] : [{ kind: "avatar-hash", hash: after }];
  return { data: next, outputs, replies: [iqResult(iq)] };
}

/** At bind, a new session learns the avatar hash it should announce. */
function onBound(data: unknown, fullJid: string): readonly AccountOutput[] {
  const hash = vcardData(data)?.avatarHash;
  return hash === undefined ? [] : [{ kind: "avatar-hash", to: fullJid, hash }];
}

/**
 * XEP-0153 §4.1 (XEP-0398 style): available presence gets the known avatar hash unless the
 * client already announced one; an `<x/>` without `<photo/>` (the client does not know yet) gets
 * the server's.
 */
export function withAvatarHash(presence: Element, hash: string | undefined): Element {
  // XEP-0153 §4.1: an empty <photo/> says "no avatar" (the server knows the vCard; as Prosody).
  const photo = elem("photo", { xmlns: NS_VCARD_UPDATE }, hash === undefined ? [] : [hash]);
  const x = child(presence, "x", NS_VCARD_UPDATE);
  if (x === undefined) {
    return withChildren(presence, [
      ...presence.children,
      elem("x", { xmlns: NS_VCARD_UPDATE }, [photo]),
    ]);
  }
  if (child(x, "photo", NS_VCARD_UPDATE) !== undefined) return presence;
  return withChildren(
    presence,
    presence.children.map((c) => c === x ? withChildren(x, [...x.children, photo]) : c),
  );
}

/** XEP-0153: available presence, broadcast or directed, carries the vCard avatar's hash. */
function onPresence(s: Session, presence: Element, _ctx: Ctx): PresenceVerdict | undefined {
  if (presence.attrs.type !== undefined) return undefined;
  const el = withAvatarHash(presence, s.avatarHash);
  return el === presence ? undefined : { presence: el };
}

/** The server itself keeps no vCard: a get sees an empty one, a set is not the user's to make. */
function onHostVcard(s: Session, iq: Element): Step {
  const reply = iq.attrs.type === "get"
    ? iqResult(iq, elem("vCard", { xmlns: NS_VCARD }))
    : errorReply(iq, "forbidden");
  return [s, [{ kind: "send", stanza: reply }]];
}

/**
 * The vcard-temp module: one vCard per account, in the `vcard` store. XEP-0054 §4 has clients
 * look for the feature on the server's domain, so it is announced there too.
 */
export const VCARD: Module = {
  name: "vcard",
  hostFeatures: [NS_VCARD],
  accountFeatures: [NS_VCARD],
  hostIq: { [`${NS_VCARD} vCard`]: onHostVcard },
  account: {
    store: "vcard",
    iq: { [`${NS_VCARD} vCard`]: onVcardIq },
    // §3.2: anyone may get a vCard; only the owner sets it, forbidden as the XEP shows.
    access: { [`${NS_VCARD} vCard`]: { get: "anyone", set: "self", refusal: "forbidden" } },
    onBound,
  },
  presence: onPresence,
};
