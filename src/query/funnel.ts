// GET /v1/funnels/:name over raw funnel_events (funnel_stats only counts step hits; conversion
// needs the order and window of each unit's events). Levels come from ClickHouse's windowFunnel;
// the per-unit chains for medians are replayed in TypeScript (funnel-chain.ts), and both must
// agree: a disagreement is a bug worth a 500 rather than a quietly wrong number.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { type Filters, itemConditions, itemSession, itemSessionHash } from "./filters.ts";
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
 * session (a merged session's steps count in the one it went into). By visitor, it is the visitor
 * of that session, not the item's own visitor id: the hashed id changes at UTC midnight, and the
 * steps of a visit going on then would otherwise be two visitors, each short of what their one
 * session reached (README, "Midnight").
 *
 * Only two kinds of session hold items whose own visitor id is not the session's: one whose items
 * span a UTC midnight (the day's salt changed), and one kept under a client's `session_id` (items
 * of any visitor may name it). Every other item is placed through its own visitor's sessions, so
 * its id is already the session's. The join reads those two kinds only (a few percent of the
 * sessions), by `session_hash` like the attribute filters (filters.ts); any other item keeps its
 * own id. A session's visitor is its current state's: a late item that becomes its first item
 * gives it that item's id, and the rows of its earlier states stay until ClickHouse merges them.
 * Measured on the bench's 30-day data set: ~1.5× the time of reading the items' own ids.
 */
function unitRows(q: FunnelQuery, p: SqlParams, service: string, where: string): string {
  const ts = "toUInt64(toUnixTimestamp64Milli(timestamp))";
  if (q.by === "session") return `SELECT ${itemSession(service)} AS unit, ${ts} AS ts, step FROM funnel_events WHERE ${where}`;
  return `SELECT if(s.visitor = '', f.visitor_id, s.visitor) AS unit, f.ts AS ts, f.step AS step
    FROM (SELECT ${itemSessionHash(service)} AS h, visitor_id, ${ts} AS ts, step FROM funnel_events WHERE ${where}) AS f
    LEFT JOIN (
      SELECT session_hash AS h, argMax(visitor_id, (version, sign)) AS visitor FROM sessions
      WHERE service_id = ${service} AND started_at < ${p.instant(q.range.end)} AND ended_at >= ${p.instant(q.range.start)}
        AND (toDate(started_at, 'UTC') != toDate(ended_at, 'UTC') OR client_kept = 1)
      GROUP BY h
    ) AS s USING h`;
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
         FROM (${unitRows(q, p, service, where)})
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
