// Groups one error across pages, sessions and deploys for "top errors". Synchronous on purpose:
// Web Crypto digests are async only, Bun.hash is Bun-only, and a grouping key needs no secrecy.

const FNV_OFFSET = 0xcbf29ce484222325n;
const FNV_PRIME = 0x100000001b3n;
const MASK_64 = 0xffffffffffffffffn;
const encoder = new TextEncoder();

/** FNV-1a, 64-bit, over the UTF-8 bytes of the text, as 16 hex chars. */
export function fnv1a64(text: string): string {
  let hash = FNV_OFFSET;
  for (const byte of encoder.encode(text)) {
    hash = ((hash ^ BigInt(byte)) * FNV_PRIME) & MASK_64;
  }
  return hash.toString(16).padStart(16, "0");
}

// Quotes only where a quoted string can start and end: the apostrophe in "can't" is no quote.
const QUOTED = /(?<![\w])(?:'[^'\n]*'|"[^"\n]*"|`[^`\n]*`)(?![\w])/g;
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi;
const HEX_PREFIXED = /0x[0-9a-f]+/gi;
// Runs of 6+ hex chars with a digit and a letter: object ids, hashes, bundle hashes in file names.
const HEX_ID = /(?<![0-9a-z])(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{6,}(?![0-9a-z])/gi;
const NUMBER = /\d+(?:\.\d+)?/g;

/** The parts of a text that vary between occurrences of one error, replaced by placeholders. */
export function normaliseErrorText(text: string): string {
  return text
    .replace(QUOTED, "<str>")
    .replace(UUID, "<uuid>")
    .replace(HEX_PREFIXED, "<hex>")
    .replace(HEX_ID, "<hex>")
    .replace(NUMBER, "<n>")
    .replace(/\s+/g, " ")
    .trim();
}

interface Frame {
  fn: string;
  file: string;
}

const V8_FRAME = /^at (?:async )?(?:(.+?) \((.+)\)|(.+))$/; // "at fn (file:1:2)" or "at file:1:2"
const GECKO_FRAME = /^(.*?)@(.+:\d+(?::\d+)?)$/; // "fn@file:1:2" (Firefox, Safari)

/** File of a frame location without line, column, query, fragment or origin: those change per deploy or CDN. */
function frameFile(location: string): string {
  const withoutPosition = location.replace(/(?::\d+){1,2}$/, "");
  const withoutQuery = withoutPosition.replace(/[?#].*$/, "");
  return normaliseErrorText(withoutQuery.replace(/^[a-z][a-z0-9+.-]*:\/\/[^/]*/i, ""));
}

/** The first stack frame's function and file (V8, Firefox and Safari formats), if any. */
export function topFrame(stack: string): Frame | null {
  for (const raw of stack.split("\n")) {
    const line = raw.trim();
    const v8 = V8_FRAME.exec(line);
    if (v8) return { fn: v8[1] ?? "", file: frameFile(v8[2] ?? v8[3]!) };
    const gecko = GECKO_FRAME.exec(line);
    if (gecko) return { fn: gecko[1]!, file: frameFile(gecko[2]!) };
  }
  return null;
}

/**
 * A 16-hex-char fingerprint of an error: its message with ids, numbers and quoted values replaced,
 * plus the top frame's function and file (never line numbers, which move with every deploy).
 * Two errors that differ only in an id share a fingerprint.
 */
export function errorFingerprint(message: string, stack: string | undefined, source: string | undefined): string {
  // window.onerror prefixes "Uncaught " where error.message does not; both are one error.
  const text = normaliseErrorText(message.replace(/^\s*Uncaught (?:\(in promise\) )?/, ""));
  const frame = stack === undefined ? null : topFrame(stack);
  const fn = frame?.fn ?? "";
  const file = frame?.file ?? (source === undefined ? "" : frameFile(source.trim()));
  return fnv1a64(`${text}\n${fn}\n${file}`);
}
