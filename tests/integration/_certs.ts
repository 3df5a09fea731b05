/**
 * Certificates for tests: a throw-away CA and leaves it signs (or self-signed ones), with the
 * XMPP names of XEP-0178 (DNS-IDs, id-on-xmppAddr, SRV-IDs) written into subjectAltName.
 * @module
 */
// certs.ts installs the metadata polyfill @peculiar/x509 needs, and loads it.
import { x509Module } from "../../lib/transport/certs.ts";

const x509 = await x509Module();

const ALG = { name: "ECDSA", namedCurve: "P-256", hash: "SHA-256" };
const DAY_MS = 24 * 60 * 60 * 1000;

/** A CA that signs test certificates. */
export interface TestCa {
  readonly certPem: string;
  readonly cert: InstanceType<typeof x509.X509Certificate>;
  readonly keys: CryptoKeyPair;
}

/** A certificate and its key, PEM, and the certificate as DER. */
export interface TestCert {
  readonly certPem: string;
  readonly keyPem: string;
  readonly der: Uint8Array;
}

/** What a leaf names. */
export interface LeafNames {
  readonly cn?: string;
  readonly dns?: readonly string[];
  /** id-on-xmppAddr values (UTF8String). */
  readonly xmpp?: readonly string[];
  /** id-on-dnsSRV values such as `_xmpp-server.example.org` (IA5String). */
  readonly srv?: readonly string[];
  /** Valid from this many days from now (negative: in the past). */
  readonly fromDays?: number;
  readonly toDays?: number;
}

function pem(label: string, der: ArrayBuffer): string {
  const b64 = btoa(String.fromCharCode(...new Uint8Array(der)));
  return `-----BEGIN ${label}-----\n${b64.match(/.{1,64}/g)!.join("\n")}\n-----END ${label}-----\n`;
}

function serial(): string {
  const b = crypto.getRandomValues(new Uint8Array(12));
  b[0] = (b[0] & 0x7f) | 0x40;
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** A DER element: tag, length, content. */
function tlv(tag: number, content: Uint8Array): Uint8Array<ArrayBuffer> {
  const n = content.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return new Uint8Array([tag, ...len, ...content]);
}

function cat(...parts: Uint8Array[]): Uint8Array {
  return new Uint8Array(parts.flatMap((p) => [...p]));
}

const enc = new TextEncoder();
const OID_XMPP_ADDR = new Uint8Array([0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05]);
const OID_SRV_NAME = new Uint8Array([0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07]);

/** subjectAltName's value (GeneralNames), written by hand: x509 cannot write these otherNames. */
export function sanDer(names: LeafNames): Uint8Array<ArrayBuffer> {
  const items: Uint8Array[] = [];
  for (const d of names.dns ?? []) items.push(tlv(0x82, enc.encode(d)));
  for (const j of names.xmpp ?? []) {
    items.push(tlv(0xa0, cat(tlv(0x06, OID_XMPP_ADDR), tlv(0xa0, tlv(0x0c, enc.encode(j))))));
  }
  for (const s of names.srv ?? []) {
    items.push(tlv(0xa0, cat(tlv(0x06, OID_SRV_NAME), tlv(0xa0, tlv(0x16, enc.encode(s))))));
  }
  return tlv(0x30, cat(...items));
}

function extensions(names: LeafNames) {
  const san = names.dns !== undefined || names.xmpp !== undefined || names.srv !== undefined;
  return [
    ...(san ? [new x509.Extension("2.5.29.17", false, sanDer(names))] : []),
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.ExtendedKeyUsageExtension([
      x509.ExtendedKeyUsage.serverAuth,
      x509.ExtendedKeyUsage.clientAuth,
    ]),
  ];
}

function validity(names: LeafNames): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return {
    notBefore: new Date(now + (names.fromDays ?? -1) * DAY_MS),
    notAfter: new Date(now + (names.toDays ?? 30) * DAY_MS),
  };
}

/** A new CA (self-signed, CA:true). */
export async function makeCa(name = "XMPP Test CA"): Promise<TestCa> {
  const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${name}`,
    ...validity({}),
    signingAlgorithm: ALG,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certPem: cert.toString("pem") + "\n", cert, keys };
}

async function finish(
  cert: InstanceType<typeof x509.X509Certificate>,
  keys: CryptoKeyPair,
): Promise<TestCert> {
  return {
    certPem: cert.toString("pem") + "\n",
    keyPem: pem("PRIVATE KEY", await crypto.subtle.exportKey("pkcs8", keys.privateKey)),
    der: new Uint8Array(cert.rawData),
  };
}

/** A leaf signed by `ca`. */
export async function makeLeaf(ca: TestCa, names: LeafNames): Promise<TestCert> {
  const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial(),
    subject: `CN=${names.cn ?? names.dns?.[0] ?? "test"}`,
    issuer: ca.cert.subject,
    ...validity(names),
    signingAlgorithm: ALG,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    extensions: [
      ...extensions(names),
      await x509.AuthorityKeyIdentifierExtension.create(ca.cert),
    ],
  });
  return await finish(cert, keys);
}

/** A self-signed leaf. */
export async function makeSelfSigned(names: LeafNames): Promise<TestCert> {
  const keys = await crypto.subtle.generateKey(ALG, true, ["sign", "verify"]);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial(),
    name: `CN=${names.cn ?? names.dns?.[0] ?? "test"}`,
    ...validity(names),
    signingAlgorithm: ALG,
    keys,
    extensions: extensions(names),
  });
  return await finish(cert, keys);
}

/** Writes a certificate and key into `dir`; their paths, for `[tls]`. */
export async function writeCert(
  dir: string,
  name: string,
  c: TestCert,
): Promise<{ cert: string; key: string }> {
  const cert = `${dir}/${name}.crt`;
  const key = `${dir}/${name}.key`;
  await Deno.writeTextFile(cert, c.certPem);
  await Deno.writeTextFile(key, c.keyPem, { mode: 0o600 });
  return { cert, key };
}
