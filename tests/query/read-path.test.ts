// The read path's mechanics that the randomized suites only cover indirectly: the settings every
// read carries (and the reports' one thread per query), which source top events read, and session membership of item lists (tested on hashed session ids) when a
// session's state moved between attribute values (a cancel row and a new row).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { topPages } from "../../src/query/behavior-lists.ts";
import { selectRows, SqlParams } from "../../src/query/sql-params.ts";
import { topEvents, topEventsSource } from "../../src/query/top-events.ts";
import { resolveRange } from "../../src/query/time-range.ts";
import { type AnalyticsDb, createAnalyticsDb } from "./fixtures/analytics-db.ts";

let db: AnalyticsDb;
const NOW = Date.UTC(2026, 4, 20, 12);
const range = resolveRange({ from: "2026-05-10", to: "2026-05-12", tz: "UTC" }, NOW);

beforeAll(async () => {
  db = await createAnalyticsDb("rp");
  const s = (id: string, visitor: string, country: string, sign: number, version: number) =>
    `('svc', '${id}', '${visitor}', '2026-05-11 10:00:00.000', '2026-05-11 10:05:00.000', '${country}', ${sign}, ${version})`;
  const insertSessions = (rows: string[]) =>
    db.client.command({ query: `INSERT INTO ${db.database}.sessions (service_id, session_id, visitor_id, started_at, ended_at, country, sign, version) VALUES ${rows.join(", ")}` });
  // Two inserts: a block holding a state and its cancel row would collapse on insert already.
  await insertSessions([s("moved", "v1", "DE", 1, 1), s("stays", "v2", "DE", 1, 1), s("other", "v3", "US", 1, 1), s("also", "v2", "DE", 1, 1)]);
  await insertSessions([s("moved", "v1", "DE", -1, 1), s("moved", "v1", "US", 1, 2)]); // DE → US: no longer DE
  const pv = (session: string, visitor: string, path: string, minute: number) =>
    `('svc', generateUUIDv4(), '2026-05-11 10:0${minute}:00.000', '${session}', '${visitor}', '${path}')`;
  await db.client.command({
    query: `INSERT INTO ${db.database}.page_views (service_id, event_id, timestamp, session_id, visitor_id, path) VALUES
      ${[pv("moved", "v1", "/a", 1), pv("stays", "v2", "/a", 1), pv("stays", "v2", "/b", 2), pv("other", "v3", "/a", 1), pv("also", "v2", "/a", 3)].join(", ")}`,
  });
  await db.client.command({
    query: `INSERT INTO ${db.database}.events (service_id, event_id, timestamp, session_id, visitor_id, name) VALUES
      ('svc', generateUUIDv4(), '2026-05-11 10:01:00.000', 'moved', 'v1', 'click'), ('svc', generateUUIDv4(), '2026-05-11 10:02:00.000', 'stays', 'v2', 'click')`,
  });
}, 60_000);
afterAll(async () => {
  await db.client.command({ query: `DROP DATABASE IF EXISTS ${db.database}` });
  await db.close();
});

describe("read path", () => {
  test("every read skips preparing large IN sets for the primary key", async () => {
    const [row] = await selectRows<{ v: number }>(db.client, "SELECT getSetting('use_index_for_in_with_subqueries_max_values') AS v", new SqlParams());
    expect(Number(row!.v)).toBe(10000);
  });

  test("every read asks for the lowest CPU priority for its threads (nice 19): ingest comes first", async () => {
    const [row] = await selectRows<{ v: number }>(db.client, "SELECT getSetting('os_thread_priority') AS v", new SqlParams());
    expect(Number(row!.v)).toBe(19);
  });

  test("threads: the engine's default unless asked; the reports ask for one per query", async () => {
    const threads = (exec?: { threads?: number }) =>
      selectRows<{ v: number }>(db.client, "SELECT getSetting('max_threads') AS v", new SqlParams(), exec).then(([r]) => Number(r!.v));
    expect(await threads({ threads: 1 })).toBe(1);
    expect(await threads()).toBe(await threads({}));
  });

  test("one-thread reads go two-level by key count only, not by the size of their states; other reads keep the engine's defaults", async () => {
    const setting = (name: string, exec?: { threads?: number }) =>
      selectRows<{ v: number }>(db.client, `SELECT getSetting('${name}') AS v`, new SqlParams(), exec).then(([r]) => Number(r!.v));
    const bytes = "group_by_two_level_threshold_bytes";
    const keys = "group_by_two_level_threshold";
    expect(await setting(bytes, { threads: 1 })).toBe(0);
    expect(await setting(bytes, { threads: 2 })).toBeGreaterThan(0);
    expect(await setting(bytes)).toBe(await setting(bytes, { threads: 2 }));
    expect(await setting(keys, { threads: 1 })).toBe(await setting(keys));
    expect(await setting(keys, { threads: 1 })).toBeGreaterThan(0);
  });

  test("top events: raw rows below 14 days or with a filter, the hourly view from 14 days, same answer", async () => {
    const days = (from: string, to: string) => ({ serviceId: "svc", range: resolveRange({ from, to, tz: "UTC" }, NOW), filters: {}, limit: 10 });
    const short = days("2026-05-10", "2026-05-12");
    const long = days("2026-05-01", "2026-05-14");
    expect(topEventsSource(short, { now: NOW })).toBe("raw");
    expect(topEventsSource(long, { now: NOW })).toBe("view");
    expect(topEventsSource({ ...long, filters: { country: "DE" } }, { now: NOW })).toBe("raw");
    expect(topEventsSource(long, { now: NOW, forceRaw: true })).toBe("raw");
    const expected = [{ name: "click", count: 2, visitors: 2 }];
    expect(await topEvents(db.client, short, { now: NOW })).toEqual(expected);
    expect(await topEvents(db.client, long, { now: NOW })).toEqual(expected);
    expect(await topEvents(db.client, long, { now: NOW, forceRaw: true })).toEqual(expected);
  });

  test("item lists keep the items of sessions whose current state matches, visitors once", async () => {
    const q = { serviceId: "svc", range, filters: { country: "DE" }, limit: 10 };
    expect(await topPages(db.client, q)).toEqual([
      { path: "/a", views: 2, visitors: 1 },
      { path: "/b", views: 1, visitors: 1 },
    ]);
    expect(await topEvents(db.client, q, { now: NOW })).toEqual([{ name: "click", count: 1, visitors: 1 }]);
    const us = await topPages(db.client, { ...q, filters: { country: "US" } });
    expect(us).toEqual([{ path: "/a", views: 2, visitors: 2 }]);
  });
});
