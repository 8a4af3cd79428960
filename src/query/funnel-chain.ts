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

/**
 * One event as a single number, time × 32 + step (steps are 1..20): ordering the numbers orders
 * the events by (time, step), as windowFunnel does. The route's query sends each unit's events so
 * (one number each instead of a pair: ~0.8x the engine's time and half the JSON parsing for a
 * 30-day funnel); exact as a double while the time is below 2^48 ms (the year 10889).
 */
export const STEP_SLOTS = 32;
export const packEvent = (timeMs: number, step: number): number => timeMs * STEP_SLOTS + step;

// A chain is its last event and a link to the event before it (`parent`), so extending one
// copies nothing: a 30-day funnel replays ~100,000 units per request. Scratch arrays reused
// across calls (the replay is synchronous), grown when a unit has more events.
let parent = new Int32Array(64);
let first = new Float64Array(64);
const latest = new Int32Array(MAX_STEPS);

/** Replays windowFunnel over one unit's (time ms, step) events, in any order. */
export function funnelChain(events: ReadonlyArray<readonly [number, number]>, windowMs: number): ChainResult {
  const packed = events.filter(([, step]) => step >= 1 && step <= MAX_STEPS).map(([t, step]) => packEvent(t, step));
  return packedChain(packed.sort((a, b) => a - b), windowMs);
}

/** funnelChain over packed events (packEvent) already in ascending order. */
export function packedChain(sorted: ReadonlyArray<number>, windowMs: number): ChainResult {
  if (sorted.length > parent.length) {
    parent = new Int32Array(sorted.length * 2);
    first = new Float64Array(sorted.length * 2);
  }
  // latest[k]: the event that ends the latest chain that reached step k+1 (-1: none yet).
  latest.fill(-1);
  let level = 0;
  let end = -1;
  for (let i = 0; i < sorted.length; i++) {
    const t = Math.floor(sorted[i]! / STEP_SLOTS);
    const k = sorted[i]! - t * STEP_SLOTS - 1;
    if (k < 0 || k >= MAX_STEPS) continue;
    if (k === 0) {
      parent[i] = -1;
      first[i] = t;
    } else {
      const prev = latest[k - 1]!;
      if (prev < 0 || t > first[prev]! + windowMs) continue;
      parent[i] = prev;
      first[i] = first[prev]!;
    }
    latest[k] = i;
    if (k + 1 > level) {
      level = k + 1;
      end = i;
      if (level === MAX_STEPS) break;
    }
  }
  const times = new Array<number>(level);
  for (let k = level - 1, i = end; k >= 0; k--, i = parent[i]!) times[k] = Math.floor(sorted[i]! / STEP_SLOTS);
  return { level, times };
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
