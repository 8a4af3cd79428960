// When a materialized view can answer instead of raw rows. View targets bucket by UTC hour (or
// UTC day for daily_session_stats), so a view serves a range only when every bound falls on such
// a boundary, when local buckets are unions of whole UTC units (zone offsets in whole hours, or 0
// for daily rows), and when the range is younger than the target's TTL. Filters always need raw
// rows: the targets keep no cross-dimension detail.
import type { ExecOptions } from "./sql-params.ts";
import type { TimeRange } from "./time-range.ts";
import { offsetMs } from "./zoned-time.ts";
import { DAY_MS } from "../iso-time.ts";

const HOUR = 3_600_000;

/** How to read: `raw` forces raw rows (benchmarks and tests compare both paths). */
export interface ReadOptions extends ExecOptions {
  /** Epoch ms of "now": the TTL check is relative to it. */
  now: number;
  forceRaw?: boolean;
  /**
   * A report may build each set of the sessions its filters select once, as a table, for all its
   * questions (src/query/matching-sessions.ts); only with the embedded engine.
   */
  sharedSets?: boolean;
}

export interface ViewFit {
  /** The target's bucket: UTC hours or UTC days. */
  unit: "hour" | "day";
  ttlDays: number;
  /** Whether results are bucketed in the request's zone (series), not just summed over the range. */
  zoned: boolean;
}

/**
 * The oldest instant the view described by `fit` still holds whole. TTL deletes whole old buckets
 * during merges; one unit of margin keeps partly deleted ones out.
 */
export function oldestWhole(fit: ViewFit, read: ReadOptions): number {
  return read.now - fit.ttlDays * DAY_MS + (fit.unit === "hour" ? HOUR : DAY_MS);
}

/** True when the view described by `fit` gives exactly the raw answer for `ranges`. */
export function viewFits(ranges: readonly TimeRange[], fit: ViewFit, read: ReadOptions): boolean {
  if (read.forceRaw) return false;
  const unit = fit.unit === "hour" ? HOUR : DAY_MS;
  const oldest = oldestWhole(fit, read);
  for (const r of ranges) {
    if (r.start % unit !== 0 || r.end % unit !== 0 || r.start < oldest) return false;
    if (fit.zoned && !zoneFits(r, unit)) return false;
  }
  return true;
}

// Sampled daily: real zones change offset at most a few times a year and hold each offset for
// months, so no period with a fractional (or, for days, non-zero) offset slips between samples.
function zoneFits(r: TimeRange, unit: number): boolean {
  if (r.tz === "UTC") return true;
  for (let t = r.start; t <= r.end; t += DAY_MS) {
    if (offsetMs(Math.min(t, r.end), r.tz) % unit !== 0) return false;
  }
  return true;
}
