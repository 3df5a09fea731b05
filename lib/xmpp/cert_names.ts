/**
 * Whether a certificate's names cover an XMPP domain (RFC 6125 as profiled by RFC 6120
 * §13.7.1.2 and XEP-0178): the identifiers a certificate presents, and the matching of a
 * domain against them. Pure: parsing the certificate is the transport's (lib/transport/
 * peer_cert.ts); the reducers decide with these facts.
 * @module
 */

/** The identifiers a certificate presents, as written in it. */
export interface CertNames {
  /** subjectAltName dNSName entries (DNS-IDs), possibly with a `*.` wildcard label. */
  readonly dns: readonly string[];
  /** id-on-dnsSRV entries (SRV-IDs, RFC 4985), e.g. `_xmpp-server.example.org`. */
  readonly srv: readonly string[];
  /** id-on-xmppAddr entries (RFC 6120 §13.7.1.4): JIDs; a bare domain names a server. */
  readonly xmpp: readonly string[];
  /** uniformResourceIdentifier entries: not matched, but their presence rules out the CN. */
  readonly uri: readonly string[];
  /** The subject's common names, a fallback only when no other identifier is present. */
  readonly cn: readonly string[];
}

/** What the TLS layer learned of a peer's certificate. */
export interface PeerCert {
  /** It chains to a CA we trust and is within its validity period (the name not checked). */
  readonly trusted: boolean;
  readonly names: CertNames;
}

/** The services whose SRV-IDs name an XMPP server (XEP-0368 adds the direct TLS one). */
const SERVER_SERVICES: readonly string[] = ["_xmpp-server.", "_xmpps-server."];

/**
 * A domain in the ASCII form certificates use (A-labels, lower case, no trailing dot); the
 * input lowercased when it is not a valid host name.
 */
export function asciiDomain(domain: string): string {
  const d = domain.replace(/\.$/, "").toLowerCase();
  if (/^[a-z0-9.-]*$/.test(d)) return d;
  try {
    return new URL(`http://${d}/`).hostname;
  } catch {
    return d;
  }
}

/**
 * True when a DNS-ID (`pattern`) matches `domain` (both ASCII): equal, or a wildcard `*` as the
 * whole leftmost label standing for exactly one label (RFC 6125 §6.4.3), never over a bare
 * top-level name (`*.org`).
 */
export function dnsIdMatches(pattern: string, domain: string): boolean {
  const p = asciiDomain(pattern);
  if (!p.startsWith("*.")) return p === domain && p !== "";
  const rest = p.slice(2);
  if (!rest.includes(".") || rest.includes("*")) return false;
  const dot = domain.indexOf(".");
  return dot > 0 && domain.slice(dot + 1) === rest;
}

/**
 * True when the certificate names `domain` as an XMPP server (RFC 6120 §13.7.1.2.1, XEP-0178
 * §2): a SRV-ID for the XMPP server service, an XmppAddr that is the bare domain, a DNS-ID
 * (wildcards allowed); the CN only when the certificate has none of these nor a URI-ID
 * (RFC 6125 §6.4.4).
 */
export function certCoversDomain(names: CertNames, domain: string): boolean {
  const d = asciiDomain(domain);
  if (d === "") return false;
  for (const srv of names.srv) {
    const s = srv.toLowerCase();
    for (const service of SERVER_SERVICES) {
      if (s.startsWith(service) && asciiDomain(s.slice(service.length)) === d) return true;
    }
  }
  // XmppAddr holds a JID, in its internationalised form and without wildcards.
  for (const jid of names.xmpp) {
    if (!jid.includes("@") && !jid.includes("/") && asciiDomain(jid) === d) return true;
  }
  for (const pattern of names.dns) if (dnsIdMatches(pattern, d)) return true;
  const other = names.dns.length + names.srv.length + names.xmpp.length + names.uri.length;
  if (other > 0) return false;
  // The CN is a DNS name too, but RFC 6125 §6.4.4 keeps wildcards out of this last resort.
  return names.cn.some((cn) => !cn.includes("*") && asciiDomain(cn) === d);
}

/** True when the peer's certificate is trusted and names `domain`: it proves the peer is it. */
export function certValidFor(peer: PeerCert | undefined, domain: string): boolean {
  return peer !== undefined && peer.trusted && certCoversDomain(peer.names, domain);
}
