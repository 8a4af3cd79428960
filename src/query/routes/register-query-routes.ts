// Registers every query route (admin tokens) on the app; compose-query.ts builds what they need
// (the cache, the report functions) and calls this from the composition root's route list.
import type { App } from "../../http/app-env.ts";
import { registerBehaviorRoute } from "./behavior-route.ts";
import { registerEventsRoute } from "./events-route.ts";
import { registerFunnelRoute } from "./funnel-route.ts";
import type { QueryDeps } from "./query-deps.ts";
import { registerSessionStatsRoute } from "./session-stats-route.ts";
import { registerSessionsRoute } from "./sessions-route.ts";

export type { QueryDeps } from "./query-deps.ts";

export function registerQueryRoutes(app: App, deps: QueryDeps): void {
  // /v1/sessions/stats before /v1/sessions: distinct paths, but keep the specific one first.
  registerSessionStatsRoute(app, deps);
  registerSessionsRoute(app, deps);
  registerEventsRoute(app, deps);
  registerFunnelRoute(app, deps);
  registerBehaviorRoute(app, deps);
}
