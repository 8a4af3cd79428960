// What a spool looks like on disk: segment names, listing, directory fsync, and setting bad bytes aside.
import { randomBytes } from "node:crypto";
import { mkdir, open, readdir, readFile, rename, stat } from "node:fs/promises";
import path from "node:path";
import { decodeFrames } from "./frame.ts";
import type { ScratchBuffer } from "../scratch-buffer.ts";
import { DataFileError, readSmallFile } from "../private-files.ts";

/** A segment file; `bytes` is its size on disk (it shrinks if a bad tail is set aside). */
export interface SegmentRef {
  readonly seq: number;
  readonly name: string;
  readonly path: string;
  bytes: number;
}

/** Where set-aside bytes go, inside the spool directory. */
export const CORRUPT_DIR = "corrupt";

const NAME = /^seg-(\d{16})\.log$/;

/** File name of segment `seq`: `seg-<16-digit zero-padded seq>.log`, so names sort like numbers. */
export function segmentName(seq: number): string {
  return `seg-${String(seq).padStart(16, "0")}.log`;
}

/** Segment files in `dir`, oldest first. */
export async function listSegments(dir: string): Promise<SegmentRef[]> {
  const refs: SegmentRef[] = [];
  for (const name of await readdir(dir)) {
    const match = NAME.exec(name);
    if (!match) continue;
    const file = path.join(dir, name);
    refs.push({ seq: Number(match[1]), name, path: file, bytes: (await stat(file)).size });
  }
  return refs.sort((a, b) => a.seq - b.seq);
}

/** fsyncs a directory so that files created or renamed in it survive a power loss. */
export async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, "r");
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

// Explicit open/write/datasync: `writeFile`'s `flush` option is not honoured by every runtime.
async function writeDurable(file: string, bytes: Uint8Array): Promise<void> {
  const fh = await open(file, "w");
  try {
    await fh.writeFile(bytes);
    await fh.datasync();
  } finally {
    await fh.close();
  }
}

/**
 * Stable random id of this spool directory, so dedup tokens of two spools never collide. Segments'
 * insert tokens are made from it: an unusable id beside segments left to replay is a DataFileError
 * (a new id would store again the rows of a segment a crash left half inserted); with none (empty
 * segments hold no rows), a new id is written (written whole or not at all: a temporary file renamed).
 */
export async function spoolId(dir: string): Promise<string> {
  const file = path.join(dir, "spool.id");
  // Stat'ed first (readSmallFile): a FIFO in its place blocked the start for good.
  const existing = readSmallFile(file, 4096);
  if (existing !== undefined && /^[0-9a-f]{16}$/.test(existing.trim())) return existing.trim();
  // Only segments holding bytes wait: a clean stop (and ACK_MODE=insert) leaves an empty one,
  // whose replay stores nothing under any id.
  const waiting = (await listSegments(dir)).filter((ref) => ref.bytes > 0).length;
  if (existing !== undefined && waiting > 0) {
    throw new DataFileError(
      `${file} holds no spool id (16 hex digits) and ${waiting} segment(s) wait to be written to ClickHouse under it: ` +
        "restore it from a backup, or delete it to write them under a new id (rows of a segment a crash left half written may then be stored twice)",
    );
  }
  const id = randomBytes(8).toString("hex");
  const temporary = `${file}.new`;
  await writeDurable(temporary, Buffer.from(id));
  await rename(temporary, file);
  await syncDir(dir);
  return id;
}

/** A segment's verified content; `setAside` names the file that received a bad tail, if any. */
export interface Verified {
  records: Uint8Array[];
  content: Uint8Array;
  setAside?: { file: string; bytes: number; problem: string };
}

/** A whole file's bytes in `into` (its previous content is overwritten). */
async function readInto(file: string, into: ScratchBuffer): Promise<Buffer> {
  const fh = await open(file, "r");
  try {
    const size = (await fh.stat()).size;
    const bytes = into.take(size);
    let at = 0;
    while (at < size) {
      const { bytesRead } = await fh.read(bytes, at, size - at, at);
      if (bytesRead === 0) break; // cut short meanwhile: what was read is what there is
      at += bytesRead;
    }
    return bytes.subarray(0, at);
  } finally {
    await fh.close();
  }
}

/**
 * Reads a segment and checks every frame. From the first bad frame on, the bytes are copied to
 * corrupt/ (durably) and only then cut off the segment, so a crash in between loses nothing and a
 * later read neither finds nor reports the same damage again. With `into`, the bytes (and the
 * records, which are views of them) live in that buffer until its next take.
 */
export async function readVerified(dir: string, ref: SegmentRef, into?: ScratchBuffer): Promise<Verified> {
  // A segment someone deleted by hand reads as empty, so the batcher drops it instead of retrying forever.
  const bytes = await (into ? readInto(ref.path, into) : readFile(ref.path)).catch((error: NodeJS.ErrnoException) => {
    if (error.code === "ENOENT") return Buffer.alloc(0);
    throw error;
  });
  const { records, goodBytes, problem } = decodeFrames(bytes);
  const content = bytes.subarray(0, goodBytes);
  if (problem === undefined) return { records, content };

  const corruptDir = path.join(dir, CORRUPT_DIR);
  await mkdir(corruptDir, { recursive: true });
  const file = path.join(corruptDir, `${ref.name}.${goodBytes}.bad`);
  await writeDurable(file, bytes.subarray(goodBytes));
  await syncDir(corruptDir);
  const fh = await open(ref.path, "r+");
  try {
    await fh.truncate(goodBytes);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  ref.bytes = goodBytes;
  return { records, content, setAside: { file, bytes: bytes.byteLength - goodBytes, problem } };
}
