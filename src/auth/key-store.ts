// API keys live in ClickHouse (`api_keys`), the one store every service instance shares. Each
// instance verifies from an in-process map hash → record that it reloads every 5 s, so a
// revocation written by any instance is in force everywhere within one refresh period (+ query
// time), well inside the contract's 10 s. A key created elsewhere and not yet in the map costs one
// direct lookup by hash, bounded by LookupGuard. While ClickHouse is unreachable the last map keeps
// serving (ingestion goes on into the spool); keys it has never seen answer 503, not 401. With
// Valkey, revocations are also announced there (revocation-feed.ts), so an instance that cannot
// reach ClickHouse still stops a key revoked elsewhere within the feed's period (2 s).
import type { ClickHouseClient } from "@clickhouse/client-web";
import { ApiError } from "../errors.ts";
import { constantTimeEqual, generateKey, generateKeyId, hashKey, keyPrefixOf, keyTypeOf, knownKeyHash, type KeyType } from "./key-format.ts";
import { LookupGuard } from "./lookup-guard.ts";
import { originAllowed } from "./origin.ts";
import { fromRow, LATEST_ROWS_SQL, toRow, type KeyRow } from "./key-rows.ts";
import type { RevocationFeed } from "./revocation-feed.ts";

/** A key as stored and listed: never the key itself, never its hash. */
export interface KeyRecord {
  id: string;
  type: KeyType;
  name: string;
  /** The one service a public or secret key ingests for; null for admin tokens. */
  serviceId: string | null;
  /** Services an admin token may read (`["*"]` for all); empty for ingest keys. */
  services: readonly string[];
  /** Origins a public key accepts requests from (`"*"` for any); empty for other types. */
  origins: readonly string[];
  createdAt: string;
  revokedAt: string | null;
  /** First 8 characters of the key, so humans can tell keys apart. */
  keyPrefix: string;
}

export type NewKey =
  | { type: "public"; serviceId: string; origins?: readonly string[]; name?: string }
  | { type: "secret"; serviceId: string; name?: string }
  | { type: "admin"; services: readonly string[]; name?: string };

/** Creates, lists, revokes and verifies API keys. */
export interface KeyStore {
  /** Stores a new key; the plaintext `key` is returned here and nowhere else. */
  create(input: NewKey): Promise<{ record: KeyRecord; key: string }>;
  list(): Promise<KeyRecord[]>;
  /** Revokes a key; false when no key has this id (revoking twice is true both times). */
  revoke(id: string): Promise<boolean>;
  /** The active key matching `presentedKey`, or null (unknown, revoked, malformed). */
  verify(presentedKey: string): Promise<KeyRecord | null>;
  /**
   * verify()'s answer when it needs no waiting (the key's hash is remembered and the key is in the
   * in-process map, or malformed); undefined when only verify() can tell.
   */
  verifyKnown?(presentedKey: string): KeyRecord | null | undefined;
  /** True when some active public key (as of the last refresh) accepts requests from `origin`. */
  publicOriginAllowed(origin: string): boolean;
}

export interface ClickHouseKeyStoreOptions {
  client: ClickHouseClient;
  refreshIntervalMs?: number;
  negativeTtlMs?: number;
  lookupsPerSecond?: number;
  /** The clock of the look-up budget and the negative cache (tests freeze it). */
  now?: () => number;
  /** Failed refreshes and lookups are reported here (the store keeps serving its last map). */
  onError?: (err: unknown, during: "refresh" | "lookup" | "feed") => void;
  /** Where revocations are announced to and read from, besides ClickHouse (Valkey, when configured). */
  revocations?: RevocationFeed;
  feedIntervalMs?: number;
}

interface Entry { hash: string; record: KeyRecord }

/** KeyStore over ClickHouse's `api_keys`, with the per-instance cache described above. */
export class ClickHouseKeyStore implements KeyStore {
  readonly #client: ClickHouseClient;
  readonly #guard: LookupGuard<Entry>;
  readonly #intervalMs: number;
  readonly #onError: NonNullable<ClickHouseKeyStoreOptions["onError"]>;
  #byHash = new Map<string, Entry>();
  readonly #feed: RevocationFeed | undefined;
  readonly #feedIntervalMs: number;
  /** Hashes the feed announced as revoked: refused whatever the map says. */
  #announced = new Set<string>();
  #feedFailing = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  #feedTimer: ReturnType<typeof setInterval> | undefined;
  #refreshing: Promise<void> | undefined;
  /** Epoch ms of the last successful refresh (null before the first one). */
  lastRefreshAt: number | null = null;

  constructor(opts: ClickHouseKeyStoreOptions) {
    this.#client = opts.client;
    this.#intervalMs = opts.refreshIntervalMs ?? 5_000;
    this.#onError = opts.onError ?? (() => {});
    this.#feed = opts.revocations;
    this.#feedIntervalMs = opts.feedIntervalMs ?? 2_000;
    this.#guard = new LookupGuard({ negativeTtlMs: opts.negativeTtlMs ?? 5_000, lookupsPerSecond: opts.lookupsPerSecond ?? 20, now: opts.now });
  }

  /** Loads every key once, then refreshes on a timer until stop(). */
  async start(): Promise<void> {
    if (this.#timer) return;
    this.#timer = setInterval(() => void this.refresh().catch(() => {}), this.#intervalMs);
    // The timer must not keep a process alive that is otherwise done (CLI, tests).
    (this.#timer as { unref?: () => void }).unref?.();
    if (this.#feed) {
      this.#feedTimer = setInterval(() => void this.readFeed().catch(() => {}), this.#feedIntervalMs);
      (this.#feedTimer as { unref?: () => void }).unref?.();
    }
    await Promise.all([this.refresh().catch(() => {}), this.readFeed().catch(() => {})]);
  }

  /** Reads the revocations announced by every instance (no-op without a feed). */
  async readFeed(): Promise<void> {
    if (!this.#feed) return;
    try {
      // Only ever added to: revocation is final, also when Valkey loses its data.
      for (const hash of await this.#feed.revoked()) this.#announced.add(hash);
      this.#feedFailing = false;
    } catch (err) {
      // Once per failure streak: Valkey being down is logged by its client already.
      if (!this.#feedFailing) this.#onError(err, "feed");
      this.#feedFailing = true;
      throw err;
    }
  }

  /** Stops the timer and waits for a refresh in flight. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    clearInterval(this.#feedTimer);
    this.#timer = undefined;
    this.#feedTimer = undefined;
    await this.#refreshing?.catch(() => {});
  }

  /** Reloads the whole map from ClickHouse (ticks that find one in flight share it). */
  refresh(): Promise<void> {
    this.#refreshing ??= this.#load().finally(() => (this.#refreshing = undefined));
    return this.#refreshing;
  }

  async create(input: NewKey): Promise<{ record: KeyRecord; key: string }> {
    const key = generateKey(input.type);
    const hash = hashKey(key);
    const now = new Date();
    const record: KeyRecord = {
      id: generateKeyId(),
      type: input.type,
      name: input.name ?? "",
      serviceId: input.type === "admin" ? null : input.serviceId,
      services: input.type === "admin" ? [...new Set(input.services)] : [],
      origins: input.type === "public" ? [...new Set(input.origins ?? [])] : [],
      createdAt: now.toISOString(),
      revokedAt: null,
      keyPrefix: keyPrefixOf(key),
    };
    await this.#client.insert({ table: "api_keys", values: [toRow(record, hash, now)], format: "JSONEachRow" });
    this.#byHash.set(hash, { hash, record });
    this.#guard.forget(hash);
    return { record, key };
  }

  async list(): Promise<KeyRecord[]> {
    const rows = await this.#query(`${LATEST_ROWS_SQL("")} ORDER BY created_at, id`, {});
    return rows.map(fromRow);
  }

  async revoke(id: string): Promise<boolean> {
    const [row] = await this.#query(LATEST_ROWS_SQL("WHERE id = {id:String}"), { id });
    if (!row) return false;
    if (row.revoked_at !== null) {
      // Revoked before, maybe by a call whose announcement failed: announce it (again).
      await this.#announce(row.key_hash);
      return true;
    }
    const now = new Date();
    // Another instance's clock may be ahead of ours; the revocation row must still be the newest
    // version for ReplacingMergeTree, or a merge would keep the active row.
    const updated = new Date(Math.max(now.getTime(), Date.parse(row.updated_at) + 1));
    const revoked = { ...fromRow(row), revokedAt: now.toISOString() };
    await this.#client.insert({ table: "api_keys", values: [toRow(revoked, row.key_hash, updated)], format: "JSONEachRow" });
    this.#put({ hash: row.key_hash, record: revoked });
    await this.#announce(row.key_hash);
    return true;
  }

  /**
   * Stored in ClickHouse already; other instances that reach it learn within a refresh. One that
   * does not would keep the key: a failed announcement is a 503, and the retry announces it.
   */
  async #announce(hash: string): Promise<void> {
    if (!this.#feed) return;
    try {
      await this.#feed.publish(hash);
    } catch (err) {
      this.#onError(err, "feed");
      throw new ApiError("unavailable", "The key is revoked in ClickHouse but other instances could not be told through Valkey; retry the revocation", { retryAfterSeconds: 5 });
    }
    this.#announced.add(hash);
  }

  async verify(presentedKey: string): Promise<KeyRecord | null> {
    if (keyTypeOf(presentedKey) === null) return null;
    const hash = hashKey(presentedKey);
    const entry = this.#byHash.get(hash) ?? (await this.#lookup(hash));
    // The map matched on the hash already; the explicit constant-time comparison keeps the check
    // of stored secrets free of timing leaks whatever structure finds the candidate.
    if (!entry || !constantTimeEqual(entry.hash, hash)) return null;
    return this.#active(entry) ? entry.record : null;
  }

  verifyKnown(presentedKey: string): KeyRecord | null | undefined {
    if (keyTypeOf(presentedKey) === null) return null;
    const hash = knownKeyHash(presentedKey);
    const entry = hash === undefined ? undefined : this.#byHash.get(hash);
    if (hash === undefined || entry === undefined) return undefined;
    if (!constantTimeEqual(entry.hash, hash)) return null;
    return this.#active(entry) ? entry.record : null;
  }

  #active(entry: Entry): boolean {
    return entry.record.revokedAt === null && !this.#announced.has(entry.hash);
  }

  publicOriginAllowed(origin: string): boolean {
    for (const entry of this.#byHash.values()) {
      if (entry.record.type === "public" && this.#active(entry) && originAllowed(entry.record.origins, origin)) return true;
    }
    return false;
  }

  async #load(): Promise<void> {
    try {
      const rows = await this.#query(LATEST_ROWS_SQL(""), {});
      const previous = this.#byHash;
      this.#byHash = new Map();
      for (const row of rows) this.#put({ hash: row.key_hash, record: fromRow(row) }, previous.get(row.key_hash));
      this.lastRefreshAt = Date.now();
    } catch (err) {
      this.#onError(err, "refresh");
      throw err;
    }
  }

  /**
   * Caches an entry unless this instance already knows the key as revoked. Revocation is final,
   * so a snapshot or lookup that started before a revocation (and lands after it) cannot bring
   * the key back, not even until the next refresh.
   */
  #put(entry: Entry, known = this.#byHash.get(entry.hash)): void {
    this.#byHash.set(entry.hash, known && known.record.revokedAt !== null ? known : entry);
  }

  #lookup(hash: string): Promise<Entry | null> {
    return this.#guard.lookup(hash, async () => {
      let rows: KeyRow[];
      try {
        rows = await this.#query(LATEST_ROWS_SQL("WHERE key_hash = {hash:String}"), { hash });
      } catch (err) {
        this.#onError(err, "lookup");
        throw new ApiError("unavailable", "The key store is unavailable; retry shortly", { retryAfterSeconds: 5 });
      }
      if (!rows[0]) return null;
      this.#put({ hash, record: fromRow(rows[0]) });
      return this.#byHash.get(hash)!;
    });
  }

  async #query(sql: string, params: Record<string, string>): Promise<KeyRow[]> {
    const result = await this.#client.query({ query: sql, query_params: params, format: "JSONEachRow" });
    return await result.json<KeyRow>();
  }
}
