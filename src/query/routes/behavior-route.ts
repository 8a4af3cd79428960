// GET /v1/behavior/summary: totals, page and acquisition lists, events, Web Vitals and errors for
// one day (`date`) or a range. Cached 5 minutes.
import * as v from "valibot";
import { cacheResponse } from "../../cache/cache-middleware.ts";
import { ApiError } from "../../errors.ts";
import { CACHE_HEADERS, describe, jsonResponse } from "../../http/openapi.ts";
import type { App } from "../../http/app-env.ts";
import { commonEntries, DOC_DATE, intParam, isDateValue, queryValidator } from "../../http/validate.ts";
import { behaviorSummary } from "../reports.ts";
import { rangeLabel, utcDatesOf } from "../time-range.ts";
import { type CommonQuery, type QueryDeps, readOptions, resolveCommon, scopeOf, serviceScope, validQuery } from "./query-deps.ts";
import { TotalsSchema } from "./schemas.ts";

export const behaviorQuery = {
  ...commonEntries,
  date: v.optional(v.pipe(v.string(), v.isoDate("expected a date YYYY-MM-DD"), v.check(isDateValue, "expected a date YYYY-MM-DD that exists on the calendar"), v.metadata({ pattern: DOC_DATE }), v.description("one local day (1970–2199); instead of from/to"))),
  limit: intParam(1, 100, "rows per list, default 10"),
};

const count = v.pipe(v.number(), v.integer());
const Vital = v.object({ p75: v.nullable(v.number()), samples: count, good: count, needs_improvement: count, poor: count });
const BehaviorResponse = v.object({
  sessions: TotalsSchema,
  top_pages: v.array(v.object({ path: v.string(), views: count, visitors: count })),
  entry_pages: v.array(v.object({ path: v.string(), sessions: count })),
  exit_pages: v.array(v.object({ path: v.string(), sessions: count })),
  top_events: v.array(v.object({ name: v.string(), count, visitors: count })),
  top_referrers: v.array(v.object({ referrer_domain: v.string(), sessions: count })),
  web_vitals: v.object({ lcp: Vital, inp: Vital, cls: Vital, fcp: Vital, ttfb: Vital }),
  top_errors: v.array(v.object({ fingerprint: v.string(), message: v.string(), count, sessions: count, last_seen: v.pipe(v.string(), v.isoTimestamp()) })),
});

type BehaviorQuery = CommonQuery & { date?: string; limit?: string };

/** `date` stands for from = to = date; giving both is ambiguous. */
function withDate(q: BehaviorQuery): BehaviorQuery {
  if (q.date === undefined) return q;
  if (q.from !== undefined || q.to !== undefined) {
    const message = "give either date or from/to";
    throw new ApiError("invalid_query", `date: ${message}`, { issues: [{ path: "date", message }] });
  }
  return { ...q, from: q.date, to: q.date };
}

export function registerBehaviorRoute(app: App, deps: QueryDeps): void {
  const now = deps.now ?? Date.now;
  app.get(
    "/v1/behavior/summary",
    describe({ summary: "Behavior summary", tags: ["queries"], responses: { 200: jsonResponse(BehaviorResponse, "What visitors did", CACHE_HEADERS) } }),
    deps.auth,
    queryValidator(behaviorQuery),
    serviceScope(),
    cacheResponse({
      cache: deps.cache,
      ttlSeconds: 300,
      route: "/v1/behavior/summary",
      onResult: deps.onCacheResult,
      now,
      describe: (c) => {
        const q = withDate(validQuery<BehaviorQuery>(c));
        const { serviceId, range } = resolveCommon(q, now());
        return {
          serviceId,
          utcDates: utcDatesOf(range),
          identity: { kind: "behavior", id: serviceId, label: rangeLabel(range), params: { q, start: range.start, end: range.end, scope: scopeOf(c) } },
        };
      },
    }),
    async (c) => {
      const q = withDate(validQuery<BehaviorQuery>(c));
      const summary = await behaviorSummary(deps.clickhouse, { ...resolveCommon(q, now()), limit: Number(q.limit ?? 10) }, readOptions(deps));
      return c.json(summary);
    },
  );
}
