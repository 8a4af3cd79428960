// Numbers from the materialized views equal numbers from raw rows, and a replayed insert (same
// insert_deduplication_token) counts once, in the raw table and in every view. Visitor states
// (visitors64, over cityHash64(visitor_id), schemas/04) are compared with counts over the ids
// themselves; a deployment migrated to 04 while holding data keeps every number.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrate } from "../../src/storage/migrate.ts";
import { readSchemaFiles, SCHEMA_DIR } from "../../src/storage/schema-files.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";

const db = uniqueDatabase("views");
const ch = testClickHouse("default");
const client = ch.client;

// Yesterday (UTC), so every TTL keeps the rows.
const day = new Date(Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate() - 1));
const dayIso = day.toISOString().slice(0, 10);
const at = (hhmm: string) => `${dayIso} ${hhmm}:00.000`;
const hour = (hh: string) => `${dayIso}T${hh}:00:00Z`;

beforeAll(async () => {
  await migrate(client, { database: db });
});
afterAll(() => ch.close());

type SessionRow = Record<string, string | number>;
function session(over: SessionRow): SessionRow {
  return {
    service_id: "shop", session_id: "", visitor_id: "", user_id: "", started_at: at("00:00"), ended_at: at("00:00"),
    duration_s: 0, duration_ms: 0, pageviews: 1, events: 0, items: 1, is_bounce: 1, converted: 0,
    entry_path: "/", exit_path: "/", exit_at: at("00:00"), hostname: "shop.example", referrer: "", referrer_domain: "",
    utm_source: "", utm_medium: "", utm_campaign: "", utm_term: "", utm_content: "",
    device: "desktop", browser: "Chrome", os: "macOS", country: "DE", screen_width: 0, screen_height: 0,
    language: "en", timezone: "UTC", sign: 1, version: 1, ...over,
  };
}

const settings = (token: string) => ({ insert_deduplication_token: token, deduplicate_blocks_in_dependent_materialized_views: 1 as const });
async function insert(table: string, values: object[], token: string) {
  await client.insert({ table: `${db}.${table}`, values, format: "JSONEachRow", clickhouse_settings: settings(token) });
}
async function rows<T = Record<string, unknown>>(query: string): Promise<T[]> {
  return (await client.query({ query, format: "JSONEachRow" })).json<T>();
}

// s1 starts as a bounce and is then extended (cancel v1, write v2); s2 stays a bounce; s3 is the
// same visitor as s1, later that day, with a campaign source only; s4 belongs to another service.
const s1v1 = session({ session_id: "s1", visitor_id: "v1", started_at: at("10:15"), utm_source: "newsletter", utm_medium: "email", utm_campaign: "spring" });
const s1v2 = { ...s1v1, version: 2, pageviews: 3, items: 4, events: 1, is_bounce: 0, converted: 1, duration_s: 120, duration_ms: 120_500 };
const s2 = session({ session_id: "s2", visitor_id: "v2", started_at: at("10:40"), device: "mobile", browser: "Safari", os: "iOS", country: "US" });
const s3 = session({ session_id: "s3", visitor_id: "v1", started_at: at("23:30"), pageviews: 2, is_bounce: 0, duration_s: 60, duration_ms: 60_250, utm_source: "newsletter" });
const s4 = session({ service_id: "blog", session_id: "s4", visitor_id: "v9", started_at: at("10:05") });
const secondFlush = [{ ...s1v1, sign: -1 }, { ...s1v2, sign: 1 }, s3, s4];

describe("session views", () => {
  beforeAll(async () => {
    await insert("sessions", [s1v1, s2], "flush-1");
    await insert("sessions", secondFlush, "flush-2");
    // The spool replays the second flush (say the process died before the ack): a no-op.
    await insert("sessions", secondFlush, "flush-2");
  });

  const totals = "sum(sessions) AS sessions, sum(pageviews) AS pageviews, sum(bounces) AS bounces, sum(duration_sum) AS duration_sum, sum(duration_ms_sum) AS duration_ms_sum, sum(conversions) AS conversions, uniqExactMerge(visitors64) AS visitors";
  const raw = "sum(sign) AS sessions, sum(sign * pageviews) AS pageviews, sum(sign * is_bounce) AS bounces, sum(sign * duration_s) AS duration_sum, sum(sign * duration_ms) AS duration_ms_sum, sum(sign * converted) AS conversions, uniqExactIf(visitor_id, sign > 0) AS visitors";

  test("hourly_session_metrics equals raw sessions and the hand count", async () => {
    const view = await rows(`SELECT hour, ${totals} FROM ${db}.hourly_session_metrics WHERE service_id = 'shop' GROUP BY hour ORDER BY hour`);
    const fromRaw = await rows(`SELECT toStartOfHour(started_at) AS hour, ${raw} FROM ${db}.sessions WHERE service_id = 'shop' GROUP BY hour ORDER BY hour`);
    expect(view).toEqual([
      { hour: hour("10"), sessions: 2, pageviews: 4, bounces: 1, duration_sum: 120, duration_ms_sum: 120_500, conversions: 1, visitors: 2 },
      { hour: hour("23"), sessions: 1, pageviews: 2, bounces: 0, duration_sum: 60, duration_ms_sum: 60_250, conversions: 0, visitors: 1 },
    ]);
    expect(fromRaw).toEqual(view);
  });

  test("daily_session_stats equals raw sessions, the collapsed state, and the hand count", async () => {
    const expected = { sessions: 3, pageviews: 6, bounces: 1, duration_sum: 180, duration_ms_sum: 180_750, conversions: 1, visitors: 2 };
    const view = await rows(`SELECT day, ${totals} FROM ${db}.daily_session_stats WHERE service_id = 'shop' GROUP BY day`);
    expect(view).toEqual([{ day: dayIso, ...expected }]);
    const [fromRaw] = await rows(`SELECT ${raw} FROM ${db}.sessions WHERE service_id = 'shop'`);
    expect(fromRaw).toEqual(expected);
    // What the sessions are now, after collapsing: one row each.
    const [live] = await rows(
      `SELECT count() AS sessions, sum(pageviews) AS pageviews, sum(is_bounce) AS bounces, sum(duration_s) AS duration_sum, sum(duration_ms) AS duration_ms_sum, sum(converted) AS conversions, uniqExact(visitor_id) AS visitors FROM ${db}.sessions FINAL WHERE service_id = 'shop'`,
    );
    expect(live).toEqual(expected);
    // Visitors over the day from hourly states: a visitor in two hours counts once.
    const [merged] = await rows(`SELECT uniqExactMerge(visitors64) AS visitors FROM ${db}.hourly_session_metrics WHERE service_id = 'shop'`);
    expect(merged).toEqual({ visitors: 2 });
    const [blog] = await rows(`SELECT ${totals} FROM ${db}.daily_session_stats WHERE service_id = 'blog'`);
    expect(blog).toMatchObject({ sessions: 1, visitors: 1 });
  });

  test("session_distributions equals raw sessions per dimension and the hand count", async () => {
    const view = await rows(
      `SELECT dimension, value, sum(sessions) AS sessions, sum(bounces) AS bounces, uniqExactMerge(visitors64) AS visitors
       FROM ${db}.session_distributions WHERE service_id = 'shop' GROUP BY dimension, value ORDER BY dimension, value`,
    );
    expect(view).toEqual([
      { dimension: "browser", value: "Chrome", sessions: 2, bounces: 0, visitors: 1 },
      { dimension: "browser", value: "Safari", sessions: 1, bounces: 1, visitors: 1 },
      { dimension: "country", value: "DE", sessions: 2, bounces: 0, visitors: 1 },
      { dimension: "country", value: "US", sessions: 1, bounces: 1, visitors: 1 },
      { dimension: "device", value: "desktop", sessions: 2, bounces: 0, visitors: 1 },
      { dimension: "device", value: "mobile", sessions: 1, bounces: 1, visitors: 1 },
      { dimension: "os", value: "iOS", sessions: 1, bounces: 1, visitors: 1 },
      { dimension: "os", value: "macOS", sessions: 2, bounces: 0, visitors: 1 },
    ]);
    for (const dimension of ["device", "browser", "os", "country"]) {
      const fromRaw = await rows(
        `SELECT '${dimension}' AS dimension, toString(${dimension}) AS value, sum(sign) AS sessions, sum(sign * is_bounce) AS bounces, uniqExactIf(visitor_id, sign > 0) AS visitors
         FROM ${db}.sessions WHERE service_id = 'shop' GROUP BY value ORDER BY value`,
      );
      expect(fromRaw).toEqual(view.filter((r) => r.dimension === dimension));
    }
  });

  test("utm_campaign_stats equals raw sessions with a utm_source and the hand count", async () => {
    const view = await rows(
      `SELECT hour, utm_source, utm_medium, utm_campaign, sum(sessions) AS sessions, sum(conversions) AS conversions, uniqExactMerge(visitors64) AS visitors
       FROM ${db}.utm_campaign_stats WHERE service_id = 'shop' GROUP BY ALL ORDER BY hour`,
    );
    expect(view).toEqual([
      { hour: hour("10"), utm_source: "newsletter", utm_medium: "email", utm_campaign: "spring", sessions: 1, conversions: 1, visitors: 1 },
      { hour: hour("23"), utm_source: "newsletter", utm_medium: "", utm_campaign: "", sessions: 1, conversions: 0, visitors: 1 },
    ]);
    const fromRaw = await rows(
      `SELECT toStartOfHour(started_at) AS hour, utm_source, utm_medium, utm_campaign, sum(sign) AS sessions, sum(sign * converted) AS conversions, uniqExactIf(visitor_id, sign > 0) AS visitors
       FROM ${db}.sessions WHERE service_id = 'shop' AND utm_source != '' GROUP BY ALL ORDER BY hour`,
    );
    expect(fromRaw).toEqual(view);
  });

  test("a replay with the same token counts once; a new token would count again (the check can fail)", async () => {
    const one = session({ service_id: "dedup", session_id: "d1", visitor_id: "dv", started_at: at("12:00") });
    const count = async () => {
      const [h] = await rows<{ n: number }>(`SELECT sum(sessions) AS n FROM ${db}.hourly_session_metrics WHERE service_id = 'dedup'`);
      const [d] = await rows<{ n: number }>(`SELECT sum(sessions) AS n FROM ${db}.session_distributions WHERE service_id = 'dedup' AND dimension = 'device'`);
      const [r] = await rows<{ n: number }>(`SELECT sum(sign) AS n FROM ${db}.sessions WHERE service_id = 'dedup'`);
      return [r!.n, h!.n, d!.n];
    };
    await insert("sessions", [one], "dedup-x");
    await insert("sessions", [one], "dedup-x");
    expect(await count()).toEqual([1, 1, 1]);
    await insert("sessions", [one], "dedup-y");
    expect(await count()).toEqual([2, 2, 2]);
  });

  test("a replay is still a no-op after 1,100 other inserts into the table (schemas/08: the window is 10,000 blocks)", async () => {
    // errors: a plain MergeTree with no view reading it, so the fillers are cheap and nothing merges duplicates away.
    const row = (id: string, service: string) => ({
      service_id: service, event_id: id, timestamp: at("12:30"), received_at: at("12:30"), session_id: "s", visitor_id: "v", user_id: "",
      fingerprint: "f", message: "m", stack: "", source: "", line: 1, column: 1, url: "https://x.example/", path: "/",
    });
    const replayed = row(crypto.randomUUID(), "dedup-late");
    const count = async () => Number((await rows<{ n: number }>(`SELECT count() AS n FROM ${db}.errors WHERE service_id = 'dedup-late'`))[0]!.n);
    await insert("errors", [replayed], "late-replay");
    // Other writers' flushes (another service, each its own token), as other instances make.
    for (let i = 0; i < 1_100; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => insert("errors", [row(crypto.randomUUID(), "dedup-filler")], `filler-${i + j}`)));
    }
    await insert("errors", [replayed], "late-replay");
    expect(await count()).toBe(1);
  }, 60_000);
});

describe("item views", () => {
  const item = (over: Record<string, unknown>) => ({
    service_id: "shop", event_id: crypto.randomUUID(), timestamp: at("10:00"), received_at: at("10:00"),
    session_id: "s1", visitor_id: "v1", user_id: "", url: "https://shop.example/", path: "/", ...over,
  });
  const events = [
    item({ name: "signup", timestamp: at("10:05"), user_id: "u1" }),
    item({ name: "signup", timestamp: at("10:50"), visitor_id: "v2", session_id: "s2" }),
    item({ name: "signup", timestamp: at("10:55") }),
    item({ name: "buy", timestamp: at("11:01"), user_id: "u1", conversion: 1 }),
  ].map((e) => ({ hostname: "shop.example", properties: "{}", conversion: 0, ...e }));
  const funnel = [
    item({ funnel: "checkout", step: 1, step_name: "cart" }),
    item({ funnel: "checkout", step: 1, step_name: "cart", session_id: "s2", visitor_id: "v2" }),
    item({ funnel: "checkout", step: 1, step_name: "cart", timestamp: at("10:30") }),
    item({ funnel: "checkout", step: 2, step_name: "pay", timestamp: at("10:31") }),
  ];
  // Values on and just past each threshold: good is <= first, poor is > second.
  const vitals = [
    item({ path: "/a", lcp: 2500, inp: 200, cls: 0.1, fcp: 1800, ttfb: 800 }),
    item({ path: "/a", lcp: 4000, inp: 500, cls: 0.25, fcp: 3000, ttfb: 1800 }),
    item({ path: "/a", lcp: 4000.5, inp: 501, cls: 0.26, fcp: null, ttfb: null }),
  ];
  const pageViews = [
    item({ user_id: "u1", timestamp: at("09:00"), visitor_id: "v0" }),
    item({ user_id: "u1", timestamp: at("09:30") }),
    item({ user_id: "" }),
  ];

  beforeAll(async () => {
    for (let replay = 0; replay < 2; replay++) {
      await insert("events", events, "ev-1");
      await insert("funnel_events", funnel, "fn-1");
      await insert("web_vitals", vitals, "wv-1");
      await insert("page_views", pageViews, "pv-1");
    }
  });

  test("hourly_event_counts equals raw events", async () => {
    const view = await rows(`SELECT hour, name, sum(count) AS count, uniqExactMerge(visitors64) AS visitors FROM ${db}.hourly_event_counts WHERE service_id = 'shop' GROUP BY hour, name ORDER BY hour, name`);
    expect(view).toEqual([
      { hour: hour("10"), name: "signup", count: 3, visitors: 2 },
      { hour: hour("11"), name: "buy", count: 1, visitors: 1 },
    ]);
    const fromRaw = await rows(`SELECT toStartOfHour(timestamp) AS hour, name, count() AS count, uniqExact(visitor_id) AS visitors FROM ${db}.events WHERE service_id = 'shop' GROUP BY hour, name ORDER BY hour, name`);
    expect(fromRaw).toEqual(view);
  });

  test("funnel_stats equals raw funnel events", async () => {
    const view = await rows(`SELECT step, sum(hits) AS hits, uniqExactMerge(sessions) AS sessions FROM ${db}.funnel_stats WHERE service_id = 'shop' AND funnel = 'checkout' GROUP BY step ORDER BY step`);
    expect(view).toEqual([{ step: 1, hits: 3, sessions: 2 }, { step: 2, hits: 1, sessions: 1 }]);
    const fromRaw = await rows(`SELECT step, count() AS hits, uniqExact(session_id) AS sessions FROM ${db}.funnel_events WHERE service_id = 'shop' AND funnel = 'checkout' GROUP BY step ORDER BY step`);
    expect(fromRaw).toEqual(view);
  });

  test("page_performance_stats rates each sample by the API thresholds", async () => {
    const view = await rows(
      `SELECT metric, sum(samples) AS samples, sum(good) AS good, sum(needs_improvement) AS needs_improvement, sum(poor) AS poor, round(sum(value_sum), 3) AS value_sum
       FROM ${db}.page_performance_stats WHERE service_id = 'shop' AND path = '/a' GROUP BY metric ORDER BY metric`,
    );
    expect(view).toEqual([
      { metric: "cls", samples: 3, good: 1, needs_improvement: 1, poor: 1, value_sum: 0.61 },
      { metric: "fcp", samples: 2, good: 1, needs_improvement: 1, poor: 0, value_sum: 4800 },
      { metric: "inp", samples: 3, good: 1, needs_improvement: 1, poor: 1, value_sum: 1201 },
      { metric: "lcp", samples: 3, good: 1, needs_improvement: 1, poor: 1, value_sum: 10500.5 },
      { metric: "ttfb", samples: 2, good: 1, needs_improvement: 1, poor: 0, value_sum: 2600 },
    ]);
    const [lcp] = await rows(`SELECT count() AS samples, countIf(lcp <= 2500) AS good, countIf(lcp > 4000) AS poor FROM ${db}.web_vitals WHERE service_id = 'shop' AND lcp IS NOT NULL`);
    expect(lcp).toEqual({ samples: 3, good: 1, poor: 1 });
  });

  test("user_profiles gathers page views and events of known users", async () => {
    const profiles = await rows(
      `SELECT user_id, min(first_seen) AS first_seen, max(last_seen) AS last_seen, sum(pageviews) AS pageviews, sum(events) AS events
       FROM ${db}.user_profiles WHERE service_id = 'shop' GROUP BY user_id`,
    );
    expect(profiles).toEqual([
      { user_id: "u1", first_seen: `${dayIso}T09:00:00.000Z`, last_seen: `${dayIso}T11:01:00.000Z`, pageviews: 2, events: 2 },
    ]);
  });
});

// A deployment that holds data under the String-state views of 03 migrates to 04 (states over
// cityHash64(visitor_id)), then keeps ingesting: every number still equals raw rows, and applying
// 04 again (what an operator does after its guard refused) changes none.
describe("04 on a deployment that already holds data", () => {
  const old = uniqueDatabase("views04");
  const insertInto = async (table: string, values: object[], token: string) =>
    client.insert({ table: `${old}.${table}`, values, format: "JSONEachRow", clickhouse_settings: settings(token) });
  const hh = (i: number) => at(`${String(i % 24).padStart(2, "0")}:${String((i * 7) % 60).padStart(2, "0")}`);
  const longAgo = new Date(day.getTime() - 40 * 86_400_000).toISOString().slice(0, 10);
  const first = (i: number) => session({
    service_id: i % 5 === 0 ? "blog" : "shop", session_id: `a${i}`, visitor_id: `v${i % 13}`, started_at: i === 1 ? `${longAgo} 08:00:00.000` : hh(i),
    device: ["desktop", "mobile", "tablet"][i % 3]!, country: ["DE", "US"][i % 2]!, utm_source: i % 4 === 0 ? "news" : "", utm_campaign: i % 8 === 0 ? "x" : "",
  });
  const longer = (r: SessionRow, v: number) => ({ ...r, version: v, pageviews: v + 1, is_bounce: 0, duration_s: v * 30, duration_ms: v * 30_250, converted: v > 2 ? 1 : 0 });
  const event = (i: number, suffix: string) => ({
    service_id: "shop", event_id: crypto.randomUUID(), timestamp: hh(i), received_at: hh(i), session_id: `a${i}`, visitor_id: `v${(i * 3) % 11}${suffix}`,
    user_id: "", name: ["signup", "buy", "view"][i % 3], conversion: 0, url: "https://shop.example/", path: "/", hostname: "shop.example", properties: "{}",
  });
  const views = {
    daily: "SELECT service_id, day AS k, sum(sessions) AS n, sum(pageviews) AS p, sum(bounces) AS b, sum(duration_ms_sum) AS d, sum(conversions) AS c, uniqExactMerge(visitors64) AS v FROM daily_session_stats GROUP BY service_id, k",
    hourly: "SELECT service_id, hour AS k, sum(sessions) AS n, sum(pageviews) AS p, sum(bounces) AS b, sum(duration_ms_sum) AS d, sum(conversions) AS c, uniqExactMerge(visitors64) AS v FROM hourly_session_metrics WHERE hour >= now() - INTERVAL 30 DAY GROUP BY service_id, k",
    dist: "SELECT service_id, (hour, dimension, value) AS k, sum(sessions) AS n, sum(bounces) AS b, uniqExactMerge(visitors64) AS v FROM session_distributions GROUP BY service_id, k",
    utm: "SELECT service_id, (hour, utm_source, utm_medium, utm_campaign) AS k, sum(sessions) AS n, sum(conversions) AS c, uniqExactMerge(visitors64) AS v FROM utm_campaign_stats GROUP BY service_id, k",
    events: "SELECT service_id, (hour, name) AS k, sum(count) AS n, uniqExactMerge(visitors64) AS v FROM hourly_event_counts GROUP BY service_id, k",
  };
  // The same numbers from raw rows, visitors counted over the ids themselves.
  const sums = "sum(sign) AS n, sum(sign * pageviews) AS p, sum(sign * is_bounce) AS b, sum(sign * duration_ms) AS d, sum(sign * converted) AS c, uniqExactIf(visitor_id, sign > 0) AS v";
  const raw = {
    daily: `SELECT service_id, toDate(started_at) AS k, ${sums} FROM sessions GROUP BY service_id, k`,
    hourly: `SELECT service_id, toStartOfHour(started_at) AS k, ${sums} FROM sessions WHERE started_at >= now() - INTERVAL 30 DAY GROUP BY service_id, k`,
    dist: `SELECT service_id, (toStartOfHour(started_at), dv.1, dv.2) AS k, sum(sign) AS n, sum(sign * is_bounce) AS b, uniqExactIf(visitor_id, sign > 0) AS v FROM sessions
           ARRAY JOIN [('device', toString(device)), ('browser', toString(browser)), ('os', toString(os)), ('country', toString(country))] AS dv WHERE started_at >= now() - INTERVAL 90 DAY GROUP BY service_id, k`,
    utm: `SELECT service_id, (toStartOfHour(started_at), utm_source, utm_medium, utm_campaign) AS k, sum(sign) AS n, sum(sign * converted) AS c, uniqExactIf(visitor_id, sign > 0) AS v FROM sessions
          WHERE utm_source != '' AND started_at >= now() - INTERVAL 90 DAY GROUP BY service_id, k`,
    events: "SELECT service_id, (toStartOfHour(timestamp), name) AS k, count() AS n, uniqExact(visitor_id) AS v FROM events GROUP BY service_id, k",
  };
  const ordered = (sql: string) =>
    rows(`SELECT * FROM (${sql.replace(/\bFROM (\w+)/g, (_, t: string) => `FROM ${old}.${t}`)}) ORDER BY service_id, toString(k)`);
  async function expectViewsEqualRaw() {
    for (const name of Object.keys(views) as (keyof typeof views)[]) {
      const fromView = await ordered(views[name]);
      expect(fromView.length).toBeGreaterThan(0);
      expect({ name, rows: fromView }).toEqual({ name, rows: await ordered(raw[name]) });
    }
  }

  beforeAll(async () => {
    // Schemas 01-03 only, then two flushes under the old views (new sessions, then updates).
    const dir = mkdtempSync(join(tmpdir(), "schema-03-"));
    for (const f of readdirSync(SCHEMA_DIR).filter((n) => n < "04")) copyFileSync(join(SCHEMA_DIR, f), join(dir, f));
    await migrate(client, { database: old, schemaDir: dir });
    rmSync(dir, { recursive: true, force: true });
    const a = Array.from({ length: 40 }, (_, i) => first(i));
    await insertInto("sessions", a, "old-1");
    await insertInto("sessions", a.filter((_, i) => i % 2 === 0).flatMap((r) => [{ ...r, sign: -1 }, longer(r, 2)]), "old-2");
    await insertInto("events", Array.from({ length: 30 }, (_, i) => event(i, "")), "old-ev");
    const [before] = await rows<{ n: number }>(`SELECT count() AS n FROM system.columns WHERE database = '${old}' AND name = 'visitors64'`);
    expect(before!.n).toBe(0);

    await migrate(client, { database: old });

    // After the switch: updates of sessions written before it, new sessions of old and new
    // visitors, more events.
    const updates = a.filter((_, i) => i % 4 === 0).flatMap((r) => [{ ...longer(r, 2), sign: -1 }, longer(r, 3)]);
    const b = Array.from({ length: 12 }, (_, i) => ({ ...first(i + 3), session_id: `b${i}`, visitor_id: i % 2 ? `v${i}` : `w${i}` }));
    await insertInto("sessions", [...updates, ...b], "new-1");
    await insertInto("events", Array.from({ length: 20 }, (_, i) => event(i + 5, i % 2 ? "" : "n")), "new-ev");
  }, 30_000); // 04 pauses 3 s before its backfill when the database holds sessions

  test("only visitors64 states remain in the targets with visitor states", async () => {
    const states = await rows(
      `SELECT table, name, type FROM system.columns WHERE database = '${old}' AND type LIKE 'AggregateFunction(uniqExact%' AND NOT endsWith(table, '_mv') ORDER BY table, name`,
    );
    expect(states).toEqual([
      { table: "daily_session_stats", name: "visitors64", type: "AggregateFunction(uniqExact, UInt64)" },
      { table: "funnel_stats", name: "sessions", type: "AggregateFunction(uniqExact, String)" },
      { table: "hourly_event_counts", name: "visitors64", type: "AggregateFunction(uniqExact, UInt64)" },
      { table: "hourly_session_metrics", name: "visitors64", type: "AggregateFunction(uniqExact, UInt64)" },
      { table: "session_distributions", name: "visitors64", type: "AggregateFunction(uniqExact, UInt64)" },
      { table: "utm_campaign_stats", name: "visitors64", type: "AggregateFunction(uniqExact, UInt64)" },
    ]);
  });

  test("every target equals raw rows: sums written once, visitors from before and after the switch", async () => {
    await expectViewsEqualRaw();
    const [d] = await rows<{ n: number; v: number }>(`SELECT sum(sessions) AS n, uniqExactMerge(visitors64) AS v FROM ${old}.daily_session_stats WHERE service_id = 'shop'`);
    // 32 old shop sessions + 10 new (b0..b11 less the two on blog); 13 old visitors + 5 new (w*).
    expect(d).toEqual({ n: 32 + 10, v: 13 + 5 });
  });

  test("applying 04 again changes no number", async () => {
    const snapshot = await Promise.all(Object.values(views).map(ordered));
    const [file] = readSchemaFiles(SCHEMA_DIR, old).filter((f) => f.name.startsWith("04-"));
    for (const statement of file!.statements) await client.command({ query: statement });
    expect(await Promise.all(Object.values(views).map(ordered))).toEqual(snapshot);
    await expectViewsEqualRaw();
  });
});
