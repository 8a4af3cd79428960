// Counts what is queryable in ClickHouse, from a separate process, on the data directory of a
// service that has stopped (the service process owns its embedded engine while it runs; libchdb
// binds a data directory to one process). Also reads freshness (inserted_at - received_at per
// event) and the engine's own insert log (system.query_log).
//
//   bun bench/lib/count.ts <dataDir> <serviceId> [fromMs toMs]    → COUNT_JSON {...}
//   bun bench/lib/count.ts --url http://127.0.0.1:PORT <serviceId> [fromMs toMs]
import { join, resolve } from "node:path";

// The same code snapshot the service ran from (bench/lib/snapshot.ts), else this checkout.
const root = process.env.BENCH_SRC_ROOT ?? resolve(import.meta.dir, "..", "..");
const { createClickHouse } = (await import(join(root, "src", "storage", "clickhouse.ts"))) as typeof import("../../src/storage/clickhouse.ts");

const args = process.argv.slice(2);
let url: string | undefined;
let dataDir: string | undefined;
if (args[0] === "--url") {
  url = args[1];
  args.splice(0, 2);
} else {
  dataDir = args.shift();
}
const [serviceId, fromArg, toArg] = args;
if (!serviceId || (!url && !dataDir)) throw new Error("usage: count.ts <dataDir>|--url URL <serviceId> [fromMs toMs]");
const from = Number(fromArg ?? 0);
const to = Number(toArg ?? 8.64e15);

const ch = createClickHouse({ url, dataDir, database: "analytics_db", embeddedLanes: 1 });
const q = async <T>(query: string, params: Record<string, unknown> = {}): Promise<T[]> =>
  (await (await ch.client.query({ query, query_params: params, format: "JSONEachRow" })).json<T>());

const out: Record<string, unknown> = {};
const [events] = await q<{ rows: number; ids: number; last_inserted_ms: number; first_received_ms: number }>(
  `SELECT count() AS rows, uniqExact(event_id) AS ids, toUnixTimestamp64Milli(max(inserted_at)) AS last_inserted_ms,
          toUnixTimestamp64Milli(min(received_at)) AS first_received_ms FROM events WHERE service_id = {s:String}`, { s: serviceId });
out.events = events;
const [fresh] = await q<{ n: number; q: number[]; max: number; min: number; mean: number }>(
  `SELECT count() AS n, quantilesExact(0.5, 0.95, 0.99)(d) AS q, max(d) AS max, min(d) AS min, avg(d) AS mean FROM (
     SELECT toUnixTimestamp64Milli(inserted_at) - toUnixTimestamp64Milli(received_at) AS d FROM events
     WHERE service_id = {s:String} AND received_at >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
       AND received_at < fromUnixTimestamp64Milli({to:Int64}, 'UTC'))`,
  { s: serviceId, from, to });
out.freshness_ms = fresh ? { n: fresh.n, p50: fresh.q[0], p95: fresh.q[1], p99: fresh.q[2], max: fresh.max, min: fresh.min, mean: fresh.mean } : null;
const [sessions] = await q<{ rows: number; live: number }>(
  "SELECT count() AS rows, sum(sign) AS live FROM sessions WHERE service_id = {s:String}", { s: serviceId });
out.sessions = sessions;
try {
  const inserts = await q<{ table: string; n: number; q: number[]; max: number; rows: number }>(
    `SELECT arrayStringConcat(tables, ',') AS table, count() AS n, quantiles(0.5, 0.95, 0.99)(query_duration_ms) AS q,
            max(query_duration_ms) AS max, sum(written_rows) AS rows
     FROM system.query_log WHERE type = 'QueryFinish' AND query_kind = 'Insert'
       AND event_time_microseconds >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
     GROUP BY table ORDER BY rows DESC LIMIT 12`,
    { from });
  out.query_log_inserts = inserts;
} catch (err) {
  out.query_log_inserts = `unavailable: ${String(err).slice(0, 200)}`;
}
await ch.close();
console.log(`COUNT_JSON ${JSON.stringify(out)}`);
process.exit(0);
