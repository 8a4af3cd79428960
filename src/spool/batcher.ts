// Drains sealed spool segments to a sink, oldest first, one segment per sink call. A segment is
// removed only after the sink resolved, and its dedup token depends only on the spool, the segment
// and its content, so a replay after a crash (or a retry) is recognisable downstream.
//
// Contract (after Plausible's write buffer and Unkey's batcher): flush on a timer, on size, on an
// explicit `flush()` (tests never sleep) and on `close()`; timer-driven passes handle their own
// errors (counted, logged once per failure streak, retried with capped full-jitter backoff).
import { ScratchBuffer } from "../scratch-buffer.ts";
import { recordsChecksum } from "./frame.ts";
import type { SegmentRef, Spool, SpoolLogger } from "./spool.ts";

/** One sink call: every record of one segment, with the token to deduplicate a replay. */
export interface SinkBatch {
  segment: SegmentRef;
  records: Uint8Array[];
  token: string;
}

/** Delivers a batch; resolving means the destination has it durably. */
export type Sink = (batch: SinkBatch) => Promise<void>;

/** Optional metric callbacks, so the batcher needs no metrics library. */
export interface BatcherMetrics {
  flushed?(rows: number, bytes: number, durationMs: number): void;
  sinkError?(error: unknown): void;
}

/** Options of `createBatcher`; times in milliseconds, sizes in bytes. */
export interface BatcherOptions {
  spool: Spool;
  sink: Sink;
  flushIntervalMs?: number;
  sealBytes?: number;
  drainTimeoutMs?: number;
  backoff?: { baseMs: number; maxMs: number };
  logger?: SpoolLogger;
  /** Called with a delivered segment's records, which are only valid during the call. */
  onFlushed?: (records: Uint8Array[]) => void;
  metrics?: BatcherMetrics;
  random?: () => number;
}

/** Counters for metrics and readiness. */
export interface BatcherStats {
  flushes: number;
  rowsFlushed: number;
  lastFlushMs: number;
  sinkErrors: number;
  failureStreak: number;
  pendingSegments: number;
  pendingBytes: number;
}

/** A running batcher. `flush()` rejects with the sink's error; `close()` resolves true if drained. */
export interface Batcher {
  flush(): Promise<void>;
  close(): Promise<boolean>;
  stats(): BatcherStats;
}

/** Dedup token of a segment: stable across retries, restarts and replays, distinct across spools. */
export function segmentToken(spoolId: string, segment: SegmentRef, records: readonly Uint8Array[]): string {
  return `spool-${spoolId}-${segment.seq}-${recordsChecksum(records)}`;
}

/** Delay before retry number `attempt` (1-based): full jitter over a capped exponential. */
export function backoffDelay(attempt: number, backoff: { baseMs: number; maxMs: number }, random = Math.random): number {
  return random() * Math.min(backoff.maxMs, backoff.baseMs * 2 ** (attempt - 1));
}

/** Starts draining `spool` into `sink`; segments left by a previous process go first. */
export function createBatcher(options: BatcherOptions): Batcher {
  const { spool, sink, onFlushed, metrics = {}, logger = console, random = Math.random } = options;
  // sealBytes is a safety valve for bursts, not the pace: every INSERT has a fixed cost in the
  // engine (a part per table and per view, its dedup entry, later merges) of about as much CPU as
  // a few thousand rows, so at saturation (~10 MB of spool per second) the timer, not size, should
  // decide. At 4 MB the flushes ran back to back, two to three a second.
  const { flushIntervalMs = 1000, sealBytes = 16 * 1024 * 1024, drainTimeoutMs = 5000 } = options;
  const backoff = options.backoff ?? { baseMs: 200, maxMs: 10_000 };
  const stats = { flushes: 0, rowsFlushed: 0, lastFlushMs: 0, sinkErrors: 0, failureStreak: 0 };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closing = false;
  let abandoned = false; // close() gave up waiting: stop before the next segment
  let closed: Promise<boolean> | undefined;
  let head: { ref: SegmentRef; records: Uint8Array[]; token: string } | null = null; // kept across retries
  // One segment is read at a time, and its records (views of this buffer) are done with once it is
  // delivered and removed, or replaced as the head: the next read may overwrite them then.
  const readBuffer = new ScratchBuffer(64 * 1024 * 1024);
  // What a previous process left (every segment sealed when the batcher starts): a restart after a
  // crash says so, and says when those rows are in, so an operator can tell a replay happened.
  let leftover: { last: SegmentRef; segments: number; records: number; started: number } | null = null;
  const sealedAtStart = spool.sealedSegments();
  if (sealedAtStart.length > 0) {
    leftover = { last: sealedAtStart.at(-1)!, segments: sealedAtStart.length, records: 0, started: performance.now() };
    logger.info("batcher: segments left by the previous process go first", {
      segments: sealedAtStart.length,
      bytes: sealedAtStart.reduce((sum, ref) => sum + ref.bytes, 0),
    });
  }

  async function deliver(ref: SegmentRef): Promise<void> {
    if (head?.ref !== ref) {
      head = null;
      const records = await spool.readSegment(ref, readBuffer);
      head = { ref, records, token: segmentToken(spool.id, ref, records) };
    }
    const { records, token } = head;
    const started = performance.now();
    if (records.length > 0) {
      try {
        await sink({ segment: ref, records, token });
      } catch (error) {
        stats.sinkErrors++;
        metrics.sinkError?.(error);
        throw error;
      }
    } // else: all of it was set aside as corrupt; nothing to send, only the empty file to remove
    const durationMs = performance.now() - started;
    await spool.remove(ref);
    head = null;
    if (leftover) {
      leftover.records += records.length;
      if (ref === leftover.last) {
        logger.info("batcher: segments left by the previous process are flushed", { segments: leftover.segments, records: leftover.records, ms: Math.round(performance.now() - leftover.started) });
        leftover = null;
      }
    }
    if (records.length === 0) return;
    stats.flushes++;
    stats.rowsFlushed += records.length;
    stats.lastFlushMs = durationMs;
    try {
      metrics.flushed?.(records.length, ref.bytes, durationMs);
      onFlushed?.(records);
    } catch (error) {
      logger.error("batcher: a flush callback threw", { error: String(error) });
    }
  }

  let passStarted = 0;
  async function runPass(): Promise<void> {
    passStarted = performance.now();
    try {
      await spool.seal();
      for (const ref of spool.sealedSegments()) {
        if (abandoned) return;
        await deliver(ref);
      }
      if (stats.failureStreak > 0) logger.info("batcher: flush recovered", { failures: stats.failureStreak });
      stats.failureStreak = 0;
    } catch (error) {
      // Once per streak: a sink that is down for an hour must not log every retry.
      if (stats.failureStreak++ === 0) logger.warn("batcher: flush failed, will retry", { error: String(error) });
      throw error;
    } finally {
      schedule();
    }
  }

  // At most one pass runs; callers arriving meanwhile share the single pass queued behind it,
  // which seals again and so covers everything appended before they called.
  let current: Promise<void> | null = null;
  let queued: Promise<void> | null = null;
  function pass(): Promise<void> {
    if (!current) {
      current = runPass().finally(() => (current = null));
      return current;
    }
    queued ??= current.catch(() => {}).then(() => {
      queued = null;
      return pass();
    });
    return queued;
  }

  function schedule(): void {
    clearTimeout(timer);
    if (closing) return;
    // Start to start: a flush that took 400 ms is followed by the next one 600 ms later, so rows
    // wait at most about one interval whatever the flushes cost (freshness).
    const delay = stats.failureStreak > 0
      ? backoffDelay(stats.failureStreak, backoff, random)
      : Math.max(0, flushIntervalMs - (performance.now() - passStarted));
    timer = setTimeout(() => pass().catch(() => {}), delay);
    timer.unref?.();
  }

  const unsubscribe = spool.onCommit((activeBytes) => {
    // While the sink is failing, size does not hurry retries: the backoff decides.
    if (activeBytes >= sealBytes && stats.failureStreak === 0 && !closing) pass().catch(() => {});
  });

  // Keeps retrying (with backoff) until drained or the deadline: a sink that blips during a deploy
  // should not leave work behind, but shutdown must not hang on one that is down.
  async function drainAndStop(): Promise<boolean> {
    closing = true;
    clearTimeout(timer);
    unsubscribe();
    let stop = () => {};
    const stopped = new Promise<void>((resolve) => (stop = resolve));
    const deadline = setTimeout(() => ((abandoned = true), stop()), drainTimeoutMs);
    const pause = (ms: number) =>
      new Promise<void>((resolve) => {
        const t = setTimeout(resolve, ms);
        void stopped.then(() => (clearTimeout(t), resolve()));
      });
    let drained = false;
    while (!drained && !abandoned) {
      drained = await Promise.race([pass().then(() => true, () => false), stopped.then(() => false)]);
      if (!drained && !abandoned) await pause(backoffDelay(stats.failureStreak, backoff, random));
    }
    clearTimeout(deadline);
    abandoned = true; // a sink call still in flight may finish; no further segment is started
    stop();
    if (!drained) logger.warn("batcher: closed with segments left for the next start", { segments: spool.segments(), bytes: spool.bytes() });
    return drained;
  }

  // Replay: the first pass sends what a previous process left before anything new.
  pass().catch(() => {});

  return {
    flush: () => (abandoned ? Promise.reject(new Error("batcher: closed")) : pass()),
    close: () => (closed ??= drainAndStop()),
    stats: () => ({ ...stats, pendingSegments: spool.segments(), pendingBytes: spool.bytes() }),
  };
}
