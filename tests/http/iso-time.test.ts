// ISO_TIME is both the routes' first check of a time and the OpenAPI document's `pattern` for it:
// its field ranges must be exactly what Date.parse reads, so that the document refuses what the
// server refuses (an OpenAPI audit found `T25:00`, `+99:00` and month 13 allowed by the pattern and
// refused by the server). Only a day past its month's end is left to calendarDateExists.
import { expect, test } from "bun:test";
import { calendarDateExists, ISO_TIME, parseIsoTime } from "../../src/iso-time.ts";

// The older, looser form of the pattern: any two digits per field.
const LOOSE = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$/;

test("the pattern accepts exactly the times Date.parse reads, on a grid of edge values of every field", () => {
  const dates = ["2026-12-02", "2024-02-29", "2026-02-29", "2026-13-01", "2026-00-10", "2026-12-00", "2026-12-31", "2026-12-32", "2026-04-31"];
  const clocks: string[] = [];
  for (const h of ["00", "09", "19", "20", "23", "24", "25", "99"]) {
    for (const m of ["00", "59", "60"]) {
      clocks.push(`${h}:${m}`);
      for (const sec of ["00", "59", "60"]) for (const f of ["", ".0", ".000000000", ".123456789", ".5"]) clocks.push(`${h}:${m}:${sec}${f}`);
    }
  }
  const offsets = ["Z", "z", "+00:00", "-00:00", "+23:59", "+24:00", "+23:60", "+2359", "+2400", "+23", "+24", "+99", "-12:45"];
  const differ: string[] = [];
  let refusedByPatternOnly = 0;
  for (const d of dates) for (const c of clocks) for (const o of offsets) {
    const s = `${d}T${c}${o}`;
    const read = LOOSE.test(s) && !Number.isNaN(parseIsoTime(s)) && calendarDateExists(s);
    const matched = ISO_TIME.test(s) && calendarDateExists(s);
    if (read !== matched) differ.push(s);
    if (LOOSE.test(s) && !ISO_TIME.test(s)) refusedByPatternOnly++;
  }
  expect(differ).toEqual([]);
  // The grid does hold values the looser pattern let through and Date.parse refuses.
  expect(refusedByPatternOnly).toBeGreaterThan(1_000);
  expect(ISO_TIME.test("2026-12-02T24:00:00.000Z")).toBe(true); // the day's end, which Date.parse reads
  expect(ISO_TIME.test("2026-12-02T24:00:00.001Z")).toBe(false);
});
