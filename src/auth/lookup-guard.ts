// Bounds the direct ClickHouse lookups that verify() makes for keys missing from the in-process
// cache. Such a miss is either a key created on another instance moments ago (worth one lookup)
// or garbage (worth none): a negative cache answers repeats of one hash, concurrent misses of one
// hash share a query, and a per-second cap stops a stream of distinct garbage keys from turning
// into a stream of queries.
import { ApiError } from "../errors.ts";

export interface LookupGuardOptions {
  /** How long a hash that was not found stays known-missing. */
  negativeTtlMs: number;
  /** Direct lookups allowed per second across all hashes. */
  lookupsPerSecond: number;
  now?: () => number;
}

/** Negative cache, in-flight sharing and a fixed-window rate cap for key lookups. */
export class LookupGuard<T> {
  readonly #missing = new Map<string, number>();
  readonly #inflight = new Map<string, Promise<T | null>>();
  readonly #now: () => number;
  #windowStart = 0;
  #used = 0;

  constructor(private readonly opts: LookupGuardOptions) {
    this.#now = opts.now ?? Date.now;
  }

  /**
   * `find(hash)` under the guard: null at once for a hash known missing, the same promise for
   * concurrent calls, and 503 when this second's budget is spent. A null result is remembered.
   */
  lookup(hash: string, find: () => Promise<T | null>): Promise<T | null> {
    if (this.knownMissing(hash)) return Promise.resolve(null);
    const pending = this.#inflight.get(hash);
    if (pending) return pending;
    if (!this.tryAcquire()) {
      // Not "unknown key" (401): it may well exist, created on another instance; a refresh will tell.
      return Promise.reject(new ApiError("unavailable", "Too many unknown keys right now; retry shortly", { retryAfterSeconds: 5 }));
    }
    const run = find()
      .then((found) => {
        if (found === null) this.rememberMissing(hash);
        return found;
      })
      .finally(() => this.#inflight.delete(hash));
    this.#inflight.set(hash, run);
    return run;
  }

  /** True while `hash` is remembered as not found. */
  knownMissing(hash: string): boolean {
    const until = this.#missing.get(hash);
    if (until === undefined) return false;
    if (until > this.#now()) return true;
    this.#missing.delete(hash);
    return false;
  }

  /** Takes one lookup from this second's budget; false when it is spent. */
  tryAcquire(): boolean {
    const now = this.#now();
    if (now - this.#windowStart >= 1000) {
      this.#windowStart = now;
      this.#used = 0;
    }
    if (this.#used >= this.opts.lookupsPerSecond) return false;
    this.#used++;
    return true;
  }

  rememberMissing(hash: string): void {
    const now = this.#now();
    // The rate cap keeps this map small (cap × TTL entries); sweeping expired ones on the way in
    // keeps it small even when the clock jumps.
    if (this.#missing.size >= this.opts.lookupsPerSecond * Math.ceil(this.opts.negativeTtlMs / 1000) * 2) {
      for (const [h, until] of this.#missing) if (until <= now) this.#missing.delete(h);
    }
    this.#missing.set(hash, now + this.opts.negativeTtlMs);
  }

  /** Drops a hash from the negative cache (the key now exists). */
  forget(hash: string): void {
    this.#missing.delete(hash);
  }
}
