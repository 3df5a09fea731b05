/**
 * TLS material: the certificate and key the server presents, either supplied by the operator
 * or made once per host as a self-signed pair, and the RFC 5929 `tls-server-end-point`
 * channel-binding value derived from the certificate.
 *
 * @module
 */

import { createHash, X509Certificate } from "node:crypto";
import { join } from "node:path";

/** A certificate (chain) and its private key, both PEM, and the leaf certificate as DER. */
export interface TlsMaterial {
  /** The certificate, followed by any intermediates, in PEM. */
  readonly certPem: string;
  /** The private key in PEM. */
  readonly keyPem: string;
  /** The leaf (first) certificate in DER, for channel binding. */
  readonly certDer: Uint8Array;
}

type X509 = typeof import("@peculiar/x509");

/**
 * @peculiar/x509 resolves its algorithms through tsyringe, which refuses to load unless a
 * `reflect-metadata` polyfill is present. That package is not a dependency, and tsyringe only
 * uses it for constructor-parameter metadata that x509's classes do not have, so a small
 * WeakMap-backed stand-in of the three calls it makes is enough. A real polyfill, if one is
 * ever loaded first, is left alone.
 */
function installReflectMetadata(): void {
  const reflect = Reflect as unknown as Record<string, unknown>;
  if (typeof reflect.getMetadata === "function") return;
  const store = new WeakMap<object, Map<unknown, unknown>>();
  const own = (key: unknown, target: object) => store.get(target)?.get(key);
  reflect.getOwnMetadata = own;
  reflect.getMetadata = (key: unknown, target: object) => {
    for (let t: object | null = target; t !== null; t = Object.getPrototypeOf(t)) {
      const map = store.get(t);
      if (map?.has(key)) return map.get(key);
    }
    return undefined;
  };
  reflect.defineMetadata = (key: unknown, value: unknown, target: object) => {
    let map = store.get(target);
    if (map === undefined) store.set(target, map = new Map());
    map.set(key, value);
  };
}

let loaded: Promise<X509> | undefined;

/**
 * @peculiar/x509, loaded the first time a certificate is made: it and what it pulls in hold
 * some 10 MB, which a server that already has its certificates never needs. The polyfill has
 * to be in place before x509 is evaluated, which a static import would do first.
 */
export function x509Module(): Promise<X509> {
  return loaded ??= (async () => {
    installReflectMetadata();
    const x509: X509 = await import("@peculiar/x509");
    x509.cryptoProvider.set(crypto);
    return x509;
  })();
}

const CERT_PEM = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/;
const KEY_PEM = /-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----[\s\S]+?-----END \1-----/;

const TEN_YEARS_MS = 3650 * 24 * 60 * 60 * 1000;

/** Rejects a host that could escape the certificate directory as a file name. */
function checkHostForFileName(host: string): void {
  if (host === "" || /[/\\\0]/.test(host) || host.startsWith(".")) {
    throw new Error(`cannot make a certificate for host ${JSON.stringify(host)}`);
  }
}

function randomSerial(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  // Positive (high bit clear) and without a leading zero octet, so DER keeps all 16 bytes.
  bytes[0] = (bytes[0] & 0x7f) | 0x40;
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function toPem(label: string, der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  const lines = b64.match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join("\n")}\n-----END ${label}-----\n`;
}

async function makeSelfSigned(host: string): Promise<TlsMaterial> {
  const x509 = await x509Module();
  const algorithm = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
  const keys = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
  // A little backdating tolerates clients whose clocks run slightly behind.
  const notBefore = new Date(Date.now() - 60 * 60 * 1000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: [{ CN: [host] }],
    notBefore,
    notAfter: new Date(notBefore.getTime() + TEN_YEARS_MS),
    signingAlgorithm: algorithm,
    keys,
    extensions: [
      new x509.SubjectAlternativeNameExtension([{ type: "dns", value: host }]),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
    ],
  });
  const pkcs8 = await crypto.subtle.exportKey("pkcs8", keys.privateKey);
  return {
    certPem: cert.toString("pem") + "\n",
    keyPem: toPem("PRIVATE KEY", pkcs8),
    certDer: new Uint8Array(cert.rawData),
  };
}

/** Writes a file so that readers see either nothing or all of it. */
async function writeAtomically(path: string, data: string, mode: number): Promise<void> {
  const temp = `${path}.tmp-${crypto.randomUUID()}`;
  try {
    const file = await Deno.open(temp, { write: true, createNew: true, mode });
    try {
      await file.write(new TextEncoder().encode(data));
      await file.sync();
    } finally {
      file.close();
    }
    // The mode given at creation is reduced by the umask; make sure of the intended one.
    await Deno.chmod(temp, mode);
    await Deno.rename(temp, path);
  } catch (err) {
    await Deno.remove(temp).catch(() => {});
    throw err;
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

/**
 * Returns the self-signed certificate for `host`, kept in `DATA/certs/<host>.crt` and
 * `DATA/certs/<host>.key` (mode 0600). The pair is made on first use (ECDSA P-256, CN and
 * dNSName `host`, ten years, random serial) and reused afterwards, so clients that pinned it
 * keep trusting it across restarts.
 */
export async function ensureSelfSigned(dataDir: string, host: string): Promise<TlsMaterial> {
  checkHostForFileName(host);
  const dir = join(dataDir, "certs");
  const certPath = join(dir, `${host}.crt`);
  const keyPath = join(dir, `${host}.key`);
  // The certificate is written last, so its presence means the pair is complete; a key left
  // alone by an interrupted first start is simply replaced.
  if (await exists(certPath) && await exists(keyPath)) {
    return await loadTlsMaterial(certPath, keyPath);
  }
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const material = await makeSelfSigned(host);
  await writeAtomically(keyPath, material.keyPem, 0o600);
  await writeAtomically(certPath, material.certPem, 0o644);
  return material;
}

async function readPem(path: string, what: string): Promise<string> {
  try {
    return await Deno.readTextFile(path);
  } catch (err) {
    const detail = err instanceof Deno.errors.NotFound
      ? "file not found"
      : err instanceof Error
      ? err.message
      : String(err);
    throw new Error(`cannot read TLS ${what} ${path}: ${detail}`);
  }
}

/**
 * Reads an operator-supplied certificate (chain) and private key, both PEM.
 *
 * @throws {Error} naming the file when it cannot be read, holds no PEM block of the right kind,
 *   or (for the certificate) does not parse as X.509
 */
export async function loadTlsMaterial(certPath: string, keyPath: string): Promise<TlsMaterial> {
  const [certPem, keyPem] = await Promise.all([
    readPem(certPath, "certificate"),
    readPem(keyPath, "key"),
  ]);
  const leaf = CERT_PEM.exec(certPem);
  if (leaf === null) {
    throw new Error(`TLS certificate ${certPath}: no PEM "BEGIN CERTIFICATE" block found`);
  }
  if (!KEY_PEM.test(keyPem)) {
    throw new Error(`TLS key ${keyPath}: no PEM "BEGIN PRIVATE KEY" block found`);
  }
  let certDer: Uint8Array;
  try {
    // node:crypto parses it (and refuses what is not X.509); the DER is the PEM's body.
    certDer = new Uint8Array(new X509Certificate(leaf[0]).raw);
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new Error(`TLS certificate ${certPath}: not a valid X.509 certificate: ${detail}`);
  }
  return { certPem, keyPem, certDer };
}

// The hash of each signature algorithm (RFC 5929 §4.1: MD5 and SHA-1 are replaced by SHA-256).
const SIGNATURE_HASHES: Readonly<Record<string, string>> = {
  "1.2.840.113549.1.1.4": "sha256", // md5WithRSAEncryption
  "1.2.840.113549.1.1.5": "sha256", // sha1WithRSAEncryption
  "1.2.840.113549.1.1.14": "sha224", // sha224WithRSAEncryption
  "1.2.840.113549.1.1.11": "sha256", // sha256WithRSAEncryption
  "1.2.840.113549.1.1.12": "sha384", // sha384WithRSAEncryption
  "1.2.840.113549.1.1.13": "sha512", // sha512WithRSAEncryption
  "1.2.840.10045.4.1": "sha256", // ecdsa-with-SHA1
  "1.2.840.10045.4.3.1": "sha224", // ecdsa-with-SHA224
  "1.2.840.10045.4.3.2": "sha256", // ecdsa-with-SHA256
  "1.2.840.10045.4.3.3": "sha384", // ecdsa-with-SHA384
  "1.2.840.10045.4.3.4": "sha512", // ecdsa-with-SHA512
  "1.2.840.10040.4.3": "sha256", // dsa-with-sha1
  "2.16.840.1.101.3.4.3.1": "sha224", // dsa-with-sha224
  "2.16.840.1.101.3.4.3.2": "sha256", // dsa-with-sha256
};
const RSASSA_PSS = "1.2.840.113549.1.1.10";
// Names of algorithms without a single hash, for the error.
const NO_HASH_NAMES: Readonly<Record<string, string>> = {
  "1.3.101.112": "Ed25519",
  "1.3.101.113": "Ed448",
};
const DIGESTS: Readonly<Record<string, string>> = {
  "1.3.14.3.2.26": "sha256", // SHA-1
  "2.16.840.1.101.3.4.2.4": "sha224",
  "2.16.840.1.101.3.4.2.1": "sha256",
  "2.16.840.1.101.3.4.2.2": "sha384",
  "2.16.840.1.101.3.4.2.3": "sha512",
};

/** One DER element: its tag, and where its contents start and end. */
interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
}

function tlv(der: Uint8Array, at: number): Tlv {
  const tag = der[at];
  let len = der[at + 1];
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error("unsupported DER length");
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i];
    start += n;
  }
  if (tag === undefined || start + len > der.length) throw new Error("truncated DER");
  return { tag, start, end: start + len };
}

function oidOf(der: Uint8Array, t: Tlv): string {
  if (t.tag !== 0x06) throw new Error("expected an OID");
  const parts: number[] = [];
  let v = 0;
  for (let i = t.start; i < t.end; i++) {
    v = v * 128 + (der[i] & 0x7f);
    if ((der[i] & 0x80) === 0) {
      if (parts.length === 0) parts.push(v < 80 ? Math.floor(v / 40) : 2, v < 80 ? v % 40 : v - 80);
      else parts.push(v);
      v = 0;
    }
  }
  return parts.join(".");
}

/** The signature algorithm's OID, and for RSASSA-PSS its hash's (a certificate's outer fields). */
function signatureAlgorithmOf(der: Uint8Array): { oid: string; pssHash?: string } {
  const cert = tlv(der, 0);
  const tbs = tlv(der, cert.start);
  const alg = tlv(der, tbs.end);
  const oid = oidOf(der, tlv(der, alg.start));
  if (oid !== RSASSA_PSS) return { oid };
  // RSASSA-PSS-params: [0] hashAlgorithm (default SHA-1).
  const oidEnd = tlv(der, alg.start).end;
  if (oidEnd >= alg.end) return { oid, pssHash: "1.3.14.3.2.26" };
  const params = tlv(der, oidEnd);
  if (params.tag !== 0x30 || params.start >= params.end) return { oid, pssHash: "1.3.14.3.2.26" };
  const first = tlv(der, params.start);
  if (first.tag !== 0xa0) return { oid, pssHash: "1.3.14.3.2.26" };
  const hashAlg = tlv(der, first.start);
  return { oid, pssHash: oidOf(der, tlv(der, hashAlg.start)) };
}

/**
 * The `tls-server-end-point` channel binding (RFC 5929 §4.1): the hash of the DER certificate,
 * with the hash function of the certificate's signature algorithm, except that MD5 and SHA-1
 * are replaced by SHA-256.
 *
 * @throws {Error} when the signature algorithm has no single hash function (Ed25519, for
 *   instance): the binding is undefined then, and `-PLUS` mechanisms must not be offered
 */
export function tlsServerEndPoint(certDer: Uint8Array): Uint8Array {
  const { oid, pssHash } = signatureAlgorithmOf(certDer);
  const hash = pssHash !== undefined
    ? (Object.hasOwn(DIGESTS, pssHash) ? DIGESTS[pssHash] : undefined)
    : (Object.hasOwn(SIGNATURE_HASHES, oid) ? SIGNATURE_HASHES[oid] : undefined);
  if (hash === undefined) {
    const name = Object.hasOwn(NO_HASH_NAMES, oid) ? `${NO_HASH_NAMES[oid]} (${oid})` : oid;
    throw new Error(`tls-server-end-point is not defined for signature algorithm ${name}`);
  }
  return new Uint8Array(createHash(hash).update(certDer).digest());
}
