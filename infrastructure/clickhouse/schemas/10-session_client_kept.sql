-- Whether a session was opened by an item carrying the client's own session_id (API.md: "A given
-- session_id always wins"). The 30-minute rule never joins such a session, so the live service
-- never files it among the visitor's recent sessions; the state rebuilt from ClickHouse after a
-- restart (src/ingest/warm-up.ts) must leave it out too, and only this column tells it apart from
-- a session the service opened (a client may send a UUID of its own). Rows written before this
-- file read 0: their client-kept sessions are treated as the service's own after a restart, as
-- before.
ALTER TABLE analytics_db.sessions ADD COLUMN IF NOT EXISTS client_kept UInt8 DEFAULT 0;
