-- user_profiles (02; fed by page views and custom events that carry a user_id, 03) was the one
-- table without a TTL: the application's user ids and their last visitor id were kept forever,
-- while every other table forgets within a year (README, "Retention"). A profile now goes a year
-- after the user was last seen, as sessions do. Its pieces not merged yet go by their own
-- last_seen; a merged profile keeps the latest one.
ALTER TABLE analytics_db.user_profiles MODIFY TTL toDateTime(last_seen) + INTERVAL 1 YEAR;
