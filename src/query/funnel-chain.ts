// The chain ClickHouse's windowFunnel (default mode) follows for one unit, replayed in TypeScript
// so the route can report the time between steps. Same algorithm as windowFunnel: events sorted
// by (time, step); a step-1 event (re)starts a chain; a step-k event extends the latest chain that
// reached step k-1 when it is within `window` of that chain's step-1 time (equal times count, as
// in windowFunnel's default mode). The unit's level is the highest step any chain reached.
//
// Median definition: for a unit that reached level L, its chain is the one that FIRST reached L;
// for every step k ≤ L, the unit contributes (time of its step-k event − time of its step-(k−1)
// event) in that chain. median_seconds_from_previous(k) is the median of those over the units
// reaching step k (the mean of the middle two when their number is even), in seconds.

export const MAX_STEPS = 20;

export interface ChainResult {
  level: number;
  /** Event times (ms) of the chain that first reached `level`: steps 1..level. */
  times: number[];
}

/** Replays windowFunnel over one unit's (time ms, step) events. */
export function funnelChain(events: ReadonlyArray<readonly [number, number]>, windowMs: number): ChainResult {
  const sorted = [...events].sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  // latest[k]: the step-1 time and the event times of the latest chain that reached step k+1.
  const latest: Array<{ first: number; times: number[] } | undefined> = new Array(MAX_STEPS);
  let best: ChainResult = { level: 0, times: [] };
  for (const [t, step] of sorted) {
    const k = step - 1;
    if (k < 0 || k >= MAX_STEPS) continue;
    if (k === 0) latest[0] = { first: t, times: [t] };
    else {
      const prev = latest[k - 1];
      if (!prev || t > prev.first + windowMs) continue;
      latest[k] = { first: prev.first, times: [...prev.times, t] };
    }
    if (k + 1 > best.level) best = { level: k + 1, times: latest[k]!.times };
    if (best.level === MAX_STEPS) break;
  }
  return best;
}

/**
 * The median of ms gaps, in seconds (mean of the middle two for an even count); null when empty.
 * One division of an exact integer, so the double nearest the exact value: averaging two values
 * already divided by 1000 rounds three times (gaps of 1 and 9 ms gave 0.004999999999999999 s).
 */
export function medianSeconds(gapsMs: number[]): number | null {
  if (gapsMs.length === 0) return null;
  // A typed array sorts numerically in native code (~100k values: ~25 → a few ms).
  const s = Float64Array.from(gapsMs).sort();
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! / 1000 : (s[mid - 1]! + s[mid]!) / 2000;
}
