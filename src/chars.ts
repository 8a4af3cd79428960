// Length limits count characters: Unicode code points, as API.md's "≤ 64", "1–120 chars" read,
// as JSON Schema's `maxLength` counts (the OpenAPI document states every limit that way) and as
// ClickHouse's `lengthUTF8` does. JavaScript's `length` counts UTF-16 units, in which a character
// outside the Basic Multilingual Plane (most emoji) is 2: 120 emoji are 120 characters.
import * as v from "valibot";

/**
 * A lone UTF-16 surrogate ("\ud800" in JSON text) survives JSON.parse, but no UTF-8 encoder keeps
 * it: ClickHouse refuses the whole INSERT (CANNOT_PARSE_ESCAPE_SEQUENCE), so one such item would
 * stop the spool's flushes for good. Every string that is stored must be well-formed text.
 */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;
/**
 * String.prototype.isWellFormed (ES2024) answers exactly "no lone surrogate", natively; the regex
 * above says the same (its lookbehind runs in the regex interpreter: ~2 µs on a 120-character
 * user agent, per string). The regex stays for runtimes without isWellFormed.
 */
export const isWellFormed: (s: string) => boolean = typeof (String.prototype as { isWellFormed?: unknown }).isWellFormed === "function"
  ? (s) => (s as string & { isWellFormed(): boolean }).isWellFormed()
  : (s) => !LONE_SURROGATE.test(s);

/** UTF-16 units of the character at `i`: 2 for a surrogate pair, else 1 (a lone surrogate too). */
function unitsAt(s: string, i: number): 1 | 2 {
  const c = s.charCodeAt(i);
  return c >= 0xd800 && c <= 0xdbff && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00 ? 2 : 1;
}

/** The number of code points in `s`; a lone surrogate counts as one. */
export function charCount(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i += unitsAt(s, i)) n++;
  return n;
}

/**
 * A string of at most `max` characters, stated as `maxLength` in the OpenAPI document. Only a
 * string of more than `max` UTF-16 units is counted: it has at least as many units as characters.
 */
export function maxChars(max: number, message: string) {
  return v.pipe(v.string(), v.check((s: string) => s.length <= max || charCount(s) <= max, message), v.metadata({ maxLength: max }));
}
