/**
 * XMPP date and time profiles (XEP-0082) on the wire: the DateTime we write (UTC, `Z`, whole
 * seconds or milliseconds) and the DateTime we read (any offset, any fraction). Used for delay
 * stamps (XEP-0203), entity time (XEP-0202) and MAM (XEP-0313); not for logs or file names,
 * which are not protocol. The legacy XEP-0091 format is neither written nor read by this server.
 * @module
 */

/**
 * XEP-0082 DateTime in UTC at second precision, `CCYY-MM-DDThh:mm:ssZ`: the instant `ms` (ms
 * since the epoch) rounded down to its second. The form every stamp we send takes, so that a
 * client can pass one back (MAM `start`/`end`) and mean the same second.
 * Throws a RangeError for a time a Date cannot hold, as `Date.prototype.toISOString` does.
 */
export function formatDateTime(ms: number): string {
  // toISOString always writes three fraction digits; dropping them rounds down, before the
  // epoch too (the Date's millisecond field is never negative).
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** XEP-0082 DateTime in UTC with milliseconds, `CCYY-MM-DDThh:mm:ss.sssZ`. */
export function formatDateTimeMs(ms: number): string {
  return new Date(ms).toISOString();
}

/** A DateTime read from the wire. */
export interface ParsedDateTime {
  /** The instant in ms since the epoch; fractional when the text gave more than ms precision. */
  readonly ms: number;
  /** True when the text had fractional seconds (a bound without them covers its whole second). */
  readonly fraction: boolean;
}

const DATE_TIME =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:(Z)|([+-])(\d{2}):(\d{2}))$/;

function isLeapYear(y: number): boolean {
  return y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
}

/**
 * Parses an XEP-0082 DateTime (`CCYY-MM-DDThh:mm:ss[.sss]TZD`, TZD `Z` or `±hh:mm`), or
 * undefined for anything else: a missing offset, an impossible day (February 30, February 29
 * outside leap years), hour 24, a leap second, an offset past 23:59.
 */
export function parseDateTime(s: string): ParsedDateTime | undefined {
  const m = DATE_TIME.exec(s);
  if (m === null) return undefined;
  const [y, mo, d, h, mi, sec] = [m[1], m[2], m[3], m[4], m[5], m[6]].map(Number);
  const daysInMonth = new Date(Date.UTC(2000, mo, 0)).getUTCDate(); // leap year for Feb 29
  if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth || h > 23 || mi > 59 || sec > 59) {
    return undefined;
  }
  if (mo === 2 && d === 29 && !isLeapYear(y)) return undefined;
  let offset = 0;
  if (m[8] === undefined) {
    const oh = Number(m[10]);
    const om = Number(m[11]);
    if (oh > 23 || om > 59) return undefined;
    offset = (m[9] === "-" ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  // Date.UTC maps years 0..99 to 1900..1999; setUTCFullYear does not.
  const date = new Date(0);
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, sec, 0);
  const fraction = m[7] === undefined ? 0 : Number(`0.${m[7]}`) * 1000;
  return { ms: date.getTime() + fraction - offset, fraction: m[7] !== undefined };
}
