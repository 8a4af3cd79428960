// Behaviour summary, funnels and the session / event lists against brute force over random data.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { listEvents } from "../../src/query/event-list.ts";
import type { Filters } from "../../src/query/filters.ts";
import { funnelReport } from "../../src/query/funnel.ts";
import { behaviorSummary } from "../../src/query/reports.ts";
import { listSessions } from "../../src/query/session-list.ts";
import { decodeCursor } from "../../src/query/cursor.ts";
import { resolveRange, type TimeRange } from "../../src/query/time-range.ts";
import { type Dataset, loadDataset } from "./fixtures/dataset.ts";
import { FUNNELS } from "./fixtures/generate.ts";

let data: Dataset;
beforeAll(async () => {
  data = await loadDataset();
}, 60_000);
afterAll(async () => {
  await data.db.close();
});

const NOW = Date.UTC(2026, 3, 3, 12);
const FILTERS: Filters[] = [{}, { country: "DE" }, { path: "/pricing" }, { device: "mobile", path: "/docs" }, { utm_source: "newsletter" }];
const RANGES: Array<[string, TimeRange]> = [
  ["spring in Berlin", resolveRange({ from: "2026-03-05", to: "2026-04-01", tz: "Europe/Berlin" }, NOW)],
  ["one DST day in New York", resolveRange({ from: "2026-03-08", to: "2026-03-08", tz: "America/New_York" }, NOW)],
  ["spring in Kolkata", resolveRange({ from: "2026-03-10", to: "2026-03-31", tz: "Asia/Kolkata" }, NOW)],
];

function expectedSummary(service: string, range: TimeRange, f: Filters, limit: number) {
  const s = data.sessions;
  const i = data.items;
  const keyed = (key: "entry_path" | "exit_path" | "referrer_domain") => s.byKey(service, range, f, key, limit);
  return {
    sessions: s.totals(service, range, f),
    top_pages: i.topPages(service, range, f, limit),
    entry_pages: keyed("entry_path").map((r) => ({ path: r.k, sessions: r.n })),
    exit_pages: keyed("exit_path").map((r) => ({ path: r.k, sessions: r.n })),
    top_events: i.topEvents(service, range, f, limit),
    top_referrers: keyed("referrer_domain").map((r) => ({ referrer_domain: r.k, sessions: r.n })),
    web_vitals: i.webVitals(service, range, f),
    top_errors: i.topErrors(service, range, f, limit),
  };
}

describe("behaviour summary equals brute force", () => {
  for (const [label, range] of RANGES) {
    for (const f of FILTERS) {
      test(`${label} ${JSON.stringify(f)}`, async () => {
        for (const [service, limit] of [["alpha", 10], ["beta", 3]] as const) {
          const q = { serviceId: service, range, filters: f, limit };
          const [views, raw, shared] = await Promise.all([
            behaviorSummary(data.db.client, q, { now: NOW }),
            behaviorSummary(data.db.client, q, { now: NOW, forceRaw: true }),
            // The service's setting: one set of matching sessions for the item lists (a table).
            behaviorSummary(data.db.client, q, { now: NOW, sharedSets: true }),
          ]);
          const want = expectedSummary(service, range, f, limit);
          // p75 is interpolated in floating point: equal to 1e-9, every count exact.
          for (const m of Object.keys(want.web_vitals)) {
            const got = raw.web_vitals[m as keyof typeof raw.web_vitals];
            const exp = want.web_vitals[m]!;
            if (exp.p75 === null) expect(got.p75).toBeNull();
            else expect(got.p75).toBeCloseTo(exp.p75, 9);
            got.p75 = exp.p75;
          }
          expect(raw).toEqual(want as typeof raw);
          expect(views).toEqual(raw);
          expect(shared).toEqual(views);
        }
      });
    }
  }
});

describe("funnels equal brute force", () => {
  for (const [label, range] of RANGES) {
    for (const f of [{}, { country: "US" }, { path: "/" }] as Filters[]) {
      test(`${label} ${JSON.stringify(f)}`, async () => {
        for (const funnel of [...FUNNELS, "missing"]) {
          for (const [windowS, by] of [[86_400, "session"], [600, "session"], [3_600, "visitor"], [1, "visitor"]] as const) {
            const q = { serviceId: "alpha", funnel, range, filters: f, windowSeconds: windowS, by };
            const want = data.items.funnel("alpha", funnel, range, f, windowS, by);
            // Each filter's set of sessions built by each query, and built once as a table.
            expect(await funnelReport(data.db.client, q, { now: NOW })).toEqual(want);
            expect(await funnelReport(data.db.client, q, { now: NOW, sharedSets: true })).toEqual(want);
          }
        }
      });
    }
  }
});

describe("lists page through exactly the brute-force order", () => {
  for (const [label, range] of RANGES) {
    for (const f of [{}, { browser: "Firefox" }, { path: "/blog/a" }] as Filters[]) {
      test(`sessions ${label} ${JSON.stringify(f)}`, async () => {
        const want = data.sessions.list("alpha", range, f).map((s) => s.session_id);
        const got: string[] = [];
        let cursor: string | null = null;
        do {
          const page = await listSessions(data.db.client, { serviceId: "alpha", range, filters: f, limit: 7, after: decodeCursor("sessions", cursor ?? undefined) });
          got.push(...page.data.map((s) => s.session_id));
          cursor = page.next_cursor;
        } while (cursor);
        expect(got).toEqual(want);
      });
      test(`events ${label} ${JSON.stringify(f)}`, async () => {
        const want = data.items.events("alpha", range, f).map((e) => e.id);
        const got: string[] = [];
        let cursor: string | null = null;
        do {
          const page = await listEvents(data.db.client, { serviceId: "alpha", range, filters: f, limit: 9, after: decodeCursor("events", cursor ?? undefined) });
          got.push(...page.data.map((e) => e.event_id));
          cursor = page.next_cursor;
        } while (cursor);
        expect(got).toEqual(want);
      });
    }
  }

  test("session rows carry the final state with the contract's types", async () => {
    const range = RANGES[0]![1];
    const page = await listSessions(data.db.client, { serviceId: "beta", range, filters: {}, limit: 1000 });
    const byId = new Map(data.sessions.list("beta", range, {}).map((s) => [s.session_id, s]));
    expect(page.data.length).toBe(byId.size);
    for (const row of page.data) {
      const st = byId.get(row.session_id)!;
      expect(row).toEqual({
        session_id: st.session_id, visitor_id: st.visitor_id, user_id: st.user_id,
        started_at: new Date(st.started).toISOString(), ended_at: new Date(st.ended).toISOString(),
        duration_s: st.duration_ms / 1000, pageviews: st.pageviews, events: st.events,
        is_bounce: st.is_bounce === 1, converted: st.converted === 1,
        entry_path: st.entry_path, exit_path: st.exit_path, referrer: st.referrer,
        utm_source: st.utm_source, utm_medium: st.utm_medium, utm_campaign: st.utm_campaign,
        device: st.device, browser: st.browser, os: st.os, country: st.country,
      });
    }
  });

  test("an event page ends early at its text budget, with a cursor; paging still lists every event once", async () => {
    const range = RANGES[0]![1];
    const want = data.items.events("alpha", range, {}).map((e) => e.id);
    expect(want.length).toBeGreaterThan(20);
    const got: string[] = [];
    const sizes: number[] = [];
    let cursor: string | null = null;
    do {
      // ~300 bytes per event as counted (text + 256): about three per page.
      const page = await listEvents(data.db.client, { serviceId: "alpha", range, filters: {}, limit: 1000, pageBytes: 700, after: decodeCursor("events", cursor ?? undefined) });
      expect(page.data.length).toBeGreaterThan(0);
      sizes.push(page.data.length);
      got.push(...page.data.map((e) => e.event_id));
      cursor = page.next_cursor;
    } while (cursor);
    expect(got).toEqual(want);
    expect(Math.max(...sizes)).toBeLessThan(6);
  });

  test("event rows parse properties back into objects", async () => {
    const page = await listEvents(data.db.client, { serviceId: "gamma", range: RANGES[0]![1], filters: {}, name: "purchase", limit: 5 });
    expect(page.data.length).toBeGreaterThan(0);
    for (const e of page.data) {
      expect(e.name).toBe("purchase");
      expect(e.properties).toEqual({ plan: expect.any(String), n: expect.any(Number), ok: expect.any(Boolean) });
      expect(e.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    }
  });
});

test("the funnel data is not trivial: units convert and medians exist", async () => {
  const got = await funnelReport(data.db.client, { serviceId: "alpha", funnel: "signup", range: RANGES[0]![1], filters: {}, windowSeconds: 86_400, by: "session" }, { now: NOW });
  expect(got.steps.length).toBeGreaterThanOrEqual(3);
  expect(got.steps[1]!.units).toBeGreaterThan(0);
  expect(got.steps[1]!.median_seconds_from_previous).not.toBeNull();
  expect(got.steps[1]!.name).not.toBe("");
});
