-- Visitors of superseded session states, kept after the states themselves are gone.
--
-- The views count visitors as sets of the visitors of +1 rows (visitors64), and a set cannot
-- forget: when a late item moves a session's start to another bucket (or merges the session into
-- another, or gives it another first visitor id at UTC midnight), the view still holds the
-- visitor in the old bucket. The read side subtracts those (bucket, visitor) pairs that have no
-- live session (src/query/session-metrics.ts). It used to find them through the cancel rows of
-- `sessions`, but a background merge removes a cancel row together with the +1 row it cancels,
-- and the view's set keeps the visitor: after a merge the view path over-counted again.
--
-- This table keeps, for each cancel row written, its state's (started_at, visitor): a
-- ReplacingMergeTree with no sign, so merges only drop duplicates. A cancel row whose session
-- gets a new state with the same start and visitor in the same insert is left out (the common
-- update: one more page view); the new state is live in the same bucket, so that pair can never
-- be over-counted by it. Every row here comes from a cancel row that reached the table, so the
-- state it cancels reached the views before: each pair is one the views' sets hold.
CREATE TABLE IF NOT EXISTS analytics_db.session_cancels
(
    service_id   LowCardinality(String),
    started_at   DateTime64(3, 'UTC'),
    visitor_hash UInt64  -- cityHash64(visitor_id), the key of visitors64
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(started_at)
ORDER BY (service_id, started_at, visitor_hash)
TTL toDateTime(started_at) + INTERVAL 1 YEAR
SETTINGS non_replicated_deduplication_window = 1000; -- like every view target (03): a replayed insert is a no-op

-- The view runs over each inserted block of `sessions` (a subquery over the source table in FROM
-- reads the block, not the table). A flush writes a session's cancel row and its new row in one
-- insert; if a large insert were split into blocks, a cancel row separated from its new row is
-- simply kept: an extra candidate pair is harmless (it is subtracted only when no live session
-- of that visitor starts in its bucket).
CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.session_cancels_mv TO analytics_db.session_cancels AS
SELECT service_id, pair.1 AS started_at, pair.2 AS visitor_hash
FROM
(
    SELECT
        service_id,
        groupArrayIf((started_at, cityHash64(visitor_id)), sign < 0) AS cancels,
        groupArrayIf((started_at, cityHash64(visitor_id)), sign > 0) AS states
    FROM analytics_db.sessions
    GROUP BY service_id, session_id
    HAVING length(cancels) > 0
)
ARRAY JOIN arrayFilter(c -> NOT has(states, c), cancels) AS pair;

-- Inserts that started before the view existed finish before the backfill reads (as in 04).
SELECT sleep(if((SELECT count() FROM analytics_db.sessions WHERE sign < 0) > 0, 3, 0));

-- Backfill: every cancel row present now. Pairs whose cancel row a merge had already removed
-- before this file ran are not recoverable (README, "Sessions").
INSERT INTO analytics_db.session_cancels (service_id, started_at, visitor_hash)
SELECT DISTINCT service_id, started_at, cityHash64(visitor_id)
FROM analytics_db.sessions
WHERE sign < 0;
