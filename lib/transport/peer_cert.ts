/**
 * A peer's certificate as facts for the server-to-server reducers (XEP-0178): the names it
 * presents and whether it chains to a CA we trust. The names are read from the DER with a
 * small walker because @peculiar/x509 refuses subjectAltNames with other-name forms it does
 * not know, which is exactly what XMPP's id-on-xmppAddr and id-on-dnsSRV are. The chain is
 * checked with node:crypto here because Deno's node:tls does not verify client certificates
 * (a server socket with `requestCert` reports every peer as unauthorized, without a reason).
 * @module
 */
import { X509Certificate } from "node:crypto";
import tls from "node:tls";
import type { CertNames, PeerCert } from "../xmpp/cert_names.ts";

interface Tlv {
  readonly tag: number;
  /** Where the content starts and ends. */
  readonly start: number;
  readonly end: number;
}

/** The DER element at `off` (definite lengths only, as DER requires). */
function tlvAt(der: Uint8Array, off: number): Tlv {
  if (off + 2 > der.length) throw new Error("truncated DER");
  const tag = der[off];
  let len = der[off + 1];
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4 || start + n > der.length) throw new Error("bad DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i];
    start += n;
  }
  const end = start + len;
  if (end > der.length) throw new Error("truncated DER");
  return { tag, start, end };
}

/** The elements inside a constructed one. */
function childrenOf(der: Uint8Array, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let off = parent.start; off < parent.end;) {
    const t = tlvAt(der, off);
    out.push(t);
    off = t.end;
  }
  return out;
}

function hex(der: Uint8Array, t: Tlv): string {
  let s = "";
  for (let i = t.start; i < t.end; i++) s += der[i].toString(16).padStart(2, "0");
  return s;
}

const OID_SAN = "551d11"; // 2.5.29.17
const OID_CN = "550403"; // 2.5.4.3
const OID_XMPP_ADDR = "2b06010505070805"; // 1.3.6.1.5.5.7.8.5, RFC 6120 §13.7.1.4
const OID_SRV_NAME = "2b06010505070807"; // 1.3.6.1.5.5.7.8.7, RFC 4985

const utf8 = new TextDecoder("utf-8", { fatal: false });

/** A directory or IA5 string's text. */
function stringOf(der: Uint8Array, t: Tlv): string {
  const bytes = der.subarray(t.start, t.end);
  if (t.tag === 0x1e) {
    // BMPString: UTF-16 big-endian.
    let s = "";
    for (let i = 0; i + 1 < bytes.length; i += 2) {
      s += String.fromCharCode(bytes[i] * 256 + bytes[i + 1]);
    }
    return s;
  }
  if (t.tag === 0x14) return String.fromCharCode(...bytes); // T61String, read as Latin-1
  return utf8.decode(bytes);
}

/** The names in a subjectAltName extension's value (a GeneralNames SEQUENCE). */
function sanNames(der: Uint8Array, value: Tlv, into: {
  dns: string[];
  srv: string[];
  xmpp: string[];
  uri: string[];
}): void {
  for (const gn of childrenOf(der, tlvAt(der, value.start))) {
    if (gn.tag === 0x82) into.dns.push(stringOf(der, gn));
    else if (gn.tag === 0x86) into.uri.push(stringOf(der, gn));
    else if (gn.tag === 0xa0) {
      // otherName: type-id OID, then [0] EXPLICIT the value.
      const [oid, wrapped] = childrenOf(der, gn);
      if (oid === undefined || wrapped === undefined || oid.tag !== 0x06) continue;
      const inner = tlvAt(der, wrapped.start);
      const kind = hex(der, oid);
      if (kind === OID_XMPP_ADDR) into.xmpp.push(stringOf(der, inner));
      else if (kind === OID_SRV_NAME) into.srv.push(stringOf(der, inner));
    }
  }
}

/** The common names of a Name (SEQUENCE OF SET OF AttributeTypeAndValue). */
function commonNames(der: Uint8Array, name: Tlv): string[] {
  const out: string[] = [];
  for (const rdn of childrenOf(der, name)) {
    for (const atv of childrenOf(der, rdn)) {
      const [type, value] = childrenOf(der, atv);
      if (type?.tag === 0x06 && value !== undefined && hex(der, type) === OID_CN) {
        out.push(stringOf(der, value));
      }
    }
  }
  return out;
}

const NO_NAMES: CertNames = { dns: [], srv: [], xmpp: [], uri: [], cn: [] };

/**
 * The identifiers a DER certificate presents (RFC 6125 §6.4: DNS-IDs, SRV-IDs, XmppAddrs,
 * URI-IDs, and the subject's CNs); no names at all when it does not parse.
 */
export function certNamesOf(der: Uint8Array): CertNames {
  try {
    const cert = tlvAt(der, 0);
    const tbs = childrenOf(der, tlvAt(der, cert.start));
    // The optional [0] version shifts the fields by one.
    const base = tbs[0]?.tag === 0xa0 ? 1 : 0;
    const subject = tbs[base + 4];
    const into = { dns: [] as string[], srv: [] as string[], xmpp: [] as string[], uri: [] };
    const extensions = tbs.find((t) => t.tag === 0xa3);
    if (extensions !== undefined) {
      for (const ext of childrenOf(der, tlvAt(der, extensions.start))) {
        const parts = childrenOf(der, ext);
        if (parts[0]?.tag !== 0x06 || hex(der, parts[0]) !== OID_SAN) continue;
        const value = parts[parts.length - 1];
        if (value.tag === 0x04) sanNames(der, value, into);
      }
    }
    const cn = subject?.tag === 0x30 ? commonNames(der, subject) : [];
    return { ...into, cn };
  } catch {
    return NO_NAMES;
  }
}

/** The CAs a peer's chain may end at. */
export interface TrustStore {
  /** Trusted certificates by subject. */
  readonly bySubject: ReadonlyMap<string, readonly X509Certificate[]>;
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Every certificate in PEM text (a bundle). */
export function pemCertificates(text: string): string[] {
  return text.match(PEM_CERT) ?? [];
}

/** The system's roots (as node:tls knows them) plus `extra` (PEM, the `ca_file`). */
export function trustStore(extra: readonly string[] = []): TrustStore {
  const bySubject = new Map<string, X509Certificate[]>();
  for (const pem of [...tls.rootCertificates, ...extra]) {
    let cert: X509Certificate;
    try {
      cert = new X509Certificate(pem);
    } catch {
      continue;
    }
    const list = bySubject.get(cert.subject) ?? [];
    list.push(cert);
    bySubject.set(cert.subject, list);
  }
  return { bySubject };
}

function current(cert: X509Certificate, now: number): boolean {
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  return !(from > now) && !(to < now);
}

function issues(issuer: X509Certificate, cert: X509Certificate): boolean {
  try {
    return cert.checkIssued(issuer) && cert.verify(issuer.publicKey);
  } catch {
    return false;
  }
}

/** Links a chain may have between the peer's certificate and a trusted one. */
const MAX_DEPTH = 8;

/**
 * Whether `chain` (DER, the peer's certificate first, then what it sent along) leads to a
 * certificate of `store`: each link issued and signed by the next, intermediates marked as
 * CAs, all within their validity at `now`. Names are not looked at here.
 */
export function chainTrusted(
  chain: readonly Uint8Array[],
  store: TrustStore,
  now = Date.now(),
): boolean {
  let certs: X509Certificate[];
  try {
    certs = chain.map((der) => new X509Certificate(der));
  } catch {
    return false;
  }
  let cert = certs[0];
  if (cert === undefined) return false;
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    if (!current(cert, now)) return false;
    const c = cert;
    for (const root of store.bySubject.get(c.issuer) ?? []) {
      if (current(root, now) && (root.fingerprint256 === c.fingerprint256 || issues(root, c))) {
        return true;
      }
    }
    const next = certs.find((i) => i !== c && i.ca && issues(i, c));
    if (next === undefined) return false;
    cert = next;
  }
  return false;
}

/** The DER chain a node:tls socket received from its peer, the peer's certificate first. */
export function peerChain(socket: tls.TLSSocket): Uint8Array[] {
  const out: Uint8Array[] = [];
  const seen = new Set<string>();
  let c = socket.getPeerCertificate(true) as tls.DetailedPeerCertificate | undefined;
  while (c !== undefined && c.raw !== undefined && out.length < MAX_DEPTH + 1) {
    const key = c.fingerprint256 ?? String(out.length);
    if (seen.has(key)) break;
    seen.add(key);
    out.push(new Uint8Array(c.raw));
    c = c.issuerCertificate;
  }
  return out;
}

/** What the server side of a TLS session learned of the peer (none when it sent no certificate). */
export function peerCertOf(socket: tls.TLSSocket, store: TrustStore): PeerCert | undefined {
  const chain = peerChain(socket);
  if (chain.length === 0) return undefined;
  return { trusted: chainTrusted(chain, store), names: certNamesOf(chain[0]) };
}
