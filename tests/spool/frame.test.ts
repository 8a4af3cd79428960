// Frames are written straight into one buffer per group commit (writeFrames); these tests hold them
// to the framing the spool has always written: [u32 length][u32 crc32(payload)][payload], the
// payload being the record's UTF-8 bytes (Buffer.from), so old segments and new ones read alike.
import { afterEach, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import path from "node:path";
import { crc32 } from "node:zlib";
import { decodeFrames, encodeFrames, FRAME_HEADER_BYTES, measureRecords, writeFrames } from "../../src/spool/frame.ts";
import { openSpool } from "../../src/spool/spool.ts";
import { prng, testSeed } from "../helpers/seed.ts";
import { recordingLogger, removeTempDirs, segmentFiles, tempDir, texts } from "./support.ts";

afterEach(removeTempDirs);

/** The framing as the spool wrote it before frames were written in place. */
function referenceFrames(records: readonly (Uint8Array | string)[]): Buffer {
  return Buffer.concat(records.map((r) => {
    const p = typeof r === "string" ? Buffer.from(r, "utf8") : Buffer.from(r);
    const head = Buffer.alloc(FRAME_HEADER_BYTES);
    head.writeUInt32LE(p.byteLength, 0);
    head.writeUInt32LE(crc32(p), 4);
    return Buffer.concat([head, p]);
  }));
}

const PIECES = ["a", "plain ascii", "Grüße", "中文|", "🎉👍🏽", "\ud800", "x\udfffy", "\udc00\ud800", "\n", '{"sign":1,', "\u0000"];

test("frames written in place equal the reference framing, for text of every UTF-8 width and lone surrogates", () => {
  const rng = prng(testSeed("frames", 20261133));
  for (let i = 0; i < 500; i++) {
    const records = Array.from({ length: rng.int(1, 12) }, () => {
      const text = Array.from({ length: rng.int(1, 40) }, () => rng.pick(PIECES)).join("");
      return rng.chance(0.2) ? new TextEncoder().encode(text) : text;
    });
    const expected = referenceFrames(records);
    expect(Buffer.from(encodeFrames(records)).equals(expected)).toBe(true);
    // Several appends into one buffer, as a group commit writes them.
    const halves = [records.slice(0, records.length >> 1), records.slice(records.length >> 1)].filter((h) => h.length > 0);
    const measured = halves.map((h) => measureRecords(h));
    const out = Buffer.alloc(measured.reduce((n, m) => n + m.frameBytes, 0));
    let at = 0;
    for (const m of measured) at = writeFrames(m.measured, out, at);
    expect(at).toBe(out.byteLength);
    expect(out.equals(expected)).toBe(true);
    expect(decodeFrames(out).records.map((r) => Buffer.from(r))).toEqual(records.map((r) => Buffer.from(typeof r === "string" ? Buffer.from(r, "utf8") : r)));
  }
});

test("empty and oversized records are refused when measured, before anything is queued", () => {
  expect(() => measureRecords(["ok", ""])).toThrow(/empty records/);
  expect(() => measureRecords([new Uint8Array(0)])).toThrow(/empty records/);
});

test("concurrent appends of one group commit land as the reference frames, in order; a byte record reused after append is not affected", async () => {
  const dir = tempDir();
  const spool = await openSpool({ dir, capBytes: 64 * 1024 * 1024, logger: recordingLogger() });
  const reused = new TextEncoder().encode("bytes-before");
  const records: (string | Uint8Array)[][] = Array.from({ length: 300 }, (_, i) => [`r${i} ${PIECES[i % PIECES.length]}`, ...(i % 7 === 0 ? ["second"] : [])]);
  records[5] = [reused];
  const done = records.map((r) => spool.append(r));
  reused.set(new TextEncoder().encode("BYTES-AFTER!"));
  await Promise.all(done);
  expect(spool.fsyncs).toBeLessThan(records.length);
  await spool.seal();
  const [ref] = spool.sealedSegments();
  const expected: (string | Uint8Array)[][] = records.map((r, i) => (i === 5 ? ["bytes-before"] : r));
  expect(texts(await spool.readSegment(ref!))).toEqual(expected.flat().map((r) => Buffer.from(r as string).toString()));
  expect(readFileSync(path.join(dir, segmentFiles(dir)[0]!)).equals(referenceFrames(expected.flat()))).toBe(true);
  await spool.close();
});
