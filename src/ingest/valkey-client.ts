// The ingest side's Valkey connection (session states, event-id claims, salts, key revocations),
// as the service opens it; tests open it the same way.
//
// ioredis re-sends, once connected again, every command that was sent but not answered when the
// connection dropped (autoResendUnfulfilledCommands, on by default), and the caller gets the
// answer of that second run. So each write sent on this connection must be safe to run twice and
// must read its own first run as success: a claim meets its own pending value (dedup.ts), a
// session commit finds its own journal record (state-store.ts).
import Redis from "ioredis";

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
