// Wall-clock arithmetic in IANA time zones with Intl only, so day and hour boundaries are computed
// in one place (TypeScript) and handed to SQL as UTC instants. DST-aware: a local day may last 23
// or 25 hours, and a zone may even skip its midnight.
import { DAY_MS, utcDay } from "../iso-time.ts";

const HOUR_MS = 3_600_000;
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(tz: string): Intl.DateTimeFormat {
  let f = formatters.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-US", {
      timeZone: tz,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    // Only validated, canonical zone names reach here, so the map stays bounded (a few hundred).
    formatters.set(tz, f);
  }
  return f;
}

/** Local calendar fields of an instant in `tz` (month 1-12). */
export interface LocalParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

/** The wall clock in `tz` at instant `ms` (to the second). */
export function localParts(ms: number, tz: string): LocalParts {
  const out: Record<string, number> = {};
  for (const part of formatter(tz).formatToParts(new Date(ms))) {
    if (part.type !== "literal") out[part.type] = Number(part.value);
  }
  return { year: out.year!, month: out.month!, day: out.day!, hour: out.hour!, minute: out.minute!, second: out.second! };
}

/** Offset of `tz` from UTC at instant `ms`, in ms (local = utc + offset). */
export function offsetMs(ms: number, tz: string): number {
  const p = localParts(ms, tz);
  const asUtc = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute, p.second);
  return asUtc - (ms - (((ms % 1000) + 1000) % 1000));
}

/** A calendar date `YYYY-MM-DD` as days since 1970-01-01 (pure calendar, no zone). */
export function dayNumber(date: string): number {
  const [y, m, d] = date.split("-").map(Number) as [number, number, number];
  return Date.UTC(y, m - 1, d) / DAY_MS;
}

/** The inverse of dayNumber. */
export function dateOfDay(day: number): string {
  return utcDay(day * DAY_MS);
}

/** The local calendar date (`YYYY-MM-DD`) of instant `ms` in `tz`. */
export function localDate(ms: number, tz: string): string {
  const p = localParts(ms, tz);
  return dateOfDay(Date.UTC(p.year, p.month - 1, p.day) / DAY_MS);
}

/**
 * The first instant whose local date in `tz` is `date`. Usually local 00:00; when the zone skips
 * midnight (a DST jump at 00:00) it is the jump itself, when the local day starts at 01:00; when
 * it skips the whole date, the start of the next one (an empty day).
 */
export function localMidnight(date: string, tz: string, skippedDepth = 0): number {
  const wall = dayNumber(date) * DAY_MS;
  // The offsets in force around that day; the answer is wall - one of them.
  const offsets = new Set([offsetMs(wall - DAY_MS, tz), offsetMs(wall, tz), offsetMs(wall + DAY_MS, tz)]);
  const candidates = [...offsets].map((o) => wall - o).sort((a, b) => a - b);
  const exact = candidates.find((t) => offsetMs(t, tz) === wall - t);
  if (exact !== undefined) return exact;
  // No candidate shows 00:00: midnight was skipped. The earliest candidate already on `date`
  // (computed with the offset before the jump) is the jump instant.
  const onDate = candidates.find((t) => localDate(t, tz) === date);
  if (onDate !== undefined) return onDate;
  // The zone skipped the whole date (Pacific/Apia and Pacific/Fakaofo have no 2011-12-30): it is
  // an empty day, starting and ending where the next date starts.
  if (skippedDepth >= 2) throw new Error(`no local midnight for ${date} in ${tz}`);
  return localMidnight(dateOfDay(dayNumber(date) + 1), tz, skippedDepth + 1);
}

/**
 * localMidnight for a run of increasing dates (days since 1970, as dayNumber) up to `end`:
 * where the zone's offset holds, a date's midnight is its wall-clock midnight less that offset,
 * without asking Intl again (a 400-day daily series asked it ~2,000 times, ~7 ms of the JS
 * thread). The offset is sampled daily from each midnight computed in full, as in
 * localHourStarts; a date past the stretch is computed in full again.
 */
export function localMidnights(tz: string, end: number): (day: number) => number {
  let offset = 0;
  let from = Infinity; // the offset is `offset` at every instant of [from, holds]
  let holds = -Infinity;
  return (day) => {
    const t = day * DAY_MS - offset;
    if (t > from && t <= holds) return t;
    const exact = localMidnight(dateOfDay(day), tz);
    offset = offsetMs(exact, tz);
    from = exact;
    holds = offsetHolds(exact, offset, end, tz);
    return exact;
  };
}

/**
 * The start of the local hour that contains `ms`. Hours follow the local clock: a bucket is a
 * local date and hour at one UTC offset, so it starts when the clock shows hh:00, or at an offset
 * change inside the hour. A repeated hour at a DST change is two buckets (America/New_York: 25 in
 * the day), and Australia/Lord_Howe's 30-minute changes start a bucket at hh:30 (its local 02:30-03:00
 * on the spring day is the hour "02").
 */
export function localHourStart(ms: number, tz: string): number {
  const whole = ms - (((ms % 1000) + 1000) % 1000);
  const p = localParts(whole, tz);
  const clockHour = whole - (p.minute * 60 + p.second) * 1000;
  const offset = offsetMs(whole, tz);
  return offsetMs(clockHour, tz) === offset ? clockHour : firstWithOffset(clockHour, whole, tz, offset);
}

/** The start of the local hour after the one starting at `hourStart` (see localHourStart). */
export function nextLocalHour(hourStart: number, tz: string): number {
  const p = localParts(hourStart, tz);
  const clockEnd = hourStart - (p.minute * 60 + p.second) * 1000 + 3_600_000;
  const before = offsetMs(clockEnd - 1000, tz);
  return before === offsetMs(hourStart, tz) ? clockEnd : firstWithOffset(hourStart, clockEnd - 1000, tz, before);
}

/**
 * The local hour starts from the hour containing `start` up to `end` (exclusive): localHourStart,
 * then nextLocalHour after each. Stretches where the zone's offset holds are stepped an hour at a
 * time without asking Intl (three formatToParts calls an hour made a 400-day hourly series cost
 * ~100 ms of the JS thread); the offset is sampled daily, as in hasOffsetChangeOffTheHour (zones
 * change offset at most a few times a year), and the hours from the last sample with the old
 * offset on are stepped exactly.
 */
export function localHourStarts(start: number, end: number, tz: string): number[] {
  const out: number[] = [];
  let t = localHourStart(start, tz);
  while (t < end) {
    out.push(t);
    const offset = offsetMs(t, tz);
    const holds = offsetHolds(t, offset, end, tz);
    // The next hh:00 of the local clock, and each one after it while the offset holds.
    let next = t - ((((t + offset) % HOUR_MS) + HOUR_MS) % HOUR_MS) + HOUR_MS;
    for (; next <= holds && next < end; next += HOUR_MS) out.push(next);
    t = nextLocalHour(out.at(-1)!, tz);
  }
  return out;
}

/**
 * The last of the daily samples t, t + 1 day, … (stopping at `end` or after it) up to which the
 * zone's offset is `offset` (the offset at t): the offset is `offset` at every instant of
 * [t, that sample], zones changing offset at most a few times a year, never twice in a day.
 */
function offsetHolds(t: number, offset: number, end: number, tz: string): number {
  let holds = t;
  while (holds < end && offsetMs(holds + DAY_MS, tz) === offset) holds += DAY_MS;
  return holds;
}

/** The first whole second in (lo, hi] with `offset`, given lo has another offset and hi has it. */
function firstWithOffset(lo: number, hi: number, tz: string, offset: number): number {
  while (hi - lo > 1000) {
    const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
    if (offsetMs(mid, tz) === offset) hi = mid;
    else lo = mid;
  }
  return hi;
}

/**
 * Whether the zone's offset changes within [start, end] (a day of margin each side) at an instant
 * the local clock does not show hh:00 on both sides of: Australia/Lord_Howe's 30-minute changes
 * (02:00 → 02:30), Pacific/Chatham's at 02:45 / 03:45. Such a change starts a local hour bucket
 * mid-hour (see localHourStart). Offsets are sampled daily: zones change offset at most a few
 * times a year, so no change slips between samples.
 */
export function hasOffsetChangeOffTheHour(r: { start: number; end: number; tz: string }): boolean {
  if (r.tz === "UTC") return false;
  let t0 = r.start - DAY_MS;
  let previous = offsetMs(t0, r.tz);
  for (let t = r.start; t <= r.end + DAY_MS; t += DAY_MS) {
    const offset = offsetMs(t, r.tz);
    if (offset !== previous) {
      const change = firstWithOffset(t0, t, r.tz, offset);
      const onTheHour = (localMs: number) => ((localMs % 3_600_000) + 3_600_000) % 3_600_000 === 0;
      if (!onTheHour(change + offset) || !onTheHour(change + previous)) return true;
    }
    t0 = t;
    previous = offset;
  }
  return false;
}
