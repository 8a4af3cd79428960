// Response shapes shared by several query routes (for the OpenAPI document).
import * as v from "valibot";

const count = v.pipe(v.number(), v.integer());
const ratio = v.nullable(v.pipe(v.number(), v.minValue(0), v.maxValue(1)));

/** Session totals (API.md "Sessions and metrics"); ratios are null when there is no session. */
export const TotalsSchema = v.object({
  sessions: count,
  visitors: count,
  pageviews: count,
  bounces: count,
  bounce_rate: ratio,
  avg_duration_s: v.nullable(v.number()),
  pages_per_session: v.nullable(v.number()),
  conversions: count,
});
