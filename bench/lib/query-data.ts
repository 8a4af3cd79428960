// The query benchmark's data set, generated inside the engine (no JS per row): one service, 30
// UTC days ending at `endMs` (a UTC midnight), ~1.8M sessions whose items add up to ~10M events
// (page views ~6M, custom events ~2.4M, Web Vitals ~1M, funnel steps ~0.3M, errors ~0.1M).
// Every row comes from `INSERT ... SELECT ... FROM numbers(S) ARRAY JOIN range(k)` with
// deterministic hashes (cityHash64(session, salt)), so the same arguments give the same data.
// Sessions are written as their final state (one +1 row, version 1) with pageviews / events /
// items / is_bounce / converted / entry and exit paths / duration consistent with their items;
// the materialized views fill themselves from these inserts.
//
//   bun bench/lib/query-data.ts <dataDir> <serviceId> <sessions> <endMs>   → GEN_JSON {...}
import { join, resolve } from "node:path";

// v2: sessions.updated_at = ended_at (left to DEFAULT now64(), every session looked just changed
// and the service's start-up warm-up loaded all 1.7M session states: no readyz within 90 s).
// v3: the views' visitor states are over cityHash64(visitor_id) (schemas/04); a v2 directory
// holds the String states and no 04.
// v4: schema 05's hash columns (visitor_hash, session_hash, MATERIALIZED) are written by these
// inserts; in a v3 directory the service's start would add them to existing parts, which then
// compute them on every read (and the benchmark would measure that, not the stored columns).
export const GENERATOR_VERSION = 4;

const root = process.env.BENCH_SRC_ROOT ?? resolve(import.meta.dir, "..", "..");

/** Weighted pick: one array slot per unit of weight, `arrayElement([...], 1 + h % total)`. */
function pick(weights: Record<string, number>, h: string): string {
  const slots: string[] = [];
  for (const [v, w] of Object.entries(weights)) for (let i = 0; i < w; i++) slots.push(v);
  return `arrayElement([${slots.map((s) => `'${s}'`).join(",")}], 1 + ${h} % ${slots.length})`;
}
const h = (salt: number, extra = "") => `cityHash64(i, ${salt}${extra})`;

// Diurnal traffic (UTC hours), weights sum to 100.
const HOURS: Record<string, number> = { 0: 2, 1: 1, 2: 1, 3: 1, 4: 1, 5: 2, 6: 3, 7: 4, 8: 5, 9: 6, 10: 6, 11: 6, 12: 6, 13: 6, 14: 6, 15: 6, 16: 6, 17: 6, 18: 6, 19: 6, 20: 5, 21: 4, 22: 3, 23: 2 };
const PATHS: Record<string, number> = {
  "/": 14, "/pricing": 8, "/features": 7, "/blog": 6, "/docs": 8, "/docs/getting-started": 6, "/docs/api": 5, "/about": 3, "/contact": 2, "/login": 6,
  "/signup": 4, "/dashboard": 8, "/settings": 3, "/blog/launch": 4, "/blog/performance": 3, "/changelog": 2, "/careers": 1, "/cart": 4, "/checkout": 3, "/search": 5,
};
const ENTRY: Record<string, number> = { "/": 40, "/pricing": 10, "/blog/launch": 8, "/blog/performance": 6, "/docs": 10, "/docs/getting-started": 8, "/features": 8, "/login": 10 };
const REFERRERS: Record<string, number> = { "": 45, "google.com": 28, "bing.com": 5, "duckduckgo.com": 2, "facebook.com": 5, "t.co": 4, "news.ycombinator.com": 3, "reddit.com": 3, "linkedin.com": 2, "github.com": 3 };
const UTM: Record<string, number> = { "google|cpc|brand": 25, "google|cpc|spring_sale": 20, "newsletter|email|weekly_digest": 20, "facebook|social|retargeting": 15, "twitter|social|launch": 10, "partner|referral|partner_q3": 10 };
const DEVICE: Record<string, number> = { desktop: 55, mobile: 40, tablet: 5 };
const BROWSER: Record<string, number> = { Chrome: 63, Safari: 20, Edge: 8, Firefox: 7, "Samsung Internet": 2 };
const OS_DESKTOP: Record<string, number> = { Windows: 60, macOS: 30, Linux: 10 };
const OS_MOBILE: Record<string, number> = { Android: 58, iOS: 42 };
const COUNTRY: Record<string, number> = { US: 30, DE: 12, GB: 8, IN: 8, FR: 6, BR: 5, CA: 4, NL: 3, JP: 3, ES: 3, IT: 3, PL: 2, SE: 2, AU: 2, CH: 2, AT: 2, MX: 2, KR: 1, SG: 1, ZA: 1 };
const CUSTOM: Record<string, number> = { click: 30, scroll: 20, search: 10, video_play: 8, add_to_cart: 8, share: 5, download: 7, form_submit: 7, signup: 3, newsletter_subscribe: 2 };

/** Per-session columns (i = session number), shared by every insert. */
function sessionSelect(S: number, startMs: number): string {
  const utm = `splitByChar('|', if(${h(11)} % 100 < 22, ${pick(UTM, h(12))}, '||'))`;
  return `SELECT i,
      ${startMs} + (${h(1)} % 30) * 86400000 + toUInt64(${pick(HOURS, h(2))}) * 3600000 + ${h(3)} % 3600000 AS start_ms,
      if(${h(4)} % 100 < 42, 1, 2 + least(28, toUInt32(floor(-log((${h(5)} % 1000000 + 1) / 1000001.) * 2.6)))) AS pv,
      if(pv = 1, if(${h(6)} % 100 < 85, 0, 1), toUInt32(${h(7)} % (2 * pv))) AS ce0,
      toUInt32(if(${h(8)} % 100 < 18, 1 + least(3, toUInt32(floor(-log((${h(9)} % 1000 + 1) / 1001.) * 0.9))), 0)) AS nf,
      nf = 4 AS converted,
      ce0 + converted AS ce,
      toUInt32(if(${h(10)} % 100 < 55, 1, 0)) AS nv,
      toUInt32(if(${h(13)} % 100 < 5, 1, 0)) AS ne,
      8000 + ${h(14)} % 90000 AS gap,
      ${h(15)} % 700000 AS vis,
      concat('v', toString(vis)) AS visitor_id,
      if(cityHash64(vis, 16) % 100 < 15, concat('u', toString(vis)), '') AS user_id,
      lower(hex(${h(17)})) AS session_id,
      ${pick(REFERRERS, h(18))} AS referrer_domain,
      if(referrer_domain = '', '', concat('https://', referrer_domain, '/')) AS referrer,
      ${utm}[1] AS utm_source, ${utm}[2] AS utm_medium, ${utm}[3] AS utm_campaign,
      ${pick(DEVICE, h(19))} AS device,
      if(device = 'desktop', ${pick(OS_DESKTOP, h(20))}, ${pick(OS_MOBILE, h(20))}) AS os,
      if(os IN ('iOS', 'macOS') AND ${h(21)} % 100 < 70, 'Safari', ${pick(BROWSER, h(22))}) AS browser,
      ${pick(COUNTRY, h(23))} AS country,
      pv = 1 AND ce = 0 AS is_bounce,
      toUInt64((pv - 1) * gap + if(ce + nv + ne + nf > 0, 1500, 0)) AS duration_ms
    FROM (SELECT number AS i FROM numbers(${S}))`;
}
/** Path of page k of session i. */
const pathOf = (k: string) => `if(${k} = 0, ${pick(ENTRY, `cityHash64(i, 30)`)}, if(cityHash64(i, ${k}, 31) % 100 < 25, concat('/product/', toString(cityHash64(i, ${k}, 32) % 400)), ${pick(PATHS, `cityHash64(i, ${k}, 33)`)}))`;
const ts = (offsetExpr: string) => `fromUnixTimestamp64Milli(toInt64(start_ms + ${offsetExpr}), 'UTC')`;

export function statements(S: number, startMs: number, serviceId: string): { table: string; sql: string }[] {
  const base = sessionSelect(S, startMs);
  const svc = `'${serviceId}'`;
  const common = `${svc} AS service_id, generateUUIDv4(i * 64 + k) AS event_id`;
  return [
    {
      table: "sessions",
      sql: `INSERT INTO sessions (service_id, session_id, visitor_id, user_id, started_at, ended_at, duration_s, duration_ms, pageviews, events, items, is_bounce, converted, entry_path, exit_path, exit_at, hostname, referrer, referrer_domain, utm_source, utm_medium, utm_campaign, utm_term, utm_content, device, browser, os, country, screen_width, screen_height, language, timezone, sign, version, updated_at)
        SELECT ${svc}, session_id, visitor_id, user_id, ${ts("0")}, ${ts("duration_ms")}, intDiv(duration_ms, 1000), duration_ms, pv, ce, pv + ce + nv + ne + nf, is_bounce, converted,
          ${pathOf("0")}, ${pathOf("(pv - 1)")}, ${ts("(pv - 1) * gap")}, 'example.com', referrer, referrer_domain, utm_source, utm_medium, utm_campaign, '', '',
          device, browser, os, country, if(device = 'desktop', 1920, 390), if(device = 'desktop', 1080, 844), if(country = 'DE', 'de-DE', 'en-US'), if(country = 'DE', 'Europe/Berlin', 'UTC'), 1, 1, ${ts("duration_ms")}
        FROM (${base})`,
    },
    {
      table: "page_views",
      sql: `INSERT INTO page_views (service_id, event_id, timestamp, received_at, session_id, visitor_id, user_id, url, path, hostname, title, referrer, referrer_domain, utm_source, utm_medium, utm_campaign, device, browser, os, country)
        SELECT ${common}, ${ts("k * gap")} AS t, t, session_id, visitor_id, user_id, concat('https://example.com', ${pathOf("k")}), ${pathOf("k")}, 'example.com', 'Example',
          if(k = 0, referrer, ''), if(k = 0, referrer_domain, ''), utm_source, utm_medium, utm_campaign, device, browser, os, country
        FROM (${base}) ARRAY JOIN range(pv) AS k`,
    },
    {
      table: "events",
      sql: `INSERT INTO events (service_id, event_id, timestamp, received_at, session_id, visitor_id, user_id, name, conversion, url, path, hostname, properties)
        SELECT ${common}, ${ts("(k % pv) * gap + 1000")} AS t, t, session_id, visitor_id, user_id,
          if(converted AND k = ce - 1, 'purchase', ${pick(CUSTOM, "cityHash64(i, k, 40)")}) AS name, name IN ('purchase', 'signup'),
          concat('https://example.com', ${pathOf("(k % pv)")}), ${pathOf("(k % pv)")}, 'example.com', concat('{"plan":"', if(cityHash64(i, 41) % 3 = 0, 'pro', 'free'), '","value":', toString(cityHash64(i, k, 42) % 100), '}')
        FROM (${base}) ARRAY JOIN range(ce) AS k`,
    },
    {
      table: "web_vitals",
      sql: `INSERT INTO web_vitals (service_id, event_id, timestamp, received_at, session_id, visitor_id, user_id, url, path, lcp, inp, cls, fcp, ttfb)
        SELECT ${common}, ${ts("1500")} AS t, t, session_id, visitor_id, user_id, concat('https://example.com', ${pathOf("0")}), ${pathOf("0")},
          800 + cityHash64(i, 50) % 4000, if(cityHash64(i, 51) % 100 < 60, 40 + cityHash64(i, 52) % 500, NULL), (cityHash64(i, 53) % 300) / 1000., 500 + cityHash64(i, 54) % 2500, 100 + cityHash64(i, 55) % 1500
        FROM (${base}) ARRAY JOIN range(nv) AS k`,
    },
    {
      table: "funnel_events",
      sql: `INSERT INTO funnel_events (service_id, event_id, timestamp, received_at, session_id, visitor_id, user_id, funnel, step, step_name, url, path)
        SELECT ${common}, ${ts("(k % pv) * gap + 1200")} AS t, t, session_id, visitor_id, user_id, 'checkout', k + 1,
          arrayElement(['view_product', 'add_to_cart', 'checkout', 'purchase'], k + 1), 'https://example.com/cart', '/cart'
        FROM (${base}) ARRAY JOIN range(nf) AS k`,
    },
    {
      table: "errors",
      sql: `INSERT INTO errors (service_id, event_id, timestamp, received_at, session_id, visitor_id, user_id, fingerprint, message, stack, source, line, column, url, path)
        SELECT ${common}, ${ts("700")} AS t, t, session_id, visitor_id, user_id, toString(cityHash64(i, 60) % 25) AS fp,
          concat('TypeError: cannot read properties of undefined (#', fp, ')'), 'at app.js:1:1', 'https://example.com/app.js', 1 + toUInt32(fp) * 7, 13, concat('https://example.com', ${pathOf("0")}), ${pathOf("0")}
        FROM (${base}) ARRAY JOIN range(ne) AS k`,
    },
  ];
}

if (import.meta.main) {
  const [dataDir, serviceId, sArg, endArg] = process.argv.slice(2);
  if (!dataDir || !serviceId || !sArg || !endArg) throw new Error("usage: query-data.ts <dataDir> <serviceId> <sessions> <endMs>");
  const { createClickHouse } = (await import(join(root, "src", "storage", "clickhouse.ts"))) as typeof import("../../src/storage/clickhouse.ts");
  const { migrate } = (await import(join(root, "src", "storage", "migrate.ts"))) as typeof import("../../src/storage/migrate.ts");
  const S = Number(sArg);
  const endMs = Number(endArg);
  const admin = createClickHouse({ dataDir, database: "default", embeddedLanes: 1 });
  await migrate(admin.client, { database: "analytics_db" });
  await admin.close();
  const ch = createClickHouse({ dataDir, database: "analytics_db", embeddedLanes: 1, requestTimeoutMs: 600_000 });
  const out: Record<string, unknown> = { sessions: S, startMs: endMs - 30 * 86_400_000, endMs, version: GENERATOR_VERSION };
  const t0 = performance.now();
  for (const st of statements(S, endMs - 30 * 86_400_000, serviceId)) {
    const s = performance.now();
    await ch.client.command({ query: st.sql, clickhouse_settings: { max_insert_threads: 2 } as never });
    out[`${st.table}_ms`] = Math.round(performance.now() - s);
  }
  // Merge what the inserts left in many parts, as a day of background merges would.
  for (const t of ["sessions", "page_views", "events", "web_vitals", "funnel_events", "errors", "daily_session_stats", "hourly_session_metrics", "session_distributions", "utm_campaign_stats", "hourly_event_counts", "funnel_stats", "page_performance_stats"]) {
    await ch.client.command({ query: `OPTIMIZE TABLE ${t} FINAL` });
  }
  out.total_ms = Math.round(performance.now() - t0);
  const rs = await ch.client.query({
    query: `SELECT (SELECT count() FROM page_views) AS page_views, (SELECT count() FROM events) AS events, (SELECT count() FROM web_vitals) AS web_vitals,
      (SELECT count() FROM funnel_events) AS funnel_events, (SELECT count() FROM errors) AS errors, (SELECT count() FROM sessions) AS session_rows,
      (SELECT uniqExact(visitor_id) FROM sessions) AS visitors, (SELECT avg(pageviews) FROM sessions) AS avg_pageviews, (SELECT avg(is_bounce) FROM sessions) AS bounce_rate,
      (SELECT quantile(0.5)(duration_ms) FROM sessions) AS median_duration_ms`,
    format: "JSONEachRow",
  });
  Object.assign(out, ((await rs.json()) as object[])[0]);
  await ch.close();
  console.log(`GEN_JSON ${JSON.stringify(out)}`);
  process.exit(0);
}
