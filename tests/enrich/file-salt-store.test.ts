import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createFileSaltStore } from "../../src/ingest/enrich/file-salt-store.ts";
import { DataFileError } from "../../src/private-files.ts";

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

// Re-audit: a corrupt or unreadable file was ignored and, at the first ingest, overwritten with a
// new salt (the day's visitor ids changed); a directory in its place made every ingest a 500.
test("a salts file that is there but unusable stops the start, naming it, and is left as it was", () => {
  const corrupt = join(dir, "corrupt.json");
  writeFileSync(corrupt, "{not json");
  expect(() => createFileSaltStore(corrupt)).toThrow(new DataFileError(`${corrupt} is not a salts file (a JSON object of days): restore it, or delete it (today's visitor ids then change)`));
  expect(readFileSync(corrupt, "utf8")).toBe("{not json");
  const array = join(dir, "array.json");
  writeFileSync(array, "[]");
  expect(() => createFileSaltStore(array)).toThrow(DataFileError);
  const directory = join(dir, "directory.json");
  mkdirSync(directory);
  expect(() => createFileSaltStore(directory)).toThrow(new DataFileError(`${directory} is not a regular file: fix or delete it`));
  expect(() => createFileSaltStore(join(dir, "absent.json"))).not.toThrow();
});

// An entry that was not a day's salt was dropped silently, and today's, dropped so, drawn again.
test("a salts file with an entry that is not a day's salt stops the start, naming the entry but not its value", async () => {
  const path = join(dir, "entries.json");
  const good = "ab".repeat(32);
  for (const [entries, named] of [
    [{ "2026-11-27": good, "2026-11-28": "secret-but-short" }, "2026-11-28"],
    [{ "2026-11-27": good, yesterday: good }, "yesterday"],
    [{ "2026-11-28": 42 }, "2026-11-28"],
  ] as const) {
    writeFileSync(path, JSON.stringify(entries));
    let message = "";
    try {
      createFileSaltStore(path);
    } catch (err) {
      expect(err).toBeInstanceOf(DataFileError);
      message = (err as Error).message;
    }
    expect(message).toBe(`${path}: entry "${named}" is not a day (YYYY-MM-DD) with a salt (64 hex digits): restore the file, or delete the entry (that day's visitor ids then change)`);
  }
  expect(readFileSync(path, "utf8")).toBe(JSON.stringify({ "2026-11-28": 42 })); // left as found
  writeFileSync(path, JSON.stringify({ "2026-11-27": good }));
  expect(Buffer.from(await createFileSaltStore(path).saltFor("2026-11-27")).toString("hex")).toBe(good);
});
