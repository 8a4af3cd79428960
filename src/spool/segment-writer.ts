// The one segment being appended to. O_EXCL: a segment name is never reused; O_APPEND: a write
// after a truncate lands at the new end.
import { constants } from "node:fs";
import { open, type FileHandle } from "node:fs/promises";
import path from "node:path";
import { segmentName, syncDir, type SegmentRef } from "./segment-files.ts";

const NEW_SEGMENT = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_APPEND;
// With fsync, every write returns once its bytes are durable (O_DSYNC: what write + fdatasync
// gave, in one call). Each call is a round trip through Bun's work pool that the 202s of a group
// commit wait for, so one call instead of two per commit.
const DURABLE_WRITES = constants.O_DSYNC;

/** Raised when a failed write could not be cut off again: the segment can no longer be trusted. */
export class SegmentBrokenError extends Error {
  constructor(segment: string, cause: unknown) {
    super(`spool: segment ${segment} could not be repaired after a failed write`, { cause });
    this.name = "SegmentBrokenError";
  }
}

/** Appends frames durably; `ref.bytes` only ever counts bytes that were written and synced. */
export interface SegmentWriter {
  readonly ref: SegmentRef;
  append(frames: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** How a segment file is opened: `open` of node:fs/promises, or a test's wrapper injecting disk faults. */
export type OpenFile = (path: string, flags: number, mode: number) => Promise<FileHandle>;

/** Creates segment `seq` in `dir`; with `fsync`, its directory entry is durable before it is used. */
export async function createSegmentWriter(dir: string, seq: number, fsync: boolean, openFile: OpenFile = open): Promise<SegmentWriter> {
  const name = segmentName(seq);
  const ref: SegmentRef = { seq, name, path: path.join(dir, name), bytes: 0 };
  const fh = await openFile(ref.path, fsync ? NEW_SEGMENT | DURABLE_WRITES : NEW_SEGMENT, 0o644);
  if (fsync) await syncDir(dir);
  return {
    ref,
    async append(frames) {
      try {
        for (let at = 0; at < frames.byteLength; ) {
          at += (await fh.write(frames, at, frames.byteLength - at)).bytesWritten;
        }
      } catch (error) {
        // Part of the batch may be on disk: cut it off, or later records would sit behind garbage
        // and be set aside with it on the next read.
        await fh.truncate(ref.bytes).catch((fatal) => {
          throw new SegmentBrokenError(name, fatal);
        });
        throw error;
      }
      ref.bytes += frames.byteLength;
    },
    close: () => fh.close(),
  };
}
