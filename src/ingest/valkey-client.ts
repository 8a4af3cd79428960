// The ingest side's Valkey connection (session states, event-id claims, salts, key revocations),
// as the service opens it; tests open it the same way.
//
// ioredis re-sends, once connected again, every command that was sent but not answered when the
// connection dropped (autoResendUnfulfilledCommands, on by default), and the caller gets the
// answer of that second run. So each write sent on this connection must be safe to run twice and
// must read its own first run as success: a claim meets its own pending value (dedup.ts), a
// session commit finds its own journal record (state-store.ts).
import Redis from "ioredis";
import { type Logger, throttledWarn } from "../logger.ts";

export interface ValkeyTarget {
  readonly url: string;
  readonly db: number;
  readonly password: string | undefined;
}

export function ingestValkeyClient(target: ValkeyTarget): Redis {
  return new Redis(target.url, {
    db: target.db,
    password: target.password,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: 1000,
    // Reconnect at least every 500 ms (ioredis: 50 ms more per attempt, up to 2 s): ingest
    // answers 503 until Valkey is back, and with the default it went on for ~1.8 s after a
    // 2-6 s outage (a Valkey-loss audit).
    retryStrategy: (times) => Math.min(50 * times, 500),
  });
}

/** How long a start waits for Valkey's connection before going on without it. */
const VALKEY_CONNECT_WAIT_MS = 1000;

/**
 * The service's connection (ingestValkeyClient), with its errors logged (once per 30 s for the
 * same error, and "connected again" once it is back), after a moment to connect: commands fail
 * ("Stream isn't writeable") until the connection is up, and the key store reads the revocation
 * feed at once. A Valkey that is down does not stop the start: ingest answers 503 until it is back.
 */
export async function connectValkey(target: ValkeyTarget, logger: Logger): Promise<Redis> {
  const redis = ingestValkeyClient(target);
  // ioredis reports each failed reconnect (every 500 ms).
  const valkeyWarn = throttledWarn(logger);
  // Back after errors: said once, with the errors held back since the last line (a next outage's
  // first line then counts only its own).
  let failed = false;
  redis.on("error", (err) => {
    failed = true;
    valkeyWarn("valkey error", { error: err.message });
  });
  redis.on("ready", () => {
    if (!failed) return;
    failed = false;
    logger.info("valkey connected again", { errors_not_logged: valkeyWarn.reset() });
  });
  await readyWithin(redis, VALKEY_CONNECT_WAIT_MS);
  return redis;
}

/** Resolves once `redis` is ready, or after `ms` (whichever comes first). */
export function readyWithin(redis: Redis, ms: number): Promise<void> {
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
