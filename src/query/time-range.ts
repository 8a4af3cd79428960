// The request's time range and its buckets. `from`/`to` as dates are inclusive local dates in
// `tz`: [local midnight of from, local midnight after to). As times (ISO 8601 with offset, or
// epoch ms) from is inclusive and to exclusive. Everything here yields UTC instants (epoch ms)
// that SQL compares against, so the zone logic lives in TypeScript only.
import { ApiError } from "../errors.ts";
import { dateOfDay, dayNumber, localDate, localHourStarts, localMidnight, localMidnights } from "./zoned-time.ts";
import { DAY_MS, parseIsoTime } from "../iso-time.ts";

export const INTERVALS = ["hour", "day", "week", "month"] as const;
export type Interval = (typeof INTERVALS)[number];

export const MAX_RANGE_DAYS = 400;
const DATE = /^\d{4}-\d{2}-\d{2}$/;

/** A resolved range: [start, end) in epoch ms, with the local dates when given as dates. */
export interface TimeRange {
  start: number;
  end: number;
  tz: string;
  /** Inclusive local dates, when both ends were dates (previous periods count local days). */
  dates?: { from: string; to: string };
}

/** One end of a range as sent: a local date or an instant. */
type Bound = { date: string } | { ms: number };

function parseBound(value: string): Bound {
  if (DATE.test(value)) return { date: value };
  return { ms: /^\d+$/.test(value) ? Number(value) : parseIsoTime(value) };
}

function invalid(param: string, message: string): ApiError {
  return new ApiError("invalid_query", `${param}: ${message}`, { issues: [{ path: param, message }] });
}

/**
 * How a bound of digits only was read, for the messages of a range that makes no sense:
 * `from=20261128` is epoch milliseconds (1970-01-01T05:37:41.128Z), not a date.
 */
function epochNote(q: { from?: string; to?: string }): string {
  const read = (["from", "to"] as const)
    .filter((k) => q[k] !== undefined && /^\d+$/.test(q[k]!))
    .map((k) => `${k}=${q[k]} is epoch milliseconds (${new Date(Number(q[k])).toISOString()})`);
  return read.length === 0 ? "" : `; ${read.join(", ")}; a date is YYYY-MM-DD`;
}

/**
 * Resolves from/to/tz (already format-checked) at time `now`. Default: the last 7 days, i.e.
 * local today and the 6 days before. A missing end is filled from the other one.
 */
export function resolveRange(q: { from?: string; to?: string; tz: string }, now: number): TimeRange {
  const today = localDate(now, q.tz);
  const from = q.from === undefined ? undefined : parseBound(q.from);
  const to = q.to === undefined ? undefined : parseBound(q.to);
  let fromB: Bound;
  let toB: Bound;
  if (!from && !to) [fromB, toB] = [{ date: dateOfDay(dayNumber(today) - 6) }, { date: today }];
  else if (from && !to) [fromB, toB] = [from, "date" in from ? { date: today } : { ms: now }];
  else if (!from && to) [fromB, toB] = ["date" in to ? { date: dateOfDay(dayNumber(to.date) - 6) } : { ms: to.ms - 7 * DAY_MS }, to];
  else [fromB, toB] = [from!, to!];

  const start = "date" in fromB ? localMidnight(fromB.date, q.tz) : fromB.ms;
  const end = "date" in toB ? localMidnight(dateOfDay(dayNumber(toB.date) + 1), q.tz) : toB.ms;
  if (start >= end) {
    // Dates in order that still make no time: every one of them was skipped by the zone.
    if ("date" in fromB && "date" in toB && fromB.date <= toB.date) {
      throw invalid("from", `${fromB.date === toB.date ? fromB.date : `${fromB.date} to ${toB.date}`} does not exist in ${q.tz} (the zone skipped it): the range is empty`);
    }
    // Without `to`, the end was filled in (today, or now): say so rather than name a `to` never sent.
    const implied = q.to === undefined ? ` (to was not sent: it defaults to ${"date" in toB ? `today in ${q.tz}, ${toB.date}` : "now"})` : "";
    throw invalid("from", `must be before to${implied}${epochNote(q)}`);
  }
  if ("date" in fromB && "date" in toB) {
    const days = dayNumber(toB.date) - dayNumber(fromB.date) + 1;
    if (days > MAX_RANGE_DAYS) throw invalid("to", `the range may span at most ${MAX_RANGE_DAYS} days`);
    return { start, end, tz: q.tz, dates: { from: fromB.date, to: toB.date } };
  }
  if (end - start > MAX_RANGE_DAYS * DAY_MS) throw invalid("to", `the range may span at most ${MAX_RANGE_DAYS} days${epochNote(q)}`);
  return { start, end, tz: q.tz };
}

/** The period of the same length just before: the same number of local days for dates. */
export function previousRange(r: TimeRange): TimeRange {
  if (!r.dates) return { start: r.start - (r.end - r.start), end: r.start, tz: r.tz };
  const days = dayNumber(r.dates.to) - dayNumber(r.dates.from) + 1;
  const from = dateOfDay(dayNumber(r.dates.from) - days);
  const to = dateOfDay(dayNumber(r.dates.from) - 1);
  return { start: localMidnight(from, r.tz), end: r.start, tz: r.tz, dates: { from, to } };
}

/**
 * Start instants of the local buckets that overlap the range, in order. The first bucket may
 * start before the range (a time `from` inside a day); weeks start on Monday.
 */
export function bucketStarts(r: TimeRange, interval: Interval): number[] {
  if (interval === "hour") return localHourStarts(r.start, r.end, r.tz);
  const out: number[] = [];
  let day = dayNumber(localDate(r.start, r.tz));
  if (interval === "week") day -= (new Date(day * DAY_MS).getUTCDay() + 6) % 7;
  if (interval === "month") day = dayNumber(`${dateOfDay(day).slice(0, 8)}01`);
  // Days step through stretches of one offset; weeks and months ask for fewer midnights than the
  // stretches' daily samples would cost.
  const midnight = interval === "day" ? localMidnights(r.tz, r.end) : (d: number) => localMidnight(dateOfDay(d), r.tz);
  for (let t = midnight(day); t < r.end; t = midnight(day)) {
    if (out.at(-1) !== t) out.push(t); // a date the zone skipped starts where the next one does: one bucket
    day = interval === "day" ? day + 1 : interval === "week" ? day + 7 : nextMonth(day);
  }
  return out;
}

function nextMonth(day: number): number {
  const d = new Date(day * DAY_MS);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) / DAY_MS;
}

/** The UTC dates (`YYYY-MM-DD`) that [start, end) touches: the cache's invalidation units. */
export function utcDatesOf(...ranges: TimeRange[]): string[] {
  const out = new Set<string>();
  for (const r of ranges) {
    const last = Math.floor((r.end - 1) / DAY_MS);
    for (let d = Math.floor(r.start / DAY_MS); d <= last; d++) out.add(dateOfDay(d));
  }
  return [...out].sort();
}

/** A short readable name of the range for cache keys and logs: one date, or `from..to`. */
export function rangeLabel(r: TimeRange): string {
  if (r.dates) return r.dates.from === r.dates.to ? r.dates.from : `${r.dates.from}..${r.dates.to}`;
  return `${new Date(r.start).toISOString()}..${new Date(r.end).toISOString()}`;
}
