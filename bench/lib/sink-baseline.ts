// The sink's baseline (shared/BENCH.md: "the same rows inserted straight into the engine in large
// batches"): on the data directory of a stopped service run, export the rows the service wrote for
// one service id, create a second database with the same schema (materialized views included),
// and insert those rows straight into the embedded engine in large JSONEachRow batches — no
// client-web, no HTTP handler, no spool segments. Prints rows/s per table.
//
//   bun bench/lib/sink-baseline.ts <dataDir> <serviceId>   → SINK_JSON {...}
import { join, resolve } from "node:path";

const root = process.env.BENCH_SRC_ROOT ?? resolve(import.meta.dir, "..", "..");
const { createClickHouse, embeddedEngine } = (await import(join(root, "src", "storage", "clickhouse.ts"))) as typeof import("../../src/storage/clickhouse.ts");
const { migrate } = (await import(join(root, "src", "storage", "migrate.ts"))) as typeof import("../../src/storage/migrate.ts");

const [dataDir, serviceId] = process.argv.slice(2);
if (!dataDir || !serviceId) throw new Error("usage: sink-baseline.ts <dataDir> <serviceId>");
const BATCH_ROWS = 100_000;
const TARGET = "bench_sink";

const admin = createClickHouse({ dataDir, database: "default", embeddedLanes: 1 });
await migrate(admin.client, { database: TARGET });
const engine = embeddedEngine(dataDir, 1);

// Columns filled by DEFAULT at insert time are left out, as the service leaves them out.
const tables = [
  { table: "events", except: "inserted_at" },
  { table: "sessions", except: "updated_at" },
];
const out: Record<string, { rows: number; ms: number; rowsPerSec: number; bytes: number }> = {};
for (const { table, except } of tables) {
  const res = await admin.client.query({
    query: `SELECT * EXCEPT (${except}) FROM analytics_db.${table} WHERE service_id = {s:String}`,
    query_params: { s: serviceId },
    format: "JSONEachRow",
  });
  const text = await res.text();
  const lines = text.split("\n").filter(Boolean);
  let ms = 0;
  let bytes = 0;
  for (let i = 0; i < lines.length; i += BATCH_ROWS) {
    const data = new TextEncoder().encode(lines.slice(i, i + BATCH_ROWS).join("\n") + "\n");
    bytes += data.byteLength;
    const started = performance.now();
    await engine.run({
      sql: `INSERT INTO ${TARGET}.${table} FORMAT JSONEachRow`,
      data, database: TARGET, format: "TabSeparated", settings: { date_time_input_format: "best_effort" },
    });
    ms += performance.now() - started;
  }
  out[table] = { rows: lines.length, ms, rowsPerSec: lines.length / (ms / 1000), bytes };
}
await admin.close();
console.log(`SINK_JSON ${JSON.stringify(out)}`);
process.exit(0);
