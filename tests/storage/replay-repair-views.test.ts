// The replay repair (src/storage/replay-repair.ts) detaches a table's materialized views while it
// writes the rows the table lost, and attaches them again. If that ATTACH failed, every later
// insert into the table would miss its views for the rest of the process's life; the sink must
// insert nothing until they are back. In process (the run's embedded engine, its own database).
import { afterAll, beforeAll, expect, test } from "bun:test";
import type { ClickHouseClient } from "@clickhouse/client-web";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeRecord } from "../../src/ingest/rows.ts";
import { spoolSink } from "../../src/ingest/writers.ts";
import { silentLogger } from "../../src/logger.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { migrate } from "../../src/storage/migrate.ts";
import { attachViews, ViewsLeftDetached } from "../../src/storage/replay-repair.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";

const database = uniqueDatabase("repairviews");
const ch = testClickHouse(database);
const dir = mkdtempSync(join(tmpdir(), "repairviews-"));
beforeAll(() => migrate(testClickHouse("default").client, { database }));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const count = async (sql: string) => Number(((await (await ch.client.query({ query: sql, format: "JSONEachRow" })).json()) as Array<{ n: string }>)[0]!.n);
const eventRecord = (id: string) => {
  const time = Date.parse("2026-11-01T10:00:00Z");
  const ts = new Date(time).toISOString();
  return new TextEncoder().encode(encodeRecord("events", "shop", time, { service_id: "shop", event_id: id, timestamp: ts, received_at: ts, session_id: "s", visitor_id: "v", user_id: "", name: "e", conversion: 0, url: "", path: "", hostname: "", properties: "{}" }));
};
const viewsOfEvents = async () =>
  ((await (await ch.client.query({ query: "SELECT dependencies_table AS v FROM system.tables WHERE database = {db:String} AND name = 'events'", query_params: { db: database }, format: "JSONEachRow" })).json()) as Array<{ v: string[] }>)[0]!.v;

test("attaching a view that is attached already is no error", async () => {
  const views = await viewsOfEvents();
  expect(views.length).toBeGreaterThan(0);
  await attachViews(ch.client, database, views);
});

test("fault injected (the first insert 'lands' without rows, as a surviving token makes it; ATTACH refused for a while): the sink inserts nothing while the views are detached", async () => {
  const views = await viewsOfEvents();
  let skipFirstInsert = true;
  let attachRefused = true;
  const faulty = new Proxy(ch.client, {
    get(target, prop, receiver) {
      if (prop === "insert") {
        return async (args: Parameters<ClickHouseClient["insert"]>[0]) => {
          if (skipFirstInsert) {
            skipFirstInsert = false; // answered as if stored, nothing stored: a deduplicated replay
            return { executed: true, query_id: "", response_headers: {} };
          }
          return target.insert(args);
        };
      }
      if (prop === "command") {
        return async (args: Parameters<ClickHouseClient["command"]>[0]) => {
          if (args.query.startsWith("ATTACH") && attachRefused) throw new Error("injected: ATTACH refused");
          return target.command(args);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  const sink = spoolSink({ client: faulty, metrics: createMetrics({ defaultMetrics: false }), onTouched: () => {}, quarantineDir: dir, logger: silentLogger, repair: { segmentSeq: 1, database } });
  const ref = (seq: number) => ({ seq, name: `seg-${seq}`, path: join(dir, `seg-${seq}`), bytes: 1 });
  const lost = crypto.randomUUID();
  const later = crypto.randomUUID();

  // The leftover segment: its event is missing after the insert, the repair writes it with the
  // views detached, and the ATTACH after it fails.
  const first = await sink({ segment: ref(1), records: [eventRecord(lost)], token: "t-1" }).catch((e: unknown) => e);
  expect(first).toBeInstanceOf(ViewsLeftDetached);
  expect(await count(`SELECT count() AS n FROM events WHERE event_id = '${lost}'`)).toBe(1);
  expect(await count(`SELECT count() AS n FROM system.tables WHERE database = '${database}' AND name IN ('${views.join("','")}')`)).toBe(0);

  // The next segment: the ATTACH fails again, so nothing is inserted.
  const second = await sink({ segment: ref(2), records: [eventRecord(later)], token: "t-2" }).catch((e: unknown) => e);
  expect(second).toBeInstanceOf(ViewsLeftDetached);
  expect(await count(`SELECT count() AS n FROM events WHERE event_id = '${later}'`)).toBe(0);

  // Then it attaches, and the segment reaches the table and its views.
  attachRefused = false;
  await sink({ segment: ref(2), records: [eventRecord(later)], token: "t-2" });
  expect(await count(`SELECT count() AS n FROM system.tables WHERE database = '${database}' AND name IN ('${views.join("','")}')`)).toBe(views.length);
  expect(await count(`SELECT count() AS n FROM events WHERE event_id = '${later}'`)).toBe(1);
  expect(await count("SELECT sum(count) AS n FROM hourly_event_counts")).toBe(1); // the later event only: the repaired one bypassed the views
});
