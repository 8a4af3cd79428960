// Hourly series across DST changes, against an independent model of local hours
// (tests/e2e/zones.ts): a bucket is a local date and hour at one UTC offset. So New York's repeated
// 01:00 is two buckets (25 in the day), a skipped hour is none (23), and a change off the hour
// starts a bucket mid-hour: Australia/Lord_Howe's spring day has an "02" bucket of 30 minutes and
// its autumn day repeats 01:30-02:00 as a bucket of its own; Pacific/Chatham changes at :45.
// ClickHouse's toStartOfHour gets those wrong (Lord Howe's 03:00-03:30 in the "02" hour), so such
// ranges are bucketed by local label and offset.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { sessionSeries } from "../../src/query/session-metrics.ts";
import { resolveRange } from "../../src/query/time-range.ts";
import { buckets } from "../e2e/zones.ts";
import { type AnalyticsDb, createAnalyticsDb } from "./fixtures/analytics-db.ts";

const MIN = 60_000;
// [zone, local date, local hours that day]: DST days of whole-hour zones, of zones with
// half-hour and 45-minute offsets, Lord Howe's 30-minute changes, and days next to them.
const DAYS: Array<[string, string, number]> = [
  ["Australia/Lord_Howe", "2026-10-04", 24],
  ["Australia/Lord_Howe", "2026-04-05", 25],
  ["Australia/Lord_Howe", "2026-10-05", 24],
  ["America/New_York", "2026-11-01", 25],
  ["America/New_York", "2026-03-08", 23],
  ["Europe/Berlin", "2026-03-29", 23],
  ["Asia/Kolkata", "2026-03-29", 24],
  ["America/St_Johns", "2026-03-08", 23],
  ["America/St_Johns", "2026-11-01", 25],
  ["Australia/Adelaide", "2026-04-05", 25],
  ["Australia/Adelaide", "2026-10-04", 23],
  ["Pacific/Chatham", "2026-04-05", 26], // 03:00-03:45 at +13:45, 02:45-03:00 and 03:00-04:00 at +12:45
  ["Pacific/Chatham", "2026-09-27", 24], // 02:00-02:45 at +12:45, 03:45-04:00 at +13:45
  ["Asia/Kathmandu", "2026-09-27", 24],
];
// "now" a day after the latest of those days: every range is inside the views' TTL.
const NOW = Date.UTC(2026, 10, 2, 12);
const SERVICE = "zones";

let db: AnalyticsDb;
const starts: number[] = [];
beforeAll(async () => {
  db = await createAnalyticsDb();
  // A session every 7 minutes (not a divisor of 15 or 30: starts fall on every minute of the
  // hour over the days), over every test day with a day of margin; visitors repeat every 5.
  const from = Date.UTC(2026, 2, 27);
  const values: Array<Record<string, unknown>> = [];
  for (const [, date] of DAYS) {
    const day = Date.parse(`${date}T00:00:00Z`);
    for (let t = day - 36 * 60 * MIN; t < day + 36 * 60 * MIN; t += 7 * MIN) {
      if (t < from || starts.includes(t)) continue;
      starts.push(t);
      const at = new Date(t).toISOString().replace("T", " ").replace("Z", "");
      values.push({
        service_id: SERVICE, session_id: `s${t}`, visitor_id: `v${(t / (7 * MIN)) % 5}`, started_at: at, ended_at: at, exit_at: at,
        pageviews: 1, items: 1, is_bounce: 1, sign: 1, version: 1,
      });
    }
  }
  await db.client.insert({ table: "sessions", values, format: "JSONEachRow" });
}, 60_000);
afterAll(() => db.close());

for (const [tz, date] of DAYS) {
  test(`${tz} ${date}: one point per local hour, each session in the hour its start shows`, async () => {
    const range = resolveRange({ from: date, to: date, tz }, NOW);
    const model = buckets(range.start, range.end, tz, "hour");
    const series = await sessionSeries(db.client, { serviceId: SERVICE, range, filters: {} }, "hour", { now: NOW });
    expect(series.map((p) => p.t)).toEqual(model.map((t) => new Date(t).toISOString()));
    const expected = model.map((b, i) => {
      const inside = starts.filter((t) => t >= Math.max(b, range.start) && t < (model[i + 1] ?? range.end));
      return { sessions: inside.length, visitors: new Set(inside.map((t) => (t / (7 * MIN)) % 5)).size };
    });
    expect(series.map((p) => ({ sessions: p.sessions, visitors: p.visitors }))).toEqual(expected);
  });
}

test("the model's local hours of those days: 23 or 25 on DST days at the hour, 24 on others", () => {
  for (const [tz, date, hours] of DAYS) {
    const r = resolveRange({ from: date, to: date, tz }, NOW);
    expect([tz, date, buckets(r.start, r.end, tz, "hour").length]).toEqual([tz, date, hours]);
  }
});
