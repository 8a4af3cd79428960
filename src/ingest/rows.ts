// Turns accepted items and session changes into ClickHouse rows, encoded as spool records.
// A record is `<table>|<service_id>|<UTC date>|<JSONEachRow line>`: the sink groups records by
// table and concatenates the JSON parts without parsing them, and the service and date tell the
// cache which answers the new rows change. One spool record holds the lines of one request,
// joined by "\n" (JSON text never holds a raw newline).
import type { EnrichedItem } from "./pipeline.ts";
import { isBounce, type SessionState } from "./sessions/session-state.ts";
import type { SessionChange } from "./sessions/sessionizer.ts";

export const TABLES = ["sessions", "events", "page_views", "funnel_events", "errors", "web_vitals"] as const;
export type Table = (typeof TABLES)[number];

const TABLE_OF_TYPE: Record<EnrichedItem["type"], Table | null> = {
  session: null, // a session item only shapes its session row
  pageview: "page_views",
  event: "events",
  funnel: "funnel_events",
  error: "errors",
  vitals: "web_vitals",
};

const iso = (ms: number) => new Date(ms).toISOString();
const utcDate = (ms: number) => iso(ms).slice(0, 10);

/** One record for the spool. */
export function encodeRecord(table: Table, serviceId: string, time: number, row: object): string {
  return `${table}|${serviceId}|${utcDate(time)}|${JSON.stringify(row)}`;
}

/** Splits a record back into its parts (the JSON stays text). */
export function decodeRecord(record: string): { table: Table; serviceId: string; date: string; json: string } {
  const a = record.indexOf("|");
  const b = record.indexOf("|", a + 1);
  const c = record.indexOf("|", b + 1);
  return { table: record.slice(0, a) as Table, serviceId: record.slice(a + 1, b), date: record.slice(b + 1, c), json: record.slice(c + 1) };
}

/** The row of an accepted item in its own table, or null for session items. */
export function itemRecord(e: EnrichedItem, sessionId: string): string | null {
  const table = TABLE_OF_TYPE[e.type];
  if (!table) return null;
  const base = {
    service_id: e.serviceId,
    event_id: e.eventId,
    timestamp: iso(e.time),
    received_at: iso(e.receivedAt),
    session_id: sessionId,
    visitor_id: e.visitorId,
    user_id: e.userId,
    url: e.url,
    path: e.path,
  };
  const it = e.item;
  switch (it.type) {
    case "pageview":
      return encodeRecord(table, e.serviceId, e.time, {
        ...base, hostname: e.hostname, title: it.title ?? "", referrer: e.referrer, referrer_domain: e.referrerDomain,
        utm_source: e.utm.source, utm_medium: e.utm.medium, utm_campaign: e.utm.campaign,
        device: e.device, browser: e.browser, os: e.os, country: e.country,
      });
    case "event":
      return encodeRecord(table, e.serviceId, e.time, {
        ...base, hostname: e.hostname, name: it.name, conversion: it.conversion ? 1 : 0,
        properties: JSON.stringify(it.properties ?? {}),
      });
    case "funnel":
      return encodeRecord(table, e.serviceId, e.time, { ...base, funnel: it.funnel, step: it.step, step_name: it.step_name ?? "" });
    case "error":
      return encodeRecord(table, e.serviceId, e.time, {
        ...base, fingerprint: e.fingerprint, message: it.message, stack: it.stack ?? "", source: it.source ?? "",
        line: it.line ?? 0, column: it.column ?? 0,
      });
    case "vitals":
      return encodeRecord(table, e.serviceId, e.time, {
        ...base, lcp: it.lcp ?? null, inp: it.inp ?? null, cls: it.cls ?? null, fcp: it.fcp ?? null, ttfb: it.ttfb ?? null,
      });
    default:
      return null;
  }
}

/** The session rows of one change: cancel the previous state (if any), then the new state. */
export function sessionRecords(change: SessionChange): string[] {
  const out: string[] = [];
  if (change.before) out.push(sessionRecord(change.before, -1));
  out.push(sessionRecord(change.after, 1));
  return out;
}

function sessionRecord(s: SessionState, sign: 1 | -1): string {
  const durationMs = s.ended_at - s.started_at;
  // sign, version and session_id lead the JSON: collapseSessionRecords reads them without parsing.
  return encodeRecord("sessions", s.service_id, s.started_at, {
    sign,
    version: s.version,
    session_id: s.session_id,
    service_id: s.service_id,
    visitor_id: s.visitor_id,
    user_id: s.user_id,
    started_at: iso(s.started_at),
    ended_at: iso(s.ended_at),
    duration_s: Math.floor(durationMs / 1000),
    duration_ms: durationMs,
    pageviews: s.pageviews,
    events: s.events,
    items: s.items,
    is_bounce: isBounce(s) ? 1 : 0,
    converted: s.converted ? 1 : 0,
    entry_path: s.entry_path,
    exit_path: s.exit_path,
    exit_at: iso(s.exit_at),
    ...s.attrs,
  });
}

/**
 * Within one flush, a session's intermediate states cancel out (each +1 row of version v meets the
 * −1 row of version v written by the next update): only the cancel of its state before the flush
 * and its latest state need to reach ClickHouse, which spares the session views most of their
 * rows under load. Deterministic, so a replayed flush sends the same rows under the same token.
 */
export function collapseSessionRecords(records: readonly string[]): string[] {
  const indexes: number[] = [];
  const keys: string[] = [];
  const plus: boolean[] = [];
  records.forEach((record, i) => {
    if (!record.startsWith("sessions|")) return;
    const { serviceId, json } = decodeRecord(record);
    const head = SESSION_HEAD.exec(json);
    if (!head) return; // not written by sessionRecord: leave it alone
    indexes.push(i);
    keys.push(`${serviceId}|${head[3]}|${head[2]}`);
    plus.push(head[1] === "1");
  });
  const cancelled = new Set(Array.from(collapsedPairs(keys, plus), (k) => indexes[k]!));
  return cancelled.size === 0 ? [...records] : records.filter((_, i) => !cancelled.has(i));
}

/** The leading fields of a session row as sessionRecord writes them (the id stays JSON-escaped). */
const SESSION_HEAD = /^\{"sign":(-?1),"version":(\d+),"session_id":("(?:[^"\\]|\\.)*")/;

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
  const tables = new Map<Table, RowSlice[]>();
  const touched = new Map<string, Set<string>>();
  // Per distinct `table|service|date` prefix (a few per flush): its decoded parts and row list.
  const prefixes = new Map<string, { table: Table; service: string; rows: RowSlice[] }>();
  const sessionRows: RowSlice[] = []; // collapse candidates, in spool order
  const sessionKeys: string[] = [];
  const sessionSigns: boolean[] = [];
  for (const record of records) {
    const buf = Buffer.isBuffer(record) ? record : Buffer.from(record.buffer, record.byteOffset, record.byteLength);
    // latin1 maps each byte to one character: string offsets are byte offsets, keys compare bytes
    // exactly, and the engine's string search runs instead of a byte loop in JS.
    const text = buf.toString("latin1");
    let pos = 0;
    while (pos < text.length) {
      let end = text.indexOf("\n", pos);
      if (end < 0) end = text.length;
      const a = text.indexOf("|", pos);
      const b = a < 0 || a >= end ? -1 : text.indexOf("|", a + 1);
      const c = b < 0 || b >= end ? -1 : text.indexOf("|", b + 1);
      if (c < 0 || c >= end) throw new Error(`spool record without table|service|date prefix: ${utf8.decode(buf.subarray(pos, Math.min(end, pos + 80)))}`);
      const key = text.slice(pos, c);
      let group = prefixes.get(key);
      if (!group) {
        const { table, serviceId, date } = decodeRecord(`${utf8.decode(buf.subarray(pos, c))}|`);
        let rows = tables.get(table);
        if (!rows) tables.set(table, (rows = []));
        group = { table, service: key.slice(a - pos + 1, b - pos), rows };
        prefixes.set(key, group);
        let dates = touched.get(serviceId);
        if (!dates) touched.set(serviceId, (dates = new Set()));
        dates.add(date);
      }
      const row: RowSlice = { buf, start: c + 1, end };
      group.rows.push(row);
      if (opts.collapse && group.table === "sessions") {
        SESSION_HEAD_AT.lastIndex = c + 1;
        const head = SESSION_HEAD_AT.exec(text);
        if (head) {
          sessionRows.push(row);
          sessionKeys.push(`${group.service}|${head[3]}|${head[2]}`);
          sessionSigns.push(head[1] === "1");
        }
      }
      pos = end + 1;
    }
  }
  if (sessionRows.length > 0) {
    const cancelled = collapsedPairs(sessionKeys, sessionSigns);
    if (cancelled.size > 0) {
      const drop = new Set(Array.from(cancelled, (i) => sessionRows[i]!));
      tables.set("sessions", tables.get("sessions")!.filter((r) => !drop.has(r)));
    }
  }
  return { tables, touched };
}

/** SESSION_HEAD, matched at `lastIndex` of a longer text (sticky). */
const SESSION_HEAD_AT = new RegExp(SESSION_HEAD.source.slice(1), "y");

/**
 * Indexes of rows that cancel out: `keys[i]` names a session state (service, id, version) and
 * `plus[i]` its sign; a +1 and a −1 row of the same state (either order) cancel, each row at most once.
 */
function collapsedPairs(keys: readonly string[], plus: readonly boolean[]): Set<number> {
  const cancelled = new Set<number>();
  const openPlus = new Map<string, number>();
  const openMinus = new Map<string, number>();
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const [mine, other] = plus[i] ? [openPlus, openMinus] : [openMinus, openPlus];
    const partner = other.get(k);
    if (partner !== undefined) {
      cancelled.add(partner).add(i);
      other.delete(k);
    } else {
      mine.set(k, i);
    }
  }
  return cancelled;
}
