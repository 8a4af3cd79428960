// The Cache in process memory, for a single instance without Valkey (and the same behaviour as
// valkey-cache.ts): an LRU of entries with TTLs, bounded in count and in bytes, and version
// counters per (service, date).
import { BoundedMap } from "../memo.ts";
import { type Cache, type CachedValue, versionKey } from "./cache.ts";

export interface MemoryCacheOptions {
  /** Most entries kept; the least recently used go first. */
  maxEntries?: number;
  /** Most bytes of answer bodies kept (default 64 MiB); the least recently used go first. */
  maxBytes?: number;
  /** Most version counters kept. */
  maxVersions?: number;
  now?: () => number;
}

/** Builds an in-process Cache. */
export function memoryCache(opts: MemoryCacheOptions = {}): Cache {
  const maxEntries = opts.maxEntries ?? 5_000;
  const maxVersions = opts.maxVersions ?? 100_000;
  const now = opts.now ?? Date.now;
  // Linked-list LRUs (memo.ts), not Map delete + re-insert per use: in JSC every deleted Map
  // entry leaves a tombstone that later iteration walks (see memo.ts).
  const maxBytes = opts.maxBytes ?? 64 * 1024 * 1024;
  let bytes = 0;
  const entries = new BoundedMap<string, { value: CachedValue; expires: number }>(maxEntries, (_, e) => (bytes -= e.value.body.length));
  const forget = (key: string) => {
    const e = entries.peek(key);
    if (e && entries.delete(key)) bytes -= e.value.body.length;
  };
  const counters = new BoundedMap<string, number>(maxVersions);

  return {
    async versions(serviceId, utcDates) {
      return utcDates.map((d) => counters.peek(versionKey(serviceId, d)) ?? 0);
    },
    async get(key) {
      const hit = entries.get(key);
      if (!hit) return undefined;
      if (hit.expires <= now()) {
        forget(key);
        return undefined;
      }
      return hit.value;
    },
    async set(key, value, ttlSeconds) {
      forget(key);
      entries.set(key, { value, expires: now() + ttlSeconds * 1000 });
      bytes += value.body.length;
      while (bytes > maxBytes && entries.evictOldest());
    },
    async invalidate(serviceId, utcDates) {
      let forgot = false;
      for (const d of new Set(utcDates)) {
        const k = versionKey(serviceId, d);
        const current = counters.peek(k);
        // A new counter when the map is full pushes out the least recently bumped one.
        if (current === undefined && counters.size >= maxVersions) forgot = true;
        counters.set(k, (current ?? 0) + 1);
      }
      // A forgotten counter reads 0 again and could match an entry computed under an earlier 0:
      // drop the entries along with it.
      if (forgot) {
        entries.clear();
        bytes = 0;
      }
      return true;
    },
    async close() {
      entries.clear();
      bytes = 0;
    },
  };
}
