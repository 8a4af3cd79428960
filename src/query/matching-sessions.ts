// Sets of sessions that a report's filters select, built once for all of the report's questions
// instead of once per question. ClickHouse builds an `IN (subquery)` set anew in every query
// (also in every branch of one `UNION ALL` query), and the composite reports ask many questions:
// - attribute filters (device, country, ...): the four item lists of /v1/behavior/summary (top
//   pages, top events, web vitals, top errors) test their rows against the hashes of the matching
//   sessions (filters.ts, itemConditions); 10M events, 30 days, device=mobile: 684k sessions,
//   ~70 ms of CPU per list;
// - a path filter: every session-level question of /v1/sessions/stats (5) and of the summary (4)
//   keeps the sessions with a page view of the path (filters.ts, sessionConditions); path `/`
//   over 30 days: 841k sessions, ~160 ms per question.
// Here such a set is built once into a table of the Set engine (kept in memory, the structure
// `IN` probes directly), the questions read `IN <table>`, and the table is dropped when the report
// is done.
//
// Only with the embedded engine (sharedSetsFor): a Set table lives in the memory of the server that
// created it, and behind a server URL may stand a cluster (Distributed tables whose shards would
// not see it) or replicas behind one address (a replicated CREATE, but the INSERT fills one of
// them); the service cannot tell those from a single server, and the migrate step's cluster name
// is not the service's to know. There each question builds its own set as before; likewise when
// the table cannot be created.
import { randomBytes } from "node:crypto";
import type { ClickHouseClient } from "@clickhouse/client-web";
import { type Filters, matchingSessionsSql, sessionsOnPathSql } from "./filters.ts";
import { readSettings, selectRows, SqlParams } from "./sql-params.ts";
import type { ReadOptions } from "./view-choice.ts";

/** Name prefix of the report tables; a table left by a crash is dropped at the next start. */
export const MATCHING_SESSIONS_PREFIX = "matching_sessions_";

/** Whether reports build their sets once, as tables: only on the embedded engine (see the top). */
export function sharedSetsFor(clickhouse: { url: string | undefined }): boolean {
  return clickhouse.url === undefined;
}

interface Scope {
  serviceId: string;
  range: { start: number; end: number };
  filters: Filters;
}

/**
 * Runs `use` with the name of a table holding the hashes of the sessions that match `q.filters`'
 * attributes and can own an item of `q.range` (what itemConditions tests items against), or with
 * undefined when there are no attribute filters or `read.sharedSets` is off.
 */
export function withMatchingSessions<T>(ch: ClickHouseClient, q: Scope, read: ReadOptions, use: (table: string | undefined) => Promise<T>): Promise<T> {
  const p = new SqlParams();
  return withSetTable(ch, read, matchingSessionsSql(q.filters, p, p.bind("String", q.serviceId), q.range), p, use);
}

/**
 * Runs `use` with the name of a table holding the hashes of the sessions with a page view of
 * `q.filters.path` at or after `since` (what sessionConditions keeps; `since` at or before every
 * range the table serves), or with undefined when there is no path filter or `read.sharedSets` is off.
 */
export function withPathSessions<T>(ch: ClickHouseClient, q: Scope, since: number, read: ReadOptions, use: (table: string | undefined) => Promise<T>): Promise<T> {
  const p = new SqlParams();
  return withSetTable(ch, read, sessionsOnPathSql(q.filters, p, p.bind("String", q.serviceId), since), p, use);
}

async function withSetTable<T>(ch: ClickHouseClient, read: ReadOptions, select: string | undefined, p: SqlParams, use: (table: string | undefined) => Promise<T>): Promise<T> {
  if (!read.sharedSets || select === undefined) return use(undefined);
  // A name from random bytes only: no request text reaches the identifier.
  const table = `${MATCHING_SESSIONS_PREFIX}${randomBytes(12).toString("hex")}`;
  // persistent = 0: the set is never written to disk (it lives for one report). When the table
  // cannot be made (the engine's disk full, say), the questions build their own sets, as before.
  try {
    await ch.command({ query: `CREATE TABLE ${table} (h UInt64) ENGINE = Set SETTINGS persistent = 0` });
  } catch {
    return use(undefined);
  }
  try {
    await ch.command({ query: `INSERT INTO ${table} ${select}\n${readSettings(read)}`, query_params: p.values });
    return await use(table);
  } finally {
    await dropSetTable(ch, table);
  }
}

/** How long (ms) before a failed DROP of a report's table is tried again, once (tests shorten it). */
export const DROP_RETRY = { ms: 5_000 };

// The report's answer does not wait for a second try: a table whose DROP failed (the engine busy
// past the client's timeout) is dropped a few seconds later, else at the next start. Each holds
// its set in memory until then.
async function dropSetTable(ch: ClickHouseClient, table: string): Promise<void> {
  const drop = () => ch.command({ query: `DROP TABLE IF EXISTS ${table} SYNC` });
  await drop().catch(() => {
    setTimeout(() => void drop().catch(() => undefined), DROP_RETRY.ms).unref();
  });
}

/**
 * Drops the report tables of the client's database: at start, before any report, they can only
 * be left by a process killed mid-report (they hold no data after a restart: not persistent), and
 * the embedded engine's data is this process's alone. Returns how many were dropped.
 */
export async function dropLeftoverSetTables(ch: ClickHouseClient): Promise<number> {
  const p = new SqlParams();
  const tables = await selectRows<{ name: string }>(
    ch,
    `SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'Set' AND startsWith(name, ${p.bind("String", MATCHING_SESSIONS_PREFIX)})`,
    p,
  );
  const names = tables.map((r) => r.name).filter((n) => LEFTOVER.test(n));
  for (const name of names) await ch.command({ query: `DROP TABLE IF EXISTS ${name} SYNC` });
  return names.length;
}

// What withSetTable names its tables; a name is dropped only when it has this exact shape.
const LEFTOVER = new RegExp(`^${MATCHING_SESSIONS_PREFIX}[0-9a-f]{24}$`);
