import type Redis from "ioredis";
import { DAY_MS, utcDay } from "../../iso-time.ts";

/** Where the daily visitor-id salt comes from: one random secret per UTC day, the same on every instance that shares it. */
export interface SaltStore {
  saltFor(day: string): Promise<Uint8Array>;
}

const SALT_BYTES = 32;
/** Secret keys may back-fill items 30 days old; their day's salt must still be the one first used. */
export const SALT_RETENTION_DAYS = 31;
const DAY = /^\d{4}-\d{2}-\d{2}$/;

function checkDay(day: string): void {
  if (!DAY.test(day) || utcDay(Date.parse(`${day}T00:00:00Z`) || 0) !== day) {
    throw new RangeError(`salt day must be a YYYY-MM-DD date, got ${JSON.stringify(day)}`);
  }
}

function randomSalt(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(SALT_BYTES));
}

/** Days older than the retention window are dropped, so memory stays bounded in a long-running process. */
function pruneOlderThanRetention<V>(byDay: Map<string, V>, now: number): void {
  const oldestKept = utcDay(now - SALT_RETENTION_DAYS * DAY_MS);
  for (const day of byDay.keys()) if (day < oldestKept) byDay.delete(day);
}

export interface MemorySaltStoreOptions {
  now?: () => number;
}

/**
 * Salts that live only in this process: fine for one instance, but every restart or second
 * instance starts new salts, so the same visitor then counts twice for that day.
 */
export function createMemorySaltStore(options: MemorySaltStoreOptions = {}): SaltStore {
  const now = options.now ?? Date.now;
  const salts = new Map<string, Uint8Array>();
  return {
    async saltFor(day) {
      checkDay(day);
      pruneOlderThanRetention(salts, now());
      let salt = salts.get(day);
      if (salt === undefined) {
        salt = randomSalt();
        salts.set(day, salt);
      }
      return salt;
    },
  };
}

export interface ValkeySaltStoreOptions {
  /** Key prefix; the day is appended. Default `analytics:salt:`. */
  keyPrefix?: string;
  now?: () => number;
  /**
   * A local copy (the DATA_DIR salts file): each salt Valkey settled on is kept there, and a day
   * Valkey does not hold (it lost its data) is offered from there before a new one is drawn.
   */
  backup?: { get(day: string): string | undefined; put(day: string, hex: string): void };
}

const HEX_SALT = new RegExp(`^[0-9a-f]{${SALT_BYTES * 2}}$`);
// One day longer than the retention window, so a salt outlives every item that may still use it.
const VALKEY_TTL_SECONDS = (SALT_RETENTION_DAYS + 1) * 86_400;

function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function fromHex(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i++) bytes[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return bytes;
}

/**
 * Salts shared through Valkey so that every instance hashes a visitor alike: the first instance
 * to need a day's salt writes it (SET NX), everyone reads the winner back. Cached in process
 * after that, so Valkey is asked once per day per instance. A Valkey error rejects (nothing is
 * cached) rather than falling back to a local salt, which would silently split visitor counts.
 */
export function createValkeySaltStore(redis: Redis, options: ValkeySaltStoreOptions = {}): SaltStore & { republish(): Promise<void> } {
  const keyPrefix = options.keyPrefix ?? "analytics:salt:";
  const now = options.now ?? Date.now;
  // Promises, so concurrent first requests for a day share one round trip.
  const salts = new Map<string, Promise<Uint8Array>>();

  async function fetchSalt(day: string): Promise<Uint8Array> {
    const key = keyPrefix + day;
    await redis.set(key, options.backup?.get(day) ?? toHex(randomSalt()), "EX", VALKEY_TTL_SECONDS, "NX");
    const stored = await redis.get(key);
    if (stored === null || !HEX_SALT.test(stored)) {
      throw new Error(`salt ${key} in Valkey is missing or malformed`);
    }
    options.backup?.put(day, stored);
    return fromHex(stored);
  }

  return {
    /**
     * Puts the salts this instance uses back into Valkey where it lost them (SET NX: a salt
     * another instance put back first wins there; this one then reads it on its next restart).
     */
    async republish() {
      for (const [day, salt] of salts) {
        const bytes = await salt.catch(() => undefined);
        if (bytes) await redis.set(keyPrefix + day, toHex(bytes), "EX", VALKEY_TTL_SECONDS, "NX");
      }
    },
    saltFor(day) {
      try {
        checkDay(day);
      } catch (error) {
        return Promise.reject(error);
      }
      pruneOlderThanRetention(salts, now());
      let salt = salts.get(day);
      if (salt === undefined) {
        salt = fetchSalt(day);
        salts.set(day, salt);
        salt.catch(() => {
          if (salts.get(day) === salt) salts.delete(day);
        });
      }
      return salt;
    },
  };
}
