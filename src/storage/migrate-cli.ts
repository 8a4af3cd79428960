// `npm run migrate -- [--cluster NAME] [--print] [--schema-dir DIR]`: applies the schema files to the configured
// ClickHouse (the embedded engine under DATA_DIR when no server is configured).
// Exit codes: 0 applied or already current; 2 a refused migration, bad arguments or bad config;
// 1 anything else (ClickHouse unreachable, ...). Errors are one line on stderr.
import { parseArgs } from "node:util";
import { ConfigError, loadConfig } from "../config.ts";
import { keepFilesPrivate } from "../private-files.ts";
import { closeEmbeddedEngines, createClickHouse } from "./clickhouse.ts";
import { migrate, MigrationError, migrationStatements, type MigrateOptions } from "./migrate.ts";

const USAGE = "usage: migrate [--cluster NAME] [--print] [--schema-dir DIR]";

async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({
      args: argv,
      options: {
        cluster: { type: "string" },
        print: { type: "boolean" },
        "schema-dir": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (err) {
    console.error(`migrate: ${(err as Error).message}; ${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  const config = loadConfig(process.env);
  const opts: MigrateOptions = {
    database: config.clickhouse.database,
    cluster: args.cluster ?? config.clickhouse.cluster,
    schemaDir: args["schema-dir"],
  };

  if (args.print) {
    for (const { file, statements } of migrationStatements(opts)) {
      console.log(`-- ${file}`);
      for (const s of statements) console.log(`${s};\n`);
    }
    return 0;
  }

  const ch = createClickHouse({
    // The database must exist before the first statement runs; every statement names its own.
    database: "default",
    url: config.clickhouse.url,
    user: config.clickhouse.user,
    password: config.clickhouse.password,
    dataDir: config.dataDir,
    embeddedLanes: 1,
  });
  try {
    const applied = await migrate(ch.client, opts);
    const where = `${config.clickhouse.database}${opts.cluster ? ` on cluster ${opts.cluster}` : ""}`;
    if (applied.length === 0) console.log(`migrate: ${where} is current, nothing to apply`);
    for (const a of applied) console.log(`migrate: applied ${a.file} (${a.statements} statements) to ${where}`);
    return 0;
  } finally {
    await ch.close();
    await closeEmbeddedEngines();
  }
}

keepFilesPrivate();
try {
  process.exitCode = await main(process.argv.slice(2));
} catch (err) {
  const known = err instanceof MigrationError || err instanceof ConfigError;
  const message = err instanceof Error ? err.message.split("\n", 1)[0] : String(err);
  console.error(`migrate: ${message}`);
  process.exitCode = known ? 2 : 1;
}
