// The migrate script on the real embedded engine: applies every file once, refuses changed
// files, and the CLI reports that with exit code 2.
import { afterAll, describe, expect, test } from "bun:test";
import { appendFileSync, cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { migrate, MigrationError, pendingMigrations } from "../../src/storage/migrate.ts";
import { SCHEMA_DIR } from "../../src/storage/schema-files.ts";
import { testClickHouse, uniqueDatabase } from "../helpers/clickhouse.ts";

const ch = testClickHouse("default");
const client = ch.client;
const schemaFiles = readdirSync(SCHEMA_DIR).filter((f) => f.endsWith(".sql")).sort();
const scratch: string[] = [];

afterAll(async () => {
  for (const dir of scratch) rmSync(dir, { recursive: true, force: true });
  await ch.close();
});

/** A private copy of the schema directory that a test may edit. */
function schemaCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), "schema-copy-"));
  scratch.push(dir);
  cpSync(SCHEMA_DIR, dir, { recursive: true });
  return dir;
}

async function rows<T>(query: string): Promise<T[]> {
  return (await client.query({ query, format: "JSONEachRow" })).json<T>();
}

async function recorded(db: string) {
  return rows<{ file: string; checksum: string; applied_at: string }>(
    `SELECT file, checksum, applied_at FROM ${db}.schema_migrations ORDER BY file`,
  );
}

describe("migrate", () => {
  test("the first run applies every file in order; the second applies nothing", async () => {
    const db = uniqueDatabase("mig");
    expect(await pendingMigrations(client, { database: db })).toEqual(schemaFiles);

    const first = await migrate(client, { database: db });
    expect(first.map((a) => a.file)).toEqual(schemaFiles);
    expect(first.every((a) => a.statements > 0)).toBe(true);

    const tables = (await rows<{ name: string }>(`SELECT name FROM system.tables WHERE database = '${db}'`)).map((r) => r.name);
    for (const name of [
      "sessions", "events", "page_views", "funnel_events", "errors", "web_vitals", "user_profiles", "api_keys",
      "daily_session_stats", "hourly_event_counts", "hourly_session_metrics", "session_distributions",
      "utm_campaign_stats", "funnel_stats", "page_performance_stats", "schema_migrations",
      "daily_session_stats_mv", "hourly_event_counts_mv", "hourly_session_metrics_mv", "session_dist_mv",
      "utm_campaign_stats_mv", "funnel_stats_mv", "page_performance_mv", "user_profiles_pageviews_mv",
      "user_profiles_events_mv",
    ]) {
      expect(tables).toContain(name);
    }

    const before = await recorded(db);
    expect(before.map((r) => r.file)).toEqual(schemaFiles);
    expect(before.every((r) => /^[0-9a-f]{64}$/.test(r.checksum))).toBe(true);

    expect(await migrate(client, { database: db })).toEqual([]);
    expect(await recorded(db)).toEqual(before);
    expect(await pendingMigrations(client, { database: db })).toEqual([]);
  });

  // Retention is by TTL (README "Retention"): user_profiles, holding the application's user ids,
  // was the one data table without one (response audit); only the service's own bookkeeping
  // (keys, applied migrations) is kept without a TTL.
  test("every table that holds tracked data has a TTL; only api_keys and schema_migrations do not", async () => {
    const database = uniqueDatabase("ttl");
    await migrate(client, { database });
    const tables = await rows<{ name: string; ttl: string }>(
      `SELECT name, extract(create_table_query, 'TTL [^S]*') AS ttl FROM system.tables WHERE database = '${database}' AND engine != 'MaterializedView' ORDER BY name`,
    );
    expect(tables.filter((t) => t.ttl === "").map((t) => t.name)).toEqual(["api_keys", "schema_migrations"]);
    expect(tables.find((t) => t.name === "user_profiles")?.ttl.trim()).toBe("TTL toDateTime(last_seen) + toIntervalYear(1)");
  });

  test("an applied file that changed is refused, naming the file; a new file is applied alone", async () => {
    const db = uniqueDatabase("mig");
    const dir = schemaCopy();
    await migrate(client, { database: db, schemaDir: dir });

    writeFileSync(join(dir, "99-extra.sql"), `CREATE TABLE IF NOT EXISTS analytics_db.extra (a UInt8) ENGINE = MergeTree ORDER BY a;\n`);
    expect(await pendingMigrations(client, { database: db, schemaDir: dir })).toEqual(["99-extra.sql"]);
    expect(await migrate(client, { database: db, schemaDir: dir })).toEqual([{ file: "99-extra.sql", statements: 1 }]);

    const before = await recorded(db);
    appendFileSync(join(dir, "02-analytics_db.sql"), "\n-- an innocent-looking edit\n");
    for (const attempt of [() => migrate(client, { database: db, schemaDir: dir }), () => pendingMigrations(client, { database: db, schemaDir: dir })]) {
      const error = await attempt().then(() => undefined, (e: unknown) => e);
      expect(error).toBeInstanceOf(MigrationError);
      expect((error as MigrationError).file).toBe("02-analytics_db.sql");
      expect((error as MigrationError).message).toContain("02-analytics_db.sql");
    }
    expect(await recorded(db)).toEqual(before);
  });

  test("a failing statement is a MigrationError naming its file, and the file stays pending", async () => {
    const db = uniqueDatabase("mig");
    const dir = schemaCopy();
    writeFileSync(join(dir, "99-broken.sql"), "CREATE TABLE IF NOT EXISTS analytics_db.broken (a NoSuchType) ENGINE = MergeTree ORDER BY a;\n");
    const error = await migrate(client, { database: db, schemaDir: dir }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as MigrationError).file).toBe("99-broken.sql");
    expect(await pendingMigrations(client, { database: db, schemaDir: dir })).toEqual(["99-broken.sql"]);
  });

  test("the database name is substituted as a whole word only", async () => {
    const db = uniqueDatabase("mig");
    const dir = mkdtempSync(join(tmpdir(), "schema-words-"));
    scratch.push(dir);
    writeFileSync(join(dir, "01-db.sql"), "CREATE DATABASE IF NOT EXISTS analytics_db;\n");
    writeFileSync(
      join(dir, "02-t.sql"),
      "-- analytics_db; with a ; in a comment\nCREATE TABLE IF NOT EXISTS analytics_db.t (analytics_db_x String DEFAULT 'analytics_db;x') ENGINE = MergeTree ORDER BY analytics_db_x;\n",
    );
    await migrate(client, { database: db, schemaDir: dir });
    const [row] = await rows<{ name: string; default_expression: string }>(
      `SELECT name, default_expression FROM system.columns WHERE database = '${db}' AND table = 't'`,
    );
    expect(row).toEqual({ name: "analytics_db_x", default_expression: `'${db};x'` });
  });

  test("bad database or cluster names are refused before anything runs", async () => {
    await expect(migrate(client, { database: "x; DROP DATABASE y" })).rejects.toBeInstanceOf(MigrationError);
    await expect(pendingMigrations(client, { database: "ok", cluster: "a b" })).rejects.toBeInstanceOf(MigrationError);
  });
});

describe("migrate CLI", () => {
  // A second process cannot open this process's engine directory: the CLI gets its own.
  async function cli(args: string[], dataDir: string) {
    const proc = Bun.spawn([process.execPath, "src/storage/migrate-cli.ts", ...args], {
      cwd: join(import.meta.dir, "../.."),
      env: { PATH: process.env.PATH ?? "", DATA_DIR: dataDir, CLICKHOUSE_DATABASE: "cli_db" },
      stdout: "pipe",
      stderr: "pipe",
    });
    const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    return { stdout, stderr, code };
  }

  test("applies, is current on a re-run, and exits 2 with one line when an applied file changed", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "migrate-cli-"));
    scratch.push(dataDir);
    const dir = schemaCopy();

    const first = await cli(["--schema-dir", dir], dataDir);
    expect(first).toMatchObject({ code: 0, stderr: "" });
    for (const f of schemaFiles) expect(first.stdout).toContain(`applied ${f}`);

    const second = await cli(["--schema-dir", dir], dataDir);
    expect(second).toMatchObject({ code: 0, stderr: "" });
    expect(second.stdout).toContain("nothing to apply");

    appendFileSync(join(dir, "03-materialized_views.sql"), "\n-- edited\n");
    const third = await cli(["--schema-dir", dir], dataDir);
    expect(third.code).toBe(2);
    expect(third.stderr.trim().split("\n")).toHaveLength(1);
    expect(third.stderr).toContain("03-materialized_views.sql");
  }, 60_000);

  test("exits 2 on unknown arguments and on bad configuration, with one line", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "migrate-cli-"));
    scratch.push(dataDir);
    const bad = await cli(["--nope"], dataDir);
    expect(bad.code).toBe(2);
    expect(bad.stderr.trim().split("\n")).toHaveLength(1);

    const proc = Bun.spawn([process.execPath, "src/storage/migrate-cli.ts"], {
      cwd: join(import.meta.dir, "../.."),
      env: { PATH: process.env.PATH ?? "", DATA_DIR: dataDir, CLICKHOUSE_DATABASE: "not-a-name" },
      stderr: "pipe",
    });
    const stderr = await new Response(proc.stderr).text();
    expect(await proc.exited).toBe(2);
    expect(stderr).toContain("CLICKHOUSE_DATABASE");
  }, 60_000);

  test("--print writes the cluster statements without connecting", async () => {
    const dataDir = join(tmpdir(), `migrate-cli-never-${process.pid}`);
    const out = await cli(["--print", "--cluster", "prod"], dataDir);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain("CREATE TABLE IF NOT EXISTS cli_db.sessions_local ON CLUSTER prod");
    expect(out.stdout).toContain("ENGINE = Distributed(prod, cli_db, sessions_local, cityHash64(session_id))");
    expect(readdirSync(tmpdir())).not.toContain(`migrate-cli-never-${process.pid}`);
  });
});
