/**
 * CIDR ranges for `trusted_proxies` (lib/transport/cidr.ts): parsing, matching IPv4, IPv6 and
 * IPv4-mapped addresses, `peerOf` with ranges, and the configuration check that must accept
 * exactly what `parseCidr` does.
 */
import assert from "node:assert/strict";
import { inCidr, ipInRanges, parseCidr } from "../../lib/transport/cidr.ts";
import { peerOf } from "../../lib/transport/http.ts";
import { ConfigError, configFromObject, parseConfig } from "../../lib/config.ts";

const bytes = (s: string) => Array.from(parseCidr(s)!.bytes);

Deno.test("parseCidr: addresses and ranges, IPv4 and IPv6", () => {
  assert.deepEqual(parseCidr("10.0.0.0/8"), {
    family: 4,
    bytes: Uint8Array.from([10, 0, 0, 0]),
    prefix: 8,
  });
  assert.equal(parseCidr("192.0.2.7")!.prefix, 32);
  assert.equal(parseCidr("0.0.0.0/0")!.prefix, 0);
  assert.equal(parseCidr("fd00::/8")!.family, 6);
  assert.equal(parseCidr("fd00::/8")!.prefix, 8);
  assert.equal(parseCidr("::1")!.prefix, 128);
  assert.deepEqual(bytes("::1"), [...new Array(15).fill(0), 1]);
  assert.deepEqual(bytes("2001:db8::8:800:200c:417a"), [
    0x20,
    0x01,
    0x0d,
    0xb8,
    0,
    0,
    0,
    0,
    0,
    0x08,
    0x08,
    0,
    0x20,
    0x0c,
    0x41,
    0x7a,
  ]);
  assert.deepEqual(bytes("1:2:3:4:5:6:7:8"), [0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 8]);
  assert.deepEqual(bytes("1::"), [0, 1, ...new Array(14).fill(0)]);
  assert.deepEqual(bytes("::"), new Array(16).fill(0));
  // A dotted tail, and a zone that is no part of the address.
  assert.deepEqual(bytes("64:ff9b::192.0.2.1"), [
    0,
    0x64,
    0xff,
    0x9b,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    0,
    192,
    0,
    2,
    1,
  ]);
  assert.deepEqual(bytes("fe80::1%eth0"), [0xfe, 0x80, ...new Array(13).fill(0), 1]);
  // IPv4-mapped: the IPv4 address or range it carries.
  assert.deepEqual(parseCidr("::ffff:10.0.0.1"), {
    family: 4,
    bytes: Uint8Array.from([10, 0, 0, 1]),
    prefix: 32,
  });
  assert.deepEqual(parseCidr("::ffff:10.0.0.0/104"), {
    family: 4,
    bytes: Uint8Array.from([10, 0, 0, 0]),
    prefix: 8,
  });
  assert.equal(parseCidr("::ffff:0:0/95")!.family, 6);
  for (
    const bad of [
      "",
      "proxy.local",
      "10.0.0.0/33",
      "10.0.0.0/",
      "10.0.0.0/-1",
      "10.0.0.0/8/8",
      "10.0.0.0/ 8",
      "10.0.0/8",
      "010.0.0.0/8",
      "256.0.0.0",
      "fd00::/129",
      "fd00::/0x8",
      "1::2::3",
      "::g",
      " 10.0.0.1",
    ]
  ) {
    assert.equal(parseCidr(bad), undefined, bad);
  }
});

Deno.test("ipInRanges: IPv4, IPv6, IPv4-mapped, prefixes on and off byte boundaries", () => {
  const r = ["10.0.0.0/8", "192.168.1.128/25", "fd00::/8", "2001:db8:1::/48", "203.0.113.5"];
  for (const ip of ["10.1.2.3", "10.255.255.255", "192.168.1.128", "192.168.1.255"]) {
    assert.ok(ipInRanges(ip, r), ip);
  }
  for (const ip of ["11.0.0.1", "9.255.255.255", "192.168.1.127", "192.168.0.200"]) {
    assert.ok(!ipInRanges(ip, r), ip);
  }
  assert.ok(ipInRanges("203.0.113.5", r));
  assert.ok(!ipInRanges("203.0.113.6", r));
  assert.ok(ipInRanges("fd12:3456::1", r));
  assert.ok(ipInRanges("FD00::1", r));
  assert.ok(!ipInRanges("fe00::1", r));
  assert.ok(ipInRanges("2001:db8:1:ffff::1", r));
  assert.ok(!ipInRanges("2001:db8:2::1", r));
  // An IPv4 peer reported by a dual-stack socket is the IPv4 address, both ways round.
  assert.ok(ipInRanges("::ffff:10.9.8.7", r));
  assert.ok(!ipInRanges("::ffff:11.9.8.7", r));
  assert.ok(ipInRanges("10.0.0.1", ["::ffff:10.0.0.0/104"]));
  assert.ok(ipInRanges("::ffff:a00:1", ["10.0.0.1"]));
  // IPv6 ranges hold IPv6 addresses only; IPv4 ranges IPv4 ones.
  assert.ok(!ipInRanges("10.0.0.1", ["::/0"]));
  assert.ok(ipInRanges("2001:db8::1", ["::/0"]));
  assert.ok(!ipInRanges("2001:db8::1", ["0.0.0.0/0"]));
  assert.ok(ipInRanges("198.51.100.1", ["0.0.0.0/0"]));
  // Host bits past the prefix do not matter.
  assert.ok(ipInRanges("10.200.0.1", ["10.0.0.1/8"]));
  // Not an address, or a range given as the address: no match.
  assert.ok(!ipInRanges("evil", r));
  assert.ok(!ipInRanges("10.0.0.0/8", r));
  assert.ok(!ipInRanges("10.0.0.1", []));
  assert.ok(!ipInRanges("10.0.0.1", ["garbage", "10.0.0.0/33"]));
  assert.ok(inCidr(parseCidr("10.0.0.1")!, parseCidr("10.0.0.1/32")!));
});

Deno.test("peerOf: trusted proxies as CIDR ranges", () => {
  const h = (o: Record<string, string>) => new Headers(o);
  const fwd = h({ "x-forwarded-for": "198.51.100.9, 10.2.0.7", "x-forwarded-proto": "https" });
  // The socket is in the range; so is the next hop: the client is the one before it.
  assert.deepEqual(peerOf(fwd, "10.0.0.1", ["10.0.0.0/8"]), { ip: "198.51.100.9", secure: true });
  assert.deepEqual(peerOf(fwd, "::ffff:10.0.0.1", ["10.0.0.0/8"]), {
    ip: "198.51.100.9",
    secure: true,
  });
  // Only the socket's range is trusted: the hop it names is the client.
  assert.deepEqual(peerOf(fwd, "10.0.0.1", ["10.0.0.0/16"]), { ip: "10.2.0.7", secure: true });
  // Outside the range, the headers are not believed.
  assert.deepEqual(peerOf(fwd, "11.0.0.1", ["10.0.0.0/8"]), { ip: "11.0.0.1", secure: false });
  const v6 = h({ "x-forwarded-for": "2001:db8::5", "x-forwarded-proto": "https" });
  assert.deepEqual(peerOf(v6, "fd00::53", ["fd00::/8"]), { ip: "2001:db8::5", secure: true });
  assert.deepEqual(peerOf(v6, "fe80::53", ["fd00::/8"]), { ip: "fe80::53", secure: false });
});

Deno.test("config: trusted_proxies takes addresses and ranges, and names a bad entry", () => {
  const proxies = (list: unknown) =>
    configFromObject({ http: { trusted_proxies: list } }, "t").http.trustedProxies;
  assert.deepEqual(
    proxies(["127.0.0.1", "10.0.0.0/8", "fd00::/8", "::ffff:10.0.0.0/104"]),
    ["127.0.0.1", "10.0.0.0/8", "fd00::/8", "::ffff:10.0.0.0/104"],
  );
  assert.throws(
    () => parseConfig('[http]\ntrusted_proxies = ["10.0.0.1", "10.0.0.0/33"]', "x.toml"),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      assert.equal(
        err.message,
        "config x.toml: http.trusted_proxies[1]: expected an IP address or a CIDR range " +
          'such as "10.0.0.0/8", got "10.0.0.0/33"',
      );
      return true;
    },
  );
  // The load-time check and parseCidr accept exactly the same entries.
  const samples = [
    "10.0.0.0/8",
    "10.0.0.0/32",
    "10.0.0.0/33",
    "10.0.0.0/",
    "10.0.0.0/08",
    "10.0.0.0/0008",
    "1.2.3.4",
    "01.2.3.4",
    "fd00::/8",
    "fd00::/128",
    "fd00::/129",
    "fe80::1%eth0",
    "fe80::%eth0/64",
    "::ffff:1.2.3.4/120",
    "proxy.local",
    "",
    "/8",
  ];
  for (const s of samples) {
    let loads = true;
    try {
      proxies([s]);
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      loads = false;
    }
    assert.equal(loads, parseCidr(s) !== undefined, s);
  }
});
