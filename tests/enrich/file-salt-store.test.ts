import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFileSaltStore } from "../../src/ingest/enrich/file-salt-store.ts";

const dir = mkdtempSync(join(tmpdir(), "salts-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test("a restarted process gets the same salt for a day (the file keeps it, mode 0600); other days differ", async () => {
  const path = join(dir, "salts.json");
  const first = createFileSaltStore(path);
  const a = await first.saltFor("2026-11-27");
  const b = await first.saltFor("2026-11-28");
  expect(a).not.toEqual(b);
  expect(statSync(path).mode & 0o777).toBe(0o600);
  const restarted = createFileSaltStore(path);
  expect(await restarted.saltFor("2026-11-27")).toEqual(a);
  expect(await restarted.saltFor("2026-11-28")).toEqual(b);
});

test("salts older than the retention window are dropped from the file", async () => {
  const path = join(dir, "old.json");
  const now = Date.parse("2026-11-28T12:00:00Z");
  const store = createFileSaltStore(path, { now: () => now });
  const old = await store.saltFor("2026-09-01");
  await store.saltFor("2026-11-28"); // writing a new day prunes the old one
  const reopened = createFileSaltStore(path, { now: () => now });
  expect(await reopened.saltFor("2026-09-01")).not.toEqual(old);
});
