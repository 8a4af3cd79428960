// GET /v1/funnels/:name over raw funnel_events (funnel_stats only counts step hits; conversion
// needs the order and window of each unit's events). A unit's level and its chain of step times
// (for the medians) come from replaying windowFunnel's default mode in TypeScript
// (funnel-chain.ts), over the events the engine groups per unit; the engine's windowFunnel itself
// is not asked: its levels took ~40% of a 30-day funnel's time (bench/RESULTS.md, 2026-12-01),
// and tests/query/funnel-chain-engine.test.ts holds the replay to it on random units.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { type Filters, itemConditions, itemSessionHash } from "./filters.ts";
import { MAX_STEPS, medianSeconds, packedChain, STEP_SLOTS } from "./funnel-chain.ts";
import { withMatchingSessions } from "./matching-sessions.ts";
import { selectRows, SqlParams } from "./sql-params.ts";
import type { TimeRange } from "./time-range.ts";
import type { ReadOptions } from "./view-choice.ts";

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
 *
 * Units are grouped by the 64-bit cityHash64 of the id (the stored `session_hash`, through the
 * merges' aliases; the visitor id hashed as read), as the other reports count sessions and
 * visitors: a UInt64 key groups faster than a String. Two units share a key only when their ids'
 * hashes collide, below N²/2^65 for N units (README, "Exact counts and hashes").
 */
function unitRows(q: FunnelQuery, service: string, where: string): string {
  const unit = q.by === "session" ? itemSessionHash(service) : "cityHash64(visitor_id)";
  return `SELECT ${unit} AS unit, toUInt64(toUnixTimestamp64Milli(timestamp)) AS ts, step FROM funnel_events WHERE ${where}`;
}

function baseWhere(q: FunnelQuery, p: SqlParams, service: string, matchingSessions: string | undefined): string {
  return [
    `service_id = ${service}`,
    `funnel = ${p.bind("String", q.funnel)}`,
    `timestamp >= ${p.instant(q.range.start)}`,
    `timestamp < ${p.instant(q.range.end)}`,
    `step BETWEEN 1 AND ${MAX_STEPS}`,
    ...itemConditions(q.filters, p, service, q.range, matchingSessions),
  ].join(" AND ");
}

/**
 * Units by what they can reach: 0, no step-1 event (level 0); 1, step-1 events and no later step
 * (level 1); 2, a step-1 event and a step ≥ 2, whose level the replay decides.
 */
interface KindRow {
  kind: 0 | 1 | 2;
  units: number;
  /** The highest step of any unit of this kind. */
  top: number;
  /** Each kind-2 unit's events, packed (packEvent) and in ascending order. */
  chains: number[][];
}

/**
 * Units reaching each step, conversions and medians; steps 1..highest step present. With
 * attribute filters, the set of matching sessions is built once for both questions
 * (src/query/matching-sessions.ts).
 */
export function funnelReport(ch: ClickHouseClient, q: FunnelQuery, read: ReadOptions): Promise<FunnelResult> {
  return withMatchingSessions(ch, q, read, (matchingSessions) => report(ch, q, matchingSessions));
}

async function report(ch: ClickHouseClient, q: FunnelQuery, matchingSessions: string | undefined): Promise<FunnelResult> {
  const windowMs = q.windowSeconds * 1000;
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const where = baseWhere(q, p, service, matchingSessions);
  const p2 = new SqlParams();
  const where2 = baseWhere(q, p2, p2.bind("String", q.serviceId), matchingSessions);
  // The two questions run side by side (the step names read only the named steps' rows).
  const [kinds, names] = await Promise.all([
    selectRows<KindRow>(
      ch,
      `SELECT has1 + (has1 AND hi >= 2) AS kind, count() AS units, max(hi) AS top, groupArrayIf(arraySort(evs), kind = 2) AS chains FROM (
         SELECT max(step) AS hi, countIf(step = 1) > 0 AS has1, groupArray(ts * ${STEP_SLOTS} + step) AS evs
         FROM (${unitRows(q, service, where)})
         GROUP BY unit)
       GROUP BY kind`,
      p,
    ),
    // A step's most recent name, the greater one on a tie (README): the greatest name among the
    // step's named rows at its latest named time. Two plain aggregations: argMax over the
    // (time, name) tuple took 2.6x as long (30 days, 450k steps, one thread: 85 against 33 ms).
    selectRows<{ step: number; name: string }>(
      ch,
      `SELECT step, max(step_name) AS name FROM funnel_events
       WHERE ${where2} AND step_name != '' AND (step, timestamp) IN (
         SELECT step, max(timestamp) FROM funnel_events WHERE ${where2} AND step_name != '' GROUP BY step)
       GROUP BY step`,
      p2,
    ),
  ]);
  const top = Math.max(0, ...kinds.map((row) => row.top));
  const reached = new Array<number>(top + 1).fill(0);
  /** Gaps in ms between step k−1 and step k of each unit's chain (exact integers). */
  const deltas: number[][] = Array.from({ length: top + 1 }, () => []);
  for (const row of kinds) {
    if (row.kind === 1) reached[1]! += row.units;
    if (row.kind !== 2) continue;
    for (const events of row.chains) {
      const chain = packedChain(events, windowMs);
      for (let k = 1; k <= chain.level; k++) reached[k]!++;
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
