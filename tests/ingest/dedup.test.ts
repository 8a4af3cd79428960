// The in-process dedup: ids within the window and within the cap are duplicates; released ids are
// new again; past the cap the oldest generation is forgotten, the newest half always remembered.
import { expect, test } from "bun:test";
import { ApiError } from "../../src/errors.ts";
import { memoryDedup } from "../../src/ingest/dedup.ts";
import { ingestItems } from "../../src/ingest/ingestor.ts";
import { Sessionizer } from "../../src/ingest/sessions/sessionizer.ts";
import { memoryStateStore } from "../../src/ingest/sessions/state-store.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { storedEventIds } from "../../src/ingest/stored-ids.ts";
import { migratedDatabaseWithScratch } from "../helpers/clickhouse.ts";

const { ch } = migratedDatabaseWithScratch("dedup_lookup");

test("a claimed id is a duplicate until the window passes; a released one is new again", async () => {
  let t = 1_000;
  const d = memoryDedup({ windowMs: 100, now: () => t });
  expect(await d.claim(["a", "b", "a"])).toEqual([true, true, false]);
  expect(await d.claim(["a", "c"])).toEqual([false, true]);
  await d.release(["c"]);
  expect(await d.claim(["c"])).toEqual([true]);
  t += 100;
  expect(await d.claim(["a", "b"])).toEqual([true, true]);
});

test("remembered ids (warm-up) are duplicates and are not counted twice", async () => {
  const d = memoryDedup();
  await d.remember(["x", "y", "x"]);
  expect(d.size()).toBe(2);
  expect(await d.claim(["x", "y", "z"])).toEqual([false, false, true]);
});

test("past the cap the oldest ids go, a generation at a time; the newest half stays", async () => {
  const d = memoryDedup({ maxEntries: 1000 });
  const ids = Array.from({ length: 5000 }, (_, i) => `id-${i}`);
  for (const id of ids) expect(await d.claim([id])).toEqual([true]);
  expect(d.size()).toBeLessThanOrEqual(1000);
  expect(d.size()).toBeGreaterThanOrEqual(500);
  // The newest 500 are always remembered; the first ones were forgotten.
  expect(await d.claim(ids.slice(-500))).toEqual(Array(500).fill(false));
  expect(await d.claim(["id-0"])).toEqual([true]);
});

test("fault injected (a stored-id lookup that throws): an old back-filled item gets 503 and its claim is released", async () => {
  const dedup = memoryDedup();
  const written: string[][] = [];
  const deps = {
    sessionizer: new Sessionizer(memoryStateStore()),
    dedup,
    writer: { assertRoom() {}, write: async (r: string[]) => void written.push(r) },
    metrics: createMetrics(),
    hashVisitor: () => "visitor",
    lookupCountry: () => null,
    storedEventIds: async (): Promise<Set<string>> => {
      throw new Error("injected: ClickHouse unreachable");
    },
  };
  const now = Date.now();
  const ctx = { serviceId: "shop", keyType: "secret" as const, headers: new Headers(), socketIp: "8.8.8.8", receivedAt: now, trustProxy: false };
  const id = crypto.randomUUID();
  const old = { type: "event", name: "x", event_id: id, timestamp: now - 2 * 86_400_000, ip: "8.8.8.8", user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0" };
  const err = await ingestItems(deps, ctx, [old]).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ApiError);
  expect((err as ApiError).code).toBe("unavailable");
  expect(written).toEqual([]);
  expect(await dedup.claim([`shop:${id}`])).toEqual([true]); // released: a retry is not a duplicate
  // An item inside the window is not looked up: it is accepted whatever the lookup would do.
  const recent = await ingestItems(deps, ctx, [{ ...old, event_id: crypto.randomUUID(), timestamp: now - 60_000 }]);
  expect(recent.accepted).toBe(1);
});

// The durability audit: dozens of clients on a few visitors with the state in Valkey answered 500
// "session state kept changing under this request" once the compare-and-set had lost 16 times.
test("fault injected (a state store whose compare-and-set always loses): 503 unavailable with Retry-After, nothing written, the claim released", async () => {
  const dedup = memoryDedup();
  const written: string[][] = [];
  const store = memoryStateStore();
  let commits = 0;
  const deps = {
    sessionizer: new Sessionizer({ ...store, commit: async () => (commits++, false) }),
    dedup,
    writer: { assertRoom() {}, write: async (r: string[]) => void written.push(r) },
    metrics: createMetrics(),
    hashVisitor: () => "visitor",
    lookupCountry: () => null,
  };
  const ctx = { serviceId: "shop", keyType: "secret" as const, headers: new Headers(), socketIp: "8.8.8.8", receivedAt: Date.now(), trustProxy: false };
  const id = crypto.randomUUID();
  const err = await ingestItems(deps, ctx, [{ type: "event", name: "x", event_id: id }]).catch((e: unknown) => e);
  expect(err).toBeInstanceOf(ApiError);
  expect([(err as ApiError).status, (err as ApiError).code, (err as ApiError).extra.retryAfterSeconds]).toEqual([503, "unavailable", 1]);
  expect(commits).toBe(16);
  expect(written).toEqual([]);
  expect(await dedup.claim([`shop:${id}`])).toEqual([true]); // released: the retry is not a duplicate
});

test("a session item's event_id stays a duplicate after a restart: its row in session_items is what the warm-up reads", async () => {
  const { startTestService } = await import("../helpers/service.ts");
  const first = await startTestService();
  const key = await first.key({ type: "secret", service_id: "restart" });
  const eventId = crypto.randomUUID();
  const send = (s: typeof first) => Promise.resolve(s.app.request("/v1/ingest/session", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ event_id: eventId, url: "https://restart.example/", ip: "8.8.8.8", user_agent: "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0" }),
  })).then((r) => r.json() as Promise<{ accepted: number; dropped: Array<{ reason: string }> }>);
  try {
    expect((await send(first)).accepted).toBe(1);
    await first.flush();
  } finally {
    await first.dispose();
  }
  // A new process on the same database: its dedup window starts empty and is rebuilt from ClickHouse.
  const second = await startTestService({}, { database: first.database, migrate: false });
  try {
    const again = await send(second);
    expect([again.accepted, again.dropped[0]?.reason]).toEqual([0, "duplicate"]);
  } finally {
    await second.dispose();
  }
});

// The durability audit: with the window's ids lost (Valkey restarted empty), re-sent back-filled
// items were dropped as `duplicate` through the ClickHouse look-up, except session items, which
// the look-up skipped (it predates their session_items rows): stored twice, ghost sessions.
test("an item older than the window whose id ClickHouse holds is a duplicate, session items too", async () => {
  const now = Date.now();
  const time = now - 30 * 3_600_000;
  const ids = { session: crypto.randomUUID(), pageview: crypto.randomUUID() };
  const row = { service_id: "shop", timestamp: time, received_at: time, session_id: "s1", visitor_id: "v1", user_id: "", url: "https://shop.example/", path: "/" };
  await ch.client.insert({ table: "session_items", values: [{ ...row, event_id: ids.session }], format: "JSONEachRow" });
  await ch.client.insert({ table: "page_views", values: [{ ...row, event_id: ids.pageview }], format: "JSONEachRow", clickhouse_settings: { input_format_skip_unknown_fields: 1 } });
  const written: string[][] = [];
  const deps = {
    sessionizer: new Sessionizer(memoryStateStore()),
    dedup: memoryDedup(), // empty: the window remembers neither id
    writer: { assertRoom() {}, write: async (r: string[]) => void written.push(r) },
    metrics: createMetrics(),
    hashVisitor: () => "visitor",
    lookupCountry: () => null,
    storedEventIds: storedEventIds(ch.client),
  };
  const ctx = { serviceId: "shop", keyType: "secret" as const, headers: new Headers(), socketIp: "8.8.8.8", receivedAt: now, trustProxy: false };
  const common = { timestamp: time, ip: "8.8.8.8", user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0", url: "https://shop.example/" };
  const resent = await ingestItems(deps, ctx, [
    { type: "session", event_id: ids.session, ...common },
    { type: "pageview", event_id: ids.pageview, ...common },
    { type: "session", event_id: crypto.randomUUID(), ...common },
  ]);
  expect(resent.accepted).toBe(1); // only the id ClickHouse does not hold
  expect(resent.dropped.map((d) => [d.index, d.reason])).toEqual([[0, "duplicate"], [1, "duplicate"]]);
  expect(written.flat().join("\n")).not.toContain(ids.session);
});
