/**
 * Reading a peer's certificate (lib/transport/peer_cert.ts): the XMPP names in subjectAltName
 * (which @peculiar/x509 cannot parse), and the chain to a trusted CA.
 */
import assert from "node:assert/strict";
import {
  certNamesOf,
  chainTrusted,
  pemCertificates,
  trustStore,
} from "../../lib/transport/peer_cert.ts";
import { certCoversDomain } from "../../lib/xmpp/cert_names.ts";
import { makeCa, makeLeaf, makeSelfSigned } from "../integration/_certs.ts";

Deno.test("peer cert: names from subjectAltName (DNS, xmppAddr, SRV) and the CN", async () => {
  const ca = await makeCa();
  const leaf = await makeLeaf(ca, {
    cn: "legacy.example",
    dns: ["a.example", "*.a.example"],
    xmpp: ["x.example", "bücher.example"],
    srv: ["_xmpp-server.s.example"],
  });
  const n = certNamesOf(leaf.der);
  assert.deepEqual(n, {
    dns: ["a.example", "*.a.example"],
    srv: ["_xmpp-server.s.example"],
    xmpp: ["x.example", "bücher.example"],
    uri: [],
    cn: ["legacy.example"],
  });
  for (const d of ["a.example", "muc.a.example", "x.example", "s.example", "bücher.example"]) {
    assert.equal(certCoversDomain(n, d), true, d);
  }
  // A SAN is there, so the CN does not count.
  assert.equal(certCoversDomain(n, "legacy.example"), false);

  const plain = await makeSelfSigned({ cn: "only-cn.example" });
  assert.deepEqual(certNamesOf(plain.der), {
    dns: [],
    srv: [],
    xmpp: [],
    uri: [],
    cn: ["only-cn.example"],
  });
  assert.deepEqual(certNamesOf(new Uint8Array([0x30, 0x05, 1, 2])).dns, []);
});

Deno.test("peer cert: a chain is trusted when it leads to a CA of the store, in its dates", async () => {
  const ca = await makeCa();
  const other = await makeCa("Other CA");
  const leaf = await makeLeaf(ca, { dns: ["a.example"] });
  const store = trustStore(pemCertificates(ca.certPem));
  assert.equal(chainTrusted([leaf.der], store), true);
  // Not with another CA, nor with only the system's roots.
  assert.equal(chainTrusted([leaf.der], trustStore(pemCertificates(other.certPem))), false);
  assert.equal(chainTrusted([leaf.der], trustStore()), false);
  // Expired, or not yet valid.
  const old = await makeLeaf(ca, { dns: ["a.example"], fromDays: -30, toDays: -1 });
  assert.equal(chainTrusted([old.der], store), false);
  const early = await makeLeaf(ca, { dns: ["a.example"], fromDays: 2, toDays: 30 });
  assert.equal(chainTrusted([early.der], store), false);
  // A self-signed certificate, unless it is itself in the store (pinned through ca_file).
  const self = await makeSelfSigned({ dns: ["a.example"] });
  assert.equal(chainTrusted([self.der], store), false);
  assert.equal(chainTrusted([self.der], trustStore(pemCertificates(self.certPem))), true);
  assert.equal(chainTrusted([], store), false);
  assert.equal(chainTrusted([new Uint8Array([1, 2, 3])], store), false);
});
