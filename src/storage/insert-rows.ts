// Writes encoded rows (see ingest/rows.ts) to ClickHouse: one INSERT per table, JSONEachRow,
// with a deterministic insert_deduplication_token so a replayed flush is a no-op, also in the
// materialized views that hang off each table.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { decodeRecord, type Table } from "../ingest/rows.ts";
import { RawJsonRow } from "./clickhouse.ts";

/** Which services and UTC dates got new rows (for cache invalidation). */
export type Touched = Map<string, Set<string>>;

export interface InsertOptions {
  /** Base of the dedup token; each table's insert appends the table name. */
  token?: string;
  /** Async insert (the ack-after-insert mode); waits for the flush when `wait`. */
  async?: { wait: boolean };
}

/** Inserts every record into its table and reports what it touched. */
export async function insertRecords(client: ClickHouseClient, records: readonly string[], opts: InsertOptions = {}): Promise<{ rows: Map<Table, number>; touched: Touched }> {
  const byTable = new Map<Table, RawJsonRow[]>();
  const touched: Touched = new Map();
  for (const record of records) {
    const { table, serviceId, date, json } = decodeRecord(record);
    let lines = byTable.get(table);
    if (!lines) byTable.set(table, (lines = []));
    lines.push(new RawJsonRow(json));
    let dates = touched.get(serviceId);
    if (!dates) touched.set(serviceId, (dates = new Set()));
    dates.add(date);
  }
  const rows = new Map<Table, number>();
  // Sessions last: a reader never sees a session row before the items it counts.
  const tables = [...byTable.keys()].sort((a, b) => Number(a === "sessions") - Number(b === "sessions"));
  for (const table of tables) {
    const lines = byTable.get(table)!;
    await client.insert({
      table,
      values: lines, // already-encoded JSON lines: no parse and re-stringify per row
      format: "JSONEachRow",
      clickhouse_settings: {
        date_time_input_format: "best_effort",
        ...(opts.token ? { insert_deduplication_token: `${opts.token}-${table}`, deduplicate_blocks_in_dependent_materialized_views: 1 } : {}),
        ...(opts.async ? { async_insert: 1, wait_for_async_insert: opts.async.wait ? 1 : 0 } : {}),
      },
    });
    rows.set(table, lines.length);
  }
  return { rows, touched };
}
