// Buffers kept between uses (src/scratch-buffer.ts): the spool's commits, the flush's segment reads
// and its insert bodies reuse one buffer each instead of a fresh one per use. What must hold: a
// reused buffer never changes bytes someone may still read, and nothing written or inserted
// differs from what a fresh buffer gives.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ClickHouseClient } from "@clickhouse/client-web";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { groupRows } from "../../src/ingest/rows.ts";
import { ScratchBuffer } from "../../src/scratch-buffer.ts";
import { JsonEachRowBytes } from "../../src/storage/embedded/lent-bodies.ts";
import { insertRows } from "../../src/storage/insert-rows.ts";
import { createBatcher } from "../../src/spool/batcher.ts";
import { openSpool } from "../../src/spool/spool.ts";

const encoder = new TextEncoder();
const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");

describe("ScratchBuffer", () => {
  test("reuses its memory while sizes fit, grows when they do not, never keeps more than its cap", () => {
    const s = new ScratchBuffer(1 << 20);
    const a = s.take(1000);
    expect(a.byteLength).toBe(1000);
    const b = s.take(500);
    expect(b.byteLength).toBe(500);
    expect(b.buffer).toBe(a.buffer); // same memory
    const c = s.take(200_000);
    expect(c.byteLength).toBe(200_000);
    expect(c.buffer).not.toBe(a.buffer); // grew
    expect(s.keptBytes).toBeGreaterThanOrEqual(200_000);
    const kept = s.keptBytes;
    const huge = s.take(2 << 20); // over the cap: a one-off, the kept one stays
    expect(huge.byteLength).toBe(2 << 20);
    expect(s.keptBytes).toBe(kept);
    expect(s.take(10).buffer).toBe(c.buffer);
  });

  test("drop leaves the last buffer's bytes alone: the next take writes elsewhere", () => {
    const s = new ScratchBuffer(1 << 20);
    const first = s.take(4);
    first.set([1, 2, 3, 4]);
    s.drop();
    expect(s.keptBytes).toBe(0);
    s.take(4).fill(9);
    expect([...first]).toEqual([1, 2, 3, 4]);
  });
});

// A client that records each insert's lent bytes and fails the first one: a fake only to inject the
// fault (a timeout the client gave up on while the engine might still read the body).
function failingFirstInsertClient(): { client: ClickHouseClient; bodies: Uint8Array[] } {
  const bodies: Uint8Array[] = [];
  const client = {
    async insert({ values }: { values: unknown[] }) {
      bodies.push((values[0] as JsonEachRowBytes).bytes);
      if (bodies.length === 1) throw new Error("injected: request timed out");
      return { executed: true, query_id: "q", summary: undefined };
    },
  } as unknown as ClickHouseClient;
  return { client, bodies };
}

const record = (id: number, name: string) => `events|s|2026-11-28|${JSON.stringify({ event_id: id, name })}`;
const grouped = (...records: string[]) => groupRows([encoder.encode(records.join("\n"))]);

describe("insert bodies in a kept buffer (fault injected by a fake client)", () => {
  test("an insert that failed keeps its body's bytes: the next insert builds its body elsewhere", async () => {
    const { client, bodies } = failingFirstInsertClient();
    const bodyBuffer = new ScratchBuffer(1 << 20);
    await expect(insertRows(client, grouped(record(1, "first"), record(2, "first too")), { bodyBuffer })).rejects.toThrow(/injected/);
    const failedText = text(bodies[0]!);
    await insertRows(client, grouped(record(3, "second, longer than the first body was")), { bodyBuffer });
    expect(text(bodies[0]!)).toBe(failedText); // still what the failed insert was given
    expect(text(bodies[1]!)).toBe(`${JSON.stringify({ event_id: 3, name: "second, longer than the first body was" })}\n`);
    // After a success the buffer is kept: the third body reuses the second's memory.
    await insertRows(client, grouped(record(4, "third")), { bodyBuffer });
    expect(bodies[2]!.buffer).toBe(bodies[1]!.buffer);
    expect(text(bodies[2]!)).toBe(`${JSON.stringify({ event_id: 4, name: "third" })}\n`);
  });
});

describe("the spool and the batcher with kept buffers", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), "kept-buffers-"));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  test("commits of growing and shrinking sizes read back exactly, and a retried segment's records survive the retry", async () => {
    const spool = await openSpool({ dir: path.join(dir, "spool"), capBytes: 1 << 30, fsync: false });
    const sizes = [10, 70_000, 3, 200_000, 1, 5_000];
    const written: string[][] = [];
    for (const [i, n] of sizes.entries()) {
      const batch = [`${i}:${"x".repeat(n)}`, `${i}:tail`];
      written.push(batch);
      await Promise.all(batch.map((r) => spool.append([r])));
      await spool.seal();
    }
    const delivered: string[][] = [];
    let calls = 0;
    const batcher = createBatcher({
      spool,
      flushIntervalMs: 60_000,
      backoff: { baseMs: 1, maxMs: 1 },
      logger: { info() {}, warn() {}, error() {} },
      sink: async ({ records }) => {
        // The second segment fails once: its records are kept for the retry while nothing else is read.
        if (++calls === 2) throw new Error("injected: sink down");
        delivered.push(records.map(text));
      },
    });
    for (let i = 0; i < 5 && delivered.length < sizes.length; i++) await batcher.flush().catch(() => {});
    await batcher.close();
    expect(delivered).toEqual(written);
    await spool.close();
  });
});
