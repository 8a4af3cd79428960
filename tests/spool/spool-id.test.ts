// The spool's id names its segments' insert tokens: kept across restarts, and never read from a
// FIFO in its place (round-3 re-audit: the start blocked for good).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DataFileError } from "../../src/private-files.ts";
import { spoolId } from "../../src/spool/segment-files.ts";

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
