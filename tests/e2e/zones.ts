// Local-time arithmetic for the model, written independently of src/query/zoned-time.ts: local
// dates come from Intl, and every boundary is found by search (binary search for the first
// instant of a local date, a 15-minute grid for local hour starts), not by offset arithmetic.
const DAY = 86_400_000;
const HOUR = 3_600_000;
const QUARTER = 900_000;

const formats = new Map<string, Intl.DateTimeFormat>();
function fmt(tz: string): Intl.DateTimeFormat {
  let f = formats.get(tz);
  if (!f) {
    f = new Intl.DateTimeFormat("en-CA", {
      timeZone: tz, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
    });
    formats.set(tz, f);
  }
  return f;
}

export interface Wall {
  date: string;
  hour: number;
  minute: number;
  second: number;
}

export function wall(ms: number, tz: string): Wall {
  const p: Record<string, string> = {};
  for (const part of fmt(tz).formatToParts(new Date(ms))) p[part.type] = part.value;
  return { date: `${p.year}-${p.month}-${p.day}`, hour: Number(p.hour), minute: Number(p.minute), second: Number(p.second) };
}

export const localDate = (ms: number, tz: string): string => wall(ms, tz).date;

/** `date` plus `n` calendar days. */
export function addDays(date: string, n: number): string {
  const [y, m, d] = date.split("-").map(Number) as [number, number, number];
  return new Date(Date.UTC(y, m - 1, d + n)).toISOString().slice(0, 10);
}

export function daysBetween(from: string, to: string): number {
  return Math.round((Date.parse(`${to}T00:00:00Z`) - Date.parse(`${from}T00:00:00Z`)) / DAY);
}

const firstInstants = new Map<string, number>();
/** The first instant whose local date in `tz` is `date` (local midnight, or the jump that skips it). */
export function startOfLocalDate(date: string, tz: string): number {
  const key = `${tz} ${date}`;
  const hit = firstInstants.get(key);
  if (hit !== undefined) return hit;
  // Local date is non-decreasing in time: find the first instant with localDate >= date.
  let lo = Date.parse(`${date}T00:00:00Z`) - 16 * HOUR; // localDate(lo) < date for every real zone
  let hi = lo + 32 * HOUR; // localDate(hi) >= date
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (localDate(mid, tz) >= date) hi = mid;
    else lo = mid;
  }
  firstInstants.set(key, hi);
  return hi;
}

/** [start, end) of inclusive local dates. */
export function dateRange(from: string, to: string, tz: string): { start: number; end: number } {
  return { start: startOfLocalDate(from, tz), end: startOfLocalDate(addDays(to, 1), tz) };
}

/**
 * Local hour bucket starts in [from, to) on a 15-minute grid (every zone's offset changes at a
 * quarter hour): where the local (date, hour) label or the UTC offset differs from a quarter hour
 * before. A repeated hour is two buckets; a 30-minute DST change (Australia/Lord_Howe) starts one
 * at hh:30.
 */
function localHourStarts(from: number, to: number, tz: string): number[] {
  const label = (t: number) => {
    const w = wall(t, tz);
    const [y, m, d] = w.date.split("-").map(Number) as [number, number, number];
    return `${w.date} ${w.hour} ${Date.UTC(y, m - 1, d, w.hour, w.minute, w.second) - t}`;
  };
  const out: number[] = [];
  for (let t = Math.floor(from / QUARTER) * QUARTER; t < to; t += QUARTER) {
    if (label(t) !== label(t - QUARTER)) out.push(t);
  }
  return out;
}

export type Interval = "hour" | "day" | "week" | "month";

/** Bucket starts: the bucket holding `start`, then every later bucket start before `end`. */
export function buckets(start: number, end: number, tz: string, interval: Interval): number[] {
  if (interval === "hour") {
    const starts = localHourStarts(start - 2 * HOUR, end, tz);
    const first = starts.findLastIndex((t) => t <= start);
    return starts.slice(first);
  }
  let date = localDate(start, tz);
  if (interval === "week") {
    const weekday = new Date(`${date}T00:00:00Z`).getUTCDay(); // 0 = Sunday
    date = addDays(date, -((weekday + 6) % 7));
  } else if (interval === "month") {
    date = `${date.slice(0, 8)}01`;
  }
  const out: number[] = [];
  for (let t = startOfLocalDate(date, tz); t < end; t = startOfLocalDate(date, tz)) {
    out.push(t);
    if (interval === "day") date = addDays(date, 1);
    else if (interval === "week") date = addDays(date, 7);
    else {
      const [y, m] = date.split("-").map(Number) as [number, number];
      date = new Date(Date.UTC(y, m, 1)).toISOString().slice(0, 10);
    }
  }
  return out;
}

/** UTC offset in minutes at `ms` (local wall time minus UTC). */
export function offsetMinutes(ms: number, tz: string): number {
  const w = wall(ms, tz);
  const asUtc = Date.parse(`${w.date}T${String(w.hour).padStart(2, "0")}:${String(w.minute).padStart(2, "0")}:${String(w.second).padStart(2, "0")}Z`);
  return Math.round((asUtc - (ms - (ms % 1000))) / 60_000);
}

/** The first instant in (from, to] where the zone's offset changes, or undefined. */
export function offsetChange(tz: string, from: number, to: number): number | undefined {
  let prev = offsetMinutes(from, tz);
  for (let t = Math.floor(from / HOUR) * HOUR + HOUR; t <= to; t += HOUR) {
    const o = offsetMinutes(t, tz);
    if (o !== prev) {
      // Narrow down to the minute.
      let lo = t - HOUR;
      let hi = t;
      while (hi - lo > 60_000) {
        const mid = lo + Math.floor((hi - lo) / 2 / 60_000) * 60_000;
        if (offsetMinutes(mid, tz) === prev) lo = mid;
        else hi = mid;
      }
      return hi;
    }
    prev = o;
  }
  return undefined;
}

/** ISO 8601 with the zone's own offset at that instant, e.g. 2026-11-01T01:30:00.123-05:00. */
export function isoWithOffset(ms: number, tz: string): string {
  const off = offsetMinutes(ms, tz);
  const local = new Date(ms + off * 60_000).toISOString().slice(0, 23);
  const sign = off < 0 ? "-" : "+";
  const abs = Math.abs(off);
  return `${local}${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`;
}
