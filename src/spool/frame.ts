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

/** Frames records into one buffer, so one write covers a whole append. */
export function encodeFrames(records: readonly (Uint8Array | string)[]): Uint8Array {
  const payloads = records.map((r) => (typeof r === "string" ? Buffer.from(r, "utf8") : r));
  let total = 0;
  for (const p of payloads) {
    // Zero-length records are refused so that a zero-filled tail (what some filesystems leave
    // after a crash) can never decode as valid frames: crc32 of nothing is 0.
    if (p.byteLength === 0) throw new RangeError("spool: empty records are not allowed");
    if (p.byteLength > MAX_RECORD_BYTES) throw new RangeError(`spool: record exceeds ${MAX_RECORD_BYTES} bytes`);
    total += FRAME_HEADER_BYTES + p.byteLength;
  }
  const out = Buffer.allocUnsafe(total);
  let at = 0;
  for (const p of payloads) {
    out.writeUInt32LE(p.byteLength, at);
    out.writeUInt32LE(crc32(p), at + 4);
    out.set(p, at + FRAME_HEADER_BYTES);
    at += FRAME_HEADER_BYTES + p.byteLength;
  }
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
