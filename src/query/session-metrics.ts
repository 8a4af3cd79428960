// Session totals and series: one SQL shape over three sources (raw `sessions`, the hourly view,
// the daily view). Raw reads are sign-weighted sums, exact at any moment without FINAL.
//
// Visitors: a visitor counts in a bucket when a live session of theirs starts there. The source
// counts the set of visitors of +1 rows (raw uniqExactIf, the views' visitors64), and a set
// cannot forget a state that a late item superseded (start moved to an earlier bucket, session
// merged into another, an earlier first item of a client-kept session under another visitor id).
// So the set over-counts exactly the (bucket, visitor) pairs it holds that have no live session,
// and a second query (run alongside) counts those pairs per bucket for the answer to subtract. A cancel
// row repeats its state's started_at and visitor_id, so sum(sign) over a visitor's rows in a
// bucket is the number of their live sessions starting there. The candidates come from
// `session_cancels` (schemas/07-session_cancels.sql): the (started_at, visitor) of every
// cancelled state whose session did not go on with the same start and visitor, i.e. the moved,
// merged and re-keyed ones; the common update (one more page view) adds none.
// - raw rows: one query counts the set of visitors of +1 rows among the other visitors, and a
//   candidate visitor in a bucket when their rows there sum to more than 0 (a state's attributes
//   come with its start: a filter keeps or drops a session's rows alike). Both counts are the
//   same before and after a background merge removes a +1 row with its cancel row, and they come
//   from one read of the table: run as two queries (the set, then the candidates' sums), a merge
//   landing between them counted a superseded visitor once too often (an audit saw 113 visitors
//   for 112, cached for minutes);
// - views: their sets keep a pair after a merge has removed its rows, so a second query (run
//   alongside; the live sums it reads do not change with merges) counts every candidate pair
//   whose visitor has no live session starting in the bucket, for the answer to subtract.
// Exact, at the cost of reading the candidates' rows per visitor instead of grouping every
// visitor (measured: 30-day daily series 44 ms with the view's sets vs ~196 ms grouping every
// visitor from raw rows).
import type { ClickHouseClient } from "@clickhouse/client-web";
import { type Filters, hasAnyFilter, sessionConditions } from "./filters.ts";
import { selectRows, SqlParams, VISITOR_KEY } from "./sql-params.ts";
import { bucketStarts, type Interval, type TimeRange } from "./time-range.ts";
import { oldestWhole, type ReadOptions, type ViewFit, viewFits } from "./view-choice.ts";
import { hasOffsetChangeOffTheHour } from "./zoned-time.ts";
import { DAY_MS } from "../iso-time.ts";

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
  /**
   * A Set table of the hashes of the sessions on `filters.path`, built once for a whole report
   * (src/query/matching-sessions.ts); without it each question builds that set itself.
   */
  pathSessions?: string;
}

export type SessionSource = "raw" | "hourly" | "daily";

interface MetricRow {
  b?: number;
  /** The earliest start (epoch s) of the row's sessions: an instant inside its bucket. */
  b_at?: number;
  m_sessions: number;
  m_visitors: number;
  m_pageviews: number;
  m_bounces: number;
  /** Total duration in ms, an exact integer: the average divides it once (see toTotals). */
  m_duration_ms: number;
  m_conversions: number;
}

// Aliases carry a prefix: an alias equal to a column name would shadow it elsewhere in the query.
// Visitors: exact distinct count of cityHash64(visitor_id) (see VISITOR_KEY in sql-params.ts).
// Both view targets have the same columns; visitors64 holds uniqExact states over the same
// cityHash64(visitor_id) (schemas/04-visitor_hash_views.sql), so both paths count the same set.
const VIEW_METRICS = `sum(s.sessions) AS m_sessions, uniqExactMerge(s.visitors64) AS m_visitors, sum(s.pageviews) AS m_pageviews,
  sum(s.bounces) AS m_bounces, sum(s.duration_ms_sum) AS m_duration_ms, sum(s.conversions) AS m_conversions`;

// The bucket of a row as a number naming its local bucket, the UTC epoch second of the bucket's
// start. A series maps each row to its bucket by `b_at`, the row group's earliest instant (see
// sessionSeries). The zone is a bound parameter (ClickHouse takes a constant there), never spliced.
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
const TOTALS_VIEW_MIN_RANGE_MS = 14 * DAY_MS;

/**
 * Which table answers: a view when it gives the raw answer exactly (see view-choice.ts) and is
 * faster. The hourly view answers hourly series only: merging 24 visitor sets per day costs more
 * than raw rows for days, weeks, months and totals (10M-event set, Europe/Berlin, hourly view vs
 * raw: daily series 7 d 57 vs 42 ms, 14 d 74 vs 64; weekly 14 d 74 vs 70; totals 14 d 75 vs 75;
 * hourly series 7 d 39 vs 46, 14 d 41 vs 73).
 */
export function chooseSource(q: SessionQuery, read: ReadOptions, interval?: Interval): SessionSource {
  if (hasAnyFilter(q.filters)) return "raw";
  if (interval === undefined && q.range.end - q.range.start < TOTALS_VIEW_MIN_RANGE_MS) return "raw";
  return viewFits([q.range], viewFit(interval), read) ? (interval === "hour" ? "hourly" : "daily") : "raw";
}

/** The view a question would read: the hourly one (30-day TTL) for hourly series, else the daily one (1 year). */
function viewFit(interval?: Interval): ViewFit {
  const zoned = interval !== undefined;
  return interval === "hour" ? { unit: "hour", ttlDays: 30, zoned } : { unit: "day", ttlDays: 365, zoned };
}

/**
 * A series that starts before its view's TTL (a 30-day hourly chart, the view keeping 30 days;
 * a range of over a year of days) reads raw rows for its older buckets and the view for the
 * rest: where the two meet is a bucket start (`cut`), so no bucket takes rows from both, and
 * each part's visitor counts are exact as for any range. Undefined when the series does not
 * split so: a filter, a zone or bounds the view does not fit, or a range wholly inside the TTL
 * (the view answers it whole) or wholly before it.
 */
export function seriesCut(q: SessionQuery, interval: Interval, read: ReadOptions): number | undefined {
  if (read.forceRaw || chooseSource(q, read, interval) !== "raw") return undefined;
  const oldest = oldestWhole(viewFit(interval), read);
  const cut = bucketStarts(q.range, interval).find((t) => t > q.range.start && t >= oldest);
  if (cut === undefined) return undefined;
  return chooseSource(within(q, cut, q.range.end), read, interval) === "raw" ? undefined : cut;
}

/** `q` over [start, end) of its range. */
function within(q: SessionQuery, start: number, end: number): SessionQuery {
  return { ...q, range: { ...q.range, start, end } };
}

// Hours across an offset change the clock does not make on the hour (Australia/Lord_Howe's
// 30-minute changes, Pacific/Chatham's at :45): toStartOfHour puts rows near it in the wrong hour
// (Lord Howe's 03:00-03:30 local in "02"), so rows are keyed by local date and hour with the
// offset in minutes instead (a local hour at one offset is one bucket; see localHourStart in
// zoned-time.ts). That costs ~40% more on a 30-day hourly series, so only such ranges use it.
const HOUR_BY_LABEL = (c: string, tz: string) =>
  `((toYYYYMMDD(${c}, ${tz}) * 100 + toHour(${c}, ${tz})) * 10000 + intDiv(timeZoneOffset(toTimeZone(${c}, ${tz})), 60) + 5000)`;

function bucketSql(interval: Interval, col: string, range: TimeRange, p: SqlParams): string {
  const tz = p.bind("String", range.tz);
  return interval === "hour" && hasOffsetChangeOffTheHour(range) ? HOUR_BY_LABEL(col, tz) : BUCKET[interval](col, tz);
}

// Raw rows, one read: per bucket, the visitors of +1 rows among non-candidates (their +1 rows
// belong to live sessions or to states replaced with the same start and visitor), plus each
// candidate whose rows in the bucket sum to more than 0 (see the top). Candidates are grouped
// one by one; everyone else in one group per bucket. With `totalsToo` (a series) the same read
// also groups the whole range, as a second grouping set: the rows with `m_total` = 1
// (`grouping(b)`: b is not a key of that set) are the totals, the others the buckets.
function rawMetricsQuery(q: SessionQuery, interval?: Interval, totalsToo = false): { sql: string; params: SqlParams } {
  const { p, service, range, candidate, bucket } = candidateParts(q, interval);
  const where = [range, ...sessionConditions(q.filters, p, service, q.range.start, q.pathSessions)];
  const both = interval !== undefined && totalsToo;
  const keys = interval ? "b, g_candidate, g_key" : "g_candidate, g_key";
  const innerGroup = both ? `GROUPING SETS ((${keys}), (g_candidate, g_key))` : keys;
  const outerGroup = both ? " GROUP BY m_total, b" : interval ? " GROUP BY b" : "";
  const sql = `SELECT ${both ? "m_total, " : ""}${interval ? "b, min(g_at) AS b_at, " : ""}sum(g_sessions) AS m_sessions,
      sum(g_visitors) + countIf(g_candidate AND g_sessions > 0) AS m_visitors, sum(g_pageviews) AS m_pageviews,
      sum(g_bounces) AS m_bounces, sum(g_duration) AS m_duration_ms, sum(g_conversions) AS m_conversions
    FROM (SELECT ${bucket}${candidate} AS g_candidate, if(g_candidate, ${VISITOR_KEY}, 0) AS g_key,${both ? " grouping(b) AS m_total," : ""}
        toUnixTimestamp(min(started_at)) AS g_at, sum(sign) AS g_sessions,
        uniqExactIf(${VISITOR_KEY}, sign > 0 AND NOT g_candidate) AS g_visitors, sum(sign * pageviews) AS g_pageviews,
        sum(sign * is_bounce) AS g_bounces, sum(sign * duration_ms) AS g_duration, sum(sign * converted) AS g_conversions
      FROM sessions WHERE ${where.join(" AND ")}
      GROUP BY ${innerGroup})${outerGroup}`;
  return { sql, params: p };
}

function viewMetricsQuery(q: SessionQuery, source: "hourly" | "daily", interval?: Interval): { sql: string; params: SqlParams } {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  let from: string;
  let col: string;
  const where = [`service_id = ${service}`];
  if (source === "hourly") {
    from = "hourly_session_metrics AS s";
    col = "s.hour";
    where.push(`s.hour >= ${p.second(q.range.start)}`, `s.hour < ${p.second(q.range.end)}`);
  } else {
    from = "daily_session_stats AS s";
    col = "toDateTime(s.day, 'UTC')";
    where.push(`s.day >= toDate(${p.second(q.range.start)})`, `s.day < toDate(${p.second(q.range.end)})`);
  }
  const bucket = interval ? `${bucketSql(interval, col, q.range, p)} AS b, toUnixTimestamp(min(${col})) AS b_at, ` : "";
  const group = interval ? " GROUP BY b" : "";
  return { sql: `SELECT ${bucket}${VIEW_METRICS} FROM ${from} WHERE ${where.join(" AND ")}${group}`, params: p };
}

// What the raw query and the views' correction share: the range's rows of the service, whether a
// row's visitor has a cancelled state there (session_cancels: a candidate), and the bucket.
function candidateParts(q: SessionQuery, interval?: Interval) {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const range = `service_id = ${service} AND started_at >= ${p.instant(q.range.start)} AND started_at < ${p.instant(q.range.end)}`;
  const candidate = `${VISITOR_KEY} IN (SELECT visitor_hash FROM session_cancels WHERE ${range})`;
  const bucket = interval ? `${bucketSql(interval, "started_at", q.range, p)} AS b, ` : "";
  return { p, service, range, candidate, bucket };
}

// Per bucket: the (bucket, visitor) pairs of cancelled states (session_cancels) whose visitor
// has no live session starting in the bucket: the views' sets hold them (see the top). Views
// answer only unfiltered questions, so no filters here.
function supersededViewQuery(q: SessionQuery, interval?: Interval): { sql: string; params: SqlParams } {
  const { p, range, candidate, bucket } = candidateParts(q, interval);
  const key = interval ? "b, v_key" : "v_key";
  const sql = `SELECT ${interval ? "b, " : ""}count() AS m_gone
    FROM (SELECT DISTINCT ${bucket}visitor_hash AS v_key FROM session_cancels WHERE ${range}) AS cancelled
    LEFT ANTI JOIN (SELECT ${bucket}${VISITOR_KEY} AS v_key FROM sessions WHERE ${range} AND ${candidate}
      GROUP BY ${key} HAVING sum(sign) > 0) AS live USING (${key})${interval ? " GROUP BY b" : ""}`;
  return { sql, params: p };
}

// The source's rows (one per bucket, one row without interval) with exact visitors.
async function metricRows(ch: ClickHouseClient, q: SessionQuery, read: ReadOptions, interval?: Interval): Promise<MetricRow[]> {
  const source = chooseSource(q, read, interval);
  if (source === "raw") {
    const raw = rawMetricsQuery(q, interval);
    return selectRows<MetricRow>(ch, raw.sql, raw.params, read);
  }
  const main = viewMetricsQuery(q, source, interval);
  const gone = supersededViewQuery(q, interval);
  const [rows, corrections] = await Promise.all([
    selectRows<MetricRow>(ch, main.sql, main.params, read),
    selectRows<{ b?: number; m_gone: number }>(ch, gone.sql, gone.params, read),
  ]);
  const byBucket = new Map(corrections.map((c) => [c.b ?? 0, c.m_gone]));
  return rows.map((r) => ({ ...r, m_visitors: r.m_visitors - (byBucket.get(r.b ?? 0) ?? 0) }));
}

function ratio(n: number, d: number): number | null {
  return d === 0 ? null : n / d;
}

function toTotals(r: MetricRow | undefined): SessionTotals {
  const m = r ?? { m_sessions: 0, m_visitors: 0, m_pageviews: 0, m_bounces: 0, m_duration_ms: 0, m_conversions: 0 };
  return {
    sessions: m.m_sessions,
    visitors: m.m_visitors,
    pageviews: m.m_pageviews,
    bounces: m.m_bounces,
    bounce_rate: ratio(m.m_bounces, m.m_sessions),
    // One division of two exact integers: the double nearest the true mean (ms ÷ 1000 ÷ n rounds
    // twice, 3246.7419999999997 for 3246.742).
    avg_duration_s: ratio(m.m_duration_ms, m.m_sessions * 1000),
    pages_per_session: ratio(m.m_pageviews, m.m_sessions),
    conversions: m.m_conversions,
  };
}

/** Totals of the sessions that started in the range. */
export async function sessionTotals(ch: ClickHouseClient, q: SessionQuery, read: ReadOptions): Promise<SessionTotals> {
  const [row] = await metricRows(ch, q, read);
  return toTotals(row);
}

/** One point per local bucket overlapping the range, zero-filled; `t` is the bucket start. */
export function sessionSeries(ch: ClickHouseClient, q: SessionQuery, interval: Interval, read: ReadOptions): Promise<SeriesPoint[]> {
  return seriesSplitAt(ch, q, interval, read, seriesCut(q, interval, read));
}

/** sessionSeries with its seriesCut already known (undefined: one read). */
async function seriesSplitAt(ch: ClickHouseClient, q: SessionQuery, interval: Interval, read: ReadOptions, cut: number | undefined): Promise<SeriesPoint[]> {
  if (cut === undefined) return seriesPoints(q, interval, await metricRows(ch, q, read, interval));
  const [older, newer] = await Promise.all([
    metricRows(ch, within(q, q.range.start, cut), read, interval),
    metricRows(ch, within(q, cut, q.range.end), read, interval),
  ]);
  return seriesPoints(q, interval, [...older, ...newer]);
}

/**
 * Totals and series of one range, as sessionTotals and sessionSeries answer them. When both read
 * raw rows (filters, or ranges no view fits), one read answers both: it scans and filters the
 * sessions once instead of twice (10M events, 30 days, device=mobile, one thread: 224 against
 * 173 + 171 ms; bench/RESULTS.md, 2026-12-01 07:25).
 */
export async function sessionTotalsAndSeries(ch: ClickHouseClient, q: SessionQuery, interval: Interval, read: ReadOptions): Promise<{ totals: SessionTotals; series: SeriesPoint[] }> {
  const cut = seriesCut(q, interval, read);
  if (chooseSource(q, read) !== "raw" || chooseSource(q, read, interval) !== "raw" || cut !== undefined) {
    const [totals, series] = await Promise.all([sessionTotals(ch, q, read), seriesSplitAt(ch, q, interval, read, cut)]);
    return { totals, series };
  }
  const raw = rawMetricsQuery(q, interval, true);
  const rows = await selectRows<MetricRow & { m_total: 0 | 1 }>(ch, raw.sql, raw.params, read);
  return {
    totals: toTotals(rows.find((r) => r.m_total === 1)),
    series: seriesPoints(q, interval, rows.filter((r) => r.m_total === 0)),
  };
}

function seriesPoints(q: SessionQuery, interval: Interval, rows: readonly MetricRow[]): SeriesPoint[] {
  const starts = bucketStarts(q.range, interval);
  const points = starts.map((t) => ({ t: new Date(t).toISOString(), sessions: 0, visitors: 0, pageviews: 0, bounces: 0 }));
  for (const row of rows) {
    const i = bucketIndex(starts, row.b_at! * 1000);
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
