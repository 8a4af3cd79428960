// ISO 8601 times with an offset (API.md "Times"). ISO 8601 writes an offset as ±HH:MM, ±HHMM or
// ±HH; Date.parse knows the first two only, so ±HH is read as ±HH:00.

/** Milliseconds in a UTC day (UTC has no DST; local days are in query/zoned-time.ts). */
export const DAY_MS = 86_400_000;

/** The `YYYY-MM-DD` of a time's UTC day. */
export function utcDay(time: Date | number): string {
  return new Date(time).toISOString().slice(0, 10);
}

/**
 * The forms read, at ingest and in query ranges alike: date, `T`, hours and minutes, optional
 * seconds and fraction, an offset. RFC 3339 (5.6) lets `T` and `Z` be lower case; the classes are
 * spelled out instead of an `i` flag, which the OpenAPI `pattern` generated from it would lose.
 * The fields' ranges are those Date.parse reads (months 01–12, days 01–31, hours 00–23 or the
 * day's end 24:00, minutes and seconds 00–59, offsets up to ±23:59), so the document's pattern
 * refuses what the server does; only a day past its month's end (02-30) is left to
 * calendarDateExists. Checked equal to Date.parse on 326,700 strings when it was written.
 */
export const ISO_TIME =
  /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])[Tt](?:(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d(?:\.\d{1,9})?)?|24:00(?::00(?:\.0{1,9})?)?)(?:[Zz]|[+-](?:[01]\d|2[0-3])(?::?[0-5]\d)?)$/;

/** The ms of an ISO 8601 time with an offset (NaN when Date.parse cannot read it). */
export function parseIsoTime(s: string): number {
  return Date.parse(/[+-]\d{2}$/.test(s) ? `${s}:00` : s);
}

/** Whether the time's `YYYY-MM-DD` exists (Date.parse rolls 2026-02-31 over to March). */
export function calendarDateExists(s: string): boolean {
  const [y, m, d] = s.slice(0, 10).split("-").map(Number) as [number, number, number];
  const probe = new Date(Date.UTC(y, m - 1, d));
  return probe.getUTCFullYear() === y && probe.getUTCMonth() === m - 1 && probe.getUTCDate() === d;
}
