// The sessions that match a report's attribute filters (device, country, ...), built once for the
// report's item lists instead of once per list. Each filtered item list (top pages, top events,
// web vitals, top errors) tests its rows against the set of matching sessions' hashes, and
// ClickHouse builds an `IN (subquery)` set anew in every query: on 10M events over 30 days
// (device=mobile, 684k sessions) that set cost ~70 ms of CPU per list, four times per summary.
// Here it is built once into a table of the Set engine (kept in memory, the structure `IN` probes
// directly), the lists read `IN <table>`, and the table is dropped when the report is done.
//
// Only on one ClickHouse (the embedded engine or one server): with CLICKHOUSE_CLUSTER the item
// tables are Distributed and the shards would not see this node's table, so the lists build their
// own sets as before (`sharedSets` is off).
import { randomBytes } from "node:crypto";
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { ListQuery } from "./behavior-lists.ts";
import { matchingSessionsSql } from "./filters.ts";
import { readSettings, SqlParams } from "./sql-params.ts";
import type { ReadOptions } from "./view-choice.ts";

/** Name prefix of the report tables; a table left by a crash is dropped at the next start. */
export const MATCHING_SESSIONS_PREFIX = "matching_sessions_";

/**
 * Runs `use` with `q.matchingSessions` set to a table of the sessions matching `q.filters`, when
 * there are attribute filters and `read.sharedSets` allows it; else with `q` as it is.
 */
export async function withMatchingSessions<T>(ch: ClickHouseClient, q: ListQuery, read: ReadOptions, use: (q: ListQuery) => Promise<T>): Promise<T> {
  const p = new SqlParams();
  const select = matchingSessionsSql(q.filters, p, p.bind("String", q.serviceId), q.range);
  if (!read.sharedSets || select === undefined) return use(q);
  // A name from random bytes only: no request text reaches the identifier.
  const table = `${MATCHING_SESSIONS_PREFIX}${randomBytes(12).toString("hex")}`;
  // persistent = 0: the set is never written to disk (it lives for one report). A user that may
  // not create tables (a read-only user on a server) gets the lists' own sets, as before.
  try {
    await ch.command({ query: `CREATE TABLE ${table} (h UInt64) ENGINE = Set SETTINGS persistent = 0` });
  } catch {
    return use(q);
  }
  try {
    await ch.command({ query: `INSERT INTO ${table} ${select}\n${readSettings(read)}`, query_params: p.values });
    return await use({ ...q, matchingSessions: table });
  } finally {
    await ch.command({ query: `DROP TABLE IF EXISTS ${table} SYNC` }).catch(() => undefined);
  }
}

/**
 * Drops report tables older than `olderThanS` seconds: left by a process that stopped mid-report
 * (the tables hold no data after a restart: not persistent). Younger ones may be another
 * instance's report in progress. Returns how many were dropped.
 */
export async function dropStaleMatchingSessions(ch: ClickHouseClient, olderThanS = 600): Promise<number> {
  const result = await ch.query({
    query: `SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'Set' AND startsWith(name, {prefix:String})
            AND metadata_modification_time < now() - {age:UInt32}`,
    query_params: { prefix: MATCHING_SESSIONS_PREFIX, age: olderThanS },
    format: "JSONEachRow",
  });
  const names = (await result.json<{ name: string }>()).map((r) => r.name).filter((n) => LEFTOVER.test(n));
  for (const name of names) await ch.command({ query: `DROP TABLE IF EXISTS ${name} SYNC` });
  return names.length;
}

// What withMatchingSessions names its tables; a name is dropped only when it has this exact shape.
const LEFTOVER = new RegExp(`^${MATCHING_SESSIONS_PREFIX}[0-9a-f]{24}$`);
