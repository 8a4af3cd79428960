// Insert bodies lent to the in-process engine by reference (src/storage/embedded/lent-bodies.ts):
// the rows arrive byte for byte, no loan outlives its insert, and only this process's own client
// can lend (a request from the network carrying a token's text is just a body).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createClickHouse } from "../../src/storage/clickhouse.ts";
import { createClickHouseHttpHandler } from "../../src/storage/embedded/http-handler.ts";
import { JsonEachRowBytes, lend, outstandingLoans, release } from "../../src/storage/embedded/lent-bodies.ts";
import { insertRecords } from "../../src/storage/insert-rows.ts";
import { migrate } from "../../src/storage/migrate.ts";
import { startEmbeddedServer, type EmbeddedServer } from "../helpers/embedded-server.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";

const database = uniqueDatabase("lent");
const ch = testClickHouse(database);
beforeAll(async () => {
  await migrate(testClickHouse("default").client, { database });
  await ch.client.command({ query: `CREATE TABLE ${database}.lines (k UInt32, s String) ENGINE = MergeTree ORDER BY k` });
});
afterAll(() => ch.close());

const encoder = new TextEncoder();
const NAMES = ["plain", "é ü ß", "日本語", "emoji 🎉🧪", 'quote " and \\ backslash', "tab\tnewline\\n"];
const rowsText = (from: number) => NAMES.map((s, i) => JSON.stringify({ k: from + i, s }) + "\n").join("");

async function stored(from: number): Promise<string[]> {
  const r = await ch.client.query({ query: `SELECT s FROM ${database}.lines WHERE k >= ${from} AND k < ${from + NAMES.length} ORDER BY k`, format: "JSONEachRow" });
  return (await r.json<{ s: string }>()).map((x) => x.s);
}

test("a lent body arrives byte for byte, also from a view into a larger buffer (non-zero byteOffset)", async () => {
  const text = rowsText(100);
  const framed = encoder.encode(`garbage before${text}garbage after`);
  const start = "garbage before".length;
  const view = framed.subarray(start, start + encoder.encode(text).byteLength);
  expect(view.byteOffset).toBeGreaterThan(0);
  await ch.client.insert({ table: "lines", values: [new JsonEachRowBytes(view)], format: "JSONEachRow" });
  expect(await stored(100)).toEqual(NAMES);
  expect(outstandingLoans()).toBe(0);
});

test("the flush's path (insertRecords) stores non-ASCII rows exactly and leaves no loan, also when the insert fails", async () => {
  const t = "2026-11-27T15:00:00.000Z";
  const ev = (id: number, name: string) =>
    `events|s|2026-11-27|${JSON.stringify({ service_id: "s", event_id: `00000000-0000-4000-8000-${String(id).padStart(12, "0")}`, timestamp: t, received_at: t, session_id: "x", visitor_id: "v", user_id: "", name, conversion: 0, url: "", path: "", hostname: "", properties: "{}" })}`;
  const { rows } = await insertRecords(ch.client, [ev(1, "größe 🎉"), ev(2, "日本語")]);
  expect(rows.get("events")).toBe(2);
  const names = await (await ch.client.query({ query: `SELECT name FROM ${database}.events ORDER BY event_id`, format: "JSONEachRow" })).json<{ name: string }>();
  expect(names.map((n) => n.name)).toEqual(["größe 🎉", "日本語"]);
  expect(outstandingLoans()).toBe(0);

  // A data error (a string where a UUID goes): the engine refuses the lent bytes; nothing stays lent.
  const bad = `events|s|2026-11-27|${JSON.stringify({ service_id: "s", event_id: "not-a-uuid", timestamp: t, received_at: t, name: "x" })}`;
  await expect(insertRecords(ch.client, [bad])).rejects.toThrow();
  expect(outstandingLoans()).toBe(0);
});

test("a loan client-web never sends is released by the insert (no table of that name)", async () => {
  await expect(ch.client.insert({ table: "no_such_table", values: [new JsonEachRowBytes(encoder.encode(rowsText(200)))], format: "JSONEachRow" })).rejects.toThrow(/no_such_table|UNKNOWN_TABLE|does not exist/i);
  // The handler claimed it (the request was sent) or release() dropped it; either way none is left.
  const rows = new JsonEachRowBytes(encoder.encode(rowsText(200)));
  lend(rows);
  expect(outstandingLoans()).toBe(1);
  release(rows);
  expect(outstandingLoans()).toBe(0);
});

test("a token's text arriving as a Request (the TCP server's path) is not swapped for the lent bytes", async () => {
  const handler = createClickHouseHttpHandler(ch.engine!);
  const rows = new JsonEachRowBytes(encoder.encode(rowsText(300)));
  const token = lend(rows);
  try {
    const url = `http://embedded.clickhouse/?database=${database}&query=${encodeURIComponent("INSERT INTO lines FORMAT JSONEachRow")}`;
    const res = await handler(new Request(url, { method: "POST", body: `${token}\n` }));
    expect(res.status).toBeGreaterThanOrEqual(400);
    await res.text();
    expect(await stored(300)).toEqual([]);
    expect(outstandingLoans()).toBe(1);
  } finally {
    release(rows);
  }
});

let server: EmbeddedServer | undefined;
afterAll(() => server?.dispose());

test("a client on a ClickHouse URL sends the same rows as text (decoded once, no loan)", async () => {
  server = await startEmbeddedServer();
  const remote = createClickHouse({ url: server.url, database: "default" });
  try {
    await remote.client.command({ query: "CREATE TABLE lines (k UInt32, s String) ENGINE = MergeTree ORDER BY k" });
    await remote.client.insert({ table: "lines", values: [new JsonEachRowBytes(encoder.encode(rowsText(400)))], format: "JSONEachRow" });
    const r = await remote.client.query({ query: "SELECT s FROM lines ORDER BY k", format: "JSONEachRow" });
    expect((await r.json<{ s: string }>()).map((x) => x.s)).toEqual(NAMES);
    expect(outstandingLoans()).toBe(0);
  } finally {
    await remote.close();
  }
}, 60_000);
