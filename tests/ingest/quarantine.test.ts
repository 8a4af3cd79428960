import { expect, test } from "bun:test";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeRecord, ROW_COLUMNS, rowObject } from "../../src/ingest/rows.ts";
import { spoolSink } from "../../src/ingest/writers.ts";
import { silentLogger } from "../../src/logger.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { migratedDatabaseWithScratch } from "../helpers/clickhouse.ts";

const { ch, dir } = migratedDatabaseWithScratch("quar");

const event = (name: string, timestamp: string) =>
  encodeRecord("events", "shop", Date.parse("2026-11-01T00:00:00Z"), {
    service_id: "shop", event_id: crypto.randomUUID(), timestamp, received_at: timestamp, session_id: "s", visitor_id: "v",
    user_id: "", name, conversion: 0, url: "", path: "", hostname: "", properties: "{}",
  });

test("a row ClickHouse refuses as data is set aside; the rest of the flush lands, once even when replayed", async () => {
  const good = "2026-11-01T10:00:00.000Z";
  const lines = [event("a", good), event("b", good), event("bad", "not a time at all"), event("c", good), event("d", good)];
  const metrics = createMetrics();
  const touched: string[] = [];
  const sink = spoolSink({ client: ch.client, metrics, onTouched: (t) => touched.push(...t.keys()), quarantineDir: dir, logger: silentLogger });
  expect(await metrics.registry.getSingleMetricAsString("spool_quarantined_rows_total")).toMatch(/^spool_quarantined_rows_total\{table="events"\} 0$/m);
  const batch = { segment: { seq: 1, name: "seg-1", path: "", bytes: 0 }, records: [new TextEncoder().encode(lines.join("\n"))], token: "tok-q-1" };
  await sink(batch);
  await sink(batch); // a replay of the same segment (crash before its removal) changes nothing
  const names = await (await ch.client.query({ query: "SELECT name FROM events ORDER BY name", format: "JSONEachRow" })).json<{ name: string }>();
  expect(names.map((r) => r.name)).toEqual(["a", "b", "c", "d"]);
  const files = readdirSync(dir);
  expect(files).toEqual(["tok-q-1.jsonl"]);
  const set = readFileSync(join(dir, files[0]!), "utf8").trim().split("\n").map((l) => JSON.parse(l));
  expect(set[0].table).toBe("events");
  expect(JSON.parse(set[0].row).name).toBe("bad");
  expect(touched).toContain("shop");
  // Counted as set aside (a line in the file each time); every other table's count is there at 0
  // from the start, so an alert needs no absent().
  const counted = await metrics.registry.getSingleMetricAsString("spool_quarantined_rows_total");
  expect(counted).toMatch(new RegExp(`^spool_quarantined_rows_total\\{table="events"\\} ${set.length}$`, "m"));
  expect(counted).toMatch(/^spool_quarantined_rows_total\{table="sessions"\} 0$/m);
});

/** An events row in today's form: the values of ROW_COLUMNS.events, in order. */
const eventArray = (name: string, timestamp: string) =>
  encodeRecord("events", "shop", Date.parse("2026-11-01T00:00:00Z"), ["shop", crypto.randomUUID(), timestamp, timestamp, "s", "v", "", "", "", "", name, 0, "{}"]);

test("rows of both forms in one flush (arrays, and objects an earlier version spooled) all land once; a refused array row is set aside with its columns", async () => {
  const good = "2026-11-01T12:00:00.000Z";
  const lines = [event("m-obj-1", good), eventArray("m-arr-1", good), eventArray("m-arr-bad", "not a time at all"), event("m-obj-2", good), eventArray("m-arr-2", good)];
  const mixedDir = mkdtempSync(join(tmpdir(), "quarantine-mixed-"));
  try {
    const sink = spoolSink({ client: ch.client, metrics: createMetrics(), onTouched: () => {}, quarantineDir: mixedDir, logger: silentLogger });
    const batch = { segment: { seq: 3, name: "seg-3", path: "", bytes: 0 }, records: [new TextEncoder().encode(lines.join("\n"))], token: "tok-q-mixed" };
    await sink(batch);
    await sink(batch); // replayed: both INSERTs are dropped as duplicates
    const names = await (await ch.client.query({ query: "SELECT name FROM events WHERE name LIKE 'm-%' ORDER BY name", format: "JSONEachRow" })).json<{ name: string }>();
    expect(names.map((r) => r.name)).toEqual(["m-arr-1", "m-arr-2", "m-obj-1", "m-obj-2"]);
    const set = readFileSync(join(mixedDir, "tok-q-mixed.jsonl"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    // Set aside by the flush and again by its replay (the good rows' INSERTs are the ones deduplicated).
    expect(set.length).toBeGreaterThan(0);
    for (const entry of set) {
      expect(entry.columns).toEqual([...ROW_COLUMNS.events]);
      expect(rowObject("events", entry.row).name).toBe("m-arr-bad");
    }
  } finally {
    rmSync(mixedDir, { recursive: true, force: true });
  }
});

test("a disk fault the engine reports as a C++ exception (code 1001) is not bad data (fault injected): nothing is set aside, the flush fails and its retry stores every row", async () => {
  const faultDir = mkdtempSync(join(tmpdir(), "quarantine-disk-"));
  const good = "2026-11-01T11:00:00.000Z";
  const lines = ["e1", "e2", "e3"].map((n) => event(n, good));
  let failing = true;
  // The real client, but while `failing` its INSERTs throw what chdb said when a part directory could not be made.
  const diskFull = Object.assign(new Error('std::__1::filesystem::filesystem_error: filesystem error: in create_directories: No space left on device ["/data/clickhouse/store/8a4/tmp_insert_202611_21_21_0"]'), { name: "ClickHouseError", code: "1001" });
  const client = new Proxy(ch.client, {
    get: (target, prop) => (prop === "insert" && failing ? () => Promise.reject(diskFull) : Reflect.get(target, prop)),
  });
  try {
    const sink = spoolSink({ client, metrics: createMetrics(), onTouched: () => {}, quarantineDir: faultDir, logger: silentLogger });
    const batch = { segment: { seq: 2, name: "seg-2", path: "", bytes: 0 }, records: [new TextEncoder().encode(lines.join("\n"))], token: "tok-q-disk" };
    await expect(sink(batch)).rejects.toThrow("No space left on device");
    expect(readdirSync(faultDir)).toEqual([]);
    failing = false;
    await sink(batch);
    const names = await (await ch.client.query({ query: "SELECT name FROM events WHERE name LIKE 'e_' ORDER BY name", format: "JSONEachRow" })).json<{ name: string }>();
    expect(names.map((r) => r.name)).toEqual(["e1", "e2", "e3"]);
  } finally {
    rmSync(faultDir, { recursive: true, force: true });
  }
});
