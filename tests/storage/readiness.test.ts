// /readyz and the schema: code deployed before its newest migration ran is up but not ready, and
// names the file; once the migrate script has run it becomes ready without a restart.
import { afterAll, expect, test } from "bun:test";
import { cpSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrate } from "../../src/storage/migrate.ts";
import { SCHEMA_DIR } from "../../src/storage/schema-files.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";
import { startTestService, type TestService } from "../helpers/service.ts";

const admin = testClickHouse("default");
const olderSchema = mkdtempSync(join(tmpdir(), "schema-older-"));
let svc: TestService | undefined;

afterAll(async () => {
  await svc?.dispose();
  await admin.close();
  rmSync(olderSchema, { recursive: true, force: true });
});

test("/readyz is 503 naming the newest schema file until it is applied, then 200", async () => {
  const files = readdirSync(SCHEMA_DIR).filter((f) => f.endsWith(".sql")).sort();
  const newest = files.at(-1)!;
  cpSync(SCHEMA_DIR, olderSchema, { recursive: true });
  rmSync(join(olderSchema, newest));
  const database = uniqueDatabase("ready");
  await migrate(admin.client, { database, schemaDir: olderSchema });

  svc = await startTestService({}, { database, migrate: false });
  const before = await svc.app.request("/readyz");
  expect(before.status).toBe(503);
  expect(JSON.stringify(await before.json())).toContain(`pending migrations ${newest}`);

  await migrate(admin.client, { database });
  // Ready once the warm-up has rebuilt the ingest state: it reads every item table, so when the
  // newest file adds one (09: session_items) the start-up's attempt failed, and its retry (every
  // 5 s) is what succeeds.
  let after = await svc.app.request("/readyz");
  for (const deadline = Date.now() + 10_000; after.status !== 200 && Date.now() < deadline; ) {
    await Bun.sleep(250);
    after = await svc.app.request("/readyz");
  }
  expect(after.status).toBe(200);
  expect(await after.json()).toEqual({ status: "ready" });
  expect((await svc.app.request("/readyz")).status).toBe(200);
}, 30_000);
