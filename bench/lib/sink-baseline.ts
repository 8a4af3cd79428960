// The sink's baseline (BENCH.md: "the same rows inserted straight into the engine in large
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

const [dataDir, serviceId, smallArg] = process.argv.slice(2);
if (!dataDir || !serviceId) throw new Error("usage: sink-baseline.ts <dataDir> <serviceId> [smallBatchRows]");
// Large batches (the engine's best case), and batches the size of the service's flushes (so the
// difference between the service's flush and the engine splits into batch size and flush path).
const SIZES = [100_000, Math.max(100, Number(smallArg ?? 5000))];

const admin = createClickHouse({ dataDir, database: "default", embeddedLanes: 1 });
const engine = embeddedEngine(dataDir, 1);

// Columns filled by DEFAULT at insert time are left out, as the service leaves them out.
const tables = [
  { table: "events", except: "inserted_at" },
  { table: "sessions", except: "updated_at" },
];
type Result = { rows: number; ms: number; rowsPerSec: number; bytes: number };
const out: Record<string, Result | number> = {};
const exported: Record<string, string[]> = {};
for (const { table, except } of tables) {
  const res = await admin.client.query({
    query: `SELECT * EXCEPT (${except}) FROM analytics_db.${table} WHERE service_id = {s:String}`,
    query_params: { s: serviceId },
    format: "JSONEachRow",
  });
  exported[table] = (await res.text()).split("\n").filter(Boolean);
}
for (const [n, batchRows] of SIZES.entries()) {
  const target = n === 0 ? "bench_sink" : "bench_sink_small";
  await migrate(admin.client, { database: target });
  for (const { table } of tables) {
    const lines = exported[table]!;
    let ms = 0;
    let bytes = 0;
    for (let i = 0; i < lines.length; i += batchRows) {
      const data = new TextEncoder().encode(lines.slice(i, i + batchRows).join("\n") + "\n");
      bytes += data.byteLength;
      const started = performance.now();
      await engine.run({
        sql: `INSERT INTO ${target}.${table} FORMAT JSONEachRow`,
        data, database: target, format: "TabSeparated", settings: { date_time_input_format: "best_effort" },
      });
      ms += performance.now() - started;
    }
    out[n === 0 ? table : `${table}_small`] = { rows: lines.length, ms, rowsPerSec: lines.length / (ms / 1000), bytes };
  }
}
out.smallBatchRows = SIZES[1]!;
await admin.close();
console.log(`SINK_JSON ${JSON.stringify(out)}`);
process.exit(0);
