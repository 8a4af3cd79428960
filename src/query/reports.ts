// The two composite answers: /v1/sessions/stats and /v1/behavior/summary. Each question is its own
// function (one query); these run them side by side and assemble the contract's shape.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { type ListQuery, sessionLists, topPages } from "./behavior-lists.ts";
import { withMatchingSessions, withPathSessions } from "./matching-sessions.ts";
import { sessionDistributions, utmStats } from "./session-breakdowns.ts";
import { type SessionQuery, sessionTotals, sessionTotalsAndSeries } from "./session-metrics.ts";
import { previousRange, type Interval } from "./time-range.ts";
import { topErrors } from "./top-errors.ts";
import { topEvents } from "./top-events.ts";
import type { ReadOptions } from "./view-choice.ts";
import { webVitals } from "./web-vitals.ts";

/**
 * Each report runs its questions at once, one thread per query: the engine's lanes run several
 * queries in parallel, which keeps the cores busy, and one-thread queries do not pay for merging
 * per-thread exact visitor sets (10M events, 30-day summary: 0.70-0.85 s → 0.53-0.76 s; see
 * ExecOptions). Callers may still choose (`threads` in `read`).
 */
function sideBySide(read: ReadOptions): ReadOptions {
  return read.threads === undefined ? { ...read, threads: 1 } : read;
}

/** GET /v1/sessions/stats. */
export async function sessionStatsReport(ch: ClickHouseClient, q: SessionQuery, interval: Interval, read: ReadOptions) {
  const r = sideBySide(read);
  const previous = previousRange(q.range);
  // With a path filter, the sessions on that path are found once for all five questions, from
  // the earlier of the two ranges' starts (src/query/matching-sessions.ts).
  return withPathSessions(ch, q, Math.min(q.range.start, previous.start), r, async (pathSessions) => {
    const sq = { ...q, pathSessions };
    const [{ totals, series }, previousTotals, utm, distributions] = await Promise.all([
      sessionTotalsAndSeries(ch, sq, interval, r),
      sessionTotals(ch, { ...sq, range: previous }, r),
      utmStats(ch, sq, r),
      sessionDistributions(ch, sq, r),
    ]);
    return { totals, previous: previousTotals, series, distributions, utm };
  });
}

/** GET /v1/behavior/summary. */
export async function behaviorSummary(ch: ClickHouseClient, q: ListQuery, read: ReadOptions) {
  // Longest first (measured on 10M events: pages, events, totals, vitals, errors; the session
  // lists are one ~50 ms query): the engine runs a few queries at a time, and a long one started last
  // would finish alone on an otherwise idle engine. With attribute filters the item lists share
  // one set of the matching sessions, with a path filter the session questions share one set of
  // the sessions on that path (src/query/matching-sessions.ts); each side waits only for its own.
  const r = sideBySide(read);
  const items = withMatchingSessions(ch, q, r, (matchingSessions) => {
    const iq = { ...q, matchingSessions };
    return Promise.all([topPages(ch, iq, r), topEvents(ch, iq, r), webVitals(ch, iq, r), topErrors(ch, iq, r)]);
  });
  const sessionSide = withPathSessions(ch, q, q.range.start, r, (pathSessions) => {
    const sq = { ...q, pathSessions };
    return Promise.all([sessionTotals(ch, sq, r), sessionLists(ch, sq, r)]);
  });
  const [[top_pages, top_events, web_vitals, top_errors], [sessions, { entry_pages, exit_pages, top_referrers }]] = await Promise.all([items, sessionSide]);
  return { sessions, top_pages, entry_pages, exit_pages, top_events, top_referrers, web_vitals, top_errors };
}
