// Top custom events of /v1/behavior/summary: from hourly_event_counts (UTC hours, 90 days) when no
// filter applies, the range is whole UTC hours and at least 14 days long, else from raw events.
// Both count visitors over cityHash64(visitor_id): the view's visitors64 states, the raw path
// VISITOR_KEY.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { ListQuery } from "./behavior-lists.ts";
import { hasAnyFilter, itemConditions } from "./filters.ts";
import { selectRows, SqlParams, VISITOR_KEY } from "./sql-params.ts";
import { DAY_MS } from "../iso-time.ts";
import { type ReadOptions, viewFits } from "./view-choice.ts";

export interface EventCount {
  name: string;
  count: number;
  visitors: number;
}

// Below this range length raw rows answer faster than the view. The view's parts keep one index
// granule per ~10 days of (hour, name) rows (8192 rows or 10 MiB per granule: index_granularity
// is fixed when a table is created), and a read deserializes every visitor state of each granule
// it touches, whatever its WHERE then keeps: a 1-day read costs what ~10 days do. Measured on the
// 10M-event set (hour view vs raw over visitor_hash, one thread / two): 1 d 70-108 vs 24 ms,
// 3 d 84-87 vs 40-51, 7 d 101-106 vs 75-108, 14 d 151-178 vs 156-175, 30 d 260-267 vs 328-393.
// Both give the same answer (tests compare them); this only picks the cheaper read.
const VIEW_MIN_RANGE_MS = 14 * DAY_MS;

/** Which table answers top events: the hourly view when it fits and pays off, else raw events. */
export function topEventsSource(q: ListQuery, read: ReadOptions): "view" | "raw" {
  if (hasAnyFilter(q.filters) || q.range.end - q.range.start < VIEW_MIN_RANGE_MS) return "raw";
  return viewFits([q.range], { unit: "hour", ttlDays: 90, zoned: false }, read) ? "view" : "raw";
}

/** Events by name: occurrences and distinct visitors, most frequent first. */
export async function topEvents(ch: ClickHouseClient, q: ListQuery, read: ReadOptions): Promise<EventCount[]> {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const fromView = topEventsSource(q, read) === "view";
  const sql = fromView
    ? `SELECT name, sum(count) AS n, uniqExactMerge(visitors64) AS v FROM hourly_event_counts
       WHERE service_id = ${service} AND hour >= ${p.second(q.range.start)} AND hour < ${p.second(q.range.end)} GROUP BY name`
    : `SELECT name, count() AS n, uniqExact(${VISITOR_KEY}) AS v FROM events
       WHERE ${[`service_id = ${service}`, `timestamp >= ${p.instant(q.range.start)}`, `timestamp < ${p.instant(q.range.end)}`, ...itemConditions(q.filters, p, service, q.range, q.matchingSessions)].join(" AND ")}
       GROUP BY name`;
  const rows = await selectRows<{ name: string; n: number; v: number }>(
    ch,
    `SELECT name, n, v FROM (${sql}) ORDER BY n DESC, name ASC LIMIT ${p.bind("UInt32", q.limit)}`,
    p,
    read,
  );
  return rows.map((r) => ({ name: r.name, count: r.n, visitors: r.v }));
}
