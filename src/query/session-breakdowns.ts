// Session breakdowns for /v1/sessions/stats: by device / browser / OS / country, and by campaign.
// Read from session_distributions and utm_campaign_stats (UTC hours, 90 days) when they fit,
// else from raw sessions with sign-weighted sums. Values whose sessions all moved elsewhere sum
// to zero and are left out, in both paths alike.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { hasAnyFilter, sessionConditions } from "./filters.ts";
import type { SessionQuery } from "./session-metrics.ts";
import { selectRows, SqlParams } from "./sql-params.ts";
import { type ReadOptions, viewFits } from "./view-choice.ts";

export const DIMENSIONS = ["device", "browser", "os", "country"] as const;
export type Dimension = (typeof DIMENSIONS)[number];

export interface DistributionRow {
  value: string;
  sessions: number;
  bounces: number;
}

export interface UtmRow {
  utm_source: string;
  utm_medium: string;
  utm_campaign: string;
  sessions: number;
  conversions: number;
}

function useViews(q: SessionQuery, read: ReadOptions): boolean {
  return !hasAnyFilter(q.filters) && viewFits([q.range], { unit: "hour", ttlDays: 90, zoned: false }, read);
}

function rawWhere(q: SessionQuery, p: SqlParams): string {
  const service = p.bind("String", q.serviceId);
  return [
    `service_id = ${service}`,
    `started_at >= ${p.instant(q.range.start)}`,
    `started_at < ${p.instant(q.range.end)}`,
    ...sessionConditions(q.filters, p, service, q.range.start, q.pathSessions),
  ].join(" AND ");
}

function viewWhere(q: SessionQuery, p: SqlParams): string {
  return `service_id = ${p.bind("String", q.serviceId)} AND hour >= ${p.second(q.range.start)} AND hour < ${p.second(q.range.end)}`;
}

/**
 * Sessions and bounces per value of each dimension, most sessions first: one read for all four.
 * From raw rows one scan groups by the four dimensions as GROUPING SETS instead of four queries
 * scanning the same sessions (10M events, 30 days, device=mobile, one thread: 41 against 26 + 30 +
 * 30 + 29 ms; bench/RESULTS.md, 2026-12-01 02:40). `grouping(d)` is 0 in the rows of d's own set
 * (the SQL standard's reading, ClickHouse's default).
 */
export async function sessionDistributions(ch: ClickHouseClient, q: SessionQuery, read: ReadOptions): Promise<Record<Dimension, DistributionRow[]>> {
  const p = new SqlParams();
  // Dimension names come from the DIMENSIONS allow-list, never from input text.
  const sql = useViews(q, read)
    ? `SELECT dimension AS d, value, sum(sessions) AS n, sum(bounces) AS b FROM session_distributions
       WHERE ${viewWhere(q, p)} AND dimension IN (${DIMENSIONS.map((d) => `'${d}'`).join(", ")}) GROUP BY d, value`
    : `SELECT multiIf(${DIMENSIONS.map((d) => `grouping(${d}) = 0, '${d}'`).join(", ")}, '') AS d,
         multiIf(${DIMENSIONS.map((d) => `grouping(${d}) = 0, toString(${d})`).join(", ")}, '') AS value,
         sum(sign) AS n, sum(sign * is_bounce) AS b
       FROM sessions WHERE ${rawWhere(q, p)} GROUP BY GROUPING SETS (${DIMENSIONS.map((d) => `(${d})`).join(", ")})`;
  const rows = await selectRows<{ d: Dimension; value: string; n: number; b: number }>(
    ch,
    `SELECT d, value, n, b FROM (${sql}) WHERE n != 0 ORDER BY d, n DESC, value ASC`,
    p,
    read,
  );
  const out = Object.fromEntries(DIMENSIONS.map((d) => [d, [] as DistributionRow[]])) as Record<Dimension, DistributionRow[]>;
  for (const r of rows) out[r.d]?.push({ value: r.value, sessions: r.n, bounces: r.b });
  return out;
}

/** Sessions with a utm_source and their conversions per (source, medium, campaign). */
export async function utmStats(ch: ClickHouseClient, q: SessionQuery, read: ReadOptions): Promise<UtmRow[]> {
  const p = new SqlParams();
  const sql = useViews(q, read)
    ? `SELECT utm_source AS s, utm_medium AS m, utm_campaign AS c, sum(sessions) AS n, sum(conversions) AS cv
       FROM utm_campaign_stats WHERE ${viewWhere(q, p)} GROUP BY s, m, c`
    : `SELECT utm_source AS s, utm_medium AS m, utm_campaign AS c, sum(sign) AS n, sum(sign * converted) AS cv
       FROM sessions WHERE ${rawWhere(q, p)} AND utm_source != '' GROUP BY s, m, c`;
  const rows = await selectRows<{ s: string; m: string; c: string; n: number; cv: number }>(
    ch,
    `SELECT s, m, c, n, cv FROM (${sql}) WHERE n != 0 ORDER BY n DESC, s, m, c`,
    p,
    read,
  );
  return rows.map((r) => ({ utm_source: r.s, utm_medium: r.m, utm_campaign: r.c, sessions: r.n, conversions: r.cv }));
}
