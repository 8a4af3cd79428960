// Turns accepted items and session changes into ClickHouse rows, encoded as spool records.
// A record is `<table>|<service_id>|<UTC date>|<JSONEachRow line>`: the sink groups records by
// table and concatenates the JSON parts without parsing them, and the service and date tell the
// cache which answers the new rows change.
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
  const cancelled = new Set<number>();
  const open = new Map<string, number>(); // `${service}|${session}|${version}|${sign}` → index
  records.forEach((record, i) => {
    if (!record.startsWith("sessions|")) return;
    const { serviceId, json } = decodeRecord(record);
    const head = SESSION_HEAD.exec(json);
    if (!head) return; // not written by sessionRecord: leave it alone
    const [, sign, version, sessionId] = head;
    const key = (sg: string) => `${serviceId}|${sessionId}|${version}|${sg}`;
    const other = sign === "1" ? "-1" : "1";
    const partner = open.get(key(other));
    if (partner !== undefined) {
      cancelled.add(partner).add(i);
      open.delete(key(other));
    } else {
      open.set(key(sign!), i);
    }
  });
  return cancelled.size === 0 ? [...records] : records.filter((_, i) => !cancelled.has(i));
}

/** The leading fields of a session row as sessionRecord writes them (the id stays JSON-escaped). */
const SESSION_HEAD = /^\{"sign":(-?1),"version":(\d+),"session_id":("(?:[^"\\]|\\.)*")/;
