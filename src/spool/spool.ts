// Durable write-ahead spool: an append-only, checksummed, segmented log on local disk. A 202 waits
// on `append`, so appends are group-committed (see group-commit.ts): a commit is one asynchronous
// write to a segment opened O_DSYNC (segment-writer.ts), off the event loop in Bun's work pool.
// Why asynchronous, and why O_DSYNC rather than write + fdatasync: measurements in
// bench/RESULTS.md (2026-11-29 19:57) and bench/ANALYSIS.md ("The 202 tail"). Earlier figures
// (Bun 1.4.5, this 2-core VM, ext4, 100-byte records): 64 concurrent callers 250k–290k appends/s,
// p99 0.8–1.5 ms; the synchronous pair blocked the event loop (async acked ~43k/s against ~28k/s
// with 20 µs of CPU per request, ~3k/s against ~43k/s with a 2 ms fsync).
import { mkdir, unlink } from "node:fs/promises";
import path from "node:path";
import { measureRecords, writeFrames, type MeasuredRecord } from "./frame.ts";
import { createGroupCommit } from "./group-commit.ts";
import { listSegments, readVerified, spoolId, CORRUPT_DIR, type SegmentRef } from "./segment-files.ts";
import { createSegmentWriter, SegmentBrokenError, type OpenFile, type SegmentWriter } from "./segment-writer.ts";
import { ScratchBuffer } from "../scratch-buffer.ts";

export type { SegmentRef } from "./segment-files.ts";

/** Thrown by `append` when the new bytes would take the spool past `capBytes`; nothing was written. */
export class SpoolFullError extends Error {
  readonly code = "SPOOL_FULL";
  constructor(readonly bytes: number, readonly capBytes: number) {
    super(`spool full: ${bytes} bytes would exceed the cap of ${capBytes}`);
    this.name = "SpoolFullError";
  }
}

/**
 * Thrown by `append` when the disk refused the bytes (no space, no inodes, a read-only or failing
 * file system): nothing of that append is acknowledged. Ingest answers 503, and the next append
 * tries again (on a fresh segment when the failed write could not be cut off).
 */
export class SpoolWriteError extends Error {
  readonly code = "SPOOL_WRITE";
  /** What the disk said (the failed write's own error). */
  readonly reason: string;
  constructor(cause: unknown) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    super(`spool: cannot write to its disk: ${reason}`, { cause });
    this.name = "SpoolWriteError";
    this.reason = reason;
  }
}

/** Console-compatible logger; the spool and the batcher only log rare events. */
export interface SpoolLogger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** Options of `openSpool`; `fsync: false` is for tests and throwaway data only. */
export interface SpoolOptions {
  dir: string;
  capBytes: number;
  segmentBytes?: number;
  fsync?: boolean;
  logger?: SpoolLogger;
  /** Opens segment files; tests pass a wrapper that injects disk faults (default: node's `open`). */
  openFile?: OpenFile;
}

/** The spool: appends become durable, sealed segments are read back and removed once delivered. */
export interface Spool {
  readonly id: string; // stable per directory, part of every dedup token
  readonly dir: string;
  readonly fsyncs: number; // durable writes issued for appends (group commit makes this << appends)
  readonly corruptTails: number; // bad tails set aside into corrupt/ since open
  append(records: readonly (Uint8Array | string)[]): Promise<void>; // resolves once durable (an O_DSYNC write)
  seal(): Promise<void>; // rolls the active segment if it has records
  sealedSegments(): SegmentRef[]; // oldest first
  readSegment(ref: SegmentRef, into?: ScratchBuffer): Promise<Uint8Array[]>; // verified; a bad tail is set aside; with `into`, the records are views of it
  remove(ref: SegmentRef): Promise<void>; // only once the sink confirmed the segment
  bytes(): number; // segment bytes on disk, sealed + active: what the cap is checked against
  segments(): number; // sealed segments, plus the active one if it has records
  onCommit(listener: (activeBytes: number) => void): () => void; // after each group commit
  writeFailure(): string | null; // why the last append failed, until one succeeds (readiness)
  close(): Promise<void>; // commits what is queued, then closes the file
}

/** Opens (or creates) the spool in `dir`, recovering the segment a previous process was writing. */
export async function openSpool(options: SpoolOptions): Promise<Spool> {
  // Segments larger than the batcher's seal size, so one flush is one segment (one INSERT per table).
  const { dir, capBytes, segmentBytes = 32 * 1024 * 1024, fsync = true, logger = console, openFile } = options;
  await mkdir(path.join(dir, CORRUPT_DIR), { recursive: true });
  const id = await spoolId(dir);
  let fsyncs = 0;
  let corruptTails = 0;

  const sealed = await listSegments(dir); // oldest first; whatever a previous process left is sealed now
  let sealedBytes = sealed.reduce((sum, ref) => sum + ref.bytes, 0);

  async function verify(ref: SegmentRef, into?: ScratchBuffer): Promise<Uint8Array[]> {
    const before = ref.bytes;
    const { records, setAside } = await readVerified(dir, ref, into);
    if (setAside) {
      corruptTails++;
      sealedBytes -= before - ref.bytes;
      logger.warn("spool: corrupt tail set aside", { segment: ref.name, keptRecords: records.length, ...setAside });
    }
    return records;
  }

  const createSegment = (seq: number) => createSegmentWriter(dir, seq, fsync, openFile);

  // Only the last written segment can have a torn tail (the previous process died writing it), so
  // only it is checked now; the others are checked when read. Empty segments go, but only after the
  // new active one exists: the newest name is the high-water mark that keeps sequence numbers, and
  // with them dedup tokens, from ever being reused.
  const lastWritten = sealed.findLast((ref) => ref.bytes > 0);
  if (lastWritten) await verify(lastWritten);
  let active: SegmentWriter | null = await createSegment((sealed.at(-1)?.seq ?? 0) + 1);
  for (const ref of sealed.filter((r) => r.bytes === 0)) {
    await unlink(ref.path);
    sealed.splice(sealed.indexOf(ref), 1);
  }
  let queuedBytes = 0; // accepted but not yet on disk; counts against the cap
  // The active segment has bytes of a failed write that could not be cut off (SegmentBrokenError):
  // the next commit moves to a fresh segment first. The broken one is sealed at its last good
  // length; on reading, whatever follows that is a bad tail, set aside (it was never acknowledged).
  let broken = false;
  let closed = false;
  // A full or failing disk fails every commit: one error line when it starts, one every 10 s while
  // it lasts, one when writes work again (not a line per commit).
  // A segment that cannot be rolled (no inode for the next file) is the same story for rolls,
  // counted apart: appends still work then, and must not restart the count of failed rolls.
  const writes = failureLog(logger, "spool: write failed", "spool: writes work again");
  const rolls = failureLog(logger, "spool: cannot roll segment", "spool: segments roll again");
  const listeners = new Set<(activeBytes: number) => void>();

  /** The records of one append, checked and sized (see measureRecords). */
  interface Pending {
    measured: MeasuredRecord[];
    frameBytes: number;
  }

  // Every append of a group commit is framed straight into one buffer (text encoded once, no
  // per-append buffer and no concatenation): what Buffer.from, encodeFrames and Buffer.concat
  // each copied before. The buffer is kept for the next commit (commits run one at a time, and the
  // write has returned when the next one starts): a fresh one each time was page-faulted in again.
  const commitBuffer = new ScratchBuffer(16 * 1024 * 1024);
  async function commit(batch: readonly Pending[]): Promise<void> {
    let total = 0;
    for (const p of batch) total += p.frameBytes;
    try {
      if (!active) throw new Error("spool: closed");
      if (broken) {
        await roll(active);
        broken = false;
      }
      const frames = commitBuffer.take(total);
      let at = 0;
      for (const p of batch) at = writeFrames(p.measured, frames, at);
      await active.append(frames);
      if (fsync) fsyncs++;
      writes.succeeded();
    } catch (error) {
      if (!active) throw error;
      if (error instanceof SegmentBrokenError) broken = true;
      const failure = new SpoolWriteError(error instanceof SegmentBrokenError ? error.cause : error);
      writes.failed(failure.reason, { segment: active.ref.name, error: String(error) });
      throw failure;
    } finally {
      queuedBytes -= total;
    }
  }

  // The new segment is opened first and the bookkeeping switch has no await in it, so appends that
  // arrive during a roll simply queue and the cap arithmetic never sees a segment twice. If the
  // new segment cannot be created, the old one stays active and the caller sees the error.
  async function roll(current: SegmentWriter): Promise<void> {
    const next = await createSegment(current.ref.seq + 1);
    await current.close().catch((error) => logger.warn("spool: close failed", { error: String(error) }));
    sealed.push(current.ref);
    sealedBytes += current.ref.bytes;
    active = next;
  }

  async function afterCommit(): Promise<void> {
    if (!active) return;
    for (const listener of listeners) {
      try {
        listener(active.ref.bytes);
      } catch (error) {
        logger.error("spool: commit listener threw", { error: String(error) });
      }
    }
    if (active.ref.bytes >= segmentBytes) {
      await roll(active).then(rolls.succeeded, (error) => rolls.failed(String(error), { error: String(error) }));
    }
  }

  const group = createGroupCommit<Pending>(commit, afterCommit);

  return {
    id,
    dir,
    get fsyncs() { return fsyncs; },
    get corruptTails() { return corruptTails; },
    append(records) {
      if (closed || !active) return Promise.reject(new Error("spool: closed"));
      if (records.length === 0) return Promise.resolve();
      let pending: Pending;
      try {
        pending = measureRecords(records);
      } catch (error) {
        return Promise.reject(error);
      }
      const total = sealedBytes + active.ref.bytes + queuedBytes + pending.frameBytes;
      if (total > capBytes) return Promise.reject(new SpoolFullError(total, capBytes));
      queuedBytes += pending.frameBytes;
      return group.submit(pending);
    },
    seal() {
      return group.exclusive(async () => {
        if (active && active.ref.bytes > 0) await roll(active).then(rolls.succeeded);
      });
    },
    sealedSegments: () => [...sealed],
    async readSegment(ref, into) {
      if (!sealed.includes(ref)) throw new Error(`spool: ${ref.name} is not a sealed segment of this spool`);
      return verify(ref, into);
    },
    async remove(ref) {
      const index = sealed.indexOf(ref);
      if (index < 0) return;
      await unlink(ref.path).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== "ENOENT") throw error; // already gone is what we wanted
      });
      sealed.splice(index, 1);
      sealedBytes -= ref.bytes;
    },
    bytes: () => sealedBytes + (active?.ref.bytes ?? 0),
    segments: () => sealed.length + (active && active.ref.bytes > 0 ? 1 : 0),
    writeFailure: () => writes.reason(),
    onCommit(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async close() {
      closed = true; // refuses new appends; queued ones still commit
      await group.idle();
      const last = active;
      active = null;
      if (!last) return;
      await last.close(); // the next open seals it, or, if empty, keeps it only as the high-water mark
    },
  };
}

/**
 * One error line when a kind of failure starts, one every 10 s while it lasts (with the count), and
 * one info line when it stops: a full disk fails every commit, and a line per commit flooded the log.
 * `reason()` is the last failure's, until a success (readiness).
 */
function failureLog(logger: SpoolLogger, failedMessage: string, recoveredMessage: string) {
  let failures = 0;
  let lastLog = 0;
  let last: string | null = null;
  return {
    reason: (): string | null => last,
    failed(reason: string, fields: Record<string, unknown>): void {
      last = reason;
      failures++;
      if (failures === 1 || Date.now() - lastLog >= 10_000) {
        lastLog = Date.now();
        logger.error(failedMessage, { ...fields, failures });
      }
    },
    succeeded(): void {
      last = null;
      if (failures === 0) return;
      logger.info(recoveredMessage, { failures });
      failures = 0;
    },
  };
}
