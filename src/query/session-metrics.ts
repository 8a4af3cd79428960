// Session totals and series: one SQL shape over three sources (raw `sessions`, the hourly view,
// the daily view). Raw reads are sign-weighted sums, exact at any moment without FINAL; visitors
// count the +1 rows (a session's visitor never changes, so superseded states add no one new),
// which is also what the views store.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { type Filters, hasAnyFilter, sessionConditions } from "./filters.ts";
import { selectRows, SqlParams, VISITOR_KEY } from "./sql-params.ts";
import { bucketStarts, type Interval, type TimeRange } from "./time-range.ts";
import { type ReadOptions, viewFits } from "./view-choice.ts";

export interface SessionTotals {
  sessions: number;
  visitors: number;
  pageviews: number;
  bounces: number;
  bounce_rate: number | null;
  avg_duration_s: number | null;
  pages_per_session: number | null;
  conversions: number;
}

export interface SeriesPoint {
  t: string;
  sessions: number;
  visitors: number;
  pageviews: number;
  bounces: number;
}

export interface SessionQuery {
  serviceId: string;
  range: TimeRange;
  filters: Filters;
}

export type SessionSource = "raw" | "hourly" | "daily";

interface MetricRow {
  b?: number;
  m_sessions: number;
  m_visitors: number;
  m_pageviews: number;
  m_bounces: number;
  m_duration: number;
  m_conversions: number;
}

// Aliases carry a prefix: an alias equal to a column name would shadow it elsewhere in the query.
// Visitors: exact distinct count of cityHash64(visitor_id) (see VISITOR_KEY in sql-params.ts).
const RAW_METRICS = `sum(sign) AS m_sessions, uniqExactIf(${VISITOR_KEY}, sign > 0) AS m_visitors, sum(sign * pageviews) AS m_pageviews,
  sum(sign * is_bounce) AS m_bounces, sum(sign * duration_ms) / 1000 AS m_duration, sum(sign * converted) AS m_conversions`;
// Both view targets have the same columns; visitors64 holds uniqExact states over the same
// cityHash64(visitor_id) (schemas/04-visitor_hash_views.sql), so both paths count the same set.
const VIEW_METRICS = `sum(s.sessions) AS m_sessions, uniqExactMerge(s.visitors64) AS m_visitors, sum(s.pageviews) AS m_pageviews,
  sum(s.bounces) AS m_bounces, sum(s.duration_ms_sum) / 1000 AS m_duration, sum(s.conversions) AS m_conversions`;

// The bucket of a row as the UTC epoch second of its local bucket start; the zone is a bound
// parameter (ClickHouse takes a constant there), never spliced.
const BUCKET: Record<Interval, (col: string, tz: string) => string> = {
  hour: (c, tz) => `toUnixTimestamp(toStartOfHour(${c}, ${tz}))`,
  day: (c, tz) => `toUnixTimestamp(toStartOfDay(${c}, ${tz}))`,
  week: (c, tz) => `toUnixTimestamp(toDateTime(toMonday(${c}, ${tz}), ${tz}))`,
  month: (c, tz) => `toUnixTimestamp(toDateTime(toStartOfMonth(${c}, ${tz}), ${tz}))`,
};

// Totals (no series) of ranges shorter than this read raw rows: faster there, same answer. The
// view targets' parts keep index granules of many buckets (daily_session_stats: one granule of
// ~a month of days; index_granularity is fixed when a table is created), and a read deserializes
// every visitor state of each granule it touches before WHERE drops rows, so a short range costs
// about what a month does. 10M-event set, totals view vs raw (one thread / two): 1 d 33 vs 15 ms,
// 3 d 33-38 vs 24-34, 7 d 46-56 vs 35-44, 14 d 71 vs 66-72, 30 d 102-106 vs 111-151. Series keep
// the views at every length (7 d: daily 37 vs raw 40 ms, hourly 40 vs 46).
const TOTALS_VIEW_MIN_RANGE_MS = 14 * 86_400_000;

/** Which table answers: a view when it gives the raw answer exactly (see view-choice.ts). */
export function chooseSource(q: SessionQuery, read: ReadOptions, interval?: Interval): SessionSource {
  if (hasAnyFilter(q.filters)) return "raw";
  if (interval === undefined && q.range.end - q.range.start < TOTALS_VIEW_MIN_RANGE_MS) return "raw";
  const zoned = interval !== undefined;
  if (interval !== "hour" && viewFits([q.range], { unit: "day", ttlDays: 365, zoned }, read)) return "daily";
  if (viewFits([q.range], { unit: "hour", ttlDays: 30, zoned }, read)) return "hourly";
  return "raw";
}

function metricsQuery(q: SessionQuery, source: SessionSource, interval?: Interval): { sql: string; params: SqlParams } {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  let from: string;
  let col: string;
  const where = [`service_id = ${service}`];
  if (source === "raw") {
    from = "sessions";
    col = "started_at";
    where.push(`started_at >= ${p.instant(q.range.start)}`, `started_at < ${p.instant(q.range.end)}`);
    where.push(...sessionConditions(q.filters, p, service, q.range.start));
  } else if (source === "hourly") {
    from = "hourly_session_metrics AS s";
    col = "s.hour";
    where.push(`s.hour >= ${p.second(q.range.start)}`, `s.hour < ${p.second(q.range.end)}`);
  } else {
    from = "daily_session_stats AS s";
    col = "toDateTime(s.day, 'UTC')";
    where.push(`s.day >= toDate(${p.second(q.range.start)})`, `s.day < toDate(${p.second(q.range.end)})`);
  }
  const bucket = interval ? `${BUCKET[interval](col, p.bind("String", q.range.tz))} AS b, ` : "";
  const group = interval ? " GROUP BY b" : "";
  return { sql: `SELECT ${bucket}${source === "raw" ? RAW_METRICS : VIEW_METRICS} FROM ${from} WHERE ${where.join(" AND ")}${group}`, params: p };
}

function ratio(n: number, d: number): number | null {
  return d === 0 ? null : n / d;
}

function toTotals(r: MetricRow | undefined): SessionTotals {
  const m = r ?? { m_sessions: 0, m_visitors: 0, m_pageviews: 0, m_bounces: 0, m_duration: 0, m_conversions: 0 };
  return {
    sessions: m.m_sessions,
    visitors: m.m_visitors,
    pageviews: m.m_pageviews,
    bounces: m.m_bounces,
    bounce_rate: ratio(m.m_bounces, m.m_sessions),
    avg_duration_s: ratio(m.m_duration, m.m_sessions),
    pages_per_session: ratio(m.m_pageviews, m.m_sessions),
    conversions: m.m_conversions,
  };
}

/** Totals of the sessions that started in the range. */
export async function sessionTotals(ch: ClickHouseClient, q: SessionQuery, read: ReadOptions): Promise<SessionTotals> {
  const { sql, params } = metricsQuery(q, chooseSource(q, read));
  const [row] = await selectRows<MetricRow>(ch, sql, params, read);
  return toTotals(row);
}

/** One point per local bucket overlapping the range, zero-filled; `t` is the bucket start. */
export async function sessionSeries(ch: ClickHouseClient, q: SessionQuery, interval: Interval, read: ReadOptions): Promise<SeriesPoint[]> {
  const { sql, params } = metricsQuery(q, chooseSource(q, read, interval), interval);
  const rows = await selectRows<MetricRow>(ch, sql, params, read);
  const starts = bucketStarts(q.range, interval);
  const points = starts.map((t) => ({ t: new Date(t).toISOString(), sessions: 0, visitors: 0, pageviews: 0, bounces: 0 }));
  for (const row of rows) {
    const i = bucketIndex(starts, row.b! * 1000);
    const point = points[i];
    if (!point) continue;
    // Visitors of two keys in one bucket could overlap; keys agree with the TS buckets for every
    // zone ClickHouse and Intl both know, so this only guards against a tz-database mismatch.
    point.sessions += row.m_sessions;
    point.visitors += row.m_visitors;
    point.pageviews += row.m_pageviews;
    point.bounces += row.m_bounces;
  }
  return points;
}

// The last bucket starting at or before `ms` (binary search over sorted starts).
function bucketIndex(starts: readonly number[], ms: number): number {
  let lo = 0;
  let hi = starts.length - 1;
  if (hi < 0 || ms < starts[0]!) return -1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid]! <= ms) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
