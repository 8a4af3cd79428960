// Cached answers are invalidated as soon as a flush's rows are readable, table by table: the
// events of a flush were readable while its later tables were still being inserted, but the cache
// versions were bumped once after the last table, so a cached summary answered one count behind
// /v1/events for that long (found by the response audit: a HIT with top_events N-1 after
// /v1/events showed N).
import { expect, test } from "bun:test";
import type { ClickHouseClient } from "@clickhouse/client-web";
import { encodeRecord } from "../../src/ingest/rows.ts";
import { spoolSink } from "../../src/ingest/writers.ts";
import { silentLogger } from "../../src/logger.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { migratedDatabaseWithScratch } from "../helpers/clickhouse.ts";

const { ch, dir } = migratedDatabaseWithScratch("flushinv");

test("fault injected (a second table's insert held open): the cache is invalidated once the first table's rows are readable", async () => {
  const time = Date.parse("2026-11-01T10:00:00Z");
  const ts = new Date(time).toISOString();
  const lines = [
    encodeRecord("events", "shop", time, { service_id: "shop", event_id: crypto.randomUUID(), timestamp: ts, received_at: ts, session_id: "s", visitor_id: "v", user_id: "", name: "e", conversion: 0, url: "", path: "", hostname: "", properties: "{}" }),
    encodeRecord("page_views", "shop", time, { service_id: "shop", event_id: crypto.randomUUID(), timestamp: ts, received_at: ts, session_id: "s", visitor_id: "v", user_id: "", url: "https://shop.example/", path: "/" }),
  ];
  // The real client, with every insert after the first held until the test opens the gate.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  let inserts = 0;
  const held = new Proxy(ch.client, {
    get(target, prop, receiver) {
      if (prop !== "insert") return Reflect.get(target, prop, receiver);
      return async (args: Parameters<ClickHouseClient["insert"]>[0]) => {
        if (inserts++ > 0) await gate;
        return target.insert(args);
      };
    },
  });
  const touched: string[] = [];
  const sink = spoolSink({ client: held, metrics: createMetrics(), onTouched: (t) => touched.push(...[...t].map(([s, d]) => `${s} ${[...d].join(",")}`)), quarantineDir: dir, logger: silentLogger });
  const flushed = sink({ segment: { seq: 1, name: "seg-1", path: "", bytes: 0 }, records: [new TextEncoder().encode(lines.join("\n"))], token: "tok-inv-1" });
  // The first table is in: its rows are readable and the cache has heard of it, the flush goes on.
  for (let i = 0; i < 200 && inserts < 2; i++) await Bun.sleep(10);
  expect(inserts).toBe(2);
  expect(touched).toEqual(["shop 2026-11-01"]);
  open();
  await flushed;
  expect(touched).toEqual(["shop 2026-11-01", "shop 2026-11-01"]);
});
