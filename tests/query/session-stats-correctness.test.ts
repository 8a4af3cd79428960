// /v1/sessions/stats numbers against brute force over random data, in several zones (DST days,
// a half-hour zone), intervals and filters; and the view path against the raw path.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Filters } from "../../src/query/filters.ts";
import { sessionStatsReport } from "../../src/query/reports.ts";
import { chooseSource, seriesCut } from "../../src/query/session-metrics.ts";
import { INTERVALS, previousRange, resolveRange, type TimeRange } from "../../src/query/time-range.ts";
import { type Dataset, loadDataset } from "./fixtures/dataset.ts";
import { SERVICES } from "./fixtures/generate.ts";

let data: Dataset;
beforeAll(async () => {
  data = await loadDataset();
}, 60_000);
afterAll(async () => {
  await data.db.close();
});

const SPRING_NOW = Date.UTC(2026, 3, 3, 12);
const FALL_NOW = Date.UTC(2026, 10, 5, 12);
const ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata"];
const FILTERS: Filters[] = [{ country: "DE" }, { device: "mobile", utm_source: "google" }, { path: "/pricing" }, { referrer_domain: "t.co" }, { path: "/o'quote", browser: "Safari" }];

function expected(service: string, range: TimeRange, interval: (typeof INTERVALS)[number], f: Filters) {
  const m = data.sessions;
  return {
    totals: m.totals(service, range, f),
    previous: m.totals(service, previousRange(range), f),
    series: m.series(service, range, interval, f),
    distributions: {
      device: m.distribution(service, range, f, "device"),
      browser: m.distribution(service, range, f, "browser"),
      os: m.distribution(service, range, f, "os"),
      country: m.distribution(service, range, f, "country"),
    },
    utm: m.utm(service, range, f),
  };
}

async function check(service: string, range: TimeRange, interval: (typeof INTERVALS)[number], f: Filters, now: number) {
  const q = { serviceId: service, range, filters: f };
  const [viaViews, viaRaw, shared] = await Promise.all([
    sessionStatsReport(data.db.client, q, interval, { now }),
    sessionStatsReport(data.db.client, q, interval, { now, forceRaw: true }),
    // The service's setting: a path filter's sessions found once for all eight questions (a table).
    sessionStatsReport(data.db.client, q, interval, { now, sharedSets: true }),
  ]);
  expect(viaRaw).toEqual(expected(service, range, interval, f));
  expect(viaViews).toEqual(viaRaw);
  expect(shared).toEqual(viaRaw);
}

// Each test runs a few dozen report queries one after another: ~1-2 s alone, over 5 s (bun's
// default) on a machine loaded by other work (a CI run timed out there once).
const SLOW = 30_000;

describe("session stats equal brute force, by views and by raw rows", () => {
  for (const tz of ZONES) {
    for (const interval of INTERVALS) {
      test(`spring dates ${tz} by ${interval}`, async () => {
        const range = resolveRange({ from: "2026-03-05", to: "2026-04-01", tz }, SPRING_NOW);
        for (const service of SERVICES) await check(service, range, interval, {}, SPRING_NOW);
      }, SLOW);
      test(`fall dates ${tz} by ${interval}`, async () => {
        const range = resolveRange({ from: "2026-10-20", to: "2026-11-03", tz }, FALL_NOW);
        await check("alpha", range, interval, {}, FALL_NOW);
      }, SLOW);
    }
  }

  for (const [date, tz, now] of [["2026-03-29", "Europe/Berlin", SPRING_NOW], ["2026-03-08", "America/New_York", SPRING_NOW], ["2026-10-25", "Europe/Berlin", FALL_NOW], ["2026-11-01", "America/New_York", FALL_NOW]] as const) {
    test(`DST day ${date} in ${tz}: ${date.startsWith("2026-03") ? 23 : 25} hourly buckets`, async () => {
      const range = resolveRange({ from: date, to: date, tz }, now);
      const report = await sessionStatsReport(data.db.client, { serviceId: "alpha", range, filters: {} }, "hour", { now });
      expect(report.series).toHaveLength(date.startsWith("2026-03") ? 23 : 25);
      for (const service of SERVICES) await check(service, range, "hour", {}, now);
    }, SLOW);
  }

  for (const f of FILTERS) {
    test(`filters ${JSON.stringify(f)}`, async () => {
      for (const tz of ["Europe/Berlin", "Asia/Kolkata"]) {
        const range = resolveRange({ from: "2026-03-05", to: "2026-04-01", tz }, SPRING_NOW);
        for (const service of ["alpha", "beta"]) await check(service, range, "day", f, SPRING_NOW);
      }
    }, SLOW);
  }

  test("a range of times (not whole hours) reads raw rows and still matches", async () => {
    const range = resolveRange({ from: "2026-03-28T10:30:00+01:00", to: "2026-03-30T05:15:00Z", tz: "Europe/Berlin" }, SPRING_NOW);
    for (const interval of INTERVALS) await check("gamma", range, interval, {}, SPRING_NOW);
  });

  // The hourly view keeps 30 days, the daily one a year: a series reaching further back reads
  // raw rows before the first bucket its view still holds whole, and the view from there on.
  test("an hourly series starting before the hourly view's 30 days: raw rows before the cut, the view after; matches", async () => {
    // Cut where the hour before and the hour after both have sessions of every service, so a
    // cut that repeated or dropped a bucket would show.
    const utc = resolveRange({ from: "2026-03-05", to: "2026-04-01", tz: "UTC" }, SPRING_NOW);
    const hours = SERVICES.map((service) => data.sessions.series(service, utc, "hour", {}).map((p) => p.sessions));
    const busy = (i: number) => Math.min(...hours.flatMap((h) => [h[i - 1]!, h[i]!]));
    let best = 1;
    for (let i = 2; i < hours[0]!.length; i++) if (busy(i) > busy(best)) best = i;
    expect(busy(best)).toBeGreaterThan(0);
    const cutAt = utc.start + best * 3_600_000;
    const now = cutAt + 30 * 86_400_000 - 3_600_000; // the view holds whole hours from cutAt on
    for (const tz of ["UTC", "Europe/Berlin", "America/New_York"]) {
      const range = resolveRange({ from: "2026-03-05", to: "2026-04-01", tz }, now);
      const q = { serviceId: "alpha", range, filters: {} };
      expect({ tz, cut: seriesCut(q, "hour", { now }) }).toEqual({ tz, cut: cutAt });
      for (const service of SERVICES) await check(service, range, "hour", {}, now);
    }
  }, SLOW);

  test("a daily, weekly or monthly series starting before the daily view's year splits at a bucket start; matches", async () => {
    const now = Date.UTC(2027, 2, 20, 12); // whole UTC days from 2026-03-21T12:00Z on
    const range = resolveRange({ from: "2026-03-05", to: "2026-04-01", tz: "UTC" }, now);
    const q = { serviceId: "beta", range, filters: {} };
    const cuts = Object.fromEntries((["day", "week", "month"] as const).map((i) => [i, new Date(seriesCut(q, i, { now }) ?? 0).toISOString()]));
    // Days at the first whole day; weeks at the next Monday; months at the next first of a month.
    expect(cuts).toEqual({ day: "2026-03-22T00:00:00.000Z", week: "2026-03-23T00:00:00.000Z", month: "2026-04-01T00:00:00.000Z" });
    for (const interval of ["day", "week", "month"] as const) for (const service of SERVICES) await check(service, range, interval, {}, now);
  }, SLOW);

  test("no split: a range the view holds whole, one wholly before its TTL, a filter, a half-hour zone, or forced raw", () => {
    const at = (from: string, to: string, tz: string, filters: Filters = {}) => ({ serviceId: "alpha", range: resolveRange({ from, to, tz }, SPRING_NOW), filters });
    const now = Date.UTC(2026, 3, 17, 12, 20);
    expect(seriesCut(at("2026-03-20", "2026-04-01", "UTC"), "hour", { now })).toBeUndefined(); // the view answers it whole
    expect(seriesCut(at("2026-03-05", "2026-03-10", "UTC"), "hour", { now })).toBeUndefined(); // wholly before
    expect(seriesCut(at("2026-03-05", "2026-04-01", "UTC", { country: "DE" }), "hour", { now })).toBeUndefined();
    expect(seriesCut(at("2026-03-05", "2026-04-01", "Asia/Kolkata"), "hour", { now })).toBeUndefined();
    expect(seriesCut(at("2026-03-05", "2026-04-01", "UTC"), "hour", { now, forceRaw: true })).toBeUndefined();
    expect(seriesCut(at("2026-03-05", "2026-04-01", "UTC"), "hour", { now })).toBe(Date.UTC(2026, 2, 18, 14));
  });

  test("an old range (beyond the hourly view's 30 days) in UTC uses the daily view and matches", async () => {
    const range = resolveRange({ from: "2026-03-05", to: "2026-04-01", tz: "UTC" }, FALL_NOW);
    for (const interval of ["day", "week", "month"] as const) await check("beta", range, interval, {}, FALL_NOW);
  });
});

describe("which source answers", () => {
  const q = (from: string, to: string, tz: string, filters: Filters = {}) => ({ serviceId: "alpha", range: resolveRange({ from, to, tz }, SPRING_NOW), filters });
  test("hourly series in whole-hour zones within 30 days: the hourly view; UTC days: the daily view", () => {
    expect(chooseSource(q("2026-03-05", "2026-04-01", "Europe/Berlin"), { now: SPRING_NOW }, "hour")).toBe("hourly");
    // Days, weeks and totals in a zone whose days are not UTC days: raw rows (faster than
    // merging 24 hourly visitor sets per day).
    expect(chooseSource(q("2026-03-05", "2026-04-01", "America/New_York"), { now: SPRING_NOW }, "day")).toBe("raw");
    expect(chooseSource(q("2026-03-05", "2026-04-01", "America/New_York"), { now: SPRING_NOW }, "week")).toBe("raw");
    expect(chooseSource(q("2026-03-05", "2026-04-01", "America/New_York"), { now: SPRING_NOW })).toBe("raw");
    expect(chooseSource(q("2026-03-05", "2026-04-01", "UTC"), { now: SPRING_NOW }, "day")).toBe("daily");
    expect(chooseSource(q("2026-03-05", "2026-04-01", "UTC"), { now: SPRING_NOW }, "hour")).toBe("hourly");
    // Totals need no zone: local midnights on whole UTC days suffice (from 14 days; shorter
    // totals read raw rows, faster there: session-metrics.ts).
    expect(chooseSource(q("2026-03-05", "2026-03-18", "Europe/London"), { now: SPRING_NOW })).toBe("daily");
    expect(chooseSource(q("2026-03-05", "2026-03-06", "Europe/London"), { now: SPRING_NOW })).toBe("raw");
    expect(chooseSource(q("2026-03-05", "2026-03-06", "Europe/London"), { now: SPRING_NOW }, "day")).toBe("daily");
  });
  test("raw rows for half-hour zones, filters, old hourly ranges, and when forced", () => {
    expect(chooseSource(q("2026-03-05", "2026-04-01", "Asia/Kolkata"), { now: SPRING_NOW }, "day")).toBe("raw");
    expect(chooseSource(q("2026-03-05", "2026-04-01", "UTC", { path: "/" }), { now: SPRING_NOW }, "day")).toBe("raw");
    expect(chooseSource(q("2026-03-05", "2026-04-01", "Europe/Berlin"), { now: FALL_NOW }, "day")).toBe("raw");
    expect(chooseSource(q("2026-03-05", "2026-04-01", "UTC"), { now: SPRING_NOW, forceRaw: true }, "day")).toBe("raw");
  });
  test("the data is not trivially empty", () => {
    const t = data.sessions.totals("alpha", resolveRange({ from: "2026-03-05", to: "2026-04-01", tz: "UTC" }, SPRING_NOW), {});
    expect(t.sessions).toBeGreaterThan(50);
    expect(t.bounces).toBeGreaterThan(0);
    expect(t.conversions).toBeGreaterThan(0);
    expect(t.visitors).toBeLessThan(t.sessions);
  });
});
