// Cluster mode is a text transform; the embedded engine has no cluster, so every statement is
// checked by ClickHouse's own parser (formatQuerySingleLine) rather than by running it.
import { afterAll, describe, expect, test } from "bun:test";
import { ClusterDdlError, toClusterMode } from "../../src/storage/cluster-ddl.ts";
import { migrationStatements } from "../../src/storage/migrate.ts";
import { splitStatements, substituteDatabase } from "../../src/storage/schema-files.ts";
import { testClickHouse } from "../helpers/clickhouse.ts";

const ch = testClickHouse("default");
afterAll(() => ch.close());

/** ClickHouse's parser, as a function: the statement on one line, or a thrown syntax error. */
async function parse(statement: string): Promise<string> {
  const result = await ch.client.query({
    query: "SELECT formatQuerySingleLine({statement:String}) AS q",
    query_params: { statement },
    format: "JSONEachRow",
  });
  const [row] = await result.json<{ q: string }>();
  return row!.q;
}

const all = migrationStatements({ database: "analytics_db", cluster: "prod" }).flatMap((f) => f.statements);

describe("cluster mode", () => {
  test("the parser check can fail", async () => {
    await expect(parse("CREATE TABLE analytics_db.x ON CLUSTER prod (a UInt8")).rejects.toThrow();
  });

  test("every statement parses and runs ON CLUSTER (backfills and checks run once)", async () => {
    expect(all.length).toBeGreaterThan(30);
    for (const statement of all) {
      const formatted = await parse(statement);
      if (/^(INSERT|SELECT)\b/.test(formatted)) continue;
      expect(formatted).toContain(" ON CLUSTER prod");
    }
  });

  test("views' new queries read the local tables; backfills write a local target from the Distributed tables", async () => {
    const formatted = await Promise.all(all.map(parse));
    const modified = formatted.filter((s) => /MODIFY QUERY /.test(s));
    expect(modified.length).toBe(5);
    for (const s of modified) {
      expect(s).toMatch(/^ALTER TABLE analytics_db\.\w+_mv ON CLUSTER prod \(?MODIFY QUERY /);
      expect(s).not.toMatch(/FROM analytics_db\.(sessions|events)\b(?!_local)/);
      expect(s).toMatch(/FROM analytics_db\.(sessions|events)_local\b/);
    }
    const backfills = formatted.filter((s) => s.startsWith("INSERT"));
    expect(backfills.length).toBe(6); // 04: five view targets; 07: session_cancels
    for (const s of backfills) {
      expect(s).toMatch(/^INSERT INTO analytics_db\.\w+_local \(/);
      expect(s).toMatch(/FROM analytics_db\.(sessions|events) /);
    }
    const pauses = formatted.filter((s) => s.startsWith("SELECT"));
    expect(pauses.length).toBe(2); // 04 and 07
    for (const pause of pauses) {
      expect(pause).toContain("sleep(");
      expect(pause).toMatch(/FROM analytics_db\.sessions[) ]/); // through the Distributed table: every shard's rows
    }
  });

  test("MergeTree tables become replicated <name>_local tables behind Distributed public names", async () => {
    const formatted = await Promise.all(all.map(parse));
    const creates = formatted.filter((s) => s.startsWith("CREATE TABLE"));
    for (const s of creates) {
      // No plain MergeTree engine survives.
      expect(s).not.toMatch(/ENGINE = (?!Replicated)\w*MergeTree/);
    }
    const sessionsLocal = creates.find((s) => s.includes("analytics_db.sessions_local "))!;
    expect(sessionsLocal).toContain(
      "ENGINE = ReplicatedVersionedCollapsingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}', sign, version)",
    );
    expect(sessionsLocal).toContain("TTL toDateTime(started_at) + toIntervalYear(1)");
    const sessions = creates.find((s) => s.startsWith("CREATE TABLE IF NOT EXISTS analytics_db.sessions ON CLUSTER"))!;
    expect(sessions).toContain("AS analytics_db.sessions_local ENGINE = Distributed(prod, analytics_db, sessions_local, cityHash64(session_id))");
    for (const name of ["events", "page_views", "funnel_events", "errors", "web_vitals", "user_profiles", "api_keys", "daily_session_stats", "page_performance_stats"]) {
      expect(creates.some((s) => s.includes(`analytics_db.${name}_local ON CLUSTER prod`))).toBe(true);
      expect(creates.some((s) => s.includes(`analytics_db.${name} ON CLUSTER prod AS analytics_db.${name}_local ENGINE = Distributed(prod, analytics_db, ${name}_local`))).toBe(true);
    }
  });

  test("materialized views read and write the local tables only", async () => {
    const views = (await Promise.all(all.map(parse))).filter((s) => s.startsWith("CREATE MATERIALIZED VIEW"));
    expect(views.length).toBe(11);
    for (const v of views) {
      const refs = [...v.matchAll(/analytics_db\.(\w+)/g)].map((m) => m[1]!).slice(1); // [0] is the view
      expect(refs.length).toBeGreaterThanOrEqual(2);
      for (const r of refs) expect(r).toEndWith("_local");
    }
  });

  test("ALTER, DROP and plain views; unknown statements and unqualified names are refused", () => {
    const file = (sql: string) => ({ name: "x.sql", checksum: "", statements: splitStatements(substituteDatabase(sql, "db")) });
    const schema = file("CREATE TABLE analytics_db.t (a UInt8) ENGINE = ReplacingMergeTree() ORDER BY a");
    const run = (sql: string) => toClusterMode([schema, file(sql)], { cluster: "c", database: "db" })[1]!.statements;

    expect(toClusterMode([schema], { cluster: "c", database: "db" })[0]!.statements[0]).toContain(
      "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}') ORDER BY a",
    );
    expect(run("ALTER TABLE analytics_db.t ADD COLUMN b String")).toEqual([
      "ALTER TABLE db.t_local ON CLUSTER c ADD COLUMN b String",
      "ALTER TABLE db.t ON CLUSTER c ADD COLUMN b String",
    ]);
    expect(run("ALTER TABLE analytics_db.t MODIFY TTL a + 1")).toEqual(["ALTER TABLE db.t_local ON CLUSTER c MODIFY TTL a + 1"]);
    expect(run("DROP TABLE IF EXISTS analytics_db.t")).toEqual([
      "DROP TABLE IF EXISTS db.t ON CLUSTER c",
      "DROP TABLE IF EXISTS db.t_local ON CLUSTER c",
    ]);
    // A plain view runs at query time: it reads the Distributed table.
    expect(run("CREATE VIEW analytics_db.v AS SELECT a FROM analytics_db.t")).toEqual([
      "CREATE VIEW db.v ON CLUSTER c AS SELECT a FROM db.t",
    ]);
    expect(run("INSERT INTO analytics_db.t (a) SELECT a FROM analytics_db.t")).toEqual(["INSERT INTO db.t_local (a) SELECT a FROM db.t"]);
    expect(run("ALTER TABLE analytics_db.v MODIFY QUERY SELECT a FROM analytics_db.t")).toEqual([
      "ALTER TABLE db.v ON CLUSTER c MODIFY QUERY SELECT a FROM db.t_local",
    ]);
    expect(() => run("INSERT INTO analytics_db.t VALUES (1)")).toThrow(ClusterDdlError);
    expect(() => run("CREATE TABLE u (a UInt8) ENGINE = MergeTree ORDER BY a")).toThrow(ClusterDdlError);
  });
});

describe("splitStatements", () => {
  test("splits on ; outside quotes and comments, and drops comments", () => {
    const sql = [
      "-- leading; comment",
      "CREATE TABLE a (s String DEFAULT 'x;y', t String DEFAULT 'it''s; \\' ;') ENGINE = Memory; /* block; */",
      "SELECT \"a;b\", `c;d` -- tail; comment",
      "FROM t;",
      "",
      "-- trailing comment only",
    ].join("\n");
    expect(splitStatements(sql)).toEqual([
      "CREATE TABLE a (s String DEFAULT 'x;y', t String DEFAULT 'it''s; \\' ;') ENGINE = Memory",
      "SELECT \"a;b\", `c;d`\nFROM t",
    ]);
  });

  test("an unterminated quote is an error, not a silently merged statement", () => {
    expect(() => splitStatements("SELECT 'abc; SELECT 1;")).toThrow(SyntaxError);
  });

  test("the database is replaced as a whole word", () => {
    expect(substituteDatabase("analytics_db.t analytics_db_x my_analytics_db analytics_db", "z")).toBe("z.t analytics_db_x my_analytics_db z");
  });
});
