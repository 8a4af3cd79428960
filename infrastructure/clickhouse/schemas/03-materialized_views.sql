-- Materialized views: pre-aggregated targets the dashboards read first. Each view is
-- `<target>_mv ... TO <target>`, so a target can be altered or rebuilt without touching its view.
--
-- Reading rules (views must give the numbers raw rows give):
-- * Always aggregate on read: `sum(col)` for SimpleAggregateFunction columns and
--   `uniqExactMerge(visitors)` for states, with GROUP BY. Parts merge in the background, so a key
--   may have several rows at any moment.
-- * Session views are fed by `sessions`, where every update writes a cancel row (sign = -1) for
--   the previous state and a row for the new one (sign = +1). The views sum sign-weighted values,
--   and a cancel row carries the old state's key (hour, device, ...), so `sum(sessions)`,
--   `sum(bounces)`, ... are exact at any moment. Visitors are counted from +1 rows only: a
--   session's cancel and new rows share its visitor, and its start and attributes come from its
--   first item, so the exact set is the same as over live sessions.
-- * Buckets are UTC: `hour` is toStartOfHour(started_at or timestamp) in UTC, so day and hour
--   series in any time zone whose offset is a whole number of hours are sums of UTC hours.
--   Zones with a :30 / :45 offset (Asia/Kolkata, Asia/Kathmandu, ...) must read raw rows.
--   daily_session_stats is per UTC day, for long ranges asked in UTC.
-- * TTLs: the hourly session metrics live 30 days, so older hourly series come from raw rows.
--
-- Deduplication: every target sets non_replicated_deduplication_window, so a replayed insert
-- (same insert_deduplication_token) is dropped in the views too. That needs the query setting
-- deduplicate_blocks_in_dependent_materialized_views = 1 on the insert (the writer sets it; it
-- is also the default from ClickHouse 24.x on). Replicated targets deduplicate by default.
--
-- Every table is written as analytics_db.<name>: the migrate script substitutes the configured
-- database, and in cluster mode renames raw tables and targets to <name>_local (see
-- src/storage/cluster-ddl.ts), so views attach to the local tables on each shard.

-- Sessions per UTC day (long ranges in UTC; 1 year, as long as raw sessions).
CREATE TABLE IF NOT EXISTS analytics_db.daily_session_stats
(
    service_id      LowCardinality(String),
    day             Date,
    sessions        SimpleAggregateFunction(sum, Int64),
    pageviews       SimpleAggregateFunction(sum, Int64),
    bounces         SimpleAggregateFunction(sum, Int64),
    duration_sum    SimpleAggregateFunction(sum, Int64), -- seconds (duration_s)
    duration_ms_sum SimpleAggregateFunction(sum, Int64), -- exact (duration_ms): averages use this
    conversions     SimpleAggregateFunction(sum, Int64),
    visitors        AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
-- PARTITION BY month: about 12 partitions under the 1-year TTL; parts stay large.
PARTITION BY toYYYYMM(day)
-- ORDER BY (service, day): every read is one service over a day range.
ORDER BY (service_id, day)
TTL day + INTERVAL 1 YEAR
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.daily_session_stats_mv
TO analytics_db.daily_session_stats
AS SELECT
    service_id,
    toDate(started_at, 'UTC') AS day,
    sum(toInt64(sign)) AS sessions,
    sum(toInt64(sign) * pageviews) AS pageviews,
    sum(toInt64(sign) * is_bounce) AS bounces,
    sum(toInt64(sign) * duration_s) AS duration_sum,
    sum(toInt64(sign) * toInt64(duration_ms)) AS duration_ms_sum,
    sum(toInt64(sign) * converted) AS conversions,
    uniqExactStateIf(visitor_id, sign > 0) AS visitors
FROM analytics_db.sessions
GROUP BY service_id, day;

-- Sessions per UTC hour: day and hour series in the request's time zone (30 days).
CREATE TABLE IF NOT EXISTS analytics_db.hourly_session_metrics
(
    service_id      LowCardinality(String),
    hour            DateTime('UTC'),
    sessions        SimpleAggregateFunction(sum, Int64),
    pageviews       SimpleAggregateFunction(sum, Int64),
    bounces         SimpleAggregateFunction(sum, Int64),
    duration_sum    SimpleAggregateFunction(sum, Int64), -- seconds (duration_s)
    duration_ms_sum SimpleAggregateFunction(sum, Int64), -- exact (duration_ms): averages use this
    conversions     SimpleAggregateFunction(sum, Int64),
    visitors        AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
-- PARTITION BY month: few partitions; the 30-day TTL deletes within them while merging.
PARTITION BY toYYYYMM(hour)
-- ORDER BY (service, hour): a series reads one contiguous range per service.
ORDER BY (service_id, hour)
TTL hour + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.hourly_session_metrics_mv
TO analytics_db.hourly_session_metrics
AS SELECT
    service_id,
    toStartOfHour(started_at, 'UTC') AS hour,
    sum(toInt64(sign)) AS sessions,
    sum(toInt64(sign) * pageviews) AS pageviews,
    sum(toInt64(sign) * is_bounce) AS bounces,
    sum(toInt64(sign) * duration_s) AS duration_sum,
    sum(toInt64(sign) * toInt64(duration_ms)) AS duration_ms_sum,
    sum(toInt64(sign) * converted) AS conversions,
    uniqExactStateIf(visitor_id, sign > 0) AS visitors
FROM analytics_db.sessions
GROUP BY service_id, hour;

-- Sessions per UTC hour by device / browser / os / country (dimension names are those words).
CREATE TABLE IF NOT EXISTS analytics_db.session_distributions
(
    service_id   LowCardinality(String),
    hour         DateTime('UTC'),
    dimension    LowCardinality(String),
    value        LowCardinality(String),
    sessions     SimpleAggregateFunction(sum, Int64),
    bounces      SimpleAggregateFunction(sum, Int64),
    visitors     AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
-- PARTITION BY month: 3 to 4 partitions under the 90-day TTL.
PARTITION BY toYYYYMM(hour)
-- ORDER BY (service, dimension, hour, value): a distribution reads one dimension over a range.
ORDER BY (service_id, dimension, hour, value)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

-- One view for all four dimensions (ARRAY JOIN): one insert into the target per sessions insert.
CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.session_dist_mv
TO analytics_db.session_distributions
AS SELECT
    service_id,
    toStartOfHour(started_at, 'UTC') AS hour,
    dv.1 AS dimension,
    dv.2 AS value,
    sum(toInt64(sign)) AS sessions,
    sum(toInt64(sign) * is_bounce) AS bounces,
    uniqExactStateIf(visitor_id, sign > 0) AS visitors
FROM analytics_db.sessions
ARRAY JOIN [
    ('device', toString(device)),
    ('browser', toString(browser)),
    ('os', toString(os)),
    ('country', toString(country))
] AS dv
GROUP BY service_id, hour, dimension, value;

-- Campaigns: sessions with a utm_source, per UTC hour (a missing medium or campaign is '').
CREATE TABLE IF NOT EXISTS analytics_db.utm_campaign_stats
(
    service_id   LowCardinality(String),
    hour         DateTime('UTC'),
    utm_source   String,
    utm_medium   String,
    utm_campaign String,
    sessions     SimpleAggregateFunction(sum, Int64),
    conversions  SimpleAggregateFunction(sum, Int64),
    visitors     AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
-- PARTITION BY month: 3 to 4 partitions under the 90-day TTL.
PARTITION BY toYYYYMM(hour)
-- ORDER BY (service, hour, source, medium, campaign): a range of hours, grouped by campaign.
ORDER BY (service_id, hour, utm_source, utm_medium, utm_campaign)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.utm_campaign_stats_mv
TO analytics_db.utm_campaign_stats
AS SELECT
    service_id,
    toStartOfHour(started_at, 'UTC') AS hour,
    utm_source,
    utm_medium,
    utm_campaign,
    sum(toInt64(sign)) AS sessions,
    sum(toInt64(sign) * converted) AS conversions,
    uniqExactStateIf(visitor_id, sign > 0) AS visitors
FROM analytics_db.sessions
WHERE utm_source != ''
GROUP BY service_id, hour, utm_source, utm_medium, utm_campaign;

-- Custom events per UTC hour and name (top events, event trends).
CREATE TABLE IF NOT EXISTS analytics_db.hourly_event_counts
(
    service_id   LowCardinality(String),
    hour         DateTime('UTC'),
    name         String,
    count        SimpleAggregateFunction(sum, UInt64),
    visitors     AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
-- PARTITION BY month: 3 to 4 partitions under the 90-day TTL.
PARTITION BY toYYYYMM(hour)
-- ORDER BY (service, hour, name): a range of hours, grouped by name.
ORDER BY (service_id, hour, name)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.hourly_event_counts_mv
TO analytics_db.hourly_event_counts
AS SELECT
    service_id,
    toStartOfHour(timestamp, 'UTC') AS hour,
    name,
    count() AS count,
    uniqExactState(visitor_id) AS visitors
FROM analytics_db.events
GROUP BY service_id, hour, name;

-- Funnel step hits per UTC hour. Informational: conversion needs windowFunnel over raw rows.
CREATE TABLE IF NOT EXISTS analytics_db.funnel_stats
(
    service_id   LowCardinality(String),
    funnel       String,
    hour         DateTime('UTC'),
    step         UInt8,
    hits         SimpleAggregateFunction(sum, UInt64),
    sessions     AggregateFunction(uniqExact, String)
)
ENGINE = AggregatingMergeTree
-- PARTITION BY month: 3 to 4 partitions under the 90-day TTL.
PARTITION BY toYYYYMM(hour)
-- ORDER BY (service, funnel, hour, step): a funnel query reads one funnel of one service.
ORDER BY (service_id, funnel, hour, step)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.funnel_stats_mv
TO analytics_db.funnel_stats
AS SELECT
    service_id,
    funnel,
    toStartOfHour(timestamp, 'UTC') AS hour,
    step,
    count() AS hits,
    uniqExactState(session_id) AS sessions
FROM analytics_db.funnel_events
GROUP BY service_id, funnel, hour, step;

-- Core Web Vitals per UTC hour, path and metric (lcp, inp, cls, fcp, ttfb): counts by rating
-- (good: value <= first threshold; poor: value > second; API.md) and the value sum. No quantile
-- state (too big per key): p75 is computed from raw web_vitals rows.
CREATE TABLE IF NOT EXISTS analytics_db.page_performance_stats
(
    service_id        LowCardinality(String),
    hour              DateTime('UTC'),
    path              String,
    metric            LowCardinality(String),
    samples           SimpleAggregateFunction(sum, UInt64),
    good              SimpleAggregateFunction(sum, UInt64),
    needs_improvement SimpleAggregateFunction(sum, UInt64),
    poor              SimpleAggregateFunction(sum, UInt64),
    value_sum         SimpleAggregateFunction(sum, Float64)
)
ENGINE = AggregatingMergeTree
-- PARTITION BY month: 3 to 4 partitions under the 90-day TTL.
PARTITION BY toYYYYMM(hour)
-- ORDER BY (service, hour, path, metric): the summary reads every metric over a range of hours.
ORDER BY (service_id, hour, path, metric)
TTL hour + INTERVAL 90 DAY
SETTINGS non_replicated_deduplication_window = 1000;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.page_performance_mv
TO analytics_db.page_performance_stats
AS SELECT
    service_id,
    toStartOfHour(timestamp, 'UTC') AS hour,
    path,
    m.1 AS metric,
    count() AS samples,
    countIf(assumeNotNull(m.2) <= m.3) AS good,
    countIf(assumeNotNull(m.2) > m.3 AND assumeNotNull(m.2) <= m.4) AS needs_improvement,
    countIf(assumeNotNull(m.2) > m.4) AS poor,
    sum(assumeNotNull(m.2)) AS value_sum
FROM analytics_db.web_vitals
ARRAY JOIN [
    ('lcp', lcp, 2500, 4000),
    ('inp', inp, 200, 500),
    ('cls', cls, 0.1, 0.25),
    ('fcp', fcp, 1800, 3000),
    ('ttfb', ttfb, 800, 1800)
] AS m
WHERE m.2 IS NOT NULL
GROUP BY service_id, hour, path, metric;

-- Known users (user_id set) from page views and custom events, into user_profiles (02).
CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.user_profiles_pageviews_mv
TO analytics_db.user_profiles
AS SELECT
    service_id,
    user_id,
    min(timestamp) AS first_seen,
    max(timestamp) AS last_seen,
    count() AS pageviews,
    toUInt64(0) AS events,
    argMax(visitor_id, timestamp) AS last_visitor_id
FROM analytics_db.page_views
WHERE user_id != ''
GROUP BY service_id, user_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS analytics_db.user_profiles_events_mv
TO analytics_db.user_profiles
AS SELECT
    service_id,
    user_id,
    min(timestamp) AS first_seen,
    max(timestamp) AS last_seen,
    toUInt64(0) AS pageviews,
    count() AS events,
    argMax(visitor_id, timestamp) AS last_visitor_id
FROM analytics_db.events
WHERE user_id != ''
GROUP BY service_id, user_id;
