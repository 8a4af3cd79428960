// The one embedded ClickHouse engine a test run shares (libchdb binds one data directory per
// process). Tests isolate themselves by database name.
import { afterAll, beforeAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClickHouse, type ClickHouse } from "../../src/storage/clickhouse.ts";
import { migrate } from "../../src/storage/migrate.ts";

let dataDir: string | undefined;

/** The data directory of the shared engine (TEST_DATA_DIR from the preload, else a temp dir). */
export function testDataDir(): string {
  dataDir ??= process.env.TEST_DATA_DIR ?? mkdtempSync(join(tmpdir(), "analytics-test-"));
  return dataDir;
}

let counter = 0;
/** A database name no other test uses. */
export function uniqueDatabase(prefix = "t"): string {
  return `${prefix}_${process.pid}_${Date.now().toString(36)}_${counter++}`;
}

/** A client-web client on the shared embedded engine, defaulting to `database`. */
export function testClickHouse(database = "default"): ClickHouse {
  return createClickHouse({ database, dataDir: testDataDir() });
}

/**
 * For sink tests: a migrated database of the file's own and a scratch directory, made before the
 * file's tests and the directory removed after them (call at the top level of a test file).
 */
export function migratedDatabaseWithScratch(name: string): { database: string; ch: ClickHouse; dir: string } {
  const database = uniqueDatabase(name);
  const dir = mkdtempSync(join(tmpdir(), `${name}-`));
  beforeAll(() => migrate(testClickHouse("default").client, { database }));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  return { database, ch: testClickHouse(database), dir };
}
