// GET /v1/funnels/:name over raw funnel_events (funnel_stats only counts step hits; conversion
// needs the order and window of each unit's events). Levels come from ClickHouse's windowFunnel;
// the times between steps come from the same pass replayed in SQL (CHAIN_FOLD below), and both
// must agree: a disagreement is a bug worth a 500 rather than a quietly wrong number. The engine
// answers one row of per-step counts and medians, so nothing per unit crosses into JavaScript.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { type Filters, itemConditions, itemSession, itemSessionHash } from "./filters.ts";
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

/** Funnel items carry steps 1–20 (ingest/schemas.ts). */
export const MAX_STEPS = 20;

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

/**
 * The chain windowFunnel's default mode follows for one unit, as an `arrayFold` over its
 * `(ts, step)` events sorted by (time, step): a step-1 event (re)starts a chain; a step-k event
 * extends the latest chain that reached step k−1 when it is within the window of that chain's
 * step-1 time (equal times count). The state is (highest step so far, the times of the chain
 * that first reached it, the latest chain per step); its second element is the unit's chain:
 * steps 1..level, the times the medians are made of (README, "Funnel median").
 */
export function chainFold(events: string, windowMs: string, slots: string): string {
  return `arrayFold((acc, e) -> if(
      e.2 = 1 OR (length(acc.3[e.2 - 1]) > 0 AND e.1 <= acc.3[e.2 - 1][1] + ${windowMs}),
      (if(e.2 > acc.1, e.2, acc.1),
       if(e.2 > acc.1, if(e.2 = 1, [e.1], arrayPushBack(acc.3[e.2 - 1], e.1)), acc.2),
       arrayMap((c, i) -> if(i = e.2, if(e.2 = 1, [e.1], arrayPushBack(acc.3[e.2 - 1], e.1)), c), acc.3, arrayEnumerate(acc.3))),
      acc),
    arraySort(${events}),
    (toUInt8(0), CAST([], 'Array(UInt64)'), arrayWithConstant(${slots}, CAST([], 'Array(UInt64)')))).2`;
}

interface StepsRow {
  /** Units reaching step k, at index k−1. */
  reached: Array<number | string>;
  /** Lower and upper median of the ms from step k−1 to step k over the units reaching k, at index k−1. */
  low: Array<number | string>;
  high: Array<number | string>;
  disagreements: number | string;
}

/** Units reaching each step, conversions and medians; steps 1..highest step present. */
export async function funnelReport(ch: ClickHouseClient, q: FunnelQuery): Promise<FunnelResult> {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const where = baseWhere(q, p, service);
  const windowMs = p.bind("UInt64", q.windowSeconds * 1000);
  const p2 = new SqlParams();
  // One row: per-step arrays aggregated over units (-ForEach aggregates array index k over the
  // rows whose array reaches k: a unit at level L counts for steps 1..L). The exact lower and
  // upper medians (`quantileExactLow/High`) are the middle value twice for an odd count and the
  // two middle values for an even one. The two questions run side by side (the step names read
  // only the steps' own rows).
  const [levels, names] = await Promise.all([
    selectRows<StepsRow>(
      ch,
      `SELECT sumForEach(arrayWithConstant(level, toUInt64(1))) AS reached,
         quantileExactLowForEach(0.5)(gaps) AS low, quantileExactHighForEach(0.5)(gaps) AS high,
         countIf(length(chain) != level) AS disagreements
       FROM (
         SELECT windowFunnel(${windowMs})(ts, ${CONDITIONS}) AS level,
           ${chainFold("groupArray((ts, step))", windowMs, "toUInt32(max(step))")} AS chain,
           arrayDifference(chain) AS gaps
         FROM (${unitRows(q, p, service, where)})
         GROUP BY unit)`,
      p,
    ),
    selectRows<{ step: number; top: number; name: string }>(
      ch,
      `SELECT step, max(step) OVER () AS top, argMaxIf(step_name, (timestamp, step_name), step_name != '') AS name
       FROM funnel_events WHERE ${baseWhere(q, p2)} GROUP BY step`,
      p2,
    ),
  ]);
  const row = levels[0];
  if (row && Number(row.disagreements) !== 0) throw new Error(`funnel chain replay disagrees with windowFunnel for ${row.disagreements} units`);
  const top = names[0]?.top ?? 0;
  const reached = (k: number) => Number(row?.reached[k - 1] ?? 0);
  /**
   * The median in seconds: the mean of the middle two ms gaps (for an odd count the middle one
   * twice), one division of an exact integer, so the double nearest the exact value.
   */
  const medianSeconds = (k: number) => (reached(k) === 0 ? null : (Number(row!.low[k - 1]) + Number(row!.high[k - 1])) / 2000);
  const nameOf = new Map(names.map((n) => [n.step, n.name]));
  const steps: FunnelStep[] = [];
  for (let k = 1; k <= top; k++) {
    const units = reached(k);
    steps.push({
      step: k,
      name: nameOf.get(k) ?? "",
      units,
      conversion_from_previous: k === 1 ? 1 : ratio(units, reached(k - 1)),
      conversion_from_start: k === 1 ? 1 : ratio(units, reached(1)),
      median_seconds_from_previous: k === 1 ? null : medianSeconds(k),
    });
  }
  return { funnel: q.funnel, steps, overall_conversion: top === 0 ? null : ratio(reached(top), reached(1)) };
}

function ratio(n: number, d: number): number | null {
  return d === 0 ? null : n / d;
}
