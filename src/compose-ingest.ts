// Wires the write side for compose.ts: the spool and its flush into ClickHouse, the session and
// dedup state (in process, or in Valkey), enrichment, and the warm-up that rebuilds that state
// after a restart. Ingest answers 503 until the warm-up is done.
import type { ClickHouseClient } from "@clickhouse/client-web";
import type Redis from "ioredis";
import { join } from "node:path";
import type { Config } from "./config.ts";
import { ApiError, firstLine } from "./errors.ts";
import { memoryDedup, valkeyDedup } from "./ingest/dedup.ts";
import { createCountryLookup } from "./ingest/enrich/country.ts";
import { createValkeySaltStore } from "./ingest/enrich/salt-store.ts";
import { createFileSaltStore, saltFile } from "./ingest/enrich/file-salt-store.ts";
import { countRefused, ingestItems, type IngestorDeps, type RowWriter } from "./ingest/ingestor.ts";
import type { IngestRouteDeps } from "./ingest/routes.ts";
import { visitorHasher } from "./ingest/pipeline.ts";
import { readyWithin } from "./ingest/valkey-client.ts";
import { memoize } from "./memo.ts";
import { Sessionizer } from "./ingest/sessions/sessionizer.ts";
import { instanceId, recoverJournal, storedStates } from "./ingest/sessions/journal-recovery.ts";
import { memoryStateStore, valkeyStateStore } from "./ingest/sessions/state-store.ts";
import { storedClaims, storedEventIds } from "./ingest/stored-ids.ts";
import { openWhenWarm, rememberSpooled, warmUp } from "./ingest/warm-up.ts";
import { directWriter, spoolSink, spoolWriter } from "./ingest/writers.ts";
import { type Logger, throttledWarn } from "./logger.ts";
import type { Metrics } from "./ops/metrics.ts";
import { createBatcher } from "./spool/batcher.ts";
import { openSpool, type Spool } from "./spool/spool.ts";
import type { OpenFile } from "./spool/segment-writer.ts";
import { embeddedEngineDir } from "./storage/clickhouse.ts";
import { fileSystemBarrier } from "./storage/embedded/sync-fs.ts";
import type { Touched } from "./storage/insert-rows.ts";

export interface IngestParts {
  /** What the ingest routes call: 503 (`unavailable`) until the ingest state is rebuilt. */
  ingest: IngestRouteDeps["ingest"];
  writer: RowWriter;
  spool: Spool;
  /** Whether the ingest state is rebuilt, and why the last attempt failed ("" if it did not). */
  ready(): boolean;
  lastError(): string;
  /** Flushes the spool into ClickHouse now. */
  flush(): Promise<void>;
  /** Stops the warm-up's retries, drains the spool into ClickHouse (bounded) and closes it; true when all of it went. */
  close(): Promise<boolean>;
}

export interface IngestPartsDeps {
  config: Config;
  /** The service's ClickHouse, and whether it is the embedded engine (whose data lives in `engineDataDir`). */
  client: ClickHouseClient;
  embedded: boolean;
  engineDataDir: string;
  redis: Redis | undefined;
  /** Told which days of which services a flush (or a direct insert) changed: their cached answers go. */
  onTouched: (touched: Touched) => void;
  spoolOpenFile?: OpenFile;
  logger: Logger;
  metrics: Metrics;
}

/** The ingest side, built once: call after migrations, with Valkey connected (or given up on). */
export async function createIngestParts(d: IngestPartsDeps): Promise<IngestParts> {
  const { config, client, redis, logger, metrics } = d;

  // SPOOL_MAX_BYTES: ingest refuses (503) when an estimate of a request's rows does not fit, before
  // any state changes; the spool refuses an append that does not fit, after the session state was
  // computed: the ingestor then takes the state back (Sessionizer.undo) and answers 503 too.
  const spool = await openSpool({ dir: join(config.dataDir, "spool"), capBytes: config.spool.maxBytes, fsync: config.spool.fsync, logger, openFile: d.spoolOpenFile });
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
  const leftoverRepair = d.embedded && oldestLeftover ? { segmentSeq: oldestLeftover.seq, database: config.clickhouse.database } : undefined;
  // The embedded engine writes its parts without fsync: with SPOOL_FSYNC on (the default), a
  // segment goes only after a syncfs of the engine's file system (storage/embedded/sync-fs.ts).
  const durable = d.embedded && config.ackMode === "spool" && config.spool.fsync
    ? await fileSystemBarrier(embeddedEngineDir(d.engineDataDir), (m, f) => logger.warn(m, f))
    : undefined;
  const batcher = config.ackMode === "spool"
    ? createBatcher({
        spool,
        sink: spoolSink({ client, metrics, onTouched: d.onTouched, quarantineDir: join(config.dataDir, "spool", "quarantine"), logger, repair: leftoverRepair, durable }),
        flushIntervalMs: config.flushIntervalMs,
        // Shutdown drains for as long as SHUTDOWN_TIMEOUT_MS allows (the batcher's own default is 5 s).
        drainTimeoutMs: config.shutdownTimeoutMs,
        logger,
      })
    : undefined;
  const writer = config.ackMode === "spool"
    ? spoolWriter(spool, config.spool.maxBytes)
    : directWriter(client, config.clickhouse.waitForAsyncInsert, d.onTouched);

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
  let warmed = { eventIds: 0, sessions: 0 }; // what the last rebuild found in ClickHouse
  const warmth = await openWhenWarm({
    redis,
    warm: async () => {
      await valkeySalts?.republish().catch((err) => logger.warn("could not put the day's salts back into Valkey", { error: String(err) }));
      await batcher?.flush();
      warmed = await warmUp(client, stateStore, dedup);
      logger.info("state warmed up", warmed);
    },
    onError: (err) => {
      // An HTTP error without a body (a bare 431 from a proxy or server) has an empty message.
      const message = String((err as Error)?.message ?? err);
      const error = message !== "" ? message : `${(err as Error)?.name ?? "error"} without a message (an HTTP error with an empty body?)`;
      warmError = firstLine(error);
      warmWarn("ingest state not rebuilt yet (ClickHouse or Valkey failed, see error); ingest answers 503 until it is", { error });
    },
    // A warning when there was something to lose; a first start (ClickHouse holds no recent
    // session or event id either) is said at info level.
    onRebuilt: () =>
      warmed.sessions + warmed.eventIds > 0
        ? logger.warn("valkey held no ingest state (first start, or its data was lost): rebuilt from ClickHouse", warmed)
        : logger.info("valkey held no ingest state and ClickHouse no recent one (a first start): nothing to rebuild"),
    onReady: () => {
      warmError = "";
      warmWarn.reset(); // the next outage's first failure is said at once
    },
    // What the previous process left in the spool goes into ClickHouse first: the check reads it there.
    recover: sharedState && sharedDedup && (async () => {
      // ClickHouse must hold what the previous process left in the spool before it is asked.
      let flushed: Promise<void> | undefined;
      const inClickHouse = async () => void (await (flushed ??= batcher?.flush() ?? Promise.resolve()));
      const r = await recoverJournal(sharedState, async (refs) => (await inClickHouse(), storedStates(client, refs)));
      if (r.rolledBack > 0) logger.warn("session states whose rows a crash kept from being written were taken back", { ...r });
      const c = await sharedDedup.recoverClaims(async (claims) => (await inClickHouse(), storedClaims(client, claims)));
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
  const deps: IngestorDeps = {
    sessionizer: new Sessionizer(stateStore),
    dedup,
    storedEventIds: storedEventIds(client),
    writer,
    metrics,
    hashVisitor: visitorHasher(saltStore),
    lookupCountry,
  };

  return {
    ingest: (ctx, raws, type) =>
      warmth.ready() ? ingestItems(deps, ctx, raws, type) : (countRefused(metrics, raws, type), Promise.reject(notWarm())),
    writer,
    spool,
    ready: () => warmth.ready(),
    lastError: () => warmError,
    flush: async () => {
      await batcher?.flush();
    },
    close: async () => {
      warmth.stop();
      const drained = batcher ? await batcher.close() : true;
      await spool.close();
      return drained;
    },
  };
}
