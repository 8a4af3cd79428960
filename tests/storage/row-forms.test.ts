// Rows go to ClickHouse as JSON arrays of ROW_COLUMNS (JSONCompactEachRow with the column list).
// tests/ingest/rows.test.ts checks that the encoders put each value at its column's place in the
// list; this checks that the insert stores an array's values in the columns the list names, as the
// object form (JSONEachRow, by name) does. Every table's rows, made by the service's own encoders,
// are inserted once as arrays (service "arr") and once as the same rows by name (service "obj"),
// and the two services' stored rows compared.
import { expect, test } from "bun:test";
import type { EnrichedItem } from "../../src/ingest/pipeline.ts";
import { decodeRecord, itemRecord, mergeRecords, ROW_COLUMNS, rowObject, sessionRecord, type Table } from "../../src/ingest/rows.ts";
import { applyTouch, openSession } from "../../src/ingest/sessions/session-state.ts";
import { insertRecords } from "../../src/storage/insert-rows.ts";
import { migratedDatabaseWithScratch } from "../helpers/clickhouse.ts";

const { ch } = migratedDatabaseWithScratch("rowforms");
const T = Date.parse("2026-11-27T10:00:00.000Z");
const ODD = 'q"uo\\te|Grüße 🎉';

function item(type: EnrichedItem["type"], itemFields: Record<string, unknown>, i: number): EnrichedItem {
  return {
    index: 0, type, item: { type, ...itemFields }, serviceId: "arr", eventId: crypto.randomUUID(), time: T + i * 1000, receivedAt: T + i * 1000 + 7,
    clientSessionId: undefined, userId: `user ${ODD}`, visitorId: `visitor-${i}`, url: `https://shop.example/p/${i}?utm_source=news`, path: `/p/${i}`,
    hostname: "shop.example", referrer: "https://www.google.com/", referrerDomain: "google.com", utm: { source: "news", medium: "mail", campaign: ODD, term: "t", content: "c" },
    device: "mobile", browser: "Firefox", os: "Android", country: "DE", fingerprint: `fp-${i}`,
  } as unknown as EnrichedItem;
}

function arrayRows(): string[] {
  const items = [
    item("session", { screen: { width: 1, height: 2 } }, 1),
    item("pageview", { title: ODD }, 2),
    item("event", { name: ODD, conversion: true, properties: { k: ODD, n: 1.5, b: false, z: null } }, 3),
    item("funnel", { funnel: "checkout", step: 3, step_name: ODD }, 4),
    item("error", { message: ODD, stack: "at x\nat y", source: "app.js", line: 4_294_967_295, column: 17 }, 5),
    item("vitals", { lcp: 2500.5, inp: 180, cls: 0.25, fcp: 1234, ttfb: 55 }, 6),
  ];
  const attrs = {
    hostname: "shop.example", referrer: "https://www.google.com/", referrer_domain: "google.com", utm_source: "news", utm_medium: "mail",
    utm_campaign: ODD, utm_term: "t", utm_content: "c", device: "mobile", browser: "Firefox", os: "Android", country: "DE",
    screen_width: 390, screen_height: 844, language: "de-DE", timezone: "Europe/Berlin",
  };
  const v1 = openSession("arr", `session ${ODD}`, "visitor-1", { time: T, kind: "session", path: "/p/1", conversion: false, userId: "u", attrs });
  const v2 = applyTouch(v1, { time: T + 60_000, kind: "event", path: "/p/2", conversion: true, userId: "u", attrs });
  const v3 = applyTouch(v2, { time: T + 90_000, kind: "pageview", path: "/p/3", conversion: false, userId: "u", attrs });
  const rows = items.map((e, i) => itemRecord(e, `session-${i}`)!);
  const bounce = openSession("arr", "bounce", "visitor-2", { time: T, kind: "pageview", path: "/", conversion: false, userId: "", attrs });
  rows.push(sessionRecord(v1, 1), sessionRecord(v1, -1), sessionRecord(v2, 1), sessionRecord(v2, -1), sessionRecord({ ...v3, client: true }, 1), sessionRecord(bounce, 1));
  rows.push(...mergeRecords({ cancelled: [], aliases: [{ service_id: "arr", alias: "gone", canonical: `session ${ODD}`, version: 2, started_at: T }] }));
  return rows;
}

/** The record with its row written by column name, for service "obj". */
function byName(record: string): string {
  const { table, date, json } = decodeRecord(record);
  return `${table}|obj|${date}|${JSON.stringify({ ...rowObject(table, json), service_id: "obj" })}`;
}

test("every table's array rows store each value in the column the same row by name does", async () => {
  const rows = arrayRows();
  // One of each table, all in array form.
  const tables = new Set(rows.map((r) => decodeRecord(r).table));
  expect([...tables].sort() as string[]).toEqual(Object.keys(ROW_COLUMNS).sort());
  for (const r of rows) expect(decodeRecord(r).json.startsWith("[")).toBe(true);
  await insertRecords(ch.client, rows);
  await insertRecords(ch.client, rows.map(byName));
  for (const table of tables as Set<Table>) {
    // Every column of the table, the ones filled at insert (DEFAULT, MATERIALIZED) too, but for the
    // service and the insert's own time.
    const columns = await (await ch.client.query({
      query: "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String} AND name NOT IN ('service_id', 'inserted_at', 'updated_at') ORDER BY position",
      query_params: { t: table },
      format: "JSONEachRow",
    })).json<{ name: string }>();
    const list = columns.map((c) => `\`${c.name}\``).join(", ");
    const read = async (service: string) =>
      (await ch.client.query({ query: `SELECT ${list} FROM ${table} WHERE service_id = {s:String} ORDER BY ${list}`, query_params: { s: service }, format: "JSONEachRow" })).json<Record<string, unknown>>();
    const [arr, obj] = [await read("arr"), await read("obj")];
    expect(arr.length).toBeGreaterThan(0);
    expect(arr).toEqual(obj);
    // And the values are the ones written (not, say, every column left at its default by both).
    const unset = ROW_COLUMNS[table].filter((c) => c !== "service_id" && c !== "sign" && !arr.some((r) => r[c] !== "" && r[c] !== 0 && r[c] !== null));
    expect(`${table}: ${unset.join(", ")}`).toBe(`${table}: `);
  }
});
