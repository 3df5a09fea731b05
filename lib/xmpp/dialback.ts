/**
 * Server dialback keys (XEP-0220 with the key generation of XEP-0185): the originating server
 * proves it is the authoritative server for its domain by a key only that domain's servers can
 * make again, from a secret they share and never send.
 * @module
 */
import { createHash, createHmac, timingSafeEqual } from "node:crypto";
import { elem, type Element } from "../xml/element.ts";
import { NS_DIALBACK } from "./namespaces.ts";

/**
 * The key for a stream `streamId` from `originating` to `receiving` (XEP-0185 §3):
 * HEX(HMAC-SHA256(SHA256(secret), receiving + " " + originating + " " + streamId)).
 */
export function dialbackKey(
  secret: string,
  receiving: string,
  originating: string,
  streamId: string,
): string {
  const k = createHash("sha256").update(secret, "utf8").digest("hex");
  return createHmac("sha256", k)
    .update(`${receiving} ${originating} ${streamId}`, "utf8")
    .digest("hex");
}

/** True when `given` is `expected`, compared in constant time. */
export function dialbackKeyMatches(given: string, expected: string): boolean {
  const a = new TextEncoder().encode(given.trim().toLowerCase());
  const b = new TextEncoder().encode(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

/** `<db:result from to>key</db:result>`, or its answer with a `type`. */
export function dbResult(from: string, to: string, key?: string, type?: string): Element {
  return elem("result", { xmlns: NS_DIALBACK, from, to, type }, key === undefined ? [] : [key]);
}

/** `<db:verify from to id>key</db:verify>`, or its answer with a `type`. */
export function dbVerify(
  from: string,
  to: string,
  id: string,
  key?: string,
  type?: string,
): Element {
  return elem("verify", { xmlns: NS_DIALBACK, from, to, id, type }, key === undefined ? [] : [key]);
}
