// The cache in front of the real routes, on the run's real Valkey: MISS then HIT, invalidation
// per (service, date), scopes never shared, Valkey stopped and restarted mid-test, single flight.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ClickHouseClient } from "@clickhouse/client-web";
import { MAX_CACHED_BODY } from "../../src/cache/cache-middleware.ts";
import type { Cache } from "../../src/cache/cache.ts";
import { valkeyCache } from "../../src/cache/valkey-cache.ts";
import { type Dataset, loadDataset } from "../query/fixtures/dataset.ts";
import { type QueryApp, queryApp } from "../query/fixtures/query-app.ts";
import { freeDbIndex, startValkey, stopValkey, valkeyUrl } from "../setup/valkey.ts";

const NOW = Date.UTC(2026, 3, 3, 12);
let data: Dataset;
let cache: Cache;
let q: QueryApp;
let queries = 0;

beforeAll(async () => {
  data = await loadDataset(30);
  cache = valkeyCache({ url: valkeyUrl(), db: freeDbIndex(), commandTimeoutMs: 200 });
  // Counts the statements the routes send (a spy on the real client, not a stand-in).
  const counting = new Proxy(data.db.client, {
    get(target, prop, receiver) {
      // The key store's refreshes (api_keys) run on a timer; only the routes' statements count.
      if (prop === "query") return (...args: Parameters<ClickHouseClient["query"]>) => (args[0].query.includes("api_keys") || queries++, target.query(...args));
      return Reflect.get(target, prop, receiver);
    },
  });
  q = await queryApp({ ...data.db, client: counting }, cache, NOW);
  await waitFor(async () => (await cache.versions("x", ["2026-01-01"])).length === 1);
}, 60_000);
afterAll(async () => {
  await startValkey();
  await q.stop();
  await cache.close();
  await data.db.close();
});

async function waitFor(check: () => Promise<boolean>, ms = 5_000) {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await Bun.sleep(25);
  }
  throw new Error("condition not met in time");
}

const get = (path: string, token = q.adminAll) => q.app.request(`http://x${path}`, { headers: { Authorization: `Bearer ${token}` } });
const BEHAVIOR = "/v1/behavior/summary?from=2026-03-29&to=2026-03-30&tz=Europe/Berlin";

describe("cached routes", () => {
  test("MISS then HIT with Age; the same body", async () => {
    const first = await get(`${BEHAVIOR}&service_id=alpha`);
    expect([first.status, first.headers.get("x-cache"), first.headers.get("age")]).toEqual([200, "MISS", "0"]);
    const second = await get(`${BEHAVIOR}&service_id=alpha`);
    expect([second.status, second.headers.get("x-cache")]).toEqual([200, "HIT"]);
    expect(Number(second.headers.get("age"))).toBeGreaterThanOrEqual(0);
    expect(await second.text()).toBe(await first.text());
    expect(second.headers.get("x-request-id")).toBeTruthy();
  });

  test("invalidate(service, date) misses for that service and date only", async () => {
    for (const service of ["alpha", "beta"]) await get(`${BEHAVIOR}&service_id=${service}`);
    const funnel = "/v1/funnels/signup?service_id=alpha&from=2026-03-01&to=2026-03-10";
    await get(funnel);
    expect((await get(funnel)).headers.get("x-cache")).toBe("HIT");
    // Berlin's 2026-03-29..30 reads UTC dates 03-28..03-30.
    expect(await cache.invalidate("alpha", ["2026-03-28"])).toBe(true);
    expect((await get(`${BEHAVIOR}&service_id=alpha`)).headers.get("x-cache")).toBe("MISS");
    expect((await get(`${BEHAVIOR}&service_id=beta`)).headers.get("x-cache")).toBe("HIT");
    expect((await get(funnel)).headers.get("x-cache")).toBe("HIT");
    expect((await get(`${BEHAVIOR}&service_id=alpha`)).headers.get("x-cache")).toBe("HIT");
  });

  test("two admin scopes never share an entry; every parameter is in the key", async () => {
    const path = "/v1/sessions/stats?service_id=alpha&from=2026-03-05&to=2026-03-20&interval=week";
    expect((await get(path, q.adminAll)).headers.get("x-cache")).toBe("MISS");
    expect((await get(path, q.keys.admin)).headers.get("x-cache")).toBe("MISS");
    expect((await get(path, q.keys.admin)).headers.get("x-cache")).toBe("HIT");
    expect((await get(`${path}&country=DE`, q.keys.admin)).headers.get("x-cache")).toBe("MISS");
    expect((await get(path.replace("week", "day"), q.keys.admin)).headers.get("x-cache")).toBe("MISS");
    // Out of scope: 403 even though an entry for this exact request exists.
    expect((await get(path, q.keys.adminOther)).status).toBe(403);
  });

  test("an answer longer than 256 KiB is computed every time, never cached", async () => {
    // A year of hourly points (zero-filled: ~8,800 of them) is ~750 KB of JSON.
    const path = "/v1/sessions/stats?service_id=alpha&from=2025-03-01&to=2026-02-28&interval=hour";
    const first = await get(path);
    expect(first.status).toBe(200);
    expect((await first.text()).length).toBeGreaterThan(MAX_CACHED_BODY);
    expect((await get(path)).headers.get("x-cache")).toBe("MISS");
  });

  test("50 concurrent identical misses run the queries once", async () => {
    const path = "/v1/behavior/summary?service_id=gamma&from=2026-03-06&to=2026-03-09";
    const before = queries;
    const responses = await Promise.all(Array.from({ length: 50 }, () => get(path)));
    const bodies = new Set(await Promise.all(responses.map((r) => r.text())));
    expect(responses.every((r) => r.status === 200)).toBe(true);
    expect(bodies.size).toBe(1);
    // One behaviour summary is 6 statements: pages, events, vitals, errors, the three session lists
    // (one read), and its session totals (over these 3 days from raw rows, one query; from a view
    // they would be two: session-metrics.ts).
    expect(queries - before).toBe(6);
  });
});

describe("Valkey down mid-test", () => {
  test("answers stay 200 and correct, in normal time; HIT again once it is back", async () => {
    const path = `${BEHAVIOR}&service_id=gamma&limit=3`;
    const good = await (await get(path)).text();
    await stopValkey("SIGKILL");
    try {
      for (const p of [path, "/v1/funnels/checkout?service_id=gamma", "/v1/sessions/stats?service_id=gamma&from=2026-03-01&to=2026-03-31"]) {
        const started = performance.now();
        const res = await get(p);
        expect(res.status).toBe(200);
        expect(res.headers.get("x-cache")).toBe("MISS");
        expect(performance.now() - started).toBeLessThan(2_000);
        if (p === path) expect(await res.text()).toBe(good);
      }
      expect(q.cacheResults.slice(-3).map(([, r]) => r)).toEqual(["error", "error", "error"]);
    } finally {
      await startValkey();
    }
    // The server came back empty: one MISS stores the answer, then HITs (after reconnecting).
    await waitFor(async () => (await get(path)).headers.get("x-cache") === "HIT");
    expect(await (await get(path)).text()).toBe(good);
  }, 20_000);
});
