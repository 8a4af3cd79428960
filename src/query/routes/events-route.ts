// GET /v1/events: custom events in the range, newest first, keyset-paged.
import * as v from "valibot";
import { maxChars } from "../../chars.ts";
import { describe, jsonResponse } from "../../http/openapi.ts";
import type { App } from "../../http/app-env.ts";
import { commonEntries, cursorParam, intParam, queryValidator } from "../../http/validate.ts";
import { decodeCursor } from "../cursor.ts";
import { listEvents } from "../event-list.ts";
import { type CommonQuery, type QueryDeps, resolveCommon, serviceScope, validQuery } from "./query-deps.ts";

const text = (max: number, what: string) => v.optional(v.pipe(maxChars(max, `at most ${max} characters`), v.description(what)));

export const eventsQuery = {
  ...commonEntries,
  name: text(120, "only events with this name"),
  session_id: text(64, "only events of this session"),
  user_id: text(128, "only events of this user"),
  limit: intParam(1, 1000, "page size, default 50"),
  cursor: cursorParam,
};

const EventSchema = v.object({
  event_id: v.string(),
  name: v.string(),
  timestamp: v.pipe(v.string(), v.isoTimestamp()),
  session_id: v.string(),
  visitor_id: v.string(),
  user_id: v.string(),
  url: v.string(),
  path: v.string(),
  properties: v.record(v.string(), v.union([v.string(), v.number(), v.boolean(), v.null()])),
});
const EventsResponse = v.object({ data: v.array(EventSchema), next_cursor: v.nullable(v.string()) });

type EventsQuery = CommonQuery & { name?: string; session_id?: string; user_id?: string; limit?: string; cursor?: string };

export function registerEventsRoute(app: App, deps: QueryDeps): void {
  app.get(
    "/v1/events",
    describe({ summary: "Event list", tags: ["queries"], responses: { 200: jsonResponse(EventsResponse, "Custom events, newest first") } }),
    deps.auth,
    queryValidator(eventsQuery),
    serviceScope(),
    async (c) => {
      const q = validQuery<EventsQuery>(c);
      const common = resolveCommon(q, (deps.now ?? Date.now)());
      const page = await listEvents(deps.clickhouse, {
        ...common,
        name: q.name,
        sessionId: q.session_id,
        userId: q.user_id,
        limit: Number(q.limit ?? 50),
        after: decodeCursor("events", q.cursor),
      });
      return c.json(page);
    },
  );
}
