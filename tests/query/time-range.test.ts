// Range and bucket arithmetic in zones with DST (hand-checked instants), and its 400s.
import { describe, expect, test } from "bun:test";
import { ApiError } from "../../src/errors.ts";
import { bucketStarts, previousRange, rangeLabel, resolveRange, type TimeRange, utcDatesOf } from "../../src/query/time-range.ts";
import { dateOfDay, dayNumber, localDate, localHourStart, localHourStarts, localMidnight, nextLocalHour, offsetMs } from "../../src/query/zoned-time.ts";

const iso = (ms: number) => new Date(ms).toISOString();
const NOW = Date.UTC(2026, 2, 29, 10); // Sunday 2026-03-29, Berlin's spring-forward day

describe("local midnights", () => {
  test("Berlin and New York around their DST changes", () => {
    expect(iso(localMidnight("2026-03-29", "Europe/Berlin"))).toBe("2026-03-28T23:00:00.000Z");
    expect(iso(localMidnight("2026-03-30", "Europe/Berlin"))).toBe("2026-03-29T22:00:00.000Z");
    expect(iso(localMidnight("2026-10-25", "Europe/Berlin"))).toBe("2026-10-24T22:00:00.000Z");
    expect(iso(localMidnight("2026-10-26", "Europe/Berlin"))).toBe("2026-10-25T23:00:00.000Z");
    expect(iso(localMidnight("2026-03-08", "America/New_York"))).toBe("2026-03-08T05:00:00.000Z");
    expect(iso(localMidnight("2026-03-09", "America/New_York"))).toBe("2026-03-09T04:00:00.000Z");
    expect(iso(localMidnight("2026-03-10", "Asia/Kolkata"))).toBe("2026-03-09T18:30:00.000Z");
  });
  test("a zone that skips midnight starts its day at the jump (Santiago, 2026-09-06)", () => {
    // Chile springs forward at 24:00 → 01:00; the day begins at 04:00Z, shown as 01:00 local.
    const t = localMidnight("2026-09-06", "America/Santiago");
    expect(iso(t)).toBe("2026-09-06T04:00:00.000Z");
    expect(offsetMs(t, "America/Santiago")).toBe(-3 * 3_600_000);
  });
});

describe("ranges", () => {
  test("dates are inclusive local days: a 23-hour and a 25-hour day", () => {
    const spring = resolveRange({ from: "2026-03-29", to: "2026-03-29", tz: "Europe/Berlin" }, NOW);
    expect(spring.end - spring.start).toBe(23 * 3_600_000);
    const fall = resolveRange({ from: "2026-11-01", to: "2026-11-01", tz: "America/New_York" }, NOW);
    expect(fall.end - fall.start).toBe(25 * 3_600_000);
  });
  test("default: local today and the 6 days before", () => {
    const r = resolveRange({ tz: "America/New_York" }, NOW);
    expect(r.dates).toEqual({ from: "2026-03-23", to: "2026-03-29" });
    expect(iso(r.start)).toBe("2026-03-23T04:00:00.000Z");
    expect(iso(r.end)).toBe("2026-03-30T04:00:00.000Z");
  });
  test("times: from inclusive, to exclusive; epoch ms and offsets accepted", () => {
    const r = resolveRange({ from: "2026-03-01T10:00:00+02:00", to: String(Date.UTC(2026, 2, 2)), tz: "UTC" }, NOW);
    expect([iso(r.start), iso(r.end)]).toEqual(["2026-03-01T08:00:00.000Z", "2026-03-02T00:00:00.000Z"]);
    expect(r.dates).toBeUndefined();
  });
  test("previous: the same number of local days just before (23-hour day included)", () => {
    const r = resolveRange({ from: "2026-03-29", to: "2026-04-04", tz: "Europe/Berlin" }, NOW);
    const p = previousRange(r);
    expect(p.dates).toEqual({ from: "2026-03-22", to: "2026-03-28" });
    expect(iso(p.start)).toBe("2026-03-21T23:00:00.000Z");
    expect(p.end).toBe(r.start);
    const t = resolveRange({ from: "2026-03-01T00:00:00Z", to: "2026-03-01T06:00:00Z", tz: "UTC" }, NOW);
    expect(iso(previousRange(t).start)).toBe("2026-02-28T18:00:00.000Z");
  });
  test("400 invalid_query naming the parameter: from ≥ to, over 400 days", () => {
    const fail = (q: { from?: string; to?: string }) => {
      try {
        resolveRange({ ...q, tz: "UTC" }, NOW);
      } catch (e) {
        expect(e).toBeInstanceOf(ApiError);
        return { code: (e as ApiError).code, path: (e as ApiError).extra.issues?.[0]?.path };
      }
      throw new Error("expected a 400");
    };
    expect(fail({ from: "2026-03-10", to: "2026-03-09" })).toEqual({ code: "invalid_query", path: "from" });
    expect(fail({ from: "2026-03-10T00:00:00Z", to: "2026-03-10T00:00:00Z" })).toEqual({ code: "invalid_query", path: "from" });
    expect(fail({ from: "2025-01-01", to: "2026-02-05" })).toEqual({ code: "invalid_query", path: "to" });
    expect(() => resolveRange({ from: "2025-01-01", to: "2026-02-04", tz: "UTC" }, NOW)).not.toThrow(); // 400 days exactly
  });
  // The black-box audit of session 20: `from` in the future alone was "must be before to", naming a `to` never sent.
  test("a from after the filled-in end says what the end was", () => {
    const message = (q: { from: string }) => {
      try {
        resolveRange({ ...q, tz: "Europe/Berlin" }, NOW);
      } catch (e) {
        return (e as ApiError).extra.issues?.[0]?.message;
      }
      throw new Error("expected a 400");
    };
    const today = new Intl.DateTimeFormat("en-CA", { timeZone: "Europe/Berlin" }).format(NOW);
    expect(message({ from: "2099-01-01" })).toBe(`must be before to (to was not sent: it defaults to today in Europe/Berlin, ${today})`);
    expect(message({ from: "2099-01-01T00:00:00Z" })).toBe("must be before to (to was not sent: it defaults to now)");
  });
  test("UTC dates touched and labels", () => {
    const r = resolveRange({ from: "2026-03-29", to: "2026-03-30", tz: "Asia/Kolkata" }, NOW);
    expect(utcDatesOf(r)).toEqual(["2026-03-28", "2026-03-29", "2026-03-30"]);
    expect(rangeLabel(r)).toBe("2026-03-29..2026-03-30");
  });
});

describe("buckets", () => {
  test("hours follow the local clock: 23 on spring day, 25 on fall day, repeated 02:00", () => {
    const spring = bucketStarts(resolveRange({ from: "2026-03-29", to: "2026-03-29", tz: "Europe/Berlin" }, NOW), "hour");
    expect(spring).toHaveLength(23);
    expect(iso(spring[2]!)).toBe("2026-03-29T01:00:00.000Z"); // 03:00 CEST follows 01:00 CET
    const fall = bucketStarts(resolveRange({ from: "2026-10-25", to: "2026-10-25", tz: "Europe/Berlin" }, NOW), "hour");
    expect(fall).toHaveLength(25);
    expect(fall.slice(2, 4).map(iso)).toEqual(["2026-10-25T00:00:00.000Z", "2026-10-25T01:00:00.000Z"]); // 02:00 twice
  });
  // localHourStarts steps an hour at a time while the offset holds (sampled daily) instead of
  // asking Intl for each hour: it must give what the hour-by-hour walk gives, in zones with
  // 30- and 45-minute offsets and changes, negative DST, a skipped date, two-hour changes.
  test("bucket starts stepped through stretches of one offset equal the walk that asks Intl for each", () => {
    const walk = (start: number, end: number, tz: string) => {
      const out: number[] = [];
      for (let t = localHourStart(start, tz); t < end; t = nextLocalHour(t, tz)) out.push(t);
      return out;
    };
    const zones = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe", "Pacific/Chatham", "Pacific/Apia",
      "America/Santiago", "Africa/Casablanca", "Antarctica/Troll", "Europe/Dublin", "America/St_Johns", "Asia/Gaza", "Pacific/Kiritimati", "Australia/Eucla"];
    const ranges = [
      [Date.UTC(2011, 5, 1), Date.UTC(2012, 6, 5)], // Pacific/Apia skipped 2011-12-30
      [Date.UTC(2025, 10, 1, 10, 30), Date.UTC(2026, 11, 5, 7, 15)], // bounds off the hour
    ] as const;
    const mismatches: string[] = [];
    let hours = 0;
    for (const tz of zones) {
      for (const [start, end] of ranges) {
        const fast = localHourStarts(start, end, tz);
        const slow = walk(start, end, tz);
        hours += slow.length;
        if (JSON.stringify(fast) !== JSON.stringify(slow)) {
          const i = fast.findIndex((t, k) => t !== slow[k]);
          mismatches.push(`${tz} ${iso(start)}: first difference at #${i} ${iso(fast[i] ?? 0)} vs ${iso(slow[i] ?? 0)}`);
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(hours).toBeGreaterThan(zones.length * 2 * 9_000);

    // Days, weeks and months likewise: each bucket start against localMidnight of its date.
    const starts = (r: TimeRange, interval: "day" | "week" | "month") => {
      const out: number[] = [];
      let day = dayNumber(localDate(r.start, r.tz));
      if (interval === "week") day -= (new Date(day * 86_400_000).getUTCDay() + 6) % 7;
      if (interval === "month") day = dayNumber(`${dateOfDay(day).slice(0, 8)}01`);
      for (let t = localMidnight(dateOfDay(day), r.tz); t < r.end; t = localMidnight(dateOfDay(day), r.tz)) {
        if (out.at(-1) !== t) out.push(t);
        const d = new Date(day * 86_400_000);
        day = interval === "day" ? day + 1 : interval === "week" ? day + 7 : Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / 86_400_000;
      }
      return out;
    };
    let buckets = 0;
    for (const tz of [...zones, "America/Havana", "America/Sao_Paulo"]) { // Havana and (in 2018) São Paulo skip midnight
      for (const [start, end] of [...ranges, [Date.UTC(2018, 0, 1), Date.UTC(2019, 1, 4)]]) {
        for (const interval of ["day", "week", "month"] as const) {
          const r: TimeRange = { start, end, tz };
          const fast = bucketStarts(r, interval);
          const slow = starts(r, interval);
          buckets += slow.length;
          if (JSON.stringify(fast) !== JSON.stringify(slow)) mismatches.push(`${tz} ${interval} ${iso(start)}: ${fast.length} vs ${slow.length} buckets`);
        }
      }
    }
    expect(mismatches).toEqual([]);
    expect(buckets).toBeGreaterThan(18 * 3 * 450);
  }, 60_000);

  test("weeks start on Monday, months on the 1st, in local time", () => {
    const r = resolveRange({ from: "2026-03-25", to: "2026-04-02", tz: "Europe/Berlin" }, NOW);
    expect(bucketStarts(r, "week").map(iso)).toEqual(["2026-03-22T23:00:00.000Z", "2026-03-29T22:00:00.000Z"]);
    expect(bucketStarts(r, "month").map(iso)).toEqual(["2026-02-28T23:00:00.000Z", "2026-03-31T22:00:00.000Z"]);
    expect(bucketStarts(r, "day")).toHaveLength(9);
  });
  test("half-hour zones keep :30 UTC hour starts", () => {
    const r = resolveRange({ from: "2026-03-10", to: "2026-03-10", tz: "Asia/Kolkata" }, NOW);
    const hours = bucketStarts(r, "hour");
    expect(hours).toHaveLength(24);
    expect(iso(hours[1]!)).toBe("2026-03-09T19:30:00.000Z");
  });
  test("a time range starts its first bucket at the local bucket start", () => {
    const r = resolveRange({ from: "2026-03-28T10:30:00+01:00", to: "2026-03-28T12:00:00+01:00", tz: "Europe/Berlin" }, NOW);
    expect(bucketStarts(r, "hour").map(iso)).toEqual(["2026-03-28T09:00:00.000Z", "2026-03-28T10:00:00.000Z"]);
    expect(bucketStarts(r, "day").map(iso)).toEqual(["2026-03-27T23:00:00.000Z"]);
  });
});
