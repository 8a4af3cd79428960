// GET /v1/sessions: the current state of each session that started in the range, newest first.
// Row-level reads of a VersionedCollapsingMergeTree: group the rows of a session, keep it when
// sum(sign) > 0 and take each column from its highest version (argMax), which avoids FINAL.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { crc32 } from "node:zlib";
import { encodeCursor, idPrefix, type Keyset, MAX_PAGES, type PageMark, type WalkRef } from "./cursor.ts";
import { type Filters, sessionConditions } from "./filters.ts";
import { newestRows, nextWindow, pageUpperBound } from "./newest-first.ts";
import { selectRows, SqlParams } from "./sql-params.ts";
import { sessionsTurns } from "../storage/sessions-turns.ts";
import type { TimeRange } from "./time-range.ts";

export interface SessionRow {
  session_id: string;
  visitor_id: string;
  user_id: string;
  started_at: string;
  ended_at: string;
  duration_s: number;
  pageviews: number;
  events: number;
  is_bounce: boolean;
  converted: boolean;
  entry_path: string;
  exit_path: string;
  referrer: string;
  utm_source: string;
  utm_medium: string;
  utm_campaign: string;
  device: string;
  browser: string;
  os: string;
  country: string;
}

export interface Page<T> {
  data: T[];
  next_cursor: string | null;
}

// Every field comes from the session's highest version. Aliases get a prefix: a SELECT alias equal
// to a column name would shadow that column in WHERE (ClickHouse substitutes aliases there).
const TEXT_COLUMNS = ["visitor_id", "user_id", "entry_path", "exit_path", "referrer", "utm_source", "utm_medium", "utm_campaign", "device", "browser", "os", "country"] as const;
const NUMBER_COLUMNS = ["pageviews", "events", "is_bounce", "converted"] as const;
const COLUMNS = [...TEXT_COLUMNS, ...NUMBER_COLUMNS].map((c) => `argMax(${c}, version) AS a_${c}`).join(", ");

/** How long a page read waits for an insert into `sessions` to end before it reads anyway. */
const READ_TURN_WAIT_MS = 5_000;

export interface SessionListQuery {
  serviceId: string;
  range: TimeRange;
  filters: Filters;
  limit: number;
  after?: Keyset;
}

type Raw = { sid: string; started: number; ended: number; at: number } & Record<`a_${(typeof TEXT_COLUMNS)[number]}`, string> &
  Record<`a_${(typeof NUMBER_COLUMNS)[number]}`, number>;

/**
 * One page of sessions, newest first by (started_at, session_id); see newest-first.ts for the
 * windows. Its cursor adds this page to the walk's pages: when it was read (the engine's clock as
 * the read that found its rows began, the clock `session_moves.moved_at` comes from) and where it
 * ended, so that later pages leave out what it listed (sessionsBetween).
 */
export async function listSessions(ch: ClickHouseClient, q: SessionListQuery): Promise<Page<SessionRow>> {
  const marks = q.after?.pages && [...(q.after.walk ? await storedPages(ch, q.serviceId, q.after.walk) : []), ...q.after.pages];
  const rows = await newestRows(q.range, q.after, q.limit, (lower, upper) => sessionsBetween(ch, q, marks, lower, upper));
  const page = rows.slice(0, q.limit);
  const last = page[page.length - 1];
  const walk = rows.length > q.limit && last ? await nextWalk(ch, q, rows[0]!.at, last) : undefined;
  return {
    data: page.map((r) => ({
      session_id: r.sid,
      visitor_id: r.a_visitor_id,
      user_id: r.a_user_id,
      started_at: new Date(r.started).toISOString(),
      ended_at: new Date(r.ended).toISOString(),
      // Exact, from millisecond item times (the duration_s column is whole seconds).
      duration_s: (r.ended - r.started) / 1000,
      pageviews: r.a_pageviews,
      events: r.a_events,
      is_bounce: r.a_is_bounce === 1,
      converted: r.a_converted === 1,
      entry_path: r.a_entry_path,
      exit_path: r.a_exit_path,
      referrer: r.a_referrer,
      utm_source: r.a_utm_source,
      utm_medium: r.a_utm_medium,
      utm_campaign: r.a_utm_campaign,
      device: r.a_device,
      browser: r.a_browser,
      os: r.a_os,
      country: r.a_country,
    })),
    next_cursor:
      walk && last
        ? encodeCursor("sessions", { t: last.started, id: last.sid, w: nextWindow(pageUpperBound(q.range.end, q.after), last.started, page.length, q.limit), ...walk })
        : null,
  };
}

/**
 * The walk's pages with this one (read at `readAt`, ending at `last`) added: the newest MAX_PAGES
 * of them for the cursor, the ones it lets go of stored under the walk's id (made at the first).
 */
async function nextWalk(ch: ClickHouseClient, q: SessionListQuery, readAt: number, last: Raw): Promise<{ pages: PageMark[]; walk?: WalkRef }> {
  const before = q.after?.pages ?? [];
  // A clock set back between two pages must not make reads go back in the cursor (they are kept as
  // growing deltas): a later read time only leaves out less.
  const read = Math.max(readAt, before[before.length - 1]?.[0] ?? 0);
  const pages: PageMark[] = [...before, [read, last.started, crc32(last.sid), idPrefix(last.sid)]];
  const over = pages.length - MAX_PAGES;
  if (over <= 0) return { pages, walk: q.after?.walk };
  const walk = q.after?.walk ?? { id: crypto.randomUUID(), stored: 0 };
  await ch.insert({
    table: "session_walk_pages",
    format: "JSONEachRow",
    values: pages.slice(0, over).map(([readMs, end, crc, prefix], i) => ({
      service_id: q.serviceId, walk: walk.id, page: walk.stored + i + 1, read_ms: readMs, end_ms: end, end_crc: crc, end_prefix: prefix,
    })),
  });
  return { pages: pages.slice(over), walk: { id: walk.id, stored: walk.stored + over } };
}

/**
 * The walk's pages older than its cursor's, in order. A page written twice (read again from an
 * older cursor) counts with its latest read and highest end: each only leaves out less. A page
 * missing (its day passed) leaves out nothing on its own.
 */
async function storedPages(ch: ClickHouseClient, serviceId: string, walk: WalkRef): Promise<PageMark[]> {
  const p = new SqlParams();
  const rows = await selectRows<{ r: number; e: number; c: number; x: number }>(ch, `
    SELECT max(read_ms) AS r, max(end_ms) AS e, argMax(end_crc, end_ms) AS c, argMax(end_prefix, end_ms) AS x
    FROM session_walk_pages
    WHERE service_id = ${p.bind("String", serviceId)} AND walk = toUUID(${p.bind("String", walk.id)}) AND page <= ${p.bind("UInt32", walk.stored)}
    GROUP BY page ORDER BY page`, p);
  return rows.map((m) => [Number(m.r), Number(m.e), Number(m.c), Number(m.x)] as const);
}

/**
 * The newest limit + 1 sessions whose current state started in [lower, upper) (and before the
 * cursor), leaving out those the walk's pages (`marks`, oldest first) listed and that moved since.
 */
async function sessionsBetween(ch: ClickHouseClient, q: SessionListQuery, marks: readonly PageMark[] | undefined, lower: number, upper: number): Promise<Raw[]> {
  const p = new SqlParams();
  const service = p.bind("String", q.serviceId);
  const inWindow = `service_id = ${service} AND started_at >= ${p.instant(lower)} AND started_at < ${p.instant(upper)}`;
  // A session's page views never precede its start, so the path semi-join reads from `lower` on.
  const where = [inWindow, ...sessionConditions(q.filters, p, service, lower)];
  // The keyset goes in WHERE: exact for the same reason filters are (a cancel row repeats its
  // state's started_at).
  if (q.after) where.push(`(started_at, session_id) < (${p.instant(q.after.t)}, ${p.bind("String", q.after.id)})`);
  // Listed already, and moved below the cursor since. Page k of the walk listed every session that
  // stood at or above its last row as it was read (the rows above are earlier pages'), and a
  // session that has moved since stood then where its first move after that read started from
  // (starts only move earlier). So a session is left out when one of its moves started from at
  // or above the last row of the last page read before that move. The cursor keeps each last
  // row's start, a CRC-32 of its id and the id's first four bytes, not the id: at the same start,
  // the row itself is told by its CRC, and another session by its first four bytes (bytewise
  // greater: above the row, listed; equal: not told, not left out: a session may be listed twice,
  // never left out). The walk's pages older than the cursor's 64 come from session_walk_pages.
  if (marks && marks.length > 0) {
    // Reads in order, as arrayLastIndex needs (a stored page read again later could break it):
    // a read moved later only leaves out less.
    let latest = 0;
    const reads = marks.map((mark) => (latest = Math.max(latest, mark[0])));
    const column = (i: number) => p.bind("Array(Int64)", i === 0 ? reads : marks.map((mark) => mark[i]));
    where.push(`session_id NOT IN (
      SELECT session_id FROM session_moves
      WHERE service_id = ${service} AND moved_at > ${p.instant(reads[0]!)}
        AND (arrayLastIndex(r -> r < toUnixTimestamp64Milli(moved_at), ${column(0)}) AS page) > 0
        AND (toUnixTimestamp64Milli(from_started_at) AS from_ms) >= (arrayElement(${column(1)}, page) AS end_ms)
        AND (from_ms > end_ms OR CRC32(session_id) = arrayElement(${column(2)}, page)
          OR ((arrayElement(${column(3)}, page) AS end_prefix) >= 0
            AND reinterpretAsUInt32(reverse(substring(concat(session_id, char(0, 0, 0, 0)), 1, 4))) > end_prefix)))`);
  }
  // Two steps: pick the page's sessions with a narrow GROUP BY (id, sign, start only), then read
  // every column of just those; grouping all columns of every session in the window costs far more.
  const sql = `SELECT session_id AS sid, ${COLUMNS},
      toUnixTimestamp64Milli(argMax(started_at, version)) AS started, toUnixTimestamp64Milli(argMax(ended_at, version)) AS ended,
      toUnixTimestamp64Milli(now64(3)) AS at
    FROM sessions
    WHERE ${inWindow}
      AND session_id IN (
        SELECT session_id FROM sessions WHERE ${where.join(" AND ")}
        GROUP BY session_id HAVING sum(sign) > 0
        ORDER BY argMax(started_at, version) DESC, session_id DESC LIMIT ${p.bind("UInt32", q.limit + 1)})
    GROUP BY session_id HAVING sum(sign) > 0
    ORDER BY started DESC, sid DESC`;
  // Never while this process inserts into `sessions` (storage/sessions-turns.ts): `at` must tell
  // whether this read saw a move. An insert still running after READ_TURN_WAIT_MS is let be.
  return sessionsTurns(ch).run("read", () => selectRows<Raw>(ch, sql, p), READ_TURN_WAIT_MS);
}
