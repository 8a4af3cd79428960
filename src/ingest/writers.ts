// The two places accepted rows can go before the 202:
// - the durable spool (default): on local disk with group commit; the batcher flushes it later;
// - ClickHouse directly (ACK_MODE=insert, for deployments without a local disk): async insert,
//   acknowledged once ClickHouse took it (and flushed it, with CLICKHOUSE_WAIT_FOR_ASYNC_INSERT).
import type { ClickHouseClient } from "@clickhouse/client-web";
import { appendFile, mkdir } from "node:fs/promises";
import { join } from "node:path";
import type { Logger } from "../logger.ts";
import { ApiError } from "../errors.ts";
import type { Metrics } from "../ops/metrics.ts";
import type { Sink } from "../spool/batcher.ts";
import { SpoolFullError, SpoolWriteError, type Spool } from "../spool/spool.ts";
import { insertRecords, insertRows, insertTable, type Touched } from "../storage/insert-rows.ts";
import { attachViews, repairLostRows, ViewsLeftDetached } from "../storage/replay-repair.ts";
import type { RowWriter } from "./ingestor.ts";
import { groupRowsInSlices, TABLES } from "./rows.ts";
import { ScratchBuffer } from "../scratch-buffer.ts";

const RETRY_AFTER_SECONDS = 5;

function unavailable(message: string): ApiError {
  return new ApiError("unavailable", message, { retryAfterSeconds: RETRY_AFTER_SECONDS });
}

/** Rows go to the spool; a full spool answers 503 before any state changes. */
export function spoolWriter(spool: Spool, capBytes: number): RowWriter {
  return {
    assertRoom(bytes) {
      if (spool.bytes() + bytes > capBytes) throw unavailable("The ingest buffer is full while ClickHouse catches up; retry later");
    },
    async write(lines) {
      try {
        // One spool record per request: a crash can never keep half of it (say, a session's
        // cancel row without its new state). JSON lines hold no raw newline, so "\n" splits them.
        await spool.append([lines.join("\n")]);
      } catch (err) {
        if (err instanceof SpoolFullError) throw unavailable("The ingest buffer is full while ClickHouse catches up; retry later");
        // The disk refused the bytes (full, read-only, failing): nothing was acknowledged.
        if (err instanceof SpoolWriteError) throw unavailable("The ingest buffer cannot write to its disk; retry later");
        throw err;
      }
    },
  };
}

/** Rows go straight to ClickHouse (async insert); an insert failure answers 503. */
export function directWriter(client: ClickHouseClient, wait: boolean, onTouched: (t: Touched) => void): RowWriter {
  return {
    assertRoom() {},
    async write(lines) {
      try {
        await insertRecords(client, lines, { async: { wait }, afterTable: (_table, touched) => onTouched(touched) });
      } catch {
        throw unavailable("ClickHouse did not take the rows; retry later");
      }
    },
  };
}

/**
 * The oldest segment a previous process left in the spool (embedded engine only): the one a kill
 * can have caught in the middle of its INSERT. After it is inserted, each table is checked for its
 * rows (storage/replay-repair.ts).
 */
export interface LeftoverRepair {
  segmentSeq: number;
  database: string;
}

export interface SpoolSinkOptions {
  client: ClickHouseClient;
  metrics: Metrics;
  /** Told what each table's insert touched (service, days): cached answers to invalidate. */
  onTouched: (t: Touched) => void;
  /** Where rows ClickHouse refuses as data are set aside. */
  quarantineDir: string;
  /** Logs the set-aside rows and the leftover segment's repair. */
  logger: Logger;
  repair?: LeftoverRepair;
  /** Makes what the inserts wrote durable before the segment may go (embedded engine: storage/embedded/sync-fs.ts). */
  durable?: () => Promise<void>;
}

/**
 * The batcher's sink: one spool segment into ClickHouse, deduplicated by the segment's token.
 * Rows ClickHouse refuses as data (validation should make this impossible) are written to
 * `quarantineDir` with the error, logged and counted, so one bad row cannot stall every flush.
 */
export function spoolSink({ client, metrics, onTouched, quarantineDir, logger, repair, durable }: SpoolSinkOptions): Sink {
  let detachedViews: ViewsLeftDetached | undefined;
  // Every table's count exists from the start at 0, so an alert on it needs no absent().
  for (const table of TABLES) metrics.quarantinedRows.inc({ table }, 0);
  // The flush's insert bodies, built one at a time (insert-rows.ts, InsertOptions.bodyBuffer).
  const bodyBuffer = new ScratchBuffer(64 * 1024 * 1024);
  return async ({ segment, records, token }) => {
    if (detachedViews) {
      // A repair could not attach its views again: inserting now would leave them without rows.
      await attachViews(client, detachedViews.database, detachedViews.views);
      detachedViews = undefined;
    }
    const started = performance.now();
    const onRejected = async (table: string, json: string, error: unknown, columns: readonly string[] | undefined) => {
      await mkdir(quarantineDir, { recursive: true });
      // An array row's values are those of `columns`, in order (ingest/rows.ts ROW_COLUMNS).
      const line = JSON.stringify({ table, row: json, ...(columns ? { columns } : {}), error: String((error as Error)?.message ?? error).slice(0, 2000) });
      await appendFile(join(quarantineDir, `${token}.jsonl`), `${line}\n`);
      metrics.quarantinedRows.inc({ table });
      logger.error("row refused by ClickHouse set aside", { table, token, file: join(quarantineDir, `${token}.jsonl`) });
    };
    try {
      // The segment's bytes are grouped per table as they are (no decoding), in slices so that
      // requests are served meanwhile; see groupRows.
      const grouped = await groupRowsInSlices(records, { collapse: true });
      // Cached answers are invalidated after each table's insert, not once after the last: the
      // events of a flush are readable while its sessions are still being inserted, and a cached
      // summary stayed stale for that long (a HIT one count behind /v1/events, response audit).
      const { rows } = await insertRows(client, grouped, { token, onRejected, bodyBuffer, afterTable: (_table, touched) => onTouched(touched) });
      if (repair && segment.seq === repair.segmentSeq) {
        const report = await repairLostRows(client, grouped, {
          database: repair.database,
          insert: (table, slices, repairToken, opts) => insertTable(client, table, slices, repairToken, opts),
          insertOptions: { onRejected, bodyBuffer },
          tokenPrefix: `${token}-repair-${Date.now().toString(36)}`,
        }).catch((err: unknown) => {
          if (err instanceof ViewsLeftDetached) detachedViews = err;
          throw err;
        });
        if (report.repaired.size > 0) {
          onTouched(grouped.touched);
          logger.warn("rows a kill kept from their table written again (their dedup token had survived)", { token, ...Object.fromEntries(report.repaired) });
        }
        if (report.unknownSessionRows > 0) logger.info("leftover segment: cancel rows whose landing cannot be checked", { token, rows: report.unknownSessionRows });
      }
      // Resolving tells the batcher it may delete the segment: the engine's parts must be on disk first.
      await durable?.();
      for (const [table, n] of rows) metrics.flushRows.inc({ table }, n);
      metrics.flushDuration.observe((performance.now() - started) / 1000);
    } catch (err) {
      metrics.insertErrors.inc();
      throw err;
    }
  };
}
