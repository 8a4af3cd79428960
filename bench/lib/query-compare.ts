// View vs raw, in one process on one data directory (libchdb binds a directory to one process):
// each question of the query side is answered through its view path and with `forceRaw`, the
// two interleaved (order alternating), `reps` times per round; per round the median of each is
// taken and their ratio; the answers must be identical (JSON of the result).
//
//   bun bench/lib/query-compare.ts <dataDir> <serviceId> <rounds> <reps> <nowMs> <endDate>  → CMP_JSON {...}
import { join, resolve } from "node:path";

const root = process.env.BENCH_SRC_ROOT ?? resolve(import.meta.dir, "..", "..");
const imp = async <T>(...p: string[]) => (await import(join(root, "src", ...p))) as T;
const { createClickHouse } = await imp<typeof import("../../src/storage/clickhouse.ts")>("storage", "clickhouse.ts");
// seriesCut since 2026-12-02 (a series reaching before its view's TTL reads the view after the cut); older snapshots have none.
const { sessionTotals, sessionSeries, chooseSource, seriesCut } = await imp<typeof import("../../src/query/session-metrics.ts")>("query", "session-metrics.ts");
// sessionDistributions (all four in one read) since 2026-12-01; older snapshots read one dimension per query.
const breakdowns = await imp<typeof import("../../src/query/session-breakdowns.ts") & { sessionDistribution?: (...a: unknown[]) => Promise<unknown> }>("query", "session-breakdowns.ts");
const { sessionDistributions, sessionDistribution, utmStats } = breakdowns;
const { topEvents, topEventsSource } = await imp<typeof import("../../src/query/top-events.ts")>("query", "top-events.ts");
const { sessionStatsReport, behaviorSummary } = await imp<typeof import("../../src/query/reports.ts")>("query", "reports.ts");
const { resolveRange } = await imp<typeof import("../../src/query/time-range.ts")>("query", "time-range.ts");
const { selectRows, SqlParams } = await imp<typeof import("../../src/query/sql-params.ts")>("query", "sql-params.ts");

const [dataDir, serviceId, roundsArg, repsArg, nowArg, endDate] = process.argv.slice(2);
if (!dataDir || !serviceId || !endDate) throw new Error("usage: query-compare.ts <dataDir> <serviceId> <rounds> <reps> <nowMs> <endDate>");
const rounds = Number(roundsArg);
const reps = Number(repsArg);
const now = Number(nowArg);
const ch = createClickHouse({ dataDir, database: "analytics_db", embeddedLanes: 4 }).client;
const dayBefore = (d: string, n: number) => new Date(Date.parse(d) - n * 86_400_000).toISOString().slice(0, 10);

type Q = { serviceId: string; range: ReturnType<typeof resolveRange>; filters: Record<string, string>; limit: number };
const query = (days: number, tz: string): Q => ({ serviceId, range: resolveRange({ from: dayBefore(endDate, days - 1), to: endDate, tz }, now), filters: {}, limit: 10 });
// One thread per query, both paths: how the service runs them (its reports ask every question at
// once with max_threads = 1, src/query/reports.ts); with two threads each question would also pay
// for merging per-thread visitor sets, which the service does not.
type Read = { now: number; forceRaw?: boolean; threads: number };
const questions: { name: string; run: (read: Read) => Promise<unknown>; source?: (read: Read) => string }[] = [];
for (const [label, q] of [["7 d UTC", query(7, "UTC")], ["30 d UTC", query(30, "UTC")], ["7 d Europe/Berlin", query(7, "Europe/Berlin")]] as const) {
  const src = (interval?: string) => (read: Read) => {
    const source = chooseSource(q, read, interval as never);
    const cut = interval && seriesCut ? seriesCut(q, interval as never, read) : undefined;
    return cut === undefined ? source : `${interval === "hour" ? "hourly" : "daily"} from ${new Date(cut).toISOString().slice(0, 16)}Z, raw before`;
  };
  questions.push({ name: `session totals, ${label}`, run: (r) => sessionTotals(ch, q, r), source: src(undefined) });
  questions.push({ name: `daily series, ${label}`, run: (r) => sessionSeries(ch, q, "day", r), source: src("day") });
  questions.push({ name: `hourly series, ${label}`, run: (r) => sessionSeries(ch, q, "hour", r), source: src("hour") });
  if (sessionDistributions) questions.push({ name: `device, browser, OS and country distributions, ${label}`, run: (r) => sessionDistributions(ch, q, r) });
  else {
    questions.push({ name: `device distribution, ${label}`, run: (r) => sessionDistribution!(ch, q, "device", r) });
    questions.push({ name: `country distribution, ${label}`, run: (r) => sessionDistribution!(ch, q, "country", r) });
  }
  questions.push({ name: `UTM campaigns, ${label}`, run: (r) => utmStats(ch, q, r) });
  // topEventsSource: raw below 14 days (older snapshots have no such function: always the view).
  questions.push({ name: `top events, ${label}`, run: (r) => topEvents(ch, q, r), source: topEventsSource ? (r) => topEventsSource(q, r) : undefined });
  // The whole reports once (7 d UTC): the behavior summary's raw-only lists take seconds on 10M events.
  if (label !== "7 d UTC") continue;
  questions.push({ name: `stats report (whole /v1/sessions/stats), ${label}`, run: (r) => sessionStatsReport(ch, q, "day", r) });
  questions.push({ name: `behavior summary (whole /v1/behavior/summary), ${label}`, run: (r) => behaviorSummary(ch, q, r) });
}

async function timed(f: () => Promise<unknown>): Promise<{ ms: number; json: string }> {
  const s = performance.now();
  const v = await f();
  return { ms: performance.now() - s, json: JSON.stringify(v) };
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

// Warm-up: every question once each way (page cache, marks), not measured.
for (const q of questions) {
  await q.run({ now, threads: 1 });
  await q.run({ now, forceRaw: true, threads: 1 });
}
const out = questions.map((q) => ({ name: q.name, source: q.source ? q.source({ now, threads: 1 }) : undefined, view: [] as number[], raw: [] as number[], ratio: [] as number[], identical: true, diff: "" }));
for (let r = 0; r < rounds; r++) {
  for (const [i, q] of questions.entries()) {
    const v: number[] = [];
    const w: number[] = [];
    for (let k = 0; k < reps; k++) {
      const order = (k + r) % 2 === 0 ? [false, true] : [true, false];
      const res: Record<string, { ms: number; json: string }> = {};
      for (const raw of order) res[String(raw)] = await timed(() => q.run({ now, forceRaw: raw, threads: 1 }));
      v.push(res.false!.ms);
      w.push(res.true!.ms);
      if (res.false!.json !== res.true!.json && out[i]!.identical) {
        out[i]!.identical = false;
        out[i]!.diff = `view ${res.false!.json.slice(0, 300)} ≠ raw ${res.true!.json.slice(0, 300)}`;
      }
    }
    out[i]!.view.push(median(v));
    out[i]!.raw.push(median(w));
    out[i]!.ratio.push(median(w) / median(v));
  }
}
// The engine's floor: the cheapest read there is (SELECT 1) through the same client, settings and
// lanes; no view can answer faster, so raw ÷ floor bounds the speed-up any view could give.
const floor: number[] = [];
for (let r = 0; r < rounds; r++) {
  const ms: number[] = [];
  for (let k = 0; k < 20; k++) ms.push((await timed(() => selectRows(ch, "SELECT 1 AS one", new SqlParams()))).ms);
  floor.push(median(ms));
}
// What a view read has to merge for exact visitor counts: the visitor hashes kept in the target's
// states over the range (each row's state size, as stored: parts not yet merged keep a state per
// part) against the raw rows the raw path hashes. Close to 1, merging the states is about the
// work of hashing the raw rows, whatever else the view saves.
const stateWork: { name: string; states: number; rawRows: number }[] = [];
for (const days of [7, 30]) {
  const range = query(days, "UTC").range;
  const one = async (sql: string) => {
    const p = new SqlParams();
    const text = sql.replaceAll("{S}", p.bind("String", serviceId)).replaceAll("{FROM}", p.instant(range.start)).replaceAll("{TO}", p.instant(range.end))
      .replaceAll("{FROM_S}", p.second(range.start)).replaceAll("{TO_S}", p.second(range.end));
    const [row] = await selectRows<{ n: number }>(ch, text, p);
    return Number(row?.n ?? NaN);
  };
  const sessionsRaw = await one("SELECT count() AS n FROM sessions WHERE service_id = {S} AND started_at >= {FROM} AND started_at < {TO}");
  stateWork.push({ name: `session visitors, ${days} d UTC, daily_session_stats`, rawRows: sessionsRaw,
    states: await one("SELECT sum(finalizeAggregation(visitors64)) AS n FROM daily_session_stats WHERE service_id = {S} AND day >= toDate({FROM}) AND day < toDate({TO})") });
  stateWork.push({ name: `session visitors, ${days} d UTC, hourly_session_metrics`, rawRows: sessionsRaw,
    states: await one("SELECT sum(finalizeAggregation(visitors64)) AS n FROM hourly_session_metrics WHERE service_id = {S} AND hour >= {FROM_S} AND hour < {TO_S}") });
  stateWork.push({ name: `event visitors by name, ${days} d UTC, hourly_event_counts`,
    rawRows: await one("SELECT count() AS n FROM events WHERE service_id = {S} AND timestamp >= {FROM} AND timestamp < {TO}"),
    states: await one("SELECT sum(finalizeAggregation(visitors64)) AS n FROM hourly_event_counts WHERE service_id = {S} AND hour >= {FROM_S} AND hour < {TO_S}") });
}
console.log(`CMP_JSON ${JSON.stringify(out)}`);
console.log(`FLOOR_JSON ${JSON.stringify({ floor, stateWork })}`);
process.exit(0);
