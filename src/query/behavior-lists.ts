// Page and acquisition lists of /v1/behavior/summary. Page views count at their own time; entry,
// exit and referrer lists count sessions that started in the range (sign-weighted, so a session
// whose exit page changed moves with it). Empty paths and direct traffic ('' referrer) are left
// out of the lists. Ties sort by the key so pages are stable.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { itemConditions, sessionConditions } from "./filters.ts";
import type { SessionQuery } from "./session-metrics.ts";
import { type ExecOptions, selectRows, SqlParams, VISITOR_KEY } from "./sql-params.ts";

/** A SessionQuery (its `pathSessions` serves the session lists here) with a list length. */
export interface ListQuery extends SessionQuery {
  limit: number;
  /**
   * A Set table holding the hashes of the sessions that match `filters`, built once for a whole
   * report (src/query/matching-sessions.ts); without it each item list builds that set itself.
   */
  matchingSessions?: string;
}

export interface PageRow {
  path: string;
  views: number;
  visitors: number;
}

export interface PathSessions {
  path: string;
  sessions: number;
}

export interface ReferrerRow {
  referrer_domain: string;
  sessions: number;
}

/** Most viewed paths with their distinct visitors. */
export async function topPages(ch: ClickHouseClient, q: ListQuery, exec: ExecOptions = {}): Promise<PageRow[]> {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const where = [`service_id = ${service}`, `timestamp >= ${p.instant(q.range.start)}`, `timestamp < ${p.instant(q.range.end)}`, ...itemConditions(q.filters, p, service, q.range, q.matchingSessions)];
  return selectRows<PageRow>(
    ch,
    `SELECT path, count() AS views, uniqExact(${VISITOR_KEY}) AS visitors FROM page_views WHERE ${where.join(" AND ")}
     GROUP BY path ORDER BY views DESC, path ASC LIMIT ${p.bind("UInt32", q.limit)}`,
    p,
    exec,
  );
}

/** The session lists of the summary. */
export interface SessionLists {
  entry_pages: PathSessions[];
  exit_pages: PathSessions[];
  top_referrers: ReferrerRow[];
}

// Each list's column, named in the query's rows; from this allow-list, never from input.
const LIST_COLUMNS = ["entry_path", "exit_path", "referrer_domain"] as const;

/**
 * Sessions per entry page (first page view), per exit page (last page view) and per referring
 * domain, most first; '' (no page view, direct traffic) left out. One scan of the sessions groups
 * the three columns as GROUPING SETS and keeps each list's first `limit` rows (LIMIT … BY), instead
 * of three queries scanning and filtering the same sessions (bench/RESULTS.md, 2026-12-01 07:40).
 * `grouping(c)` is 0 in the rows of c's own set (the SQL standard's reading, ClickHouse's default).
 */
export async function sessionLists(ch: ClickHouseClient, q: ListQuery, exec: ExecOptions = {}): Promise<SessionLists> {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const where = [
    `service_id = ${service}`,
    `started_at >= ${p.instant(q.range.start)}`,
    `started_at < ${p.instant(q.range.end)}`,
    ...sessionConditions(q.filters, p, service, q.range.start, q.pathSessions),
  ];
  const rows = await selectRows<{ list: (typeof LIST_COLUMNS)[number]; k: string; n: number }>(
    ch,
    `SELECT list, k, n FROM (
       SELECT multiIf(${LIST_COLUMNS.map((c) => `grouping(${c}) = 0, '${c}'`).join(", ")}, '') AS list,
         multiIf(${LIST_COLUMNS.map((c) => `grouping(${c}) = 0, ${c}`).join(", ")}, '') AS k, sum(sign) AS n
       FROM sessions WHERE ${where.join(" AND ")}
       GROUP BY GROUPING SETS (${LIST_COLUMNS.map((c) => `(${c})`).join(", ")}))
     WHERE k != '' AND n > 0
     ORDER BY list, n DESC, k ASC LIMIT ${p.bind("UInt32", q.limit)} BY list`,
    p,
    exec,
  );
  const of = (list: (typeof LIST_COLUMNS)[number]) => rows.filter((r) => r.list === list);
  return {
    entry_pages: of("entry_path").map((r) => ({ path: r.k, sessions: r.n })),
    exit_pages: of("exit_path").map((r) => ({ path: r.k, sessions: r.n })),
    top_referrers: of("referrer_domain").map((r) => ({ referrer_domain: r.k, sessions: r.n })),
  };
}
