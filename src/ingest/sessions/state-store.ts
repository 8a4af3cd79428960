// Where session state lives between requests: in Valkey when configured, so several service
// instances behind a load balancer agree on every visitor's session, and in process otherwise.
// Writes are compare-and-set over a group of keys: a request's changes land only if nobody else
// changed those keys since it read them; otherwise it reads again and recomputes.
import type Redis from "ioredis";

export interface StateStore {
  /** Current values of `keys` (null when absent). */
  load(keys: readonly string[]): Promise<Map<string, string | null>>;
  /** Writes every entry iff each key still holds `expected`; false when another writer won. */
  commit(entries: readonly StateWrite[], ttlMs: number): Promise<boolean>;
}

export interface StateWrite {
  key: string;
  expected: string | null;
  next: string;
}

/** In-process store: a map with per-entry expiry and a size cap (oldest entries go first). */
export function memoryStateStore(opts: { maxEntries?: number; now?: () => number } = {}): StateStore & { size(): number } {
  const maxEntries = opts.maxEntries ?? 2_000_000;
  const now = opts.now ?? Date.now;
  const map = new Map<string, { value: string; expiresAt: number }>();
  const read = (key: string): string | null => {
    const entry = map.get(key);
    if (!entry) return null;
    if (entry.expiresAt <= now()) {
      map.delete(key);
      return null;
    }
    return entry.value;
  };
  return {
    size: () => map.size,
    async load(keys) {
      return new Map(keys.map((k) => [k, read(k)]));
    },
    async commit(entries, ttlMs) {
      // No await between the checks and the writes: in one process this is atomic.
      for (const e of entries) if (read(e.key) !== e.expected) return false;
      const expiresAt = now() + ttlMs;
      for (const e of entries) {
        map.delete(e.key); // re-insert so Map order is least-recently-written first
        map.set(e.key, { value: e.next, expiresAt });
      }
      while (map.size > maxEntries) map.delete(map.keys().next().value!);
      return true;
    },
  };
}

const NIL = "\u0000nil";
const CAS_SCRIPT = `
local n = #KEYS
for i = 1, n do
  local cur = redis.call('GET', KEYS[i])
  if cur == false then cur = '${NIL}' end
  if cur ~= ARGV[i] then return 0 end
end
for i = 1, n do
  redis.call('SET', KEYS[i], ARGV[n + i], 'PX', ARGV[2 * n + 1])
end
return 1`;

/** Valkey store: MGET to read, one Lua script to compare-and-set a group of keys atomically. */
export function valkeyStateStore(redis: Redis, prefix = "analytics:sess:"): StateStore {
  return {
    async load(keys) {
      if (keys.length === 0) return new Map();
      const values = await redis.mget(...keys.map((k) => prefix + k));
      return new Map(keys.map((k, i) => [k, values[i] ?? null]));
    },
    async commit(entries, ttlMs) {
      if (entries.length === 0) return true;
      const keys = entries.map((e) => prefix + e.key);
      const args = [...entries.map((e) => e.expected ?? NIL), ...entries.map((e) => e.next), String(ttlMs)];
      const ok = await redis.eval(CAS_SCRIPT, keys.length, ...keys, ...args);
      return ok === 1;
    },
  };
}
