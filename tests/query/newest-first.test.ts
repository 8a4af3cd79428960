// Newest-first lists read windows that end at the page's upper bound and grow until one holds more
// than a page (src/query/newest-first.ts). The window arithmetic on its own, then both lists over
// real ClickHouse on data that is dense in the range's last hour and sparse before it, with ties at
// one millisecond, a session whose start moved out of the first window and one that was cancelled:
// paging must give exactly the brute-force order whatever window each page came from.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { decodeCursor } from "../../src/query/cursor.ts";
import { listEvents } from "../../src/query/event-list.ts";
import { newestRows, nextWindow, pageUpperBound } from "../../src/query/newest-first.ts";
import { listSessions } from "../../src/query/session-list.ts";
import { resolveRange } from "../../src/query/time-range.ts";
import { type AnalyticsDb, createAnalyticsDb } from "./fixtures/analytics-db.ts";

const HOUR = 3_600_000;

describe("newestRows: the windows it reads", () => {
  /** Rows at the given times; records each window asked for. */
  function source(times: number[]) {
    const asked: Array<[number, number]> = [];
    const read = async (lower: number, upper: number) => {
      asked.push([lower, upper]);
      return times.filter((t) => t >= lower && t < upper).sort((a, b) => b - a).slice(0, 6);
    };
    return { asked, read };
  }
  const range = { start: 0, end: 1000 * HOUR };

  test("stops at the first window holding more than a page", async () => {
    const { asked, read } = source([999.5, 999.4, 999.3, 999.2, 999.1, 999.05, 10].map((h) => h * HOUR));
    const rows = await newestRows(range, undefined, 5, read);
    expect(asked).toEqual([[999 * HOUR, 1000 * HOUR]]);
    expect(rows).toHaveLength(6);
  });

  test("grows 16 times after an empty window and by the density found after a thin one, until the range start", async () => {
    const { asked, read } = source([990.5, 900].map((h) => h * HOUR));
    const rows = await newestRows(range, undefined, 5, read);
    // 1 h: none → 16 h: one row, so twice the width for 6 rows at that density: ×12 → 192 h:
    // two rows → ×6 → the range start.
    expect(asked.map(([lower]) => lower / HOUR)).toEqual([999, 984, 808, 0]);
    expect(rows.map((t) => t / HOUR)).toEqual([990.5, 900]);
  });

  test("a cursor's page ends just after its time (rows at that millisecond stay in), never after the range", async () => {
    expect(pageUpperBound(1000, { t: 500, id: "x" })).toBe(501);
    expect(pageUpperBound(1000, { t: 1000, id: "x" })).toBe(1000);
    expect(pageUpperBound(1000, undefined)).toBe(1000);
    const { asked, read } = source([]);
    await newestRows({ start: 0, end: 10 * HOUR }, { t: 5 * HOUR, id: "x" }, 5, read);
    expect(asked[0]).toEqual([4 * HOUR + 1, 5 * HOUR + 1]);
  });

  test("a cursor's window is the first one read", async () => {
    const { asked, read } = source([]);
    await newestRows({ start: 0, end: 10 * HOUR }, { t: 5 * HOUR, id: "x", w: 3 * HOUR }, 5, read);
    expect(asked[0]).toEqual([2 * HOUR + 1, 5 * HOUR + 1]);
  });

  test("the next window is twice what held the page, scaled to a full page, at least 1 s", () => {
    // 5 rows in the 10 h before the bound: 6 rows need 12 h at that density; twice that.
    expect(nextWindow(1000 * HOUR, 990 * HOUR, 5, 5)).toBe(24 * HOUR);
    // A page cut short (the events' text budget) scales up to the rows a page needs.
    expect(nextWindow(1000 * HOUR, 990 * HOUR, 2, 5)).toBe(60 * HOUR);
    expect(nextWindow(1000, 999, 5, 5)).toBe(1000);
  });

  test("paging on at a steady density reads one window a page", async () => {
    // One row an hour over the whole range; without the cursor's window each page would start
    // from 1 h again and need two reads.
    const times = Array.from({ length: 1000 }, (_, i) => i * HOUR + 1);
    const { asked, read } = source(times);
    let after: { t: number; id: string; w?: number } | undefined;
    const reads: number[] = [];
    for (let page = 0; page < 8; page++) {
      const before = asked.length;
      const rows = await newestRows(range, after, 5, read);
      reads.push(asked.length - before);
      const upper = pageUpperBound(range.end, after);
      const last = rows[4]!;
      after = { t: last, id: "x", w: nextWindow(upper, last, 5, 5) };
      expect(rows).toEqual(times.filter((t) => t < upper).sort((a, b) => b - a).slice(0, 6));
    }
    expect(reads).toEqual([2, 1, 1, 1, 1, 1, 1, 1]);
  });
});

describe("lists over dense and sparse parts of a range", () => {
  let db: AnalyticsDb;
  const NOW = Date.UTC(2026, 4, 20, 12);
  const range = resolveRange({ from: "2026-05-10", to: "2026-05-12", tz: "UTC" }, NOW);
  const end = range.end;
  type S = { id: string; start: number };
  const live: S[] = [];
  const events: Array<{ id: string; t: number; name: string }> = [];

  beforeAll(async () => {
    db = await createAnalyticsDb("nf");
    const iso = (ms: number) => new Date(ms).toISOString().replace("T", " ").replace("Z", "");
    const row = (id: string, start: number, sign: number, version: number) =>
      `('svc', '${id}', 'v-${id}', '${iso(start)}', '${iso(start + 60_000)}', ${sign}, ${version})`;
    const insert = (rows: string[]) =>
      db.client.command({ query: `INSERT INTO ${db.database}.sessions (service_id, session_id, visitor_id, started_at, ended_at, sign, version) VALUES ${rows.join(", ")}` });
    const first: string[] = [];
    // Dense: 14 sessions in the last hour, two of them at one millisecond.
    for (let i = 0; i < 14; i++) {
      const s = { id: `d${String(i).padStart(2, "0")}`, start: end - (i === 13 ? 12 : i + 1) * 4 * 60_000 + 7 };
      live.push(s);
      first.push(row(s.id, s.start, 1, 1));
    }
    // Sparse: 9 sessions over the two days before.
    for (let i = 0; i < 9; i++) {
      const s = { id: `s${i}`, start: range.start + i * 5 * HOUR + 1234 };
      live.push(s);
      first.push(row(s.id, s.start, 1, 1));
    }
    // Moved: began in the last hour, then a late item moved its start a day back. Cancelled: a
    // session merged into another (its state cancelled, no new one).
    const moved = { id: "moved", start: range.start + 30 * HOUR };
    first.push(row("moved", end - 10 * 60_000, 1, 1), row("gone", end - 20 * 60_000, 1, 1));
    await insert(first);
    // A second insert: a block holding a state and its cancel row would collapse on insert already.
    await insert([row("moved", end - 10 * 60_000, -1, 1), row("moved", moved.start, 1, 2), row("gone", end - 20 * 60_000, -1, 1)]);
    live.push(moved);

    // Events: 20 in the last hour (three at one millisecond), 8 spread before.
    const evRows: string[] = [];
    const ev = (t: number, name: string) => {
      const id = crypto.randomUUID();
      events.push({ id, t, name });
      evRows.push(`('svc', '${id}', '${iso(t)}', 'x', 'v', '${name}')`);
    };
    for (let i = 0; i < 20; i++) ev(end - (i < 3 ? 1 : i) * 2 * 60_000 - 5, i % 2 ? "click" : "view");
    for (let i = 0; i < 8; i++) ev(range.start + i * 6 * HOUR + 99, i % 2 ? "click" : "view");
    await db.client.command({ query: `INSERT INTO ${db.database}.events (service_id, event_id, timestamp, session_id, visitor_id, name) VALUES ${evRows.join(", ")}` });
  }, 60_000);
  afterAll(async () => {
    await db.client.command({ query: `DROP DATABASE IF EXISTS ${db.database}` });
    await db.close();
  });

  for (const limit of [1, 5, 13, 14, 100]) {
    test(`sessions, ${limit} per page: every live session once, newest first`, async () => {
      const want = [...live].sort((a, b) => b.start - a.start || (b.id < a.id ? -1 : 1)).map((s) => s.id);
      const got: string[] = [];
      let cursor: string | null = null;
      do {
        const page = await listSessions(db.client, { serviceId: "svc", range, filters: {}, limit, after: decodeCursor("sessions", cursor ?? undefined) });
        expect(page.data.length).toBeLessThanOrEqual(limit);
        got.push(...page.data.map((s) => s.session_id));
        cursor = page.next_cursor;
      } while (cursor);
      expect(got).toEqual(want);
      expect(got).not.toContain("gone");
    });

    test(`events, ${limit} per page, all and by name`, async () => {
      for (const name of [undefined, "click"]) {
        const want = events.filter((e) => name === undefined || e.name === name)
          .sort((a, b) => b.t - a.t || (b.id < a.id ? -1 : 1)).map((e) => e.id);
        const got: string[] = [];
        let cursor: string | null = null;
        do {
          const page = await listEvents(db.client, { serviceId: "svc", range, filters: {}, name, limit, after: decodeCursor("events", cursor ?? undefined) });
          got.push(...page.data.map((e) => e.event_id));
          cursor = page.next_cursor;
        } while (cursor);
        expect(got).toEqual(want);
      }
    });
  }
});
