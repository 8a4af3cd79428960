// Writes encoded rows (see ingest/rows.ts) to ClickHouse: one INSERT per table, JSONCompactEachRow
// with the table's column list, with a deterministic insert_deduplication_token so a replayed flush
// is a no-op, also in the materialized views that hang off each table. Rows an earlier version left
// in the spool as JSON objects go in a JSONEachRow INSERT of their own.
//
// The JSON text of the rows goes to ClickHouse as it lies in the spool: each table's body is the
// rows' bytes copied once into one buffer, never parsed or re-stringified per row. It goes through
// client-web like every other request (with the embedded engine too: one code path, client-web's
// timeout and error mapping). client-web takes text: for a server the body is decoded once per
// insert; the embedded engine is lent the bytes themselves (storage/embedded/lent-bodies.ts).
import type { ClickHouseClient } from "@clickhouse/client-web";
import { groupRows, type GroupedRows, ROW_COLUMNS, type RowSlice, type Table } from "../ingest/rows.ts";
import { JsonEachRowBytes, release } from "./embedded/lent-bodies.ts";
import { SYSTEM_FAULT } from "../errors.ts";
import type { ScratchBuffer } from "../scratch-buffer.ts";
import { sessionsTurns } from "./sessions-turns.ts";

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
  onRejected?: (table: Table, json: string, error: unknown, columns: readonly string[] | undefined) => Promise<void>;
  /**
   * Called after each table's INSERT returned, with what the whole call touches: its rows are
   * readable from then on, so a cached answer must not outlive that moment by the other tables'
   * inserts (cache invalidation, ingest/writers.ts).
   */
  afterTable?: (table: Table, touched: Touched) => void;
  /**
   * Where each table's body is built, for a caller whose inserts run one at a time (the flush):
   * kept between inserts instead of a fresh buffer each. Dropped when an insert fails, since the
   * engine may still be reading a body the client gave up waiting for.
   */
  bodyBuffer?: ScratchBuffer;
}

/** ClickHouse error codes that mean "this data cannot be stored", not "try again later". */
const DATA_ERRORS = new Set(["6", "25", "26", "27", "38", "41", "53", "69", "70", "72", "117", "131", "321", "376", "1001"]);
// 1001 (a C++ exception) also carries what the engine's disk says: a part directory it could not
// create for lack of space, inodes or permission, a read-only or failing file system. Those rows
// are fine and must wait for the disk, not be set aside (a disk-full audit saw acknowledged rows
// quarantined that way), so a message naming the system (SYSTEM_FAULT) refuses the "data" reading
// for any code.

export function isDataError(err: unknown): boolean {
  if (typeof err !== "object" || err === null || !DATA_ERRORS.has(String((err as { code?: unknown }).code))) return false;
  const message = (err as { message?: unknown }).message;
  return !(typeof message === "string" && SYSTEM_FAULT.test(message));
}

const utf8 = new TextDecoder();
const encoder = new TextEncoder();
/** A name SQL may carry unquoted and unparameterised (tables, views, databases). */
export const SQL_IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/** Inserts every record (strings, as `encodeRecord` makes them) into its table. */
export async function insertRecords(client: ClickHouseClient, records: readonly string[], opts: InsertOptions = {}): Promise<{ rows: Map<Table, number>; touched: Touched }> {
  if (records.length === 0) return { rows: new Map(), touched: new Map() };
  return insertRows(client, groupRows([encoder.encode(records.join("\n"))]), opts);
}

/** Inserts rows grouped by `groupRows` and reports what they touched. */
export async function insertRows(client: ClickHouseClient, grouped: GroupedRows, opts: InsertOptions = {}): Promise<{ rows: Map<Table, number>; touched: Touched }> {
  const rows = new Map<Table, number>();
  // Sessions last: a reader never sees a session row before the items it counts; aliases just
  // before them (a merged session's new row never shows before its items are mapped to it).
  const rank = (t: Table) => (t === "sessions" ? 2 : t === "session_aliases" ? 1 : 0);
  const tables = [...grouped.tables.keys()].sort((a, b) => rank(a) - rank(b));
  for (const table of tables) {
    const slices = grouped.tables.get(table)!;
    if (slices.length === 0) continue;
    const stored = await insertTable(client, table, slices, opts.token ? `${opts.token}-${table}` : undefined, opts);
    rows.set(table, stored);
    opts.afterTable?.(table, grouped.touched);
  }
  return { rows, touched: grouped.touched };
}

/** The rows' JSON text, one line each, in one buffer (the only copy of the bytes on the way). */
export function jsonEachRowBody(rows: readonly RowSlice[], into?: ScratchBuffer): Uint8Array {
  let total = 0;
  for (const r of rows) total += r.end - r.start + 1;
  const body = into ? into.take(total) : Buffer.allocUnsafe(total);
  let at = 0;
  for (const r of rows) {
    at += r.buf.copy(body, at, r.start, r.end); // by offsets: no view object per row
    body[at++] = 0x0a;
  }
  return body;
}

/** Whether a row is a JSON array (ROW_COLUMNS order), not an object as versions before 2026-11-30 wrote. */
const isArrayRow = (r: RowSlice) => r.buf[r.start] === 0x5b; // "["

/**
 * Inserts one table's rows; on a data error, splits them to set aside only the bad rows. Rows in
 * the two forms go in separate INSERTs: the arrays under `token`, the objects (left in the spool by
 * an earlier version) under `token` too when they are all there is (as that version named them, so
 * a segment it had half inserted is not stored twice), else under `token`-objects.
 */
export async function insertTable(client: ClickHouseClient, table: Table, rows: RowSlice[], token: string | undefined, opts: InsertOptions): Promise<number> {
  // Never while a session page is read: a moved session's new state and its move row show together.
  if (table === "sessions") return sessionsTurns(client).run("insert", () => insertForms(client, table, rows, token, opts));
  return insertForms(client, table, rows, token, opts);
}

async function insertForms(client: ClickHouseClient, table: Table, rows: RowSlice[], token: string | undefined, opts: InsertOptions): Promise<number> {
  const arrays = rows.filter(isArrayRow);
  if (arrays.length === rows.length) return insertForm(client, table, rows, ROW_COLUMNS[table], token, opts);
  if (arrays.length === 0) return insertForm(client, table, rows, undefined, token, opts);
  const objects = rows.filter((r) => !isArrayRow(r));
  const stored = await insertForm(client, table, objects, undefined, token && `${token}-objects`, opts);
  return stored + (await insertForm(client, table, arrays, ROW_COLUMNS[table], token, opts));
}

/** Rows of one form: arrays of `columns`, or (no columns) objects by column name. */
async function insertForm(client: ClickHouseClient, table: Table, rows: RowSlice[], columns: readonly string[] | undefined, token: string | undefined, opts: InsertOptions): Promise<number> {
  try {
    await insertBody(client, table, columns, jsonEachRowBody(rows, opts.bodyBuffer), {
      date_time_input_format: "best_effort",
      ...(token ? { insert_deduplication_token: token, deduplicate_blocks_in_dependent_materialized_views: 1 } : {}),
      ...(opts.async ? { async_insert: 1, wait_for_async_insert: opts.async.wait ? 1 : 0 } : {}),
    });
    return rows.length;
  } catch (err) {
    opts.bodyBuffer?.drop();
    if (!opts.onRejected || !isDataError(err)) throw err;
    if (rows.length === 1) {
      const r = rows[0]!;
      await opts.onRejected(table, utf8.decode(r.buf.subarray(r.start, r.end)), err, columns);
      return 0;
    }
    const half = Math.ceil(rows.length / 2);
    const left = await insertForm(client, table, rows.slice(0, half), columns, token && `${token}-a`, opts);
    const right = await insertForm(client, table, rows.slice(half), columns, token && `${token}-b`, opts);
    return left + right;
  }
}

/** One INSERT of JSON rows (every line ending in "\n"): arrays of `columns`, or objects, through client-web. */
async function insertBody(client: ClickHouseClient, table: Table, columns: readonly string[] | undefined, body: Uint8Array, settings: Record<string, string | number>): Promise<void> {
  if (!SQL_IDENTIFIER.test(table)) throw new Error(`insert: bad table name ${JSON.stringify(table)}`);
  // client-web stringifies each value it is given: one value holding every line is sent as is
  // (clickhouse.ts). The embedded engine takes the bytes without a decode or a copy; they were
  // decoded and encoded again before, ~10 ms of the JS thread per 5 MB flushed.
  const rows = new JsonEachRowBytes(body);
  try {
    if (columns === undefined) await client.insert({ table, values: [rows], format: "JSONEachRow", clickhouse_settings: settings });
    else await client.insert({ table, values: [rows], format: "JSONCompactEachRow", columns: columns.map((c) => `\`${c}\``) as [string, ...string[]], clickhouse_settings: settings });
  } finally {
    release(rows);
  }
}
