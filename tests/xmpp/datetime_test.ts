import assert from "node:assert/strict";
import { formatDateTime, formatDateTimeMs, parseDateTime } from "../../lib/xmpp/datetime.ts";

/** 1969-07-21T02:56:15Z, the moment of XEP-0082's examples. */
const T0 = Date.UTC(1969, 6, 21, 2, 56, 15);

Deno.test("formatDateTime: UTC at second precision, rounded down", () => {
  assert.equal(formatDateTime(T0), "1969-07-21T02:56:15Z");
  assert.equal(formatDateTime(T0 + 999), "1969-07-21T02:56:15Z");
  assert.equal(formatDateTime(T0 - 1), "1969-07-21T02:56:14Z");
  assert.equal(formatDateTime(0), "1970-01-01T00:00:00Z");
  assert.equal(formatDateTime(-1), "1969-12-31T23:59:59Z");
  assert.equal(formatDateTime(Date.UTC(2010, 6, 10, 23, 8, 25, 500)), "2010-07-10T23:08:25Z");
  assert.throws(() => formatDateTime(NaN), RangeError);
});

Deno.test("formatDateTimeMs: UTC with three fraction digits", () => {
  assert.equal(formatDateTimeMs(T0 + 123), "1969-07-21T02:56:15.123Z");
  assert.equal(formatDateTimeMs(0), "1970-01-01T00:00:00.000Z");
});

Deno.test("parseDateTime: the XEP-0082 §3.2 examples", () => {
  assert.deepEqual(parseDateTime("1969-07-21T02:56:15Z"), { ms: T0, fraction: false });
  assert.deepEqual(parseDateTime("1969-07-20T21:56:15-05:00"), { ms: T0, fraction: false });
  assert.deepEqual(parseDateTime("1969-07-20T21:56:15.123-05:00"), {
    ms: T0 + 123,
    fraction: true,
  });
});

Deno.test("parseDateTime: offsets, fractions, early years", () => {
  assert.equal(parseDateTime("1969-07-21T04:56:15+02:00")?.ms, T0);
  assert.equal(parseDateTime("1969-07-21T02:56:15+00:00")?.ms, T0);
  assert.equal(parseDateTime("1969-07-21T02:26:15-00:30")?.ms, T0);
  assert.equal(parseDateTime("1969-07-21T02:56:15.0001Z")?.ms, T0 + 0.1);
  assert.equal(parseDateTime("1969-07-21T02:56:15.5Z")?.ms, T0 + 500);
  assert.equal(parseDateTime("2012-02-29T00:00:00Z")?.ms, Date.UTC(2012, 1, 29));
  assert.equal(parseDateTime("2000-02-29T00:00:00Z")?.ms, Date.UTC(2000, 1, 29));
  // Years below 100 are not moved into the 1900s.
  const early = new Date(0);
  early.setUTCFullYear(42, 0, 1);
  assert.equal(parseDateTime("0042-01-01T00:00:00Z")?.ms, early.getTime());
});

Deno.test("parseDateTime: round trips with the formatters", () => {
  for (const ms of [0, T0, Date.UTC(2010, 6, 10, 23, 8, 25), Date.UTC(2099, 11, 31, 23, 59, 59)]) {
    assert.deepEqual(parseDateTime(formatDateTime(ms)), { ms, fraction: false });
    assert.deepEqual(parseDateTime(formatDateTimeMs(ms + 7)), { ms: ms + 7, fraction: true });
  }
});

Deno.test("parseDateTime: malformed or impossible input is refused", () => {
  for (
    const s of [
      "",
      "2010-06-07", // a Date, not a DateTime
      "23:08:25Z", // a Time
      "2010-06-07T00:00:00", // no offset
      "2010-06-07 00:00:00Z",
      "2010-6-07T00:00:00Z",
      "10-06-07T00:00:00Z",
      "2010-06-07T00:00Z",
      "2010-06-07T00:00:00.Z",
      "2010-06-07T00:00:00z",
      "2010-06-07T00:00:00+0100",
      "2010-06-07T00:00:00+01",
      "2010-13-07T00:00:00Z",
      "2010-00-07T00:00:00Z",
      "2010-06-00T00:00:00Z",
      "2010-06-31T00:00:00Z",
      "2011-02-29T00:00:00Z",
      "1900-02-29T00:00:00Z",
      "2010-06-07T24:00:00Z",
      "2010-06-07T00:60:00Z",
      "2010-06-07T00:00:60Z",
      "2010-06-07T00:00:00+25:00",
      "2010-06-07T00:00:00+01:60",
      " 2010-06-07T00:00:00Z",
      "2010-06-07T00:00:00Z ",
      "20100607T00:00:00", // the legacy form of XEP-0091
      "２０１０-06-07T00:00:00Z",
    ]
  ) {
    assert.equal(parseDateTime(s), undefined, s);
  }
});
