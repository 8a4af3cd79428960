// GET /v1/funnels/:name over raw funnel_events (funnel_stats only counts step hits; conversion
// needs the order and window of each unit's events). Levels come from ClickHouse's windowFunnel;
// the per-unit chains for medians are replayed in TypeScript (funnel-chain.ts), and both must
// agree: a disagreement is a bug worth a 500 rather than a quietly wrong number.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { type Filters, itemConditions, itemSession } from "./filters.ts";
import { funnelChain, MAX_STEPS, medianSeconds } from "./funnel-chain.ts";
import { selectRows, SqlParams } from "./sql-params.ts";
import type { TimeRange } from "./time-range.ts";

export interface FunnelStep {
  step: number;
  name: string;
  units: number;
  conversion_from_previous: number | null;
  conversion_from_start: number | null;
  median_seconds_from_previous: number | null;
}

export interface FunnelResult {
  funnel: string;
  steps: FunnelStep[];
  overall_conversion: number | null;
}

export interface FunnelQuery {
  serviceId: string;
  funnel: string;
  range: TimeRange;
  filters: Filters;
  windowSeconds: number;
  by: "session" | "visitor";
}

/**
 * (unit, ts, step) of each funnel_events row in the query. By session, the unit is the item's
 * session (a merged session's steps count in the one it went into). By visitor, it is the item's
 * own visitor id (API.md: the `anonymous_id`, else the hash keyed with the item's UTC day's salt):
 * steps of one person on either side of a UTC midnight are two visitors' (README, "Midnight").
 */
function unitRows(q: FunnelQuery, service: string, where: string): string {
  const unit = q.by === "session" ? itemSession(service) : "visitor_id";
  return `SELECT ${unit} AS unit, toUInt64(toUnixTimestamp64Milli(timestamp)) AS ts, step FROM funnel_events WHERE ${where}`;
}

const CONDITIONS = Array.from({ length: MAX_STEPS }, (_, i) => `step = ${i + 1}`).join(", ");

function baseWhere(q: FunnelQuery, p: SqlParams, service = p.bind("String", q.serviceId)): string {
  return [
    `service_id = ${service}`,
    `funnel = ${p.bind("String", q.funnel)}`,
    `timestamp >= ${p.instant(q.range.start)}`,
    `timestamp < ${p.instant(q.range.end)}`,
    `step BETWEEN 1 AND ${MAX_STEPS}`,
    ...itemConditions(q.filters, p, service, q.range),
  ].join(" AND ");
}

interface LevelRow {
  level: number;
  units: number;
  /** (time ms, step) events of each unit at this level; only for levels ≥ 2 (medians). */
  chains: Array<Array<[number, number]>>;
}

/** Units reaching each step, conversions and medians; steps 1..highest step present. */
export async function funnelReport(ch: ClickHouseClient, q: FunnelQuery): Promise<FunnelResult> {
  const windowMs = q.windowSeconds * 1000;
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const where = baseWhere(q, p, service);
  const p2 = new SqlParams();
  // The two questions run side by side (the step names read only the steps' own rows).
  const [levels, names] = await Promise.all([
    selectRows<LevelRow>(
      ch,
      `SELECT level, count() AS units, groupArrayIf(evs, level >= 2) AS chains FROM (
         SELECT windowFunnel(${p.bind("UInt64", windowMs)})(ts, ${CONDITIONS}) AS level, groupArray((ts, step)) AS evs
         FROM (${unitRows(q, service, where)})
         GROUP BY unit)
       GROUP BY level`,
      p,
    ),
    selectRows<{ step: number; top: number; name: string }>(
      ch,
      `SELECT step, max(step) OVER () AS top, argMaxIf(step_name, (timestamp, step_name), step_name != '') AS name
       FROM funnel_events WHERE ${baseWhere(q, p2)} GROUP BY step`,
      p2,
    ),
  ]);
  const top = names[0]?.top ?? 0;
  const reached = new Array<number>(top + 1).fill(0);
  /** Gaps in ms between step k−1 and step k of each unit's chain (exact integers). */
  const deltas: number[][] = Array.from({ length: top + 1 }, () => []);
  for (const row of levels) {
    for (let k = 1; k <= row.level; k++) reached[k]! += row.units;
    for (const events of row.chains) {
      const chain = funnelChain(events, windowMs);
      if (chain.level !== row.level) throw new Error(`funnel chain replay disagrees with windowFunnel (${chain.level} vs ${row.level})`);
      for (let k = 2; k <= chain.level; k++) deltas[k]!.push(chain.times[k - 1]! - chain.times[k - 2]!);
    }
  }
  const nameOf = new Map(names.map((n) => [n.step, n.name]));
  const steps: FunnelStep[] = [];
  for (let k = 1; k <= top; k++) {
    const units = reached[k]!;
    steps.push({
      step: k,
      name: nameOf.get(k) ?? "",
      units,
      conversion_from_previous: k === 1 ? 1 : ratio(units, reached[k - 1]!),
      conversion_from_start: k === 1 ? 1 : ratio(units, reached[1]!),
      median_seconds_from_previous: k === 1 ? null : medianSeconds(deltas[k]!),
    });
  }
  return { funnel: q.funnel, steps, overall_conversion: top === 0 ? null : ratio(reached[top]!, reached[1]!) };
}

function ratio(n: number, d: number): number | null {
  return d === 0 ? null : n / d;
}
