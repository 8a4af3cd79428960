// GET /v1/events: custom events in the range (each at its own time), newest first, with their
// properties parsed back into objects.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { encodeCursor, type Keyset } from "./cursor.ts";
import { canonicalSession, type Filters, itemConditions, itemSession } from "./filters.ts";
import type { Page } from "./session-list.ts";
import { newestRows, nextWindow, pageUpperBound } from "./newest-first.ts";
import { selectRows, SqlParams } from "./sql-params.ts";
import type { TimeRange } from "./time-range.ts";

export interface EventRow {
  event_id: string;
  name: string;
  timestamp: string;
  session_id: string;
  visitor_id: string;
  user_id: string;
  url: string;
  path: string;
  properties: Record<string, unknown>;
}

export interface EventListQuery {
  serviceId: string;
  range: TimeRange;
  filters: Filters;
  name?: string;
  sessionId?: string;
  userId?: string;
  limit: number;
  after?: Keyset;
  /** The page's text budget (default PAGE_BYTES). */
  pageBytes?: number;
}

/** About how much event text (properties, url, name) one page carries; see listEvents. */
export const PAGE_BYTES = 8 * 1024 * 1024;

type Raw = Omit<EventRow, "event_id" | "timestamp" | "properties" | "session_id"> & { id: string; ts: number; sid: string; properties: string };

/** One page of events, newest first by (timestamp, event_id); see newest-first.ts for the windows. */
export async function listEvents(ch: ClickHouseClient, q: EventListQuery): Promise<Page<EventRow>> {
  const rows = await newestRows(q.range, q.after, q.limit, (lower, upper) => eventsBetween(ch, q, lower, upper));
  const fits = rows.findIndex((r) => r.beyond === 1);
  const page = rows.slice(0, Math.min(q.limit, fits === -1 ? rows.length : fits));
  const last = page[page.length - 1];
  return {
    data: page.map(({ id, ts, properties, ...rest }) => ({
      event_id: id,
      name: rest.name,
      timestamp: new Date(ts).toISOString(),
      session_id: rest.sid,
      visitor_id: rest.visitor_id,
      user_id: rest.user_id,
      url: rest.url,
      path: rest.path,
      properties: parseProperties(properties),
    })),
    next_cursor:
      rows.length > page.length && last
        ? encodeCursor("events", { t: last.ts, id: last.id, w: nextWindow(pageUpperBound(q.range.end, q.after), last.ts, page.length, q.limit) })
        : null,
  };
}

/** The newest limit + 1 events of [lower, upper) (and before the cursor), the ones past the page's text budget without their text. */
async function eventsBetween(ch: ClickHouseClient, q: EventListQuery, lower: number, upper: number): Promise<Array<Raw & { beyond: number }>> {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const where = [`service_id = ${service}`, `timestamp >= ${p.instant(lower)}`, `timestamp < ${p.instant(upper)}`];
  if (q.name !== undefined) where.push(`name = ${p.bind("String", q.name)}`);
  // Events of a merged session are listed (and found) under the session they went into, and so
  // is a merged session's own id asked for (a tracker keeps the id the session route answered).
  const session = itemSession(service);
  if (q.sessionId !== undefined) where.push(`${session} = ${canonicalSession(p.bind("String", q.sessionId), service)}`);
  if (q.userId !== undefined) where.push(`user_id = ${p.bind("String", q.userId)}`);
  where.push(...itemConditions(q.filters, p, service, { start: lower, end: upper }));
  if (q.after) where.push(`(timestamp, toString(event_id)) < (${p.instant(q.after.t)}, ${p.bind("String", q.after.id)})`);
  // A page holds up to `limit` events and about PAGE_BYTES of their text: 1,000 events of 50
  // properties of 512 characters are 55 MB. Rows past that come back without their text
  // (`beyond`), only to say that there is more: the page ends before them, with a cursor. The
  // running size is taken over the limit + 1 rows only, after the LIMIT.
  const size = "length(properties) + length(url) + length(name) + 256";
  const sql = `SELECT id, name, ts, sid, visitor_id, user_id, url, path, if(beyond, '', properties) AS properties, beyond FROM (
      SELECT *, sum(sz) OVER (ORDER BY ts DESC, id DESC ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) - sz > ${p.bind("UInt64", q.pageBytes ?? PAGE_BYTES)} AS beyond FROM (
        SELECT toString(event_id) AS id, name, toUnixTimestamp64Milli(timestamp) AS ts, ${session} AS sid, visitor_id, user_id, url, path, properties, ${size} AS sz
        FROM events WHERE ${where.join(" AND ")}
        ORDER BY timestamp DESC, id DESC LIMIT ${p.bind("UInt32", q.limit + 1)}))
    ORDER BY ts DESC, id DESC`;
  return selectRows<Raw & { beyond: number }>(ch, sql, p);
}

// Stored as sent after validation, so it parses; an unreadable value must not fail the page.
function parseProperties(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text || "{}");
    return value && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}
