// A filtered report builds the set of sessions its filters select once, as a Set table, for all
// its questions (src/query/matching-sessions.ts). The answers themselves are checked against brute
// force in items-correctness.test.ts and session-stats-correctness.test.ts; here: that the table
// is really built and read, that it never outlives its report (also when a question fails), and
// what happens when it cannot be made.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ClickHouseClient } from "@clickhouse/client-web";
import { DROP_RETRY, dropLeftoverSetTables, MATCHING_SESSIONS_PREFIX, sharedSetsFor } from "../../src/query/matching-sessions.ts";
import { funnelReport } from "../../src/query/funnel.ts";
import { behaviorSummary, sessionStatsReport } from "../../src/query/reports.ts";
import { resolveRange } from "../../src/query/time-range.ts";
import { migrate } from "../../src/storage/migrate.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";
import { startTestService } from "../helpers/service.ts";
import { type Dataset, loadDataset } from "./fixtures/dataset.ts";

let data: Dataset;
beforeAll(async () => {
  data = await loadDataset(60);
}, 60_000);
afterAll(async () => {
  await data.db.close();
});

const NOW = Date.UTC(2026, 3, 3, 12);
const range = resolveRange({ from: "2026-03-05", to: "2026-04-01", tz: "Europe/Berlin" }, NOW);
const query = (filters: Record<string, string>) => ({ serviceId: "alpha", range, filters, limit: 10 });
const TABLE = new RegExp(`${MATCHING_SESSIONS_PREFIX}[0-9a-f]{24}`);
const TABLES = new RegExp(TABLE.source, "g");

/**
 * The test database's client, passing every statement through and writing it down; `fail` makes
 * the statements it picks fail instead (an injected fault, never a stand-in for the engine).
 */
function recording(fail: (sql: string) => boolean = () => false): { client: ClickHouseClient; sql: string[] } {
  const sql: string[] = [];
  const real = data.db.client;
  const client = new Proxy(real, {
    get(target, prop) {
      if (prop === "query" || prop === "command") {
        return (params: { query: string }) => {
          sql.push(params.query);
          if (fail(params.query)) return Promise.reject(new Error("injected fault"));
          return (target[prop] as (p: unknown) => Promise<unknown>).call(target, params);
        };
      }
      const value = Reflect.get(target, prop);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { client, sql };
}

async function reportTables(): Promise<string[]> {
  const result = await data.db.client.query({
    query: "SELECT name FROM system.tables WHERE database = currentDatabase() AND startsWith(name, {prefix:String}) ORDER BY name",
    query_params: { prefix: MATCHING_SESSIONS_PREFIX },
    format: "JSONEachRow",
  });
  return (await result.json<{ name: string }>()).map((r) => r.name);
}

/** The one report table the recorded statements name, made once as a Set and filled once. */
function theOneSetTable(sql: string[]): string {
  const named = new Set(sql.flatMap((s) => s.match(TABLES) ?? []));
  expect(named.size).toBe(1);
  const table = [...named][0]!;
  expect(sql.filter((s) => s.startsWith(`CREATE TABLE ${table} `) && s.includes("ENGINE = Set"))).toHaveLength(1);
  expect(sql.filter((s) => s.startsWith(`INSERT INTO ${table} `))).toHaveLength(1);
  return table;
}

describe("a filtered summary's set of matching sessions", () => {
  test("is built once into one table, read by the four item lists, and dropped when the report is done", async () => {
    const q = query({ device: "mobile" });
    const { client, sql } = recording();
    const shared = await behaviorSummary(client, q, { now: NOW, sharedSets: true });
    expect(shared).toEqual(await behaviorSummary(data.db.client, q, { now: NOW }));
    // Some mobile sessions have items, so the lists are not empty by accident.
    expect(shared.top_pages.length).toBeGreaterThan(0);

    const table = theOneSetTable(sql);
    // page_views, events, web_vitals, errors: each reads the table instead of its own subquery.
    const readers = sql.filter((s) => s.includes(`IN ${table}`));
    expect(readers.map((s) => /FROM (page_views|events|web_vitals|errors)\s/.exec(s)?.[1]).sort()).toEqual(["errors", "events", "page_views", "web_vitals"]);
    expect(sql.filter((s) => s.includes("FROM sessions WHERE") && s.includes("HAVING sum(sign) > 0") && !s.startsWith("INSERT"))).toHaveLength(0);
    expect(await reportTables()).toEqual([]);
  });

  test("is not built without attribute filters, nor when sharedSets is off", async () => {
    for (const [filters, sharedSets] of [[{}, true], [{ country: "DE" }, false], [{ path: "/pricing" }, false]] as const) {
      const { client, sql } = recording();
      const got = await behaviorSummary(client, query(filters), { now: NOW, sharedSets });
      expect(got).toEqual(await behaviorSummary(data.db.client, query(filters), { now: NOW }));
      expect(sql.filter((s) => TABLE.test(s))).toEqual([]);
    }
  });

  test("is dropped when an item list fails (injected fault on the web vitals query), and the error reaches the caller", async () => {
    const { client, sql } = recording((s) => s.includes("FROM web_vitals"));
    await expect(behaviorSummary(client, query({ country: "DE" }), { now: NOW, sharedSets: true })).rejects.toThrow("injected fault");
    // The report settles its other questions and the drop after the failure: wait for the drop.
    for (let i = 0; i < 100 && !sql.some((s) => s.startsWith("DROP TABLE")); i++) await Bun.sleep(20);
    await Bun.sleep(50);
    expect(sql.some((s) => s.startsWith("DROP TABLE IF EXISTS matching_sessions_"))).toBe(true);
    expect(await reportTables()).toEqual([]);
  });

  test("that cannot be created (injected: CREATE TABLE refused, as for a read-only user) leaves each list its own set, same answer", async () => {
    const q = query({ utm_source: "newsletter" });
    const { client, sql } = recording((s) => s.startsWith("CREATE TABLE"));
    const got = await behaviorSummary(client, q, { now: NOW, sharedSets: true });
    expect(got).toEqual(await behaviorSummary(data.db.client, q, { now: NOW }));
    expect(sql.filter((s) => s.startsWith("CREATE TABLE"))).toHaveLength(1);
    expect(sql.filter((s) => s.includes("HAVING sum(sign) > 0"))).toHaveLength(4);
    expect(await reportTables()).toEqual([]);
  });
});

describe("a filtered funnel's set of matching sessions", () => {
  test("is built once into one table, read by the levels and the step names, and dropped", async () => {
    const q = { serviceId: "alpha", funnel: "signup", range, filters: { device: "mobile" }, windowSeconds: 86_400, by: "session" as const };
    const { client, sql } = recording();
    const shared = await funnelReport(client, q, { now: NOW, sharedSets: true });
    expect(shared).toEqual(await funnelReport(data.db.client, q, { now: NOW }));
    expect(shared.steps.length).toBeGreaterThan(0);

    const table = theOneSetTable(sql);
    // The levels read it once, the step names twice (the latest named time, then its names).
    expect(sql.map((s) => s.split(`IN ${table}`).length - 1).reduce((a, b) => a + b)).toBe(3);
    expect(sql.filter((s) => s.includes("HAVING sum(sign) > 0") && !s.startsWith("INSERT"))).toHaveLength(0);
    expect(await reportTables()).toEqual([]);
  });
});

describe("a path filter's set of sessions on that path", () => {
  test("is built once for the five questions of /v1/sessions/stats, from the previous range's start, and dropped", async () => {
    // Two weeks, so that the previous two weeks hold data too.
    const q = { serviceId: "alpha", range: resolveRange({ from: "2026-03-19", to: "2026-04-01", tz: "Europe/Berlin" }, NOW), filters: { path: "/pricing" } };
    const { client, sql } = recording();
    const shared = await sessionStatsReport(client, q, "day", { now: NOW, sharedSets: true });
    expect(shared).toEqual(await sessionStatsReport(data.db.client, q, "day", { now: NOW }));
    expect(shared.totals.sessions).toBeGreaterThan(0);
    expect(shared.previous.sessions).toBeGreaterThan(0);

    const named = new Set(sql.flatMap((s) => s.match(TABLES) ?? []));
    expect(named.size).toBe(1);
    const table = [...named][0]!;
    expect(sql.filter((s) => s.startsWith(`CREATE TABLE ${table} (h UInt64) ENGINE = Set`))).toHaveLength(1);
    const fill = sql.filter((s) => s.startsWith(`INSERT INTO ${table} `));
    expect(fill).toHaveLength(1);
    expect(fill[0]).toContain("FROM page_views");
    // totals with the series (one read), previous totals, utm, the four distributions (one read)
    expect(sql.filter((s) => s.includes(`session_hash IN ${table}`))).toHaveLength(4);
    expect(sql.filter((s) => s.includes("FROM page_views") && !s.startsWith("INSERT"))).toHaveLength(0);
    expect(await reportTables()).toEqual([]);
  });

  test("with attribute filters too, the summary builds both sets side by side: the session questions read one, the item lists the other", async () => {
    const q = query({ device: "mobile", path: "/docs" });
    const { client, sql } = recording();
    const shared = await behaviorSummary(client, q, { now: NOW, sharedSets: true });
    expect(shared).toEqual(await behaviorSummary(data.db.client, q, { now: NOW }));
    expect(shared.sessions.sessions).toBeGreaterThan(0);
    expect(sql.filter((s) => s.startsWith("CREATE TABLE"))).toHaveLength(2);
    const filledFrom = (table: string) => sql.find((s) => s.startsWith("INSERT INTO") && s.includes(`FROM ${table} `))!.match(TABLE)![0];
    const [onPath, matching] = [filledFrom("page_views"), filledFrom("sessions")];
    expect(onPath).not.toBe(matching);
    // totals, and the entry, exit and referrer lists (one read); and pages, events, vitals, errors
    expect(sql.filter((s) => s.includes(`IN ${onPath}`) && /FROM sessions\s/.test(s))).toHaveLength(2);
    expect(sql.filter((s) => s.includes(`IN ${matching}`) && /FROM (page_views|events|web_vitals|errors)\s/.test(s))).toHaveLength(4);
    expect(await reportTables()).toEqual([]);
  });
});

test("a DROP that fails (injected fault on the first DROP) is tried again a moment later, and the report is answered meanwhile", async () => {
  let drops = 0;
  const { client, sql } = recording((s) => s.startsWith("DROP TABLE") && drops++ === 0);
  const before = DROP_RETRY.ms;
  // Long enough that the table is still there when the report has answered, on a loaded machine
  // too (the reference answer is computed first: at 200 ms, computing it after the report let the
  // retry drop the table before the check, under a parallel load).
  DROP_RETRY.ms = 1000;
  try {
    const q = query({ device: "mobile" });
    const reference = await behaviorSummary(data.db.client, q, { now: NOW });
    expect(await behaviorSummary(client, q, { now: NOW, sharedSets: true })).toEqual(reference);
    const table = sql.find((s) => s.startsWith("CREATE TABLE"))!.match(TABLE)![0];
    expect(await reportTables()).toEqual([table]);
    for (let i = 0; i < 100 && (await reportTables()).length > 0; i++) await Bun.sleep(50);
    expect(await reportTables()).toEqual([]);
    expect(sql.filter((s) => s.startsWith(`DROP TABLE IF EXISTS ${table}`))).toHaveLength(2);
  } finally {
    DROP_RETRY.ms = before;
  }
});

test("many filtered reports at once each get their own tables and the answers of their own sets; none is left", async () => {
  const filters: Array<Record<string, string>> = [{ device: "mobile" }, { country: "DE" }, { path: "/pricing" }, { device: "desktop", path: "/docs" }, { utm_source: "newsletter" }, { browser: "Firefox" }];
  const reports = (sharedSets: boolean) =>
    filters.flatMap((f) => [
      behaviorSummary(data.db.client, query(f), { now: NOW, sharedSets }),
      sessionStatsReport(data.db.client, query(f), "week", { now: NOW, sharedSets }),
    ]);
  const { client, sql } = recording();
  const concurrent = await Promise.all(filters.flatMap((f) => [
    behaviorSummary(client, query(f), { now: NOW, sharedSets: true }),
    sessionStatsReport(client, query(f), "week", { now: NOW, sharedSets: true }),
  ]));
  expect(concurrent).toEqual(await Promise.all(reports(false)));
  // Summaries: one table per kind of filter present (attributes, path), 5 + 2; stats: one per path filter, 2.
  const tables = new Set(sql.flatMap((s) => s.match(TABLES) ?? []));
  expect(tables.size).toBe(7 + 2);
  expect(await reportTables()).toEqual([]);
});

test("dropLeftoverSetTables drops the tables with the exact name shape of report tables and nothing else", async () => {
  const left = [`${MATCHING_SESSIONS_PREFIX}${"a".repeat(24)}`, `${MATCHING_SESSIONS_PREFIX}${"0123456789ab".repeat(2)}`];
  const other = `${MATCHING_SESSIONS_PREFIX}kept`;
  for (const name of [...left, other]) await data.db.client.command({ query: `CREATE TABLE ${name} (h UInt64) ENGINE = Set SETTINGS persistent = 0` });
  expect(await reportTables()).toEqual([...left, other].sort());
  expect(await dropLeftoverSetTables(data.db.client)).toBe(2);
  expect(await reportTables()).toEqual([other]);
  expect(await dropLeftoverSetTables(data.db.client)).toBe(0);
  await data.db.client.command({ query: `DROP TABLE ${other} SYNC` });
});

test("set tables only with the embedded engine: behind a server URL may stand shards or replicas that would not see one node's table", () => {
  expect(sharedSetsFor({ url: undefined })).toBe(true);
  expect(sharedSetsFor({ url: "http://127.0.0.1:8123" })).toBe(false);
});

test("a service starting on the embedded engine drops the report tables a killed process left in its database", async () => {
  const database = uniqueDatabase("leftover");
  const bootstrap = testClickHouse("default");
  await migrate(bootstrap.client, { database });
  await bootstrap.close();
  const ch = testClickHouse(database);
  const left = [`${MATCHING_SESSIONS_PREFIX}${"b".repeat(24)}`, `${MATCHING_SESSIONS_PREFIX}${"c".repeat(24)}`];
  const other = `${MATCHING_SESSIONS_PREFIX}not_ours`;
  for (const name of [...left, other]) await ch.client.command({ query: `CREATE TABLE ${name} (h UInt64) ENGINE = Set SETTINGS persistent = 0` });
  const names = async () =>
    (await (await ch.client.query({ query: "SELECT name FROM system.tables WHERE database = currentDatabase() AND engine = 'Set' ORDER BY name", format: "JSONEachRow" })).json<{ name: string }>()).map((r) => r.name);
  expect(await names()).toEqual([...left, other].sort());
  const svc = await startTestService({}, { database });
  try {
    // Dropped before the service is returned: before it could take a report.
    expect(await names()).toEqual([other]);
  } finally {
    await svc.dispose();
    await ch.close();
  }
});

