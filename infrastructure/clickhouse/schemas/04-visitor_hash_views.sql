-- Visitor states over 64-bit hashes. The views of 03 kept `uniqExactState(visitor_id)` over the
-- String id (ClickHouse keeps a 128-bit hash per value); merging those states dominated view reads
-- (30 days: 26 MB of state in daily_session_stats). Each target gets `visitors64`,
-- `AggregateFunction(uniqExact, UInt64)` over cityHash64(visitor_id), as raw reads count them
-- (README, "Exact counts and hashes"); its view is switched to write it instead of `visitors`, old
-- rows get theirs from the raw tables, and the String states are dropped.
-- Read with `uniqExactMerge(visitors64)`.
--
-- Why this is exact while a deployment keeps ingesting:
-- * The sums never stop: every insert runs either the old or the new view query (ALTER ... MODIFY
--   QUERY replaces it for inserts that start afterwards), and both write the same sums. The
--   backfill writes no sums (its rows carry 0), so no row is counted twice or left out.
-- * Visitor states are sets: a visitor written both by the view and by the backfill counts once.
--   The backfill reads every raw row present when it runs, so the only rows it could miss are
--   rows of an insert that started under the old query and commits after the backfill has read
--   the table. The pause below (3 s, only when there is data) lets such inserts finish; one
--   that took longer could leave its rows' visitors out of visitors64, and applying the
--   backfills again repairs that (every statement is idempotent: IF [NOT] EXISTS, the same
--   query, sets and zero sums).
-- * Backfills cover what the readers may read: view-choice.ts never reads a bucket older than
--   the target's TTL, so the 30- and 90-day targets are backfilled over 31 and 91 days.
-- In cluster mode (src/storage/cluster-ddl.ts) the view queries are rewritten to the local
-- tables, and each backfill is inserted into the
-- local target of the host that runs the migration, reading every shard through the Distributed
-- tables; reads through the Distributed targets merge the shards' states.

-- 1. The new state column of every target with visitor states.
ALTER TABLE analytics_db.daily_session_stats ADD COLUMN IF NOT EXISTS visitors64 AggregateFunction(uniqExact, UInt64);
ALTER TABLE analytics_db.hourly_session_metrics ADD COLUMN IF NOT EXISTS visitors64 AggregateFunction(uniqExact, UInt64);
ALTER TABLE analytics_db.session_distributions ADD COLUMN IF NOT EXISTS visitors64 AggregateFunction(uniqExact, UInt64);
ALTER TABLE analytics_db.utm_campaign_stats ADD COLUMN IF NOT EXISTS visitors64 AggregateFunction(uniqExact, UInt64);
ALTER TABLE analytics_db.hourly_event_counts ADD COLUMN IF NOT EXISTS visitors64 AggregateFunction(uniqExact, UInt64);

-- 2. The views write visitors64 (and no longer the String states). Same sources, keys and sums as 03.
ALTER TABLE analytics_db.daily_session_stats_mv MODIFY QUERY
SELECT
    service_id,
    toDate(started_at, 'UTC') AS day,
    sum(toInt64(sign)) AS sessions,
    sum(toInt64(sign) * pageviews) AS pageviews,
    sum(toInt64(sign) * is_bounce) AS bounces,
    sum(toInt64(sign) * duration_s) AS duration_sum,
    sum(toInt64(sign) * toInt64(duration_ms)) AS duration_ms_sum,
    sum(toInt64(sign) * converted) AS conversions,
    uniqExactStateIf(cityHash64(visitor_id), sign > 0) AS visitors64
FROM analytics_db.sessions
GROUP BY service_id, day;

ALTER TABLE analytics_db.hourly_session_metrics_mv MODIFY QUERY
SELECT
    service_id,
    toStartOfHour(started_at, 'UTC') AS hour,
    sum(toInt64(sign)) AS sessions,
    sum(toInt64(sign) * pageviews) AS pageviews,
    sum(toInt64(sign) * is_bounce) AS bounces,
    sum(toInt64(sign) * duration_s) AS duration_sum,
    sum(toInt64(sign) * toInt64(duration_ms)) AS duration_ms_sum,
    sum(toInt64(sign) * converted) AS conversions,
    uniqExactStateIf(cityHash64(visitor_id), sign > 0) AS visitors64
FROM analytics_db.sessions
GROUP BY service_id, hour;

ALTER TABLE analytics_db.session_dist_mv MODIFY QUERY
SELECT
    service_id,
    toStartOfHour(started_at, 'UTC') AS hour,
    dv.1 AS dimension,
    dv.2 AS value,
    sum(toInt64(sign)) AS sessions,
    sum(toInt64(sign) * is_bounce) AS bounces,
    uniqExactStateIf(cityHash64(visitor_id), sign > 0) AS visitors64
FROM analytics_db.sessions
ARRAY JOIN [
    ('device', toString(device)),
    ('browser', toString(browser)),
    ('os', toString(os)),
    ('country', toString(country))
] AS dv
GROUP BY service_id, hour, dimension, value;

ALTER TABLE analytics_db.utm_campaign_stats_mv MODIFY QUERY
SELECT
    service_id,
    toStartOfHour(started_at, 'UTC') AS hour,
    utm_source,
    utm_medium,
    utm_campaign,
    sum(toInt64(sign)) AS sessions,
    sum(toInt64(sign) * converted) AS conversions,
    uniqExactStateIf(cityHash64(visitor_id), sign > 0) AS visitors64
FROM analytics_db.sessions
WHERE utm_source != ''
GROUP BY service_id, hour, utm_source, utm_medium, utm_campaign;

ALTER TABLE analytics_db.hourly_event_counts_mv MODIFY QUERY
SELECT
    service_id,
    toStartOfHour(timestamp, 'UTC') AS hour,
    name,
    count() AS count,
    uniqExactState(cityHash64(visitor_id)) AS visitors64
FROM analytics_db.events
GROUP BY service_id, hour, name;

-- 3. The grace pause: inserts that started before the switch finish before the backfill reads.
-- Writers' inserts take well under a second; a database with no sessions yet (a new deployment,
-- every test database) has nothing to wait for. (A check of system.processes was tried here: in
-- the embedded engine it can hang until the client's timeout, so it is not used.)
SELECT sleep(if((SELECT count() FROM analytics_db.sessions) > 0, 3, 0));

-- 4. Backfill: visitor states of the rows already there, with zero sums (the sums are complete).
INSERT INTO analytics_db.daily_session_stats (service_id, day, visitors64)
SELECT service_id, toDate(started_at, 'UTC') AS day, uniqExactStateIf(cityHash64(visitor_id), sign > 0)
FROM analytics_db.sessions
GROUP BY service_id, day;

INSERT INTO analytics_db.hourly_session_metrics (service_id, hour, visitors64)
SELECT service_id, toStartOfHour(started_at, 'UTC') AS hour, uniqExactStateIf(cityHash64(visitor_id), sign > 0)
FROM analytics_db.sessions
WHERE started_at >= now() - INTERVAL 31 DAY
GROUP BY service_id, hour;

INSERT INTO analytics_db.session_distributions (service_id, hour, dimension, value, visitors64)
SELECT service_id, toStartOfHour(started_at, 'UTC') AS hour, dv.1 AS dimension, dv.2 AS value,
    uniqExactStateIf(cityHash64(visitor_id), sign > 0)
FROM analytics_db.sessions
ARRAY JOIN [
    ('device', toString(device)),
    ('browser', toString(browser)),
    ('os', toString(os)),
    ('country', toString(country))
] AS dv
WHERE started_at >= now() - INTERVAL 91 DAY
GROUP BY service_id, hour, dimension, value;

INSERT INTO analytics_db.utm_campaign_stats (service_id, hour, utm_source, utm_medium, utm_campaign, visitors64)
SELECT service_id, toStartOfHour(started_at, 'UTC') AS hour, utm_source, utm_medium, utm_campaign,
    uniqExactStateIf(cityHash64(visitor_id), sign > 0)
FROM analytics_db.sessions
WHERE utm_source != '' AND started_at >= now() - INTERVAL 91 DAY
GROUP BY service_id, hour, utm_source, utm_medium, utm_campaign;

INSERT INTO analytics_db.hourly_event_counts (service_id, hour, name, visitors64)
SELECT service_id, toStartOfHour(timestamp, 'UTC') AS hour, name, uniqExactState(cityHash64(visitor_id))
FROM analytics_db.events
GROUP BY service_id, hour, name;

-- 5. The String states: nothing writes or reads them any more.
ALTER TABLE analytics_db.daily_session_stats DROP COLUMN IF EXISTS visitors;
ALTER TABLE analytics_db.hourly_session_metrics DROP COLUMN IF EXISTS visitors;
ALTER TABLE analytics_db.session_distributions DROP COLUMN IF EXISTS visitors;
ALTER TABLE analytics_db.utm_campaign_stats DROP COLUMN IF EXISTS visitors;
ALTER TABLE analytics_db.hourly_event_counts DROP COLUMN IF EXISTS visitors;
