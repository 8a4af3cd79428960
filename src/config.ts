// The service's configuration: one valibot schema over the environment, parsed once at start,
// frozen, and passed in. Nothing else in the service reads process.env.
import * as v from "valibot";

const bool = (fallback: boolean) =>
  v.optional(
    v.pipe(
      v.picklist(["true", "false", "1", "0", "yes", "no"], "expected true or false"),
      v.transform((s) => s === "true" || s === "1" || s === "yes"),
    ),
    fallback ? "true" : "false",
  );
const int = (fallback: number, min: number, max: number) =>
  v.optional(
    v.pipe(
      v.string(),
      v.regex(/^\d+$/, `expected a whole number from ${min} to ${max}`),
      v.transform(Number),
      v.minValue(min, `expected a whole number from ${min} to ${max}`),
      v.maxValue(max, `expected a whole number from ${min} to ${max}`),
    ),
    String(fallback),
  );
const text = () => v.optional(v.pipe(v.string(), v.minLength(1, "expected a non-empty value")));
const identifier = (fallback: string) =>
  v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, "expected a name of letters, digits and _")), fallback);
const httpUrl = () =>
  v.optional(v.pipe(v.string(), v.url("expected an http(s) URL"), v.regex(/^https?:\/\//, "expected an http(s) URL")));

const EnvSchema = v.object({
  NODE_ENV: v.optional(v.picklist(["development", "production", "test"], "expected development, production or test"), "development"),
  PORT: int(3004, 1, 65535),
  HOST: v.optional(v.string(), "0.0.0.0"),
  DATA_DIR: v.optional(v.pipe(v.string(), v.minLength(1)), "./data"),
  LOG_LEVEL: v.optional(v.picklist(["debug", "info", "warn", "error", "silent"], "expected debug, info, warn, error or silent"), "info"),

  CLICKHOUSE_URL: httpUrl(),
  CLICKHOUSE_HOST: text(),
  CLICKHOUSE_PORT: int(8123, 1, 65535),
  CLICKHOUSE_DATABASE: identifier("analytics_db"),
  CLICKHOUSE_USER: v.optional(v.string(), "default"),
  CLICKHOUSE_PASSWORD: v.optional(v.string(), ""),
  CLICKHOUSE_CLUSTER: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected a cluster name"))),
  CLICKHOUSE_WAIT_FOR_ASYNC_INSERT: bool(false),
  EMBEDDED_LANES: int(4, 1, 32),

  VALKEY_URL: v.optional(v.pipe(v.string(), v.regex(/^rediss?:\/\//, "expected a redis:// or rediss:// URL"))),
  VALKEY_HOST: text(),
  VALKEY_PORT: int(6379, 1, 65535),
  VALKEY_DB: int(4, 0, 15),
  VALKEY_PASSWORD: v.optional(v.string()),

  // Any operator-chosen token works (the contract sets no length); a short one is warned about at start.
  ANALYTICS_ROOT_TOKEN: v.optional(v.pipe(v.string(), v.regex(/^\S+$/, "expected a token without spaces"))),
  TRUST_PROXY: bool(false),
  /** `spool`: 202 after the local write-ahead spool (default); `insert`: after ClickHouse took it. */
  ACK_MODE: v.optional(v.picklist(["spool", "insert"], "expected spool or insert"), "spool"),
  SPOOL_MAX_BYTES: int(1024 * 1024 * 1024, 1024, Number.MAX_SAFE_INTEGER),
  SPOOL_FSYNC: bool(true),
  FLUSH_INTERVAL_MS: int(1000, 10, 60_000),
  SHUTDOWN_TIMEOUT_MS: int(10_000, 0, 600_000),
});

export type Env = v.InferOutput<typeof EnvSchema>;

/** The resolved configuration the composition root hands to every part. */
export interface Config {
  readonly env: Env["NODE_ENV"];
  readonly port: number;
  readonly host: string;
  readonly dataDir: string;
  readonly logLevel: Env["LOG_LEVEL"];
  readonly clickhouse: {
    /** Server URL; undefined means the embedded engine under `dataDir`. */
    readonly url: string | undefined;
    readonly database: string;
    readonly user: string;
    readonly password: string;
    readonly cluster: string | undefined;
    readonly waitForAsyncInsert: boolean;
    readonly embeddedLanes: number;
  };
  readonly valkey: { readonly url: string; readonly db: number; readonly password: string | undefined } | undefined;
  readonly rootToken: string | undefined;
  readonly trustProxy: boolean;
  readonly ackMode: Env["ACK_MODE"];
  readonly spool: { readonly maxBytes: number; readonly fsync: boolean };
  readonly flushIntervalMs: number;
  readonly shutdownTimeoutMs: number;
}

export class ConfigError extends Error {}

/** Parses the environment once; throws ConfigError with one line naming the bad variable. */
export function loadConfig(source: Record<string, string | undefined>): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.entries)) {
    const value = source[key];
    if (value !== undefined && value !== "") input[key] = value;
  }
  const parsed = v.safeParse(EnvSchema, input);
  if (!parsed.success) {
    const issue = parsed.issues[0];
    const name = issue.path?.[0]?.key ?? "environment";
    throw new ConfigError(`${String(name)}: ${issue.message} (got ${JSON.stringify(input[String(name)] ?? "")})`);
  }
  const e = parsed.output;
  const clickhouseUrl = e.CLICKHOUSE_URL ?? (e.CLICKHOUSE_HOST ? `http://${e.CLICKHOUSE_HOST}:${e.CLICKHOUSE_PORT}` : undefined);
  const valkeyUrl = e.VALKEY_URL ?? (e.VALKEY_HOST ? `redis://${e.VALKEY_HOST}:${e.VALKEY_PORT}` : undefined);
  return deepFreeze({
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    dataDir: e.DATA_DIR,
    logLevel: e.LOG_LEVEL,
    clickhouse: {
      url: clickhouseUrl,
      database: e.CLICKHOUSE_DATABASE,
      user: e.CLICKHOUSE_USER,
      password: e.CLICKHOUSE_PASSWORD,
      cluster: e.CLICKHOUSE_CLUSTER,
      waitForAsyncInsert: e.CLICKHOUSE_WAIT_FOR_ASYNC_INSERT,
      embeddedLanes: e.EMBEDDED_LANES,
    },
    valkey: valkeyUrl ? { url: valkeyUrl, db: e.VALKEY_DB, password: e.VALKEY_PASSWORD } : undefined,
    rootToken: e.ANALYTICS_ROOT_TOKEN,
    trustProxy: e.TRUST_PROXY,
    ackMode: e.ACK_MODE,
    spool: { maxBytes: e.SPOOL_MAX_BYTES, fsync: e.SPOOL_FSYNC },
    flushIntervalMs: e.FLUSH_INTERVAL_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
