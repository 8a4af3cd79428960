// The entry point: parse config, compose the service, serve it with Bun, and shut down in order.
// Bun-specific code lives here (Bun.serve, signals, the socket address) so app.ts stays portable.
import { getConnInfo } from "hono/bun";
import { composeService } from "./compose.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { createLogger } from "./logger.ts";
import { closeEmbeddedEngines } from "./storage/clickhouse.ts";
import { waitForPreviousOwner } from "./storage/embedded/previous-owner.ts";
import { keepFilesPrivate } from "./private-files.ts";
import { startupMessage } from "./startup-errors.ts";
import { withTimeout } from "./with-timeout.ts";

keepFilesPrivate();

let config: Config;
try {
  config = loadConfig(process.env);
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`configuration error: ${err.message}`);
    process.exit(2);
  }
  throw err;
}

/** Start-up failures the operator can fix (see startup-errors.ts): one line, exit 2. */
function startupError(err: unknown): never {
  const message = startupMessage(err, config);
  if (message === undefined) throw err;
  console.error(`start-up error: ${message}`);
  process.exit(2);
}

// A previous process on this data directory may still be draining (a restart right after a stop):
// wait for it rather than fail on its lock (storage/embedded/previous-owner.ts).
if (config.clickhouse.url === undefined) {
  const waitMs = config.shutdownTimeoutMs + 5_000;
  await waitForPreviousOwner(config.dataDir, waitMs, (pid) =>
    createLogger(config.logLevel).warn("DATA_DIR is held by a previous process still stopping: waiting for it", { pid, up_to_ms: waitMs }));
}
const service = await composeService(config, { socketIp: (c) => getConnInfo(c).remote.address }).catch(startupError);
const { app, logger } = service;
let server: ReturnType<typeof Bun.serve>;
try {
  server = serve();
} catch (err) {
  await service.close().catch(() => undefined);
  startupError(err);
}

/** Bun.serve with the service's options (throws when the address cannot be listened on). */
function serve() {
  return Bun.serve({
    port: config.port,
    hostname: config.host,
    // Off: every route has its own limit (ingest 64 KiB / 1 MiB, keys 64 KiB), which the routes check
    // from Content-Length before reading and while streaming: any oversized body gets the contract's
    // 413 with X-Request-Id, not Bun's bare one. A route that reads no body never buffers one.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    // Longer than the ClickHouse client's 60 s request timeout: a query waiting on a hung ClickHouse
    // ends in the contract's 503, not in Bun closing the connection at its default 10 s.
    idleTimeout: 75,
    fetch: (req, srv) => app.fetch(req, { server: srv }),
  });
}
logger.info("listening", { port: server.port, clickhouse: config.clickhouse.url ?? "embedded", valkey: config.valkey ? "on" : "off", ack: config.ackMode });

// Shutdown order: stop accepting (in-flight requests get IN_FLIGHT_MS to finish; one still
// waiting on a hung ClickHouse is cut off then), drain the spool into ClickHouse
// (SHUTDOWN_TIMEOUT_MS), close the spool, stop the key refresher, then close Valkey and
// ClickHouse (the engine last; 2 s at most, see compose.ts). An ingest request cut off still
// finishes its spool write: the handler runs on, only its connection is closed.
const IN_FLIGHT_MS = 2_000;
let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info("shutting down", { signal });
  const force = setTimeout(() => process.exit(1), config.shutdownTimeoutMs + IN_FLIGHT_MS + 5000);
  const finished = await withTimeout(server.stop().then(() => true), IN_FLIGHT_MS);
  if (!finished) {
    logger.warn("requests still in flight after 2 s (ClickHouse not answering?): closing their connections");
    void server.stop(true);
  }
  await service.close();
  await closeEmbeddedEngines();
  clearTimeout(force);
  process.exit(0);
}
process.on("SIGTERM", () => void shutdown("SIGTERM"));
process.on("SIGINT", () => void shutdown("SIGINT"));

// Started by `npm start` (npm sets npm_lifecycle_event), the service is npm's child: npm forwards
// SIGTERM to it (the script `exec`s bun, so no shell sits between them to swallow it), but a
// SIGKILL of npm cannot be forwarded, and the service would run on as an orphan holding the port
// and the data directory, so that the next `npm start` fails. When npm is gone, stop as on
// SIGTERM. (Run directly, as in the Dockerfile, nothing is watched.)
if (process.env.npm_lifecycle_event !== undefined) {
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    logger.warn("the npm process that started the service is gone: stopping", { parent });
    void shutdown("parent exited");
  }, 100);
  watch.unref();
}
