// Query-string validation for the read routes. One middleware (`queryValidator`) runs a valibot
// object schema with strict semantics over `c.req.query()`-style input, so an unknown or repeated
// parameter is a 400 `invalid_query` naming it, and the same schema feeds GET /v1/openapi.json
// (hono-openapi reads it from the middleware). Query values are strings: the schemas here check
// formats and leave conversion (numbers, ranges) to the route, which keeps the OpenAPI honest.
import type { MiddlewareHandler } from "hono";
import { validator } from "hono-openapi";
import * as v from "valibot";
import { maxChars } from "../chars.ts";
import { ApiError, distinctIssues } from "../errors.ts";
import { DEVICES } from "../ingest/enrich/user-agent.ts";
import { MAX_URL, MAX_URL_PART } from "../ingest/schemas.ts";
import type { AppEnv } from "./app-env.ts";
import { calendarDateExists, ISO_TIME, parseIsoTime, utcDay } from "../iso-time.ts";

const MAX_ISSUES = 20;

/** Middleware: validates the query string; the route reads `c.req.valid("query")`. */
export function queryValidator<const E extends v.ObjectEntries>(entries: E) {
  const schema = v.strictObject(entries, strictMessage);
  return validator("query", schema, (result, c) => {
    // Hono's query parser drops a parameter with no name (`?=x`), so the strict schema never
    // sees it: an unknown parameter all the same.
    const nameless = namelessParams(c.req.url).map((segment) => ({ message: `unknown parameter with no name (${JSON.stringify(segment.length > 40 ? `${segment.slice(0, 40)}…` : segment)})` }));
    // Hono keeps a value it cannot decode as sent (`os=%ff` filtered for the text "%ff").
    const undecodable = undecodableParams(c.req.url).map((name) => ({ path: [name], message: NOT_UTF8 }));
    // A parameter sent twice reaches the schema as an array; a picklist's own message ("expected
    // session or visitor") would hide that, so the repetition is named whatever the schema said.
    const repeated = new Set(Object.keys(entries).filter((name) => (c.req.queries(name)?.length ?? 0) > 1));
    const failed = result.success ? [] : (result.error as readonly StandardIssue[]).map((issue) => (repeated.has(firstKey(issue)) ? { ...issue, message: REPEATED } : issue));
    const issues = [...nameless, ...undecodable, ...failed];
    if (issues.length > 0) throw invalidQuery(issues);
  }) as MiddlewareHandler<AppEnv, string, { in: { query: v.InferInput<typeof schema> }; out: { query: v.InferOutput<typeof schema> } }>;
}

/** The `name=value` pairs of a URL's query with an empty name (`?=x`, `?a=1&=`), as sent. */
export function namelessParams(url: string): string[] {
  const q = url.indexOf("?");
  if (q < 0) return [];
  const end = url.indexOf("#", q);
  return url.slice(q + 1, end < 0 ? undefined : end).split("&").filter((segment) => segment.startsWith("="));
}

const NOT_UTF8 = "not valid percent-encoded UTF-8 (é is %C3%A9; a literal % is %25)";

/** Decodes a query or path component as a server does, or undefined when it is not valid UTF-8 percent-encoding. */
function decodeComponent(text: string): string | undefined {
  try {
    return decodeURIComponent(text);
  } catch {
    return undefined;
  }
}

/** Names of the query parameters whose name or value is not valid percent-encoded UTF-8 (`%ff`, `%zz`, `%ED%A0%80`). */
export function undecodableParams(url: string): string[] {
  const q = url.indexOf("?");
  if (q < 0 || !url.includes("%", q)) return [];
  const end = url.indexOf("#", q);
  const out: string[] = [];
  for (const segment of url.slice(q + 1, end < 0 ? undefined : end).split("&")) {
    if (!segment.includes("%")) continue;
    const eq = segment.indexOf("=");
    const rawName = (eq < 0 ? segment : segment.slice(0, eq)).replaceAll("+", " ");
    const name = decodeComponent(rawName);
    if (name === undefined || decodeComponent(eq < 0 ? "" : segment.slice(eq + 1).replaceAll("+", " ")) === undefined) out.push(name ?? rawName);
  }
  return out;
}

// The strict object's own message covers unknown keys, missing keys and a wrong input type.
function strictMessage(issue: v.BaseIssue<unknown>): string {
  if (issue.expected === "never") return `unknown parameter ${String(issue.input)}`;
  if (issue.input === undefined && issue.expected?.startsWith('"')) return "required";
  return "expected query parameters";
}

/** Middleware: validates path parameters the same way (a bad one is a 400 naming it). */
export function paramValidator<const E extends v.ObjectEntries>(entries: E) {
  const schema = v.object(entries);
  return validator("param", schema, (result, c) => {
    // As for query values: Hono hands a segment it cannot decode over as sent (`/v1/funnels/%ff`).
    if (decodeComponent(new URL(c.req.url).pathname) === undefined) {
      throw invalidQuery(Object.keys(entries).map((name) => ({ path: [name], message: NOT_UTF8 })));
    }
    if (!result.success) throw invalidQuery(result.error as readonly StandardIssue[]);
  }) as MiddlewareHandler<AppEnv, string, { in: { param: v.InferInput<typeof schema> }; out: { param: v.InferOutput<typeof schema> } }>;
}

const REPEATED = "given more than once; send it once";

function firstKey(issue: StandardIssue): string {
  const p = issue.path?.[0];
  return String(typeof p === "object" && p !== null ? p.key : p);
}

interface StandardIssue {
  message: string;
  path?: ReadonlyArray<PropertyKey | { key: PropertyKey }>;
}

/** The 400 for failed query issues: every offending parameter is named in message and issues. */
export function invalidQuery(issues: readonly StandardIssue[]): ApiError {
  const list = distinctIssues(issues.map((issue) => ({
    path: (issue.path ?? []).map((p) => String(typeof p === "object" && p !== null ? p.key : p)).join("."),
    // A parameter sent twice reaches the schema as an array ("…but received Array").
    message: / received Array$/.test(issue.message) ? REPEATED : issue.message,
  })), MAX_ISSUES);
  const names = [...new Set(list.map((i) => i.path.split(".")[0] || "(a parameter with no name)"))];
  return new ApiError("invalid_query", `Invalid query parameter${names.length > 1 ? "s" : ""}: ${names.join(", ")}`, { issues: list });
}

const SERVICE_ID = /^[a-z0-9_-]{1,64}$/;
const DATE = /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])$/;
/** The document's forms of a range bound: DATE and ISO_TIME with the years 1970–2199 that are accepted. */
const IN_YEARS = (r: RegExp) => r.source.replace("^\\d{4}-", "^(?:19[7-9]\\d|2[01]\\d\\d)-");
export const DOC_DATE = IN_YEARS(DATE);
const EPOCH_MS = /^\d{1,15}$/;
// 1970..2200: far enough for any real data, and Date arithmetic stays exact.
const MIN_MS = 0;
export const MAX_MS = Date.UTC(2200, 0, 1);

/** A calendar date `YYYY-MM-DD` that exists (no 2026-02-29, no 2026-04-31), 1970..2199. */
export function isDateValue(s: string): boolean {
  if (!DATE.test(s)) return false;
  const ms = Date.parse(`${s}T00:00:00Z`);
  return Number.isFinite(ms) && utcDay(ms) === s && ms >= MIN_MS && ms < MAX_MS;
}

function isTimeValue(s: string): boolean {
  if (DATE.test(s)) return isDateValue(s);
  const iso = ISO_TIME.test(s);
  const ms = EPOCH_MS.test(s) ? Number(s) : iso ? parseIsoTime(s) : NaN;
  return Number.isFinite(ms) && ms >= MIN_MS && ms < MAX_MS && (!iso || calendarDateExists(s));
}

const timeZones = new Map(["UTC", ...Intl.supportedValuesOf("timeZone")].map((z) => [z.toLowerCase(), z]));

/**
 * The zones the ClickHouse behind this process knows (system.time_zones), once read at start. A
 * zone Intl knows and ClickHouse does not (US/Pacific-New, a link tzdata dropped) worked on the
 * routes that bucket in JavaScript and failed on those that bucket in SQL; with this list every
 * route refuses it alike. Unset (tests without an engine, or the read failed): Intl alone decides.
 */
let engineZones: ReadonlySet<string> | undefined;
export function useEngineTimeZones(zones: Iterable<string>): void {
  engineZones = new Set(zones);
}

/** The canonical IANA name for `tz` (case-insensitive), or undefined when it is not a zone. */
export function canonicalTimeZone(tz: string): string | undefined {
  const name = intlTimeZone(tz);
  return name !== undefined && engineZones !== undefined && !engineZones.has(name) ? undefined : name;
}

function intlTimeZone(tz: string): string | undefined {
  const known = timeZones.get(tz.toLowerCase());
  if (known) return known;
  // Aliases (Asia/Calcutta, US/Eastern) are real zones that Intl resolves but does not list.
  if (!/^[A-Za-z][A-Za-z0-9_+-]*(?:\/[A-Za-z0-9_+-]+){0,2}$/.test(tz)) return undefined;
  try {
    return new Intl.DateTimeFormat("en-US", { timeZone: tz }).resolvedOptions().timeZone;
  } catch {
    return undefined;
  }
}

const text = (max: number) => maxChars(max, `at most ${max} characters`);
const COUNTRY_CODE = "expected a two-letter ISO 3166-1 country code such as DE, or empty for sessions of unknown country";

/** A whole number from min to max, as a query string. */
export const intParam = (min: number, max: number, what: string) =>
  v.optional(
    v.pipe(
      v.string(),
      // One check, not v.regex: a regex becomes a `pattern`, which means nothing on the integer the
      // document states (ajv's strict mode refuses it).
      v.check((s) => /^\d{1,9}$/.test(s) && Number(s) >= min && Number(s) <= max, `${what}: a whole number from ${min} to ${max}`),
      v.description(`${what} (${min}..${max})`),
      // What the check enforces, stated for the document (the value arrives as query text).
      v.metadata({ type: "integer", minimum: min, maximum: max }),
    ),
  );

/**
 * An opaque paging cursor from a previous page's `next_cursor`: base64url of the last row's time
 * and id as JSON (cursor.ts). The longest is a session cursor with a session id of 64 control
 * characters, each escaped to six bytes in JSON (~540 characters of base64url), and its walk's last
 * 64 pages (four numbers each: two times of at most 13 digits, a CRC and an id prefix of at most
 * 10) and its walk's id: ~4,600 characters of base64url; 6144 leaves room.
 */
export const cursorParam = v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z0-9_-]{1,6144}$/, "not a cursor from this API"), v.description("next_cursor of the previous page")));

const TIME_FORMS = "expected a date YYYY-MM-DD, an ISO 8601 time with offset, or epoch milliseconds";
/** Why a value of the right form is still refused: a date not on the calendar, or out of range. */
function timeValueProblem(s: string): string {
  if (DATE.test(s) || ISO_TIME.test(s) || EPOCH_MS.test(s)) {
    if ((DATE.test(s) || ISO_TIME.test(s)) && !calendarDateExists(s)) return `${s.slice(0, 10)} is not a date on the calendar`;
    return "out of range: times from 1970-01-01 to 2199-12-31 are accepted";
  }
  return TIME_FORMS;
}

const timeParam = (what: string) =>
  v.optional(
    v.pipe(
      v.string(),
      v.maxLength(40, TIME_FORMS),
      v.check(isTimeValue, (issue) => timeValueProblem(String(issue.input))),
      v.description(what),
      v.metadata({ anyOf: [DOC_DATE, IN_YEARS(ISO_TIME), EPOCH_MS.source].map((pattern) => ({ pattern })) }),
    ),
  );

/** Session-attribute and page filters every query route takes. */
export const filterEntries = {
  // Closed sets: a value ingest never stores is a mistake to report (API.md: bad values are 400),
  // not a question whose answer is "nothing". Countries are read in any case (filters.ts).
  country: v.optional(v.pipe(v.string(), v.regex(/^(?:[A-Za-z]{2})?$/, COUNTRY_CODE), v.description("ISO 3166-1 alpha-2 code, any case; empty: sessions of unknown country"))),
  device: v.optional(v.picklist(DEVICES, `expected one of ${DEVICES.join(", ")}`)),
  browser: v.optional(text(256)),
  os: v.optional(text(256)),
  // A page URL may be 2,048 characters, and ingest keeps its path, host and UTM parameters whole:
  // any stored value can be asked for, as the URL carried it or as an answer gave it back (the path
  // filter was limited to 256, then 2,048, which percent-encoded paths exceed; UTM filters to 256,
  // which values taken from URLs exceeded; referrer_domain to 256, which a URL's host may exceed).
  utm_source: v.optional(text(MAX_URL)),
  utm_medium: v.optional(text(MAX_URL)),
  utm_campaign: v.optional(text(MAX_URL)),
  path: v.optional(v.pipe(text(MAX_URL_PART), v.description("sessions with a page view of this path; item lists: items on this path"))),
  referrer_domain: v.optional(text(MAX_URL_PART)),
};

/** The parameters every query route shares: service, range, zone and filters. */
export const commonEntries = {
  service_id: v.pipe(v.string(), v.regex(SERVICE_ID, "expected 1-64 of [a-z0-9_-]"), v.description("the service to read")),
  from: timeParam("start: a local date (inclusive) or a time (inclusive); default: 6 days before today"),
  to: timeParam("end: a local date (inclusive) or a time (exclusive); default: today"),
  tz: v.optional(v.pipe(v.string(), v.maxLength(64, "expected an IANA time zone"), v.check((s) => canonicalTimeZone(s) !== undefined, "expected an IANA time zone name, e.g. Europe/Berlin"), v.description("IANA time zone of dates and buckets; default UTC"))),
  ...filterEntries,
};
