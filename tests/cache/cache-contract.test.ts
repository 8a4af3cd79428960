// The Cache contract, run against both implementations: Valkey (the test run's real server) and
// the in-process one.
import { afterAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import type { Cache } from "../../src/cache/cache.ts";
import { versionKey } from "../../src/cache/cache.ts";
import { memoryCache } from "../../src/cache/memory-cache.ts";
import { valkeyCache } from "../../src/cache/valkey-cache.ts";
import { freeDbIndex, valkeyUrl } from "../setup/valkey.ts";

const valkeyDb = freeDbIndex();
const opened: Cache[] = [];
afterAll(async () => {
  for (const c of opened) await c.close();
});

const IMPLEMENTATIONS: Array<[string, () => Cache]> = [
  ["valkey", () => valkeyCache({ url: valkeyUrl(), db: valkeyDb, commandTimeoutMs: 500 })],
  ["memory", () => memoryCache()],
];

async function ready(cache: Cache): Promise<Cache> {
  opened.push(cache);
  // A fresh ioredis client connects in the background; commands fail fast until it has.
  for (let i = 0; i < 100; i++) {
    try {
      await cache.versions("probe", ["2026-01-01"]);
      return cache;
    } catch {
      await Bun.sleep(20);
    }
  }
  throw new Error("cache never became ready");
}

for (const [name, make] of IMPLEMENTATIONS) {
  describe(`${name} cache`, () => {
    test("get after set; unknown keys miss", async () => {
      const cache = await ready(make());
      const key = `analytics:test:${name}:${crypto.randomUUID()}`;
      expect(await cache.get(key)).toBeUndefined();
      await cache.set(key, { body: '{"a":"line\\nbreak ✓"}', storedAt: 1234 }, 60);
      expect(await cache.get(key)).toEqual({ body: '{"a":"line\\nbreak ✓"}', storedAt: 1234 });
    });

    test("entries expire after their TTL", async () => {
      const cache = await ready(make());
      const key = `analytics:test:${name}:${crypto.randomUUID()}`;
      await cache.set(key, { body: "x", storedAt: 1 }, 1);
      expect(await cache.get(key)).toBeDefined();
      await Bun.sleep(1_100);
      expect(await cache.get(key)).toBeUndefined();
    });

    test("invalidate bumps the counters of those (service, date) pairs only", async () => {
      const cache = await ready(make());
      const service = `svc-${crypto.randomUUID().slice(0, 8)}`;
      expect(await cache.versions(service, ["2026-03-01", "2026-03-02"])).toEqual([0, 0]);
      expect(await cache.invalidate(service, ["2026-03-02", "2026-03-02"])).toBe(true);
      expect(await cache.versions(service, ["2026-03-01", "2026-03-02"])).toEqual([0, 1]);
      await cache.invalidate(service, ["2026-03-02", "2026-03-03"]);
      expect(await cache.versions(service, ["2026-03-01", "2026-03-02", "2026-03-03"])).toEqual([0, 2, 1]);
      expect(await cache.versions(`${service}-other`, ["2026-03-02"])).toEqual([0]);
      expect(await cache.versions(service, [])).toEqual([]);
    });
  });
}

test("valkey: counters live under analytics:ver:{service}:{date} with an expiry", async () => {
  const cache = await ready(valkeyCache({ url: valkeyUrl(), db: valkeyDb }));
  await cache.invalidate("shop", ["2026-03-05"]);
  const redis = new Redis(valkeyUrl(), { db: valkeyDb, lazyConnect: true });
  await redis.connect();
  expect(Number(await redis.get(versionKey("shop", "2026-03-05")))).toBeGreaterThan(0);
  expect(await redis.ttl("analytics:ver:shop:2026-03-05")).toBeGreaterThan(86_400);
  redis.disconnect();
});

test("memory: least recently used entries go first when full", async () => {
  const cache = memoryCache({ maxEntries: 2 });
  await cache.set("a", { body: "a", storedAt: 0 }, 60);
  await cache.set("b", { body: "b", storedAt: 0 }, 60);
  await cache.get("a");
  await cache.set("c", { body: "c", storedAt: 0 }, 60);
  expect([await cache.get("a"), await cache.get("b"), await cache.get("c")].map((v) => v?.body)).toEqual(["a", undefined, "c"]);
});

test("memory: forgetting a version counter drops the entries, bumping a known one does not", async () => {
  const cache = memoryCache({ maxVersions: 2 });
  await cache.invalidate("shop", ["2026-03-01", "2026-03-02"]);
  await cache.set("k", { body: "x", storedAt: 0 }, 60);
  // Known counters: entries stay (their keys carry the versions they were computed under).
  await cache.invalidate("shop", ["2026-03-01"]);
  expect((await cache.get("k"))?.body).toBe("x");
  expect(await cache.versions("shop", ["2026-03-01", "2026-03-02"])).toEqual([2, 1]);
  // A third counter pushes out the least recently bumped one (03-02), which would read 0 again.
  await cache.invalidate("shop", ["2026-03-03"]);
  expect(await cache.versions("shop", ["2026-03-01", "2026-03-02", "2026-03-03"])).toEqual([2, 0, 1]);
  expect(await cache.get("k")).toBeUndefined();
});

test("memory: bounded in bytes too; the least recently used bodies go first", async () => {
  const cache = memoryCache({ maxBytes: 3_000 });
  for (const k of ["a", "b", "c"]) await cache.set(k, { body: k.repeat(1_000), storedAt: 0 }, 60);
  expect(await cache.get("a")).toBeDefined(); // a is now the most recently used
  await cache.set("d", { body: "d".repeat(1_500), storedAt: 0 }, 60);
  // 4,500 bytes would be over: b then c (the least recently used) went.
  expect([await cache.get("b"), await cache.get("c")]).toEqual([undefined, undefined]);
  expect((await cache.get("a"))?.body).toHaveLength(1_000);
  expect((await cache.get("d"))?.body).toHaveLength(1_500);
  // Replacing an entry counts its new size only.
  for (let i = 0; i < 10; i++) await cache.set("a", { body: "a".repeat(1_000), storedAt: i }, 60);
  expect((await cache.get("d"))?.body).toHaveLength(1_500);
});

test("memory: an expired entry is a miss and is forgotten", async () => {
  let t = 1_000;
  const cache = memoryCache({ now: () => t });
  await cache.set("k", { body: "x", storedAt: 0 }, 10);
  t += 9_999;
  expect((await cache.get("k"))?.body).toBe("x");
  t += 1;
  expect(await cache.get("k")).toBeUndefined();
});

test("valkey unreachable: reads reject at once, invalidate resolves false", async () => {
  const cache = valkeyCache({ url: "redis://127.0.0.1:1", db: 0 });
  opened.push(cache);
  const started = performance.now();
  await expect(cache.get("k")).rejects.toThrow();
  await expect(cache.versions("s", ["2026-01-01"])).rejects.toThrow();
  expect(await cache.invalidate("s", ["2026-01-01"])).toBe(false);
  expect(performance.now() - started).toBeLessThan(500);
});
