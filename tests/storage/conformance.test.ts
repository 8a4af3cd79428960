// Conformance of the embedded ClickHouse with the ClickHouse HTTP interface, as the service uses
// it: through `@clickhouse/client-web`. One body of tests runs against both ways the client can
// reach the embedded engine:
//
//   - "in-process": the client's `fetch` is the HTTP handler over the shared chdb engine
//     (`testClickHouse(db)`), the default when no server is configured;
//   - "tcp": the client points at `npm run clickhouse` (a child process, its own data dir) over
//     real HTTP, like a service configured with CLICKHOUSE_URL.
//
// Expectations are ClickHouse's own behaviour (checked against ClickHouse's source where noted),
// not whatever the embedded handler happens to do. Restart survival is TCP-only (one data dir
// binds to one process, so the in-process engine cannot be restarted inside the test run).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { ClickHouseError, type ClickHouseClient } from "@clickhouse/client-web";
import { createClickHouse, type ClickHouse } from "../../src/storage/clickhouse.ts";
import { createClickHouseHttpHandler } from "../../src/storage/embedded/http-handler.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";
import { startEmbeddedServer, type EmbeddedServer } from "../helpers/embedded-server.ts";
import { TRICKY_STRINGS } from "./fixtures/conformance-strings.ts";

interface Mode {
  name: "in-process" | "tcp";
  setup(): Promise<void>;
  teardown(): Promise<void>;
  /** A client-web client whose default database is `database`. */
  open(database: string): ClickHouse;
  /** A raw HTTP request to the ClickHouse HTTP interface (`path` starts with `/`). */
  raw(path: string, init?: RequestInit): Promise<Response>;
  /** Resident memory of everything that holds the engine and the client, in bytes. */
  rss(): number;
}

function inProcessMode(): Mode {
  let handler: ReturnType<typeof createClickHouseHttpHandler> | undefined;
  return {
    name: "in-process",
    async setup() {
      handler = createClickHouseHttpHandler(testClickHouse().engine!);
    },
    async teardown() {},
    open: (database) => testClickHouse(database),
    raw: (path, init) => handler!(`http://embedded.clickhouse${path}`, init),
    rss: () => process.memoryUsage().rss,
  };
}

function tcpMode(): Mode {
  let server: EmbeddedServer | undefined;
  return {
    name: "tcp",
    async setup() {
      server = await startEmbeddedServer();
    },
    async teardown() {
      await server?.dispose();
    },
    open: (database) => createClickHouse({ url: server!.url, database }),
    raw: (path, init) => fetch(`${server!.url}${path}`, init),
    rss: () => process.memoryUsage().rss + server!.rssBytes(),
  };
}

/** Runs `fn`, expecting it to throw a ClickHouseError; returns it. */
async function chError(fn: () => Promise<unknown>): Promise<ClickHouseError> {
  try {
    await fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ClickHouseError);
    return err as ClickHouseError;
  }
  throw new Error("expected a ClickHouseError, but the call succeeded");
}

async function rows<T>(client: ClickHouseClient, query: string, query_params?: Record<string, unknown>): Promise<T[]> {
  const rs = await client.query({ query, query_params, format: "JSONEachRow" });
  return await rs.json<T>();
}

function hexOf(s: string): string {
  return Buffer.from(s, "utf8").toString("hex").toUpperCase();
}

/** Rejects when `p` has not settled within `ms`: a lane that stays blocked shows as a timeout, not a hang. */
function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout>;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: not done within ${ms} ms`)), ms))),
  ]);
}

describe.each([inProcessMode(), tcpMode()])("ClickHouse conformance ($name)", (mode) => {
  const db = uniqueDatabase(`conf_${mode.name === "tcp" ? "tcp" : "inp"}`);
  let admin: ClickHouse;
  let ch: ClickHouse;
  let client: ClickHouseClient;

  beforeAll(async () => {
    await mode.setup();
    admin = mode.open("default");
    await admin.client.command({ query: `CREATE DATABASE IF NOT EXISTS ${db}` });
    ch = mode.open(db);
    client = ch.client;
  }, 60_000);

  afterAll(async () => {
    await admin?.client.command({ query: `DROP DATABASE IF EXISTS ${db} SYNC` }).catch(() => {});
    await ch?.close();
    await admin?.close();
    await mode.teardown();
  }, 60_000);

  // ---------------------------------------------------------------------------------------------
  // Liveness

  test("GET /ping answers `Ok.\\n`; client.ping() succeeds", async () => {
    const res = await mode.raw("/ping");
    expect(res.status).toBe(200);
    expect(await res.text()).toBe("Ok.\n");
    const ping = await client.ping();
    expect(ping.success).toBe(true);
  });

  // ---------------------------------------------------------------------------------------------
  // String parameters: what goes in comes back byte for byte

  test.each(TRICKY_STRINGS)("String parameter round-trips exactly: %s", async (_label, s) => {
    const [row] = await rows<{ s: string; bytes: string; same: number }>(
      client,
      "SELECT {s:String} AS s, toString(length({s:String})) AS bytes, {s:String} = unhex({h:String}) AS same",
      { s, h: hexOf(s) },
    );
    expect(row!.s).toBe(s);
    expect(Number(row!.bytes)).toBe(Buffer.byteLength(s, "utf8"));
    // Byte-exact, independent of how JSON output escapes things.
    expect(row!.same).toBe(1);
  });

  // The HTTP interface's own contract for `param_*` values (what any HTTP client may send, not just
  // client-web): tab-separated escaping is undone; a raw NUL byte is an ordinary byte, and so is
  // the escape `\0`. (ClickHouse reads the value with deserializeTextEscaped; see
  // src/Interpreters/ReplaceQueryParameterVisitor.cpp.)
  test.each([
    ["raw NUL byte", "a%00b", "610062"],
    ["escaped \\0", "a%5C0b", "610062"],
    ["escaped \\t \\n \\r", "%5Ct%5Cn%5Cr", "090A0D"],
    ["escaped backslash and quote", "%5C%5C%5C'", "5C27"],
    ["unknown escape keeps its backslash", "%5Cq", "5C71"],
    ["UTF-8", "%C3%BC%F0%9F%8E%89", "C3BCF09F8E89"],
  ] as const)("raw HTTP param_ value: %s", async (_label, encoded, hex) => {
    const res = await mode.raw(`/?param_s=${encoded}`, { method: "POST", body: "SELECT hex({s:String})" });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe(`${hex}\n`);
  });

  test("strings inserted with JSONEachRow read back, and WHERE s = {s:String} finds each one", async () => {
    await client.command({ query: "CREATE TABLE strs (id UInt32, s String) ENGINE = MergeTree ORDER BY id" });
    const values = TRICKY_STRINGS.map(([, s], id) => ({ id, s }));
    await client.insert({ table: "strs", values, format: "JSONEachRow" });
    const back = await rows<{ id: number; s: string }>(client, "SELECT id, s FROM strs ORDER BY id");
    expect(back).toEqual(values);
    for (const { id, s } of values) {
      const found = await rows<{ id: number }>(client, "SELECT id FROM strs WHERE s = {s:String}", { s });
      expect({ s, found: found.map((r) => r.id) }).toEqual({ s, found: [id] });
      const byHex = await rows<{ id: number }>(client, "SELECT id FROM strs WHERE hex(s) = {h:String}", { h: hexOf(s) });
      expect({ s, byHex: byHex.map((r) => r.id) }).toEqual({ s, byHex: [id] });
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Typed parameters and columns

  test("typed parameters: Array(String), Array(UInt32), Map(String, UInt64), Nullable(String), DateTime64, UUID", async () => {
    const arr = ["plain", "it's", 'say "hi"', "back\\slash", "trail\\", "\\'", "tab\there", "nl\nhere", "emoji 🎉", ""];
    const uuid = crypto.randomUUID();
    const when = new Date("2024-02-29T23:59:58.123Z");
    const [row] = await rows<Record<string, unknown>>(
      client,
      `SELECT {a:Array(String)} AS a, length({a:Array(String)}) AS alen,
              {u:Array(UInt32)} AS u, {m:Map(String, UInt64)} AS m,
              {nn:Nullable(String)} AS nn, {nv:Nullable(String)} AS nv, isNull({nn:Nullable(String)}) AS nn_is_null,
              {dd:DateTime64(3, 'UTC')} AS dd, {ds:DateTime64(3, 'UTC')} AS ds, toUnixTimestamp64Milli({dd:DateTime64(3, 'UTC')}) AS dd_ms,
              {id:UUID} AS id, toTypeName({id:UUID}) AS id_type`,
      {
        a: arr,
        u: [0, 1, 4294967295],
        m: { plain: 1, "it's": 2, 'q"uote': 3, "back\\": 18446744073709551615n, "ü🎉": 0 },
        nn: null,
        nv: "it's not null",
        dd: when,
        ds: "2024-02-29 23:59:58.123",
        id: uuid,
      },
    );
    expect(row!.a).toEqual(arr);
    expect(row!.alen).toBe(arr.length);
    expect(row!.u).toEqual([0, 1, 4294967295]);
    // UInt64 beyond 2^53 does not survive a JS number; compare it as text below.
    const m = row!.m as Record<string, number>;
    expect(Object.keys(m).sort()).toEqual(["back\\", "it's", "plain", 'q"uote', "ü🎉"].sort());
    expect([m.plain, m["it's"], m['q"uote'], m["ü🎉"]]).toEqual([1, 2, 3, 0]);
    expect(row!.nn).toBeNull();
    expect(row!.nn_is_null).toBe(1);
    expect(row!.nv).toBe("it's not null");
    expect(row!.dd).toBe("2024-02-29T23:59:58.123Z");
    expect(Number(row!.dd_ms)).toBe(when.getTime());
    expect(row!.ds).toBe("2024-02-29T23:59:58.123Z");
    expect(row!.id).toBe(uuid);
    expect(row!.id_type).toBe("UUID");

    const [big] = await rows<{ v: string }>(client, "SELECT toString({m:Map(String, UInt64)}['back\\\\']) AS v", {
      m: { "back\\": 18446744073709551615n },
    });
    expect(big!.v).toBe("18446744073709551615");
  });

  // client-web sends parameters in the URL. ClickHouse takes URLs up to 1 MiB (http_max_uri_size);
  // `npm run clickhouse` took 16 KiB (Bun's default header limit), and a restart's rebuild that
  // looks up 5,000 session ids at once answered 431 there, forever (a three-instance audit).
  test("parameters of ~250 KB in the URL (5,000 ids) are taken, as by ClickHouse", async () => {
    const ids = Array.from({ length: 5_000 }, () => crypto.randomUUID());
    const [row] = await rows<{ n: number; last: string }>(client, "SELECT length({ids:Array(String)}) AS n, {ids:Array(String)}[5000] AS last", { ids });
    expect(row).toEqual({ n: 5_000, last: ids[4_999]! });
  });

  test("typed columns inserted with JSONEachRow read back, and typed parameters find them", async () => {
    await client.command({
      query: `CREATE TABLE typed (
        id UInt32, tags Array(String), nums Array(UInt32), counts Map(String, UInt64),
        note Nullable(String), at DateTime64(3, 'UTC'), uid UUID
      ) ENGINE = MergeTree ORDER BY id`,
    });
    const uid1 = crypto.randomUUID();
    const uid2 = crypto.randomUUID();
    const input = [
      { id: 1, tags: ["a'b", 'c"d', "e\\"], nums: [1, 2, 3], counts: { "x'y": 7 }, note: null, at: "2024-01-02 03:04:05.006", uid: uid1 },
      { id: 2, tags: [], nums: [4294967295], counts: {}, note: "n\to\te", at: "1999-12-31 23:59:59.999", uid: uid2 },
    ];
    await client.insert({ table: "typed", values: input, format: "JSONEachRow" });
    const back = await rows<Record<string, unknown>>(client, "SELECT * FROM typed ORDER BY id");
    expect(back).toEqual([
      { ...input[0], at: "2024-01-02T03:04:05.006Z" },
      { ...input[1], at: "1999-12-31T23:59:59.999Z" },
    ]);
    const q = async (where: string, params: Record<string, unknown>) =>
      (await rows<{ id: number }>(client, `SELECT id FROM typed WHERE ${where} ORDER BY id`, params)).map((r) => r.id);
    expect(await q("tags = {t:Array(String)}", { t: ["a'b", 'c"d', "e\\"] })).toEqual([1]);
    expect(await q("has(tags, {t:String})", { t: 'c"d' })).toEqual([1]);
    expect(await q("nums = {n:Array(UInt32)}", { n: [4294967295] })).toEqual([2]);
    expect(await q("counts = {c:Map(String, UInt64)}", { c: { "x'y": 7 } })).toEqual([1]);
    expect(await q("note IS NULL AND {n:Nullable(String)} IS NULL", { n: null })).toEqual([1]);
    expect(await q("note = {n:Nullable(String)}", { n: "n\to\te" })).toEqual([2]);
    expect(await q("at = {t:DateTime64(3, 'UTC')}", { t: new Date("2024-01-02T03:04:05.006Z") })).toEqual([1]);
    expect(await q("at = {t:DateTime64(3, 'UTC')}", { t: "1999-12-31 23:59:59.999" })).toEqual([2]);
    expect(await q("uid = {u:UUID}", { u: uid2 })).toEqual([2]);
  });

  // ---------------------------------------------------------------------------------------------
  // Inserts

  test("JSONEachRow and JSONCompactEachRow inserts read back", async () => {
    await client.command({ query: "CREATE TABLE fmt (id UInt32, name String, score Float64) ENGINE = MergeTree ORDER BY id" });
    await client.insert({
      table: "fmt",
      format: "JSONEachRow",
      values: [{ id: 1, name: "one", score: 1.5 }, { id: 2, name: "zwei ü", score: -2 }],
    });
    await client.insert({
      table: "fmt",
      format: "JSONCompactEachRow",
      values: [[3, "three 🎉", 3.25], [4, "it's \"4\"", 0]],
    });
    expect(await rows(client, "SELECT id, name, score FROM fmt ORDER BY id")).toEqual([
      { id: 1, name: "one", score: 1.5 },
      { id: 2, name: "zwei ü", score: -2 },
      { id: 3, name: "three 🎉", score: 3.25 },
      { id: 4, name: "it's \"4\"", score: 0 },
    ]);
    // Insert into a column subset, the others take their defaults.
    await client.insert({ table: "fmt", columns: ["id", "name"], format: "JSONCompactEachRow", values: [[5, "five"]] });
    expect(await rows(client, "SELECT id, name, score FROM fmt WHERE id = 5")).toEqual([{ id: 5, name: "five", score: 0 }]);
  });

  test("a 100k-row insert arrives whole", async () => {
    await client.command({ query: "CREATE TABLE big (id UInt32, label String) ENGINE = MergeTree ORDER BY id" });
    const n = 100_000;
    const values = Array.from({ length: n }, (_, i) => ({ id: i, label: `row-${i}-${"é".repeat(i % 7)}` }));
    const res = await client.insert({ table: "big", values, format: "JSONEachRow" });
    const summary = JSON.parse(String(res.response_headers["x-clickhouse-summary"] ?? "{}"));
    expect(Number(summary.written_rows)).toBe(n);
    const [agg] = await rows<{ c: string; s: string; u: string; l: string }>(
      client,
      "SELECT toString(count()) c, toString(sum(id)) s, toString(uniqExact(id)) u, any(label) l FROM big WHERE id = 99999 OR id < 100000",
    );
    expect(agg!.c).toBe(String(n));
    expect(agg!.s).toBe(String((n * (n - 1)) / 2));
    expect(agg!.u).toBe(String(n));
    expect(await rows(client, "SELECT label FROM big WHERE id = 99999")).toEqual([{ label: `row-99999-${"é".repeat(99999 % 7)}` }]);
  }, 60_000);

  // ---------------------------------------------------------------------------------------------
  // Settings are per request

  test("insert_deduplication_token dedups a replayed insert, and does not leak into the next request", async () => {
    await client.command({
      query: "CREATE TABLE dedup (batch String, x UInt32) ENGINE = MergeTree ORDER BY x SETTINGS non_replicated_deduplication_window = 1000",
    });
    const token = `tok-${crypto.randomUUID()}`;
    const insertWithToken = (batch: string) =>
      client.insert({
        table: "dedup",
        format: "JSONEachRow",
        values: [{ batch, x: 1 }, { batch, x: 2 }],
        clickhouse_settings: { insert_deduplication_token: token },
      });
    await insertWithToken("first");
    await insertWithToken("first"); // a replayed flush: a no-op
    expect(await rows(client, "SELECT batch, count() AS n FROM dedup GROUP BY batch ORDER BY batch")).toEqual([
      { batch: "first", n: 2 },
    ]);
    // The same token with other data is a duplicate too (proves the token, not the data hash, decides).
    await insertWithToken("same-token-other-data");
    expect(await rows(client, "SELECT count() AS n FROM dedup")).toEqual([{ n: 2 }]);
    // Inserts WITHOUT the token right after, with new data each: all stored. If the token stayed on
    // the lane that ran the inserts above, they would be dropped as duplicates. Several of them, so
    // every lane gets one.
    for (let i = 0; i < 8; i++) {
      await client.insert({ table: "dedup", format: "JSONEachRow", values: [{ batch: `plain-${i}`, x: 100 + i }] });
    }
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        client.insert({ table: "dedup", format: "JSONEachRow", values: [{ batch: `parallel-${i}`, x: 200 + i }] }),
      ),
    );
    expect(await rows(client, "SELECT count() AS n FROM dedup")).toEqual([{ n: 2 + 16 }]);
  });

  // The spool's flush inserts JSONEachRow bytes as they lie in the spool, through client-web to
  // the engine in process and to the server over TCP. Both must store the same thing.
  test("insertRecords: spool rows arrive byte for byte, a replayed token is a no-op (views too), bad data is a data error", async () => {
    const { insertRecords, isDataError } = await import("../../src/storage/insert-rows.ts");
    const { encodeRecord } = await import("../../src/ingest/rows.ts");
    await client.command({ query: "CREATE TABLE events (service_id String, name String, at DateTime64(3, 'UTC')) ENGINE = MergeTree ORDER BY name SETTINGS non_replicated_deduplication_window = 1000" });
    await client.command({ query: "CREATE TABLE event_counts (service_id String, n UInt64) ENGINE = SummingMergeTree ORDER BY service_id SETTINGS non_replicated_deduplication_window = 1000" });
    await client.command({ query: "CREATE MATERIALIZED VIEW event_counts_mv TO event_counts AS SELECT service_id, count() AS n FROM events GROUP BY service_id" });
    const at = Date.parse("2026-11-28T02:46:54.123Z");
    const records = TRICKY_STRINGS.map(([, s]) => encodeRecord("events", "shop", at, { service_id: "shop", name: s, at: new Date(at).toISOString() }));
    const token = `spool-${crypto.randomUUID()}`;
    const first = await insertRecords(client, records, { token });
    expect(first.rows.get("events")).toBe(TRICKY_STRINGS.length);
    expect(first.touched).toEqual(new Map([["shop", new Set(["2026-11-28"])]]));
    await insertRecords(client, records, { token }); // the replay of a flush whose removal did not happen
    await insertRecords(client, records.slice(1), { token }); // other data, same token: the token decides
    const back = await rows(client, "SELECT name, toString(at) AS at FROM events ORDER BY name");
    expect(back).toEqual(TRICKY_STRINGS.map(([, s]) => ({ name: s, at: "2026-11-28 02:46:54.123" })).sort((a, b) => (Buffer.compare(Buffer.from(a.name), Buffer.from(b.name)))));
    expect(await rows(client, "SELECT sum(n) AS n FROM event_counts")).toEqual([{ n: TRICKY_STRINGS.length }]);
    // The token was the statement's own: the next inserts without one are all stored.
    for (let i = 0; i < 6; i++) await insertRecords(client, [encodeRecord("events", "shop", at, { service_id: "shop", name: `plain-${i}`, at: "2026-11-28T00:00:00Z" })]);
    expect(await rows(client, "SELECT count() AS n FROM events")).toEqual([{ n: TRICKY_STRINGS.length + 6 }]);
    const err = await insertRecords(client, [encodeRecord("events", "shop", at, { service_id: "shop", name: "x", at: "not a time" })], { token: `${token}-bad` }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClickHouseError);
    expect(isDataError(err)).toBe(true);
  });

  test("max_result_rows with result_overflow_mode=break applies to its own query only", async () => {
    const query = "SELECT number FROM numbers(1000)";
    const capped = await client.query({
      query,
      format: "JSONEachRow",
      clickhouse_settings: { max_result_rows: "1", result_overflow_mode: "break", max_block_size: "10" },
    });
    const cappedRows = await capped.json<{ number: number }>();
    expect(cappedRows.length).toBeGreaterThan(0);
    expect(cappedRows.length).toBeLessThanOrEqual(20);
    // The next queries (sequential, so they reuse the lane, and parallel, so they spread over all)
    // see no cap.
    for (let i = 0; i < 3; i++) {
      expect((await rows(client, query)).length).toBe(1000);
    }
    const parallel = await Promise.all(Array.from({ length: 8 }, () => rows(client, query)));
    expect(parallel.map((r) => r.length)).toEqual(Array(8).fill(1000));
    // A setting that makes a query fail must not fail the next one either.
    const err = await chError(() =>
      client.query({ query, format: "JSONEachRow", clickhouse_settings: { max_result_rows: "5", result_overflow_mode: "throw" } }),
    );
    expect(err.code).toBe("396");
    expect((await rows(client, query)).length).toBe(1000);
  });

  test("SET and USE statements sent as requests do not change later requests", async () => {
    // Over HTTP without a session, each request is its own session: a SET or USE lasts for that
    // request only. Sequential ones (they reuse one lane) and parallel ones (they spread over all).
    const set = "SET max_result_rows = 1, result_overflow_mode = 'break', max_block_size = 10";
    for (let i = 0; i < 4; i++) {
      await client.command({ query: set });
      await client.command({ query: "USE system" });
    }
    await Promise.all(Array.from({ length: 8 }, (_, i) => client.command({ query: i % 2 ? "USE system" : set })));
    const results = await Promise.all(
      Array.from({ length: 8 }, () => rows<{ d: string; n: string }>(client, "SELECT currentDatabase() AS d, toString(count()) AS n FROM numbers(1000)")),
    );
    expect(results).toEqual(Array(8).fill([{ d: db, n: "1000" }]));
    const many = await Promise.all(Array.from({ length: 8 }, () => rows(client, "SELECT number FROM numbers(1000)")));
    expect(many.map((r) => r.length)).toEqual(Array(8).fill(1000));
  });

  // ---------------------------------------------------------------------------------------------
  // Databases

  test("two clients with different default databases see their own tables", async () => {
    const dbA = uniqueDatabase("conf_a");
    const dbB = uniqueDatabase("conf_b");
    await admin.client.command({ query: `CREATE DATABASE ${dbA}` });
    await admin.client.command({ query: `CREATE DATABASE ${dbB}` });
    const a = mode.open(dbA);
    const b = mode.open(dbB);
    try {
      await a.client.command({ query: "CREATE TABLE t (who String) ENGINE = MergeTree ORDER BY who" });
      await b.client.command({ query: "CREATE TABLE t (who String) ENGINE = MergeTree ORDER BY who" });
      await a.client.command({ query: "CREATE TABLE only_a (x UInt8) ENGINE = MergeTree ORDER BY x" });
      await a.client.insert({ table: "t", values: [{ who: "a" }], format: "JSONEachRow" });
      await b.client.insert({ table: "t", values: [{ who: "b" }, { who: "b2" }], format: "JSONEachRow" });
      // Interleaved and parallel, so lanes switch databases back and forth.
      const answers = await Promise.all(
        Array.from({ length: 12 }, (_, i) =>
          rows<{ d: string; who: string[] }>(i % 2 ? b.client : a.client, "SELECT currentDatabase() AS d, groupArraySorted(10)(who) AS who FROM t"),
        ),
      );
      answers.forEach((ans, i) => {
        expect(ans).toEqual(i % 2 ? [{ d: dbB, who: ["b", "b2"] }] : [{ d: dbA, who: ["a"] }]);
      });
      expect(await rows(a.client, "SELECT count() AS n FROM only_a")).toEqual([{ n: 0 }]);
      const err = await chError(() => b.client.query({ query: "SELECT count() FROM only_a" }));
      expect(err.code).toBe("60");
      // Qualified names cross databases as usual.
      expect(await rows(a.client, `SELECT who FROM ${dbB}.t ORDER BY who`)).toEqual([{ who: "b" }, { who: "b2" }]);
    } finally {
      await a.close();
      await b.close();
      await admin.client.command({ query: `DROP DATABASE IF EXISTS ${dbA} SYNC` });
      await admin.client.command({ query: `DROP DATABASE IF EXISTS ${dbB} SYNC` });
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Errors

  test("errors reach client-web as ClickHouseError with ClickHouse's codes (strings) and types", async () => {
    const unknownTable = await chError(() => client.query({ query: "SELECT * FROM no_such_table_here" }));
    expect(unknownTable.code).toBe("60");
    expect(typeof unknownTable.code).toBe("string");
    expect(unknownTable.type).toBe("UNKNOWN_TABLE");

    const syntax = await chError(() => client.query({ query: "SELEC 1" }));
    expect(syntax.code).toBe("62");
    expect(syntax.type).toBe("SYNTAX_ERROR");

    const setting = await chError(() =>
      client.query({ query: "SELECT 1", clickhouse_settings: { no_such_setting_at_all: 1 } as Record<string, number> }),
    );
    expect(setting.code).toBe("115");
    expect(setting.type).toBe("UNKNOWN_SETTING");

    const badParam = await chError(() => client.query({ query: "SELECT {x:UInt8} AS x", query_params: { x: "not a number" } }));
    expect(badParam.code).toBe("457");
    expect(badParam.type).toBe("BAD_QUERY_PARAMETER");

    const missingParam = await chError(() => client.query({ query: "SELECT {x:UInt8} AS x" }));
    expect(missingParam.code).toBe("456");

    const badInsert = await chError(() => client.insert({ table: "no_such_table_here", values: [{ x: 1 }], format: "JSONEachRow" }));
    expect(badInsert.code).toBe("60");

    // The failed requests left nothing behind on their lanes.
    expect(await rows(client, "SELECT 1 AS ok")).toEqual([{ ok: 1 }]);
  });

  // Status per code as ClickHouse's server sends it (src/Server/HTTP/exceptionCodeToHTTPStatus.cpp).
  // A bad or missing parameter value is a client error, yet the server answers 500 for it: that
  // code is not in the server's table, and the embedded endpoint must not promise more.
  test.each([
    ["unknown table", "SELECT * FROM no_such_table_here", "", "60", 404],
    ["syntax error", "SELEC 1", "", "62", 400],
    ["unknown setting", "SELECT 1", "&no_such_setting_at_all=1", "115", 404],
    ["unknown function", "SELECT no_such_function_at_all(1)", "", "46", 404],
    ["unknown identifier", "SELECT no_such_column_at_all", "", "47", 404],
    ["unknown database", "SELECT 1", "&database=no_such_database_at_all", "81", 404],
    ["type mismatch in a cast", "SELECT CAST('abc' AS UInt8)", "", "6", 400],
    ["bad UInt8 parameter value", "SELECT {x:UInt8}", "&param_x=300x", "457", 500],
    ["missing parameter", "SELECT {x:UInt8}", "", "456", 500],
  ] as const)("raw HTTP: %s has ClickHouse's status and X-ClickHouse-Exception-Code", async (_label, sql, extra, code, status) => {
    for (const [method, init] of [
      ["POST", { method: "POST", body: sql }],
      ["GET", { method: "GET" }],
    ] as const) {
      const query = method === "GET" ? `&query=${encodeURIComponent(sql)}` : "";
      const res = await mode.raw(`/?default_format=JSONEachRow${query}${extra}`, init);
      const body = await res.text();
      expect({ method, status: res.status }).toEqual({ method, status });
      expect(res.headers.get("x-clickhouse-exception-code")).toBe(code);
      expect(body).toContain(`Code: ${code}.`);
    }
  });

  // ---------------------------------------------------------------------------------------------
  // Summary header

  test("X-ClickHouse-Summary: present on success, with written_rows for inserts", async () => {
    await client.command({ query: "CREATE TABLE summ (x UInt32) ENGINE = MergeTree ORDER BY x" });
    const ins = await client.insert({ table: "summ", values: Array.from({ length: 37 }, (_, x) => ({ x })), format: "JSONEachRow" });
    const insSummary = JSON.parse(String(ins.response_headers["x-clickhouse-summary"]));
    expect(insSummary.written_rows).toBe("37");
    expect(Number(insSummary.written_bytes)).toBeGreaterThan(0);

    const compact = await client.insert({ table: "summ", values: [[1], [2], [3]], format: "JSONCompactEachRow" });
    expect(JSON.parse(String(compact.response_headers["x-clickhouse-summary"])).written_rows).toBe("3");

    const sel = await client.query({ query: "SELECT x FROM summ", format: "JSONEachRow" });
    const selSummary = JSON.parse(String(sel.response_headers["x-clickhouse-summary"]));
    expect(Object.keys(selSummary)).toEqual(expect.arrayContaining(["read_rows", "read_bytes", "written_rows", "written_bytes", "elapsed_ns"]));
    expect(selSummary.written_rows).toBe("0");
    expect((await sel.json()).length).toBe(40);

    // INSERT ... SELECT: the summary is there, but chdb's query call reports no written rows, so
    // the embedded engine cannot say how many (a server would say "5"). Not asserted; see README.
    const exec = await client.exec({ query: "INSERT INTO summ SELECT number FROM numbers(5)" });
    await exec.stream.cancel();
    expect(Object.keys(JSON.parse(String(exec.response_headers["x-clickhouse-summary"])))).toContain("written_rows");
    expect(await rows(client, "SELECT count() AS n FROM summ")).toEqual([{ n: 45 }]);
  });

  // ---------------------------------------------------------------------------------------------
  // Concurrency

  test("200 queries in parallel with distinct parameters each get their own answer", async () => {
    const answers = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const s = `q${i}:'"\\${"🎉".repeat(i % 3)}`;
        const [row] = await rows<{ i: number; s: string; sq: string }>(
          client,
          "SELECT {i:UInt32} AS i, {s:String} AS s, toString({i:UInt32} * {i:UInt32}) AS sq",
          { i, s },
        );
        return { expected: { i, s, sq: String(i * i) }, got: row };
      }),
    );
    for (const { expected, got } of answers) expect(got).toEqual(expected);
  }, 60_000);

  test("a long query does not hold up short ones (lanes run in parallel)", async () => {
    const t0 = performance.now();
    // 3 s is the most sleep() allows per block.
    const long = client.query({ query: "SELECT sleep(3) AS s", format: "JSONEachRow" }).then((rs) => rs.json());
    await Bun.sleep(50); // the long query has its lane
    // Short queries in waves, several at once: none should wait behind the long one.
    const latencies: number[] = [];
    for (let wave = 0; wave < 4; wave++) {
      await Promise.all(
        Array.from({ length: 6 }, async (_, i) => {
          const t = performance.now();
          expect(await rows(client, "SELECT {i:UInt32} AS i", { i })).toEqual([{ i }]);
          latencies.push(performance.now() - t);
        }),
      );
    }
    const shortDone = performance.now() - t0;
    await long;
    const longDone = performance.now() - t0;
    expect(longDone).toBeGreaterThanOrEqual(2_900);
    // Had any short query queued behind the long one, it would have finished after ~3 s.
    expect(shortDone).toBeLessThan(2_000);
    expect(Math.max(...latencies)).toBeLessThan(1_500);
  }, 30_000);

  // ---------------------------------------------------------------------------------------------
  // Streaming

  test("1M rows stream with bounded memory", async () => {
    const n = 1_000_000;
    const width = 200;
    const query = `SELECT number, repeat('x', ${width}) AS pad FROM numbers(${n})`;
    /** Streams the query once, counting rows as they come; returns what it saw and the RSS growth. */
    const streamOnce = async () => {
      Bun.gc(true);
      await Bun.sleep(20);
      const before = mode.rss();
      let peak = before;
      // In pieces: the service's embedded client asks for whole answers by default (storage/clickhouse.ts).
      const rs = await client.query({ query, format: "JSONCompactEachRow", clickhouse_settings: { wait_end_of_query: 0 } });
      let count = 0;
      let last = -1;
      let ordered = true;
      let bytes = 0;
      let chunks = 0;
      let sampledAt = 0;
      const reader = rs.stream<[number, string]>().getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        chunks++;
        for (const row of value) {
          bytes += row.text.length + 1;
          if (count % 100_000 === 0 || count === n - 1) {
            const [num, pad] = row.json() as [number, string];
            if (num !== count || pad.length !== width) ordered = false;
            last = num;
          }
          count++;
        }
        if (bytes - sampledAt >= 8 * 2 ** 20) {
          sampledAt = bytes;
          peak = Math.max(peak, mode.rss());
          // Let the collector keep up, so RSS shows what is held, not garbage not yet swept.
          Bun.gc(true);
        }
      }
      peak = Math.max(peak, mode.rss());
      return { count, last, ordered, chunks, resultMb: bytes / 2 ** 20, growthMb: (peak - before) / 2 ** 20, peakMb: peak / 2 ** 20 };
    };
    // The first large query of a process also grows the engine's allocator pools (memory kept
    // for reuse, not the result): measured, bounded loosely; the second run is the steady state.
    const cold = await streamOnce();
    const warm = await streamOnce();
    console.log(
      `[conformance ${mode.name}] 1M-row stream: result ${warm.resultMb.toFixed(0)} MB, ${warm.chunks} chunks at the client; ` +
        `RSS growth cold ${cold.growthMb.toFixed(0)} MB, warm ${warm.growthMb.toFixed(0)} MB (peak ${warm.peakMb.toFixed(0)} MB)`,
    );
    for (const run of [cold, warm]) {
      expect(run.count).toBe(n);
      expect(run.last).toBe(n - 1);
      expect(run.ordered).toBe(true);
      expect(run.resultMb).toBeGreaterThan(190);
      expect(run.chunks).toBeGreaterThan(10); // it came in pieces, not as one buffer
    }
    // A handler that buffered the result measured over 700 MB cold in both modes.
    expect(cold.growthMb).toBeLessThan(2 * cold.resultMb);
    // Steady state: what the stream needs at once. In TCP mode this includes the server process,
    // whose collector the test cannot drive (freed blocks wait there for its next GC): over 10 CI
    // runs its warm growth measured 29–142 MB, and once 201 MB; a buffering handler, 700+ MB.
    expect(warm.growthMb).toBeLessThan(mode.name === "tcp" ? 1.5 * warm.resultMb : 150);
  }, 120_000);

  test("streams the client abandons free their lanes", async () => {
    const big = "SELECT number, repeat('y', 100) AS pad FROM numbers(5000000)";
    // More abandoned streams than there are lanes: if any kept its lane, queries below would queue.
    for (let i = 0; i < 6; i++) {
      const rs = await within(10_000, `abandoned stream ${i}`, client.query({ query: big, format: "JSONCompactEachRow", clickhouse_settings: { wait_end_of_query: 0 } }));
      if (i % 2 === 0) {
        // Read a little, then cancel half-way.
        const reader = rs.stream().getReader();
        const first = await reader.read();
        expect(first.done).toBe(false);
        await reader.cancel();
      } else {
        // Never read: close() cancels the response body.
        await rs.close();
      }
    }
    const t0 = performance.now();
    const results = await within(10_000, "8 queries after abandoned streams", Promise.all(
      Array.from({ length: 8 }, (_, i) => rows<{ i: number }>(client, "SELECT {i:UInt32} AS i", { i })),
    ));
    expect(results).toEqual(Array.from({ length: 8 }, (_, i) => [{ i }]));
    // And sequential ones too (a lane with a stuck stream would get every 4th one).
    for (let i = 0; i < 8; i++) {
      expect(await within(5_000, `query ${i}`, rows(client, "SELECT 1 AS one"))).toEqual([{ one: 1 }]);
    }
    expect(performance.now() - t0).toBeLessThan(10_000);
  }, 60_000);

  // ---------------------------------------------------------------------------------------------
  // Multipart parameters

  test("parameters sent as a multipart body round-trip", async () => {
    const s = `multi'part"\\ \t\n\r ${"ü🎉"} trail\\`;
    const arr = ["it's", 'q"', "b\\", "x\ny"];
    const rs = await client.query({
      query: "SELECT {s:String} AS s, {a:Array(String)} AS a, {n:UInt32} AS n, {s:String} = unhex({h:String}) AS same",
      query_params: { s, a: arr, n: 42, h: hexOf(s) },
      format: "JSONEachRow",
      use_multipart_params: true,
    });
    expect(await rs.json()).toEqual([{ s, a: arr, n: 42, same: 1 }]);

    // A 100 KB parameter: promoted to multipart by the client's auto mode...
    const long = `${"long 'quoted' \\ ü🎉 ".repeat(5000)}end`;
    const auto = await client.query({
      query: "SELECT length({s:String}) AS len, {s:String} = unhex({h:String}) AS same, right({s:String}, 3) AS tail",
      query_params: { s: long, h: hexOf(long) },
      format: "JSONEachRow",
      use_multipart_params_auto: true,
    });
    expect(await auto.json()).toEqual([{ len: Buffer.byteLength(long), same: 1, tail: "end" }]);
    // ...and explicitly, returning the whole value.
    const whole = await client.query({
      query: "SELECT {s:String} AS s",
      query_params: { s: long },
      format: "JSONEachRow",
      use_multipart_params: true,
    });
    expect(await whole.json()).toEqual([{ s: long }]);
  });
});

// -------------------------------------------------------------------------------------------------
// Restart survival: the TCP endpoint on the same data directory (TCP-only, see the file header)

describe("ClickHouse conformance (tcp): data survives a restart of the engine", () => {
  let server: EmbeddedServer;
  let ch: ClickHouse | undefined;
  const db = uniqueDatabase("conf_restart");

  beforeAll(async () => {
    server = await startEmbeddedServer();
  }, 60_000);

  afterAll(async () => {
    await ch?.close();
    await server?.dispose();
  }, 60_000);

  const connect = () => {
    ch = createClickHouse({ url: server.url, database: db });
    return ch.client;
  };

  test("after SIGTERM and after SIGKILL, acknowledged rows are there", async () => {
    const admin = createClickHouse({ url: server.url, database: "default" });
    await admin.client.command({ query: `CREATE DATABASE ${db}` });
    await admin.close();
    let client = connect();
    await client.command({ query: "CREATE TABLE kept (id UInt32, s String) ENGINE = MergeTree ORDER BY id" });
    const first = Array.from({ length: 1000 }, (_, id) => ({ id, s: `it's #${id} ü` }));
    await client.insert({ table: "kept", values: first, format: "JSONEachRow" });

    const termExit = await server.stop("SIGTERM");
    expect(server.running).toBe(false);
    expect(termExit.signal === "SIGTERM" || termExit.code === 0).toBe(true);
    // The endpoint is really gone.
    expect((await client.ping()).success).toBe(false);
    await server.start();
    client = connect();
    expect(await rows(client, "SELECT count() AS n, max(id) AS m FROM kept")).toEqual([{ n: 1000, m: 999 }]);

    // Acknowledged inserts right before a crash.
    const second = Array.from({ length: 500 }, (_, i) => ({ id: 1000 + i, s: `after restart ${i}` }));
    await client.insert({ table: "kept", values: second, format: "JSONEachRow" });
    await client.insert({ table: "kept", values: [{ id: 5000, s: "last before kill" }], format: "JSONEachRow" });
    const killExit = await server.stop("SIGKILL");
    expect(killExit.signal).toBe("SIGKILL");
    await server.start();
    client = connect();
    expect(await rows(client, "SELECT count() AS n, max(id) AS m FROM kept")).toEqual([{ n: 1501, m: 5000 }]);
    expect(await rows(client, "SELECT s FROM kept WHERE id IN (7, 5000) ORDER BY id")).toEqual([
      { s: "it's #7 ü" },
      { s: "last before kill" },
    ]);
    // And the restarted engine takes writes again, and keeps them over one more restart.
    await client.insert({ table: "kept", values: [{ id: 6000, s: "after kill" }], format: "JSONEachRow" });
    expect(await rows(client, "SELECT count() AS n FROM kept")).toEqual([{ n: 1502 }]);
    const port = server.port;
    await server.restart();
    expect(server.port).toBe(port);
    client = connect();
    expect(await rows(client, "SELECT count() AS n FROM kept")).toEqual([{ n: 1502 }]);
  }, 120_000);
});
