/**
 * JIDs per RFC 7622: splitting, PRECIS preparation of each part, formatting.
 *
 * Every stanza's `to` and `from` goes through {@link parseJid}, so the all-ASCII case takes
 * regex-only fast paths and recent results are kept in a small bounded cache.
 * @module
 */
import { utf8Bytes } from "../limits.ts";
import { domainToASCII, domainToUnicode } from "node:url";

/** A parsed, normalised JID. Absent parts are absent keys, never `undefined` values. */
export interface Jid {
  readonly local?: string;
  readonly domain: string;
  readonly resource?: string;
}

/** RFC 7622 §3.2-3.4: each part is 1..1023 octets of UTF-8. */
const MAX_PART_OCTETS = 1023;

/**
 * Inputs longer than this are refused unexamined. A normalised JID is at most 3 * 1023 octets
 * plus two separators and octets never number fewer than UTF-16 units; the slack admits
 * unnormalised input (decomposed, fullwidth) without letting a huge string cost real work.
 */
const MAX_INPUT_UNITS = 4 * (3 * MAX_PART_OCTETS + 2);

/** ASCII7 minus space and the RFC 7622 §3.3.1 exclusions `" & ' / : < > @`. */
const ASCII_LOCALPART = /^[!#-%(-.0-9;=?A-~]+$/;
const ASCII_RESOURCE = /^[ -~]+$/;
const ASCII_DOMAIN = /^[\x21-\x7e]+$/;

/**
 * IdentifierClass PVALID: LetterDigits and ASCII7, plus the RFC 5892 §2.6 PVALID exceptions
 * (06FD 06FE 0F0B 3007) and the CONTEXTO code points checked by {@link contextOk}.
 */
const IDENTIFIER_CHARS =
  /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}\x21-\x7e\u06fd\u06fe\u0f0b\u3007\u00b7\u0375\u05f3\u05f4\u30fb]+$/u;

/**
 * What LetterDigits lets through but IdentifierClass still refuses: default ignorables, old
 * Hangul jamo, the RFC 5892 §2.6 DISALLOWED exceptions, and the RFC 7622 exclusions (again,
 * since width mapping can produce them from fullwidth forms).
 */
const IDENTIFIER_DISALLOWED =
  /[\p{Default_Ignorable_Code_Point}\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff\u0640\u07fa\u302e\u302f\u3031-\u3035\u303b"&'/:<>@]/u;

/**
 * FreeformClass DISALLOWED, loosened on purpose: ZWJ, ZWNJ and variation selectors stay
 * allowed because emoji sequences need them and a resource is opaque to us anyway (the
 * selectors U+FE00-U+FE0F never get here: {@link VARIATION_SELECTORS} maps them away first).
 */
const FREEFORM_DISALLOWED =
  /[\p{Cc}\p{Cs}\p{Cn}\p{Co}\p{Zl}\p{Zp}\u1100-\u11ff\ua960-\ua97f\ud7b0-\ud7ff]|(?![\u200c\u200d\ufe00-\ufe0f\u{e0100}-\u{e01ef}])[\p{Cf}\p{Default_Ignorable_Code_Point}]/u;

/**
 * Variation selectors 1-16, mapped to nothing in a resourcepart. PRECIS keeps them, but
 * stringprep's Resourceprep (RFC 3920, table B.1), which Prosody and most deployed servers
 * still apply, drops them: "nick\u{FE0F}" and "nick" then name one resource (one occupant),
 * as they do there, and two nicks cannot differ only by an invisible selector.
 */
const VARIATION_SELECTORS = /[\ufe00-\ufe0f]/gu;

/** Width mapping (RFC 8265 §3.3.2 step 1) only ever concerns these code points. */
const WIDE_OR_NARROW = /[\u3000\uff00-\uffef]/gu;
const NON_ASCII_SPACE = /(?! )\p{Zs}/gu;
const IPV4 = /^(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEX_GROUP = /^[0-9a-f]{1,4}$/;
const LDH_LABEL = /^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/;
const NUMERIC_LABEL = /^\d+$/;
/** Dots that IDNA treats as label separators (RFC 3490 §3.1). */
const TRAILING_DOT = /[.\u3002\uff0e\uff61]$/;

function lengthOk(s: string): boolean {
  return s.length > 0 && utf8Bytes(s) <= MAX_PART_OCTETS;
}

/** RFC 5892 Appendix A contextual rules for the CONTEXTO code points IdentifierClass admits. */
function contextOk(s: string): boolean {
  const cps = Array.from(s);
  for (let i = 0; i < cps.length; i++) {
    const c = cps[i];
    // A.3: only in Catalan "l·l".
    if (c === "\u00b7" && !(cps[i - 1] === "l" && cps[i + 1] === "l")) return false;
    // A.4: the keraia must precede a Greek letter.
    if (c === "\u0375" && !(cps[i + 1] !== undefined && /\p{Script=Greek}/u.test(cps[i + 1]))) {
      return false;
    }
    // A.5, A.6: geresh and gershayim must follow a Hebrew letter.
    if (
      (c === "\u05f3" || c === "\u05f4") &&
      !(cps[i - 1] !== undefined && /\p{Script=Hebrew}/u.test(cps[i - 1]))
    ) return false;
  }
  // A.7: the katakana middle dot needs Japanese script somewhere in the label.
  if (s.includes("\u30fb") && !/[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/u.test(s)) {
    return false;
  }
  // A.8, A.9: Arabic-Indic and Extended Arabic-Indic digits must not be mixed.
  if (/[\u0660-\u0669]/.test(s) && /[\u06f0-\u06f9]/.test(s)) return false;
  return true;
}

/**
 * Prepares a localpart: PRECIS UsernameCaseMapped (RFC 8265 §3.3) plus the RFC 7622 §3.3.1
 * exclusions. Returns the normalised localpart, or undefined when it is not allowed.
 * The bidi rule (RFC 5893) and the ZWJ/ZWNJ contexts are not applied: both joiners are refused.
 */
export function prepLocalpart(s: string): string | undefined {
  if (ASCII_LOCALPART.test(s)) {
    return s.length <= MAX_PART_OCTETS ? s.toLowerCase() : undefined;
  }
  if (s.length === 0 || s.length > MAX_INPUT_UNITS || !s.isWellFormed()) return undefined;
  // RFC 8265 §3.3.2: width mapping, case mapping, normalisation, in that order.
  const mapped = s.replace(WIDE_OR_NARROW, (c) => c.normalize("NFKC")).toLowerCase()
    .normalize("NFC");
  if (!IDENTIFIER_CHARS.test(mapped) || IDENTIFIER_DISALLOWED.test(mapped)) return undefined;
  for (const c of mapped) {
    // HasCompat (RFC 8264 §9.17) is disallowed in IdentifierClass.
    if (c.charCodeAt(0) >= 0x80 && c.normalize("NFKC") !== c) return undefined;
  }
  if (!contextOk(mapped) || !lengthOk(mapped)) return undefined;
  return mapped;
}

/**
 * Prepares a resourcepart: PRECIS OpaqueString (RFC 8265 §4.2), variation selectors mapped to
 * nothing first (see {@link VARIATION_SELECTORS}). Returns the normalised resourcepart, or
 * undefined when it is not allowed (also when nothing is left).
 */
export function prepResourcepart(s: string): string | undefined {
  let mapped: string;
  if (ASCII_RESOURCE.test(s)) {
    mapped = s;
  } else {
    if (s.length === 0 || s.length > MAX_INPUT_UNITS || !s.isWellFormed()) return undefined;
    mapped = s.replace(VARIATION_SELECTORS, "").replace(NON_ASCII_SPACE, " ").normalize("NFC");
    if (FREEFORM_DISALLOWED.test(mapped)) return undefined;
  }
  // RFC 7622 §3.5 lists "juliet@example.com/ foo" among the invalid JIDs.
  if (mapped.startsWith(" ")) return undefined;
  return lengthOk(mapped) ? mapped : undefined;
}

function ipv6Ok(s: string): boolean {
  const halves = s.split("::");
  if (halves.length > 2) return false;
  const groups = halves.map((h) => h === "" ? [] : h.split(":"));
  const all = groups.flat();
  let count = all.length;
  const last = all[all.length - 1];
  // An embedded IPv4 address may close the address and stands for two groups.
  if (last !== undefined && last.includes(".")) {
    if (!IPV4.test(last)) return false;
    all.pop();
    count += 1;
  }
  if (!all.every((g) => HEX_GROUP.test(g))) return false;
  return halves.length === 2 ? count <= 7 : count === 8;
}

function labelsOk(ascii: string): boolean {
  const labels = ascii.split(".");
  for (const label of labels) {
    if (label.length > 63 || !LDH_LABEL.test(label)) return false;
  }
  // An all-numeric top label would read as a (malformed) IPv4 address.
  return !NUMERIC_LABEL.test(labels[labels.length - 1]);
}

/**
 * Prepares a domainpart (RFC 7622 §3.2): one trailing dot removed, IP literals kept as they
 * are (IPv6 lowercased), otherwise lowercased, NFC, and checked through IDNA. The normalised
 * form is the Unicode one (U-labels). Returns undefined when the domainpart is not allowed.
 */
export function prepDomainpart(s: string): string | undefined {
  if (s.length === 0 || s.length > MAX_INPUT_UNITS) return undefined;
  const d = s.replace(TRAILING_DOT, "");
  if (d.startsWith("[")) {
    if (!d.endsWith("]")) return undefined;
    const lower = d.toLowerCase();
    return ipv6Ok(lower.slice(1, -1)) ? lower : undefined;
  }
  if (IPV4.test(d)) return d;
  if (ASCII_DOMAIN.test(d)) {
    const lower = d.toLowerCase();
    // Only A-labels need IDNA to be checked and turned into their Unicode form.
    if (!lower.includes("xn--")) {
      return lower.length <= MAX_PART_OCTETS && labelsOk(lower) ? lower : undefined;
    }
  }
  if (!d.isWellFormed()) return undefined;
  const ascii = domainToASCII(d.toLowerCase().normalize("NFC"));
  if (ascii === "" || !labelsOk(ascii)) return undefined;
  const unicode = domainToUnicode(ascii);
  // IDNA2008 (RFC 5891 §4.2.3.1) forbids hyphens at either end of a U-label too.
  if (unicode.split(".").some((l) => l.startsWith("-") || l.endsWith("-"))) return undefined;
  return lengthOk(unicode) ? unicode : undefined;
}

function makeJid(
  local: string | undefined,
  domain: string,
  resource: string | undefined,
): Jid {
  // Absent parts stay absent keys so that deep equality and spreading behave.
  if (local === undefined) {
    return Object.freeze(resource === undefined ? { domain } : { domain, resource });
  }
  return Object.freeze(
    resource === undefined ? { local, domain } : { local, domain, resource },
  );
}

/** Splits per RFC 7622 §3.1 and prepares each part. */
function parseUncached(s: string): Jid | undefined {
  if (s.length === 0 || s.length > MAX_INPUT_UNITS) return undefined;
  const slash = s.indexOf("/");
  const head = slash === -1 ? s : s.slice(0, slash);
  const at = head.indexOf("@");
  const domain = prepDomainpart(at === -1 ? head : head.slice(at + 1));
  if (domain === undefined) return undefined;
  let local: string | undefined;
  if (at !== -1) {
    local = prepLocalpart(head.slice(0, at));
    if (local === undefined) return undefined;
  }
  let resource: string | undefined;
  if (slash !== -1) {
    resource = prepResourcepart(s.slice(slash + 1));
    if (resource === undefined) return undefined;
  }
  return makeJid(local, domain, resource);
}

interface Parsed {
  readonly jid: Jid;
  readonly full: string;
  readonly bare: string;
}

const CACHE_LIMIT = 1000;
/** `null` records a known-invalid input, so repeated garbage is cheap too. */
const cache = new Map<string, Parsed | null>();

function parsed(s: string): Parsed | null {
  const hit = cache.get(s);
  if (hit !== undefined) return hit;
  const jid = parseUncached(s);
  const value = jid === undefined
    ? null
    : Object.freeze({ jid, full: formatJid(jid), bare: formatJid(bareOf(jid)) });
  // Clearing everything is crude but bounded, and keeps the hot path a single Map lookup.
  if (cache.size >= CACHE_LIMIT) cache.clear();
  cache.set(s, value);
  return value;
}

/** Parses and normalises; undefined when invalid. */
export function parseJid(s: string): Jid | undefined {
  return parsed(s)?.jid;
}

/** The string form `local@domain/resource`, leaving out absent parts. Does not validate. */
export function formatJid(j: Jid): string {
  const bare = j.local === undefined ? j.domain : `${j.local}@${j.domain}`;
  return j.resource === undefined ? bare : `${bare}/${j.resource}`;
}

/** The JID without its resource. */
export function bareOf(j: Jid): Jid {
  return j.resource === undefined ? j : makeJid(j.local, j.domain, undefined);
}

/** Normalised string form, or undefined when invalid. */
export function normalizeJid(s: string): string | undefined {
  return parsed(s)?.full;
}

/** Normalised bare string form of a JID string, or undefined when invalid. */
export function bareJidOf(s: string): string | undefined {
  return parsed(s)?.bare;
}
