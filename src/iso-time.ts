// ISO 8601 times with an offset (API.md "Times"). ISO 8601 writes an offset as ±HH:MM, ±HHMM or
// ±HH; Date.parse knows the first two only, so ±HH is read as ±HH:00.

/** The ms of an ISO 8601 time with an offset (NaN when Date.parse cannot read it). */
export function parseIsoTime(s: string): number {
  return Date.parse(/[+-]\d{2}$/.test(s) ? `${s}:00` : s);
}
