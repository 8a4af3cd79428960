-- The database every table and view lives in. The migrate script substitutes the configured
-- name (CLICKHOUSE_DATABASE) for analytics_db, so tests can isolate themselves by database.
CREATE DATABASE IF NOT EXISTS analytics_db;
