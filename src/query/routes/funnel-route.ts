// GET /v1/funnels/:name: windowFunnel conversion per step, cached 15 minutes.
import * as v from "valibot";
import { maxChars } from "../../chars.ts";
import { cacheResponse } from "../../cache/cache-middleware.ts";
import { CACHE_HEADERS, describe, jsonResponse } from "../../http/openapi.ts";
import type { App } from "../../http/app-env.ts";
import { commonEntries, intParam, paramValidator, queryValidator } from "../../http/validate.ts";
import { funnelReport } from "../funnel.ts";
import { rangeLabel, utcDatesOf } from "../time-range.ts";
import { type CommonQuery, type QueryDeps, readOptions, resolveCommon, scopeOf, serviceScope, validQuery } from "./query-deps.ts";

const MAX_WINDOW_S = 90 * 86_400;

export const funnelQuery = {
  ...commonEntries,
  window: intParam(1, MAX_WINDOW_S, "seconds from step 1 within which every later step must happen, default 86400"),
  by: v.optional(v.pipe(v.picklist(["session", "visitor"], "expected session or visitor"), v.description("the unit that converts, default session"))),
};
export const funnelParams = { name: v.pipe(maxChars(64, "1-64 characters"), v.minLength(1, "1-64 characters"), v.description("funnel name")) };

const ratio = v.nullable(v.pipe(v.number(), v.minValue(0), v.maxValue(1)));
const FunnelResponse = v.object({
  funnel: v.string(),
  steps: v.array(
    v.object({
      step: v.pipe(v.number(), v.integer()),
      name: v.string(),
      units: v.pipe(v.number(), v.integer()),
      conversion_from_previous: ratio,
      conversion_from_start: ratio,
      median_seconds_from_previous: v.nullable(v.number()),
    }),
  ),
  overall_conversion: ratio,
});

type FunnelQuery = CommonQuery & { window?: string; by?: "session" | "visitor" };

export function registerFunnelRoute(app: App, deps: QueryDeps): void {
  const now = deps.now ?? Date.now;
  const funnelName = (c: { req: { valid: unknown } }) => (c.req.valid as (t: "param") => { name: string })("param").name;
  app.get(
    "/v1/funnels/:name",
    describe({ summary: "Funnel analysis", tags: ["queries"], responses: { 200: jsonResponse(FunnelResponse, "Units reaching each step", CACHE_HEADERS) } }),
    deps.auth,
    paramValidator(funnelParams),
    queryValidator(funnelQuery),
    serviceScope(),
    cacheResponse({
      cache: deps.cache,
      ttlSeconds: 900,
      route: "/v1/funnels/:name",
      onResult: deps.onCacheResult,
      now,
      describe: (c) => {
        const q = validQuery<FunnelQuery>(c);
        const name = funnelName(c);
        const { serviceId, range } = resolveCommon(q, now());
        return {
          serviceId,
          utcDates: utcDatesOf(range),
          // The seed's {funnelId}: service and name (encoded: a name may hold ':').
          identity: { kind: "funnel", id: `${serviceId}:${encodeURIComponent(name)}`, label: rangeLabel(range), params: { q, name, start: range.start, end: range.end, scope: scopeOf(c) } },
        };
      },
    }),
    async (c) => {
      const q = validQuery<FunnelQuery>(c);
      const common = resolveCommon(q, now());
      const report = await funnelReport(deps.clickhouse, {
        ...common,
        funnel: funnelName(c),
        windowSeconds: Number(q.window ?? 86_400),
        by: q.by ?? "session",
      }, readOptions(deps));
      return c.json(report);
    },
  );
}
