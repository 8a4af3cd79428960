// The Cache in process memory, for a single instance without Valkey (and the same behaviour as
// valkey-cache.ts): a bounded LRU of entries with TTLs and version counters per (service, date).
import { type Cache, type CachedValue, versionKey } from "./cache.ts";

export interface MemoryCacheOptions {
  /** Most entries kept; the least recently used go first. */
  maxEntries?: number;
  /** Most version counters kept. */
  maxVersions?: number;
  now?: () => number;
}

/** Builds an in-process Cache. */
export function memoryCache(opts: MemoryCacheOptions = {}): Cache {
  const maxEntries = opts.maxEntries ?? 5_000;
  const maxVersions = opts.maxVersions ?? 100_000;
  const now = opts.now ?? Date.now;
  // Map iteration order is insertion order: re-inserting on use makes the first key the LRU.
  const entries = new Map<string, { value: CachedValue; expires: number }>();
  const counters = new Map<string, number>();

  return {
    async versions(serviceId, utcDates) {
      return utcDates.map((d) => counters.get(versionKey(serviceId, d)) ?? 0);
    },
    async get(key) {
      const hit = entries.get(key);
      if (!hit) return undefined;
      entries.delete(key);
      if (hit.expires <= now()) return undefined;
      entries.set(key, hit);
      return hit.value;
    },
    async set(key, value, ttlSeconds) {
      entries.delete(key);
      entries.set(key, { value, expires: now() + ttlSeconds * 1000 });
      while (entries.size > maxEntries) entries.delete(entries.keys().next().value!);
    },
    async invalidate(serviceId, utcDates) {
      for (const d of new Set(utcDates)) {
        const k = versionKey(serviceId, d);
        const next = (counters.get(k) ?? 0) + 1;
        counters.delete(k);
        counters.set(k, next);
      }
      if (counters.size > maxVersions) {
        // A forgotten counter reads 0 again and could match an entry computed under an earlier 0:
        // drop the entries along with the oldest counters.
        while (counters.size > maxVersions) counters.delete(counters.keys().next().value!);
        entries.clear();
      }
      return true;
    },
    async close() {
      entries.clear();
    },
  };
}
