// The route's funnel levels come from the chain replay (src/query/funnel-chain.ts), not from the
// engine: this holds the replay to ClickHouse's own windowFunnel (default mode), the contract's
// definition, on random units run through the real engine. Units are small and dense in time
// (ties, repeats, steps out of order, events on the window's edge) so every rule is exercised.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { packedChain, packEvent } from "../../src/query/funnel-chain.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";

const database = uniqueDatabase("fchain");
const ch = testClickHouse("default").client;
const UNITS = 3000;
const WINDOWS_MS = [1, 60_000, 86_400_000];

/** A small deterministic generator (mulberry32), so a failure names its seed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const SEED = Number(process.env.SEED ?? 20261201);
const rows: Array<{ unit: number; ts: number; step: number }> = [];
beforeAll(async () => {
  const rnd = random(SEED);
  const base = Date.UTC(2026, 10, 1);
  for (let unit = 0; unit < UNITS; unit++) {
    const n = 1 + Math.floor(rnd() * 10);
    const steps = 1 + Math.floor(rnd() * 6); // units whose funnels have 1..6 steps
    let t = base;
    for (let i = 0; i < n; i++) {
      // Often the same instant, often exactly one window (60 s) later, else anywhere within two days.
      const r = rnd();
      t += r < 0.25 ? 0 : r < 0.4 ? 60_000 : r < 0.5 ? 1 : Math.floor(rnd() * 2 * 86_400_000);
      rows.push({ unit, ts: rnd() < 0.2 ? t - Math.floor(rnd() * 120_000) : t, step: 1 + Math.floor(rnd() * steps) });
    }
  }
  await ch.command({ query: `CREATE DATABASE ${database}` });
  await ch.command({ query: `CREATE TABLE ${database}.fe (unit UInt32, ts UInt64, step UInt8) ENGINE = MergeTree ORDER BY unit` });
  await ch.insert({ table: `${database}.fe`, values: rows, format: "JSONEachRow" });
});
afterAll(() => ch.command({ query: `DROP DATABASE IF EXISTS ${database}` }));

for (const windowMs of WINDOWS_MS) {
  test(`the replay's level equals windowFunnel's for ${UNITS} random units (window ${windowMs} ms, seed ${SEED})`, async () => {
    const conditions = Array.from({ length: 20 }, (_, i) => `step = ${i + 1}`).join(", ");
    const result = await ch.query({
      query: `SELECT unit, windowFunnel({w:UInt64})(ts, ${conditions}) AS level FROM ${database}.fe GROUP BY unit ORDER BY unit`,
      query_params: { w: windowMs },
      format: "JSONEachRow",
    });
    const engine = await result.json<{ unit: number; level: number }>();
    const byUnit = new Map<number, number[]>();
    for (const r of rows) {
      const list = byUnit.get(r.unit) ?? [];
      list.push(packEvent(r.ts, r.step));
      byUnit.set(r.unit, list);
    }
    const replay = engine.map(({ unit }) => ({ unit, level: packedChain(byUnit.get(unit)!.sort((a, b) => a - b), windowMs).level }));
    expect(engine.length).toBe(UNITS);
    // Not a vacuous pass: the random units reach several levels.
    expect(new Set(engine.map((r) => r.level)).size).toBeGreaterThanOrEqual(windowMs === 1 ? 2 : 4);
    expect(replay).toEqual(engine);
  });
}
