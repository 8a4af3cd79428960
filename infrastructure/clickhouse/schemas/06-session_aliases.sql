-- Sessions merged by a late item. Items of one visitor belong to one session until 30 minutes
-- pass between item times (API.md), so an item that arrives late and lands within 30 minutes of
-- two of the visitor's sessions makes them one: the session that started first keeps its id and
-- absorbs the other (its session rows are cancelled). Items already stored keep the absorbed
-- session's id; this table maps such an id (alias) to the session its items belong to now
-- (canonical). A later merge of the canonical session into another rewrites every alias that
-- pointed to it, with a higher version: read `argMax(canonical, version)` per alias.
-- Written through the spool in the same record as the session rows of the merge.
CREATE TABLE IF NOT EXISTS analytics_db.session_aliases
(
    service_id  LowCardinality(String),
    alias       String,
    canonical   String,
    version     UInt32,
    started_at  DateTime64(3, 'UTC'),  -- the canonical session's start (TTL as sessions)
    inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (service_id, alias)
TTL toDateTime(started_at) + INTERVAL 1 YEAR
SETTINGS non_replicated_deduplication_window = 1000;
