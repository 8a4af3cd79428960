// The spool's id names its segments' insert tokens: kept across restarts, and never read from a
// FIFO in its place (round-3 re-audit: the start blocked for good). A damaged id beside segments
// left to replay stops the start (it was replaced silently: a segment a crash left half inserted
// would then be stored again under the new id's token).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataFileError } from "../../src/private-files.ts";
import { segmentName, spoolId } from "../../src/spool/segment-files.ts";

const dir = mkdtempSync(join(tmpdir(), "spool-id-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("the id is kept across restarts; a FIFO in its place is refused at once, naming it", async () => {
  const first = await spoolId(dir);
  expect(first).toMatch(/^[0-9a-f]{16}$/);
  expect(await spoolId(dir)).toBe(first);
  const path = join(dir, "spool.id");
  rmSync(path);
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  const started = performance.now();
  await expect(spoolId(dir)).rejects.toThrow(new DataFileError(`${path} is not a regular file: fix or delete it`));
  expect(performance.now() - started).toBeLessThan(1_000);
});

test("a damaged id beside segments waiting to be replayed is refused, naming the file and what to do; with none it is replaced", async () => {
  const own = mkdtempSync(join(dir, "damaged-"));
  const path = join(own, "spool.id");
  writeFileSync(path, "not an id\n");
  writeFileSync(join(own, segmentName(7)), "left by a crash");
  const refused = spoolId(own);
  await expect(refused).rejects.toBeInstanceOf(DataFileError);
  await expect(refused).rejects.toThrow(`${path} holds no spool id (16 hex digits) and 1 segment(s) wait to be written to ClickHouse under it: restore it from a backup, or delete it`);
  expect(readFileSync(path, "utf8")).toBe("not an id\n"); // left as found
  // Deleted by the operator: a new id, and the segments replay under it.
  rmSync(path);
  const fresh = await spoolId(own);
  expect(fresh).toMatch(/^[0-9a-f]{16}$/);
  // Damaged with nothing waiting (an empty file a crash left on a first start): replaced.
  rmSync(join(own, segmentName(7)));
  writeFileSync(path, "");
  const replaced = await spoolId(own);
  expect(replaced).toMatch(/^[0-9a-f]{16}$/);
  expect(replaced).not.toBe(fresh);
  expect(readdirSync(own).sort()).toEqual(["spool.id"]); // no temporary file left
});

test("a damaged id beside only empty segments (what a clean stop leaves) is replaced: they hold no rows to store twice", async () => {
  const own = mkdtempSync(join(dir, "clean-stop-"));
  const path = join(own, "spool.id");
  writeFileSync(path, "garbage\n");
  writeFileSync(join(own, segmentName(3)), "");
  const replaced = await spoolId(own);
  expect(replaced).toMatch(/^[0-9a-f]{16}$/);
  expect(readFileSync(path, "utf8")).toBe(replaced);
  expect(readdirSync(own).sort()).toEqual([segmentName(3), "spool.id"]);
  // One byte in a segment is a segment waiting: refused as before.
  writeFileSync(path, "garbage\n");
  writeFileSync(join(own, segmentName(4)), "x");
  await expect(spoolId(own)).rejects.toThrow("and 1 segment(s) wait to be written");
});
