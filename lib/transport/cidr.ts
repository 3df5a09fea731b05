/**
 * IP address ranges in CIDR notation (`10.0.0.0/8`, `fd00::/8`), for `trusted_proxies`
 * (./http.ts `peerOf`). A plain address is a range of one (`/32`, `/128`). An IPv4-mapped IPv6
 * address (`::ffff:10.0.0.1`, what a dual-stack socket reports for an IPv4 peer) is the IPv4
 * address it carries, and a range inside `::ffff:0:0/96` the IPv4 range it carries: a proxy
 * listed as `10.0.0.1` is the same proxy whichever socket family it reached us over. Other IPv6
 * ranges (`::/0` included) hold IPv6 addresses only.
 *
 * The address syntax is `node:net`'s `isIP` (lib/config.ts checks entries with the same rule,
 * as it cannot import this layer); a zone (`fe80::1%eth0`) is not part of the address.
 * @module
 */
import { isIP } from "node:net";

/** One range: the first `prefix` bits of `bytes` (4 for IPv4, 16 for IPv6). */
export interface Cidr {
  readonly family: 4 | 6;
  readonly bytes: Uint8Array;
  readonly prefix: number;
}

const MAPPED_PREFIX = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

function v4Bytes(s: string): Uint8Array {
  return Uint8Array.from(s.split(".").map(Number));
}

/** The 16 bytes of an IPv6 address that `isIP` accepted (zone already removed). */
function v6Bytes(s: string): Uint8Array {
  const out = new Uint8Array(16);
  // A dotted IPv4 tail stands for the last two groups.
  let tail: Uint8Array | undefined;
  const lastColon = s.lastIndexOf(":");
  if (s.includes(".", lastColon)) {
    tail = v4Bytes(s.slice(lastColon + 1));
    s = s.slice(0, lastColon + 1) + "0:0";
  }
  const [head, rest] = s.split("::") as [string, string | undefined];
  const groups = (g: string) => g === "" ? [] : g.split(":").map((x) => parseInt(x, 16));
  const front = groups(head);
  const back = rest === undefined ? [] : groups(rest);
  const all = [...front, ...new Array(8 - front.length - back.length).fill(0), ...back];
  all.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  if (tail !== undefined) out.set(tail, 12);
  return out;
}

function isMapped(bytes: Uint8Array): boolean {
  return MAPPED_PREFIX.every((b, i) => bytes[i] === b);
}

/**
 * An address or CIDR range, or undefined when it is neither. Host bits past the prefix are
 * ignored (`10.0.0.1/8` is `10.0.0.0/8`), as most configuration tools read it.
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf("/");
  const addr = (slash === -1 ? text : text.slice(0, slash)).replace(/%.*$/, "");
  const family = isIP(addr);
  if (family !== 4 && family !== 6) return undefined;
  const max = family === 4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const len = text.slice(slash + 1);
    if (!/^\d{1,3}$/.test(len) || Number(len) > max) return undefined;
    prefix = Number(len);
  }
  if (family === 4) return { family, bytes: v4Bytes(addr), prefix };
  const bytes = v6Bytes(addr);
  if (prefix >= 96 && isMapped(bytes)) {
    return { family: 4, bytes: bytes.slice(12), prefix: prefix - 96 };
  }
  return { family, bytes, prefix };
}

/** True when `ip` (an address, possibly IPv4-mapped) lies in `range`. */
export function inCidr(ip: Cidr, range: Cidr): boolean {
  if (ip.family !== range.family) return false;
  const whole = range.prefix >> 3;
  for (let i = 0; i < whole; i++) if (ip.bytes[i] !== range.bytes[i]) return false;
  const bits = range.prefix & 7;
  if (bits === 0) return true;
  const mask = (0xff << (8 - bits)) & 0xff;
  return (ip.bytes[whole] & mask) === (range.bytes[whole] & mask);
}

/**
 * True when the address `ip` lies in one of `ranges` (addresses or CIDR ranges). Not an
 * address, or an entry that is not a range: no match (the configuration was checked at load).
 */
export function ipInRanges(ip: string, ranges: readonly string[]): boolean {
  if (ranges.length === 0 || ip.includes("/")) return false;
  const a = parseCidr(ip);
  if (a === undefined) return false;
  for (const r of ranges) {
    const range = parseCidr(r);
    if (range !== undefined && inCidr(a, range)) return true;
  }
  return false;
}
