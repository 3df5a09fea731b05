import assert from "node:assert/strict";
import { createHash, X509Certificate } from "node:crypto";
import { join } from "node:path";
import * as tls from "node:tls";
import type { AddressInfo } from "node:net";
import {
  ensureSelfSigned,
  loadTlsMaterial,
  type TlsMaterial,
  tlsServerEndPoint,
  x509Module,
} from "../../lib/transport/certs.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir();
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

function pemBody(pem: string): Uint8Array {
  const b64 = pem.replace(/-----[^-]+-----/g, "").replace(/\s+/g, "");
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

/** Runs a node:tls server with `material` on 127.0.0.1 and connects to it once. */
async function handshake(material: TlsMaterial, servername: string) {
  const server = tls.createServer(
    { cert: material.certPem, key: material.keyPem },
    (socket) => socket.end("hello"),
  );
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  try {
    return await new Promise<{ readonly peerDer: Uint8Array; readonly data: string }>(
      (resolve, reject) => {
        const socket = tls.connect({
          host: "127.0.0.1",
          port,
          servername,
          rejectUnauthorized: false,
        });
        let data = "";
        let peerDer: Uint8Array | undefined;
        socket.on("secureConnect", () => {
          peerDer = new Uint8Array(socket.getPeerCertificate().raw);
        });
        socket.on("data", (chunk) => data += chunk.toString());
        socket.on("end", () => {
          socket.end();
          if (peerDer === undefined) reject(new Error("no secureConnect"));
          else resolve({ peerDer, data });
        });
        socket.on("error", reject);
      },
    );
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

Deno.test("ensureSelfSigned makes a pair once, with a 0600 key, and reuses it", async () => {
  await withTempDir(async (dir) => {
    const first = await ensureSelfSigned(dir, "example.org");
    const certPath = join(dir, "certs", "example.org.crt");
    const keyPath = join(dir, "certs", "example.org.key");
    assert.equal(await Deno.readTextFile(certPath), first.certPem);
    assert.equal(await Deno.readTextFile(keyPath), first.keyPem);
    assert.equal((await Deno.stat(keyPath)).mode! & 0o777, 0o600);
    assert.match(first.certPem, /^-----BEGIN CERTIFICATE-----\n/);
    assert.match(first.keyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.deepEqual(first.certDer, pemBody(first.certPem));
    // Only the two files are left behind: no temporary files.
    const names = [];
    for await (const entry of Deno.readDir(join(dir, "certs"))) names.push(entry.name);
    assert.deepEqual(names.sort(), ["example.org.crt", "example.org.key"]);

    const again = await ensureSelfSigned(dir, "example.org");
    assert.equal(again.certPem, first.certPem);
    assert.equal(again.keyPem, first.keyPem);
    assert.deepEqual(again.certDer, first.certDer);

    // Another host gets its own pair.
    const other = await ensureSelfSigned(dir, "chat.example.org");
    assert.notEqual(other.certPem, first.certPem);
  });
});

Deno.test("the self-signed certificate has the expected fields", async () => {
  await withTempDir(async (dir) => {
    const material = await ensureSelfSigned(dir, "example.org");
    const cert = new X509Certificate(material.certPem);
    assert.match(cert.subject, /CN=example\.org/);
    assert.equal(cert.subject, cert.issuer);
    assert.match(cert.subjectAltName ?? "", /DNS:example\.org/);
    assert.equal(cert.publicKey.asymmetricKeyType, "ec");
    assert.equal(cert.checkHost("example.org"), "example.org");
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    assert.ok(from <= Date.now());
    const years = (to - from) / (365.25 * 24 * 3600 * 1000);
    assert.ok(years > 9.9 && years < 10.1, `validity ${years} years`);
    // Random serials: two certificates differ.
    const second = new X509Certificate((await ensureSelfSigned(dir, "b.example")).certPem);
    assert.notEqual(cert.serialNumber, second.serialNumber);
    assert.equal(cert.serialNumber.length, 32);
  });
});

Deno.test("a half-written pair (key without certificate) is replaced", async () => {
  await withTempDir(async (dir) => {
    await Deno.mkdir(join(dir, "certs"));
    await Deno.writeTextFile(join(dir, "certs", "x.org.key"), "stale");
    const material = await ensureSelfSigned(dir, "x.org");
    assert.equal(await Deno.readTextFile(join(dir, "certs", "x.org.key")), material.keyPem);
    assert.notEqual(material.keyPem, "stale");
  });
});

Deno.test("a host that is not a plain file name is refused", async () => {
  await withTempDir(async (dir) => {
    for (const host of ["../evil", "a/b", ".hidden", ""]) {
      await assert.rejects(() => ensureSelfSigned(dir, host), /cannot make a certificate/);
    }
  });
});

Deno.test("node:tls accepts the pair and completes a handshake with it", async () => {
  await withTempDir(async (dir) => {
    const material = await ensureSelfSigned(dir, "localhost");
    tls.createSecureContext({ cert: material.certPem, key: material.keyPem });
    const { peerDer, data } = await handshake(material, "localhost");
    assert.equal(data, "hello");
    assert.deepEqual(peerDer, material.certDer);
  });
});

Deno.test("tlsServerEndPoint of an ECDSA-SHA256 certificate is SHA-256 of the DER", async () => {
  await withTempDir(async (dir) => {
    const { certDer } = await ensureSelfSigned(dir, "localhost");
    const expected = new Uint8Array(createHash("sha256").update(certDer).digest());
    const binding = tlsServerEndPoint(certDer);
    assert.equal(binding.length, 32);
    assert.deepEqual(binding, expected);
  });
});

Deno.test("loadTlsMaterial reads a pair and reports unreadable or non-PEM files", async () => {
  await withTempDir(async (dir) => {
    const made = await ensureSelfSigned(dir, "example.org");
    const certPath = join(dir, "certs", "example.org.crt");
    const keyPath = join(dir, "certs", "example.org.key");
    // A chain file: the leaf comes first and is the one used for DER.
    const chainPath = join(dir, "chain.pem");
    const other = await ensureSelfSigned(dir, "ca.example");
    await Deno.writeTextFile(chainPath, made.certPem + other.certPem);
    const loaded = await loadTlsMaterial(chainPath, keyPath);
    assert.deepEqual(loaded.certDer, made.certDer);
    assert.equal(loaded.certPem, made.certPem + other.certPem);
    assert.equal(loaded.keyPem, made.keyPem);

    const missing = join(dir, "nope.pem");
    await assert.rejects(
      () => loadTlsMaterial(missing, keyPath),
      { message: `cannot read TLS certificate ${missing}: file not found` },
    );
    await assert.rejects(
      () => loadTlsMaterial(certPath, missing),
      { message: `cannot read TLS key ${missing}: file not found` },
    );

    const junk = join(dir, "junk.pem");
    await Deno.writeTextFile(junk, "not a pem file\n");
    await assert.rejects(
      () => loadTlsMaterial(junk, keyPath),
      { message: `TLS certificate ${junk}: no PEM "BEGIN CERTIFICATE" block found` },
    );
    await assert.rejects(
      () => loadTlsMaterial(certPath, junk),
      { message: `TLS key ${junk}: no PEM "BEGIN PRIVATE KEY" block found` },
    );
    // Swapped files: the key file has no certificate block and vice versa.
    await assert.rejects(() => loadTlsMaterial(keyPath, certPath), /no PEM/);

    const broken = join(dir, "broken.pem");
    await Deno.writeTextFile(
      broken,
      "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    );
    await assert.rejects(
      () => loadTlsMaterial(broken, keyPath),
      new RegExp(`^Error: TLS certificate ${RegExp.escape(broken)}: not a valid X\\.509`),
    );
  });
});

Deno.test("tlsServerEndPoint uses the signature's hash, SHA-256 in place of SHA-1", async () => {
  // certs.ts installs what @peculiar/x509 needs, so the test can make other certificates.
  const x509 = await x509Module();
  async function certificate(
    algorithm: RsaHashedKeyGenParams | EcKeyGenParams,
    signing: Algorithm,
  ): Promise<Uint8Array> {
    const keys = await crypto.subtle.generateKey(algorithm, true, ["sign", "verify"]);
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: "01",
      name: "CN=test",
      notBefore: new Date(),
      notAfter: new Date(Date.now() + 86400_000),
      signingAlgorithm: signing,
      keys: keys as CryptoKeyPair,
    });
    return new Uint8Array(cert.rawData);
  }
  const rsa = (hash: string) => ({
    name: "RSASSA-PKCS1-v1_5",
    modulusLength: 1024,
    publicExponent: new Uint8Array([1, 0, 1]),
    hash,
  });
  const cases: readonly (readonly [Uint8Array, string])[] = [
    [await certificate(rsa("SHA-1"), { name: "RSASSA-PKCS1-v1_5" }), "sha256"],
    [await certificate(rsa("SHA-256"), { name: "RSASSA-PKCS1-v1_5" }), "sha256"],
    [await certificate(rsa("SHA-384"), { name: "RSASSA-PKCS1-v1_5" }), "sha384"],
    [await certificate(rsa("SHA-512"), { name: "RSASSA-PKCS1-v1_5" }), "sha512"],
    [
      await certificate(
        { name: "ECDSA", namedCurve: "P-384" },
        { name: "ECDSA", hash: "SHA-384" } as Algorithm,
      ),
      "sha384",
    ],
  ];
  for (const [der, hash] of cases) {
    const expected = new Uint8Array(createHash(hash).update(der).digest());
    assert.deepEqual(tlsServerEndPoint(der), expected, hash);
  }

  const ed = await certificate({ name: "Ed25519" } as EcKeyGenParams, { name: "Ed25519" });
  assert.throws(() => tlsServerEndPoint(ed), /not defined for signature algorithm Ed25519/);
});
