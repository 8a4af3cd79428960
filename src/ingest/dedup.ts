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
 * this was). The price: the retry of an id whose request was cut off before its rows were written
 * is refused (503) until the claim expires, or until its owner starts again: a pending claim names
 * its instance, which journals its claims and at start confirms those whose rows ClickHouse holds
 * and releases the others (recoverClaims).
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
  claim(keys: readonly string[], itemTimes?: readonly number[]): Promise<boolean[]>;
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
  const isSeen = (key: string, at = now()) => {
    const expires = current.get(key) ?? previous.get(key);
    return expires !== undefined && expires > at;
  };
  const add = (key: string, expires = now() + windowMs) => {
    if (current.size >= half) {
      previous = current;
      current = new Map();
    }
    current.set(key, expires);
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
      // One clock read for the whole list (a warm-up passes up to 2M keys).
      const at = now();
      for (const key of keys) if (!isSeen(key, at)) add(key, at + windowMs);
    },
  };
}

const CONFIRMED = "1";
/** A pending claim's value: "p", then the owner's instance id when it has one, then the claiming call's token. */
const isPending = (value: unknown) => typeof value === "string" && value.startsWith("p");

// Deletes the claim iff it is still the pending claim of this owner (ARGV[1]).
const RELEASE_OWN_SCRIPT = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`;

/** How often confirms that failed are tried again, and how many are kept for that at most. */
const CONFIRM_RETRY_MS = 500;
const MAX_UNCONFIRMED = 100_000;

export interface ValkeyDedupOptions {
  windowMs?: number;
  pendingMs?: number;
  confirmRetryMs?: number;
  prefix?: string;
  /**
   * This instance's id and the hash that journals its pending claims (field: the key, value: the
   * item's time, epoch ms, which says where its row would be) until they are confirmed or released:
   * what recoverClaims reads.
   */
  owner?: { id: string; journal: string };
}

export interface ValkeyDedup extends EventDedup {
  /**
   * At start, before taking items, once what the previous process left in its spool is in
   * ClickHouse: each claim the previous process of this instance left pending is confirmed when
   * `stored` finds its rows (written, not confirmed before the crash), else released, so a client's
   * retry is taken at once instead of after PENDING_CLAIM_MS.
   */
  recoverClaims(stored: (claims: ReadonlyArray<{ key: string; time: number }>) => Promise<Set<string>>): Promise<{ pending: number; confirmed: number; released: number }>;
}

/** Valkey: one SET NX GET per id (pending, short expiry), pipelined; confirmed after the write. */
export function valkeyDedup(redis: Redis, opts: ValkeyDedupOptions = {}): ValkeyDedup {
  const windowMs = opts.windowMs ?? DEDUP_WINDOW_MS;
  const pendingMs = opts.pendingMs ?? PENDING_CLAIM_MS;
  const prefix = opts.prefix ?? "analytics:eid:";
  const owner = opts.owner;
  // A pending claim's value: "p", the owner's instance id, and a token of the claiming call, so
  // a call whose claims got no answer can take back exactly its own (see claim).
  const ownerValue = owner ? `p:${owner.id}` : "p";
  const isOwn = (value: unknown) => value === ownerValue || (typeof value === "string" && value.startsWith(`${ownerValue}:`));
  /** Forgets journal fields (not waited for: a leftover field only costs recoverClaims a look). */
  const unjournal = (keys: readonly string[]) => {
    if (owner && keys.length > 0) void redis.hdel(owner.journal, ...keys).catch(() => undefined);
  };
  /**
   * The pending value of each id this instance's calls claimed and have not confirmed or released
   * yet (what releases delete: exactly those claims, never another's). In-flight ids only.
   */
  const claimedAs = new Map<string, string>();
  /** Runs `pipeline`; throws when it or any of its commands failed (exec reports those per command). */
  const execAll = async (pipeline: ReturnType<Redis["pipeline"]>) => {
    const results = (await pipeline.exec()) ?? [];
    for (const [err] of results) if (err) throw err;
    return results;
  };
  const confirmNow = async (keys: readonly string[]) => {
    const pipeline = redis.pipeline();
    for (const key of keys) pipeline.set(prefix + key, CONFIRMED, "PX", windowMs);
    await execAll(pipeline);
    unjournal(keys);
  };
  /** Deletes each key's claim iff it is still the pending value given (a claiming call's own). */
  const releaseOwnNow = async (claims: ReadonlyMap<string, string>) => {
    const pipeline = redis.pipeline();
    for (const [key, value] of claims) pipeline.eval(RELEASE_OWN_SCRIPT, 1, prefix + key, value);
    await execAll(pipeline);
    unjournal([...claims.keys()]);
  };
  // Two writes must not be dropped when Valkey does not answer them (killed, restarting, paused):
  // - a confirm comes after the rows are durable and the 202 is sent: were it dropped, the pending
  //   claim would expire after pendingMs and a retry of that acknowledged item would be stored
  //   again (a durability audit: 8 of 26,509 after Valkey was killed under load). A confirm is a
  //   plain SET: it holds whether the claim is still pending or has expired;
  // - the release of a refused call's claims: were it dropped, the client's retry would meet them
  //   pending for pendingMs (503 for ~60 s). It deletes only that call's claims (their token).
  // Both are tried again every CONFIRM_RETRY_MS until they land. Bounded: past the cap the oldest
  // are given up, as all were before.
  const unconfirmed = new Set<string>();
  const unreleased = new Map<string, string>();
  let retryTimer: ReturnType<typeof setTimeout> | undefined;
  const retry = () => {
    retryTimer = undefined;
    // A client closed for good (shutdown) never answers again; the next start recovers the claims.
    if (redis.status === "end") return void (unconfirmed.clear(), unreleased.clear());
    const keys = [...unconfirmed];
    const claims = new Map(unreleased);
    unconfirmed.clear();
    unreleased.clear();
    if (keys.length > 0) void confirmNow(keys).catch(() => later(keys));
    if (claims.size > 0) void releaseOwnNow(claims).catch(() => later([], claims));
  };
  const later = (keys: readonly string[], claims?: ReadonlyMap<string, string>) => {
    for (const key of keys) unconfirmed.add(key);
    for (const [key, value] of claims ?? []) unreleased.set(key, value);
    for (const key of unconfirmed) {
      if (unconfirmed.size <= MAX_UNCONFIRMED) break;
      unconfirmed.delete(key);
    }
    for (const key of unreleased.keys()) {
      if (unreleased.size <= MAX_UNCONFIRMED) break;
      unreleased.delete(key);
    }
    if (retryTimer === undefined && unconfirmed.size + unreleased.size > 0) {
      retryTimer = setTimeout(retry, opts.confirmRetryMs ?? CONFIRM_RETRY_MS);
      retryTimer.unref?.();
    }
  };
  // A claim given back (its request refused): deleted iff it is still that call's pending claim,
  // and tried again until it lands like the releases above. Not a plain DEL: one tried again, or
  // re-sent by ioredis after a reconnect (valkey-client.ts), runs after whatever happened to the id
  // in between (the client's retry claimed it, stored and confirmed it). Before, a release that
  // failed was dropped: a request refused while Valkey was unreachable left its claims pending, and
  // the client's retries got 503 for 60 s (a durability audit: 14 requests after reconnects held 2.5-3 s).
  const release = async (keys: readonly string[]) => {
    if (keys.length === 0) return;
    const claims = new Map<string, string>();
    for (const key of keys) {
      const value = claimedAs.get(key);
      claimedAs.delete(key);
      if (value !== undefined) claims.set(key, value);
    }
    if (claims.size === 0) return;
    try {
      await releaseOwnNow(claims);
    } catch (err) {
      later([], claims);
      throw err;
    }
  };
  const confirm = async (keys: readonly string[]) => {
    if (keys.length === 0) return;
    for (const key of keys) claimedAs.delete(key);
    try {
      await confirmNow(keys);
    } catch (err) {
      later(keys);
      throw err;
    }
  };
  return {
    async claim(keys, itemTimes) {
      if (keys.length === 0) return [];
      const pipeline = redis.pipeline();
      const pendingValue = `${ownerValue}:${crypto.randomUUID().slice(0, 13)}`;
      // Journaled before claimed (one pipeline, run in order): every claim of this instance has
      // its journal field.
      if (owner) pipeline.hset(owner.journal, ...keys.flatMap((k, i) => [k, String(itemTimes?.[i] ?? Date.now())]));
      // SET NX GET: sets only when absent and returns what was there (null: this call claimed it).
      for (const key of keys) pipeline.set(prefix + key, pendingValue, "PX", pendingMs, "NX", "GET");
      let results: Array<[Error | null, unknown]>;
      try {
        results = (await execAll(pipeline)).slice(owner ? 1 : 0);
      } catch (err) {
        // No answer (Valkey paused past the command timeout, or gone): the claims may still be
        // made once it catches up, and the request is refused, so its client's retry would meet
        // them, pending, for pendingMs (an audit: 503 for ~60 s). Their release goes right behind
        // them on this connection (tried again until it lands, see `later`) and deletes only the
        // claims this call made (its token).
        const claims = new Map(keys.map((k) => [k, pendingValue]));
        void releaseOwnNow(claims).catch(() => later([], claims));
        throw err;
      }
      const mine = new Set<string>();
      const pending: string[] = [];
      const fresh = results.map(([, value], i) => {
        const key = keys[i]!;
        // null: claimed now. This call's own pending value: claimed by its first run, whose answer
        // the connection lost; ioredis re-sent the pipeline after reconnecting (valkey-client.ts),
        // and that run met the claim (read as another request's, the request got 503 and the
        // claim blocked its retries for pendingMs).
        if (value === null || (value === pendingValue && !mine.has(key))) {
          mine.add(key);
          claimedAs.set(key, pendingValue);
          // Bounded: ids whose request never settled them (none expected) go first, their claims then expire.
          if (claimedAs.size > MAX_UNCONFIRMED) claimedAs.delete(claimedAs.keys().next().value!);
          return true;
        }
        // The same id twice in one request: the later one is a duplicate of the earlier.
        if (isPending(value) && !mine.has(key)) pending.push(key);
        return false;
      });
      // Not claimed by this call: not its field. (When the claim it met is another request's of
      // this instance, that request's field goes too: a crash before it completes then leaves its
      // claim to expire, as claims did before they were journaled.)
      unjournal(keys.filter((k) => !mine.has(k)));
      if (pending.length > 0) {
        await release([...mine]);
        throw new ClaimPendingError(pending);
      }
      return fresh;
    },
    confirm,
    release,
    async recoverClaims(stored) {
      const result = { pending: 0, confirmed: 0, released: 0 };
      if (!owner) return result;
      const journaled = await redis.hgetall(owner.journal);
      const keys = Object.keys(journaled);
      for (let i = 0; i < keys.length; i += 1000) {
        const part = keys.slice(i, i + 1000);
        const values = await redis.mget(...part.map((k) => prefix + k));
        // Claims since confirmed, released, expired or taken by another request are not this one's.
        const valueOf = new Map(part.map((k, j) => [k, values[j]]));
        const own = part.filter((k) => isOwn(valueOf.get(k)));
        result.pending += own.length;
        if (own.length > 0) {
          const found = await stored(own.map((key) => ({ key, time: Number(journaled[key]) })));
          const written = own.filter((k) => found.has(k));
          await confirm(written);
          result.confirmed += written.length;
          for (const k of own) {
            if (!found.has(k)) result.released += Number(await redis.eval(RELEASE_OWN_SCRIPT, 1, prefix + k, valueOf.get(k)!));
          }
        }
        await redis.hdel(owner.journal, ...part);
      }
      return result;
    },
    // In pipelines of REMEMBER_CHUNK, one after another, each checked: a warm-up passes up to 2M
    // ids, and as one pipeline they held Valkey for seconds, so commands behind them (the
    // rebuild's own, other requests') passed the 1 s timeout and the rebuild started over, for
    // minutes (a durability audit: 13 min 46 s with 968k ids after Valkey restarted empty); and a
    // command answered with an error went unnoticed, leaving an acknowledged id unremembered.
    async remember(keys) {
      for (let i = 0; i < keys.length; i += REMEMBER_CHUNK) {
        const pipeline = redis.pipeline();
        for (const key of keys.slice(i, i + REMEMBER_CHUNK)) pipeline.set(prefix + key, CONFIRMED, "PX", windowMs);
        await execAll(pipeline);
      }
    },
  };
}

/** Ids per pipeline when remembering many (a few ms of Valkey's time each). */
const REMEMBER_CHUNK = 5_000;
