// Cluster mode: the single-server schema rewritten, as text, for a ClickHouse cluster.
//
// Naming: every MergeTree-family table `<db>.<name>` becomes a replicated table
// `<db>.<name>_local` on every shard plus a Distributed table under the public name
// `<db>.<name>`, so the service reads and writes the same names in both modes. Materialized
// views attach to the local tables (`FROM <db>.sessions_local ... TO <db>.daily_session_stats_local`):
// each shard aggregates the rows it holds, and reads through the Distributed target merge the
// shards (the views' targets are read with sum / uniqExactMerge anyway). Every DDL statement runs
// `ON CLUSTER <cluster>`.
//
// Sharding keys are deterministic so that a replayed insert (same insert_deduplication_token)
// splits into the same per-shard blocks and each shard drops its block as a duplicate; with
// rand() a replay would send different rows under the same token. Rows of one session stay on one
// shard, so a session's cancel and new rows collapse together and windowFunnel by session is
// shard-local. The writer should insert with distributed_foreground_insert = 1 (the insert is
// acknowledged once the shards have it).
import type { SchemaFile } from "./schema-files.ts";

export interface ClusterOptions {
  cluster: string;
  database: string;
}

/** Sharding key of the Distributed table over each raw table; targets of views have none. */
const SHARDING_KEYS: Record<string, string> = {
  sessions: "cityHash64(session_id)",
  events: "cityHash64(session_id)",
  page_views: "cityHash64(session_id)",
  funnel_events: "cityHash64(session_id)",
  errors: "cityHash64(session_id)",
  web_vitals: "cityHash64(session_id)",
  session_items: "cityHash64(session_id)",
  session_aliases: "cityHash64(alias)",
  api_keys: "cityHash64(id)",
};

/** ZooKeeper / Keeper path of a replicated table: one replica set per shard. */
export const REPLICA_PATH = "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'";

export class ClusterDdlError extends Error {}

/** Rewrites every statement of `files` for `cluster` (the files' checksums stay those of the text). */
export function toClusterMode(files: SchemaFile[], opts: ClusterOptions): SchemaFile[] {
  const local = new Set<string>();
  for (const file of files) {
    for (const s of file.statements) {
      const t = parseCreateTable(s);
      if (t && isPlainMergeTree(t.engine)) local.add(t.name);
    }
  }
  const ctx = { ...opts, local };
  return files.map((file) => ({ ...file, statements: file.statements.flatMap((s) => clusterStatement(s, ctx)) }));
}

interface Context extends ClusterOptions {
  /** Tables that become `<name>_local` + a Distributed table. */
  local: Set<string>;
}

const NAME = String.raw`(?:(\w+)\.)?(\w+)`;
const CREATE_DATABASE = new RegExp(String.raw`^(CREATE\s+DATABASE\s+(?:IF\s+NOT\s+EXISTS\s+)?\w+)`, "i");
const CREATE_TABLE = new RegExp(String.raw`^(CREATE\s+TABLE\s+(?:IF\s+NOT\s+EXISTS\s+)?)${NAME}`, "i");
const CREATE_VIEW = new RegExp(String.raw`^(CREATE\s+(MATERIALIZED\s+)?VIEW\s+(?:IF\s+NOT\s+EXISTS\s+)?)${NAME}`, "i");
const ALTER_TABLE = new RegExp(String.raw`^(ALTER\s+TABLE\s+)${NAME}`, "i");
const DROP = new RegExp(String.raw`^(DROP\s+(?:TABLE|VIEW|DICTIONARY)\s+(?:IF\s+EXISTS\s+)?)${NAME}`, "i");
const INSERT_SELECT = new RegExp(String.raw`^(INSERT\s+INTO\s+)${NAME}(?=[\s(])`, "i");
const SELECT = /^SELECT\b/i;
const MODIFY_QUERY = /\bMODIFY\s+QUERY\b/i;
const ENGINE = /\bENGINE\s*=\s*(\w+)/i;

function clusterStatement(sql: string, ctx: Context): string[] {
  const on = ` ON CLUSTER ${ctx.cluster}`;
  let m: RegExpExecArray | null;
  if ((m = CREATE_DATABASE.exec(sql))) return [m[1] + on + sql.slice(m[0].length)];

  if ((m = CREATE_VIEW.exec(sql))) {
    const [head, prefix, materialized, db, name] = m as unknown as [string, string, string | undefined, string | undefined, string];
    requireDatabase(db, name, sql, ctx);
    // A materialized view runs on each shard over the rows inserted there: local tables only.
    // A plain view runs at query time, so it keeps reading the Distributed tables.
    const body = materialized ? toLocalReferences(sql.slice(head.length), ctx) : sql.slice(head.length);
    return [`${prefix}${db}.${name}${on}${body}`];
  }

  if ((m = CREATE_TABLE.exec(sql))) {
    const [head, prefix, db, name] = m as unknown as [string, string, string | undefined, string];
    requireDatabase(db, name, sql, ctx);
    const rest = sql.slice(head.length);
    if (!ctx.local.has(name)) return [`${prefix}${db}.${name}${on}${rest}`];
    const key = SHARDING_KEYS[name];
    return [
      `${prefix}${db}.${name}_local${on}${replicateEngine(rest, sql)}`,
      `${prefix}${db}.${name}${on}\nAS ${db}.${name}_local\nENGINE = Distributed(${ctx.cluster}, ${db}, ${name}_local${key ? `, ${key}` : ""})`,
    ];
  }

  if ((m = ALTER_TABLE.exec(sql))) {
    const [head, prefix, db, name] = m as unknown as [string, string, string | undefined, string];
    requireDatabase(db, name, sql, ctx);
    let rest = sql.slice(head.length);
    // A view's new query, like its CREATE, reads and writes the local tables.
    if (MODIFY_QUERY.test(rest)) rest = toLocalReferences(rest, ctx);
    if (!ctx.local.has(name)) return [`${prefix}${db}.${name}${on}${rest}`];
    const statements = [`${prefix}${db}.${name}_local${on}${rest}`];
    // Column changes must reach the Distributed table too, or it no longer matches the shards.
    if (/\bCOLUMN\b/i.test(rest)) statements.push(`${prefix}${db}.${name}${on}${rest}`);
    return statements;
  }

  if ((m = DROP.exec(sql))) {
    const [head, prefix, db, name] = m as unknown as [string, string, string | undefined, string];
    requireDatabase(db, name, sql, ctx);
    const rest = sql.slice(head.length);
    if (!ctx.local.has(name)) return [`${prefix}${db}.${name}${on}${rest}`];
    return [`${prefix}${db}.${name}${on}${rest}`, `${prefix}${db}.${name}_local${on}${rest}`];
  }

  if ((m = INSERT_SELECT.exec(sql)) && /\bSELECT\b/i.test(sql)) {
    // A backfill (INSERT INTO <target> SELECT ...): no ON CLUSTER for inserts, so it runs once, on
    // the host that migrates. It writes that host's local target and reads every shard through
    // the Distributed tables; reads through the Distributed target merge the shards anyway.
    const [head, prefix, db, name] = m as unknown as [string, string, string | undefined, string];
    requireDatabase(db, name, sql, ctx);
    return [`${prefix}${db}.${ctx.local.has(name) ? `${name}_local` : name}${sql.slice(head.length)}`];
  }

  if (SELECT.test(sql)) {
    // A plain SELECT (a pause or a check) runs once, on the host that migrates; the public names
    // are the Distributed tables, so it sees every shard's rows.
    return [sql];
  }

  throw new ClusterDdlError(`cluster mode cannot translate this statement: ${firstLine(sql)}`);
}

/** The table a CREATE TABLE statement makes, and its engine name. */
function parseCreateTable(sql: string): { name: string; engine: string } | undefined {
  const m = CREATE_TABLE.exec(sql);
  const engine = ENGINE.exec(sql)?.[1];
  return m && engine ? { name: m[3]!, engine } : undefined;
}

function isPlainMergeTree(engine: string): boolean {
  return engine.endsWith("MergeTree") && !engine.startsWith("Replicated");
}

/** `ENGINE = XMergeTree(args)` → `ENGINE = ReplicatedXMergeTree('<path>', '{replica}', args)`. */
function replicateEngine(rest: string, sql: string): string {
  const m = ENGINE.exec(rest);
  if (!m) throw new ClusterDdlError(`no ENGINE in: ${firstLine(sql)}`);
  const after = m.index + m[0].length;
  let args = "";
  let end = after;
  const open = /^\s*\(/.exec(rest.slice(after));
  if (open) {
    const start = after + open[0].length;
    end = closingParen(rest, start - 1);
    args = rest.slice(start, end).trim();
    end += 1;
  }
  const engine = `ENGINE = Replicated${m[1]}(${REPLICA_PATH}${args ? `, ${args}` : ""})`;
  return rest.slice(0, m.index) + engine + rest.slice(end);
}

function closingParen(text: string, open: number): number {
  let depth = 0;
  for (let i = open; i < text.length; i++) {
    if (text[i] === "(") depth++;
    else if (text[i] === ")" && --depth === 0) return i;
  }
  throw new ClusterDdlError("unbalanced parentheses in ENGINE");
}

/** `<db>.<table>` → `<db>.<table>_local` for every table that has a local twin. */
function toLocalReferences(sql: string, ctx: Context): string {
  return sql.replace(new RegExp(String.raw`\b${ctx.database}\.(\w+)\b`, "g"), (whole, name: string) =>
    ctx.local.has(name) ? `${ctx.database}.${name}_local` : whole);
}

/** Cluster DDL must name its database: an unqualified name would mean each host's default. */
function requireDatabase(db: string | undefined, name: string, sql: string, ctx: Context): asserts db is string {
  if (db !== ctx.database) {
    throw new ClusterDdlError(`${name}: write tables as ${ctx.database}.<name> (in: ${firstLine(sql)})`);
  }
}

function firstLine(sql: string): string {
  return sql.split("\n", 1)[0]!.slice(0, 120);
}
