// Wires the read side for compose.ts: the response cache and the query routes.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { MiddlewareHandler } from "hono";
import { createCache } from "./cache/create-cache.ts";
import type { Cache } from "./cache/cache.ts";
import type { Config } from "./config.ts";
import type { App, AppEnv } from "./http/app-env.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./ops/metrics.ts";
import { dropStaleMatchingSessions } from "./query/matching-sessions.ts";
import { registerQueryRoutes } from "./query/routes/register-query-routes.ts";

export interface QueryParts {
  cache: Cache;
  register(app: App, auth: MiddlewareHandler<AppEnv>): void;
  close(): Promise<void>;
}

/** The query routes and their cache, built once. */
export function createQueryParts(deps: { client: ClickHouseClient; clickhouse: Config["clickhouse"]; valkey: Config["valkey"]; metrics: Metrics; logger: Logger }): QueryParts {
  // One ClickHouse (not a cluster): a filtered report builds each set of the sessions its filters
  // select once, as a table (src/query/matching-sessions.ts); tables a stopped process left are
  // dropped. The embedded engine's data belongs to this process alone, so every table left there
  // is stale; on a server one younger than 10 minutes may be another instance's report.
  const sharedSets = deps.clickhouse.cluster === undefined;
  if (sharedSets) {
    void dropStaleMatchingSessions(deps.client, deps.clickhouse.url === undefined ? 0 : 600).then(
      (dropped) => dropped > 0 && deps.logger.info("dropped report tables left by a stopped process", { tables: dropped }),
      (err: Error) => deps.logger.warn("could not drop report tables left by a stopped process", { error: err.message }),
    );
  }
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
        sharedSets,
        auth,
        onCacheResult: (route, result) => {
          if (result !== "error") warned = false;
          deps.metrics.cacheRequests.inc({ route, result });
        },
      }),
    close: () => cache.close(),
  };
}
