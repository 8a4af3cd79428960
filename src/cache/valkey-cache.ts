// The Cache on Valkey (ioredis). A down or slow Valkey must cost latency, never an error: no
// offline queue (commands fail at once while disconnected), a short per-command timeout, and
// reconnection in the background forever. Callers treat a rejection as a miss.
import Redis from "ioredis";
import { type Cache, type CachedValue, VERSION_TTL_SECONDS, versionKey } from "./cache.ts";

export interface ValkeyCacheOptions {
  url: string;
  db: number;
  password?: string;
  /** Per-command timeout; a slower answer counts as a miss. */
  commandTimeoutMs?: number;
  /** Called on connection errors (they repeat while Valkey is down; log at a low level). */
  onError?: (error: Error) => void;
}

/** Builds a Cache on Valkey. Connects in the background; usable at once. */
export function valkeyCache(opts: ValkeyCacheOptions): Cache {
  const redis = new Redis(opts.url, {
    db: opts.db,
    password: opts.password,
    enableOfflineQueue: false,
    commandTimeout: opts.commandTimeoutMs ?? 75,
    maxRetriesPerRequest: 0,
    connectTimeout: 1_000,
    // Keep trying, with a capped backoff: the cache comes back by itself when Valkey does.
    retryStrategy: (times) => Math.min(50 * times, 1_000),
  });
  // Without a listener ioredis reports every failed reconnect as an unhandled error.
  redis.on("error", (error: Error) => opts.onError?.(error));

  return {
    async versions(serviceId, utcDates) {
      if (utcDates.length === 0) return [];
      const values = await redis.mget(utcDates.map((d) => versionKey(serviceId, d)));
      return values.map((v) => (v === null ? 0 : Number(v)));
    },
    async get(key) {
      const raw = await redis.get(key);
      if (raw === null) return undefined;
      const cut = raw.indexOf("\n");
      return { storedAt: Number(raw.slice(0, cut)), body: raw.slice(cut + 1) } satisfies CachedValue;
    },
    async set(key, value, ttlSeconds) {
      await redis.set(key, `${value.storedAt}\n${value.body}`, "EX", ttlSeconds);
    },
    async invalidate(serviceId, utcDates) {
      if (utcDates.length === 0) return true;
      try {
        const batch = redis.multi();
        for (const d of new Set(utcDates)) batch.incr(versionKey(serviceId, d)).expire(versionKey(serviceId, d), VERSION_TTL_SECONDS);
        await batch.exec();
        return true;
      } catch {
        return false;
      }
    },
    async close() {
      redis.disconnect();
    },
  };
}
