// Rows a kill in the middle of an INSERT lost although their deduplication token survived, found
// and written again when the spool segment that INSERT carried is replayed at start.
//
// The embedded engine records a block's dedup token in the table's deduplication log and moves the
// new part's directory into place as separate steps, the log entry first (as its source reads and
// the failure below shows). A process killed
// between the two (it runs in our process: our kill is its kill) leaves the token without the
// part, so the replay of the same segment, with the same token, is dropped as a duplicate and the
// rows are gone from that table, while the table's materialized views, whose own tokens were not
// recorded, take the replayed block (a crash audit saw it once: 16 session rows of one flush
// missing from `sessions`, its items and the session views holding them). Checked here: after the
// oldest leftover segment is inserted (the only one a kill can have caught mid-INSERT: segments
// are flushed oldest first and removed once written), each table is asked for the segment's rows;
// the ones it lacks are inserted again under a fresh token with the table's materialized views
// detached (they hold the block already), and attached again right after. A plain DETACH is undone
// by a restart, so a kill during the repair leaves the views attached, and the next start checks
// again. The engine's dedup log is cleaned of such tokens before it opens (orphan-dedup-entries.ts),
// which makes the replay itself write the lost parts, in views too; this check is the second line,
// for a table whose log that step could not read (README, "What a 202 means").
import type { ClickHouseClient } from "@clickhouse/client-web";
import { type GroupedRows, type RowSlice, rowObject, type Table } from "../ingest/rows.ts";
import { ITEM_TABLES } from "../ingest/stored-ids.ts";
import { type InsertOptions, SQL_IDENTIFIER } from "./insert-rows.ts";

const utf8 = new TextDecoder();

type Row = Record<string, unknown> & { service_id: string };

/** A row by column name (arrays and the objects of earlier versions alike). */
function parse(table: Table, slice: RowSlice): Row {
  return rowObject(table, utf8.decode(slice.buf.subarray(slice.start, slice.end))) as Row;
}

async function select<T>(client: ClickHouseClient, query: string, params: Record<string, unknown>): Promise<T[]> {
  return (await client.query({ query, query_params: params, format: "JSONEachRow" })).json<T>();
}

/** Item rows whose event id the table does not hold. */
async function lostItems(client: ClickHouseClient, table: Table, rows: RowSlice[]): Promise<RowSlice[]> {
  const parsed = rows.map((r) => parse(table, r));
  const found = await select<{ k: string }>(
    client,
    `SELECT concat(service_id, '|', lower(toString(event_id))) AS k FROM ${table}
     WHERE service_id IN {services:Array(String)} AND toDate(timestamp) IN {days:Array(Date)} AND event_id IN {ids:Array(UUID)}`,
    {
      services: [...new Set(parsed.map((r) => r.service_id))],
      days: [...new Set(parsed.map((r) => String(r.timestamp).slice(0, 10)))],
      ids: [...new Set(parsed.map((r) => String(r.event_id)))],
    },
  );
  const have = new Set(found.map((r) => r.k));
  return rows.filter((_, i) => !have.has(`${parsed[i]!.service_id}|${String(parsed[i]!.event_id).toLowerCase()}`));
}

/**
 * `sessions` rows of the parts that did not land. A session's newest +1 row in the segment cannot
 * have been collapsed away yet (its cancel row comes with a later flush), so it is there exactly
 * when its part landed: such a row tells for its whole partition (one part per partition per
 * INSERT), and every row of a partition that lost one is written again. A partition holding only
 * cancel rows cannot be told this way (a merge may have collapsed them with their states): it is
 * left, and reported.
 */
async function lostSessions(client: ClickHouseClient, rows: RowSlice[]): Promise<{ lost: RowSlice[]; unknown: number }> {
  const parsed = rows.map((r) => parse("sessions", r));
  const newest = new Map<string, { row: number; version: number }>();
  parsed.forEach((r, i) => {
    if (r.sign !== 1) return;
    const key = `${r.service_id}|${String(r.session_id)}`;
    const version = Number(r.version);
    if ((newest.get(key)?.version ?? -1) < version) newest.set(key, { row: i, version });
  });
  const found = await select<{ k: string; v: number }>(
    client,
    `SELECT concat(service_id, '|', session_id) AS k, max(version) AS v FROM sessions
     WHERE service_id IN {services:Array(String)} AND session_id IN {ids:Array(String)} AND sign = 1 GROUP BY service_id, session_id`,
    { services: [...new Set(parsed.map((r) => r.service_id))], ids: [...new Set(parsed.map((r) => String(r.session_id)))] },
  );
  const stored = new Map(found.map((r) => [r.k, Number(r.v)]));
  const month = (r: Row) => String(r.started_at).slice(0, 7);
  const lostMonths = new Set<string>();
  const knownMonths = new Set<string>();
  for (const [key, { row, version }] of newest) {
    knownMonths.add(month(parsed[row]!));
    if ((stored.get(key) ?? -1) < version) lostMonths.add(month(parsed[row]!));
  }
  const lost = rows.filter((_, i) => lostMonths.has(month(parsed[i]!)));
  const unknown = parsed.filter((r) => !knownMonths.has(month(r))).length;
  return { lost, unknown };
}

/** Alias rows whose version the table does not hold (newer versions replace older ones). */
async function lostAliases(client: ClickHouseClient, rows: RowSlice[]): Promise<RowSlice[]> {
  const parsed = rows.map((r) => parse("session_aliases", r));
  const found = await select<{ k: string; v: number }>(
    client,
    `SELECT concat(service_id, '|', alias) AS k, max(version) AS v FROM session_aliases
     WHERE service_id IN {services:Array(String)} AND alias IN {aliases:Array(String)} GROUP BY service_id, alias`,
    { services: [...new Set(parsed.map((r) => r.service_id))], aliases: [...new Set(parsed.map((r) => String(r.alias)))] },
  );
  const stored = new Map(found.map((r) => [r.k, Number(r.v)]));
  return rows.filter((_, i) => (stored.get(`${parsed[i]!.service_id}|${String(parsed[i]!.alias)}`) ?? -1) < Number(parsed[i]!.version));
}

/** The materialized views that read `table` (names from system.tables, checked as identifiers). */
async function viewsOf(client: ClickHouseClient, database: string, table: Table): Promise<string[]> {
  const [row] = await select<{ views: string[] }>(client, "SELECT dependencies_table AS views FROM system.tables WHERE database = {db:String} AND name = {table:String}", { db: database, table });
  const views = row?.views ?? [];
  for (const v of views) if (!SQL_IDENTIFIER.test(v)) throw new Error(`replay repair: unexpected view name ${JSON.stringify(v)}`);
  return views;
}

/**
 * Thrown when views could not be attached again after a repair: until they are, an insert into
 * their table would not reach them, so the sink inserts nothing (writers.ts) and retries
 * `attachViews` first. A restart attaches them too (a plain DETACH does not survive one).
 */
export class ViewsLeftDetached extends Error {
  constructor(readonly database: string, readonly views: string[], cause: unknown) {
    super(`materialized views left detached after a replay repair: ${views.join(", ")} (${String((cause as Error)?.message ?? cause)}); no insert until they are attached again`);
    this.name = "ViewsLeftDetached";
  }
}

/** Attaches `views` of `database`; throws ViewsLeftDetached naming those it could not. */
export async function attachViews(client: ClickHouseClient, database: string, views: readonly string[]): Promise<void> {
  const left: string[] = [];
  let error: unknown;
  for (const v of views) {
    if (!SQL_IDENTIFIER.test(v) || !SQL_IDENTIFIER.test(database)) throw new Error(`replay repair: bad name ${JSON.stringify(`${database}.${v}`)}`);
    try {
      await client.command({ query: `ATTACH TABLE ${database}.${v}` });
    } catch (err) {
      // 57 TABLE_ALREADY_EXISTS: attached already (an earlier attempt got through).
      if (String((err as { code?: unknown }).code) === "57") continue;
      left.push(v);
      error = err;
    }
  }
  if (left.length > 0) throw new ViewsLeftDetached(database, left, error);
}

export interface RepairOptions {
  database: string;
  /** Inserts one table's rows (insert-rows.ts `insertTable`), under the given token. */
  insert: (table: Table, rows: RowSlice[], token: string, opts: InsertOptions) => Promise<number>;
  /** The insert options of the flush (quarantine of refused rows). */
  insertOptions: InsertOptions;
  /** A prefix no earlier attempt used, for the repair's dedup tokens. */
  tokenPrefix: string;
}

export interface RepairReport {
  /** Rows written again, per table. */
  repaired: Map<Table, number>;
  /** Session rows whose landing could not be told (cancel rows alone in their month). */
  unknownSessionRows: number;
}

/** Checks every table of an inserted segment and writes again what a table lacks. */
export async function repairLostRows(client: ClickHouseClient, grouped: GroupedRows, opts: RepairOptions): Promise<RepairReport> {
  if (!SQL_IDENTIFIER.test(opts.database)) throw new Error(`replay repair: bad database name ${JSON.stringify(opts.database)}`);
  const report: RepairReport = { repaired: new Map(), unknownSessionRows: 0 };
  for (const [table, rows] of grouped.tables) {
    if (rows.length === 0) continue;
    let lost: RowSlice[];
    if ((ITEM_TABLES as readonly string[]).includes(table)) lost = await lostItems(client, table, rows);
    else if (table === "sessions") {
      const s = await lostSessions(client, rows);
      lost = s.lost;
      report.unknownSessionRows = s.unknown;
    } else if (table === "session_aliases") lost = await lostAliases(client, rows);
    else continue;
    if (lost.length === 0) continue;
    const views = await viewsOf(client, opts.database, table);
    const detached: string[] = [];
    let stored = 0;
    try {
      for (const v of views) {
        await client.command({ query: `DETACH TABLE ${opts.database}.${v}` });
        detached.push(v);
      }
      // Rows ClickHouse refuses as data (set aside by the flush already) are set aside again, not counted.
      stored = await opts.insert(table, lost, `${opts.tokenPrefix}-${table}`, opts.insertOptions);
    } finally {
      await attachViews(client, opts.database, detached);
    }
    if (stored > 0) report.repaired.set(table, stored);
  }
  return report;
}
