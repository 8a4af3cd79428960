// Numbers from the materialized views equal numbers from raw rows, and a replayed insert (same
// insert_deduplication_token) counts once, in the raw table and in every view.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { migrate } from "../../src/storage/migrate.ts";
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

  const totals = "sum(sessions) AS sessions, sum(pageviews) AS pageviews, sum(bounces) AS bounces, sum(duration_sum) AS duration_sum, sum(duration_ms_sum) AS duration_ms_sum, sum(conversions) AS conversions, uniqExactMerge(visitors) AS visitors";
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
    const [merged] = await rows(`SELECT uniqExactMerge(visitors) AS visitors FROM ${db}.hourly_session_metrics WHERE service_id = 'shop'`);
    expect(merged).toEqual({ visitors: 2 });
    const [blog] = await rows(`SELECT ${totals} FROM ${db}.daily_session_stats WHERE service_id = 'blog'`);
    expect(blog).toMatchObject({ sessions: 1, visitors: 1 });
  });

  test("session_distributions equals raw sessions per dimension and the hand count", async () => {
    const view = await rows(
      `SELECT dimension, value, sum(sessions) AS sessions, sum(bounces) AS bounces, uniqExactMerge(visitors) AS visitors
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
      `SELECT hour, utm_source, utm_medium, utm_campaign, sum(sessions) AS sessions, sum(conversions) AS conversions
       FROM ${db}.utm_campaign_stats WHERE service_id = 'shop' GROUP BY ALL ORDER BY hour`,
    );
    expect(view).toEqual([
      { hour: hour("10"), utm_source: "newsletter", utm_medium: "email", utm_campaign: "spring", sessions: 1, conversions: 1 },
      { hour: hour("23"), utm_source: "newsletter", utm_medium: "", utm_campaign: "", sessions: 1, conversions: 0 },
    ]);
    const fromRaw = await rows(
      `SELECT toStartOfHour(started_at) AS hour, utm_source, utm_medium, utm_campaign, sum(sign) AS sessions, sum(sign * converted) AS conversions
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
    const view = await rows(`SELECT hour, name, sum(count) AS count, uniqExactMerge(visitors) AS visitors FROM ${db}.hourly_event_counts WHERE service_id = 'shop' GROUP BY hour, name ORDER BY hour, name`);
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
