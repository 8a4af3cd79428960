// Revocations announced through Valkey, for instances that cannot reach ClickHouse.
//
// The key store learns revocations from its ClickHouse refresh (every 5 s). An instance that
// cannot reach ClickHouse keeps serving its last key map: ingest goes on into the spool and cached
// answers come from Valkey, so without this a key revoked elsewhere kept working there for as long
// as the outage lasted (a black-box audit: 17 s and counting), against the contract's "stops
// working on every instance within 10 seconds". With Valkey configured (the only way to run more
// than one instance), a revocation is also added to a set there, which every instance reads every
// 2 s whatever ClickHouse does. The set holds key hashes (as `api_keys` does), never keys.
import type Redis from "ioredis";

export interface RevocationFeed {
  /** Announces that the key with this hash is revoked. */
  publish(keyHash: string): Promise<void>;
  /** Every hash announced so far (revoked keys only: a small set). */
  revoked(): Promise<string[]>;
}

export const REVOKED_KEYS = "analytics:keys:revoked";

export function valkeyRevocationFeed(redis: Redis, key = REVOKED_KEYS): RevocationFeed {
  return {
    publish: async (keyHash) => void (await redis.sadd(key, keyHash)),
    revoked: () => redis.smembers(key),
  };
}
