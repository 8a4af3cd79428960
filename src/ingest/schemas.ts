// The ingest contract: one valibot schema per item type. These schemas are the only source of
// truth for validation, for the TypeScript types (InferOutput) and for the OpenAPI document.
import * as v from "valibot";
import { isWellFormed, maxChars } from "../chars.ts";
import { calendarDateExists, ISO_TIME, parseIsoTime } from "../iso-time.ts";
import { isIpAddress } from "./enrich/ip-address.ts";

export const MAX_URL = 2048;
/**
 * The longest value ingest can store from a URL's parts: a path or an opaque host is
 * percent-encoded (a character outside the BMP, 4 UTF-8 bytes, becomes twelve), so a
 * 2,048-character URL can hold one of up to 12 × 2,048. Query filters take values this long
 * (validate.ts).
 */
export const MAX_URL_PART = 12 * MAX_URL;
/** The longest user agent an item may carry; the `User-Agent` header is cut to it too (pipeline.ts). */
export const USER_AGENT_MAX = 1024;

export const wellFormed = v.check(isWellFormed, "must be valid Unicode text (no lone surrogates)");

// v.metadata states in the OpenAPI document what a v.check enforces (JSON Schema has no place for
// a check's function), wherever JSON Schema can say it.
const httpUrl = v.pipe(
  maxChars(MAX_URL, `must be at most ${MAX_URL} characters`),
  wellFormed,
  v.check((s) => /^https?:\/\//i.test(s) && URL.canParse(s), "must be an absolute http(s) URL"),
  // No `format: uri`: the check is the WHATWG URL parser's, as in browsers, which takes what RFC 3986
  // does not (`/ü`, a space, `münchen.example`); a port over 65535 is its refusal the pattern cannot say.
  v.metadata({
    pattern: "^[Hh][Tt][Tt][Pp][Ss]?://[^/?#]",
    description: "An absolute http(s) URL as a browser's URL parser reads it (WHATWG URL: non-ASCII and spaces are percent-encoded, a port above 65535 is refused)",
  }),
);
/**
 * Referrers may be any URL with an authority (android-app://…) or empty for direct traffic.
 * Browsers never refer from javascript:, data: or vbscript: URLs; such a "referrer" is an attempt
 * to store a script URL that a dashboard might render as a link. Written with `//` they have an
 * authority too (`javascript://%0aalert(1)` runs as a link: `//…` is a comment up to the
 * newline), so their schemes are refused by name.
 */
const SCRIPT_SCHEMES = new Set(["javascript:", "data:", "vbscript:"]);
function isReferrerUrl(s: string): boolean {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(s)) return false;
  const parsed = URL.parse(s);
  return parsed !== null && !SCRIPT_SCHEMES.has(parsed.protocol);
}
const referrer = v.pipe(
  maxChars(MAX_URL, `must be at most ${MAX_URL} characters`),
  wellFormed,
  v.check((s) => s === "" || isReferrerUrl(s), "must be a URL such as https://… or empty (not a javascript:, data: or vbscript: URL)"),
  v.metadata({ pattern: "^([A-Za-z][A-Za-z0-9+.-]*://.*)?$", description: "A URL with an authority, or \"\" for direct traffic; javascript:, data: and vbscript: URLs are refused" }),
);
/** ISO 8601 with an offset, or epoch milliseconds. */
const time = v.union(
  [
    v.pipe(v.number(), v.integer("epoch milliseconds must be a whole number"), v.minValue(0, "epoch milliseconds must be ≥ 0"), v.maxValue(8.64e15, "epoch milliseconds must be ≤ 8640000000000000")),
    v.pipe(
      v.string(),
      v.regex(ISO_TIME, "must be ISO 8601 with an offset (Z, ±HH:MM, ±HHMM or ±HH)"),
      v.check((s) => !Number.isNaN(parseIsoTime(s)) && calendarDateExists(s), "must be a valid time"),
    ),
  ],
  "must be an ISO 8601 time with an offset or epoch milliseconds",
);
const itemTime = v.pipe(time, v.metadata({ description: "Secret keys only: at most 30 days back and 5 minutes ahead of the server's clock" }));
const propertyValue = v.union(
  [v.pipe(maxChars(512, "must be at most 512 characters"), wellFormed), v.pipe(v.number(), v.finite("must be a finite number")), v.boolean(), v.null()],
  "must be a string (≤ 512), a number, a boolean or null",
);
const propertyKey = v.pipe(maxChars(64, "keys must be at most 64 characters"), v.minLength(1, "keys must not be empty"), wellFormed);
/**
 * valibot's record leaves out the keys `__proto__`, `prototype` and `constructor` (a guard against
 * prototype pollution), but properties are data, stored as JSON text: such a key is a valid
 * property like any other. The check below validates those keys (the record does every other
 * one), and `keepReservedProperties` copies them into the validated item.
 */
const RESERVED_KEYS = ["__proto__", "prototype", "constructor"] as const;
const reservedEntries = v.rawCheck<Record<string, unknown>>(({ dataset, addIssue }) => {
  if (!dataset.typed) return;
  for (const key of RESERVED_KEYS) {
    if (!Object.hasOwn(dataset.value, key)) continue;
    const parsed = v.safeParse(propertyValue, dataset.value[key]);
    if (!parsed.success) {
      addIssue({
        message: parsed.issues[0].message,
        path: [{ type: "object", origin: "value", input: dataset.value, key, value: dataset.value[key] }],
      });
    }
  }
});
const properties = v.pipe(
  v.custom<Record<string, unknown>>(
    (o) => typeof o === "object" && o !== null && !Array.isArray(o),
    (issue) => `must be an object of key/value pairs, not ${Array.isArray(issue.input) ? "an array" : issue.input === null ? "null" : `a ${typeof issue.input}`}`,
  ),
  v.maxEntries(50, "must have at most 50 keys"),
  reservedEntries,
  v.record(propertyKey, propertyValue),
);

/**
 * The validated item with the reserved property keys (see RESERVED_KEYS) put back as sent, every
 * key in the order it was sent. The raw item passed its schema, so those values are valid. Own
 * data properties (defineProperty): an assignment to `__proto__` would set the prototype instead.
 */
export function keepReservedProperties<T extends { properties?: Record<string, unknown> }>(raw: unknown, item: T): T {
  const sent = (raw as { properties?: Record<string, unknown> }).properties;
  const validated = item.properties;
  if (validated === undefined || sent === undefined || !RESERVED_KEYS.some((key) => Object.hasOwn(sent, key))) return item;
  // Rebuilt in the sent object's key order, so the stored text lists the keys as they came.
  const ordered: Record<string, unknown> = {};
  for (const key of Object.keys(sent)) {
    const value = (RESERVED_KEYS as readonly string[]).includes(key) ? sent[key] : validated[key];
    Object.defineProperty(ordered, key, { value, enumerable: true, writable: true, configurable: true });
  }
  item.properties = ordered;
  return item;
}

const str = (max: number) => v.pipe(maxChars(max, `must be at most ${max} characters`), wellFormed);
const nonEmpty = (max: number) => v.pipe(maxChars(max, `must be at most ${max} characters`), v.minLength(1, "must not be empty"), wellFormed);
/** A whole number within 0..max, with messages that say so. */
const wholeNumber = (max: number, what = "a whole number") =>
  v.pipe(v.number(), v.integer(`must be ${what}`), v.minValue(0, `must be 0–${max}`), v.maxValue(max, `must be 0–${max}`));
const pixels = wholeNumber(65535, "a whole number of pixels");
const uint32 = wholeNumber(4294967295);
const ms = v.pipe(v.number(), v.finite("must be a finite number"), v.minValue(0, "must be ≥ 0"), v.maxValue(3_600_000, "must be ≤ 3600000"));

const serviceId = v.pipe(v.string(), v.regex(/^[a-z0-9_-]{1,64}$/, "must be 1–64 of a-z 0-9 _ -"));

const SECRET_ONLY = "Secret keys only (with a public key: the single-item routes answer 403 forbidden, a batch drops the item with reason forbidden); else from the connection";

/** Fields every item may carry (API.md "Fields every item may carry"). */
const common = {
  event_id: v.optional(v.pipe(v.string(), v.uuid("must be a UUID"))),
  session_id: v.optional(nonEmpty(64)),
  anonymous_id: v.optional(nonEmpty(128)),
  user_id: v.optional(str(128)),
  timestamp: v.optional(itemTime),
  url: v.optional(httpUrl),
  referrer: v.optional(referrer),
  properties: v.optional(properties),
  // The address syntax the service reads addresses with (ip-address.ts): valibot's v.ip refused
  // the full IPv6 form with an IPv4 tail (0:0:0:0:0:ffff:8.8.8.8, 45 characters at most, as the
  // length limit allows) and took an IPv6 zone id (fe80::1%eth0), which names an interface of the
  // sender's host, not an address; JSON Schema's ipv6 format, which the OpenAPI document states,
  // has none.
  ip: v.optional(v.pipe(
    v.string(),
    v.maxLength(45, "must be an IPv4 or IPv6 address"),
    v.check((s) => !s.includes("%"), "must be an IPv4 or IPv6 address, without a zone id (%eth0)"),
    v.check((s) => s.includes("%") || isIpAddress(s), "must be an IPv4 or IPv6 address"),
    v.metadata({ anyOf: [{ format: "ipv4" }, { format: "ipv6" }], description: SECRET_ONLY }),
  )),
  user_agent: v.optional(v.pipe(str(USER_AGENT_MAX), v.metadata({ description: SECRET_ONLY }))),
  service_id: v.optional(serviceId),
};

export const SessionItem = v.object({
  ...common,
  type: v.optional(v.literal("session")),
  utm_source: v.optional(str(256)),
  utm_medium: v.optional(str(256)),
  utm_campaign: v.optional(str(256)),
  utm_term: v.optional(str(256)),
  utm_content: v.optional(str(256)),
  screen: v.optional(v.object({
    width: pixels,
    height: pixels,
  })),
  language: v.optional(str(35)),
  timezone: v.optional(str(64)),
});

export const PageviewItem = v.object({ ...common, type: v.optional(v.literal("pageview")), url: httpUrl, title: v.optional(str(512)) });

export const EventItem = v.object({
  ...common,
  type: v.optional(v.literal("event")),
  name: nonEmpty(120),
  conversion: v.optional(v.boolean()),
});

// The funnel's name is the field `funnel` (API.md). `name` is taken in its place when `funnel` is
// absent (README decision: a tracker that names it like an event's name is not dropped);
// `funnelName` reads it.
// "." and ".." are the only names no URL can carry: clients and the server resolve them as path
// segments, so GET /v1/funnels/.. never reaches the route and such a funnel could not be read.
const funnelNameField = v.pipe(
  nonEmpty(64),
  v.check((s) => s !== "." && s !== "..", 'must not be "." or "..": no URL of /v1/funnels/:name can name it'),
  v.metadata({ not: { enum: [".", ".."] } }),
);
const FUNNEL_NAME_REQUIRED = { anyOf: [{ required: ["funnel"] }, { required: ["name"] }] };
export const FunnelItem = v.pipe(
  v.object({
    ...common,
    type: v.optional(v.literal("funnel")),
    funnel: v.optional(funnelNameField),
    name: v.optional(v.pipe(funnelNameField, v.metadata({ description: "Taken as the funnel's name when `funnel` is absent" }))),
    step: v.pipe(v.number(), v.integer("must be an integer"), v.minValue(1, "must be 1–20"), v.maxValue(20, "must be 1–20")),
    step_name: v.optional(str(120)),
  }),
  v.forward(v.check((i) => i.funnel !== undefined || i.name !== undefined, "is required: the funnel's name, 1–64 characters"), ["funnel"]),
  v.metadata(FUNNEL_NAME_REQUIRED),
);

/** The funnel a funnel item is a step of. */
export function funnelName(item: { funnel?: string; name?: string }): string {
  return (item.funnel ?? item.name)!;
}

export const ErrorItem = v.object({
  ...common,
  type: v.optional(v.literal("error")),
  message: nonEmpty(1024),
  // "≤ 16 KiB" is bytes: 16384 characters of non-ASCII text would be up to 48 KiB of UTF-8.
  // Bytes only: 16 KiB of UTF-8 is never more than 16384 characters, so a character limit beside
  // it only repeated the issue (an audit: two issues for one stack of 16,385 ASCII characters).
  stack: v.optional(v.pipe(v.string(), v.maxBytes(16 * 1024, "must be at most 16 KiB (16384 bytes of UTF-8)"), wellFormed, v.metadata({ maxLength: 16 * 1024, description: "At most 16 KiB of UTF-8 (bytes, not characters)" }))),
  source: v.optional(str(MAX_URL)),
  line: v.optional(uint32),
  column: v.optional(uint32),
});

const ONE_METRIC_REQUIRED = { anyOf: ["lcp", "inp", "cls", "fcp", "ttfb"].map((m) => ({ required: [m] })) };
export const VitalsItem = v.pipe(
  v.object({
    ...common,
    type: v.optional(v.literal("vitals")),
    url: httpUrl,
    lcp: v.optional(ms),
    inp: v.optional(ms),
    fcp: v.optional(ms),
    ttfb: v.optional(ms),
    cls: v.optional(v.pipe(v.number(), v.finite("must be a finite number"), v.minValue(0, "must be ≥ 0"), v.maxValue(100, "must be ≤ 100"))),
  }),
  v.check((i) => [i.lcp, i.inp, i.fcp, i.ttfb, i.cls].some((x) => x !== undefined), "must carry at least one of lcp, inp, cls, fcp, ttfb"),
  v.metadata(ONE_METRIC_REQUIRED),
);

export const ITEM_SCHEMAS = {
  session: SessionItem,
  pageview: PageviewItem,
  event: EventItem,
  funnel: FunnelItem,
  error: ErrorItem,
  vitals: VitalsItem,
} as const;

export type ItemType = keyof typeof ITEM_SCHEMAS;
export const ITEM_TYPES = Object.keys(ITEM_SCHEMAS) as ItemType[];

/** A validated item of one of the six types, tagged with its type. */
export type Item = { [K in ItemType]: v.InferOutput<(typeof ITEM_SCHEMAS)[K]> & { type: K } }[ItemType];

/** The most items one batch may hold (API.md). */
export const MAX_BATCH_ITEMS = 500;

/** `POST /v1/ingest/batch`: 1–500 items; each item is validated on its own (a bad one is dropped). */
export const BatchBody = v.object({
  // A body service_id must be the key's (API.md); the route refuses another with 403.
  service_id: v.optional(serviceId),
  items: v.pipe(
    v.array(v.unknown(), "must be an array of 1 to 500 items"),
    v.minLength(1, "must hold 1 to 500 items"),
    v.maxLength(MAX_BATCH_ITEMS, "must hold 1 to 500 items"),
  ),
  // `"key": null` is no key, as on the single-item routes (resolveBodyKey reads it).
  key: v.nullish(v.string()),
});

/** The batch item shape for the OpenAPI document (validation itself goes item by item). */
export const BatchItemDoc = v.variant("type", [
  v.object({ ...SessionItem.entries, type: v.literal("session") }),
  v.object({ ...PageviewItem.entries, type: v.literal("pageview") }),
  v.object({ ...EventItem.entries, type: v.literal("event") }),
  v.pipe(v.object({ ...FunnelItem.pipe[0].entries, type: v.literal("funnel") }), v.metadata(FUNNEL_NAME_REQUIRED)),
  v.object({ ...ErrorItem.entries, type: v.literal("error") }),
  v.pipe(v.object({ ...VitalsItem.pipe[0].entries, type: v.literal("vitals") }), v.metadata(ONE_METRIC_REQUIRED)),
]);

/**
 * Why an item was dropped (API.md names invalid, bot and duplicate). `forbidden`: a batch item
 * naming another service, or setting a field its key may not set (a single-item route answers
 * 403 instead).
 */
export const DROP_REASONS = ["invalid", "forbidden", "bot", "duplicate"] as const;
export type DropReason = (typeof DROP_REASONS)[number];

/** The 202 answer of every ingest route. */
export const IngestResponse = v.object({
  accepted: v.pipe(v.number(), v.integer()),
  dropped: v.array(v.object({
    index: v.pipe(v.number(), v.integer(), v.minValue(0)),
    reason: v.picklist(DROP_REASONS),
    message: v.string(),
    issues: v.optional(v.array(v.object({ path: v.string(), message: v.string() }))),
  })),
  event_ids: v.array(v.string()),
  /** The session route only: the item's session, null when the item was dropped. */
  session_id: v.optional(v.nullable(v.string())),
});
