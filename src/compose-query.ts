// Wires the read side (query routes and their cache) for compose.ts.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type { MiddlewareHandler } from "hono";
import type Redis from "ioredis";
import type { KeyStore } from "./auth/key-store.ts";
import type { App, AppEnv } from "./http/app-env.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./ops/metrics.ts";

export interface QueryParts {
  cache: { invalidate(serviceId: string, utcDates: string[]): Promise<void> };
  register(app: App, auth: MiddlewareHandler<AppEnv>): void;
  close(): Promise<void>;
}

/** The query routes and the cache, built once. */
export function createQueryParts(_deps: { client: ClickHouseClient; redis: Redis | undefined; keyStore: KeyStore; rootToken: string; metrics: Metrics; logger: Logger }): QueryParts {
  return {
    cache: { invalidate: async () => {} },
    register: () => {},
    close: async () => {},
  };
}
