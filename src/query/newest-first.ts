// Newest-first lists (/v1/sessions, /v1/events) read the newest part of the range first. A page is
// the `limit` newest rows before its upper bound (the range end, or the cursor), and a window
// [lower, upper) that already holds more rows than the page holds every row of the page: any row
// outside it is older than `lower`, so older than all of them. So a list asks a window of the last
// hour first, then a longer one, until a window holds more than a page or reaches the range start.
// Reading a whole 30-day range to return its newest 50 rows took 0.5-7.5 s on 10M events (every
// session grouped, every event sorted with its text); a busy service finds its page in the first
// hour. A window grows by what the last one found (twice the width that would hold a page at its
// density, at least 4 times; 16 times when it found nothing), so a quiet service needs a few
// small reads, and all of them together read at most 4/3 of the last window's rows. A next page
// starts from the width its cursor carries: twice what held this page's rows, scaled to a full
// page, so paging on at a steady density takes one read a page. Exact whatever the window: each
// session state's rows (its +1 row and a cancel row) share their started_at, so a window holds
// whole states, and an item has one time.
import { type Keyset, MIN_WINDOW_MS } from "./cursor.ts";

const FIRST_WINDOW_MS = 3_600_000;

/** The exclusive upper bound of a page: the range end, or just after the cursor's time. */
export function pageUpperBound(rangeEnd: number, after: Keyset | undefined): number {
  // The keyset condition keeps rows at the cursor's own time (smaller ids), so the bound is 1 ms past it.
  return after ? Math.min(rangeEnd, after.t + 1) : rangeEnd;
}

/**
 * The first window's rows that hold more than `limit` rows, or the whole range's. `read` returns the
 * rows of [lower, upper) newest first, at most limit + 1 of them (one more says there is a next page).
 */
export async function newestRows<T>(range: { start: number; end: number }, after: Keyset | undefined, limit: number, read: (lower: number, upper: number) => Promise<T[]>): Promise<T[]> {
  const upper = pageUpperBound(range.end, after);
  for (let width = after?.w ?? FIRST_WINDOW_MS; ; ) {
    const lower = Math.max(range.start, upper - width);
    const rows = await read(lower, upper);
    if (rows.length > limit || lower === range.start) return rows;
    width *= rows.length === 0 ? 16 : Math.max(4, Math.ceil((2 * (limit + 1)) / rows.length));
  }
}

/**
 * The first window of the page after this one (the `w` its cursor carries): this page's `pageRows`
 * rows lie in [lastT, upper), so at that density a page of limit + 1 rows fits in
 * (upper - lastT) * (limit + 1) / pageRows; twice that leaves room for the density to halve.
 */
export function nextWindow(upper: number, lastT: number, pageRows: number, limit: number): number {
  const held = Math.max(1, upper - lastT);
  return Math.max(MIN_WINDOW_MS, Math.ceil((2 * held * (limit + 1)) / Math.max(1, pageRows)));
}
