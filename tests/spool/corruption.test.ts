// A damaged segment never crashes or loops the spool: the good records before the damage are kept,
// the rest is moved to corrupt/, logged and counted once.
import { afterEach, describe, expect, test } from "bun:test";
import { appendFileSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { FRAME_HEADER_BYTES } from "../../src/spool/frame.ts";
import { createBatcher } from "../../src/spool/batcher.ts";
import { openSpool } from "../../src/spool/spool.ts";
import { readAll, recordingLogger, removeTempDirs, segmentFiles, tempDir, texts } from "./support.ts";

afterEach(removeTempDirs);

const MiB = 1024 * 1024;

describe("corruption", () => {
  async function spoolWith(dir: string, records: string[]) {
    const spool = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    await spool.append(records);
    await spool.close(); // left unsealed, like a crashed process's active segment
    return path.join(dir, segmentFiles(dir)[0]!);
  }

  function corruptFiles(dir: string): string[] {
    return readdirSync(path.join(dir, "corrupt"));
  }

  test("garbage after the last record is set aside on open, once, without throwing", async () => {
    const dir = tempDir();
    const file = await spoolWith(dir, ["one", "two"]);
    const good = statSync(file).size;
    const garbage = Buffer.from("\x07\x00\x00\x00garbage!!");
    appendFileSync(file, garbage);

    const logger = recordingLogger();
    const spool = await openSpool({ dir, capBytes: MiB, logger });
    expect(spool.corruptTails).toBe(1);
    expect(logger.lines.filter((l) => l.level === "warn")).toHaveLength(1);
    expect(statSync(file).size).toBe(good);
    const [aside] = corruptFiles(dir);
    expect(aside).toStartWith(path.basename(file));
    expect(readFileSync(path.join(dir, "corrupt", aside!))).toEqual(garbage);

    expect(await readAll(spool)).toEqual(["one", "two"]);
    expect(await readAll(spool)).toEqual(["one", "two"]);
    expect(spool.corruptTails).toBe(1); // reading again neither re-reports nor re-counts
    await spool.close();
    const reopened = await openSpool({ dir, capBytes: MiB, logger });
    expect(reopened.corruptTails).toBe(0);
    await reopened.close();
  });

  test.each([
    ["a short payload", (size: number) => size - 2],
    ["a partial header", (size: number) => size - "three".length - FRAME_HEADER_BYTES + 3],
  ])("a last record cut to %s is set aside and the records before it are kept", async (_, cut) => {
    const dir = tempDir();
    const file = await spoolWith(dir, ["one", "two", "three"]);
    truncateSync(file, cut(statSync(file).size));
    const spool = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    expect(await readAll(spool)).toEqual(["one", "two"]);
    expect(spool.corruptTails).toBe(1);
    expect(corruptFiles(dir)).toHaveLength(1);
    await spool.close();
  });

  test("a checksum mismatch in the middle of a sealed segment keeps what precedes it", async () => {
    const dir = tempDir();
    const spool = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    await spool.append(["r1", "r2", "r3", "r4", "r5"]);
    await spool.seal();
    const [ref] = spool.sealedSegments();
    const bytes = readFileSync(ref!.path);
    const third = 2 * (FRAME_HEADER_BYTES + 2);
    bytes[third + FRAME_HEADER_BYTES] = 0xff; // r3's payload byte was "r"
    writeFileSync(ref!.path, bytes);

    expect(texts(await spool.readSegment(ref!))).toEqual(["r1", "r2"]);
    expect(spool.corruptTails).toBe(1);
    expect(ref!.bytes).toBe(third);
    expect(spool.bytes()).toBe(third);
    const aside = readFileSync(path.join(dir, "corrupt", corruptFiles(dir)[0]!));
    expect(aside).toEqual(bytes.subarray(third));
    await spool.close();
  });

  test("a segment that is garbage from its first byte yields no records and no crash", async () => {
    const dir = tempDir();
    const file = await spoolWith(dir, ["one"]);
    writeFileSync(file, Buffer.alloc(64)); // a zero-filled tail, as after a power loss
    const spool = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    expect(await readAll(spool)).toEqual([]);
    expect(spool.corruptTails).toBe(1);
    await spool.close();
  });
});

describe("corruption meets the batcher", () => {
  test("a segment with no good record left is removed without a sink call; its neighbours still go", async () => {
    const dir = tempDir();
    const spool = await openSpool({ dir, capBytes: MiB, logger: recordingLogger() });
    await spool.append(["before"]);
    await spool.seal();
    await spool.append(["doomed"]);
    await spool.seal();
    await spool.append(["after"]);
    const doomed = spool.sealedSegments()[1]!;
    writeFileSync(doomed.path, Buffer.from("not a frame at all"));
    const delivered: string[] = [];
    const batcher = createBatcher({ spool, sink: async (b) => void delivered.push(...texts(b.records)), flushIntervalMs: 3_600_000, logger: recordingLogger() });
    await batcher.flush();
    expect(delivered).toEqual(["before", "after"]);
    expect(spool.corruptTails).toBe(1);
    expect(spool.sealedSegments()).toHaveLength(0);
    expect(batcher.stats()).toMatchObject({ flushes: 2, pendingBytes: 0 });
    await batcher.close();
    await spool.close();
  });
});
