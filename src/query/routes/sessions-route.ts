// GET /v1/sessions: sessions that started in the range, newest first, keyset-paged.
import * as v from "valibot";
import { describe, jsonResponse } from "../../http/openapi.ts";
import type { App } from "../../http/app-env.ts";
import { commonEntries, cursorParam, intParam, queryValidator } from "../../http/validate.ts";
import { decodeCursor } from "../cursor.ts";
import { listSessions } from "../session-list.ts";
import { type CommonQuery, type QueryDeps, resolveCommon, serviceScope, validQuery } from "./query-deps.ts";

export const sessionsQuery = { ...commonEntries, limit: intParam(1, 1000, "page size, default 50"), cursor: cursorParam };

const SessionSchema = v.object({
  session_id: v.string(),
  visitor_id: v.string(),
  user_id: v.string(),
  started_at: v.pipe(v.string(), v.isoTimestamp()),
  ended_at: v.pipe(v.string(), v.isoTimestamp()),
  duration_s: v.number(),
  pageviews: v.pipe(v.number(), v.integer()),
  events: v.pipe(v.number(), v.integer()),
  is_bounce: v.boolean(),
  converted: v.boolean(),
  entry_path: v.string(),
  exit_path: v.string(),
  referrer: v.string(),
  utm_source: v.string(),
  utm_medium: v.string(),
  utm_campaign: v.string(),
  device: v.string(),
  browser: v.string(),
  os: v.string(),
  country: v.string(),
});
const SessionsResponse = v.object({ data: v.array(SessionSchema), next_cursor: v.nullable(v.string()) });

export function registerSessionsRoute(app: App, deps: QueryDeps): void {
  app.get(
    "/v1/sessions",
    describe({ summary: "Session list", tags: ["queries"], responses: { 200: jsonResponse(SessionsResponse, "Sessions, newest first") } }),
    deps.auth,
    queryValidator(sessionsQuery),
    serviceScope(),
    async (c) => {
      const q = validQuery<CommonQuery & { limit?: string; cursor?: string }>(c);
      const common = resolveCommon(q, (deps.now ?? Date.now)());
      const page = await listSessions(deps.clickhouse, { ...common, limit: Number(q.limit ?? 50), after: decodeCursor("sessions", q.cursor) });
      return c.json(page);
    },
  );
}
