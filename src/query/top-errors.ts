// Top client errors of /v1/behavior/summary, grouped by fingerprint; the message shown is the
// latest one sent for it.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { ListQuery } from "./behavior-lists.ts";
import { itemConditions, itemSessionHash } from "./filters.ts";
import { type ExecOptions, selectRows, SqlParams } from "./sql-params.ts";

export interface ErrorRow {
  fingerprint: string;
  message: string;
  count: number;
  sessions: number;
  last_seen: string;
}

/**
 * Errors by fingerprint: occurrences, distinct sessions, last time seen; most frequent first.
 * Sessions are counted by their 64-bit hash, as every other report counts them (README, "Exact
 * counts and hashes"): 94 against 111 ms with the ids' text (30 days, 85,584 errors, one thread;
 * bench/RESULTS.md, 2026-12-02). The message's argMax over (time, message) is most of the rest
 * (55 ms; 17 over time alone), which no single aggregation with the same tie rule undercuts.
 */
export async function topErrors(ch: ClickHouseClient, q: ListQuery, exec: ExecOptions = {}): Promise<ErrorRow[]> {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const where = [`service_id = ${service}`, `timestamp >= ${p.instant(q.range.start)}`, `timestamp < ${p.instant(q.range.end)}`, ...itemConditions(q.filters, p, service, q.range, q.matchingSessions)];
  const rows = await selectRows<{ fingerprint: string; msg: string; n: number; s: number; last: number }>(
    ch,
    `SELECT fingerprint, argMax(message, (timestamp, message)) AS msg, count() AS n, uniqExact(${itemSessionHash(service)}) AS s,
       toUnixTimestamp64Milli(max(timestamp)) AS last
     FROM errors WHERE ${where.join(" AND ")}
     GROUP BY fingerprint ORDER BY n DESC, fingerprint ASC LIMIT ${p.bind("UInt32", q.limit)}`,
    p,
    exec,
  );
  return rows.map((r) => ({ fingerprint: r.fingerprint, message: r.msg, count: r.n, sessions: r.s, last_seen: new Date(r.last).toISOString() }));
}
