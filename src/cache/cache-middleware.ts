// Route middleware that serves a read route's 200 answers from the Cache. Place it after auth,
// validation and the scope check, so a cached answer is never served to a caller who may not read
// it. It sets `X-Cache: HIT|MISS` and `Age`; concurrent misses for one key run the route once
// (single flight); a cache that fails or times out counts as a miss and never fails the request.
import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../http/app-env.ts";
import { type Cache, type CacheIdentity, cacheKey } from "./cache.ts";
import { SingleFlight } from "./single-flight.ts";

export type CacheResult = "hit" | "miss" | "error";

/** What a request's answer depends on, read from the validated request. */
export interface CacheRequest {
  serviceId: string;
  /** The UTC dates the answer reads: their version counters are folded into the key. */
  utcDates: readonly string[];
  identity: Omit<CacheIdentity, "versions">;
}

export interface CacheRouteOptions {
  cache: Cache;
  ttlSeconds: number;
  /** Route name for metrics. */
  route: string;
  describe: (c: Context<AppEnv>) => CacheRequest;
  /** Metrics hook: one call per request. */
  onResult?: (route: string, result: CacheResult) => void;
  now?: () => number;
}

/** Answers longer than this (characters of JSON) are computed every time, never cached. */
export const MAX_CACHED_BODY = 256 * 1024;

type Outcome = { kind: "hit"; body: string; storedAt: number } | { kind: "computed"; status: number; body: string; contentType: string; cacheFailed: boolean };

/** Builds the caching middleware for one route. */
export function cacheResponse(opts: CacheRouteOptions): MiddlewareHandler<AppEnv> {
  if (!(opts.ttlSeconds > 0)) throw new Error("cacheResponse: ttlSeconds must be positive");
  const now = opts.now ?? Date.now;
  const flights = new SingleFlight<Outcome>();
  return async function cacheMiddleware(c, next) {
    const request = opts.describe(c);
    let versions: number[] | undefined;
    try {
      versions = await opts.cache.versions(request.serviceId, request.utcDates);
    } catch {
      versions = undefined;
    }
    // Without versions the answer cannot be keyed safely: compute it, still sharing concurrent runs.
    const key = cacheKey({ ...request.identity, versions: versions ?? [-1] });
    const cacheUp = versions !== undefined;
    const flight = flights.run(key, async () => {
      let cacheFailed = !cacheUp;
      if (cacheUp) {
        try {
          const hit = await opts.cache.get(key);
          if (hit) return { kind: "hit", body: hit.body, storedAt: hit.storedAt };
        } catch {
          cacheFailed = true;
        }
      }
      await next();
      const res = c.res;
      const body = await res.clone().text();
      const outcome: Outcome = { kind: "computed", status: res.status, body, contentType: res.headers.get("content-type") ?? "application/json", cacheFailed };
      // A very large answer (a year of hourly points) is not kept: a few of them would take the
      // cache's memory (or Valkey's) from everything else.
      if (res.status === 200 && !cacheFailed && body.length <= MAX_CACHED_BODY) {
        try {
          await opts.cache.set(key, { body, storedAt: now() }, opts.ttlSeconds);
        } catch {
          outcome.cacheFailed = true;
        }
      }
      return outcome;
    });
    const outcome = await flight.promise;
    if (outcome.kind === "hit") {
      opts.onResult?.(opts.route, "hit");
      const age = Math.max(0, Math.floor((now() - outcome.storedAt) / 1000));
      return c.body(outcome.body, 200, { "Content-Type": "application/json", "X-Cache": "HIT", Age: String(age) });
    }
    opts.onResult?.(opts.route, outcome.cacheFailed ? "error" : "miss");
    if (flight.leader) {
      c.res.headers.set("X-Cache", "MISS");
      c.res.headers.set("Age", "0");
      return;
    }
    // An error answer carries the leader's request id: a follower computes its own instead.
    if (outcome.status !== 200) {
      await next();
      c.res.headers.set("X-Cache", "MISS");
      return;
    }
    return c.body(outcome.body, 200, { "Content-Type": outcome.contentType, "X-Cache": "MISS", Age: "0" });
  };
}
