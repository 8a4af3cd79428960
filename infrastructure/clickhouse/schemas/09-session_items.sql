-- Session items (`POST /v1/ingest/session`, batch items of type `session`): one row per accepted
-- item. A session item only shapes its session's row, so until this table no row kept its
-- event_id: after a restart (the in-process dedup window is rebuilt from the item tables) or past
-- the 24-hour window, the same event_id was accepted again instead of dropped as `duplicate`.
-- src/ingest/stored-ids.ts lists it with the other item tables for both look-ups. Nothing else
-- reads it; its TTL is the longest of the item tables' (90 days).
CREATE TABLE IF NOT EXISTS analytics_db.session_items
(
    service_id   LowCardinality(String),
    event_id     UUID,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    session_id   String,
    visitor_id   String,
    user_id      String,
    url          String,
    path         String,
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, toDate(timestamp), timestamp, event_id)
TTL toDateTime(timestamp) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 10000;
