// A fresh database with the service's schema (api_keys among it), on the shared embedded engine.
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";
import type { ClickHouse } from "../../src/storage/clickhouse.ts";
import { migrate } from "../../src/storage/migrate.ts";

/** Migrates a unique database and returns a client defaulting to it. */
export async function keysDatabase(): Promise<{ ch: ClickHouse; database: string }> {
  const database = uniqueDatabase("auth");
  const bootstrap = testClickHouse("default");
  try {
    await migrate(bootstrap.client, { database });
  } finally {
    await bootstrap.close();
  }
  return { ch: testClickHouse(database), database };
}
