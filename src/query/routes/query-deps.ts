// What the query routes share: their dependencies, the scope check, and turning the validated
// common parameters into a range and filters.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { Context, MiddlewareHandler } from "hono";
import { adminPrincipal, assertServiceAccess } from "../../auth/middleware.ts";
import type { Cache } from "../../cache/cache.ts";
import type { CacheResult } from "../../cache/cache-middleware.ts";
import type { AppEnv } from "../../http/app-env.ts";
import { canonicalTimeZone } from "../../http/validate.ts";
import { type Filters, pickFilters } from "../filters.ts";
import { resolveRange, type TimeRange } from "../time-range.ts";
import type { ReadOptions } from "../view-choice.ts";

/** Dependencies of registerQueryRoutes, built once by the composition root. */
export interface QueryDeps {
  clickhouse: ClickHouseClient;
  cache: Cache;
  /** Authenticates admin tokens and sets the principal: `adminAuth(store, { rootToken })`. */
  auth: MiddlewareHandler<AppEnv>;
  /** Clock (epoch ms); tests pin it. */
  now?: () => number;
  /** Read raw tables only, never the materialized views (benchmarks compare the two). */
  forceRaw?: boolean;
  /** Reports may build each set of the sessions their filters select once, as a table (only with the embedded engine). */
  sharedSets?: boolean;
  /** Cache metrics: one call per cached request. */
  onCacheResult?: (route: string, result: CacheResult) => void;
}

/** The validated common parameters (see commonEntries in src/http/validate.ts). */
export type CommonQuery = Filters & { service_id: string; from?: string; to?: string; tz?: string };

export interface ResolvedQuery {
  serviceId: string;
  range: TimeRange;
  filters: Filters;
}

/** The validated query of this request (set by queryValidator). */
export function validQuery<T>(c: Context<AppEnv>): T {
  return (c.req.valid as (target: "query") => T)("query");
}

/** Range, zone and filters from the common parameters, at time `now`. */
export function resolveCommon(q: CommonQuery, now: number): ResolvedQuery {
  const tz = canonicalTimeZone(q.tz ?? "UTC") ?? "UTC";
  return { serviceId: q.service_id, range: resolveRange({ from: q.from, to: q.to, tz }, now), filters: pickFilters(q) };
}

export function readOptions(deps: QueryDeps): ReadOptions {
  return { now: (deps.now ?? Date.now)(), forceRaw: deps.forceRaw, sharedSets: deps.sharedSets };
}

/** Middleware: 403 unless the caller may read the requested service (runs before the cache). */
export function serviceScope(): MiddlewareHandler<AppEnv> {
  return async function serviceScopeMiddleware(c, next) {
    assertServiceAccess(adminPrincipal(c), validQuery<CommonQuery>(c).service_id);
    await next();
  };
}

/** The caller's scope, as a cache key part: two tokens with different scopes never share. */
export function scopeOf(c: Context<AppEnv>): string[] {
  return [...adminPrincipal(c).services].sort();
}
