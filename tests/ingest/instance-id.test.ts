// The instance id names this process's Valkey journal: made once per DATA_DIR, kept across
// restarts, and never read from something that is not the file it wrote (a FIFO would block the
// start, an empty or edited id could name another instance's journal).
import { expect, test } from "bun:test";
import { rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { instanceId } from "../../src/ingest/sessions/journal-recovery.ts";
import { DataFileError } from "../../src/private-files.ts";
import { tempDirs } from "../helpers/temp-dirs.ts";

const tempDir = tempDirs("instance-id-");

test("made once, the same after a restart, different per DATA_DIR", () => {
  const a = tempDir();
  const id = instanceId(a);
  expect(id).toMatch(/^[0-9a-f-]{36}$/);
  expect(instanceId(a)).toBe(id);
  expect(instanceId(tempDir())).not.toBe(id);
});

test("an empty or edited id file, or a FIFO in its place, stops the start naming the file instead of being used or blocking", () => {
  const dir = tempDir();
  const path = join(dir, "instance-id");
  writeFileSync(path, "");
  expect(() => instanceId(dir)).toThrow(new DataFileError(`${path} does not hold this instance's id (a UUID): delete it (a new id is made at the next start)`));
  writeFileSync(path, "another-instance");
  expect(() => instanceId(dir)).toThrow(DataFileError);
  rmSync(path);
  expect(Bun.spawnSync(["mkfifo", path]).exitCode).toBe(0);
  expect(() => instanceId(dir)).toThrow(new DataFileError(`${path} is not a regular file: fix or delete it`));
});
