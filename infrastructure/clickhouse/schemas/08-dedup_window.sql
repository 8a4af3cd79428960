-- How many recent insert blocks each table remembers, so that a replayed spool flush (the same
-- insert_deduplication_token) is a no-op: 1,000 in 02/03/06/07, raised to 10,000 here.
--
-- The window counts inserts into the table from every writer. A crashed instance replays its
-- spool when it starts again; by then the other instances (one flush a second each) may have
-- inserted more than 1,000 blocks into the same table, and the replay would store its rows a
-- second time: with three instances that took about eight minutes (multi-instance audit,
-- 2026-11-28). 10,000 blocks is hours at that rate; each remembered block costs a short hash in
-- the table's deduplication log. Replicated tables (cluster mode) use replicated_deduplication_window instead.
ALTER TABLE analytics_db.sessions MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.page_views MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.funnel_events MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.errors MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.web_vitals MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.user_profiles MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.daily_session_stats MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.hourly_session_metrics MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.session_distributions MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.utm_campaign_stats MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.hourly_event_counts MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.funnel_stats MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.page_performance_stats MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.session_aliases MODIFY SETTING non_replicated_deduplication_window = 10000;
ALTER TABLE analytics_db.session_cancels MODIFY SETTING non_replicated_deduplication_window = 10000;
