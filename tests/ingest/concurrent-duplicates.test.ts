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

// A durability audit killed Valkey between the spool write and the confirm: the confirm failed
// silently, the pending claim expired after 60 s, and a retry of that acknowledged item was stored
// a second time. A failed confirm is now tried again until it lands.
test("fault injected (confirms fail twice): the acknowledged item's claim is confirmed once Valkey answers again, so a retry is a duplicate", async () => {
  const rows: string[] = [];
  const { deps, redis, prefix } = setUp({ assertRoom() {}, write: async (r) => void rows.push(...r) });
  // The first pipeline is the request's claim; the next two (its confirm, and the first try
  // again) fail; every later one goes through.
  let pipelines = 0;
  let failing = 0;
  const flaky = new Proxy(redis, {
    get(target, name, receiver) {
      if (name !== "pipeline") return Reflect.get(target, name, receiver);
      return () => {
        const pipeline = target.pipeline();
        if (++pipelines === 1 || pipelines > 3) return pipeline;
        return Object.assign(pipeline, {
          exec: async () => {
            failing++;
            throw new Error("injected: Valkey gone");
          },
        });
      };
    },
  });
  deps.dedup = valkeyDedup(flaky, { prefix, confirmRetryMs: 50 });
  const id = crypto.randomUUID();
  const first = await ingestItems(deps, ctx, [item(id)]);
  expect(first.accepted).toBe(1); // acknowledged: the rows are written, the confirm failed
  expect(await redis.get(`${prefix}shop:${id}`)).toStartWith("p"); // still pending
  const deadline = Date.now() + 3_000;
  while ((await redis.get(`${prefix}shop:${id}`)) !== "1" && Date.now() < deadline) await Bun.sleep(20);
  expect([failing, await redis.get(`${prefix}shop:${id}`)]).toEqual([2, "1"]);
  expect((await redis.pttl(`${prefix}shop:${id}`)) > 60_000).toBe(true); // the dedup window, not the pending claim's
  const retry = await ingestItems(deps, ctx, [item(id)]);
  expect(retry.dropped.map((d) => d.reason)).toEqual(["duplicate"]);
  expect(eventRows(rows)).toHaveLength(1);
});

// The same audit: a claim that Valkey ran after the client had given up on it (paused past the
// command timeout) stayed pending, so the client's retry got 503 for ~60 s.
test("fault injected (a claim that runs in Valkey but answers as timed out): the request is refused, its claim is taken back, and the retry is stored at once", async () => {
  const rows: string[] = [];
  const { deps, redis, prefix } = setUp({ assertRoom() {}, write: async (r) => void rows.push(...r) });
  let lost = 0;
  const flaky = plannedPipelines(redis, (n) => (n === 1 ? (lost++, "lost") : "ok")); // only the first claim: what follows goes through
  deps.dedup = valkeyDedup(flaky, { prefix, owner: { id: "inst-1", journal: `${prefix}journal` } });
  const id = crypto.randomUUID();
  const first = await ingestItems(deps, ctx, [item(id)]).catch((e: unknown) => e);
  expect(first).toBeInstanceOf(Error);
  expect(lost).toBe(1); // the claim did run
  for (let i = 0; i < 50 && (await redis.get(`${prefix}shop:${id}`)) !== null; i++) await Bun.sleep(10);
  expect(await redis.get(`${prefix}shop:${id}`)).toBeNull();
  expect(await redis.hlen(`${prefix}journal`)).toBe(0);
  const retry = await ingestItems(deps, ctx, [item(id)]);
  expect([retry.accepted, retry.dropped]).toEqual([1, []]);
  expect(eventRows(rows)).toHaveLength(1);
});

/**
 * `redis` whose n-th pipeline (from 1) does what `plan(n)` says (fault injection): "ok"; "lost",
 * it runs and then answers as timed out; "errors", it is not run and answers each command with an
 * error, as ioredis's exec does when the connection goes (exec resolves: it does not throw).
 * `onExec` hears each pipeline's number of commands.
 */
function plannedPipelines(redis: Redis, plan: (n: number) => "ok" | "lost" | "errors", onExec?: (commands: number) => void): Redis {
  let n = 0;
  return new Proxy(redis, {
    get(target, name, receiver) {
      if (name !== "pipeline") return Reflect.get(target, name, receiver);
      return () => {
        const pipeline = target.pipeline();
        const exec = pipeline.exec.bind(pipeline);
        const what = plan(++n);
        return Object.assign(pipeline, {
          exec: async () => {
            onExec?.(pipeline.length);
            if (what === "ok") return exec();
            if (what === "errors") return Array.from({ length: pipeline.length }, () => [new Error("injected: Connection is closed."), null]);
            await exec();
            throw new Error("Command timed out"); // ioredis's commandTimeout, after the commands ran
          },
        });
      };
    },
  });
}

// The re-audit: with Valkey killed, a confirm's exec resolved with an error per command instead of
// throwing, so it was not tried again: 9–16 acknowledged items a run were stored twice on re-send.
test("fault injected (a confirm answered with an error per command): it is tried again until it lands", async () => {
  const rows: string[] = [];
  const { deps, redis, prefix } = setUp({ assertRoom() {}, write: async (r) => void rows.push(...r) });
  deps.dedup = valkeyDedup(plannedPipelines(redis, (n) => (n === 2 || n === 3 ? "errors" : "ok")), { prefix, confirmRetryMs: 50 });
  const id = crypto.randomUUID();
  expect((await ingestItems(deps, ctx, [item(id)])).accepted).toBe(1);
  for (let i = 0; i < 100 && (await redis.get(`${prefix}shop:${id}`)) !== "1"; i++) await Bun.sleep(20);
  expect(await redis.get(`${prefix}shop:${id}`)).toBe("1");
  expect((await ingestItems(deps, ctx, [item(id)])).dropped.map((d) => d.reason)).toEqual(["duplicate"]);
  expect(eventRows(rows)).toHaveLength(1);
});

// The re-audit: requests cut off by a kill of Valkey kept their claims pending (their release did
// not reach Valkey either), so retries got 503 for ~60 s.
test("fault injected (a claim that ran but got no answer, and a release that fails once): the release is tried again, and the retry is stored", async () => {
  const rows: string[] = [];
  const { deps, redis, prefix } = setUp({ assertRoom() {}, write: async (r) => void rows.push(...r) });
  deps.dedup = valkeyDedup(plannedPipelines(redis, (n) => (n === 1 ? "lost" : n === 2 ? "errors" : "ok")), { prefix, confirmRetryMs: 50 });
  const id = crypto.randomUUID();
  expect(await ingestItems(deps, ctx, [item(id)]).catch((e: unknown) => e)).toBeInstanceOf(Error);
  expect(await redis.get(`${prefix}shop:${id}`)).toStartWith("p"); // the claim ran; its first release failed
  for (let i = 0; i < 100 && (await redis.get(`${prefix}shop:${id}`)) !== null; i++) await Bun.sleep(20);
  expect(await redis.get(`${prefix}shop:${id}`)).toBeNull();
  const retry = await ingestItems(deps, ctx, [item(id)]);
  expect([retry.accepted, eventRows(rows).length]).toEqual([1, 1]);
});

// A durability audit: after Valkey restarted empty, the rebuild remembered 968k ids in one
// pipeline, which held Valkey for seconds; commands behind it timed out and the rebuild started
// over for 13 minutes. And a command answered with an error left an id unremembered, silently.
test("remembering many ids (a rebuild) goes in pipelines of at most 5,000, and one answered with errors fails it", async () => {
  const { redis, prefix } = setUp({ assertRoom() {}, write: async () => undefined });
  const sizes: number[] = [];
  const counting = plannedPipelines(redis, () => "ok", (commands) => sizes.push(commands));
  const keys = Array.from({ length: 12_000 }, (_, i) => `shop:${i}`);
  await valkeyDedup(counting, { prefix }).remember(keys);
  expect(sizes).toEqual([5_000, 5_000, 2_000]);
  expect(new Set(await redis.mget(...keys.map((k) => prefix + k)))).toEqual(new Set(["1"]));
  await expect(valkeyDedup(plannedPipelines(redis, (n) => (n === 2 ? "errors" : "ok")), { prefix: `${prefix}x:` }).remember(keys)).rejects.toThrow("injected");
});
