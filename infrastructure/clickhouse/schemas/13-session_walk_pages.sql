-- The older pages of long walks through /v1/sessions: what keeps paging stable past 64 pages.
--
-- A session cursor carries, for each page of its walk, when it was read and where it ended
-- (src/query/cursor.ts), so a next page can leave out a session an earlier page listed that has
-- moved below the cursor since (12-session_moves.sql). A cursor holds the newest 64 pages; the
-- pages it lets go of are kept here, under a random id of the walk the cursor carries, and a next
-- page reads them back. Pages of one walk read again from an older cursor write their page again:
-- a reader takes, per page, the latest read and the highest end, which can only leave out less.
-- Kept a day, like the moves: a walk that takes longer may list a moved session twice.
CREATE TABLE IF NOT EXISTS analytics_db.session_walk_pages
(
    service_id LowCardinality(String),
    walk       UUID,
    page       UInt32,                -- the page's number in its walk, from 1
    read_ms    Int64,                 -- when the page was read: the engine's clock, epoch ms
    end_ms     Int64,                 -- its last row's start, epoch ms
    end_crc    UInt32,                -- CRC-32 of its last row's id
    end_prefix Int64                  -- its last row's id's first four bytes (big-endian), -1 unknown
)
ENGINE = MergeTree
ORDER BY (service_id, walk, page)
TTL toDateTime(intDiv(read_ms, 1000)) + INTERVAL 1 DAY;
