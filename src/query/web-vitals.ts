// Core Web Vitals of /v1/behavior/summary, from raw web_vitals rows. page_performance_stats keeps
// rating counts but no quantile state, and p75 needs the samples, so one raw scan answers both.
//
// p75 definition: quantileExactInclusive(0.75) over the samples in range, i.e. with the n samples
// sorted as x[0..n-1], the value at position h = 0.75 * (n - 1), linearly interpolated between
// x[floor(h)] and x[floor(h) + 1] (Excel's PERCENTILE.INC). null when there is no sample.
// Ratings (API.md): good ≤ first threshold < needs improvement ≤ second threshold < poor.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { ListQuery } from "./behavior-lists.ts";
import { itemConditions } from "./filters.ts";
import { type ExecOptions, selectRows, SqlParams } from "./sql-params.ts";

export const VITALS = { lcp: [2500, 4000], inp: [200, 500], cls: [0.1, 0.25], fcp: [1800, 3000], ttfb: [800, 1800] } as const;
export type Vital = keyof typeof VITALS;

export interface VitalSummary {
  p75: number | null;
  samples: number;
  good: number;
  needs_improvement: number;
  poor: number;
}

/** p75, sample count and rating counts per metric. */
export async function webVitals(ch: ClickHouseClient, q: Omit<ListQuery, "limit">, exec: ExecOptions = {}): Promise<Record<Vital, VitalSummary>> {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const where = [`service_id = ${service}`, `timestamp >= ${p.instant(q.range.start)}`, `timestamp < ${p.instant(q.range.end)}`, ...itemConditions(q.filters, p, service, q.range, q.matchingSessions)];
  // Metric names and thresholds come from the VITALS constant, never from input.
  const columns = Object.entries(VITALS).map(([m, [good, poor]]) =>
    [
      `quantileExactInclusive(0.75)(${m}) AS ${m}_p75`,
      `count(${m}) AS ${m}_n`,
      `countIf(${m} <= ${good}) AS ${m}_good`,
      `countIf(${m} > ${good} AND ${m} <= ${poor}) AS ${m}_ni`,
      `countIf(${m} > ${poor}) AS ${m}_poor`,
    ].join(", "),
  );
  const [row] = await selectRows<Record<string, number | null>>(ch, `SELECT ${columns.join(", ")} FROM web_vitals WHERE ${where.join(" AND ")}`, p, exec);
  const out = {} as Record<Vital, VitalSummary>;
  for (const m of Object.keys(VITALS) as Vital[]) {
    const samples = Number(row?.[`${m}_n`] ?? 0);
    out[m] = {
      p75: samples === 0 ? null : Number(row?.[`${m}_p75`]),
      samples,
      good: Number(row?.[`${m}_good`] ?? 0),
      needs_improvement: Number(row?.[`${m}_ni`] ?? 0),
      poor: Number(row?.[`${m}_poor`] ?? 0),
    };
  }
  return out;
}
