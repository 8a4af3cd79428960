// The service's configuration: one valibot schema over the environment, parsed once at start,
// frozen, and passed in. Nothing else in the service reads process.env.
import { isIP } from "node:net";
import * as v from "valibot";

const bool = (fallback: boolean) =>
  v.optional(
    v.pipe(
      v.string(),
      v.transform((s) => s.toLowerCase()),
      v.picklist(["true", "false", "1", "0", "yes", "no"], "expected true or false (or 1 / 0, yes / no)"),
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
const identifier = (fallback: string) =>
  v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, "expected a name of letters, digits and _")), fallback);
/** An IP address, or a host name of letters, digits and hyphens (RFC 1123) that DNS may resolve at start. */
const hostName = (fallback: string) =>
  v.optional(
    v.pipe(
      v.string(),
      v.check(
        (s) => isIP(s) !== 0 || isIP(s.replace(/^\[(.*)\]$/, "$1")) === 6 || (!/^[\d.]+$/.test(s) && s.length <= 253 && /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$/.test(s)),
        "expected an IP address or a host name",
      ),
    ),
    fallback,
  );
// Only scheme, host and port: the client would read a path as the database and credentials or
// parameters over CLICKHOUSE_USER / _PASSWORD (and refuse some with a stack at start).
const httpOrigin = () =>
  v.optional(
    v.pipe(
      v.string(),
      v.check((s) => /^https?:\/\//.test(s) && URL.canParse(s), "expected an http(s) URL"),
      v.check((s) => {
        if (!URL.canParse(s)) return true; // said by the check above
        const u = new URL(s);
        return u.username === "" && u.password === "" && (u.pathname === "/" || u.pathname === "") && u.search === "" && u.hash === "";
      }, "expected only scheme, host and port (http://host:8123): set CLICKHOUSE_USER, CLICKHOUSE_PASSWORD and CLICKHOUSE_DATABASE for the rest"),
    ),
  );

/**
 * The smallest spool cap: room for the largest request. Ingest asks for BYTES_PER_ITEM (4096) of
 * room per item before it writes (src/ingest/ingestor.ts), so a full batch of 500 items needs
 * 2,048,000 bytes; a smaller cap would refuse such a batch, or every request, for ever.
 */
export const MIN_SPOOL_BYTES = 2 * 1024 * 1024;

const EnvSchema = v.object({
  NODE_ENV: v.optional(v.picklist(["development", "production", "test"], "expected development, production or test"), "development"),
  PORT: int(3004, 1, 65535),
  HOST: hostName("0.0.0.0"),
  DATA_DIR: v.optional(v.pipe(v.string(), v.minLength(1)), "./data"),
  LOG_LEVEL: v.optional(v.picklist(["debug", "info", "warn", "error", "silent"], "expected debug, info, warn, error or silent"), "info"),

  CLICKHOUSE_URL: httpOrigin(),
  CLICKHOUSE_HOST: v.optional(hostName("")),
  CLICKHOUSE_PORT: int(8123, 1, 65535),
  CLICKHOUSE_DATABASE: identifier("analytics_db"),
  // HTTP basic auth carries Latin-1 only (a € in the password crashed the client's btoa at start).
  CLICKHOUSE_USER: v.optional(v.pipe(v.string(), v.regex(/^[\x20-\x7e\xa0-\xff]*$/, "expected printable Latin-1 characters")), "default"),
  CLICKHOUSE_PASSWORD: v.optional(v.pipe(v.string(), v.regex(/^[\x20-\x7e\xa0-\xff]*$/, "expected printable Latin-1 characters (HTTP basic auth carries no others)")), ""),
  CLICKHOUSE_CLUSTER: v.optional(v.pipe(v.string(), v.regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "expected a cluster name"))),
  CLICKHOUSE_WAIT_FOR_ASYNC_INSERT: bool(false),
  EMBEDDED_LANES: int(4, 1, 32),

  VALKEY_URL: v.optional(
    v.pipe(
      v.string(),
      v.regex(/^rediss?:\/\//, "expected a redis:// or rediss:// URL"),
      v.check((s) => URL.canParse(s), "expected a redis:// or rediss:// URL"),
      // ioredis takes the database from the URL's path before VALKEY_DB (loadConfig checks they agree).
      // (Each check runs even when an earlier one failed: an unparsable URL passes the later ones.)
      v.check((s) => !URL.canParse(s) || /^\/?$|^\/(?:\d|1[0-5])$/.test(new URL(s).pathname), "the database in the URL's path must be 0 to 15 (or leave the path out and set VALKEY_DB)"),
      // ioredis reads ?db= too, over both: one place to name the database is enough.
      v.check((s) => !URL.canParse(s) || !new URL(s).searchParams.has("db"), "name the database in the URL's path (/2) or in VALKEY_DB, not in ?db="),
    ),
  ),
  VALKEY_HOST: v.optional(hostName("")),
  VALKEY_PORT: int(6379, 1, 65535),
  VALKEY_DB: int(4, 0, 15),
  VALKEY_PASSWORD: v.optional(v.string()),

  // Any operator-chosen token works (the contract sets no length); a short one is warned about at start.
  // Visible ASCII only: it travels in an HTTP header, which carries no other characters faithfully.
  ANALYTICS_ROOT_TOKEN: v.optional(v.pipe(v.string(), v.regex(/^[\x21-\x7e]+$/, "expected a token of visible ASCII characters, without spaces"))),
  TRUST_PROXY: bool(false),
  /** `spool`: 202 after the local write-ahead spool (default); `insert`: after ClickHouse took it. */
  ACK_MODE: v.optional(v.picklist(["spool", "insert"], "expected spool or insert"), "spool"),
  // At least MIN_SPOOL_BYTES with ACK_MODE=spool (checked in loadConfig: the other mode writes no spool).
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
    throw new ConfigError(`${String(name)}: ${issue.message} (got ${shown(String(name), input[String(name)] ?? "")})`);
  }
  const e = parsed.output;
  if (e.ACK_MODE === "spool" && e.SPOOL_MAX_BYTES < MIN_SPOOL_BYTES) {
    throw new ConfigError(`SPOOL_MAX_BYTES: expected a whole number from ${MIN_SPOOL_BYTES} (room for one full batch) with ACK_MODE=spool (got ${e.SPOOL_MAX_BYTES})`);
  }
  const clickhouseUrl = e.CLICKHOUSE_URL ?? (e.CLICKHOUSE_HOST ? `http://${e.CLICKHOUSE_HOST}:${e.CLICKHOUSE_PORT}` : undefined);
  const valkeyUrl = e.VALKEY_URL ?? (e.VALKEY_HOST ? `redis://${e.VALKEY_HOST}:${e.VALKEY_PORT}` : undefined);
  const valkeyDb = valkeyDatabase(e.VALKEY_URL, e.VALKEY_DB, input.VALKEY_DB !== undefined);
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
    valkey: valkeyUrl ? { url: valkeyUrl, db: valkeyDb, password: e.VALKEY_PASSWORD } : undefined,
    rootToken: e.ANALYTICS_ROOT_TOKEN,
    trustProxy: e.TRUST_PROXY,
    ackMode: e.ACK_MODE,
    spool: { maxBytes: e.SPOOL_MAX_BYTES, fsync: e.SPOOL_FSYNC },
    flushIntervalMs: e.FLUSH_INTERVAL_MS,
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
  });
}

/**
 * The value an error line repeats: only that of a variable that never holds a secret. Tokens,
 * passwords, users, URLs and the backends' hosts (where credentials end up, in any of a URL's
 * parts) are given by length only: the line goes to logs. (Masking a URL's password missed
 * passwords holding / # ? @, which move it into another part of the URL.)
 */
const SHOWN = new Set(["NODE_ENV", "PORT", "HOST", "DATA_DIR", "LOG_LEVEL", "CLICKHOUSE_PORT", "CLICKHOUSE_DATABASE", "CLICKHOUSE_CLUSTER", "CLICKHOUSE_WAIT_FOR_ASYNC_INSERT", "EMBEDDED_LANES", "VALKEY_PORT", "VALKEY_DB", "TRUST_PROXY", "ACK_MODE", "SPOOL_MAX_BYTES", "SPOOL_FSYNC", "FLUSH_INTERVAL_MS", "SHUTDOWN_TIMEOUT_MS"]);
function shown(name: string, value: string): string {
  return SHOWN.has(name) ? JSON.stringify(value) : `a value of ${value.length} characters, not shown`;
}

/**
 * The Valkey database: the one VALKEY_URL's path names (`redis://host:6379/2`; ioredis selects
 * it whatever VALKEY_DB says), else VALKEY_DB. Both set and different is a mistake to refuse,
 * not to settle silently.
 */
function valkeyDatabase(url: string | undefined, db: number, dbSet: boolean): number {
  const path = url === undefined ? "" : new URL(url).pathname.replace(/^\//, "");
  if (path === "") return db;
  const inUrl = Number(path);
  if (dbSet && inUrl !== db) throw new ConfigError(`VALKEY_DB: ${db}, but VALKEY_URL names database ${inUrl}: set one of them`);
  return inUrl;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object") {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}
