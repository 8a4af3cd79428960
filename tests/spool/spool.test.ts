import { afterEach, describe, expect, test } from "bun:test";
import { constants, statSync } from "node:fs";
import { open } from "node:fs/promises";
import path from "node:path";
import { FRAME_HEADER_BYTES } from "../../src/spool/frame.ts";
import { openSpool, SpoolFullError, SpoolWriteError } from "../../src/spool/spool.ts";
import { faultyDisk, readAll, recordingLogger, removeTempDirs, segmentFiles, tempDir, texts } from "./support.ts";

afterEach(removeTempDirs);

const MiB = 1024 * 1024;


describe("append and read", () => {
  test("records come back in append order, strings and bytes alike", async () => {
    const spool = await openSpool({ dir: tempDir(), capBytes: MiB, logger: recordingLogger() });
    await spool.append(["a", "bb"]);
    await spool.append([new TextEncoder().encode("ccc")]);
    expect(spool.bytes()).toBe(3 * FRAME_HEADER_BYTES + 6);
    await spool.seal();
    const [ref, ...rest] = spool.sealedSegments();
    expect(rest).toHaveLength(0);
    expect(ref!.name).toMatch(/^seg-\d{16}\.log$/);
    expect(texts(await spool.readSegment(ref!))).toEqual(["a", "bb", "ccc"]);
    await spool.close();
  });

  test("an append resolves only after an fsync that covers it", async () => {
    const spool = await openSpool({ dir: tempDir(), capBytes: MiB, logger: recordingLogger() });
    const before = spool.fsyncs;
    await spool.append(["x"]);
    expect(spool.fsyncs).toBe(before + 1);
    await spool.close();
  });

  test("segments are opened for durable writes (O_DSYNC) with fsync on, and without it when off", async () => {
    for (const fsync of [true, false]) {
      const flags: number[] = [];
      const spool = await openSpool({
        dir: tempDir(), capBytes: MiB, fsync, logger: recordingLogger(),
        openFile: (file, f, mode) => (flags.push(f), open(file, f, mode)),
      });
      await spool.append(["x"]);
      await spool.seal();
      await spool.append(["y"]); // the next segment too
      expect(flags.length).toBeGreaterThanOrEqual(2);
      for (const f of flags) expect((f & constants.O_DSYNC) !== 0).toBe(fsync);
      await spool.close();
    }
  });

  test("1,000 concurrent appends are group-committed into far fewer fsyncs", async () => {
    const spool = await openSpool({ dir: tempDir(), capBytes: 64 * MiB, logger: recordingLogger() });
    const ids = Array.from({ length: 1000 }, (_, i) => `event-${i}`);
    await Promise.all(ids.map((id) => spool.append([id])));
    expect(spool.fsyncs).toBeGreaterThan(0);
    expect(spool.fsyncs).toBeLessThan(100);
    await spool.seal();
    expect(await readAll(spool)).toEqual(ids);
    await spool.close();
  });

  test("the active segment rolls past segmentBytes and sealed segments keep their order", async () => {
    const dir = tempDir();
    const spool = await openSpool({ dir, capBytes: MiB, segmentBytes: 64, logger: recordingLogger() });
    const ids = Array.from({ length: 20 }, (_, i) => `record-${String(i).padStart(3, "0")}`);
    for (const id of ids) await spool.append([id]);
    expect(spool.sealedSegments().length).toBeGreaterThan(3);
    await spool.seal();
    expect(await readAll(spool)).toEqual(ids);
    const seqs = spool.sealedSegments().map((r) => r.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    await spool.close();
  });

  test("empty records are refused (a zero-filled tail must never decode as records)", async () => {
    const spool = await openSpool({ dir: tempDir(), capBytes: MiB, logger: recordingLogger() });
    await expect(spool.append(["ok", ""])).rejects.toThrow(RangeError);
    expect(spool.bytes()).toBe(0);
    await spool.close();
  });

  test("close writes appends that were still queued", async () => {
    const dir = tempDir();
    const spool = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    const pending = spool.append(["late"]);
    await spool.close();
    await pending;
    await expect(spool.append(["after close"])).rejects.toThrow("closed");
    const again = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    expect(await readAll(again)).toEqual(["late"]);
    await again.close();
  });
});

describe("restart", () => {
  test("the previous process's active segment is sealed as-is and new appends go to a new one", async () => {
    const dir = tempDir();
    const first = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    await first.append(["one", "two"]); // no close: the process "dies" here
    const second = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    expect(second.sealedSegments()).toHaveLength(1);
    await second.append(["three"]);
    await second.seal();
    expect(await readAll(second)).toEqual(["one", "two", "three"]);
    expect(second.corruptTails).toBe(0);
    await second.close();
    await first.close();
  });

  test("sequence numbers are never reused, even after every segment was removed", async () => {
    const dir = tempDir();
    const first = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    await first.append(["a"]);
    await first.seal();
    const [old] = first.sealedSegments();
    await first.remove(old!);
    await first.close();
    const second = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    await second.append(["b"]);
    await second.seal();
    expect(second.sealedSegments()[0]!.seq).toBeGreaterThan(old!.seq);
    expect(second.id).toBe(first.id);
    await second.close();
  });
});

describe("cap", () => {
  test("past the cap, append rejects with SpoolFullError and writes nothing; removing makes room", async () => {
    const dir = tempDir();
    const record = "x".repeat(92); // 100 bytes framed
    const spool = await openSpool({ dir, capBytes: 250, logger: recordingLogger() });
    await spool.append([record, record]);
    const sizeBefore = segmentFiles(dir).map((n) => statSync(path.join(dir, n)).size);
    const error = await spool.append([record]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SpoolFullError);
    expect((error as SpoolFullError).code).toBe("SPOOL_FULL");
    // a multi-record append that does not fit is refused whole, not partly written
    await expect(spool.append(["y", record])).rejects.toBeInstanceOf(SpoolFullError);
    expect(spool.bytes()).toBe(200);
    expect(segmentFiles(dir).map((n) => statSync(path.join(dir, n)).size)).toEqual(sizeBefore);

    await spool.seal();
    for (const ref of spool.sealedSegments()) await spool.remove(ref);
    expect(spool.bytes()).toBe(0);
    await spool.append([record]);
    expect(spool.bytes()).toBe(100);
    await spool.close();
  });

  test("concurrent appends cannot overshoot the cap together", async () => {
    const spool = await openSpool({ dir: tempDir(), capBytes: 1000, logger: recordingLogger() });
    const results = await Promise.allSettled(Array.from({ length: 50 }, () => spool.append(["x".repeat(92)])));
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(10);
    expect(spool.bytes()).toBe(1000);
    await spool.close();
  });
});

describe("a disk that refuses writes (fault injected: a segment file whose writes fail)", () => {
  test("an append the disk refuses rejects with SpoolWriteError, readiness names it, and appends work again once there is room", async () => {
    const { disk, openFile } = faultyDisk();
    const logger = recordingLogger();
    const spool = await openSpool({ dir: tempDir(), capBytes: MiB, logger, openFile });
    await spool.append(["before"]);
    disk.full = true;
    for (let i = 0; i < 5; i++) await expect(spool.append([`refused-${i}`])).rejects.toBeInstanceOf(SpoolWriteError);
    expect(spool.writeFailure()).toContain("ENOSPC");
    expect(logger.lines.filter((l) => l.message === "spool: write failed")).toHaveLength(1); // not one per refused append
    disk.full = false;
    await spool.append(["after"]);
    expect(spool.writeFailure()).toBeNull();
    expect(logger.lines.some((l) => l.message === "spool: writes work again")).toBe(true);
    await spool.seal();
    expect(await readAll(spool)).toEqual(["before", "after"]);
    await spool.close();
  });

  test("no inode for the next segment: appends go on in the current one, and the failed rolls are logged once, not once per commit (a flood of ~160 lines a second before)", async () => {
    const { disk, openFile } = faultyDisk();
    const logger = recordingLogger();
    const spool = await openSpool({ dir: tempDir(), capBytes: MiB, segmentBytes: 64, logger, openFile });
    disk.noInodes = true;
    for (let i = 0; i < 20; i++) await spool.append([`record-${i}-${"x".repeat(40)}`]);
    expect(logger.lines.filter((l) => l.message === "spool: cannot roll segment")).toHaveLength(1);
    expect(logger.lines.filter((l) => l.level === "info")).toEqual([]);
    disk.noInodes = false;
    await spool.append(["after"]);
    await spool.seal(); // after the commit's own roll attempt (it runs once the append resolved)
    expect(logger.lines.filter((l) => l.message === "spool: segments roll again")).toHaveLength(1);
    expect(await readAll(spool)).toHaveLength(21);
    await spool.close();
  });

  test("a torn write that cannot be cut off moves appends to a fresh segment instead of refusing them until a restart; nothing acknowledged is lost", async () => {
    const { disk, openFile } = faultyDisk();
    const dir = tempDir();
    const spool = await openSpool({ dir, capBytes: MiB, logger: recordingLogger(), openFile });
    await spool.append(["kept-1"]);
    disk.full = true;
    disk.noTruncate = true;
    await expect(spool.append(["torn"])).rejects.toBeInstanceOf(SpoolWriteError);
    disk.full = false;
    disk.noTruncate = false;
    await spool.append(["kept-2"]);
    await spool.seal();
    expect(segmentFiles(dir).length).toBeGreaterThanOrEqual(2);
    // The torn bytes sit after the first segment's last good record: read back as a bad tail, set aside.
    expect(await readAll(spool)).toEqual(["kept-1", "kept-2"]);
    await spool.close();
  });
});
