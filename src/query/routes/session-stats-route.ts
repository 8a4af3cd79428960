// GET /v1/sessions/stats: totals, the previous period, a zero-filled series, distributions and
// campaigns. Cached 5 minutes.
import * as v from "valibot";
import { cacheResponse } from "../../cache/cache-middleware.ts";
import { CACHE_HEADERS, describe, jsonResponse } from "../../http/openapi.ts";
import type { App } from "../../http/app-env.ts";
import { commonEntries, queryValidator } from "../../http/validate.ts";
import { sessionStatsReport } from "../reports.ts";
import { INTERVALS, type Interval, previousRange, rangeLabel, utcDatesOf } from "../time-range.ts";
import { type CommonQuery, type QueryDeps, readOptions, resolveCommon, scopeOf, serviceScope, validQuery } from "./query-deps.ts";
import { TotalsSchema } from "./schemas.ts";

export const statsQuery = {
  ...commonEntries,
  interval: v.optional(v.pipe(v.picklist(INTERVALS, "expected hour, day, week or month"), v.description("series bucket, default day"))),
};

const count = v.pipe(v.number(), v.integer());
const Distribution = v.array(v.object({ value: v.string(), sessions: count, bounces: count }));
const StatsResponse = v.object({
  totals: TotalsSchema,
  previous: TotalsSchema,
  series: v.array(v.object({ t: v.pipe(v.string(), v.isoTimestamp()), sessions: count, visitors: count, pageviews: count, bounces: count })),
  distributions: v.object({ device: Distribution, browser: Distribution, os: Distribution, country: Distribution }),
  utm: v.array(v.object({ utm_source: v.string(), utm_medium: v.string(), utm_campaign: v.string(), sessions: count, conversions: count })),
});

type StatsQuery = CommonQuery & { interval?: Interval };

export function registerSessionStatsRoute(app: App, deps: QueryDeps): void {
  const now = deps.now ?? Date.now;
  app.get(
    "/v1/sessions/stats",
    describe({ summary: "Session stats", tags: ["queries"], responses: { 200: jsonResponse(StatsResponse, "Session metrics over the range", CACHE_HEADERS) } }),
    deps.auth,
    queryValidator(statsQuery),
    serviceScope(),
    cacheResponse({
      cache: deps.cache,
      ttlSeconds: 300,
      route: "/v1/sessions/stats",
      onResult: deps.onCacheResult,
      now,
      describe: (c) => {
        const q = validQuery<StatsQuery>(c);
        const { serviceId, range } = resolveCommon(q, now());
        return {
          serviceId,
          utcDates: utcDatesOf(range, previousRange(range)),
          identity: { kind: "stats", id: serviceId, label: rangeLabel(range), params: { q, start: range.start, end: range.end, scope: scopeOf(c) } },
        };
      },
    }),
    async (c) => {
      const q = validQuery<StatsQuery>(c);
      return c.json(await sessionStatsReport(deps.clickhouse, resolveCommon(q, now()), q.interval ?? "day", readOptions(deps)));
    },
  );
}
