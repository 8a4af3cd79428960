// Small statistics helpers: medians and spreads over rounds, percentiles over samples.

/** The median of `xs` (mean of the middle two for an even count); NaN when empty. */
export function median(xs: readonly number[]): number {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** Nearest-rank percentile (0..100) of sorted `sorted`. */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1]!;
}

/** min, median, max and the spread ((max - min) / median) of a per-round series. */
export interface Summary {
  n: number;
  min: number;
  median: number;
  max: number;
  /** (max - min) / median, as a fraction. */
  spread: number;
  values: number[];
}

export function summarize(xs: readonly number[]): Summary {
  const values = xs.filter((x) => Number.isFinite(x));
  const med = median(values);
  const min = values.length ? Math.min(...values) : NaN;
  const max = values.length ? Math.max(...values) : NaN;
  return { n: values.length, min, median: med, max, spread: med ? (max - min) / Math.abs(med) : NaN, values };
}

/** Formats a number with a sensible precision for tables. */
export function fmt(x: number, digits?: number): string {
  if (!Number.isFinite(x)) return "n/a";
  const a = Math.abs(x);
  const d = digits ?? (a >= 1000 ? 0 : a >= 100 ? 1 : a >= 10 ? 1 : a >= 1 ? 2 : 3);
  return x.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** "median (min–max, ±spread%)" */
export function fmtSummary(s: Summary, digits?: number): string {
  if (s.n === 0) return "n/a";
  if (s.n === 1) return fmt(s.median, digits);
  return `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)}, spread ${fmt(s.spread * 100, 0)}%)`;
}
