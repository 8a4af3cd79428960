// ingestItems when the rows cannot be written after the session state was committed (a full
// spool, or ClickHouse down with ACK_MODE=insert): the state goes back to what the stored rows
// say, so the client's retry writes a first state, not a cancel row for a state never stored.
// The writers here are fakes that fail on purpose (fault injection); the state stores are the
// real in-process one and the real Valkey one.
import { afterAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import { ApiError } from "../../src/errors.ts";
import { memoryDedup } from "../../src/ingest/dedup.ts";
import { ingestItems, type IngestorDeps, type RowWriter } from "../../src/ingest/ingestor.ts";
import { decodeRecord, rowObject } from "../../src/ingest/rows.ts";
import { Sessionizer } from "../../src/ingest/sessions/sessionizer.ts";
import { memoryStateStore, valkeyStateStore, type StateStore } from "../../src/ingest/sessions/state-store.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { freeDbPrefix } from "../setup/valkey.ts";

const clients: Redis[] = [];
afterAll(() => {
  for (const c of clients) c.disconnect();
});

/** A writer that fails its next `failures` writes with 503 and records what it took. */
function flakyWriter(failures: number): RowWriter & { rows: string[] } {
  const rows: string[] = [];
  return {
    rows,
    assertRoom() {},
    async write(records) {
      if (failures-- > 0) throw new ApiError("unavailable", "injected: rows not written", { retryAfterSeconds: 5 });
      rows.push(...records);
    },
  };
}

function deps(store: StateStore, writer: RowWriter): IngestorDeps {
  return {
    sessionizer: new Sessionizer(store),
    dedup: memoryDedup(),
    writer,
    metrics: createMetrics(),
    hashVisitor: () => "visitor",
    lookupCountry: () => null,
  };
}

const stores: Array<[string, () => StateStore]> = [
  ["in process", () => memoryStateStore()],
  ["Valkey", () => {
    const redis = new Redis(process.env.TEST_VALKEY_URL!);
    clients.push(redis);
    return valkeyStateStore(redis, `${freeDbPrefix()}:`);
  }],
];

describe("fault injected (a writer that fails): a write that fails after the session state changed", () => {
  for (const [name, makeStore] of stores) {
    test(`${name}: the retry writes one first state, and the next item builds on it`, async () => {
      const writer = flakyWriter(1);
      const d = deps(makeStore(), writer);
      const now = Date.now();
      const ctx = { serviceId: "shop", keyType: "secret" as const, headers: new Headers(), socketIp: "8.8.8.8", receivedAt: now, trustProxy: false };
      const who = { anonymous_id: "retry-visitor", ip: "8.8.8.8", user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0" };
      const batch = [0, 1, 2].map((i) => ({ type: "event", name: "x", event_id: crypto.randomUUID(), timestamp: now - 60_000 + i * 1000, ...who }));

      const failed = await ingestItems(d, ctx, batch).catch((e: unknown) => e);
      expect((failed as ApiError).code).toBe("unavailable");
      expect(writer.rows).toEqual([]);
      for (const collect of d.metrics.collectors) collect();
      expect(await d.metrics.registry.metrics()).toContain('ingest_items_total{type="event",outcome="unavailable"} 3');

      const retried = await ingestItems(d, ctx, batch);
      expect(retried.accepted).toBe(3);
      const sessionRows = () => writer.rows.map((r) => decodeRecord(r)).filter((r) => r.table === "sessions").map((r) => rowObject("sessions", r.json) as { sign: number; version: number; events: number });
      // One state, the first: no cancel row for the state the failed attempt computed.
      expect(sessionRows().map((r) => [r.sign, r.version, r.events])).toEqual([[1, 3, 3]]);

      const next = await ingestItems(d, ctx, [{ type: "event", name: "y", timestamp: now - 50_000, ...who }]);
      expect(next.session_ids).toEqual([retried.session_ids[0]!]);
      expect(sessionRows().slice(1).map((r) => [r.sign, r.version, r.events])).toEqual([[-1, 3, 3], [1, 4, 4]]);
    });
  }
});
