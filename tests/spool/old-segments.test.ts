// Segments a deployment may have on disk at an upgrade: tests/spool/fixtures/spool-v1 was written
// by the spool and row encoding of the release before the byte-level flush (commit 086da5f:
// encodeRecord/sessionRecords lines joined per request, framed by the spool). The flush of today
// must replay it into the same rows, and a second replay of the same segment (the process died
// before removing it) must change nothing, in the tables and in their views.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { spoolSink } from "../../src/ingest/writers.ts";
import { silentLogger } from "../../src/logger.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { createBatcher } from "../../src/spool/batcher.ts";
import { openSpool } from "../../src/spool/spool.ts";
import { migrate } from "../../src/storage/migrate.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";

const database = uniqueDatabase("oldseg");
const ch = testClickHouse(database);
const work = mkdtempSync(join(tmpdir(), "old-segments-"));
beforeAll(() => migrate(testClickHouse("default").client, { database }));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function replay(copy: string): Promise<void> {
  const dir = join(work, copy);
  cpSync(join(import.meta.dir, "fixtures", "spool-v1"), dir, { recursive: true });
  const spool = await openSpool({ dir, capBytes: 1 << 30, fsync: false, logger: silentLogger });
  const sink = spoolSink({ client: ch.client, metrics: createMetrics(), onTouched: () => {}, quarantineDir: join(dir, "quarantine"), logger: silentLogger });
  const batcher = createBatcher({ spool, sink, flushIntervalMs: 60_000, logger: silentLogger });
  await batcher.flush();
  expect(await batcher.close()).toBe(true);
  await spool.close();
  expect(readdirSync(dir).filter((f) => f.startsWith("seg-") && f !== "seg-0000000000000002.log")).toEqual([]); // removed once stored
}

const query = async <T>(sql: string) => (await (await ch.client.query({ query: sql, format: "JSONEachRow" })).json()) as T[];

async function state() {
  return {
    events: await query("SELECT service_id, name, session_id, properties, toString(timestamp) AS t FROM events ORDER BY service_id, timestamp"),
    // Raw rows: the request-1 state and its cancel in request 2 cancel out (the flush drops the
    // pair; ClickHouse would too, on insert). The views are where a missing or doubled row shows.
    sessions: await query("SELECT service_id, session_id, sign, version, pageviews, exit_path, toString(started_at) AS s FROM sessions ORDER BY service_id, session_id, version, sign"),
    daily: await query("SELECT service_id, toString(day) AS d, toInt64(sum(sessions)) AS n, toInt64(sum(pageviews)) AS pv FROM daily_session_stats GROUP BY service_id, day ORDER BY service_id, d"),
  };
}

test("segments written before the byte-level flush replay into the same rows, and a second replay is a no-op", async () => {
  await replay("first");
  const after = await state();
  const props = JSON.stringify({ note: 'Grüße | 中文 "q"' });
  expect(after.events).toEqual([
    { service_id: "blog", name: "read", session_id: "b-1", properties: props, t: "2026-11-27 23:59:00.000" },
    { service_id: "shop", name: "ansehen", session_id: 'sess "ü" 1', properties: props, t: "2026-11-27 23:59:00.000" },
    { service_id: "shop", name: "kaufen|jetzt", session_id: 'sess "ü" 1', properties: props, t: "2026-11-28 00:01:00.000" },
  ]);
  expect(after.sessions).toEqual([
    { service_id: "blog", session_id: "b-1", sign: 1, version: 1, pageviews: 1, exit_path: "/", s: "2026-11-27 23:59:00.000" },
    { service_id: "shop", session_id: 'sess "ü" 1', sign: 1, version: 2, pageviews: 2, exit_path: "/k", s: "2026-11-27 23:59:00.000" },
  ]);
  expect(after.daily).toEqual([
    { service_id: "blog", d: "2026-11-27", n: 1, pv: 1 },
    { service_id: "shop", d: "2026-11-27", n: 1, pv: 2 },
  ]);
  await replay("second"); // the same spool id and segment: the same dedup tokens
  expect(await state()).toEqual(after);
});
