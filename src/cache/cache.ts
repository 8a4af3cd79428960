// The response cache behind the heavy read routes. Two implementations with one behaviour:
// Valkey (shared by every instance; valkey-cache.ts) and in-process (memory-cache.ts).
//
// Invalidation without scans: every (service, UTC date) has a version counter
// (`analytics:ver:{serviceId}:{YYYY-MM-DD}`). `invalidate` bumps the counters of the dates a flush
// wrote; a request reads the counters of the dates its range touches and folds them into its key,
// so entries computed before the new data simply stop being found and age out by TTL.
import { createHash } from "node:crypto";

/** A stored response body and when it was computed (epoch ms, for the Age header). */
export interface CachedValue {
  body: string;
  storedAt: number;
}

export interface Cache {
  /** The version counters of (service, UTC date) pairs, in order. Rejects when the store is unreachable. */
  versions(serviceId: string, utcDates: readonly string[]): Promise<number[]>;
  /** The entry under `key`, if any. Rejects when the store is unreachable. */
  get(key: string): Promise<CachedValue | undefined>;
  /** Stores an entry for `ttlSeconds`. Rejects when the store is unreachable. */
  set(key: string, value: CachedValue, ttlSeconds: number): Promise<void>;
  /**
   * Makes every entry that read these UTC dates of this service stale. Callers (the ingest flush)
   * pass the UTC dates of every row written: item times and, for session rows, `started_at`.
   * Never rejects: resolves false when the store could not be reached (its entries are then
   * unreachable too, or expire by TTL).
   */
  invalidate(serviceId: string, utcDates: readonly string[]): Promise<boolean>;
  close(): Promise<void>;
}

/** The version counter key of one (service, UTC date). */
export function versionKey(serviceId: string, utcDate: string): string {
  return `analytics:ver:${serviceId}:${utcDate}`;
}

// Counters outlive every entry that read them by far (entries live ≤ 15 minutes), so a counter
// that expires and restarts at 0 cannot revive an entry computed under an old 0.
export const VERSION_TTL_SECONDS = 2 * 86_400;

/** What identifies one cached answer. */
export interface CacheIdentity {
  /** `behavior`, `funnel`, `stats`: the key's namespace, as in the seed's key patterns. */
  kind: string;
  /** The seed's `{serviceId}` or `{funnelId}` part. */
  id: string;
  /** The seed's `{date}` part: the requested date or `from..to`. */
  label: string;
  /** Every parameter that changes the answer (normalised) and the caller's scope. */
  params: unknown;
  versions: readonly number[];
}

/**
 * `analytics:{kind}:{id}:{label}:{hash}`: the seed's readable prefix, extended with a hash of the
 * parameters, the caller's scope and the date versions.
 */
export function cacheKey(i: CacheIdentity): string {
  // Synchronous node:crypto: Web Crypto's digest is a worker-thread round trip (visitor-id.ts).
  const hash = createHash("sha256").update(JSON.stringify([i.params, i.versions])).digest("hex").slice(0, 32);
  return `analytics:${i.kind}:${i.id}:${i.label}:${hash}`;
}
