/**
 * Admission of client connections: how many may be open in all, from one address, and from one
 * address before they authenticate (`[limits] max_connections`, `max_connections_per_ip`,
 * `max_unauthed_per_ip`), and the clean refusal of those past the limits (RFC 6120 §4.9.3.13
 * `<policy-violation/>`). Also the throttle of wrong component handshakes per address.
 * @module
 */
import type { Limits } from "../limits.ts";
import { clientHeader } from "../xmpp/stream_xml.ts";
import { createStreamParser } from "../xml/parser.ts";
import { NS_CLIENT } from "../xmpp/namespaces.ts";
import { prepDomainpart } from "../xmpp/jid.ts";
import { tcpFrame } from "../transport/tcp_framing.ts";
import { writeAll } from "../transport/tls.ts";

/** A counted connection. */
export interface Ticket {
  /** The connection's session authenticated: it no longer counts as unauthenticated. */
  authenticated(): void;
  /** The socket is gone (idempotent). */
  release(): void;
}

/** The outcome of {@link Admission.admit}. */
export type Admitted =
  | { readonly ok: true; readonly ticket: Ticket }
  | { readonly ok: false; readonly reason: string };

/** Counts of open client connections. */
export interface Admission {
  admit(ip: string): Admitted;
  /** Open connections in all, and from `ip` (all, unauthenticated), for tests and logs. */
  counts(ip: string): { readonly total: number; readonly ip: number; readonly unauthed: number };
}

type AdmissionLimits = Pick<Limits, "maxConnections" | "maxConnectionsPerIp" | "maxUnauthedPerIp">;

/**
 * True for a loopback address: the machine itself (a load test, a reverse proxy, a local bot),
 * which the per-address caps must not cut off when `exempt_loopback` is on.
 */
export function isLoopback(ip: string): boolean {
  return ip === "::1" || ip.startsWith("127.") || ip.startsWith("::ffff:127.");
}

/**
 * Connection counting under `limits`; its memory is one entry per address with connections.
 * `exempt(ip)`: the per-address caps do not apply to this address (the total still does).
 */
export function createAdmission(
  limits: AdmissionLimits,
  exempt: (ip: string) => boolean = () => false,
): Admission {
  let total = 0;
  // Keyed by address: Maps, and entries go at zero, so they never outgrow the connections.
  const perIp = new Map<string, number>();
  const unauthedPerIp = new Map<string, number>();
  const add = (m: Map<string, number>, ip: string, d: number) => {
    const n = (m.get(ip) ?? 0) + d;
    if (n <= 0) m.delete(ip);
    else m.set(ip, n);
  };
  return {
    admit(ip) {
      if (total >= limits.maxConnections) return { ok: false, reason: "too many connections" };
      const capped = !exempt(ip);
      if (capped && (perIp.get(ip) ?? 0) >= limits.maxConnectionsPerIp) {
        return { ok: false, reason: "too many connections from your address" };
      }
      if (capped && (unauthedPerIp.get(ip) ?? 0) >= limits.maxUnauthedPerIp) {
        return { ok: false, reason: "too many unauthenticated connections from your address" };
      }
      total++;
      add(perIp, ip, 1);
      add(unauthedPerIp, ip, 1);
      let unauthed = true;
      let open = true;
      const authenticated = () => {
        if (!unauthed) return;
        unauthed = false;
        add(unauthedPerIp, ip, -1);
      };
      return {
        ok: true,
        ticket: {
          authenticated,
          release() {
            if (!open) return;
            authenticated();
            open = false;
            total--;
            add(perIp, ip, -1);
          },
        },
      };
    },
    counts: (ip) => ({
      total,
      ip: perIp.get(ip) ?? 0,
      unauthed: unauthedPerIp.get(ip) ?? 0,
    }),
  };
}

/** Refusals waiting for a stream header at once; past this a refused socket is just closed. */
const MAX_PENDING_REFUSALS = 64;
let pendingRefusals = 0;

/**
 * Refuses a client connection cleanly: waits (briefly, for a bounded number of bytes) for its
 * stream header, answers with ours, a `<policy-violation/>` stream error and the closing tag
 * (RFC 6120 §4.9.1.1, §4.9.3.13), and closes. Without a header in time, or when many refusals
 * are already waiting, the socket is closed at once.
 */
export async function refuseConnection(
  conn: Deno.Conn,
  opts: {
    readonly hosts: readonly string[];
    readonly reason: string;
    readonly maxBytes: number;
    readonly timeoutMs: number;
  },
): Promise<void> {
  if (pendingRefusals >= MAX_PENDING_REFUSALS) return closeQuietly(conn);
  pendingRefusals++;
  const timer = setTimeout(() => closeQuietly(conn), opts.timeoutMs);
  try {
    const parser = createStreamParser({ maxStanzaBytes: opts.maxBytes, maxDepth: 2 });
    const buf = new Uint8Array(1024);
    let read = 0;
    while (read < opts.maxBytes) {
      const n = await conn.read(buf);
      if (n === null) return;
      read += n;
      for (const ev of parser.push(buf.subarray(0, n))) {
        if (ev.kind === "error") return;
        if (ev.kind !== "stream-open") continue;
        const to = prepDomainpart(ev.attrs.to ?? "");
        const from = to !== undefined && opts.hosts.includes(to) ? to : opts.hosts[0];
        // RFC 6120 §4.9.1.2: our header first, then the error and the close.
        const text = tcpFrame(
          { kind: "open-stream", header: clientHeader(from, crypto.randomUUID()) },
          NS_CLIENT,
        ) + tcpFrame(
          { kind: "close-stream", error: { condition: "policy-violation", text: opts.reason } },
          NS_CLIENT,
        );
        await writeAll(conn, new TextEncoder().encode(text));
        return;
      }
    }
  } catch {
    // the peer went away, or the timer closed the socket
  } finally {
    clearTimeout(timer);
    pendingRefusals--;
    closeQuietly(conn);
  }
}

function closeQuietly(conn: Deno.Conn): void {
  try {
    conn.close();
  } catch {
    // already closed
  }
}

/** Wrong component handshakes per address; see {@link createHandshakeThrottle}. */
export interface HandshakeThrottle {
  isThrottled(ip: string, now: number): boolean;
  recordFailure(ip: string, now: number): void;
}

/**
 * After `maxFailures` wrong handshakes from one address within `windowMs`, that address is
 * refused until the oldest of them leaves the window. Bounded: at `maxKeys` addresses the
 * oldest entry goes (a Map keeps insertion order).
 */
export function createHandshakeThrottle(opts: {
  readonly maxFailures: number;
  readonly windowMs: number;
  readonly maxKeys?: number;
}): HandshakeThrottle {
  const failures = new Map<string, number[]>();
  const maxKeys = opts.maxKeys ?? 10_000;
  const recent = (ip: string, now: number): number[] => {
    const kept = (failures.get(ip) ?? []).filter((t) => now - t < opts.windowMs);
    if (kept.length === 0) failures.delete(ip);
    return kept;
  };
  return {
    isThrottled: (ip, now) => recent(ip, now).length >= opts.maxFailures,
    recordFailure(ip, now) {
      const list = recent(ip, now);
      list.push(now);
      failures.delete(ip);
      if (failures.size >= maxKeys) failures.delete(failures.keys().next().value!);
      failures.set(ip, list.slice(-opts.maxFailures));
    },
  };
}
