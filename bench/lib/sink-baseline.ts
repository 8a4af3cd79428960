// The sink's baseline (BENCH.md: "the same rows inserted straight into the engine in large
// batches"): on the data directory of a stopped service run, export the rows the service wrote for
// one service id, create a second database with the same schema (materialized views included),
// and insert those rows straight into the embedded engine in large batches, in the form the measured
// code writes them (JSON arrays with a column list since 2026-11-30, objects before) — no
// client-web, no HTTP handler, no spool segments. Prints rows/s per table.
//
// The service inserts every state change of a session (a cancel row of the old state and a row of
// the new one), but the `sessions` table keeps far fewer rows (ClickHouse collapses the pairs on
// insert and in merges), and a session row costs the engine several times an event row (four views
// hang off `sessions`). So the export alone would give a baseline of mostly cheap event rows. When
// the service's own per-table row counts are given, the session rows are replayed as state changes
// until there are as many as the service inserted (each exported state as a cancel + new pair with
// rising versions: the same columns, values and view work as the service's), and the small batches
// split per table as the service's flushes did.
//
//   bun bench/lib/sink-baseline.ts <dataDir> <serviceId> [flushes eventsRows sessionsRows]   → SINK_JSON {...}
import { join, resolve } from "node:path";

const root = process.env.BENCH_SRC_ROOT ?? resolve(import.meta.dir, "..", "..");
const { createClickHouse, embeddedEngine } = (await import(join(root, "src", "storage", "clickhouse.ts"))) as typeof import("../../src/storage/clickhouse.ts");
const { migrate } = (await import(join(root, "src", "storage", "migrate.ts"))) as typeof import("../../src/storage/migrate.ts");
// The service writes rows as JSON arrays of these columns since 2026-11-30 (objects before): the
// baseline inserts the form the measured code inserts.
const rowColumns = ((await import(join(root, "src", "ingest", "rows.ts"))) as { ROW_COLUMNS?: Record<string, readonly string[]> }).ROW_COLUMNS;

const [dataDir, serviceId, flushesArg, eventsArg, sessionsArg] = process.argv.slice(2);
if (!dataDir || !serviceId) throw new Error("usage: sink-baseline.ts <dataDir> <serviceId> [flushes eventsRows sessionsRows]");
const flushes = Math.max(1, Number(flushesArg ?? 1));
const serviceRows: Record<string, number> = { events: Number(eventsArg ?? 0), sessions: Number(sessionsArg ?? 0) };

const admin = createClickHouse({ dataDir, database: "default", embeddedLanes: 1 });
const engine = embeddedEngine(dataDir, 1);

// Columns filled by DEFAULT at insert time are left out, as the service leaves them out.
const tables = [
  { table: "events", except: "inserted_at" },
  { table: "sessions", except: "updated_at" },
];
/** cpuUs: the whole process's CPU (every thread: the engine's own and the ones running its calls) while the inserts ran. */
type Result = { rows: number; ms: number; rowsPerSec: number; bytes: number; cpuUs: number };
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
// Session rows as the service wrote them: state changes, until the service's count is reached.
const states = exported.sessions!;
if (serviceRows.sessions! > states.length && states.length > 0) {
  const parsed = states.map((l) => JSON.parse(l) as Record<string, unknown>);
  const rows: string[] = [];
  for (let round = 0; rows.length < serviceRows.sessions!; round++) {
    for (const s of parsed) {
      if (rows.length >= serviceRows.sessions!) break;
      const version = Number(s.version) + 1 + round;
      rows.push(JSON.stringify({ ...s, sign: -1, version: version - 1 }));
      if (rows.length < serviceRows.sessions!) rows.push(JSON.stringify({ ...s, sign: 1, version }));
    }
  }
  exported.sessions = rows;
}
if (rowColumns) {
  for (const { table } of tables) {
    const columns = rowColumns[table]!;
    exported[table] = exported[table]!.map((line) => {
      const row = JSON.parse(line) as Record<string, unknown>;
      return JSON.stringify(columns.map((c) => row[c]));
    });
  }
}
// Large batches (the engine's best case), and per table the rows of one of the service's flushes
// (so the difference between the service's flush and the engine splits into batch size and path).
const perFlush = (table: string) => Math.max(100, Math.round((serviceRows[table] || exported[table]!.length) / flushes));
const SIZES: ((table: string) => number)[] = [() => 100_000, perFlush];
for (const [n, batchRowsOf] of SIZES.entries()) {
  const target = n === 0 ? "bench_sink" : "bench_sink_small";
  await migrate(admin.client, { database: target });
  for (const { table } of tables) {
    const lines = exported[table]!;
    const batchRows = batchRowsOf(table);
    let ms = 0;
    let bytes = 0;
    let cpuUs = 0;
    for (let i = 0; i < lines.length; i += batchRows) {
      const data = new TextEncoder().encode(lines.slice(i, i + batchRows).join("\n") + "\n");
      bytes += data.byteLength;
      const started = performance.now();
      const cpu0 = process.cpuUsage();
      await engine.run({
        sql: rowColumns
          ? `INSERT INTO ${target}.${table} (${rowColumns[table]!.map((c) => `\`${c}\``).join(", ")}) FORMAT JSONCompactEachRow`
          : `INSERT INTO ${target}.${table} FORMAT JSONEachRow`,
        data, database: target, format: "TabSeparated", settings: { date_time_input_format: "best_effort" },
      });
      const cpu = process.cpuUsage(cpu0);
      cpuUs += cpu.user + cpu.system;
      ms += performance.now() - started;
    }
    out[n === 0 ? table : `${table}_small`] = { rows: lines.length, ms, rowsPerSec: lines.length / (ms / 1000), bytes, cpuUs };
  }
}
out.smallBatchRows = perFlush("events") + perFlush("sessions");
await admin.close();
console.log(`SINK_JSON ${JSON.stringify(out)}`);
process.exit(0);
