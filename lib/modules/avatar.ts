/**
 * User Avatar (XEP-0084) and vCard-based avatars (XEP-0153) kept in step (XEP-0398): a
 * publication to the `urn:xmpp:avatar:metadata` node puts the image of the matching
 * `urn:xmpp:avatar:data` item into the vCard's PHOTO (and so its hash into presence), and a
 * vCard set with a PHOTO publishes the image to both PEP nodes. The vCard and PEP modules stay
 * unaware of each other: their handlers are wrapped here, and each reads the other's store.
 * @module
 */
import { utf8Bytes } from "../limits.ts";
import { createHash } from "node:crypto";
import { childElements, elem, type Element, serialize, text } from "../xml/element.ts";
import type { AccountOutput } from "../core/types.ts";
import { nodeOf, PEP_STORE, pepData, publishedByServer } from "./pep.ts";
import { photoHash, type VcardData, vcardData } from "./vcard.ts";
import type { AccountIqCtx, AccountIqHandler, AccountIqResult, Module } from "../core/types.ts";
import {
  NS_AVATAR_DATA,
  NS_AVATAR_METADATA,
  NS_PEP_VCARD_CONVERSION,
  NS_PUBSUB,
  NS_VCARD,
} from "../xmpp/namespaces.ts";

/** The store the vCard module keeps its data in. */
const VCARD_STORE = "vcard";

/** An avatar image as both protocols carry it. */
interface Avatar {
  /** Hex SHA-1 of the image (XEP-0084 item id, XEP-0153 hash). */
  readonly id: string;
  readonly type: string;
  /** The image, base64 without whitespace. */
  readonly base64: string;
}

function decode(base64: string): Uint8Array | undefined {
  try {
    return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
  } catch {
    return undefined;
  }
}

function sha1(bytes: Uint8Array): string {
  return createHash("sha1").update(bytes).digest("hex");
}

/** The image type from its first bytes, for a vCard PHOTO that names none. */
function sniffType(bytes: Uint8Array): string {
  const starts = (...b: number[]) => b.every((v, i) => bytes[i] === v);
  if (starts(0x89, 0x50, 0x4e, 0x47)) return "image/png";
  if (starts(0xff, 0xd8, 0xff)) return "image/jpeg";
  if (starts(0x47, 0x49, 0x46, 0x38)) return "image/gif";
  if (starts(0x52, 0x49, 0x46, 0x46) && bytes[8] === 0x57 && bytes[9] === 0x45) {
    return "image/webp";
  }
  // XEP-0084 §4.2.1 makes PNG the format every client reads.
  return "image/png";
}

/**
 * What the PEP nodes say the avatar is: an image, `null` when the metadata is empty (the user
 * disabled their avatar, XEP-0084 §4.5), undefined when there is nothing to convert.
 */
function pepAvatar(stored: unknown): Avatar | null | undefined {
  const data = pepData(stored);
  const metadata = nodeOf(data, NS_AVATAR_METADATA)?.items.at(-1)?.payload;
  if (metadata === undefined || metadata.name !== "metadata") return undefined;
  const infos = childElements(metadata, NS_AVATAR_METADATA).filter((i) => i.name === "info");
  if (infos.length === 0) return null;
  // XEP-0398 §3.1: the info that does not point to an external URL.
  const info = infos.find((i) => i.attrs.url === undefined && i.attrs.id !== undefined);
  if (info === undefined) return undefined;
  const item = nodeOf(data, NS_AVATAR_DATA)?.items.find((i) => i.id === info.attrs.id);
  if (item === undefined || item.payload.name !== "data") return undefined;
  const base64 = text(item.payload).replace(/\s+/g, "");
  const bytes = decode(base64);
  // §3.1: the image must be the one the id names.
  if (bytes === undefined || bytes.length === 0 || sha1(bytes) !== info.attrs.id) return undefined;
  return { id: info.attrs.id, type: info.attrs.type ?? sniffType(bytes), base64 };
}

/** The id of the avatar PEP announces now, if any. */
function pepAvatarId(stored: unknown): string | undefined {
  const metadata = nodeOf(pepData(stored), NS_AVATAR_METADATA)?.items.at(-1)?.payload;
  if (metadata === undefined) return undefined;
  return childElements(metadata, NS_AVATAR_METADATA).find((i) => i.name === "info")?.attrs.id;
}

/** The vCard's avatar, from its PHOTO. */
function vcardAvatar(vcard: VcardData | undefined): Avatar | undefined {
  const id = vcard?.avatarHash;
  if (vcard === undefined || id === undefined) return undefined;
  const photo = childElements(vcard.vcard, NS_VCARD).find((c) => c.name === "PHOTO");
  const binval = photo === undefined
    ? undefined
    : childElements(photo, NS_VCARD).find((c) => c.name === "BINVAL");
  if (photo === undefined || binval === undefined) return undefined;
  const base64 = text(binval).replace(/\s+/g, "");
  const typeEl = childElements(photo, NS_VCARD).find((c) => c.name === "TYPE");
  const named = typeEl === undefined ? "" : text(typeEl).trim();
  return { id, type: named !== "" ? named : sniffType(decode(base64) ?? new Uint8Array()), base64 };
}

/**
 * XEP-0398 §3.1: the vCard after the PEP avatar became `avatar` (null: none), or undefined when
 * the vCard stays as it is.
 */
function vcardWithAvatar(
  stored: unknown,
  avatar: Avatar | null,
  maxBytes: number,
): VcardData | undefined {
  const before = vcardData(stored);
  if ((avatar?.id ?? undefined) === before?.avatarHash) return undefined;
  const kept = (before?.vcard.children ?? []).filter((c) =>
    typeof c === "string" || !(c.name === "PHOTO" && c.xmlns === NS_VCARD)
  );
  const photo = avatar === null ? undefined : elem("PHOTO", { xmlns: NS_VCARD }, [
    elem("TYPE", { xmlns: NS_VCARD }, [avatar.type]),
    elem("BINVAL", { xmlns: NS_VCARD }, [avatar.base64]),
  ]);
  const vcard = elem("vCard", { xmlns: NS_VCARD }, [
    ...kept.filter((c) => typeof c !== "string"),
    photo,
  ]);
  // An image too big for a vCard stays in PEP only: the vCard's own limit holds.
  if (utf8Bytes(serialize(vcard, NS_VCARD)) > maxBytes) {
    return undefined;
  }
  return { vcard, avatarHash: photoHash(vcard) };
}

function publishesMetadata(payload: Element): boolean {
  return childElements(payload, NS_PUBSUB).some((c) =>
    c.name === "publish" && c.attrs.node === NS_AVATAR_METADATA
  );
}

/** After a successful PEP publish to the metadata node: the vCard follows (XEP-0398 §3.1). */
function afterPepPublish(
  result: AccountIqResult,
  iq: Element,
  payload: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  if (iq.attrs.type !== "set" || !("data" in result) || !publishesMetadata(payload)) {
    return result;
  }
  const avatar = pepAvatar(result.data);
  if (avatar === undefined) return result;
  const vcard = vcardWithAvatar(ctx.also?.[VCARD_STORE], avatar, ctx.limits.vcardBytes);
  if (vcard === undefined) return result;
  // The user's sessions announce the new hash in their presence (XEP-0398 §4).
  const hash: AccountOutput = { kind: "avatar-hash", hash: vcard.avatarHash };
  return {
    ...result,
    alsoData: { ...result.alsoData, [VCARD_STORE]: vcard },
    outputs: [...(result.outputs ?? []), hash],
  };
}

/** After a successful vCard set: its photo is published over PEP too (XEP-0398 §3.2). */
function afterVcardSet(
  result: AccountIqResult,
  data: unknown,
  iq: Element,
  ctx: AccountIqCtx,
): AccountIqResult {
  if (iq.attrs.type !== "set" || !("data" in result)) return result;
  const pep = ctx.also?.[PEP_STORE];
  const after = vcardAvatar(vcardData(result.data));
  const outputs: AccountOutput[] = [];
  let next: unknown = pep;
  if (after !== undefined && after.id !== pepAvatarId(pep)) {
    const bytes = decode(after.base64)?.length ?? 0;
    // §3.2: the data first, then the metadata that points to it.
    const data = publishedByServer(
      next,
      NS_AVATAR_DATA,
      after.id,
      elem("data", { xmlns: NS_AVATAR_DATA }, [after.base64]),
      ctx,
    );
    const metadata = data === undefined ? undefined : publishedByServer(
      data.data,
      NS_AVATAR_METADATA,
      after.id,
      elem("metadata", { xmlns: NS_AVATAR_METADATA }, [
        elem("info", { id: after.id, type: after.type, bytes: String(bytes) }),
      ]),
      ctx,
    );
    // PEP's bounds refused the image (or a node): the vCard keeps it, PEP stays as it was.
    if (data !== undefined && metadata !== undefined) {
      next = metadata.data;
      outputs.push(...data.outputs, ...metadata.outputs);
    }
  } else if (
    after === undefined && vcardData(data)?.avatarHash !== undefined &&
    pepAvatarId(pep) !== undefined
  ) {
    // The photo was removed: XEP-0084 §4.5 disables the avatar with empty metadata.
    const metadata = publishedByServer(
      next,
      NS_AVATAR_METADATA,
      ctx.newId(),
      elem("metadata", { xmlns: NS_AVATAR_METADATA }),
      ctx,
    );
    if (metadata !== undefined) {
      next = metadata.data;
      outputs.push(...metadata.outputs);
    }
  }
  if (next === pep) return result;
  return {
    ...result,
    alsoData: { ...result.alsoData, [PEP_STORE]: next },
    outputs: [...(result.outputs ?? []), ...outputs],
  };
}

function wrapped(
  m: Module,
  key: string,
  also: string,
  after: (
    result: AccountIqResult,
    data: unknown,
    iq: Element,
    payload: Element,
    ctx: AccountIqCtx,
  ) => AccountIqResult,
): Module {
  const account = m.account;
  const inner = account?.iq[key];
  if (account === undefined || inner === undefined) return m;
  const handler: AccountIqHandler = (data, iq, payload, ctx) =>
    after(inner(data, iq, payload, ctx), data, iq, payload, ctx);
  return {
    ...m,
    account: {
      ...account,
      alsoStores: [...new Set([...(account.alsoStores ?? []), also])],
      iq: { ...account.iq, [key]: handler },
    },
  };
}

/** The vCard module whose photo is also published as the PEP avatar; it announces XEP-0398. */
export function vcardWithAvatars(vcard: Module): Module {
  const m = wrapped(
    vcard,
    `${NS_VCARD} vCard`,
    PEP_STORE,
    (result, data, iq, _payload, ctx) => afterVcardSet(result, data, iq, ctx),
  );
  return { ...m, accountFeatures: [...(m.accountFeatures ?? []), NS_PEP_VCARD_CONVERSION] };
}

/** The PEP module whose avatar publications also set the vCard's photo. */
export function pepWithAvatars(pep: Module): Module {
  return wrapped(
    pep,
    `${NS_PUBSUB} pubsub`,
    VCARD_STORE,
    (result, _data, iq, payload, ctx) => afterPepPublish(result, iq, payload, ctx),
  );
}
