/**
 * The XEP-0363 HTTP file upload service on its own domain, as a pure reducer: disco#info with
 * the XEP-0128 `max-file-size` form, and slot requests checked for size, type, filename and
 * quota. A granted slot is returned as an output for the shell to remember; the bytes arrive
 * over HTTP (lib/transport/upload_http.ts), which checks the PUT against the slot and its token.
 * @module
 */
import { createHmac, timingSafeEqual } from "node:crypto";
import { child, elem, type Element } from "../../xml/element.ts";
import { errorReply, iqResult, type StanzaErrorCondition } from "../../xmpp/errors.ts";
import { NS_DATA, NS_DISCO_INFO, NS_DISCO_ITEMS, NS_STANZA_ERRORS } from "../../xmpp/namespaces.ts";

/** How the upload service is set up (`[upload]`): what the configuration and the HTTP side share. */
export interface UploadPolicy {
  /** Its domain (`domain`, default `upload.<first host>`). */
  readonly domain: string;
  /** The largest file in bytes (`max_file_size`, default 10 MiB). */
  readonly maxFileSize: number;
  /** MIME types allowed, `image/*` for a family (`allowed_types`); empty: any. */
  readonly allowedTypes: readonly string[];
  /** Bytes one user may have stored (`quota_per_user`, default 100 MiB). */
  readonly quotaPerUser: number;
  /** Bytes all users may have stored (`quota_total`, default 1 GiB). */
  readonly quotaTotal: number;
  /** Seconds a file is kept (`expires_after`, default "7d"); `Infinity`: for ever. */
  readonly expiresAfter: number;
}
export const NS_HTTP_UPLOAD = "urn:xmpp:http:upload:0";

/** The path under which slots are served on the HTTP port. */
export const UPLOAD_PATH = "/upload/";

/** How long a granted slot may be used for its PUT. */
export const SLOT_LIFETIME_MS = 5 * 60_000;

/** The longest filename accepted, in characters. */
export const MAX_FILENAME_LENGTH = 255;

/** A granted slot: what the PUT must carry, and whose quota it counts against. */
export interface Slot {
  readonly id: string;
  readonly filename: string;
  readonly size: number;
  readonly contentType: string;
  /** The bare JID that asked for it. */
  readonly owner: string;
  /** Milliseconds since the epoch after which the PUT is refused. */
  readonly expires: number;
}

/** What a step asks the shell to do. */
export type UploadOutput =
  | { readonly kind: "route"; readonly stanza: Element }
  | { readonly kind: "slot"; readonly slot: Slot };

/** What the reducer reads. */
export interface UploadCtx {
  readonly domain: string;
  readonly maxFileSize: number;
  /** `text/plain`, `image/*`; empty: any type. */
  readonly allowedTypes: readonly string[];
  readonly quotaPerUser: number;
  readonly quotaTotal: number;
  /** Whether a bare JID is one of this server's users. */
  readonly isLocal: (bare: string) => boolean;
  /** Bytes stored (and reserved by open slots) for a bare JID, and for everyone. */
  readonly usedBy: (bare: string) => number;
  readonly usedTotal: number;
  readonly now: number;
  readonly newId: () => string;
  /** The HMAC key of slot tokens. */
  readonly key: Uint8Array;
  /** Where slots are served, without a trailing slash (`http://localhost:5280`). */
  readonly baseUrl: string;
}

/** The token a PUT must carry: an HMAC of everything the slot fixes. */
export function slotToken(key: Uint8Array, slot: Omit<Slot, "owner">): string {
  return createHmac("sha256", key)
    .update([slot.id, slot.filename, String(slot.size), slot.contentType, String(slot.expires)]
      .join("\n"))
    .digest("base64url");
}

/** Whether `header` (an `Authorization` value) carries the slot's token. */
export function tokenMatches(key: Uint8Array, slot: Slot, header: string | null): boolean {
  if (header === null) return false;
  const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (m === null) return false;
  const want = new TextEncoder().encode(slotToken(key, slot));
  const got = new TextEncoder().encode(m[1]);
  return got.length === want.length && timingSafeEqual(got, want);
}

/**
 * A filename that is safe in a URL path segment and on disk: no path separators, no `.`/`..`,
 * no control characters, not too long.
 */
export function validFilename(name: string): boolean {
  if (name.length === 0 || name.length > MAX_FILENAME_LENGTH) return false;
  if (name === "." || name === "..") return false;
  // deno-lint-ignore no-control-regex
  return !/[\/\\\u0000-\u001f\u007f]/.test(name);
}

/** Whether `type` is allowed by `allowed` (empty: any; `image/*` a family). */
export function typeAllowed(type: string, allowed: readonly string[]): boolean {
  if (allowed.length === 0) return true;
  const t = type.toLowerCase();
  return allowed.some((a) => a === t || (a.endsWith("/*") && t.startsWith(a.slice(0, -1))));
}

/** The URL path of a slot: its id, then the filename as one escaped segment. */
export function slotPath(id: string, filename: string): string {
  return `${UPLOAD_PATH}${id}/${encodeURIComponent(filename)}`;
}

const MIME = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/i;

function bareOf(jid: string | undefined): string | undefined {
  if (jid === undefined) return undefined;
  const slash = jid.indexOf("/");
  return slash < 0 ? jid : jid.slice(0, slash);
}

function route(stanza: Element): UploadOutput {
  return { kind: "route", stanza };
}

/**
 * An error reply. The text carries no `xml:lang` (as Prosody's), so that the conformance
 * scripts recorded against it match exactly.
 */
function fail(
  iq: Element,
  condition: StanzaErrorCondition,
  text?: string,
  extra?: Element,
): UploadOutput[] {
  const reply = errorReply(iq, condition, { extra });
  if (text === undefined) return [route(reply)];
  const error = reply.children[0] as Element;
  const [cond, ...rest] = error.children;
  return [route({
    ...reply,
    children: [{
      ...error,
      children: [cond, elem("text", { xmlns: NS_STANZA_ERRORS }, [text]), ...rest],
    }],
  })];
}

function field(name: string, value: string, type?: string): Element {
  return elem("field", { var: name, type }, [elem("value", {}, [value])]);
}

function discoInfo(iq: Element, query: Element, ctx: UploadCtx): UploadOutput[] {
  if (query.attrs.node !== undefined) return fail(iq, "item-not-found");
  return [route(iqResult(
    iq,
    elem("query", { xmlns: NS_DISCO_INFO }, [
      elem("identity", { category: "store", type: "file", name: "HTTP File Upload" }),
      elem("feature", { var: NS_DISCO_INFO }),
      elem("feature", { var: NS_HTTP_UPLOAD }),
      // XEP-0363 §2: the limit, so that clients refuse large files before asking.
      elem("x", { xmlns: NS_DATA, type: "result" }, [
        field("FORM_TYPE", NS_HTTP_UPLOAD, "hidden"),
        field("max-file-size", String(ctx.maxFileSize)),
      ]),
    ]),
  ))];
}

function request(iq: Element, req: Element, ctx: UploadCtx): UploadOutput[] {
  const owner = bareOf(iq.attrs.from);
  if (owner === undefined || !owner.includes("@") || !ctx.isLocal(owner)) {
    return fail(iq, "forbidden", "Only local users may upload files");
  }
  const { filename = "", size: sizeText = "" } = req.attrs;
  const size = /^\d{1,16}$/.test(sizeText) ? Number(sizeText) : NaN;
  if (!Number.isSafeInteger(size) || size <= 0) {
    return fail(iq, "bad-request", "File size must be positive integer");
  }
  if (size > ctx.maxFileSize) {
    // XEP-0363 §4.1: not-acceptable with the limit.
    return fail(
      iq,
      "not-acceptable",
      "File too large",
      elem("file-too-large", { xmlns: NS_HTTP_UPLOAD }, [
        elem("max-file-size", {}, [String(ctx.maxFileSize)]),
      ]),
    );
  }
  if (!validFilename(filename)) return fail(iq, "bad-request", "Invalid filename");
  const declared = req.attrs["content-type"];
  const contentType = declared === undefined || declared === ""
    ? "application/octet-stream"
    : declared.toLowerCase();
  if (!MIME.test(contentType) || !typeAllowed(contentType, ctx.allowedTypes)) {
    return fail(iq, "not-acceptable", "File type not allowed");
  }
  if (ctx.usedBy(owner) + size > ctx.quotaPerUser) {
    return fail(iq, "resource-constraint", "Upload quota exceeded");
  }
  if (ctx.usedTotal + size > ctx.quotaTotal) {
    return fail(iq, "resource-constraint", "The upload service is full");
  }
  const slot: Slot = {
    id: ctx.newId(),
    filename,
    size,
    contentType,
    owner,
    expires: ctx.now + SLOT_LIFETIME_MS,
  };
  const url = ctx.baseUrl + slotPath(slot.id, filename);
  return [
    { kind: "slot", slot },
    route(iqResult(
      iq,
      elem("slot", { xmlns: NS_HTTP_UPLOAD }, [
        elem("get", { url }),
        elem("put", { url }, [
          elem("header", { name: "Authorization" }, [`Bearer ${slotToken(ctx.key, slot)}`]),
        ]),
      ]),
    )),
  ];
}

/** One stanza to the service: what to answer, and the slot granted if any. */
export function reduceUpload(stanza: Element, ctx: UploadCtx): readonly UploadOutput[] {
  if (stanza.name !== "iq") return [];
  const type = stanza.attrs.type;
  if (type !== "get" && type !== "set") return [];
  if (stanza.attrs.to !== ctx.domain) return fail(stanza, "service-unavailable");
  const payload = stanza.children.find((c): c is Element => typeof c !== "string");
  if (payload === undefined) return fail(stanza, "bad-request");
  if (type === "get" && payload.name === "query" && payload.xmlns === NS_DISCO_INFO) {
    return discoInfo(stanza, payload, ctx);
  }
  if (type === "get" && payload.name === "query" && payload.xmlns === NS_DISCO_ITEMS) {
    return [route(iqResult(stanza, elem("query", { xmlns: NS_DISCO_ITEMS })))];
  }
  const req = child(stanza, "request", NS_HTTP_UPLOAD);
  if (type === "get" && req !== undefined) return request(stanza, req, ctx);
  return fail(stanza, "service-unavailable");
}
