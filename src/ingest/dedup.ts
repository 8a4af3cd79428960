// Remembers which event ids each service already sent, so a client retry is stored once.
// A claim is atomic (Valkey SET NX, or a map in one process); a request that fails after
// claiming gives its claims back, so its retry is not mistaken for a duplicate.
//
// In Valkey a claim outlives the process that made it, so a process killed between claiming and
// the durable write would leave a claim for rows that never got written, and the client's retry
// would be answered `duplicate` and lost. So a claim is first *pending* (short expiry) and becomes
// *confirmed* (full window) once the rows are durable; an id whose claim is still pending is
// neither new nor a duplicate: the request is refused with 503 and retried after the owner either
// confirmed it (duplicate) or died (the pending claim expires and the retry is new).
import type Redis from "ioredis";

/** How long an event id is remembered. */
export const DEDUP_WINDOW_MS = 24 * 60 * 60 * 1000;
/**
 * How long an unconfirmed claim blocks its id: longer than any request takes to write, and as long
 * as a crashed instance usually takes to start again. An instance killed after writing a request's
 * rows to its spool and before confirming leaves the claim pending; when it starts again it
 * confirms the ids of its leftover spool before taking requests (rememberSpooled). Were the claim
 * to expire first, a client's retry through another instance would be stored, and the replay a
 * second copy (multi-instance audit, 2026-11-28: the instance came back after 42 s, past the 30 s
 * this was). The price, paid also by one instance restarting: the retry of an id whose request was
 * cut off before its rows were written is refused (503) for up to this long. A minute balances the
 * two; an owner-tagged claim released at restart would remove the price, and is not built.
 */
export const PENDING_CLAIM_MS = 60 * 1000;

/** Another request holds a claim on one of the ids and has not written its rows yet. */
export class ClaimPendingError extends Error {
  constructor(readonly keys: readonly string[]) {
    super(`event ids in flight in another request: ${keys.slice(0, 3).join(", ")}`);
    this.name = "ClaimPendingError";
  }
}

export interface EventDedup {
  /**
   * For each key, true when it is new (and now claimed), false when it was seen. Throws
   * ClaimPendingError (claiming nothing) when another request's claim on a key is not confirmed yet.
   */
  claim(keys: readonly string[]): Promise<boolean[]>;
  /** Marks claimed keys as stored (their rows are durable): retries are duplicates from now on. */
  confirm(keys: readonly string[]): Promise<void>;
  /** Forgets keys claimed by a request that did not complete. */
  release(keys: readonly string[]): Promise<void>;
  /** Marks keys as seen without asking (warm-up from stored rows after a restart). */
  remember(keys: readonly string[]): Promise<void>;
}

/**
 * In-process: ids with expiry, capped at `maxEntries`. Two generations of maps: new ids go into the
 * current one; when it holds half the cap it becomes the previous one and the old previous one is
 * dropped whole. So the newest maxEntries/2 to maxEntries ids are remembered, and nothing is ever
 * evicted one entry at a time: in Bun (JavaScriptCore) "delete the oldest Map key"
 * (keys().next() + delete) walks past every tombstone left since the last rehash, measured at
 * ~40 µs per insert on a full 300k-entry map.
 */
export function memoryDedup(opts: { maxEntries?: number; windowMs?: number; now?: () => number } = {}): EventDedup & { size(): number } {
  const half = Math.max(1, Math.floor((opts.maxEntries ?? 2_000_000) / 2));
  const windowMs = opts.windowMs ?? DEDUP_WINDOW_MS;
  const now = opts.now ?? Date.now;
  let current = new Map<string, number>();
  let previous = new Map<string, number>();
  const isSeen = (key: string) => {
    const expires = current.get(key) ?? previous.get(key);
    return expires !== undefined && expires > now();
  };
  const add = (key: string) => {
    if (current.size >= half) {
      previous = current;
      current = new Map();
    }
    current.set(key, now() + windowMs);
  };
  return {
    size: () => current.size + previous.size,
    async claim(keys) {
      return keys.map((key) => {
        if (isSeen(key)) return false;
        add(key);
        return true;
      });
    },
    async confirm() {
      // In one process a claim dies with the rows it stands for: nothing to confirm.
    },
    async release(keys) {
      for (const key of keys) {
        current.delete(key);
        previous.delete(key);
      }
    },
    async remember(keys) {
      for (const key of keys) if (!isSeen(key)) add(key);
    },
  };
}

const PENDING = "p";
const CONFIRMED = "1";

/** Valkey: one SET NX GET per id (pending, short expiry), pipelined; confirmed after the write. */
export function valkeyDedup(redis: Redis, opts: { windowMs?: number; pendingMs?: number; prefix?: string } = {}): EventDedup {
  const windowMs = opts.windowMs ?? DEDUP_WINDOW_MS;
  const pendingMs = opts.pendingMs ?? PENDING_CLAIM_MS;
  const prefix = opts.prefix ?? "analytics:eid:";
  const release = async (keys: readonly string[]) => {
    if (keys.length > 0) await redis.del(...keys.map((k) => prefix + k));
  };
  return {
    async claim(keys) {
      if (keys.length === 0) return [];
      const pipeline = redis.pipeline();
      // SET NX GET: sets only when absent and returns what was there (null: this call claimed it).
      for (const key of keys) pipeline.set(prefix + key, PENDING, "PX", pendingMs, "NX", "GET");
      const results = (await pipeline.exec()) ?? [];
      const mine = new Set<string>();
      const pending: string[] = [];
      const fresh = results.map(([err, value], i) => {
        if (err) throw err;
        const key = keys[i]!;
        if (value === null) {
          mine.add(key);
          return true;
        }
        // The same id twice in one request: the later one is a duplicate of the earlier.
        if (value === PENDING && !mine.has(key)) pending.push(key);
        return false;
      });
      if (pending.length > 0) {
        await release([...mine]);
        throw new ClaimPendingError(pending);
      }
      return fresh;
    },
    async confirm(keys) {
      if (keys.length === 0) return;
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.set(prefix + key, CONFIRMED, "PX", windowMs);
      await pipeline.exec();
    },
    release,
    async remember(keys) {
      if (keys.length === 0) return;
      const pipeline = redis.pipeline();
      for (const key of keys) pipeline.set(prefix + key, CONFIRMED, "PX", windowMs);
      await pipeline.exec();
    },
  };
}
