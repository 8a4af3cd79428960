// Record framing for spool segments: [u32 length][u32 crc32(payload)][payload], little-endian.
// CRC32 comes from node:zlib (Node >= 20.15, Bun): built in, native, nothing to add to package.json.
import { crc32 } from "node:zlib";

/** Bytes of the per-record header (length + checksum). */
export const FRAME_HEADER_BYTES = 8;

/** Largest payload a record may have; a larger length field can only be garbage. */
export const MAX_RECORD_BYTES = 64 * 1024 * 1024;

/** Result of scanning a segment: the good records, where they end, and why scanning stopped early. */
export interface Decoded {
  records: Uint8Array[];
  goodBytes: number;
  problem?: string;
}

/** A record checked for framing: its payload and the payload's byte length (UTF-8 for text). */
export interface MeasuredRecord {
  payload: Uint8Array | string;
  bytes: number;
}

/**
 * Checks records for framing and sizes their frames, without encoding them yet: text is encoded
 * once, straight into the buffer a commit writes (writeFrames). Byte records are copied here, so
 * a caller reusing its buffer after `append` cannot change what is written.
 */
export function measureRecords(records: readonly (Uint8Array | string)[]): { measured: MeasuredRecord[]; frameBytes: number } {
  const measured: MeasuredRecord[] = new Array(records.length);
  let frameBytes = 0;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    const bytes = typeof r === "string" ? Buffer.byteLength(r, "utf8") : r.byteLength;
    // Zero-length records are refused so that a zero-filled tail (what some filesystems leave
    // after a crash) can never decode as valid frames: crc32 of nothing is 0.
    if (bytes === 0) throw new RangeError("spool: empty records are not allowed");
    if (bytes > MAX_RECORD_BYTES) throw new RangeError(`spool: record exceeds ${MAX_RECORD_BYTES} bytes`);
    measured[i] = { payload: typeof r === "string" ? r : Buffer.from(r), bytes };
    frameBytes += FRAME_HEADER_BYTES + bytes;
  }
  return { measured, frameBytes };
}

/** Writes the frames of measured records into `out` from offset `at`; returns where they end. */
export function writeFrames(measured: readonly MeasuredRecord[], out: Buffer, at: number): number {
  for (const { payload, bytes } of measured) {
    const start = at + FRAME_HEADER_BYTES;
    if (typeof payload === "string") {
      if (out.write(payload, start, bytes, "utf8") !== bytes) throw new Error("spool: record encoded to an unexpected length");
    } else {
      out.set(payload, start);
    }
    out.writeUInt32LE(bytes, at);
    out.writeUInt32LE(crc32(out.subarray(start, start + bytes)), at + 4);
    at = start + bytes;
  }
  return at;
}

/** Frames records into one buffer, so one write covers a whole append. */
export function encodeFrames(records: readonly (Uint8Array | string)[]): Uint8Array {
  const { measured, frameBytes } = measureRecords(records);
  const out = Buffer.allocUnsafe(frameBytes);
  writeFrames(measured, out, 0);
  return out;
}

/** Scans frames and stops at the first bad one; records are views into `bytes`. */
export function decodeFrames(bytes: Uint8Array): Decoded {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  let at = 0;
  while (at < bytes.byteLength) {
    const left = bytes.byteLength - at;
    if (left < FRAME_HEADER_BYTES) return { records, goodBytes: at, problem: "partial header" };
    const length = view.getUint32(at, true);
    if (length === 0 || length > MAX_RECORD_BYTES) {
      return { records, goodBytes: at, problem: `bad length ${length}` };
    }
    if (left - FRAME_HEADER_BYTES < length) return { records, goodBytes: at, problem: "short payload" };
    const payload = bytes.subarray(at + FRAME_HEADER_BYTES, at + FRAME_HEADER_BYTES + length);
    if (crc32(payload) !== view.getUint32(at + 4, true)) {
      return { records, goodBytes: at, problem: "checksum mismatch" };
    }
    records.push(payload);
    at += FRAME_HEADER_BYTES + length;
  }
  return { records, goodBytes: at };
}

/** CRC32 over a list of payloads, as hex; the content part of a deterministic dedup token. */
export function recordsChecksum(records: readonly Uint8Array[]): string {
  let sum = 0;
  for (const r of records) sum = crc32(r, sum);
  return sum.toString(16).padStart(8, "0");
}
