// schemas/05-hash_columns.sql: the read side counts visitors by `visitor_hash` and filters items by
// `session_hash`, columns MATERIALIZED as cityHash64 of the ids. They must equal the expressions
// on every row at any moment: on parts written before 05 (computed on read), on parts written
// after it (stored at insert), and once old and new parts have merged.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrate } from "../../src/storage/migrate.ts";
import { SCHEMA_DIR } from "../../src/storage/schema-files.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";

const ch = testClickHouse("default");
const client = ch.client;
const db = uniqueDatabase("hashcols");
afterAll(() => ch.close());

const now = new Date(Date.now() - 3_600_000).toISOString().replace("T", " ").slice(0, 23);
const COLUMNS: Record<string, string[]> = {
  sessions: ["visitor_hash", "session_hash"],
  page_views: ["visitor_hash", "session_hash"],
  events: ["visitor_hash", "session_hash"],
  web_vitals: ["session_hash"],
  errors: ["session_hash"],
  funnel_events: ["session_hash"],
};
const ID = { visitor_hash: "visitor_id", session_hash: "session_id" } as const;

function rowsFor(table: string, batch: string) {
  return Array.from({ length: 20 }, (_, i) => {
    const base = { service_id: "shop", session_id: `${batch}-s${i % 7}`, visitor_id: `${batch}-v${i % 5}` };
    return table === "sessions" ? { ...base, started_at: now, ended_at: now, sign: 1, version: 1 } : { ...base, event_id: crypto.randomUUID(), timestamp: now };
  });
}

async function insertAll(batch: string) {
  for (const table of Object.keys(COLUMNS)) {
    await client.insert({ table: `${db}.${table}`, values: rowsFor(table, batch), format: "JSONEachRow" });
  }
}

/** Rows whose hash column differs from the expression over the id, per table (all must be 0). */
async function mismatches(): Promise<Record<string, { rows: number; bad: number }>> {
  const out: Record<string, { rows: number; bad: number }> = {};
  for (const [table, cols] of Object.entries(COLUMNS)) {
    const bad = cols.map((c) => `${c} != cityHash64(${ID[c as keyof typeof ID]})`).join(" OR ");
    const r = await client.query({ query: `SELECT count() AS rows, countIf(${bad}) AS bad FROM ${db}.${table}`, format: "JSONEachRow" });
    out[table] = ((await r.json()) as { rows: number; bad: number }[])[0]!;
  }
  return out;
}

describe("05: hash columns", () => {
  beforeAll(async () => {
    // Schemas 01-04 only, rows written, then 05 applied over them.
    const dir = mkdtempSync(join(tmpdir(), "schema-04-"));
    for (const f of readdirSync(SCHEMA_DIR).filter((n) => n < "05")) copyFileSync(join(SCHEMA_DIR, f), join(dir, f));
    await migrate(client, { database: db, schemaDir: dir });
    rmSync(dir, { recursive: true, force: true });
    await insertAll("old");
    await migrate(client, { database: db });
  });

  test("rows written before 05 read the hashes of their ids", async () => {
    const m = await mismatches();
    for (const table of Object.keys(COLUMNS)) expect({ table, ...m[table] }).toEqual({ table, rows: 20, bad: 0 });
  });

  test("rows written after 05, and every row once the parts have merged", async () => {
    await insertAll("new");
    let m = await mismatches();
    for (const table of Object.keys(COLUMNS)) expect({ table, ...m[table] }).toEqual({ table, rows: 40, bad: 0 });
    for (const table of Object.keys(COLUMNS)) await client.command({ query: `OPTIMIZE TABLE ${db}.${table} FINAL` });
    m = await mismatches();
    for (const table of Object.keys(COLUMNS)) expect({ table, ...m[table] }).toEqual({ table, rows: 40, bad: 0 });
  });

  test("SELECT * leaves them out (exports and re-inserts of raw rows are unchanged)", async () => {
    for (const table of Object.keys(COLUMNS)) {
      const r = await client.query({ query: `SELECT * FROM ${db}.${table} LIMIT 1`, format: "JSONEachRow" });
      const [row] = (await r.json()) as Record<string, unknown>[];
      expect(Object.keys(row!)).not.toContain("session_hash");
      expect(Object.keys(row!)).not.toContain("visitor_hash");
    }
  });
});
