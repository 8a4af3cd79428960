// The chain behind funnel medians, replayed in SQL (src/query/funnel.ts, chainFold): the README's
// examples, and random units against windowFunnel's levels and a replay written here in TypeScript.
import { describe, expect, test } from "bun:test";
import { chainFold, MAX_STEPS } from "../../src/query/funnel.ts";
import { testClickHouse } from "../helpers/clickhouse.ts";

const ch = testClickHouse().client;
const CONDITIONS = Array.from({ length: MAX_STEPS }, (_, i) => `step = ${i + 1}`).join(", ");

interface Replayed {
  unit: number;
  level: number;
  chain: number[];
}

/** windowFunnel's level and the SQL chain of each unit of `(unit, time ms, step)` events. */
async function replay(events: ReadonlyArray<readonly [number, number, number]>, windowMs: number): Promise<Replayed[]> {
  const result = await ch.query({
    query: `SELECT unit, windowFunnel({w:UInt64})(ts, ${CONDITIONS}) AS level,
        ${chainFold("groupArray((ts, step))", "{w:UInt64}", "toUInt32(max(step))")} AS chain
      FROM (SELECT e.1 AS unit, e.2 AS ts, e.3 AS step FROM (SELECT arrayJoin(arrayZip({units:Array(UInt32)}, {times:Array(UInt64)}, {steps:Array(UInt8)})) AS e))
      GROUP BY unit ORDER BY unit`,
    query_params: { w: windowMs, units: events.map((e) => e[0]), times: events.map((e) => e[1]), steps: events.map((e) => e[2]) },
    format: "JSONEachRow",
  });
  const rows = await result.json<{ unit: number; level: number; chain: Array<number | string> }>();
  return rows.map((r) => ({ unit: Number(r.unit), level: Number(r.level), chain: r.chain.map(Number) }));
}

const S = 1000;
/** One unit's chain in seconds, for events given in seconds. */
async function times(events: Array<[number, number]>, windowS = 86_400) {
  const [row] = await replay(events.map(([t, step]) => [1, t * S, step] as const), windowS * S);
  return { level: row!.level, times: row!.chain.map((t) => t / S) };
}

describe("README examples", () => {
  test("a later repeat of a step replaces it in the chain the next steps extend", async () => {
    expect(await times([[0, 1], [60, 2], [600, 2], [700, 3]])).toEqual({ level: 3, times: [0, 600, 700] });
  });

  test("a later step 1 restarts the chain", async () => {
    expect(await times([[0, 1], [100, 1], [200, 2]])).toEqual({ level: 2, times: [100, 200] });
  });

  test("the chain that reached the unit's highest step first gives its times", async () => {
    // Step 4 cannot follow (no step 3): the highest step is 2, reached first at 60 s.
    expect(await times([[0, 1], [60, 2], [600, 2], [700, 4]])).toEqual({ level: 2, times: [0, 60] });
  });

  test("a step past the window of its chain's step 1 does not extend it", async () => {
    expect(await times([[0, 1], [61, 2]], 60)).toEqual({ level: 1, times: [0] });
    expect(await times([[0, 1], [60, 2]], 60)).toEqual({ level: 2, times: [0, 60] });
  });

  test("events arrive in any order: the chain follows time, then step", async () => {
    expect(await times([[700, 3], [600, 2], [0, 1], [60, 2]])).toEqual({ level: 3, times: [0, 600, 700] });
    // At one instant a step-1 event comes before the step-2 event it starts.
    expect(await times([[5, 2], [5, 1]])).toEqual({ level: 2, times: [5, 5] });
  });
});

/**
 * windowFunnel's pass written out: events by (time, step); a step-1 event starts a chain; a step-k
 * event extends the latest chain that reached k−1 within the window of its step 1. Returns the
 * times of the chain that first reached the highest step.
 */
function referenceChain(events: Array<[number, number]>, windowMs: number): number[] {
  const sorted = [...events].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const latest: Array<number[] | undefined> = [];
  let best: number[] = [];
  for (const [t, step] of sorted) {
    let chain: number[];
    if (step === 1) chain = [t];
    else {
      const prev = latest[step - 2];
      if (!prev || t > prev[0]! + windowMs) continue;
      chain = [...prev, t];
    }
    latest[step - 1] = chain;
    if (step > best.length) best = chain;
  }
  return best;
}

test("random units: the SQL chain equals the reference replay, and its length windowFunnel's level", async () => {
  let seed = 20261130;
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const windowMs = 30 * S;
  const events: Array<[number, number, number]> = [];
  for (let unit = 1; unit <= 600; unit++) {
    const n = 1 + Math.floor(random() * 12);
    // Steps 1–5 (a few 20), times on a 5 s grid so ties and the window's edge happen often.
    for (let j = 0; j < n; j++) events.push([unit, Math.floor(random() * 21) * 5 * S, random() < 0.02 ? 20 : 1 + Math.floor(random() * 5)]);
  }
  const rows = await replay(events, windowMs);
  expect(rows.length).toBe(600);
  let deep = 0;
  for (const r of rows) {
    const mine = events.filter((e) => e[0] === r.unit).map((e) => [e[1], e[2]] as [number, number]);
    expect({ unit: r.unit, chain: r.chain }).toEqual({ unit: r.unit, chain: referenceChain(mine, windowMs) });
    expect(r.chain.length).toBe(r.level);
    if (r.level >= 3) deep++;
  }
  // The data reaches past step 2 often enough for the check to mean something.
  expect(deep).toBeGreaterThan(30);
});
