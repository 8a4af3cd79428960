import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ClickHouseClient } from "@clickhouse/client-web";
import { generateKey, hashKey } from "../../src/auth/key-format.ts";
import { ClickHouseKeyStore } from "../../src/auth/key-store.ts";
import { ApiError } from "../../src/errors.ts";
import type { ClickHouse } from "../../src/storage/clickhouse.ts";
import { keysDatabase } from "./keys-db.ts";
import Redis from "ioredis";
import { REVOKED_KEYS, valkeyRevocationFeed } from "../../src/auth/revocation-feed.ts";
import { freeDbPrefix, valkeyUrl } from "../setup/valkey.ts";

let ch: ClickHouse;
const stores: ClickHouseKeyStore[] = [];

beforeAll(async () => {
  ({ ch } = await keysDatabase());
});
afterAll(async () => {
  await Promise.all(stores.map((s) => s.stop()));
  await ch.close();
});

function store(opts: Partial<ConstructorParameters<typeof ClickHouseKeyStore>[0]> = {}): ClickHouseKeyStore {
  const s = new ClickHouseKeyStore({ client: ch.client, ...opts });
  stores.push(s);
  return s;
}

/** The client, counting the queries that go through it and failing them while `down` is set. */
function observed(client: ClickHouseClient) {
  const state = { queries: 0, down: false };
  const proxy = new Proxy(client, {
    get(target, prop, receiver) {
      if (prop === "query") {
        return (...args: Parameters<ClickHouseClient["query"]>) => {
          state.queries++;
          if (state.down) return Promise.reject(new Error("injected: ClickHouse is down"));
          return target.query(...args);
        };
      }
      const value = Reflect.get(target, prop, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  });
  return { client: proxy, state };
}

describe("ClickHouseKeyStore", () => {
  test("create, verify, list and revoke", async () => {
    const s = store();
    const { record, key } = await s.create({ type: "public", serviceId: "shop", origins: ["https://shop.example"], name: "web" });
    expect(record).toMatchObject({ type: "public", serviceId: "shop", services: [], origins: ["https://shop.example"], name: "web", revokedAt: null });
    expect(record.keyPrefix).toBe(key.slice(0, 8));
    expect(await s.verify(key)).toEqual(record);

    const admin = await s.create({ type: "admin", services: ["shop", "blog", "shop"] });
    expect(admin.record.services).toEqual(["shop", "blog"]);
    expect(admin.record.serviceId).toBeNull();

    const listed = await s.list();
    expect(listed.map((r) => r.id)).toEqual(expect.arrayContaining([record.id, admin.record.id]));
    expect(JSON.stringify(listed)).not.toContain(key);
    expect(JSON.stringify(listed)).not.toContain(await hashKey(key));

    expect(await s.revoke(record.id)).toBe(true);
    expect(await s.verify(key)).toBeNull();
    expect(await s.revoke(record.id)).toBe(true); // idempotent
    expect(await s.revoke("key_doesnotexist0000")).toBe(false);
    expect((await s.list()).find((r) => r.id === record.id)?.revokedAt).toBeString();
  });

  test("only hashes are at rest", async () => {
    const s = store();
    const { key } = await s.create({ type: "secret", serviceId: "shop" });
    const rows = await (await ch.client.query({ query: "SELECT * FROM api_keys", format: "JSONEachRow" })).json<Record<string, unknown>>();
    const text = JSON.stringify(rows);
    expect(text).not.toContain(key);
    expect(text).not.toContain(key.slice(3)); // nor the random part without its prefix
    expect(text).toContain(await hashKey(key));
  });

  test("two instances: a key made on one works on the other at once; a revocation reaches it on refresh", async () => {
    const a = store();
    const b = store();
    await Promise.all([a.start(), b.start()]);
    const { record, key } = await a.create({ type: "secret", serviceId: "shop" });
    expect((await b.verify(key))?.id).toBe(record.id); // direct lookup, before any refresh

    expect(await a.revoke(record.id)).toBe(true);
    expect(await a.verify(key)).toBeNull();
    expect(await b.verify(key)).not.toBeNull(); // b still has its cached copy
    await b.refresh();
    expect(await b.verify(key)).toBeNull();
  });

  test("the timer refreshes every interval", async () => {
    const a = store();
    const b = store({ refreshIntervalMs: 50 });
    await b.start();
    const { record, key } = await a.create({ type: "public", serviceId: "shop" });
    expect(await b.verify(key)).not.toBeNull();
    await a.revoke(record.id);
    const deadline = Date.now() + 5_000;
    while ((await b.verify(key)) !== null && Date.now() < deadline) await Bun.sleep(20);
    expect(await b.verify(key)).toBeNull();
  });

  test("a revocation stays final even when the revoking clock is behind", async () => {
    const s = store();
    const { record, key } = await s.create({ type: "secret", serviceId: "shop" });
    // Simulate an instance with a fast clock having written a later version of the active row.
    await ch.client.command({
      query: "INSERT INTO api_keys SELECT id, type, key_hash, key_prefix, name, service_id, services, origins, created_at, revoked_at, updated_at + INTERVAL 1 HOUR FROM api_keys WHERE id = {id:String}",
      query_params: { id: record.id },
    });
    expect(await s.revoke(record.id)).toBe(true);
    await ch.client.command({ query: "OPTIMIZE TABLE api_keys FINAL" });
    const fresh = store();
    await fresh.refresh();
    expect(await fresh.verify(key)).toBeNull();
  });

  test("garbage keys: malformed ones cost no query, unknown ones one per hash, and a global cap holds", async () => {
    const { client, state } = observed(ch.client);
    // A frozen clock: the budget is per second, and a real one could roll over mid-test.
    const s = store({ client, lookupsPerSecond: 3, now: () => 1_700_000_000_000 });
    expect(await s.verify("not-a-key")).toBeNull();
    expect(await s.verify(`pk_${"x".repeat(10)}`)).toBeNull();
    expect(state.queries).toBe(0);

    const unknown = generateKey("public");
    expect(await s.verify(unknown)).toBeNull();
    expect(await s.verify(unknown)).toBeNull();
    await Promise.all([s.verify(unknown), s.verify(unknown)]);
    expect(state.queries).toBe(1);

    expect(await s.verify(generateKey("secret"))).toBeNull();
    expect(await s.verify(generateKey("admin"))).toBeNull();
    expect(state.queries).toBe(3);
    const capped = await s.verify(generateKey("public")).catch((e: unknown) => e);
    expect(capped).toBeInstanceOf(ApiError);
    expect((capped as ApiError).status).toBe(503);
    expect(state.queries).toBe(3);
  });

  test("concurrent verifies of one new key share one lookup", async () => {
    const { client, state } = observed(ch.client);
    const maker = store();
    const { key } = await maker.create({ type: "public", serviceId: "shop" });
    const s = store({ client });
    const results = await Promise.all(Array.from({ length: 10 }, () => s.verify(key)));
    expect(results.every((r) => r !== null)).toBe(true);
    expect(state.queries).toBe(1);
    await s.verify(key);
    expect(state.queries).toBe(1); // cached now
  });

  test("ClickHouse down: known keys still verify, unknown ones answer 503 (not 401)", async () => {
    const { client, state } = observed(ch.client);
    const errors: string[] = [];
    const s = store({ client, onError: (_e, during) => errors.push(during) });
    const { key } = await store().create({ type: "secret", serviceId: "shop" });
    await s.start();
    expect(s.lastRefreshAt).not.toBeNull();
    state.down = true;
    await expect(s.refresh()).rejects.toThrow("injected");
    expect(await s.verify(key)).not.toBeNull();
    const err = await s.verify(generateKey("secret")).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe("unavailable");
    expect(errors).toEqual(["refresh", "lookup"]);
  });

  // The security audit: instance b could not reach ClickHouse when a revoked its key, so it kept
  // accepting the key (ingest into the spool, cached answers from Valkey) for the whole outage.
  test("with a real Valkey feed, a revocation reaches an instance whose ClickHouse is down (fault injected)", async () => {
    const redis = new Redis(valkeyUrl(), { keyPrefix: `${freeDbPrefix()}:` });
    try {
      const feed = valkeyRevocationFeed(redis);
      const a = store({ revocations: feed });
      const { client, state } = observed(ch.client);
      const b = store({ client, revocations: feed, feedIntervalMs: 50 });
      await Promise.all([a.start(), b.start()]);
      const admin = await a.create({ type: "admin", services: ["shop"] });
      const ingest = await a.create({ type: "public", serviceId: "shop", origins: ["https://shop.example"] });
      for (const { key } of [admin, ingest]) expect(await b.verify(key)).not.toBeNull();
      state.down = true;
      await expect(b.refresh()).rejects.toThrow("injected");

      await a.revoke(admin.record.id);
      await a.revoke(ingest.record.id);
      const deadline = Date.now() + 5_000;
      // Both revocations, which b may read in two polls (one may land between them).
      const stillActive = async () => (await b.verify(admin.key)) !== null || (await b.verify(ingest.key)) !== null;
      while ((await stillActive()) && Date.now() < deadline) await Bun.sleep(20);
      for (const { key } of [admin, ingest]) {
        expect(await b.verify(key)).toBeNull();
        expect(b.verifyKnown(key)).toBeNull();
      }
      expect(b.publicOriginAllowed("https://shop.example")).toBe(false);
      // Final, even when Valkey loses the set and ClickHouse is still out of reach.
      await redis.del(REVOKED_KEYS);
      await b.readFeed();
      expect(await b.verify(admin.key)).toBeNull();
    } finally {
      redis.disconnect();
    }
  });

  test("a revocation whose announcement fails is a 503, and revoking again announces it", async () => {
    const published: string[] = [];
    let down = true;
    const feed = {
      publish: async (h: string) => {
        if (down) throw new Error("injected: Valkey is down");
        published.push(h);
      },
      revoked: async () => published,
    };
    const a = store({ revocations: feed });
    const { record, key } = await a.create({ type: "secret", serviceId: "shop" });
    const err = await a.revoke(record.id).catch((e: unknown) => e);
    expect((err as ApiError).code).toBe("unavailable");
    expect(await a.verify(key)).toBeNull(); // stored, and in force here
    down = false;
    expect(await a.revoke(record.id)).toBe(true);
    expect(published).toEqual([await hashKey(key)]);
  });

  test("publicOriginAllowed looks at active public keys only", async () => {
    const s = store();
    const origin = `https://${crypto.randomUUID()}.example`;
    expect(s.publicOriginAllowed(origin)).toBe(false);
    const { record } = await s.create({ type: "public", serviceId: "shop", origins: [origin] });
    expect(s.publicOriginAllowed(origin)).toBe(true);
    await s.revoke(record.id);
    expect(s.publicOriginAllowed(origin)).toBe(false);
  });
});
