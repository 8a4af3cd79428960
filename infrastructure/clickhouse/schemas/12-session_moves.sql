-- Sessions whose start moved earlier, and when: what keeps /v1/sessions paging stable.
--
-- The session list pages newest first on (started_at, session_id) (API.md: "paging is stable
-- while new data arrives"). A late item earlier than a session's first item moves the session's
-- start earlier, so a session listed on one page could come again on a later one. A page k lists
-- a session when, as page k is read, the session stands between page k-1's last row and its own;
-- so a session was listed by an earlier page exactly when, for some earlier page k, it stood at or
-- above page k's last row as page k was read. A session that has moved since stood then where its
-- first move after that read started from. A session cursor carries each page's read time and last
-- start (src/query/session-list.ts), and this table keeps each move's start and time: the state a
-- move replaced is no longer in `sessions` once a background merge removed the cancel row and the
-- +1 row it cancelled.
--
-- Starts only move earlier (an item can only add an earlier first item; a merge keeps the session
-- that started first). Rows are kept a day: a walk through the pages that takes longer may see a
-- moved session twice.
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
-- states, so its rows here are the cancel of the state stored before and its latest state. Were a
-- large insert split into blocks with a session's cancel row in one and its new state in another,
-- that move would be missed, and the session could be listed twice in a walk.
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
