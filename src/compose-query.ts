// Wires the read side for compose.ts: the response cache and the query routes.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { MiddlewareHandler } from "hono";
import { createCache } from "./cache/create-cache.ts";
import type { Cache } from "./cache/cache.ts";
import type { Config } from "./config.ts";
import type { App, AppEnv } from "./http/app-env.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./ops/metrics.ts";
import { registerQueryRoutes } from "./query/routes/register-query-routes.ts";

export interface QueryParts {
  cache: Cache;
  register(app: App, auth: MiddlewareHandler<AppEnv>): void;
  close(): Promise<void>;
}

/** The query routes and their cache, built once. */
export function createQueryParts(deps: { client: ClickHouseClient; sharedSets: boolean; valkey: Config["valkey"]; metrics: Metrics; logger: Logger }): QueryParts {
  let warned = false;
  const cache = createCache(deps.valkey, {
    onError: (err) => {
      // A down cache means slower answers, not failed ones: say so once per outage.
      if (!warned) deps.logger.warn("cache unavailable, answering uncached", { error: err.message });
      warned = true;
    },
  });
  return {
    cache,
    register: (app, auth) =>
      registerQueryRoutes(app, {
        clickhouse: deps.client,
        cache,
        // A filtered report builds each set of the sessions its filters select once, as a table
        // (src/query/matching-sessions.ts): with the embedded engine only.
        sharedSets: deps.sharedSets,
        auth,
        onCacheResult: (route, result) => {
          if (result !== "error") warned = false;
          deps.metrics.cacheRequests.inc({ route, result });
        },
      }),
    close: () => cache.close(),
  };
}
