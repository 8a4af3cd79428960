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
  /**
   * Rows ClickHouse refuses as data (a parse or type error) go here instead of failing the whole
   * flush forever: the rest of the table's rows are inserted around them (bisection, with tokens
   * derived deterministically, so a retried flush dedups the same way).
   */
  onRejected?: (table: Table, json: string, error: unknown) => Promise<void>;
}

/** ClickHouse error codes that mean "this data cannot be stored", not "try again later". */
const DATA_ERRORS = new Set(["6", "25", "26", "27", "38", "41", "53", "69", "70", "72", "117", "131", "321", "376", "1001"]);

export function isDataError(err: unknown): boolean {
  return typeof err === "object" && err !== null && DATA_ERRORS.has(String((err as { code?: unknown }).code));
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
    const stored = await insertTable(client, table, lines, opts.token ? `${opts.token}-${table}` : undefined, opts);
    rows.set(table, stored);
  }
  return { rows, touched };
}

/** Inserts one table's rows; on a data error, splits them to set aside only the bad rows. */
async function insertTable(client: ClickHouseClient, table: Table, lines: RawJsonRow[], token: string | undefined, opts: InsertOptions): Promise<number> {
  try {
    await client.insert({
      table,
      values: lines, // already-encoded JSON lines: no parse and re-stringify per row
      format: "JSONEachRow",
      clickhouse_settings: {
        date_time_input_format: "best_effort",
        ...(token ? { insert_deduplication_token: token, deduplicate_blocks_in_dependent_materialized_views: 1 } : {}),
        ...(opts.async ? { async_insert: 1, wait_for_async_insert: opts.async.wait ? 1 : 0 } : {}),
      },
    });
    return lines.length;
  } catch (err) {
    if (!opts.onRejected || !isDataError(err)) throw err;
    if (lines.length === 1) {
      await opts.onRejected(table, lines[0]!.json, err);
      return 0;
    }
    const half = Math.ceil(lines.length / 2);
    const left = await insertTable(client, table, lines.slice(0, half), token && `${token}-a`, opts);
    const right = await insertTable(client, table, lines.slice(half), token && `${token}-b`, opts);
    return left + right;
  }
}
