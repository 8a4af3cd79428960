// Request filters as SQL conditions. Decision on `path` (API.md leaves it open):
// - session-level numbers (totals, series, distributions, campaigns, entry/exit pages, referrers,
//   the session list) count the sessions that have a page view of that path;
// - item-level lists (pages, events, vitals, errors, funnel steps) keep the items that happened on
//   that path (each item's own `path`).
// Session attributes (country, device, browser, os, utm_*, referrer_domain) filter sessions; item
// lists keep the items of sessions that match them.
import { normaliseFilterPath } from "../ingest/enrich/url-parts.ts";
import type { SqlParams } from "./sql-params.ts";

export const SESSION_ATTRIBUTES = ["country", "device", "browser", "os", "utm_source", "utm_medium", "utm_campaign", "referrer_domain"] as const;
export type SessionAttribute = (typeof SESSION_ATTRIBUTES)[number];
export type Filters = Partial<Record<SessionAttribute | "path", string>>;

/**
 * The filters present in validated query input; `path` written as ingest stores paths, and
 * `country` in capitals as ingest stores codes (ISO 3166-1 alpha-2): `country=us` finds `US`
 * (it matched nothing, silently: an audit).
 */
export function pickFilters(q: Filters): Filters {
  const out: Filters = {};
  for (const key of SESSION_ATTRIBUTES) if (q[key] !== undefined) out[key] = q[key];
  if (out.country !== undefined) out.country = out.country.toUpperCase();
  if (q.path !== undefined) out.path = normaliseFilterPath(q.path);
  return out;
}

export function hasAttributeFilter(f: Filters): boolean {
  return SESSION_ATTRIBUTES.some((k) => f[k] !== undefined);
}

export function hasAnyFilter(f: Filters): boolean {
  return hasAttributeFilter(f) || f.path !== undefined;
}

// Attribute predicates go in WHERE over `sessions` rows. That stays exact under the sign rule:
// a cancel row repeats its state's attributes, so sum(sign) over the matching rows counts the
// sessions whose current state matches.
function attributeConditions(f: Filters, p: SqlParams): string[] {
  return SESSION_ATTRIBUTES.filter((k) => f[k] !== undefined).map((k) => `${k} = ${p.bind("String", f[k])}`);
}

/**
 * The session an item row belongs to, as SQL: its `session_id`, or, when a late item merged that
 * session into another (README "Sessions"; schemas/06-session_aliases.sql), the session it went
 * into. Every query that reads the session of an item goes through this, never the bare column.
 * The service's aliases are read once per query (a scalar subquery, evaluated once however often
 * it appears) into two arrays; `transform` maps an id found in the first to the second.
 */
export function itemSession(serviceParam: string): string {
  return mapThroughAliases("session_id", serviceParam, (id) => id);
}

/** The session the id `idSql` (SQL: a bound parameter) stands for now: itself, or the session a merge put it into. */
export function canonicalSession(idSql: string, serviceParam: string): string {
  return mapThroughAliases(idSql, serviceParam, (id) => id);
}

/** `column` mapped from each alias (as `key` of it) to its canonical session (as `key` of that). */
function mapThroughAliases(column: string, serviceParam: string, key: (id: string) => string): string {
  const aliases = `(SELECT (groupArray(${key("alias")}), groupArray(${key("canonical")})) FROM (SELECT alias, argMax(canonical, version) AS canonical FROM session_aliases WHERE service_id = ${serviceParam} GROUP BY alias))`;
  return `transform(${column}, tupleElement(${aliases}, 1), tupleElement(${aliases}, 2), ${column})`;
}

/**
 * itemSession as a hash: the item's stored `session_hash` (cityHash64(session_id),
 * schemas/05-hash_columns.sql), or the hash of the session it was merged into. The alias lists
 * are hashed once per query, so the per-row work stays a read of the 8-byte column.
 */
export function itemSessionHash(serviceParam: string): string {
  return mapThroughAliases("session_hash", serviceParam, (id) => `cityHash64(${id})`);
}

/**
 * Conditions over `sessions` rows of sessions started at or after `rangeStart`. The path
 * semi-join reads page views from `rangeStart` on: a session's page views never precede its start.
 * `pathSessions` names a Set table of those sessions that a report built once for all its
 * questions (src/query/matching-sessions.ts), from page views since a time at or before
 * `rangeStart`: the extra sessions it may hold started before the range and so match no row here.
 *
 * Sessions are matched by `session_hash` (cityHash64 of the id, stored in every table), as item
 * lists match them (itemConditions): a set of 64-bit keys builds in half the time of one of ids
 * and is probed a third faster (path `/`, 30 days, 841k sessions: 55 against 105 ms to build, 62
 * against 96 ms per question; bench/RESULTS.md, 2026-11-30 20:05). A session without a page view
 * of the path could slip in only when its id's hash equals one that has: below N²/2^65 with N
 * sessions (README, "Exact counts and hashes").
 */
export function sessionConditions(f: Filters, p: SqlParams, serviceParam: string, rangeStart: number, pathSessions?: string): string[] {
  const out = attributeConditions(f, p);
  const sessions = pathSessions ?? sessionsOnPathSql(f, p, serviceParam, rangeStart);
  if (sessions !== undefined) out.push(`session_hash IN ${pathSessions ?? `(${sessions})`}`);
  return out;
}

/**
 * The hashes of the sessions with a page view of the filter's path at or after `since` (a merged
 * session's page views count for the one it went into), as a SELECT of one UInt64 column;
 * undefined without a path filter.
 */
export function sessionsOnPathSql(f: Filters, p: SqlParams, serviceParam: string, since: number): string | undefined {
  if (f.path === undefined) return undefined;
  return `SELECT ${itemSessionHash(serviceParam)} AS h FROM page_views WHERE service_id = ${serviceParam} AND timestamp >= ${p.instant(since)} AND path = ${p.bind("String", f.path)}`;
}

/**
 * Conditions over item rows (page_views, events, errors, web_vitals, funnel_events) with time
 * before `rangeEnd`: the item's own path, and membership in a session whose current state matches
 * the attributes (any session started before the range end: an item's session started before it).
 *
 * Membership is tested on cityHash64(session_id) (UInt64), stored in every item table and in
 * sessions as the column `session_hash` (schemas/05-hash_columns.sql; reading it instead of
 * hashing the ids took a filtered 30-day list ~0.8x the time): the set of matching sessions is built
 * per list, and a set of 64-bit keys builds and probes several times faster than one of strings
 * (10M events, 30 days, device=mobile: 684k sessions; each list 1.5-2.6 s → 0.2-0.5 s). An item
 * of a non-matching session could only slip in when its session id's hash equals a matching
 * one's: with N sessions in the range that chance is below N²/2^65 (10^-7 for 1.7M sessions).
 * README, "Exact counts and hashes". The item's side goes through itemSessionHash, so an item of a
 * session merged into another counts as the other's.
 *
 * The sessions are grouped by the hash too (a UInt64 key groups ~25% faster than the String).
 * That changes no answer: each session's matching rows sum to 1 (its current state matches) or 0,
 * so a hash's sum is positive exactly when one of its sessions matches: the same set of hashes
 * that grouping by session_id gives.
 */
export function itemConditions(f: Filters, p: SqlParams, serviceParam: string, range: { start: number; end: number }, matchingSessions?: string): string[] {
  const out: string[] = [];
  if (f.path !== undefined) out.push(`path = ${p.bind("String", f.path)}`);
  const sessions = matchingSessionsSql(f, p, serviceParam, range);
  if (sessions !== undefined) out.push(`${itemSessionHash(serviceParam)} IN ${matchingSessions ?? `(${sessions})`}`);
  return out;
}

/**
 * The hashes of the sessions whose current state matches the attribute filters and that can own
 * an item of `range`, as a SELECT of one UInt64 column; undefined without attribute filters.
 * itemConditions tests items against it; a report with several item lists builds it once
 * (src/query/matching-sessions.ts).
 */
export function matchingSessionsSql(f: Filters, p: SqlParams, serviceParam: string, range: { start: number; end: number }): string | undefined {
  const attrs = attributeConditions(f, p);
  if (attrs.length === 0) return undefined;
  // Only sessions that can own an item of the range: started before its end, and (ended_at is
  // the last item's time) ended after its start. A state's cancel row repeats its ended_at, so
  // the ended_at bound keeps or drops both rows of a pair and sum(sign) stays exact.
  return `SELECT session_hash AS h FROM sessions WHERE service_id = ${serviceParam} AND started_at < ${p.instant(range.end)} AND ended_at >= ${p.instant(range.start)} AND ${attrs.join(" AND ")} GROUP BY h HAVING sum(sign) > 0`;
}
