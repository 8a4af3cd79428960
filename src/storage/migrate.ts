// Applies the schema files in order, one statement per request, and records each applied file
// with its checksum in `<database>.schema_migrations`. Safe to re-run: an applied file is skipped;
// an applied file whose text changed is refused (write a new file instead). Every statement is
// `IF NOT EXISTS`-style, so a file that failed half-way can simply be applied again.
import type { ClickHouseClient } from "@clickhouse/client-web";
import { ClusterDdlError, toClusterMode } from "./cluster-ddl.ts";
import { readSchemaFiles, SCHEMA_DIR, type SchemaFile } from "./schema-files.ts";

export interface MigrateOptions {
  /** The database the files are written for (replaces `analytics_db`). */
  database: string;
  /** Cluster name: `ON CLUSTER` DDL, replicated local tables, Distributed public tables. */
  cluster?: string;
  /** Defaults to infrastructure/clickhouse/schemas. */
  schemaDir?: string;
}

/** A migration that must not run: a changed applied file, bad SQL, or a failed statement. */
export class MigrationError extends Error {
  constructor(message: string, readonly file?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "MigrationError";
  }
}

export interface AppliedFile {
  file: string;
  statements: number;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Applies every file not applied yet; returns what it applied (empty when current). */
export async function migrate(client: ClickHouseClient, opts: MigrateOptions): Promise<AppliedFile[]> {
  const files = planFiles(opts);
  for (const statement of bootstrapStatements(opts)) await run(client, statement, "schema_migrations");
  const pending = await pendingFiles(client, opts, files);
  const applied: AppliedFile[] = [];
  for (const file of pending) {
    for (const statement of file.statements) await run(client, statement, file.name);
    await client.command({
      query: `INSERT INTO ${opts.database}.schema_migrations (file, checksum, applied_at) VALUES ({file:String}, {checksum:String}, now64(3))`,
      query_params: { file: file.name, checksum: file.checksum },
    });
    applied.push({ file: file.name, statements: file.statements.length });
  }
  return applied;
}

/** Names of the files not applied yet; throws MigrationError when an applied file has changed. */
export async function pendingMigrations(client: ClickHouseClient, opts: MigrateOptions): Promise<string[]> {
  return (await pendingFiles(client, opts, planFiles(opts))).map((f) => f.name);
}

/** Every statement a migration from scratch would run, in order (for `--print`). */
export function migrationStatements(opts: MigrateOptions): { file: string; statements: string[] }[] {
  return [
    { file: "(schema_migrations)", statements: bootstrapStatements(opts) },
    ...planFiles(opts).map((f) => ({ file: f.name, statements: f.statements })),
  ];
}

/** The schema files, for the configured database and (when set) cluster. */
function planFiles(opts: MigrateOptions): SchemaFile[] {
  checkIdentifier("database", opts.database);
  if (opts.cluster !== undefined) checkIdentifier("cluster", opts.cluster);
  let files: SchemaFile[];
  try {
    files = readSchemaFiles(opts.schemaDir ?? SCHEMA_DIR, opts.database);
  } catch (err) {
    if (err instanceof SyntaxError) throw new MigrationError(`schema files: ${err.message}`, undefined, { cause: err });
    throw err;
  }
  if (opts.cluster === undefined) return files.map(reattachModifiedViews);
  try {
    return toClusterMode(files, { cluster: opts.cluster, database: opts.database }).map(reattachModifiedViews);
  } catch (err) {
    if (err instanceof ClusterDdlError) throw new MigrationError(err.message, undefined, { cause: err });
    throw err;
  }
}

const MODIFY_QUERY = /^ALTER\s+TABLE\s+([\w.]+)(\s+ON\s+CLUSTER\s+\w+)?\s+MODIFY\s+QUERY\b/i;

/**
 * After `ALTER TABLE <view> MODIFY QUERY`, the view is detached and attached again. The server
 * that ran the ALTER keeps the view's changed query in memory; a restarted server loads it from its
 * metadata file, and the two derive different deduplication tokens for the view's blocks (measured
 * on the embedded engine: a spool segment flushed by the process that migrated and replayed with
 * the same insert_deduplication_token after a kill was dropped in the raw table and counted twice
 * in each view that schemas/04 had changed). Attached again, the view is the one a restart loads.
 * Generated here, not written in the files: their checksums stay those already recorded.
 */
function reattachModifiedViews(file: SchemaFile): SchemaFile {
  if (!file.statements.some((st) => MODIFY_QUERY.test(st))) return file;
  const statements: string[] = [];
  for (const st of file.statements) {
    statements.push(st);
    const m = MODIFY_QUERY.exec(st);
    if (m) statements.push(`DETACH TABLE ${m[1]}${m[2] ?? ""}`, `ATTACH TABLE ${m[1]}${m[2] ?? ""}`);
  }
  return { ...file, statements };
}

/** The database and the record of applied files, before any file runs. */
function bootstrapStatements({ database, cluster }: MigrateOptions): string[] {
  const on = cluster ? ` ON CLUSTER ${cluster}` : "";
  // One replica set over the whole cluster (no {shard} in the path): every host sees the record.
  const engine = cluster
    ? "ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}')"
    : "MergeTree";
  return [
    `CREATE DATABASE IF NOT EXISTS ${database}${on}`,
    `CREATE TABLE IF NOT EXISTS ${database}.schema_migrations${on}
(
    file       String,
    checksum   String,
    applied_at DateTime64(3, 'UTC')
)
ENGINE = ${engine}
ORDER BY file`,
  ];
}

async function pendingFiles(client: ClickHouseClient, opts: MigrateOptions, files: SchemaFile[]): Promise<SchemaFile[]> {
  const recorded = await recordedChecksums(client, opts.database);
  for (const file of files) {
    const checksum = recorded.get(file.name);
    if (checksum !== undefined && checksum !== file.checksum) {
      throw new MigrationError(
        `${file.name} was changed after it was applied (recorded sha256 ${checksum.slice(0, 12)}…, now ${file.checksum.slice(0, 12)}…); put schema changes in a new file`,
        file.name,
      );
    }
  }
  return files.filter((f) => !recorded.has(f.name));
}

async function recordedChecksums(client: ClickHouseClient, database: string): Promise<Map<string, string>> {
  const exists = await client.query({
    query: "SELECT count() AS n FROM system.tables WHERE database = {database:String} AND name = 'schema_migrations'",
    query_params: { database },
    format: "JSONEachRow",
  });
  const [row] = await exists.json<{ n: number | string }>();
  if (Number(row?.n ?? 0) === 0) return new Map();
  const result = await client.query({
    query: `SELECT file, argMax(checksum, applied_at) AS checksum FROM ${database}.schema_migrations GROUP BY file`,
    format: "JSONEachRow",
  });
  const rows = await result.json<{ file: string; checksum: string }>();
  return new Map(rows.map((r) => [r.file, r.checksum]));
}

async function run(client: ClickHouseClient, statement: string, file: string): Promise<void> {
  try {
    await client.command({ query: statement });
  } catch (err) {
    const message = err instanceof Error ? err.message.split("\n", 1)[0] : String(err);
    throw new MigrationError(`${file}: ${message} (in: ${statement.split("\n", 1)[0]})`, file, { cause: err });
  }
}

function checkIdentifier(what: string, value: string): void {
  if (!IDENTIFIER.test(value)) throw new MigrationError(`${what} name must be letters, digits and _ (got ${JSON.stringify(value)})`);
}
