// Seeds of the randomized tests: fixed by default (reproducible CI), `SEED=<n>` to replay a run,
// `SEED=random` to explore. The seed used is printed so a failure can be replayed.

/** The seed for one randomized suite: `fixed` unless the SEED environment variable says otherwise. */
export function testSeed(label: string, fixed: number, env: Record<string, string | undefined> = process.env): number {
  const raw = env.SEED;
  const seed = raw === "random" ? Math.floor(Math.random() * 2 ** 31) : raw ? Number(raw) : fixed;
  if (!Number.isSafeInteger(seed)) throw new Error(`SEED must be an integer or "random", got ${raw}`);
  console.log(`[${label}] SEED=${seed}${raw ? "" : " (fixed; SEED=random or SEED=<n> to change)"}`);
  return seed;
}

/** A small deterministic PRNG (mulberry32) with the helpers the generator needs. */
export function prng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
  return {
    next,
    int,
    pick: <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!,
    /** Picks with weights: [[value, weight], ...]. */
    weighted: <T>(items: ReadonlyArray<readonly [T, number]>): T => {
      const total = items.reduce((a, [, w]) => a + w, 0);
      let x = next() * total;
      for (const [v, w] of items) if ((x -= w) < 0) return v;
      return items[items.length - 1]![0];
    },
    chance: (p: number) => next() < p,
    uuid: () => {
      const hex = Array.from({ length: 32 }, () => Math.floor(next() * 16).toString(16)).join("");
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-${"89ab"[int(0, 3)]}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
    },
  };
}
export type Rng = ReturnType<typeof prng>;
