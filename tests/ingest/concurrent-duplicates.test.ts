// The same event_id in two requests at once, with Valkey keeping the dedup claims (several
// instances share them): the second request meets the first one's claim while it is still pending
// (its rows not durable yet). It waits, bounded, for that claim to settle instead of answering 503
// at once: a client's retry racing its original, or a beacon sent twice, is `duplicate` when the
// original was stored and is stored when the original failed. A claim nobody settles (its request
// cut off with its process) still gets 503 once the wait is over.
// The writers here hold or fail their writes on purpose (fault injection); Valkey is the real one.
import { afterAll, expect, test } from "bun:test";
import Redis from "ioredis";
import { ApiError } from "../../src/errors.ts";
import { valkeyDedup } from "../../src/ingest/dedup.ts";
import { CLAIM_RETRY_DELAYS_MS, ingestItems, type IngestorDeps, type RowWriter } from "../../src/ingest/ingestor.ts";
import { decodeRecord, rowObject } from "../../src/ingest/rows.ts";
import { Sessionizer } from "../../src/ingest/sessions/sessionizer.ts";
import { memoryStateStore } from "../../src/ingest/sessions/state-store.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { freeDbPrefix } from "../setup/valkey.ts";

const clients: Redis[] = [];
afterAll(() => clients.forEach((c) => c.disconnect()));

/** A writer whose first write waits for `release` and then succeeds or fails as told (fault injection). */
function heldWriter() {
  const rows: string[] = [];
  let writes = 0;
  let release!: (outcome: "ok" | "fail") => void;
  const firstWrite = new Promise<"ok" | "fail">((resolve) => (release = resolve));
  const writer: RowWriter = {
    assertRoom() {},
    async write(records) {
      if (writes++ === 0 && (await firstWrite) === "fail") throw new ApiError("unavailable", "injected: rows not written", { retryAfterSeconds: 5 });
      rows.push(...records);
    },
  };
  return { writer, rows, release };
}

function setUp(writer: RowWriter) {
  const redis = new Redis(process.env.TEST_VALKEY_URL!);
  clients.push(redis);
  const prefix = `${freeDbPrefix()}:eid:`;
  const deps: IngestorDeps = {
    sessionizer: new Sessionizer(memoryStateStore()),
    dedup: valkeyDedup(redis, { prefix }),
    writer,
    metrics: createMetrics(),
    hashVisitor: () => "visitor",
    lookupCountry: () => null,
  };
  return { deps, redis, prefix };
}

const now = Date.now();
const ctx = { serviceId: "shop", keyType: "secret" as const, headers: new Headers(), socketIp: "8.8.8.8", receivedAt: now, trustProxy: false };
const item = (eventId: string) => ({ type: "event", name: "signup", event_id: eventId, timestamp: now - 60_000, anonymous_id: "twice", ip: "8.8.8.8", user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0" });
const eventRows = (rows: string[]) => rows.map((r) => decodeRecord(r)).filter((r) => r.table === "events");

test("fault injected (a held write): a request meeting another's pending claim on its event_id waits for it and is answered duplicate", async () => {
  const { writer, rows, release } = heldWriter();
  const { deps } = setUp(writer);
  const id = crypto.randomUUID();
  const first = ingestItems(deps, ctx, [item(id)]);
  await Bun.sleep(20); // the first request holds its claim, its write waiting
  const second = ingestItems(deps, ctx, [item(id)]);
  setTimeout(() => release("ok"), 150);
  const [a, b] = await Promise.all([first, second]);
  expect(a.accepted).toBe(1);
  expect(b.accepted).toBe(0);
  expect(b.dropped.map((d) => d.reason)).toEqual(["duplicate"]);
  expect(eventRows(rows)).toHaveLength(1);
});

test("fault injected (a held write that fails): the waiting request with the same event_id stores it", async () => {
  const { writer, rows, release } = heldWriter();
  const { deps } = setUp(writer);
  const id = crypto.randomUUID();
  const first = ingestItems(deps, ctx, [item(id)]).catch((e: unknown) => e);
  await Bun.sleep(20);
  const second = ingestItems(deps, ctx, [item(id)]);
  setTimeout(() => release("fail"), 150);
  const [a, b] = await Promise.all([first, second]);
  expect((a as ApiError).code).toBe("unavailable");
  expect(b.accepted).toBe(1);
  expect(eventRows(rows).map((r) => (rowObject("events", r.json) as { event_id: string }).event_id)).toEqual([id]);
});

test("a claim that stays pending (its request cut off with its process) is still answered 503 once the wait is over", async () => {
  const { writer, rows } = heldWriter();
  const { deps, redis, prefix } = setUp(writer);
  const id = crypto.randomUUID();
  await redis.set(`${prefix}shop:${id}`, "p:an-instance-that-died", "PX", 60_000);
  const started = performance.now();
  const refused = await ingestItems(deps, ctx, [item(id)]).catch((e: unknown) => e);
  const waited = performance.now() - started;
  expect(refused).toBeInstanceOf(ApiError);
  expect((refused as ApiError).code).toBe("unavailable");
  const total = CLAIM_RETRY_DELAYS_MS.reduce((a, b) => a + b, 0);
  expect(waited).toBeGreaterThanOrEqual(total - 5);
  expect(waited).toBeLessThan(total + 2_000);
  expect(rows).toEqual([]);
  // The claim it met is untouched: still the other instance's.
  expect(await redis.get(`${prefix}shop:${id}`)).toBe("p:an-instance-that-died");
});
