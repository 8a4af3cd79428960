// Top custom events of /v1/behavior/summary: from hourly_event_counts (UTC hours, 90 days) when no
// filter applies and the range is whole UTC hours, else from raw events. Both count visitors over
// cityHash64(visitor_id): the view's visitors64 states, the raw path VISITOR_KEY.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { ListQuery } from "./behavior-lists.ts";
import { hasAnyFilter, itemConditions } from "./filters.ts";
import { selectRows, SqlParams, VISITOR_KEY } from "./sql-params.ts";
import { type ReadOptions, viewFits } from "./view-choice.ts";

export interface EventCount {
  name: string;
  count: number;
  visitors: number;
}

/** Events by name: occurrences and distinct visitors, most frequent first. */
export async function topEvents(ch: ClickHouseClient, q: ListQuery, read: ReadOptions): Promise<EventCount[]> {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const fromView = !hasAnyFilter(q.filters) && viewFits([q.range], { unit: "hour", ttlDays: 90, zoned: false }, read);
  const sql = fromView
    ? `SELECT name, sum(count) AS n, uniqExactMerge(visitors64) AS v FROM hourly_event_counts
       WHERE service_id = ${service} AND hour >= ${p.second(q.range.start)} AND hour < ${p.second(q.range.end)} GROUP BY name`
    : `SELECT name, count() AS n, uniqExact(${VISITOR_KEY}) AS v FROM events
       WHERE ${[`service_id = ${service}`, `timestamp >= ${p.instant(q.range.start)}`, `timestamp < ${p.instant(q.range.end)}`, ...itemConditions(q.filters, p, service, q.range)].join(" AND ")}
       GROUP BY name`;
  const rows = await selectRows<{ name: string; n: number; v: number }>(
    ch,
    `SELECT name, n, v FROM (${sql}) ORDER BY n DESC, name ASC LIMIT ${p.bind("UInt32", q.limit)}`,
    p,
    read,
  );
  return rows.map((r) => ({ name: r.name, count: r.n, visitors: r.v }));
}
