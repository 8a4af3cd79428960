// The entry point: parse config, compose the service, serve it with Bun, and shut down in order.
// Bun-specific code lives here (Bun.serve, signals, the socket address) so app.ts stays portable.
import type { Server } from "bun";
import { lookup } from "node:dns/promises";
import { isIP } from "node:net";
import { getConnInfo } from "hono/bun";
import { composeService, ENGINE_FAILED_EXIT_CODE } from "./compose.ts";
import { ConfigError, loadConfig, type Config } from "./config.ts";
import { hardExit } from "./hard-exit.ts";
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

// A HOST that names no host fails here, before anything is created under DATA_DIR (Bun.serve
// reports an unresolvable name as EINVAL, ENOTCONN or even EADDRINUSE).
const bareHost = config.host.replace(/^\[(.*)\]$/, "$1");
if (isIP(bareHost) === 0) await lookup(bareHost).catch(startupError);

// A previous process on this data directory may still be draining (a restart right after a stop):
// wait for it rather than fail on its lock (storage/embedded/previous-owner.ts).
if (config.clickhouse.url === undefined) {
  const waitMs = config.shutdownTimeoutMs + 5_000;
  await waitForPreviousOwner(config.dataDir, waitMs, (pid) =>
    createLogger(config.logLevel).warn("DATA_DIR is held by another service process (a previous one still stopping, or one still running): waiting for it to stop", { pid, up_to_ms: waitMs }));
}
// The embedded engine failed for good (a fatal signal in one of its threads; compose.ts has logged
// it): every request to it is refused until the process restarts, so the service could take items
// into its spool but never store them. It stops instead, with exit code 70, for a supervisor to
// start it again (the restart replays the spool, as after a kill): it answers last calls and lets
// requests in flight finish as on SIGTERM (stopServing: an accepted item is in the spool before
// its 202; reads get 503), then ends without the drain (the engine takes nothing) and without exit
// handlers (hard-exit.ts). Also during a start (migrations, warm-up) and during a SIGTERM's drain.
// Called once: the engine tells each listener once (ChdbEngine.onFailure).
async function engineFailed(): Promise<void> {
  createLogger(config.logLevel).error("stopping: start the service again to go on (the spool keeps what was accepted)", { exit_code: ENGINE_FAILED_EXIT_CODE });
  if (serving) {
    service.beginShutdown();
    await stopServing();
  }
  hardExit(ENGINE_FAILED_EXIT_CODE);
}

let server: ReturnType<typeof Bun.serve>;
let serving = false;
// While stopping (see stopServing), every answer closes its connection, so a client's next request
// goes out on a new connection (to another instance, or refused once this one stops listening)
// instead of one this process may close unread.
let draining = false;
let lastArrival = 0;
const QUIET_MS = 100;
const LAST_CALL_MS = 1_000;
const IN_FLIGHT_MS = 2_000;

const service = await composeService(config, {
  socketIp: (c) => getConnInfo(c).remote.address,
  onEngineFailure: () => void engineFailed(),
}).catch(startupError);
const { app, logger } = service;
try {
  server = serve();
  serving = true;
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
    fetch: (req, srv) => (draining ? lastCall(req, srv) : app.fetch(req, { server: srv })),
  });
}

async function lastCall(req: Request, srv: Server<undefined>): Promise<Response> {
  lastArrival = performance.now();
  const res = await app.fetch(req, { server: srv });
  try {
    res.headers.set("Connection", "close");
    return res;
  } catch {
    // Immutable headers: the same answer in a new Response.
    const headers = new Headers(res.headers);
    headers.set("Connection", "close");
    return new Response(res.body, { status: res.status, statusText: res.statusText, headers });
  }
}
// The runtime settings the process started with (src/runtime-flags.ts): "unset" is the library's own default
// (Bun's allocator returns freed memory after 100 ms, the engine's after 5 s).
logger.info("listening", { port: server.port, clickhouse: config.clickhouse.url ?? "embedded", valkey: config.valkey ? "on" : "off", ack: config.ackMode, mimalloc_purge_delay: process.env.MIMALLOC_PURGE_DELAY ?? "unset", uv_threadpool_size: process.env.UV_THREADPOOL_SIZE ?? "unset", je_malloc_conf: process.env.JE_MALLOC_CONF ?? "unset" });
// A ClickHouse server may be shared; without Valkey this process's sessions, event ids and cached
// answers are its own, so a second instance on the same database would see none of them (its
// cache would answer stale for its full lifetime after this one's flushes: README, "Cache").
if (config.clickhouse.url && !config.valkey) {
  logger.info("one instance per database: without VALKEY_URL, sessions, event-id dedup and cached answers live in this process; several instances on one ClickHouse database need a shared Valkey");
}

// Shutdown order: answer last calls and stop listening (stopServing), then Service.close (drain the
// spool into ClickHouse for SHUTDOWN_TIMEOUT_MS, close the spool, stop the key refresher, let go of
// the Valkey and ClickHouse clients within 2 s), then the embedded engine itself
// (closeEmbeddedEngines: it waits for the engine's running requests).
let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.info("shutting down", { signal });
  const force = setTimeout(() => process.exit(1), config.shutdownTimeoutMs + LAST_CALL_MS + IN_FLIGHT_MS + 5000);
  service.beginShutdown();
  await stopServing();
  await service.close();
  await closeEmbeddedEngines();
  clearTimeout(force);
  process.exit(0);
}

// Answers last calls (/readyz 503 "shutting down", every answer with `Connection: close`) until no
// request arrived for QUIET_MS, at most LAST_CALL_MS; then stops listening, and gives requests in
// flight IN_FLIGHT_MS to finish (one still waiting on a hung ClickHouse is cut off then; an ingest
// request cut off still finishes its spool write: the handler runs on, only its connection closes).
//
// The last calls exist because Bun's server.stop() closes at once every connection it is not
// answering a request on, and a request its client already wrote but the busy event loop had not
// read yet counts as none: a kill audit saw requests written 6–71 ms before SIGTERM reset unread
// (tests/durability/sigterm-queued.test.ts), and another the same when the engine failed
// (tests/durability/engine-failure.test.ts). Serving on for a while reads them.
async function stopServing(): Promise<void> {
  draining = true;
  const lastCalls = performance.now();
  lastArrival = lastCalls;
  while (performance.now() - lastCalls < LAST_CALL_MS && performance.now() - lastArrival < QUIET_MS) await Bun.sleep(10);
  const finished = await withTimeout(server.stop().then(() => true), IN_FLIGHT_MS);
  if (!finished) {
    logger.warn("requests still in flight after 2 s (ClickHouse not answering?): closing their connections");
    void server.stop(true);
  }
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
