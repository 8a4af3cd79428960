// Turns accepted items and session changes into ClickHouse rows, encoded as row lines.
// A row line (the functions here call it a record) is `<table>|<service_id>|<UTC dates>|<row>`:
// the sink groups the lines by table and concatenates the rows without parsing them, and the
// service and dates tell the cache which answers the new rows change. A row is a JSON array of the table's ROW_COLUMNS (inserted as
// JSONCompactEachRow); rows that earlier versions left in the spool are JSON objects (JSONEachRow),
// and still go in as such. The dates are one `YYYY-MM-DD`, or `from..to` for a
// session row whose session spans UTC midnight (see sessionDates). One spool record (spool.ts)
// holds the row lines of one request, joined by "\n" (JSON text never holds a raw newline).
import { DAY_MS, utcDay } from "../iso-time.ts";
import type { EnrichedItem } from "./pipeline.ts";
import { funnelName } from "./schemas.ts";
import { isBounce, type SessionState } from "./sessions/session-state.ts";
import type { Assignment, SessionChange } from "./sessions/sessionizer.ts";

export const TABLES = ["sessions", "events", "page_views", "funnel_events", "errors", "web_vitals", "session_items", "session_aliases"] as const;
export type Table = (typeof TABLES)[number];

/**
 * The columns of each table's rows, in the order the encoders below write the values. Rows are JSON
 * arrays, not objects naming each value: in an A/B over HTTP the engine's CPU (its threads and
 * its calls) per single-item event fell from ~31 to ~16 µs, and JSON.stringify writes a row in
 * about half the time (bench/insert-format.ts; bench/RESULTS.md, 2026-11-30 04:14). Columns left
 * out get their DEFAULT, as keys left out of an object did.
 *
 * Spool segments outlive the process that wrote them, so a list is never changed in place: rows
 * already spooled under it would be read against the new one. A table that needs other columns
 * needs a row form the reader can tell from this one (a tag in the record's prefix, say), as the
 * arrays are told from the objects of earlier versions (tests/ingest/rows.test.ts pins the lists).
 */
export const ROW_COLUMNS = {
  sessions: [
    "sign", "version", "session_id", "service_id", "visitor_id", "user_id", "started_at", "ended_at", "duration_s", "duration_ms",
    "pageviews", "events", "items", "is_bounce", "converted", "entry_path", "exit_path", "exit_at", "hostname", "referrer",
    "referrer_domain", "utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "device", "browser", "os", "country",
    "screen_width", "screen_height", "language", "timezone", "client_kept",
  ],
  events: [...itemColumns(), "hostname", "name", "conversion", "properties"],
  page_views: [
    ...itemColumns(), "hostname", "title", "referrer", "referrer_domain", "utm_source", "utm_medium", "utm_campaign",
    "device", "browser", "os", "country",
  ],
  funnel_events: [...itemColumns(), "funnel", "step", "step_name"],
  errors: [...itemColumns(), "fingerprint", "message", "stack", "source", "line", "column"],
  web_vitals: [...itemColumns(), "lcp", "inp", "cls", "fcp", "ttfb"],
  session_items: itemColumns(),
  session_aliases: ["service_id", "alias", "canonical", "version", "started_at"],
} as const satisfies Record<Table, readonly string[]>;

/** The columns every item row starts with. */
function itemColumns() {
  return ["service_id", "event_id", "timestamp", "received_at", "session_id", "visitor_id", "user_id", "url", "path"] as const;
}

/** A row of `table` as an object by column name, whichever form it was written in (tests, repairs). */
export function rowObject(table: Table, json: string): Record<string, unknown> {
  const row = JSON.parse(json) as unknown;
  if (!Array.isArray(row)) return row as Record<string, unknown>;
  const columns: readonly string[] = ROW_COLUMNS[table];
  if (row.length !== columns.length) throw new Error(`a ${table} row has ${row.length} values for ${columns.length} columns`);
  return Object.fromEntries(columns.map((c, i) => [c, row[i]]));
}

const TABLE_OF_TYPE: Record<EnrichedItem["type"], Table | null> = {
  session: "session_items", // it shapes its session's row; this row keeps its event_id (schemas/09)
  pageview: "page_views",
  event: "events",
  funnel: "funnel_events",
  error: "errors",
  vitals: "web_vitals",
};

/** 10000-01-01T00:00:00Z: from there on toISOString writes a six-digit year. */
const YEAR_10000_MS = 253_402_300_800_000;
const PAD2 = Array.from({ length: 60 }, (_, i) => String(i).padStart(2, "0"));
const PAD3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));
/** `YYYY-MM-DD` per UTC day start (a few days are live at a time: back-fills, midnight). */
const dayTexts = new Map<number, string>();

/**
 * `new Date(ms).toISOString()`, without a Date and the engine's formatting per call (5% of the
 * ingest thread): the day's text is kept per UTC day, the time of day comes from tables. Anything
 * but whole milliseconds in years 1970–9999 goes through toISOString itself (same text, same errors).
 */
export function isoTime(ms: number): string {
  // The times of a request and of its sessions' rows repeat (started_at on every update, exit_at
  // = ended_at after a page view, received_at per request): a small direct-mapped cache per ms.
  const slot = ms & (ISO_SLOTS - 1);
  if (isoKeys[slot] === ms) return isoTexts[slot]!;
  const text = formatIso(ms);
  isoKeys[slot] = ms;
  isoTexts[slot] = text;
  return text;
}

const ISO_SLOTS = 4096;
const isoKeys = new Float64Array(ISO_SLOTS).fill(NaN);
const isoTexts: string[] = new Array<string>(ISO_SLOTS).fill("");

function formatIso(ms: number): string {
  if (!(ms >= 0 && ms < YEAR_10000_MS) || !Number.isInteger(ms)) return new Date(ms).toISOString();
  let rest = ms % DAY_MS;
  const day = dayText(ms - rest);
  const h = (rest / 3_600_000) | 0;
  rest -= h * 3_600_000;
  const m = (rest / 60_000) | 0;
  rest -= m * 60_000;
  const sec = (rest / 1000) | 0;
  return `${day}T${PAD2[h]}:${PAD2[m]}:${PAD2[sec]}.${PAD3[rest - sec * 1000]}Z`;
}

/** utcDay, kept per day start. */
function dayText(dayStart: number): string {
  let text = dayTexts.get(dayStart);
  if (text === undefined) {
    if (dayTexts.size >= 4096) dayTexts.clear();
    text = utcDay(dayStart);
    dayTexts.set(dayStart, text);
  }
  return text;
}

/** The UTC date (`YYYY-MM-DD`) of a time, as `isoTime(ms).slice(0, 10)`. */
const utcDate = (ms: number) => (ms >= 0 && ms < YEAR_10000_MS && Number.isInteger(ms) ? dayText(ms - (ms % DAY_MS)) : isoTime(ms).slice(0, 10));
const iso = isoTime;

/**
 * The UTC dates a session row changes answers of: from its start through its end. Answers about
 * items (lists filtered by a session attribute, sessions of errors, funnels by session) read the
 * sessions of items up to the session's last item, so a session going on past midnight changes
 * the next day's answers too: e.g. a late item that gives it an earlier first item (and with it
 * other attributes), or a merge whose absorbed part ran past midnight.
 */
function sessionDates(s: SessionState): string {
  const from = utcDate(s.started_at);
  const to = utcDate(s.ended_at);
  return from === to ? from : `${from}..${to}`;
}

/** The dates of a record's date field (one date, or every date of `from..to`). */
export function recordDates(field: string): string[] {
  const sep = field.indexOf("..");
  if (sep < 0) return [field];
  const from = Date.parse(`${field.slice(0, sep)}T00:00:00Z`);
  const to = Date.parse(`${field.slice(sep + 2)}T00:00:00Z`);
  // A session lasts as long as items keep coming; cap the list at a year (the rows' TTL).
  if (!(from <= to)) return [field.slice(0, sep)];
  const out: string[] = [];
  for (let d = from; d <= to && out.length < 366; d += DAY_MS) out.push(dayText(d));
  return out;
}

/**
 * One record for the spool: `row` holds the values of ROW_COLUMNS[table] in order. (An object by
 * column name is the form earlier versions wrote; it is still read, and tests write it so.)
 */
export function encodeRecord(table: Table, serviceId: string, time: number, row: readonly unknown[] | object): string {
  return `${table}|${serviceId}|${utcDate(time)}|${JSON.stringify(row)}`;
}

/** Splits a record back into its parts (the JSON stays text). */
export function decodeRecord(record: string): { table: Table; serviceId: string; date: string; json: string } {
  const a = record.indexOf("|");
  const b = record.indexOf("|", a + 1);
  const c = record.indexOf("|", b + 1);
  return { table: record.slice(0, a) as Table, serviceId: record.slice(a + 1, b), date: record.slice(b + 1, c), json: record.slice(c + 1) };
}

/**
 * The row of an accepted item in its own table: the values of ROW_COLUMNS[table], in order. Each
 * type's array is written out whole (no spread of a shared head: it would copy it value by value).
 */
export function itemRecord(e: EnrichedItem, sessionId: string): string | null {
  const table = TABLE_OF_TYPE[e.type];
  if (!table) return null;
  const timestamp = iso(e.time);
  const receivedAt = iso(e.receivedAt);
  const it = e.item;
  let row: unknown[];
  switch (it.type) {
    case "session":
      row = [e.serviceId, e.eventId, timestamp, receivedAt, sessionId, e.visitorId, e.userId, e.url, e.path];
      break;
    case "pageview":
      row = [
        e.serviceId, e.eventId, timestamp, receivedAt, sessionId, e.visitorId, e.userId, e.url, e.path,
        e.hostname, it.title ?? "", e.referrer, e.referrerDomain, e.utm.source, e.utm.medium, e.utm.campaign,
        e.device, e.browser, e.os, e.country,
      ];
      break;
    case "event":
      row = [
        e.serviceId, e.eventId, timestamp, receivedAt, sessionId, e.visitorId, e.userId, e.url, e.path,
        e.hostname, it.name, it.conversion ? 1 : 0, JSON.stringify(it.properties ?? {}),
      ];
      break;
    case "funnel":
      row = [
        e.serviceId, e.eventId, timestamp, receivedAt, sessionId, e.visitorId, e.userId, e.url, e.path,
        funnelName(it), it.step, it.step_name ?? "",
      ];
      break;
    case "error":
      row = [
        e.serviceId, e.eventId, timestamp, receivedAt, sessionId, e.visitorId, e.userId, e.url, e.path,
        e.fingerprint, it.message, it.stack ?? "", it.source ?? "", it.line ?? 0, it.column ?? 0,
      ];
      break;
    case "vitals":
      row = [
        e.serviceId, e.eventId, timestamp, receivedAt, sessionId, e.visitorId, e.userId, e.url, e.path,
        it.lcp ?? null, it.inp ?? null, it.cls ?? null, it.fcp ?? null, it.ttfb ?? null,
      ];
      break;
    default:
      return null;
  }
  return `${table}|${e.serviceId}|${timestamp.slice(0, 10)}|${JSON.stringify(row)}`;
}

/**
 * The session rows of one change: cancel the previous state (if any), then the new state. The
 * cancel row is serialized again from the state, not kept from when that state's +1 row was
 * written: keeping each live session's row text cost ~0.86 KB of heap per session (42% of its
 * in-process state, bench/memory-per-visitor.ts), serializing it again ~0.6 µs per change.
 */
export function sessionRecords(change: SessionChange): string[] {
  const after = sessionRecord(change.after, 1);
  if (!change.before) return [after];
  return [sessionRecord(change.before, -1), after];
}

/**
 * The rows of a request's session merges: a cancel row for the stored state of each session merged
 * into another (no new row: its items count in the other), and an alias row for each id whose
 * items belong to another session now. They go in the request's spool record with its other rows,
 * so a crash keeps the merge whole or not at all.
 */
export function mergeRecords(a: Pick<Assignment, "cancelled" | "aliases">): string[] {
  const out: string[] = [];
  for (const s of a.cancelled) out.push(sessionRecord(s, -1));
  for (const al of a.aliases) {
    const row = [al.service_id, al.alias, al.canonical, al.version, iso(al.started_at)];
    out.push(encodeRecord("session_aliases", al.service_id, al.started_at, row));
  }
  return out;
}

/** A session row: the values of ROW_COLUMNS.sessions, in order (written out, not spread: see itemRecord). */
export function sessionRecord(s: SessionState, sign: 1 | -1): string {
  const durationMs = s.ended_at - s.started_at;
  const a = s.attrs;
  // sign, version and session_id lead the row: collapseSessionRecords reads them without parsing.
  const row = [
    sign, s.version, s.session_id, s.service_id, s.visitor_id, s.user_id, iso(s.started_at), iso(s.ended_at),
    Math.floor(durationMs / 1000), durationMs, s.pageviews, s.events, s.items, isBounce(s) ? 1 : 0, s.converted ? 1 : 0,
    s.entry_path, s.exit_path, iso(s.exit_at), a.hostname, a.referrer, a.referrer_domain, a.utm_source, a.utm_medium,
    a.utm_campaign, a.utm_term, a.utm_content, a.device, a.browser, a.os, a.country, a.screen_width, a.screen_height,
    a.language, a.timezone, s.client ? 1 : 0,
  ];
  return `sessions|${s.service_id}|${sessionDates(s)}|${JSON.stringify(row)}`;
}

/**
 * Within one flush, a session's intermediate states cancel out (each +1 row of version v meets the
 * −1 row of version v written by the next update): only the cancel of its state before the flush
 * and its latest state need to reach ClickHouse, which spares the session views most of their
 * rows under load. Deterministic, so a replayed flush sends the same rows under the same token.
 */
export function collapseSessionRecords(records: readonly string[]): string[] {
  const pairs = new CancellingPairs<number>();
  records.forEach((record, i) => {
    if (!record.startsWith("sessions|")) return;
    const { serviceId, json } = decodeRecord(record);
    const head = matchSessionHead(json);
    if (!head) return; // not written by sessionRecord: leave it alone
    pairs.add(i, `${serviceId}|${head[3]}|${head[2]}`, head[1] === "1");
  });
  return pairs.cancelled.size === 0 ? [...records] : records.filter((_, i) => !pairs.cancelled.has(i));
}

/**
 * Rows that cancel out, found one row at a time: a +1 and a −1 row of the same session state
 * (`key`: service, id, version) cancel, in either order, each row at most once.
 */
class CancellingPairs<T> {
  readonly cancelled = new Set<T>();
  readonly #openPlus = new Map<string, T>();
  readonly #openMinus = new Map<string, T>();

  add(row: T, key: string, plus: boolean): void {
    const mine = plus ? this.#openPlus : this.#openMinus;
    const other = plus ? this.#openMinus : this.#openPlus;
    const partner = other.get(key);
    if (partner !== undefined) {
      this.cancelled.add(partner).add(row);
      other.delete(key);
    } else {
      mine.set(key, row);
    }
  }
}

/**
 * The leading values of a session row as sessionRecord writes them (sign, version, the id still
 * JSON-escaped: the same text in either form), or null for a row it did not write. Rows from
 * before 2026-11-30 are objects whose first keys are those three.
 */
function matchSessionHead(text: string): RegExpExecArray | null {
  return (text.charCodeAt(0) === 0x5b ? SESSION_HEAD : OBJECT_SESSION_HEAD).exec(text);
}
const SESSION_HEAD = /^\[(-?1),(\d+),("(?:[^"\\]|\\.)*")/;
const OBJECT_SESSION_HEAD = /^\{"sign":(-?1),"version":(\d+),"session_id":("(?:[^"\\]|\\.)*")/;

/** One row of a flush: the bytes of its JSON text, `buf[start, end)`, inside a spool record. */
export interface RowSlice {
  buf: Buffer;
  start: number;
  end: number;
}

/** The rows of a flush per table, in spool order, and which services and UTC dates they touch. */
export interface GroupedRows {
  tables: Map<Table, RowSlice[]>;
  touched: Map<string, Set<string>>;
}

const NEWLINE = 0x0a;
const BAR = 0x7c;
const utf8 = new TextDecoder();

/**
 * Groups spool records (as read from a segment: UTF-8 bytes) by table without decoding them: each
 * row stays a slice of its record's bytes, so the sink can hand the JSON text to ClickHouse as is
 * (no decode, split, parse or re-encode). Only the short `table|service|date` prefix is read, and
 * for session rows the leading sign, version and id (see collapseSessionRecords, which this applies
 * when `collapse` is set, with the same result). Bytes "\n" and "|" never occur inside a multi-byte
 * UTF-8 sequence, so splitting bytes splits the text exactly where the string functions do.
 */
export function groupRows(records: readonly Uint8Array[], opts: { collapse?: boolean } = {}): GroupedRows {
  const grouper = new RowGrouper(opts.collapse === true);
  for (const record of records) grouper.add(record);
  return grouper.finish();
}

/**
 * groupRows for a whole flush without holding the event loop: the records are taken in slices
 * of about `sliceMs` each, and requests waiting meanwhile are served between slices. At 4,800
 * records a flush (half load) grouping in one go held the loop 26–46 ms once a second, which
 * every request arriving in that time waited out. Same result as groupRows.
 */
export async function groupRowsInSlices(records: readonly Uint8Array[], opts: { collapse?: boolean; sliceMs?: number } = {}): Promise<GroupedRows> {
  const sliceMs = opts.sliceMs ?? 2;
  const grouper = new RowGrouper(opts.collapse === true);
  let sliceStarted = performance.now();
  for (let i = 0; i < records.length; i++) {
    grouper.add(records[i]!);
    // The clock is read every 32 records (a record takes a few µs).
    if ((i & 31) === 31 && performance.now() - sliceStarted >= sliceMs) {
      await yieldToRequests();
      sliceStarted = performance.now();
    }
  }
  return grouper.finish();
}

/** Lets requests that arrived meanwhile run before the flush goes on (setImmediate: after pending I/O callbacks). */
function yieldToRequests(): Promise<void> {
  return new Promise<void>((resolve) => setImmediate(resolve));
}

/** Groups records one at a time (see groupRows); `finish` applies the collapse. */
class RowGrouper {
  readonly #tables = new Map<Table, RowSlice[]>();
  readonly #touched = new Map<string, Set<string>>();
  // Per distinct `table|service|date` prefix (a few per flush): its decoded parts and row list.
  readonly #prefixes = new Map<string, { table: Table; service: string; rows: RowSlice[] }>();
  // The collapse, applied row by row (so a sliced grouping slices it too).
  readonly #pairs = new CancellingPairs<RowSlice>();

  constructor(private readonly collapse: boolean) {}

  add(record: Uint8Array): void {
    const buf = Buffer.isBuffer(record) ? record : Buffer.from(record.buffer, record.byteOffset, record.byteLength);
    // The bytes are searched where they lie: turning each record into a string first (one
    // allocation the size of the record, megabytes a flush) cost more than everything else here.
    const length = buf.byteLength;
    let pos = 0;
    while (pos < length) {
      let end = buf.indexOf(NEWLINE, pos);
      if (end < 0) end = length;
      const a = barAt(buf, pos, end);
      const b = a < 0 ? -1 : barAt(buf, a + 1, end);
      const c = b < 0 ? -1 : barAt(buf, b + 1, end);
      if (c < 0) throw new Error(`spool record without table|service|date prefix: ${utf8.decode(buf.subarray(pos, Math.min(end, pos + 80)))}`);
      // latin1 maps each byte to one character: keys compare the prefix's bytes exactly.
      const key = buf.toString("latin1", pos, c);
      let group = this.#prefixes.get(key);
      if (!group) {
        const { table, serviceId, date } = decodeRecord(`${utf8.decode(buf.subarray(pos, c))}|`);
        let rows = this.#tables.get(table);
        if (!rows) this.#tables.set(table, (rows = []));
        group = { table, service: key.slice(a - pos + 1, b - pos), rows };
        this.#prefixes.set(key, group);
        let dates = this.#touched.get(serviceId);
        if (!dates) this.#touched.set(serviceId, (dates = new Set()));
        for (const d of recordDates(date)) dates.add(d);
      }
      const row: RowSlice = { buf, start: c + 1, end };
      group.rows.push(row);
      if (this.collapse && group.table === "sessions") {
        const head = sessionHead(buf, c + 1, end);
        if (head) this.#pairs.add(row, `${group.service}|${head[3]}|${head[2]}`, head[1] === "1");
      }
      pos = end + 1;
    }
  }

  finish(): GroupedRows {
    const tables = this.#tables;
    const { cancelled } = this.#pairs;
    if (cancelled.size > 0) tables.set("sessions", tables.get("sessions")!.filter((r) => !cancelled.has(r)));
    return { tables, touched: this.#touched };
  }
}

/** Bytes of a session row that always hold its head: `{"sign":-1,"version":…,"session_id":` (the longer, object form) and an id escaped at 6 bytes a character. */
const SESSION_HEAD_MAX_BYTES = 1024;
/** Bytes that hold the head of a row with a usual id (a UUID's head is ~75 bytes). */
const SESSION_HEAD_USUAL_BYTES = 160;

/**
 * The head of the session row `buf[start, end)` (matchSessionHead's match), read from its first
 * bytes: a string of the usual head's size first, the longest possible head only when that is
 * too short for the id (a string of 1 KB per session row cost ~7% of a batch flush's grouping).
 */
function sessionHead(buf: Buffer, start: number, end: number): RegExpExecArray | null {
  const usual = Math.min(end, start + SESSION_HEAD_USUAL_BYTES);
  const head = matchSessionHead(buf.toString("latin1", start, usual));
  if (head || usual === end) return head;
  return matchSessionHead(buf.toString("latin1", start, Math.min(end, start + SESSION_HEAD_MAX_BYTES)));
}

/** Where the next "|" is in `buf[from, end)`, or -1 (a prefix is tens of bytes: a loop beats a native call). */
function barAt(buf: Buffer, from: number, end: number): number {
  for (let i = from; i < end; i++) if (buf[i] === BAR) return i;
  return -1;
}

