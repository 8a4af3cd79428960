// Builds every dependency of the service once, from the config, and tears them down in order.
// main.ts serves the result; tests build the same graph against their own database and Valkey.
import { buildApp } from "./app.ts";
import { ClickHouseKeyStore } from "./auth/key-store.ts";
import { valkeyRevocationFeed } from "./auth/revocation-feed.ts";
import { adminAuth, ingestAuth, rootMatcher } from "./auth/middleware.ts";
import { ingestCors } from "./auth/ingest-cors.ts";
import { registerKeyRoutes } from "./auth/key-routes.ts";
import { resolveRootToken, rootTokenWarnings } from "./auth/root-token.ts";
import type { Config } from "./config.ts";
import { withTimeout } from "./with-timeout.ts";
import { useEngineTimeZones } from "./http/validate.ts";
import { connectValkey } from "./ingest/valkey-client.ts";
import { registerIngestRoutes } from "./ingest/routes.ts";
import { createLogger, type Logger, throttledWarn } from "./logger.ts";
import { createMetrics, type Metrics } from "./ops/metrics.ts";
import { createReadiness } from "./ops/readiness.ts";
import type { OpenFile } from "./spool/segment-writer.ts";
import { createClickHouse } from "./storage/clickhouse.ts";
import { SLOW_REQUEST_MS } from "./storage/embedded/chdb-engine.ts";
import { ORPHANS_REMOVED, type OrphanReport } from "./storage/embedded/orphan-dedup-entries.ts";
import type { Touched } from "./storage/insert-rows.ts";
import { migrate } from "./storage/migrate.ts";
import { loadEngineTimeZones } from "./storage/time-zones.ts";
import { createIngestParts } from "./compose-ingest.ts";
import { createQueryParts } from "./compose-query.ts";
import { dropLeftoverSetTables, sharedSetsFor } from "./query/matching-sessions.ts";

import type { App, AppEnv } from "./http/app-env.ts";
import type { Context } from "hono";

export interface Service {
  app: App;
  logger: Logger;
  metrics: Metrics;
  /** Flushes the spool into ClickHouse now (tests, benchmarks). */
  flush(): Promise<void>;
  /** The process is stopping: /readyz answers 503 "shutting down" from now on (a load balancer stops sending). */
  beginShutdown(): void;
  /** Stops the parts in order: drain the spool, close it, stop refreshers, close Valkey and ClickHouse. */
  close(): Promise<void>;
}

export interface ComposeOptions {
  logger?: Logger;
  metrics?: Metrics;
  /** The peer address of a request's connection (runtime-specific). */
  socketIp?: (c: Context<AppEnv>) => string | undefined;
  /** Apply pending migrations at start (default: only with the embedded engine). */
  migrate?: boolean;
  /** Where the embedded engine keeps its data (default DATA_DIR); tests share one engine. */
  engineDataDir?: string;
  /** Opens spool segment files (default node's `open`); tests inject disk faults with it. */
  spoolOpenFile?: OpenFile;
  /**
   * The embedded engine has failed for good (a fatal signal in one of its threads: every request
   * is refused from then on; storage/embedded/chdb-engine.ts). main.ts stops the process so that
   * it can be started again; by default it is only logged.
   */
  onEngineFailure?: (message: string) => void;
}

/** Logged once when the embedded engine has failed for good (see ComposeOptions.onEngineFailure). */
export const ENGINE_FAILED = "embedded ClickHouse failed: it answers no request until the process restarts";
/** The exit code of a service process that stopped because its embedded engine failed (main.ts). */
export const ENGINE_FAILED_EXIT_CODE = 70;

/** Builds the service from `config`. */
export async function composeService(config: Config, opts: ComposeOptions = {}): Promise<Service> {
  const logger = opts.logger ?? createLogger(config.logLevel);
  const metrics = opts.metrics ?? createMetrics({ defaultMetrics: true });
  const ch = config.clickhouse;
  const embedded = ch.url === undefined;
  // Logged as the engine opens (a start killed right after must not lose the line).
  const onOrphanDedupEntries = (reports: OrphanReport[]) => {
    for (const { table, parts } of reports) logger.warn(ORPHANS_REMOVED, { table, parts });
  };
  const clickhouse = createClickHouse({
    url: ch.url, database: ch.database, user: ch.user, password: ch.password, dataDir: opts.engineDataDir ?? config.dataDir, embeddedLanes: ch.embeddedLanes, onOrphanDedupEntries,
  });
  clickhouse.engine?.onFailure((message) => {
    logger.error(ENGINE_FAILED, { error: message });
    opts.onEngineFailure?.(message);
  });
  // Embedded: a request queued or running in the engine for over 10 s is logged while it lasts.
  const stopSlowWatch = clickhouse.engine?.watchSlow(SLOW_REQUEST_MS, (slow) => logger.warn("slow engine request", { ...slow }));
  const adminClickHouse = createClickHouse({
    url: ch.url, database: "default", user: ch.user, password: ch.password, dataDir: opts.engineDataDir ?? config.dataDir, embeddedLanes: ch.embeddedLanes,
  });
  // Against a real server, migrations are an explicit step (npm run migrate); embedded, they run here.
  if (opts.migrate ?? embedded) {
    const applied = await migrate(adminClickHouse.client, { database: ch.database });
    if (applied.length > 0) logger.info("migrations applied", { files: applied.map((a) => a.file) });
  }
  // Reports' set tables (src/query/matching-sessions.ts) a process killed mid-report left behind:
  // dropped before any report can make new ones.
  const sharedSets = sharedSetsFor(ch);
  if (sharedSets) {
    try {
      const dropped = await dropLeftoverSetTables(clickhouse.client);
      if (dropped > 0) logger.info("dropped report tables left by a stopped process", { tables: dropped });
    } catch (err) {
      logger.warn("could not drop report tables left by a stopped process", { error: (err as Error).message });
    }
  }
  // In the background, retried until read: a start must not wait on a ClickHouse that is down (until read, Intl decides).
  const timeZones = loadEngineTimeZones(adminClickHouse.client, useEngineTimeZones, logger);

  const redis = config.valkey ? await connectValkey(config.valkey, logger) : undefined;

  const keyStoreWarn = throttledWarn(logger);
  const rootToken = resolveRootToken(config);
  if (rootToken.generatedAt) logger.info("root token generated", { file: rootToken.generatedAt });
  for (const warning of rootTokenWarnings(config, rootToken)) logger.warn(warning);
  if (rootToken.token.length < 24) logger.warn("ANALYTICS_ROOT_TOKEN is short; use 24 or more random characters");
  const keyStore = new ClickHouseKeyStore({
    client: clickhouse.client,
    // Unknown well-formed keys cost one indexed look-up each; past this rate they get 503.
    lookupsPerSecond: 200,
    // Once per 30 s for the same error: the refresh fails every 5 s while ClickHouse is down.
    onError: (err, during) => keyStoreWarn("key store error", { during, error: String(err) }),
    revocations: redis ? valkeyRevocationFeed(redis) : undefined,
  });
  await keyStore.start();

  const query = createQueryParts({ client: clickhouse.client, sharedSets, valkey: config.valkey, metrics, logger });
  const invalidate = (touched: Touched) => {
    for (const [service, dates] of touched) void query.cache.invalidate(service, [...dates]).catch(() => undefined);
  };

  const ingest = await createIngestParts({
    config,
    client: clickhouse.client,
    embedded,
    engineDataDir: opts.engineDataDir ?? config.dataDir,
    redis,
    onTouched: invalidate,
    spoolOpenFile: opts.spoolOpenFile,
    logger,
    metrics,
  });

  let shuttingDown = false;
  const readiness = createReadiness({
    clickhouse: clickhouse.client,
    admin: adminClickHouse.client,
    database: ch.database,
    writer: ingest.writer,
    spool: ingest.spool,
    ingestReady: ingest.ready,
    ingestError: ingest.lastError,
    redis,
    stopping: () => shuttingDown,
  });
  const app = buildApp({
    logger,
    metrics,
    readiness,
    routes: [
      (a) => registerKeyRoutes(a, { store: keyStore, rootToken: rootToken.token }),
      (a) => registerIngestRoutes(a, {
        store: keyStore,
        auth: ingestAuth(keyStore, { rootToken: rootToken.token }),
        cors: ingestCors(keyStore),
        ingest: ingest.ingest,
        trustProxy: config.trustProxy,
        isRootToken: rootMatcher(rootToken.token),
        socketIp: opts.socketIp ?? (() => undefined),
      }),
      (a) => query.register(a, adminAuth(keyStore, { rootToken: rootToken.token })),
    ],
  });

  return {
    app,
    logger,
    metrics,
    flush: ingest.flush,
    beginShutdown: () => {
      shuttingDown = true;
    },
    close: async () => {
      timeZones.stop();
      stopSlowWatch?.();
      const drained = await ingest.close();
      logger.info("spool closed", { drained });
      // Everything acknowledged is on disk now. The rest only lets go of connections: bounded, so a
      // hung ClickHouse (a key refresh or query waiting on it) cannot hold the exit.
      const released = await withTimeout(Promise.allSettled([keyStore.stop(), query.close()]).then(async () => {
        redis?.disconnect();
        await Promise.allSettled([clickhouse.close(), adminClickHouse.close()]);
        return true;
      }), 2_000);
      if (!released) logger.warn("connections not closed within 2 s (ClickHouse or Valkey not answering); exiting anyway");
      if (!opts.metrics) metrics.close(); // ours, not a caller's
    },
  };
}
