// The Cache the composition root builds: Valkey when configured (shared by every instance), else
// in process. The Valkey cache opens its own connection: its options (no offline queue, a short
// command timeout) suit a cache and would not suit the ingest path's shared connection.
import type { Config } from "../config.ts";
import type { Cache } from "./cache.ts";
import { memoryCache } from "./memory-cache.ts";
import { valkeyCache } from "./valkey-cache.ts";

export function createCache(valkey: Config["valkey"], opts: { onError?: (error: Error) => void } = {}): Cache {
  if (!valkey) return memoryCache();
  return valkeyCache({ url: valkey.url, db: valkey.db, password: valkey.password, onError: opts.onError });
}
