-- Raw tables. Every row carries service_id (the tenant); every query filters on it first, so it
-- leads every ORDER BY. Partitions are monthly: TTL drops whole parts cheaply and a month holds
-- enough rows per service to keep parts large. Each table sets non_replicated_deduplication_window
-- so a replayed spool flush (same insert_deduplication_token) is a no-op.

-- One row per state of a session (VersionedCollapsingMergeTree): every update writes a cancel row
-- (sign = -1) for the previous state and a row for the new one (sign = +1, version + 1).
-- Sign-weighted sums over this table (and the views fed by it) are exact at any moment.
-- ORDER BY: lists and stats read one service over a time range; session_id makes the collapsing key.
CREATE TABLE IF NOT EXISTS analytics_db.sessions
(
    service_id      LowCardinality(String),
    session_id      String,
    visitor_id      String,
    user_id         String,
    started_at      DateTime64(3, 'UTC'),
    ended_at        DateTime64(3, 'UTC'),
    duration_s      UInt32,  -- whole seconds, for display
    duration_ms     UInt64,  -- exact: sums and averages use this
    pageviews       UInt32,
    events          UInt32,
    items           UInt32,
    is_bounce       UInt8,
    converted       UInt8,
    entry_path      String,
    exit_path       String,
    exit_at         DateTime64(3, 'UTC'),
    hostname        String,
    referrer        String,
    referrer_domain String,
    utm_source      String,
    utm_medium      String,
    utm_campaign    String,
    utm_term        String,
    utm_content     String,
    device          LowCardinality(String),
    browser         LowCardinality(String),
    os              LowCardinality(String),
    country         LowCardinality(String),
    screen_width    UInt16,
    screen_height   UInt16,
    language        String,
    timezone        String,
    sign            Int8,
    version         UInt32,
    updated_at      DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = VersionedCollapsingMergeTree(sign, version)
PARTITION BY toYYYYMM(started_at)
ORDER BY (service_id, toDate(started_at), session_id)
TTL toDateTime(started_at) + INTERVAL 1 YEAR
SETTINGS non_replicated_deduplication_window = 1000;

-- Custom events (`event` items). ORDER BY puts time before name: the list route pages by time.
CREATE TABLE IF NOT EXISTS analytics_db.events
(
    service_id   LowCardinality(String),
    event_id     UUID,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    session_id   String,
    visitor_id   String,
    user_id      String,
    name         String,
    conversion   UInt8,
    url          String,
    path         String,
    hostname     String,
    properties   String, -- JSON object text, as sent (validated: flat, ≤ 50 keys)
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, toDate(timestamp), timestamp, event_id)
TTL toDateTime(timestamp) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- Page views. ORDER BY (service, day, path): top pages and per-path filters read contiguous ranges.
CREATE TABLE IF NOT EXISTS analytics_db.page_views
(
    service_id      LowCardinality(String),
    event_id        UUID,
    timestamp       DateTime64(3, 'UTC'),
    received_at     DateTime64(3, 'UTC'),
    session_id      String,
    visitor_id      String,
    user_id         String,
    url             String,
    path            String,
    hostname        String,
    title           String,
    referrer        String,
    referrer_domain String,
    utm_source      String,
    utm_medium      String,
    utm_campaign    String,
    device          LowCardinality(String),
    browser         LowCardinality(String),
    os              LowCardinality(String),
    country         LowCardinality(String),
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, toDate(timestamp), path, timestamp)
TTL toDateTime(timestamp) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- Funnel steps. ORDER BY (service, funnel, day): a funnel query reads one funnel of one service.
CREATE TABLE IF NOT EXISTS analytics_db.funnel_events
(
    service_id   LowCardinality(String),
    event_id     UUID,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    session_id   String,
    visitor_id   String,
    user_id      String,
    funnel       String,
    step         UInt8,
    step_name    String,
    url          String,
    path         String,
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, funnel, toDate(timestamp), timestamp)
TTL toDateTime(timestamp) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- Client-side errors. fingerprint groups one error across pages and sessions (top errors).
CREATE TABLE IF NOT EXISTS analytics_db.errors
(
    service_id   LowCardinality(String),
    event_id     UUID,
    timestamp    DateTime64(3, 'UTC'),
    received_at  DateTime64(3, 'UTC'),
    session_id   String,
    visitor_id   String,
    user_id      String,
    fingerprint  String,
    message      String,
    stack        String,
    source       String,
    line         UInt32,
    column       UInt32,
    url          String,
    path         String,
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, toDate(timestamp), fingerprint, timestamp)
TTL toDateTime(timestamp) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- Web Vitals samples (`vitals` items): one row per item, a metric left NULL when not sent.
-- Not in the seed's table list; the page_performance_stats view needs raw rows to read from.
CREATE TABLE IF NOT EXISTS analytics_db.web_vitals
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
    lcp          Nullable(Float64),
    inp          Nullable(Float64),
    cls          Nullable(Float64),
    fcp          Nullable(Float64),
    ttfb         Nullable(Float64),
    inserted_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
PARTITION BY toYYYYMM(timestamp)
ORDER BY (service_id, toDate(timestamp), path, timestamp)
TTL toDateTime(timestamp) + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- One row per known user (user_id set), aggregated from page views and events by views in
-- 03-materialized_views.sql. Aggregated, so no TTL: a profile outlives its raw rows.
CREATE TABLE IF NOT EXISTS analytics_db.user_profiles
(
    service_id   LowCardinality(String),
    user_id      String,
    first_seen   SimpleAggregateFunction(min, DateTime64(3, 'UTC')),
    last_seen    SimpleAggregateFunction(max, DateTime64(3, 'UTC')),
    pageviews    SimpleAggregateFunction(sum, UInt64),
    events       SimpleAggregateFunction(sum, UInt64),
    last_visitor_id SimpleAggregateFunction(anyLast, String)
)
ENGINE = AggregatingMergeTree
ORDER BY (service_id, user_id)
SETTINGS non_replicated_deduplication_window = 1000;

-- API keys, shared by every service instance through ClickHouse (the one store they all have).
-- Only a SHA-256 of each key is stored. ReplacingMergeTree(updated_at): a revoke writes a newer row.
CREATE TABLE IF NOT EXISTS analytics_db.api_keys
(
    id          String,
    type        LowCardinality(String),
    key_hash    String,
    key_prefix  String,
    name        String,
    service_id  String,
    services    Array(String),
    origins     Array(String),
    created_at  DateTime64(3, 'UTC'),
    revoked_at  Nullable(DateTime64(3, 'UTC')),
    updated_at  DateTime64(3, 'UTC')
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY id;
