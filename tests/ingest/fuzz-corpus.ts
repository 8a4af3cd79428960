// Generators for the ingest fuzz test (fuzz.test.ts): a seeded PRNG, valid items of every type,
// mutations that make an item invalid for certain, and whole-request defects (body, encoding,
// size, headers). Every generated case says what the service must answer, so the runner can check
// it exactly; nothing here talks to the service.
import { brotliCompressSync, deflateSync, gzipSync } from "node:zlib";

export const SINGLE_LIMIT = 64 * 1024;
export const BATCH_LIMIT = 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// PRNG

/** sfc32: small, fast and seedable; plenty for choosing fuzz cases. */
export class Rng {
  #a = 0x9e3779b9;
  #b = 0x243f6a88;
  #c = 0xb7e15162;
  #d: number;
  constructor(seed: number) {
    this.#d = seed >>> 0;
    for (let i = 0; i < 16; i++) this.next();
  }
  next(): number {
    const t = (((this.#a + this.#b) | 0) + this.#d) | 0;
    this.#d = (this.#d + 1) | 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) | 0;
    this.#c = (((this.#c << 21) | (this.#c >>> 11)) + t) | 0;
    return (t >>> 0) / 4294967296;
  }
  /** 0 .. n-1 */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  /** lo .. hi, inclusive */
  range(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(list: readonly T[]): T {
    return list[this.int(list.length)]!;
  }
  weighted<T>(entries: readonly (readonly [number, T])[]): T {
    let total = 0;
    for (const [w] of entries) total += w;
    let r = this.next() * total;
    for (const [w, value] of entries) {
      if ((r -= w) < 0) return value;
    }
    return entries[entries.length - 1]![1];
  }
  str(length: number, alphabet = ALNUM): string {
    let out = "";
    for (let i = 0; i < length; i++) out += alphabet[this.int(alphabet.length)];
    return out;
  }
  hex(length: number): string {
    return this.str(length, "0123456789abcdef");
  }
  /** A v4-shaped UUID (lowercase). */
  uuid(): string {
    const h = this.hex(32).split("");
    h[12] = "4";
    h[16] = "89ab"[this.int(4)]!;
    const s = h.join("");
    return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20)}`;
  }
}

const ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
/** Text that is valid but not plain ASCII: accents, CJK, an emoji (a surrogate pair), quotes, NUL. */
const TEXTY = [..."abcdefghijklmnopqrstuvwxyz0123456789 -_./", "é", "ß", "中", "😀", "\"", "\\", "\u0000", "\n", "<", ">", "&"];

// ---------------------------------------------------------------------------------------------
// JSON with tokens JSON.stringify cannot write (1e400, NaN), and own "__proto__" keys

/** A raw JSON token spliced into the output of toJson (e.g. `1e400`, which parses as Infinity). */
export class Raw {
  constructor(readonly text: string) {}
}

/** JSON.stringify, with every Raw replaced by its text. */
export function toJson(value: unknown): string {
  const raws: string[] = [];
  const text = JSON.stringify(value, (_key, v: unknown) => (v instanceof Raw ? `\u0000raw${raws.push(v.text) - 1}\u0000` : v));
  return raws.length === 0 ? text : text.replace(/"\\u0000raw(\d+)\\u0000"/g, (_, i: string) => raws[Number(i)]!);
}

/** Sets an own enumerable property, even `__proto__` (which an object literal would not create). */
export function own<T extends object>(target: T, key: string, value: unknown): T {
  Object.defineProperty(target, key, { value, enumerable: true, configurable: true, writable: true });
  return target;
}

const utf8 = new TextEncoder();
export const byteLength = (text: string) => utf8.encode(text).byteLength;

// ---------------------------------------------------------------------------------------------
// Valid items

export type ItemType = "session" | "pageview" | "event" | "funnel" | "error" | "vitals";
export const ITEM_TYPES: readonly ItemType[] = ["session", "pageview", "event", "funnel", "error", "vitals"];
export const SINGLE_TYPES = ["session", "pageview", "event"] as const;
export type SingleType = (typeof SINGLE_TYPES)[number];
export type KeyKind = "secret" | "public";
export type Item = Record<string, unknown>;

/** The table an accepted item of each type lands in (session items only shape session rows). */
export const TABLE_OF: Record<ItemType, string | null> = {
  session: null, pageview: "page_views", event: "events", funnel: "funnel_events", error: "errors", vitals: "web_vitals",
};

/** An item the service must accept, and what it leaves in ClickHouse. */
export interface Good {
  type: ItemType;
  eventId: string;
  /** The session id the client set (session items always set one in batches). */
  sessionId?: string;
  userId?: string;
  /** Non-null Web Vitals metrics (rows in page_performance_stats). */
  vitals: number;
  /**
   * The item carried `__proto__` / `constructor` / `prototype` keys: at its top level (unknown
   * fields, never stored) or in `properties`, where they are data like any other key and are
   * stored as sent (`baitProperties`, own data properties).
   */
  sanitized: boolean;
  baitProperties?: Record<string, unknown>;
}

export const BROWSER_UAS = [
  "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
  "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
  "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0",
  "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
];
const VALID_REFERRERS = ["", "https://www.google.com/search?q=fuzz", "android-app://com.google.android.gm", "http://news.example/a?b=c#d", "https://t.co/xyz"];
const DAY = 86_400_000;

function textOf(rng: Rng, min: number, max: number): string {
  const n = rng.range(min, max);
  let s = "";
  while (s.length < n) {
    const ch = rng.pick(TEXTY);
    if (s.length + ch.length > max) break; // an emoji counts two UTF-16 units toward maxLength
    s += ch;
  }
  return s.length >= min ? s : s + "x".repeat(min - s.length);
}

function validUrl(rng: Rng): string {
  const path = Array.from({ length: rng.range(0, 4) }, () => encodeURIComponent(textOf(rng, 1, 12))).join("/");
  const utm = rng.chance(0.3) ? `?utm_source=${rng.pick(["news", "ads", "x"])}&utm_medium=${rng.pick(["email", "cpc"])}&utm_campaign=c${rng.int(5)}` : "";
  return `${rng.pick(["https://shop.example", "https://www.shop.example", "http://shop.example:8080"])}/${path}${utm}`;
}

function validProperties(rng: Rng): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const n = rng.weighted([[5, rng.range(0, 5)], [1, 50]] as const);
  for (let i = 0; Object.keys(out).length < n && i < 200; i++) {
    const key = rng.chance(0.1) ? "k".repeat(64) : `${rng.str(rng.range(1, 10))}${i}`.slice(0, 64);
    out[key] = rng.weighted<unknown>([
      [4, textOf(rng, 0, 40)],
      [1, "v".repeat(512)],
      [2, rng.int(1000) - 500],
      [1, rng.pick([1e308, -1e308, 5e-324, -0, 0.1, Number.MAX_SAFE_INTEGER + 2])],
      [1, rng.chance(0.5)],
      [1, null],
    ]);
  }
  return out;
}

function validIp(rng: Rng): string {
  return rng.chance(0.7) ? `${rng.range(1, 223)}.${rng.int(256)}.${rng.int(256)}.${rng.range(1, 254)}` : `2001:db8::${rng.hex(4)}`;
}

/** A valid item of `type` for a key of `kind`; `withType` adds the `type` field (batches need it). */
export function validItem(rng: Rng, type: ItemType, kind: KeyKind, withType: boolean): { item: Item; good: Good } {
  const item: Item = {};
  if (withType) item.type = type;
  const eventId = rng.uuid();
  // Upper case is a valid UUID too; the service stores ids in lower case.
  item.event_id = rng.chance(0.1) ? eventId.toUpperCase() : eventId;
  const good: Good = { type, eventId, vitals: 0, sanitized: false };

  if (type === "session" || rng.chance(0.1)) good.sessionId = item.session_id = `fz-${rng.hex(rng.range(8, 40))}`;
  if (rng.chance(0.6)) item.anonymous_id = `anon-${rng.int(40)}`;
  if (rng.chance(0.2)) good.userId = item.user_id = rng.chance(0.8) ? `user-${rng.int(30)}` : "";
  if (rng.chance(0.2)) item.referrer = rng.pick(VALID_REFERRERS);
  if (rng.chance(type === "event" ? 0.5 : 0.1)) item.properties = validProperties(rng);
  if (kind === "secret") {
    if (rng.chance(0.4)) {
      const t = Date.now() - rng.int(29 * DAY) + rng.int(60_000);
      item.timestamp = rng.chance(0.5) ? t : new Date(t).toISOString().replace("Z", rng.pick(["Z", "+00:00", "+0000"]));
    }
    if (rng.chance(0.3)) item.ip = validIp(rng);
    if (rng.chance(0.3)) item.user_agent = rng.pick(BROWSER_UAS);
  }
  switch (type) {
    case "session":
      if (rng.chance(0.6)) item.url = validUrl(rng);
      if (rng.chance(0.3)) item.screen = { width: rng.int(65536), height: rng.int(65536) };
      if (rng.chance(0.3)) item.language = rng.pick(["de-DE", "en", "zh-Hant-TW", "x".repeat(35)]);
      if (rng.chance(0.3)) item.timezone = rng.pick(["Europe/Berlin", "UTC", "America/Argentina/Buenos_Aires"]);
      if (rng.chance(0.2)) item.utm_source = textOf(rng, 0, 256);
      break;
    case "pageview":
      item.url = validUrl(rng);
      if (rng.chance(0.5)) item.title = textOf(rng, 0, 512);
      break;
    case "event":
      item.name = textOf(rng, 1, 120);
      if (rng.chance(0.3)) item.conversion = rng.chance(0.5);
      if (rng.chance(0.3)) item.url = validUrl(rng);
      break;
    case "funnel":
      item.funnel = textOf(rng, 1, 64);
      if (item.funnel === "." || item.funnel === "..") item.funnel += "x"; // dot segments are refused (schemas.ts)
      item.step = rng.range(1, 20);
      if (rng.chance(0.5)) item.step_name = textOf(rng, 0, 120);
      break;
    case "error":
      item.message = textOf(rng, 1, 1024);
      if (rng.chance(0.5)) item.stack = rng.chance(0.1) ? "s".repeat(16 * 1024) : textOf(rng, 0, 400);
      if (rng.chance(0.3)) item.source = validUrl(rng);
      if (rng.chance(0.5)) item.line = rng.pick([0, 1, rng.int(100_000), 4294967295]);
      if (rng.chance(0.5)) item.column = rng.pick([0, 1, rng.int(1000), 4294967295]);
      break;
    case "vitals": {
      item.url = validUrl(rng);
      const metrics = ["lcp", "inp", "fcp", "ttfb", "cls"].filter(() => rng.chance(0.5));
      if (metrics.length === 0) metrics.push(rng.pick(["lcp", "inp", "fcp", "ttfb", "cls"]));
      for (const m of metrics) item[m] = m === "cls" ? rng.pick([0, 0.05, 0.3, 100, rng.next() * 2]) : rng.pick([0, 1, 2500.5, 3_600_000, rng.int(10_000)]);
      good.vitals = metrics.length;
      break;
    }
  }
  return { item, good };
}

/**
 * Adds keys that must be ignored, never stored, and never reach a prototype: `__proto__`,
 * `constructor` and `prototype` at the top level or in `properties`, and unknown fields.
 * The item stays valid (unknown keys are dropped by the schema).
 */
export function sanitizeBait(rng: Rng, item: Item, good: Good): void {
  good.sanitized = true;
  const bait = () => rng.pick<unknown>([{ polluted: true }, { isAdmin: true, toString: "x" }, "x", 1, null, [1]]);
  const where = rng.int(3);
  if (where === 0) {
    own(item, rng.pick(["__proto__", "constructor", "prototype"]), bait());
  } else if (where === 1) {
    const props = (item.properties as Record<string, unknown> | undefined) ?? {};
    // Within 50 keys in all: the reserved keys count like any other.
    for (const k of Object.keys(props).slice(45)) delete props[k];
    const bait: Record<string, unknown> = {};
    own(bait, "__proto__", rng.pick<unknown>(["p", 1, null, true]));
    if (rng.chance(0.5)) own(bait, "constructor", rng.pick<unknown>(["c", 0, false]));
    if (rng.chance(0.5)) own(bait, "prototype", "x");
    for (const [k, v] of Object.entries(bait)) own(props, k, v);
    item.properties = props;
    good.baitProperties = bait;
  } else {
    item[rng.pick(["extra", "admin", "pad", "hasOwnProperty"])] = rng.pick<unknown>([{ a: { b: { c: [1, 2, { d: null }] } } }, "junk", 1e308, [[[]]]]);
  }
}

// ---------------------------------------------------------------------------------------------
// Mutations: each makes an item invalid for certain (for the given type, key kind and route).

const notString = (rng: Rng) => rng.pick<unknown>([42, -1, 0, 1.5, true, false, null, [], ["x"], {}, { a: 1 }, new Raw("1e400")]);
const notBool = (rng: Rng) => rng.pick<unknown>(["true", "false", 1, 0, null, [], {}, "yes"]);
const tooLong = (rng: Rng, max: number) => "x".repeat(max + 1 + rng.pick([0, 1, rng.int(100), rng.int(max * 2 + 1)]));
/** A valid-looking string with a lone surrogate inside (valid JSON, invalid Unicode). */
const loneSurrogate = (rng: Rng, base = "text") => {
  const at = rng.int(base.length + 1);
  return `${base.slice(0, at)}${rng.pick(["\ud800", "\udbff", "\udc00", "\udfff", "\ude00x\ud83d"])}${base.slice(at)}`;
};
const badString = (rng: Rng, max: number, opts: { empty?: boolean } = {}) =>
  rng.weighted<unknown>([[3, notString(rng)], [3, tooLong(rng, max)], [2, loneSurrogate(rng)], [opts.empty ? 2 : 0, ""]]);

const BAD_URLS = [
  "javascript:alert(1)", "JavaScript:alert(document.cookie)", "data:text/html,<script>alert(1)</script>", "data:,x",
  "vbscript:msgbox(1)", "ftp://shop.example/", "file:///etc/passwd", "mailto:a@shop.example", "about:blank",
  "/relative/path", "shop.example/x", "//shop.example/x", "http://", "https://", "", " https://shop.example/",
  "https://[::1", "http://exa mple.example/", "https:shop.example", "http//shop.example",
];
const BAD_REFERRERS = [
  "javascript:alert(1)", "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==", "vbscript:x", "about:blank",
  "mailto:a@b.example", "not a url", "//no-scheme.example/", "javascript://%0aalert(1)".replace("://", ":"),
];
const BAD_UUIDS = (rng: Rng) => {
  const u = rng.uuid();
  return [
    "", "not-a-uuid", u.replaceAll("-", ""), `${u}0`, `{${u}}`, ` ${u}`, `${u} `, u.slice(0, -1), u.replace(/[0-9a-f]$/, "g"),
    `urn:uuid:${u}`, "00000000-0000-0000-0000-00000000000", "x".repeat(5000),
  ];
};

/** Timestamps no key may store: wrong types, shapes, values; or (secret keys) outside the window. */
function badTimestamp(rng: Rng): unknown {
  const now = Date.now();
  return rng.pick<unknown>([
    true, null, [], {}, [now], { t: now },
    "yesterday", "2024-01-01", "2024-01-01T00:00:00", "2024-01-01 00:00:00Z", "2024-13-01T00:00:00Z", String(now), "",
    "2024-01-01T00:00:00.1234567890Z", "24-01-01T00:00:00Z", "2024-01-01T00:00Z+01:00", "+275760-09-13T00:00:00Z",
    -1, 1.5, now + 0.5, 8.64e15 + 1, 1e300, -1e300, new Raw("1e400"), new Raw("-1e400"), new Raw("1E+400"),
    // Valid shapes outside 30 days back / 5 minutes ahead (a public key may not send any timestamp).
    0, now - 31 * DAY, now + 10 * 60_000, new Date(now - 40 * DAY).toISOString(), new Date(now + DAY).toISOString(), 8.64e15,
  ]);
}

function badProperties(rng: Rng): unknown {
  const many: Record<string, unknown> = {};
  for (let i = 0; i < rng.range(51, 120); i++) many[`k${i}`] = i;
  return rng.pick<unknown>([
    "x", 1, true, null, new Raw("1e400"), // (arrays are accepted as index-keyed objects by valibot's record: see the report)
    many,
    { ["k".repeat(65 + rng.int(100))]: 1 },
    { "": 1 },
    { a: "v".repeat(513 + rng.int(1000)) },
    { a: { nested: true } },
    { a: [1, 2] },
    { a: [] },
    { a: new Raw("1e400") },
    { a: new Raw("-1e400") },
    { a: loneSurrogate(rng) },
    { [loneSurrogate(rng, "key")]: 1 },
    { ok: 1, a: undefinedLike(rng) },
  ]);
}
/** Values that look empty but are not a valid property value. */
const undefinedLike = (rng: Rng) => rng.pick<unknown>([{}, [], [null], { undefined: null }]);

function badScreen(rng: Rng): unknown {
  return rng.pick<unknown>([
    "1920x1080", 1920, null, [], [1920, 1080], true,
    { width: -1, height: 1 }, { width: 1.5, height: 1 }, { width: 65536, height: 1 }, { width: 1, height: 1e300 },
    { width: 1 }, { height: 1 }, {}, { width: "1920", height: "1080" }, { width: new Raw("1e400"), height: 1 }, { width: null, height: null },
  ]);
}

const badMs = (rng: Rng) => rng.pick<unknown>([-1, -0.001, 3_600_000.5, 1e300, "100", null, true, [], {}, new Raw("1e400"), new Raw("-1e400")]);
const badUint32 = (rng: Rng) => rng.pick<unknown>([-1, 1.5, 4294967296, 1e300, "1", null, true, [], new Raw("1e400")]);
const badStep = (rng: Rng) => rng.pick<unknown>([0, 21, -1, 1.5, "1", null, true, [], {}, 1e300, new Raw("1e400")]);

export interface Mutation {
  name: string;
  /** Whether this mutation is certain to make the item invalid here. */
  applies(type: ItemType, kind: KeyKind, single: boolean): boolean;
  apply(rng: Rng, item: Item, type: ItemType, single: boolean): void;
}

const all = () => true;
const ofType = (...types: ItemType[]) => (type: ItemType) => types.includes(type);

export const MUTATIONS: readonly Mutation[] = [
  { name: "event_id", applies: all, apply: (rng, it) => (it.event_id = rng.weighted<unknown>([[3, rng.pick(BAD_UUIDS(rng))], [1, notString(rng)]])) },
  { name: "session_id", applies: all, apply: (rng, it) => (it.session_id = badString(rng, 64, { empty: true })) },
  { name: "anonymous_id", applies: all, apply: (rng, it) => (it.anonymous_id = badString(rng, 128, { empty: true })) },
  { name: "user_id", applies: all, apply: (rng, it) => (it.user_id = badString(rng, 128)) },
  { name: "timestamp", applies: all, apply: (rng, it) => (it.timestamp = badTimestamp(rng)) },
  { name: "url", applies: all, apply: (rng, it) => (it.url = rng.weighted<unknown>([[5, rng.pick(BAD_URLS)], [1, `https://shop.example/${"p".repeat(2030 + rng.int(3000))}`], [1, notString(rng)], [1, `https://shop.example/${loneSurrogate(rng)}`]])) },
  { name: "referrer", applies: all, apply: (rng, it) => (it.referrer = rng.weighted<unknown>([[4, rng.pick(BAD_REFERRERS)], [1, `https://r.example/${"r".repeat(2031 + rng.int(100))}`], [1, notString(rng)], [1, `https://r.example/${loneSurrogate(rng)}`]])) },
  { name: "properties", applies: all, apply: (rng, it) => (it.properties = badProperties(rng)) },
  // Any ip / user_agent from a public key is forbidden; a secret key's must be well-formed.
  { name: "ip (public key)", applies: (_t, kind) => kind === "public", apply: (rng, it) => (it.ip = rng.pick(["8.8.8.8", "::1", "203.0.113.9"])) },
  { name: "user_agent (public key)", applies: (_t, kind) => kind === "public", apply: (rng, it) => (it.user_agent = rng.pick(BROWSER_UAS)) },
  { name: "ip", applies: all, apply: (rng, it) => (it.ip = rng.pick<unknown>(["999.1.1.1", "localhost", "1.2.3", "::g", "1.2.3.4/24", "1.2.3.4:80", "", "a".repeat(46), "1".repeat(5000), loneSurrogate(rng), ...[notString(rng)]])) },
  { name: "user_agent", applies: all, apply: (rng, it) => (it.user_agent = rng.weighted<unknown>([[2, tooLong(rng, 1024)], [2, notString(rng)], [1, loneSurrogate(rng, "Mozilla/5.0")]])) },
  { name: "service_id", applies: all, apply: (rng, it) => (it.service_id = rng.pick<unknown>(["SHOP", "", "shop!", "sh op", "a".repeat(65), "blog", "other-service", "shop\n", 1, null, [], ["shop"], {}])) },
  {
    name: "type",
    applies: all,
    apply: (rng, it, type, single) => {
      const others = single ? ITEM_TYPES.filter((t) => t !== type) : [];
      const value = rng.pick<unknown>([...others, ...others, "bogus", "", "Event", "PAGEVIEW", " event", "__proto__", "constructor", "toString", "hasOwnProperty", "valueOf", 1, null, [], {}, [type]]);
      if (!single && rng.chance(0.15)) delete it.type;
      else it.type = value;
    },
  },
  { name: "screen", applies: ofType("session"), apply: (rng, it) => (it.screen = badScreen(rng)) },
  { name: "language", applies: ofType("session"), apply: (rng, it) => (it.language = badString(rng, 35)) },
  { name: "timezone", applies: ofType("session"), apply: (rng, it) => (it.timezone = badString(rng, 64)) },
  { name: "utm", applies: ofType("session"), apply: (rng, it) => (it[rng.pick(["utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content"])] = badString(rng, 256)) },
  { name: "pageview url missing", applies: ofType("pageview", "vitals"), apply: (_rng, it) => delete it.url },
  { name: "title", applies: ofType("pageview"), apply: (rng, it) => (it.title = badString(rng, 512)) },
  { name: "name", applies: ofType("event"), apply: (rng, it) => (rng.chance(0.2) ? delete it.name : (it.name = badString(rng, 120, { empty: true }))) },
  { name: "conversion", applies: ofType("event"), apply: (rng, it) => (it.conversion = notBool(rng)) },
  { name: "funnel", applies: ofType("funnel"), apply: (rng, it) => (rng.chance(0.2) ? delete it.funnel : (it.funnel = badString(rng, 64, { empty: true }))) },
  { name: "step", applies: ofType("funnel"), apply: (rng, it) => (rng.chance(0.2) ? delete it.step : (it.step = badStep(rng))) },
  { name: "step_name", applies: ofType("funnel"), apply: (rng, it) => (it.step_name = badString(rng, 120)) },
  { name: "message", applies: ofType("error"), apply: (rng, it) => (rng.chance(0.2) ? delete it.message : (it.message = badString(rng, 1024, { empty: true }))) },
  { name: "stack", applies: ofType("error"), apply: (rng, it) => (it.stack = badString(rng, 16 * 1024)) },
  { name: "source", applies: ofType("error"), apply: (rng, it) => (it.source = badString(rng, 2048)) },
  { name: "line/column", applies: ofType("error"), apply: (rng, it) => (it[rng.pick(["line", "column"])] = badUint32(rng)) },
  { name: "vitals metric", applies: ofType("vitals"), apply: (rng, it) => (it[rng.pick(["lcp", "inp", "fcp", "ttfb"])] = badMs(rng)) },
  { name: "cls", applies: ofType("vitals"), apply: (rng, it) => (it.cls = rng.pick<unknown>([-0.1, 100.5, 1e300, "0.1", null, true, new Raw("1e400")])) },
  {
    name: "vitals without metrics",
    applies: ofType("vitals"),
    apply: (_rng, it) => {
      for (const m of ["lcp", "inp", "fcp", "ttfb", "cls"]) delete it[m];
    },
  },
  // Not an object at all.
  { name: "item not an object", applies: (_t, _k, single) => !single, apply: () => undefined },
];

export const NOT_AN_OBJECT: readonly unknown[] = [null, 1, "event", true, [], [{ type: "event", name: "x" }], new Raw("1e400")];

/** An invalid item: a valid one with 1–3 mutations (or not an object at all, in batches). */
export function badItem(rng: Rng, type: ItemType, kind: KeyKind, single: boolean): { item: unknown; mutations: string[] } {
  const { item } = validItem(rng, type, kind, !single || rng.chance(0.3));
  const candidates = MUTATIONS.filter((m) => m.applies(type, kind, single));
  const count = rng.weighted([[6, 1], [2, 2], [1, 3]] as const);
  const names: string[] = [];
  for (let i = 0; i < count; i++) {
    const m = rng.pick(candidates);
    if (m.name === "item not an object") return { item: rng.pick(NOT_AN_OBJECT), mutations: [m.name] };
    m.apply(rng, item, type, single);
    names.push(m.name);
  }
  return { item, mutations: names };
}

// ---------------------------------------------------------------------------------------------
// Bodies

/** Pads a JSON object text (ending in "}") with an unknown `pad` field to exactly `bytes` bytes. */
export function padTo(json: string, bytes: number): string {
  const base = `${json.slice(0, -1)}${json.length > 2 ? "," : ""}"pad":""}`;
  const missing = bytes - byteLength(base);
  if (missing < 0) throw new Error(`padTo: ${byteLength(base)} bytes already exceed ${bytes}`);
  return `${base.slice(0, -2)}${"p".repeat(missing)}"}`;
}

/** A body delivered in chunks, without a Content-Length (as a chunked upload would be). */
export function streamOf(data: Uint8Array, chunk = 16 * 1024): () => ReadableStream<Uint8Array> {
  return () => {
    let offset = 0;
    return new ReadableStream<Uint8Array>({
      pull(controller) {
        if (offset >= data.byteLength) return controller.close();
        controller.enqueue(data.slice(offset, offset + chunk));
        offset += chunk;
      },
    });
  };
}

export const gzip = (data: string | Uint8Array) => new Uint8Array(gzipSync(data));
export const deflate = (data: string | Uint8Array) => new Uint8Array(deflateSync(data));
export const brotli = (data: string | Uint8Array) => new Uint8Array(brotliCompressSync(data));

/** Gzip bombs: small on the wire, far past the limits once inflated. Built once per run. */
export function makeBombs(): { name: string; data: Uint8Array; inflated: number }[] {
  const out: { name: string; data: Uint8Array; inflated: number }[] = [];
  const add = (name: string, text: string | Uint8Array) => out.push({ name, data: gzip(text), inflated: typeof text === "string" ? byteLength(text) : text.byteLength });
  add("2 MiB of spaces", " ".repeat(2 * 1024 * 1024));
  add("8 MiB string value", `{"name":"${"a".repeat(8 * 1024 * 1024)}"}`);
  add("16 MiB batch of items", `{"items":[${`{"type":"event","name":"x"},`.repeat(600_000)}{"type":"event","name":"x"}]}`);
  add("48 MiB of zeros", new Uint8Array(48 * 1024 * 1024));
  return out;
}

/** Bytes that are not UTF-8, spliced into otherwise valid JSON text. */
export const INVALID_UTF8: readonly number[][] = [
  [0xff], [0xfe], [0xc3, 0x28], [0xa0, 0xa1], [0xe2, 0x28, 0xa1], [0xe2, 0x82, 0x28], [0xf0, 0x28, 0x8c, 0xbc],
  [0xc0, 0xaf], [0xe0, 0x80, 0xaf], [0xed, 0xa0, 0x80], [0xed, 0xbf, 0xbf], [0xf4, 0x90, 0x80, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe2, 0x82], [0x80], [0xbf],
];

/** JSON-ish text that JSON.parse refuses (each stands for a whole body). */
export const INVALID_JSON: readonly string[] = [
  '{"name":NaN}', '{"name":"x","properties":{"a":Infinity}}', '{"name":"x","properties":{"a":-Infinity}}', '{"name":undefined}',
  "{'name':'x'}", '{"name":"x",}', '{"name":"x"}//c', '/*c*/{"name":"x"}', '{name:"x"}', '{"name":"x"', '{"name":"x"}}',
  '{"name":"x" "url":"y"}', '{"name":"\\x41"}', '{"name":"\\u12"}', '{"name":"tab\there"}', '{"items":[,]}', '{"items":[1,]}',
  "{\"name\":\"x\"}\u0000", '{"name":01}', '{"name":.5}', '{"name":1.}', '{"name":+1}', '{"name":0x10}', '{"a":1e}', "\u0000",
  "nul", "tru", "{", "}", "[", "]", '"', "{}{}", "[]]", '{"items":[]}x', "\ufeff\ufeff{}", '{"__proto__":}',
];

export const WRONG_CONTENT_TYPES: readonly string[] = [
  "application/x-www-form-urlencoded", "multipart/form-data; boundary=----fuzz", "application/xml", "text/xml", "text/html",
  "application/octet-stream", "application/json-patch+json", "application/jsonx", "application/ld+json", "json", "text/json",
  "application/javascript", "image/png", "application/json, text/plain", "*/*", "application/*", "text/*", "%%%", "application",
  "application/x-json", "text/plain-json", "application/json\tx", "a".repeat(3000),
  // The body is read as UTF-8: another declared charset is refused by name (it was stored garbled).
  "application/json; charset=iso-8859-1", "text/plain;charset=utf-16le", 'application/json; charset="latin1"', "text/plain; charset=windows-1252",
];

export const WRONG_ENCODINGS: readonly string[] = ["br", "deflate", "compress", "zstd", "gzip, gzip", "gzip, br", "identity, gzip", "gzip;q=1", "garbage", "*", "chunked", "GZIP2", "a".repeat(2000)];
