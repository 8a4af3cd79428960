// Builds every dependency of the service once, from the config, and tears them down in order.
// main.ts serves the result; tests build the same graph against their own database and Valkey.
import Redis from "ioredis";
import { join } from "node:path";
import { buildApp } from "./app.ts";
import { ClickHouseKeyStore } from "./auth/key-store.ts";
import { valkeyRevocationFeed } from "./auth/revocation-feed.ts";
import { adminAuth, ingestAuth, rootMatcher } from "./auth/middleware.ts";
import { ingestCors } from "./auth/ingest-cors.ts";
import { registerKeyRoutes } from "./auth/key-routes.ts";
import { resolveRootToken, rootTokenWarnings } from "./auth/root-token.ts";
import type { Config } from "./config.ts";
import { ApiError, firstLine } from "./errors.ts";
import { withTimeout } from "./with-timeout.ts";
import { useEngineTimeZones } from "./http/validate.ts";
import { memoryDedup, valkeyDedup } from "./ingest/dedup.ts";
import { createCountryLookup } from "./ingest/enrich/country.ts";
import { createValkeySaltStore } from "./ingest/enrich/salt-store.ts";
import { createFileSaltStore, saltFile } from "./ingest/enrich/file-salt-store.ts";
import { countRefused, ingestItems, type IngestorDeps } from "./ingest/ingestor.ts";
import { visitorHasher } from "./ingest/pipeline.ts";
import { ingestValkeyClient } from "./ingest/valkey-client.ts";
import { memoize } from "./memo.ts";
import { registerIngestRoutes } from "./ingest/routes.ts";
import { Sessionizer } from "./ingest/sessions/sessionizer.ts";
import { instanceId, recoverJournal, storedStates } from "./ingest/sessions/journal-recovery.ts";
import { memoryStateStore, valkeyStateStore } from "./ingest/sessions/state-store.ts";
import { storedClaims, storedEventIds } from "./ingest/stored-ids.ts";
import { openWhenWarm, rememberSpooled, warmUp } from "./ingest/warm-up.ts";
import { directWriter, spoolSink, spoolWriter } from "./ingest/writers.ts";
import { createLogger, type Logger, throttledWarn } from "./logger.ts";
import { createMetrics, type Metrics } from "./ops/metrics.ts";
import { createReadiness } from "./ops/readiness.ts";
import { createBatcher } from "./spool/batcher.ts";
import { openSpool } from "./spool/spool.ts";
import { fileSystemBarrier } from "./storage/embedded/sync-fs.ts";
import type { OpenFile } from "./spool/segment-writer.ts";
import { createClickHouse, embeddedEngineDir } from "./storage/clickhouse.ts";
import { SLOW_REQUEST_MS } from "./storage/embedded/chdb-engine.ts";
import { ORPHANS_REMOVED, type OrphanReport } from "./storage/embedded/orphan-dedup-entries.ts";
import type { Touched } from "./storage/insert-rows.ts";
import { migrate } from "./storage/migrate.ts";
import { loadEngineTimeZones } from "./storage/time-zones.ts";
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

  const redis = config.valkey ? ingestValkeyClient(config.valkey) : undefined;
  // Once per 30 s for the same error: ioredis reports each failed reconnect (every 500 ms).
  const valkeyWarn = throttledWarn(logger);
  // Back after errors: said once, with the errors held back since the last line (a next outage's
  // first line then counts only its own).
  let valkeyFailed = false;
  redis?.on("error", (err) => {
    valkeyFailed = true;
    valkeyWarn("valkey error", { error: err.message });
  });
  redis?.on("ready", () => {
    if (!valkeyFailed) return;
    valkeyFailed = false;
    logger.info("valkey connected again", { errors_not_logged: valkeyWarn.reset() });
  });
  // Commands fail ("Stream isn't writeable") until the connection is up, and the key store reads
  // the revocation feed at once: a moment for it to connect. One that is down is logged by the
  // client above, and the service starts all the same (ingest answers 503 until it is back).
  if (redis) await readyWithin(redis, VALKEY_CONNECT_WAIT_MS);

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

  // SPOOL_MAX_BYTES: ingest refuses (503) when an estimate of a request's rows does not fit, before
  // any state changes; the spool refuses an append that does not fit, after the session state was
  // computed: the ingestor then takes the state back (Sessionizer.undo) and answers 503 too.
  const spool = await openSpool({ dir: join(config.dataDir, "spool"), capBytes: config.spool.maxBytes, fsync: config.spool.fsync, logger, openFile: opts.spoolOpenFile });
  let corruptSeen = 0;
  metrics.collectors.push(() => {
    metrics.spoolBytes.set(spool.bytes());
    metrics.spoolSegments.set(spool.segments());
    metrics.spoolCorruptTails.inc(spool.corruptTails - corruptSeen);
    corruptSeen = spool.corruptTails;
  });
  // With Valkey, session-state commits and event-id claims are journaled per instance until their
  // rows are written; a restart takes back or releases what a crash left (journal-recovery.ts).
  const instance = redis ? instanceId(config.dataDir) : undefined;
  const sharedState = redis ? valkeyStateStore(redis, undefined, { journal: `analytics:journal:${instance}` }) : undefined;
  let stateEvicted = 0;
  const localState = sharedState ? undefined : memoryStateStore({ onEvicted: () => stateEvicted++ });
  const stateStore = sharedState ?? localState!;
  const sharedDedup = redis ? valkeyDedup(redis, { owner: { id: instance!, journal: `analytics:claims:${instance}` } }) : undefined;
  const localDedup = sharedDedup ? undefined : memoryDedup();
  const dedup = sharedDedup ?? localDedup!;
  metrics.collectors.push(() => {
    metrics.stateEntries.set(localState?.size() ?? 0);
    metrics.stateEvicted.inc(stateEvicted);
    stateEvicted = 0;
    metrics.dedupIds.set(localDedup?.size() ?? 0);
  });
  if (redis && config.ackMode === "spool") {
    // Ids in what the previous process left in the spool are stored (or will be): their claims
    // may still be pending in Valkey, so confirm them before the first request (see dedup.ts).
    // No offline queue: wait (bounded) for the connection first.
    await readyWithin(redis, 5_000);
    const remembered = await rememberSpooled(spool, dedup).catch((err) => {
      logger.warn("could not confirm the event ids of the spool left by the previous process", { error: String(err) });
      return 0;
    });
    if (remembered > 0) logger.info("event ids of the leftover spool confirmed", { ids: remembered });
  }
  // The embedded engine died with the previous process: the oldest segment it left may have been in
  // the middle of its INSERT (writers.ts, LeftoverRepair). A server's engine was not killed with us.
  const oldestLeftover = spool.sealedSegments()[0];
  const leftoverRepair = embedded && oldestLeftover ? { segmentSeq: oldestLeftover.seq, database: ch.database } : undefined;
  // The embedded engine writes its parts without fsync: with SPOOL_FSYNC on (the default), a
  // segment goes only after a syncfs of the engine's file system (storage/embedded/sync-fs.ts).
  const durable = embedded && config.ackMode === "spool" && config.spool.fsync
    ? await fileSystemBarrier(embeddedEngineDir(opts.engineDataDir ?? config.dataDir), (m, f) => logger.warn(m, f))
    : undefined;
  const batcher = config.ackMode === "spool"
    ? createBatcher({
        spool,
        sink: spoolSink({ client: clickhouse.client, metrics, onTouched: invalidate, quarantineDir: join(config.dataDir, "spool", "quarantine"), logger, repair: leftoverRepair, durable }),
        flushIntervalMs: config.flushIntervalMs,
        // Shutdown drains for as long as SHUTDOWN_TIMEOUT_MS allows (the batcher's own default is 5 s).
        drainTimeoutMs: config.shutdownTimeoutMs,
        logger,
      })
    : undefined;
  const writer = config.ackMode === "spool" ? spoolWriter(spool, config.spool.maxBytes) : directWriter(clickhouse.client, ch.waitForAsyncInsert, invalidate);

  // The database is read once; repeat visitors' addresses are remembered.
  const lookupCountry = memoize(createCountryLookup({ onLoadError: (err) => logger.warn("country database not loaded", { error: String(err) }) }), 100_000);
  lookupCountry("8.8.8.8"); // load the ~8 MB database now, not on the first request
  const saltsPath = join(config.dataDir, "salts.json");
  const valkeySalts = redis ? createValkeySaltStore(redis, { backup: saltFile(saltsPath) }) : undefined;
  const saltStore = valkeySalts ?? createFileSaltStore(saltsPath);
  // Rebuilds session states and recent event ids from what ClickHouse holds, once the spool is in
  // ClickHouse too: in-process state died with the previous process; Valkey's only when Valkey
  // lost its data. Until then ingest answers 503 (openWhenWarm says why and when it retries).
  const warmWarn = throttledWarn(logger); // a failed rebuild is retried every 5 s
  let warmError = ""; // why the last rebuild failed, for /readyz (a full disk is not "not answering")
  const warmth = await openWhenWarm({
    redis,
    warm: async () => {
      await valkeySalts?.republish().catch((err) => logger.warn("could not put the day's salts back into Valkey", { error: String(err) }));
      await batcher?.flush();
      logger.info("state warmed up", await warmUp(clickhouse.client, stateStore, dedup));
    },
    onError: (err) => {
      // An HTTP error without a body (a bare 431 from a proxy or server) has an empty message.
      const message = String((err as Error)?.message ?? err);
      const error = message !== "" ? message : `${(err as Error)?.name ?? "error"} without a message (an HTTP error with an empty body?)`;
      warmError = firstLine(error);
      warmWarn("ingest state not rebuilt yet (ClickHouse or Valkey failed, see error); ingest answers 503 until it is", { error });
    },
    onRebuilt: () => logger.warn("valkey held no ingest state (first start, or its data was lost): rebuilt from ClickHouse"),
    onReady: () => {
      warmError = "";
      warmWarn.reset(); // the next outage's first failure is said at once
    },
    // What the previous process left in the spool goes into ClickHouse first: the check reads it there.
    recover: sharedState && sharedDedup && (async () => {
      // ClickHouse must hold what the previous process left in the spool before it is asked.
      let flushed: Promise<void> | undefined;
      const inClickHouse = async () => void (await (flushed ??= batcher?.flush() ?? Promise.resolve()));
      const r = await recoverJournal(sharedState, async (refs) => (await inClickHouse(), storedStates(clickhouse.client, refs)));
      if (r.rolledBack > 0) logger.warn("session states whose rows a crash kept from being written were taken back", { ...r });
      const c = await sharedDedup.recoverClaims(async (claims) => (await inClickHouse(), storedClaims(clickhouse.client, claims)));
      if (c.pending > 0) logger.info("event-id claims the previous process left pending: confirmed where stored, released otherwise", c);
    }),
  });
  const notWarm = () =>
    new ApiError(
      "unavailable",
      redis && redis.status !== "ready"
        ? `Valkey, which holds the ingest state, is not reachable (${redis.status}); retry later`
        : "Ingest state is being checked or rebuilt from ClickHouse; retry later",
      { retryAfterSeconds: 5 },
    );
  const ingestDeps: IngestorDeps = {
    sessionizer: new Sessionizer(stateStore),
    dedup,
    storedEventIds: storedEventIds(clickhouse.client),
    writer,
    metrics,
    hashVisitor: visitorHasher(saltStore),
    lookupCountry,
  };

  let shuttingDown = false;
  const readiness = createReadiness({
    clickhouse: clickhouse.client,
    admin: adminClickHouse.client,
    database: ch.database,
    writer,
    spool,
    ingestReady: () => warmth.ready(),
    ingestError: () => warmError,
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
        ingest: (ctx, raws, type) => (warmth.ready() ? ingestItems(ingestDeps, ctx, raws, type) : (countRefused(metrics, raws, type), Promise.reject(notWarm()))),
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
    flush: async () => {
      await batcher?.flush();
    },
    beginShutdown: () => {
      shuttingDown = true;
    },
    close: async () => {
      warmth.stop();
      timeZones.stop();
      stopSlowWatch?.();
      const drained = batcher ? await batcher.close() : true;
      await spool.close();
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

/** How long a start waits for Valkey's connection before going on without it. */
const VALKEY_CONNECT_WAIT_MS = 1000;

/** Resolves once `redis` is ready, or after `ms` (whichever comes first). */
function readyWithin(redis: Redis, ms: number): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      redis.off("ready", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    redis.once("ready", done);
  });
}
