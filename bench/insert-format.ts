// The embedded engine's CPU per inserted row for the JSON arrays the flush sends (JSONCompactEachRow,
// with a column list; since 2026-11-30) against the JSON objects it sent before (JSONEachRow).
// Not a part of `npm run bench`: the probe behind that change (bench/ANALYSIS.md, "Cheaper rows for
// the engine"). In one process, on a fresh data directory with the service's
// schema and materialized views: flush-sized batches of `events` rows and of `sessions` rows
// (cancel + new pairs), made by the service's own encoders (ingest/rows.ts), each inserted once as
// arrays and once as the same values in objects, alternating which goes first, with
// `date_time_input_format = 'best_effort'` as the flush inserts. CPU is the whole process's
// (every thread: the engine's own and Bun's pool threads that run its calls) during each insert.
//
//   bun bench/insert-format.ts [rows per table per insert = 6000] [rounds = 24]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { EnrichedItem } from "../src/ingest/pipeline.ts";
import { decodeRecord, itemRecord, ROW_COLUMNS, rowObject, sessionRecord, type Table } from "../src/ingest/rows.ts";
import { openSession, type SessionAttributes } from "../src/ingest/sessions/session-state.ts";
import { closeEmbeddedEngines, createClickHouse } from "../src/storage/clickhouse.ts";
import { migrate } from "../src/storage/migrate.ts";

const N = Number(process.argv[2] ?? 6000);
const ROUNDS = Number(process.argv[3] ?? 24);
const dir = mkdtempSync(join(tmpdir(), "insert-format-"));
const ch = createClickHouse({ dataDir: dir, database: "default", embeddedLanes: 2 });
await migrate(ch.client, { database: "analytics_db" });

const attrs: SessionAttributes = {
  hostname: "shop.example", referrer: "https://www.google.com/search?q=x", referrer_domain: "google.com",
  utm_source: "news", utm_medium: "email", utm_campaign: "nov", utm_term: "", utm_content: "",
  device: "desktop", browser: "Chrome", os: "Windows", country: "DE", screen_width: 0, screen_height: 0, language: "", timezone: "",
};
let version = 1;

/** One flush's rows as the service encodes them: N custom events and N session rows (N/2 changes). */
function flushRows(): { events: string[]; sessions: string[] } {
  const events: string[] = [];
  const sessions: string[] = [];
  const now = Date.now();
  for (let i = 0; i < N; i++) {
    const time = now - Math.floor(Math.random() * 600_000);
    const sessionId = crypto.randomUUID();
    const visitorId = `v${i % 5000}`;
    const path = `/products/${i % 50}`;
    const item = {
      type: "event", serviceId: "bench", eventId: crypto.randomUUID(), time, receivedAt: time, visitorId, userId: "",
      url: `https://shop.example${path}?utm_source=news`, path, hostname: "shop.example",
      item: { type: "event", name: "add_to_cart", properties: { sku: `A${i}`, price: 12.5, in_stock: true } },
    } as unknown as EnrichedItem;
    events.push(decodeRecord(itemRecord(item, sessionId)!).json);
    if (i % 2 === 1) continue;
    const state = openSession("bench", sessionId, visitorId, { time, kind: "event", path, conversion: false, userId: "", attrs });
    state.version = version++;
    sessions.push(decodeRecord(sessionRecord(state, -1)).json);
    state.version = version++;
    sessions.push(decodeRecord(sessionRecord(state, 1)).json);
  }
  return { events, sessions };
}

/** The same rows as the objects by column name that versions before 2026-11-30 wrote. */
function asObjects(table: Table, rows: string[]): string[] {
  return rows.map((r) => JSON.stringify(rowObject(table, r)));
}

/** The table's column list, for the array rows' INSERT. */
const columnsOf = (table: Table) => ROW_COLUMNS[table].map((c) => `\`${c}\``).join(", ");

async function insertCpuMs(table: string, rows: string[], format: string, columns?: string): Promise<number> {
  const body = `${rows.join("\n")}\n`;
  const before = process.cpuUsage();
  await ch.client.command({
    query: `INSERT INTO analytics_db.${table}${columns ? ` (${columns})` : ""} SETTINGS date_time_input_format = 'best_effort' FORMAT ${format}\n${body}`,
  });
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

const results: Record<string, number[]> = {};
const record = (key: string, ms: number) => (results[key] ??= []).push(ms);
for (let round = 0; round < ROUNDS; round++) {
  const { events, sessions } = flushRows();
  const objectEvents = asObjects("events", events);
  const objectSessions = asObjects("sessions", sessions);
  const order = round % 2 === 0 ? ["arrays", "objects"] : ["objects", "arrays"];
  for (const form of order) {
    if (form === "objects") {
      record("events, objects (JSONEachRow)", await insertCpuMs("events", objectEvents, "JSONEachRow"));
      record("sessions, objects (JSONEachRow)", await insertCpuMs("sessions", objectSessions, "JSONEachRow"));
    } else {
      record("events, arrays (JSONCompactEachRow)", await insertCpuMs("events", events, "JSONCompactEachRow", columnsOf("events")));
      record("sessions, arrays (JSONCompactEachRow)", await insertCpuMs("sessions", sessions, "JSONCompactEachRow", columnsOf("sessions")));
    }
  }
}

const sorted = (a: number[]) => [...a].sort((x, y) => x - y);
const quantile = (a: number[], q: number) => sorted(a)[Math.min(a.length - 1, Math.floor(q * a.length))]!;
console.log(`${N} rows per insert, ${ROUNDS} rounds (the first 2 of each are warm-up, left out)`);
console.log("| insert | CPU ms per insert: median (p25–p75) | µs per row |");
console.log("|---|---|---|");
for (const [key, all] of Object.entries(results)) {
  const measured = all.slice(2);
  const median = quantile(measured, 0.5);
  console.log(`| ${key} | ${median.toFixed(1)} (${quantile(measured, 0.25).toFixed(1)}–${quantile(measured, 0.75).toFixed(1)}) | ${((median * 1000) / N).toFixed(2)} |`);
}
// Paired per round (the same rows, inserted back to back): arrays ÷ objects.
for (const table of ["events", "sessions"]) {
  const arrays = results[`${table}, arrays (JSONCompactEachRow)`]!.slice(2);
  const objects = results[`${table}, objects (JSONEachRow)`]!.slice(2);
  const ratios = arrays.map((ms, i) => ms / objects[i]!);
  const lower = ratios.filter((r) => r < 1).length;
  console.log(`${table}: arrays ÷ objects per round, median ${quantile(ratios, 0.5).toFixed(2)} (p25–p75 ${quantile(ratios, 0.25).toFixed(2)}–${quantile(ratios, 0.75).toFixed(2)}); arrays cheaper in ${lower} of ${ratios.length} rounds`);
}
await ch.close();
await closeEmbeddedEngines();
rmSync(dir, { recursive: true, force: true });
