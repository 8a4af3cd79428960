import { afterEach, describe, expect, test } from "bun:test";
import { backoffDelay, createBatcher, type SinkBatch } from "../../src/spool/batcher.ts";
import { openSpool, type Spool } from "../../src/spool/spool.ts";
import { recordingLogger, removeTempDirs, segmentFiles, tempDir, texts } from "./support.ts";

afterEach(removeTempDirs);

const MiB = 1024 * 1024;
const NEVER = 3_600_000; // timers never fire during a test: passes come from flush()
const NO_RETRY = { baseMs: NEVER, maxMs: NEVER };

/** A sink that fails its first `failures` calls, remembers every call, and delivers the rest. */
function flakySink(failures = 0) {
  const calls: { token: string; records: string[]; ok: boolean }[] = [];
  const delivered: string[] = [];
  let active = 0;
  let maxActive = 0;
  const sink = async (batch: SinkBatch) => {
    maxActive = Math.max(maxActive, ++active);
    await Promise.resolve();
    active--;
    const ok = calls.filter((c) => !c.ok).length >= failures;
    calls.push({ token: batch.token, records: texts(batch.records), ok });
    if (!ok) throw new Error("sink down");
    delivered.push(...texts(batch.records));
  };
  return { sink, calls, delivered, maxActive: () => maxActive };
}

async function freshSpool(dir = tempDir()): Promise<Spool> {
  return openSpool({ dir, capBytes: 16 * MiB, logger: recordingLogger() });
}

describe("delivery", () => {
  test("append, flush: the sink gets every record once, in order, and the segment is removed", async () => {
    const spool = await freshSpool();
    const { sink, delivered, calls } = flakySink();
    const flushed: number[] = [];
    const batcher = createBatcher({ spool, sink, flushIntervalMs: NEVER, logger: recordingLogger(), onFlushed: (r) => flushed.push(r.length) });
    const ids = Array.from({ length: 500 }, (_, i) => `e${i}`);
    await Promise.all(ids.map((id) => spool.append([id])));
    await batcher.flush();
    expect(delivered).toEqual(ids);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.token).toMatch(new RegExp(`^spool-${spool.id}-\\d+-[0-9a-f]{8}$`));
    expect(flushed).toEqual([500]);
    expect(spool.sealedSegments()).toHaveLength(0);
    expect(segmentFiles(spool.dir)).toHaveLength(1); // only the (empty) active segment
    expect(batcher.stats()).toMatchObject({ flushes: 1, rowsFlushed: 500, sinkErrors: 0, pendingSegments: 0, pendingBytes: 0 });
    await batcher.close();
    await spool.close();
  });

  test("several segments go oldest first, one at a time, each with its own token", async () => {
    const spool = await openSpool({ dir: tempDir(), capBytes: MiB, segmentBytes: 40, logger: recordingLogger() });
    const { sink, delivered, calls, maxActive } = flakySink();
    const batcher = createBatcher({ spool, sink, flushIntervalMs: NEVER, logger: recordingLogger() });
    const ids = Array.from({ length: 30 }, (_, i) => `record-${i}`);
    for (const id of ids) await spool.append([id]);
    await batcher.flush();
    expect(delivered).toEqual(ids);
    expect(calls.length).toBeGreaterThan(5);
    expect(new Set(calls.map((c) => c.token)).size).toBe(calls.length);
    expect(maxActive()).toBe(1);
    await batcher.close();
    await spool.close();
  });

  test("a flush called while another runs still covers what was appended before it", async () => {
    const spool = await freshSpool();
    const { sink, delivered } = flakySink();
    const batcher = createBatcher({ spool, sink, flushIntervalMs: NEVER, logger: recordingLogger() });
    await spool.append(["first"]);
    const one = batcher.flush();
    await spool.append(["second"]);
    const two = batcher.flush();
    await Promise.all([one, two]);
    expect(delivered).toEqual(["first", "second"]);
    await batcher.close();
    await spool.close();
  });

  test("reaching sealBytes starts a pass without waiting for the timer", async () => {
    const spool = await freshSpool();
    let resolveDelivered!: () => void;
    const arrived = new Promise<void>((r) => (resolveDelivered = r));
    const batcher = createBatcher({ spool, sink: async () => resolveDelivered(), flushIntervalMs: NEVER, sealBytes: 1000, logger: recordingLogger() });
    await batcher.flush(); // the start-up pass, so the next one can only come from size
    for (let i = 0; i < 20; i++) await spool.append(["x".repeat(92)]);
    await arrived;
    await batcher.close();
    await spool.close();
  });
});

describe("pace", () => {
  // A timing test, with wide margins: a sink that takes 300 ms under a 400 ms interval. Counted
  // from the end of a flush the next would start ~700 ms after the previous one started; counted
  // start to start, ~400 ms. Several flushes in a row, so one late timer on a busy machine does not
  // decide it.
  test("the timer paces flushes start to start, so a slow flush does not stretch the interval", async () => {
    const spool = await freshSpool();
    const starts: number[] = [];
    const sink = async () => {
      starts.push(performance.now());
      await Bun.sleep(300);
    };
    const feeding = setInterval(() => void spool.append([`e${starts.length}`]).catch(() => {}), 20);
    const batcher = createBatcher({ spool, sink, flushIntervalMs: 400, logger: recordingLogger() });
    while (starts.length < 6) await Bun.sleep(50);
    clearInterval(feeding);
    await batcher.close();
    await spool.close();
    const gaps = starts.slice(2, 6).map((t, i) => t - starts[i + 1]!).sort((a, b) => a - b);
    expect(gaps[1]!).toBeLessThan(600); // the median-ish gap: ~400 start to start, ~700 end to start
  });
});

describe("sink failures", () => {
  test("failing N times then succeeding: flush rejects N times, the token never changes, rows arrive once", async () => {
    const spool = await freshSpool();
    const { sink, delivered, calls } = flakySink(3);
    const logger = recordingLogger();
    const seen = { errors: 0, flushed: [] as number[][] };
    const metrics = { sinkError: () => void seen.errors++, flushed: (rows: number, bytes: number, ms: number) => void seen.flushed.push([rows, bytes, ms]) };
    const batcher = createBatcher({ spool, sink, flushIntervalMs: NEVER, backoff: NO_RETRY, logger, metrics });
    await batcher.flush(); // the start-up pass: nothing to replay, no sink call
    await spool.append(["a", "b", "c"]);
    for (let i = 0; i < 3; i++) await expect(batcher.flush()).rejects.toThrow("sink down");
    expect(spool.sealedSegments()).toHaveLength(1); // kept while the sink fails
    expect(batcher.stats()).toMatchObject({ sinkErrors: 3, failureStreak: 3, flushes: 0 });
    await batcher.flush();
    expect(delivered).toEqual(["a", "b", "c"]);
    expect(new Set(calls.map((c) => c.token)).size).toBe(1);
    expect(calls).toHaveLength(4);
    expect(logger.lines.filter((l) => l.level === "warn")).toHaveLength(1); // once per streak
    expect(batcher.stats()).toMatchObject({ failureStreak: 0, flushes: 1, rowsFlushed: 3, pendingSegments: 0 });
    expect(seen.errors).toBe(3);
    expect(seen.flushed).toHaveLength(1);
    expect(seen.flushed[0]!.slice(0, 2)).toEqual([3, 3 * 9]);
    expect(seen.flushed[0]![2]).toBeGreaterThanOrEqual(0);
    await batcher.close();
    await spool.close();
  });

  test("after a failure the batcher retries by itself with backoff", async () => {
    const spool = await freshSpool();
    const { sink, calls } = flakySink(4);
    let done!: (records: Uint8Array[]) => void;
    const flushed = new Promise<Uint8Array[]>((r) => (done = r));
    const batcher = createBatcher({ spool, sink, flushIntervalMs: NEVER, backoff: { baseMs: 1, maxMs: 4 }, logger: recordingLogger(), onFlushed: (r) => done(r) });
    await spool.append(["retry me"]);
    await expect(batcher.flush()).rejects.toThrow("sink down");
    expect(texts(await flushed)).toEqual(["retry me"]);
    expect(calls.map((c) => c.ok)).toEqual([false, false, false, false, true]);
    expect(new Set(calls.map((c) => c.token)).size).toBe(1);
    await batcher.close();
    await spool.close();
  });

  test("backoff is full jitter over a capped exponential", () => {
    const backoff = { baseMs: 200, maxMs: 10_000 };
    expect(backoffDelay(1, backoff, () => 0.999)).toBeCloseTo(199.8);
    expect(backoffDelay(3, backoff, () => 0.5)).toBe(400);
    expect(backoffDelay(30, backoff, () => 0.999)).toBeCloseTo(9990);
    expect(backoffDelay(5, backoff, () => 0)).toBe(0);
  });
});

describe("start and stop", () => {
  test("segments left by a previous process are replayed first, with the token they had", async () => {
    const dir = tempDir();
    const before = await freshSpool(dir);
    const failing = flakySink(Infinity);
    const first = createBatcher({ spool: before, sink: failing.sink, flushIntervalMs: NEVER, backoff: NO_RETRY, drainTimeoutMs: 10, logger: recordingLogger() });
    await first.flush();
    await before.append(["old-1", "old-2"]);
    await expect(first.flush()).rejects.toThrow();
    expect(await first.close()).toBe(false); // no retry before the deadline: the segment stays on disk
    await before.close();

    const after = await freshSpool(dir);
    const { sink, delivered, calls } = flakySink();
    const batcher = createBatcher({ spool: after, sink, flushIntervalMs: NEVER, logger: recordingLogger() });
    await after.append(["new-1"]);
    await batcher.flush();
    expect(delivered).toEqual(["old-1", "old-2", "new-1"]);
    expect(calls[0]!.token).toBe(failing.calls[0]!.token);
    await batcher.close();
    await after.close();
  });

  test("a start with segments left by the previous process logs them, and logs again once the last of them is flushed; a start without says nothing", async () => {
    const dir = tempDir();
    const before = await openSpool({ dir, capBytes: MiB, segmentBytes: 40, logger: recordingLogger() });
    for (const r of ["left-1", "left-2", "left-3-is-a-longer-record-than-the-rest", "left-4"]) await before.append([r]);
    await before.close(); // killed before any flush: every segment stays
    const lines: { message: string; fields?: Record<string, unknown> }[] = [];
    const logger = { info: (message: string, fields?: Record<string, unknown>) => void lines.push({ message, fields }), warn: () => {}, error: () => {} };
    const after = await openSpool({ dir, capBytes: MiB, segmentBytes: 40, logger: recordingLogger() });
    const leftBytes = after.sealedSegments().reduce((sum, ref) => sum + ref.bytes, 0);
    const leftSegments = after.sealedSegments().length;
    expect(leftSegments).toBeGreaterThan(1);
    const { sink, delivered } = flakySink();
    const batcher = createBatcher({ spool: after, sink, flushIntervalMs: NEVER, logger });
    expect(lines).toEqual([{ message: "batcher: segments left by the previous process go first", fields: { segments: leftSegments, bytes: leftBytes } }]);
    await after.append(["new-1"]);
    await batcher.flush();
    expect(delivered).toEqual(["left-1", "left-2", "left-3-is-a-longer-record-than-the-rest", "left-4", "new-1"]);
    expect(lines).toHaveLength(2);
    expect(lines[1]).toMatchObject({ message: "batcher: segments left by the previous process are flushed", fields: { segments: leftSegments, records: 4 } });
    await batcher.close();
    await after.close();

    lines.length = 0;
    const again = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    const quiet = createBatcher({ spool: again, sink, flushIntervalMs: NEVER, logger });
    await again.append(["new-2"]);
    await quiet.flush();
    expect(lines).toEqual([]);
    await quiet.close();
    await again.close();
  });

  test("close seals and drains what is left", async () => {
    const spool = await freshSpool();
    const { sink, delivered } = flakySink();
    const batcher = createBatcher({ spool, sink, flushIntervalMs: NEVER, logger: recordingLogger() });
    await spool.append(["last words"]);
    expect(await batcher.close()).toBe(true);
    expect(delivered).toEqual(["last words"]);
    await expect(batcher.flush()).rejects.toThrow("closed");
    await spool.close();
  });

  test("close gives up after drainTimeoutMs on a hanging sink and leaves the segment on disk", async () => {
    const dir = tempDir();
    const spool = await freshSpool(dir);
    const logger = recordingLogger();
    const batcher = createBatcher({ spool, sink: () => new Promise(() => {}), flushIntervalMs: NEVER, drainTimeoutMs: 20, logger });
    await spool.append(["stuck"]);
    expect(await batcher.close()).toBe(false);
    expect(logger.lines.some((l) => l.message.includes("left for the next start"))).toBe(true);
    await spool.close();
    const reopened = await freshSpool(dir);
    const [ref] = reopened.sealedSegments();
    expect(texts(await reopened.readSegment(ref!))).toEqual(["stuck"]);
    await reopened.close();
  });
});
