/**
 * Matching an XMPP domain against a certificate's names (RFC 6125 as RFC 6120 §13.7.1.2 and
 * XEP-0178 profile it): DNS-IDs with one-label wildcards, SRV-IDs, XmppAddrs, and the CN only
 * as a last resort.
 */
import assert from "node:assert/strict";
import {
  asciiDomain,
  certCoversDomain,
  type CertNames,
  certValidFor,
  dnsIdMatches,
} from "../../lib/xmpp/cert_names.ts";

const NONE: CertNames = { dns: [], srv: [], xmpp: [], uri: [], cn: [] };

function names(n: Partial<CertNames>): CertNames {
  return { ...NONE, ...n };
}

Deno.test("cert names: DNS-IDs, exact and case-insensitive", () => {
  const n = names({ dns: ["Example.ORG"] });
  assert.equal(certCoversDomain(n, "example.org"), true);
  assert.equal(certCoversDomain(n, "EXAMPLE.org."), true);
  assert.equal(certCoversDomain(n, "www.example.org"), false);
  assert.equal(certCoversDomain(n, "example.org.evil"), false);
  assert.equal(certCoversDomain(n, ""), false);
});

Deno.test("cert names: a wildcard stands for exactly one whole leftmost label", () => {
  assert.equal(dnsIdMatches("*.example.org", "chat.example.org"), true);
  assert.equal(dnsIdMatches("*.example.org", "example.org"), false);
  assert.equal(dnsIdMatches("*.example.org", "a.b.example.org"), false);
  assert.equal(dnsIdMatches("*.example.org", ".example.org"), false);
  // Not over a bare top-level name, not inside a label, not further right.
  assert.equal(dnsIdMatches("*.org", "example.org"), false);
  assert.equal(dnsIdMatches("c*.example.org", "chat.example.org"), false);
  assert.equal(dnsIdMatches("chat.*.org", "chat.example.org"), false);
  assert.equal(dnsIdMatches("*.*.example.org", "a.b.example.org"), false);
  assert.equal(certCoversDomain(names({ dns: ["*.example.org"] }), "muc.example.org"), true);
});

Deno.test("cert names: SRV-IDs for the XMPP server services, XmppAddr as a bare domain", () => {
  const srv = names({ srv: ["_xmpp-server.example.org", "_xmpp-client.other.org"] });
  assert.equal(certCoversDomain(srv, "example.org"), true);
  // A client SRV-ID does not make a server.
  assert.equal(certCoversDomain(srv, "other.org"), false);
  assert.equal(
    certCoversDomain(names({ srv: ["_xmpps-server.example.net"] }), "example.net"),
    true,
  );

  const addr = names({ xmpp: ["example.org", "user@example.net", "example.com/res"] });
  assert.equal(certCoversDomain(addr, "example.org"), true);
  assert.equal(certCoversDomain(addr, "example.net"), false);
  assert.equal(certCoversDomain(addr, "example.com"), false);
  // No wildcard in an XmppAddr.
  assert.equal(certCoversDomain(names({ xmpp: ["*.example.org"] }), "a.example.org"), false);
});

Deno.test("cert names: the CN only when there is no subjectAltName identifier", () => {
  assert.equal(certCoversDomain(names({ cn: ["example.org"] }), "example.org"), true);
  assert.equal(certCoversDomain(names({ cn: ["*.example.org"] }), "a.example.org"), false);
  assert.equal(
    certCoversDomain(names({ cn: ["example.org"], dns: ["other.org"] }), "example.org"),
    false,
  );
  assert.equal(
    certCoversDomain(names({ cn: ["example.org"], uri: ["xmpp:x.org"] }), "example.org"),
    false,
  );
  assert.equal(certCoversDomain(NONE, "example.org"), false);
});

Deno.test("cert names: internationalised domains compare as A-labels", () => {
  assert.equal(asciiDomain("Bücher.example"), "xn--bcher-kva.example");
  assert.equal(certCoversDomain(names({ dns: ["xn--bcher-kva.example"] }), "bücher.example"), true);
  assert.equal(
    certCoversDomain(names({ xmpp: ["bücher.example"] }), "xn--bcher-kva.example"),
    true,
  );
});

Deno.test("cert names: valid for a domain only when also trusted", () => {
  const n = names({ dns: ["example.org"] });
  assert.equal(certValidFor({ trusted: true, names: n }, "example.org"), true);
  assert.equal(certValidFor({ trusted: false, names: n }, "example.org"), false);
  assert.equal(certValidFor(undefined, "example.org"), false);
});
