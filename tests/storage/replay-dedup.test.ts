// A spool segment replayed after a kill is inserted again with the same deduplication token: the
// raw tables and every view must count it once. A view changed with `ALTER TABLE … MODIFY QUERY`
// (schemas/04) used to count it twice when the first insert ran in the process that applied the
// migration (found by a black-box crash audit, 2026-11-28: hourly_event_counts and the session
// views above the raw tables by exactly the flush cut off by the first kill). A restart reloads a
// view from its metadata; DETACH + ATTACH does the same here, in one process.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { insertRecords } from "../../src/storage/insert-rows.ts";
import { migrate, migrationStatements } from "../../src/storage/migrate.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";

const database = uniqueDatabase("replay");
const ch = testClickHouse("default");
beforeAll(async () => {
  await migrate(ch.client, { database });
});
afterAll(async () => {
  await ch.close();
});

const VIEWS = ["daily_session_stats_mv", "hourly_session_metrics_mv", "session_dist_mv", "utm_campaign_stats_mv", "hourly_event_counts_mv", "funnel_stats_mv", "page_performance_mv"];

const t = "2026-11-27T15:00:00.000Z";
const records = [
  `events|s|2026-11-27|${JSON.stringify({ service_id: "s", event_id: "00000000-0000-4000-8000-000000000001", timestamp: t, received_at: t, session_id: "x", visitor_id: "v", user_id: "", name: "n", conversion: 0, url: "", path: "", hostname: "", properties: "{}" })}`,
  `sessions|s|2026-11-27|${JSON.stringify({ sign: 1, version: 1, session_id: "x", service_id: "s", visitor_id: "v", user_id: "", started_at: t, ended_at: t, duration_s: 0, duration_ms: 0, pageviews: 1, events: 1, items: 2, is_bounce: 0, converted: 0, entry_path: "/", exit_path: "/", exit_at: t, utm_source: "g" })}`,
];

async function counts(): Promise<Record<string, number>> {
  const q = async (sql: string) => Number((await (await ch.client.query({ query: sql, format: "JSONCompactEachRow" })).json<[string | number]>())[0]![0]);
  return {
    events: await q(`SELECT count() FROM ${database}.events`),
    hourly_event_counts: await q(`SELECT sum(count) FROM ${database}.hourly_event_counts`),
    sessions: await q(`SELECT sum(sign) FROM ${database}.sessions`),
    daily_session_stats: await q(`SELECT sum(sessions) FROM ${database}.daily_session_stats`),
    hourly_session_metrics: await q(`SELECT sum(sessions) FROM ${database}.hourly_session_metrics`),
    session_distributions: await q(`SELECT sum(sessions) FROM ${database}.session_distributions`),
    utm_campaign_stats: await q(`SELECT sum(sessions) FROM ${database}.utm_campaign_stats`),
  };
}

test("migrate attaches every view changed with MODIFY QUERY again, right after the change", () => {
  const statements = migrationStatements({ database }).flatMap((f) => f.statements);
  const modified = statements.filter((s) => /MODIFY\s+QUERY/i.test(s));
  expect(modified.length).toBe(5);
  for (const st of modified) {
    const name = /^ALTER\s+TABLE\s+(\S+)/i.exec(st)![1]!;
    const i = statements.indexOf(st);
    expect(statements.slice(i + 1, i + 3)).toEqual([`DETACH TABLE ${name}`, `ATTACH TABLE ${name}`]);
  }
});

test("a flush replayed after a restart (same token) counts once in the raw tables and in every view", async () => {
  const client = testClickHouse(database);
  try {
    await insertRecords(client.client, records, { token: "segment-1" });
    const once = await counts();
    expect(once).toEqual({ events: 1, hourly_event_counts: 1, sessions: 1, daily_session_stats: 1, hourly_session_metrics: 1, session_distributions: 4, utm_campaign_stats: 1 });
    // What a restart does to the views: they are loaded again from their metadata.
    for (const v of VIEWS) {
      await ch.client.command({ query: `DETACH TABLE ${database}.${v}` });
      await ch.client.command({ query: `ATTACH TABLE ${database}.${v}` });
    }
    await insertRecords(client.client, records, { token: "segment-1" });
    expect(await counts()).toEqual(once);
  } finally {
    await client.close();
  }
});

test("a replayed flush that moved a session's start records the move once (session_moves)", async () => {
  const client = testClickHouse(database);
  const earlier = "2026-11-27T14:55:00.000Z";
  const state = (sign: number, version: number, startedAt: string) =>
    `sessions|s|2026-11-27|${JSON.stringify({ sign, version, session_id: "moved", service_id: "s", visitor_id: "v", user_id: "", started_at: startedAt, ended_at: t, duration_s: 0, duration_ms: 0, pageviews: 1, events: 0, items: 1, is_bounce: 1, converted: 0, entry_path: "/", exit_path: "/", exit_at: t })}`;
  const moves = async () => (await (await client.client.query({ query: "SELECT session_id, from_started_at, to_started_at FROM session_moves WHERE service_id = 's'", format: "JSONEachRow" })).json());
  try {
    await insertRecords(client.client, [state(1, 1, t)], { token: "moves-1" });
    expect(await moves()).toEqual([]); // a new session is no move
    await insertRecords(client.client, [state(-1, 1, t), state(1, 2, earlier)], { token: "moves-2" });
    const once = [{ session_id: "moved", from_started_at: t, to_started_at: earlier }];
    expect(await moves()).toEqual(once);
    await insertRecords(client.client, [state(-1, 1, t), state(1, 2, earlier)], { token: "moves-2" });
    expect(await moves()).toEqual(once);
    // A later state at the same start (one more page view) is no move either.
    await insertRecords(client.client, [state(-1, 2, earlier), state(1, 3, earlier)], { token: "moves-3" });
    expect(await moves()).toEqual(once);
  } finally {
    await client.close();
  }
});
