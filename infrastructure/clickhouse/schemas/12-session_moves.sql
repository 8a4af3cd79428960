-- Sessions whose start moved earlier, and when: what keeps /v1/sessions paging stable.
--
-- The session list pages newest first on (started_at, session_id) (API.md: "paging is stable
-- while new data arrives"). A late item earlier than a session's first item moves the session's
-- start earlier; a session already listed on one page could then come again on a later one. A
-- next page therefore leaves out each session that, at the time its walk's first page was read,
-- stood at or above the cursor: it was listed already (src/query/session-list.ts). The state a
-- session had back then is no longer in `sessions` once a background merge removed the cancel row
-- and the +1 row it cancelled; this table keeps, for each insert that moved a session's start, the
-- start it moved from.
--
-- Starts only move earlier (an item can only add an earlier first item; a merge keeps the session
-- that started first), so the largest `from_started_at` among a session's moves after a time is
-- its start at that time. Rows are kept a day: a walk through the pages that takes longer may see
-- such a session twice.
CREATE TABLE IF NOT EXISTS analytics_db.session_moves
(
    service_id      LowCardinality(String),
    session_id      String,
    from_started_at DateTime64(3, 'UTC'),
    to_started_at   DateTime64(3, 'UTC'),
    moved_at        DateTime64(3, 'UTC')  -- when the insert that moved it ran (its +1 row's updated_at)
)
ENGINE = MergeTree
ORDER BY (service_id, moved_at, session_id)
TTL toDateTime(moved_at) + INTERVAL 1 DAY
SETTINGS non_replicated_deduplication_window = 10000; -- like every view target (03, 08): a replayed insert is a no-op

-- Over each inserted block of `sessions` (as in 07): a session with a cancel row and a new state
-- whose start is earlier than the cancelled one's. A flush collapses a session's intermediate
-- states, so its rows here are the cancel of the state stored before and its latest state; were a
-- large insert split into blocks, the largest cancelled start is still the one stored before.
-- A session merged into another has a cancel row and no new state: not a move (the other one,
-- which started first, keeps its start).
CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.session_moves_mv TO analytics_db.session_moves AS
SELECT service_id, session_id, from_started_at, to_started_at, moved_at
FROM
(
    SELECT
        service_id,
        any(session_id) AS session_id,
        maxIf(started_at, sign < 0) AS from_started_at,
        minIfOrNull(started_at, sign > 0) AS to_started_at,  -- NULL without a new state: no move
        max(updated_at) AS moved_at
    FROM analytics_db.sessions
    GROUP BY service_id, session_hash  -- a UInt64 groups faster than the id (05); one id per hash here
    HAVING to_started_at < from_started_at
);
