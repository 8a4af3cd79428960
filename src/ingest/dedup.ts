// Remembers which event ids each service already sent, so a client retry is stored once.
// A claim is atomic (Valkey SET NX, or a map in one process); a request that fails after
// claiming gives its claims back, so its retry is not mistaken for a duplicate.
import type Redis from "ioredis";

/** How long an event id is remembered. */
export const DEDUP_WINDOW_MS = 24 * 60 * 60 * 1000;

export interface EventDedup {
  /** For each key, true when it is new (and now claimed), false when it was seen. */
  claim(keys: readonly string[]): Promise<boolean[]>;
  /** Forgets keys claimed by a request that did not complete. */
  release(keys: readonly string[]): Promise<void>;
  /** Marks keys as seen without asking (warm-up from stored rows after a restart). */
  remember(keys: readonly string[]): Promise<void>;
}

/** In-process: a map with expiry, capped (the oldest ids are forgotten first). */
export function memoryDedup(opts: { maxEntries?: number; windowMs?: number; now?: () => number } = {}): EventDedup & { size(): number } {
  const max = opts.maxEntries ?? 2_000_000;
  const windowMs = opts.windowMs ?? DEDUP_WINDOW_MS;
  const now = opts.now ?? Date.now;
  const seen = new Map<string, number>();
  const isSeen = (key: string) => {
    const expires = seen.get(key);
    if (expires === undefined) return false;
    if (expires > now()) return true;
    seen.delete(key);
    return false;
  };
  const add = (key: string) => {
    seen.set(key, now() + windowMs);
    if (seen.size > max) seen.delete(seen.keys().next().value!);
  };
  return {
    size: () => seen.size,
    async claim(keys) {
      return keys.map((key) => {
        if (isSeen(key)) return false;
        add(key);
        return true;
      });
    },
    async release(keys) {
      for (const key of keys) seen.delete(key);
    },
    async remember(keys) {
      for (const key of keys) add(key);
    },
  };
}

/** Valkey: one SET NX PX per id, pipelined. */
export function valkeyDedup(redis: Redis, opts: { windowMs?: number; prefix?: string } = {}): EventDedup {
  const windowMs = opts.windowMs ?? DEDUP_WINDOW_MS;
  const prefix = opts.prefix ?? "analytics:eid:";
  return {
    async claim(keys) {
      if (keys.length === 0) return [];
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.set(prefix + key, "1", "PX", windowMs, "NX");
      const results = (await pipeline.exec()) ?? [];
      return results.map(([err, value]) => {
        if (err) throw err;
        return value === "OK";
      });
    },
    async release(keys) {
      if (keys.length > 0) await redis.del(...keys.map((k) => prefix + k));
    },
    async remember(keys) {
      if (keys.length === 0) return;
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.set(prefix + key, "1", "PX", windowMs);
      await pipeline.exec();
    },
  };
}
