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

// `column` comes from the allow-list below, never from input.
const SESSION_KEYS = { entry: "entry_path", exit: "exit_path", referrer: "referrer_domain" } as const;

async function sessionsBy(ch: ClickHouseClient, q: ListQuery, key: keyof typeof SESSION_KEYS, exec: ExecOptions): Promise<Array<{ k: string; n: number }>> {
  const column = SESSION_KEYS[key];
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const where = [
    `service_id = ${service}`,
    `started_at >= ${p.instant(q.range.start)}`,
    `started_at < ${p.instant(q.range.end)}`,
    `${column} != ''`,
    ...sessionConditions(q.filters, p, service, q.range.start, q.pathSessions),
  ];
  return selectRows(
    ch,
    `SELECT ${column} AS k, sum(sign) AS n FROM sessions WHERE ${where.join(" AND ")}
     GROUP BY k HAVING n > 0 ORDER BY n DESC, k ASC LIMIT ${p.bind("UInt32", q.limit)}`,
    p,
    exec,
  );
}

/** Sessions per entry page (first page view). */
export async function entryPages(ch: ClickHouseClient, q: ListQuery, exec: ExecOptions = {}): Promise<PathSessions[]> {
  return (await sessionsBy(ch, q, "entry", exec)).map((r) => ({ path: r.k, sessions: r.n }));
}

/** Sessions per exit page (last page view). */
export async function exitPages(ch: ClickHouseClient, q: ListQuery, exec: ExecOptions = {}): Promise<PathSessions[]> {
  return (await sessionsBy(ch, q, "exit", exec)).map((r) => ({ path: r.k, sessions: r.n }));
}

/** Sessions per referring domain; direct traffic is left out. */
export async function topReferrers(ch: ClickHouseClient, q: ListQuery, exec: ExecOptions = {}): Promise<ReferrerRow[]> {
  return (await sessionsBy(ch, q, "referrer", exec)).map((r) => ({ referrer_domain: r.k, sessions: r.n }));
}
