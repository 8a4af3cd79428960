import { expect, test } from "bun:test";
import { ConfigError, loadConfig, MIN_SPOOL_BYTES } from "../src/config.ts";
import { BYTES_PER_ITEM } from "../src/ingest/ingestor.ts";
import { MAX_BATCH_ITEMS } from "../src/ingest/schemas.ts";

test("defaults: port 3004, embedded ClickHouse, analytics_db, Valkey off, DB 4 once configured", () => {
  const c = loadConfig({});
  expect(c.port).toBe(3004);
  expect(c.clickhouse.url).toBeUndefined();
  expect(c.clickhouse.database).toBe("analytics_db");
  expect(c.valkey).toBeUndefined();
  expect(c.ackMode).toBe("spool");
  expect(Object.isFrozen(c) && Object.isFrozen(c.clickhouse)).toBe(true);
  const withValkey = loadConfig({ VALKEY_HOST: "valkey" });
  expect(withValkey.valkey).toEqual({ url: "redis://valkey:6379", db: 4, password: undefined });
});

test("the seed's names work: CLICKHOUSE_HOST, CLICKHOUSE_WAIT_FOR_ASYNC_INSERT, VALKEY_DB", () => {
  const c = loadConfig({ CLICKHOUSE_HOST: "clickhouse", CLICKHOUSE_WAIT_FOR_ASYNC_INSERT: "true", VALKEY_HOST: "localhost", VALKEY_DB: "7" });
  expect(c.clickhouse.url).toBe("http://clickhouse:8123");
  expect(c.clickhouse.waitForAsyncInsert).toBe(true);
  expect(c.valkey?.db).toBe(7);
  expect(loadConfig({ CLICKHOUSE_URL: "https://ch.example:8443", CLICKHOUSE_HOST: "ignored" }).clickhouse.url).toBe("https://ch.example:8443");
});

test("a bad value names its variable and what it expected", () => {
  for (const [name, value] of [["PORT", "abc"], ["PORT", "70000"], ["VALKEY_DB", "16"], ["ACK_MODE", "later"], ["CLICKHOUSE_URL", "ftp://x"], ["CLICKHOUSE_DATABASE", "a-b"]] as const) {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name}: `));
  }
});

// Operator audits: values the service took and then could not work with, or read differently.
test("SPOOL_MAX_BYTES below the room one full batch asks for is refused (a smaller cap refused every such batch, or every request, for ever)", () => {
  expect(MIN_SPOOL_BYTES).toBeGreaterThanOrEqual(MAX_BATCH_ITEMS * BYTES_PER_ITEM);
  expect(() => loadConfig({ SPOOL_MAX_BYTES: "1024" })).toThrow(/^SPOOL_MAX_BYTES: /);
  expect(() => loadConfig({ SPOOL_MAX_BYTES: String(MIN_SPOOL_BYTES - 1) })).toThrow(ConfigError);
  expect(loadConfig({ SPOOL_MAX_BYTES: String(MIN_SPOOL_BYTES) }).spool.maxBytes).toBe(MIN_SPOOL_BYTES);
  // ACK_MODE=insert writes no spool: its cap is not checked against a batch (re-audit).
  expect(loadConfig({ SPOOL_MAX_BYTES: "1048576", ACK_MODE: "insert" }).spool.maxBytes).toBe(1048576);
});

test("booleans in any case; the message names every accepted form", () => {
  expect(loadConfig({ TRUST_PROXY: "TRUE" }).trustProxy).toBe(true);
  expect(loadConfig({ TRUST_PROXY: "Yes" }).trustProxy).toBe(true);
  expect(loadConfig({ SPOOL_FSYNC: "False" }).spool.fsync).toBe(false);
  expect(() => loadConfig({ TRUST_PROXY: "maybe" })).toThrow("TRUST_PROXY: expected true or false (or 1 / 0, yes / no)");
});

test("HOST: an IP address or a host name; anything else names HOST (it was reported as a busy PORT)", () => {
  for (const host of ["0.0.0.0", "127.0.0.1", "::", "::1", "[::1]", "localhost", "api.internal", "my-host"]) expect(loadConfig({ HOST: host }).host).toBe(host);
  for (const host of ["999.1.1.1", "not_a_host", "a b", "-x", "x-", "a..b", "1.2.3", "[127.0.0.1]", "[::1"]) expect(() => loadConfig({ HOST: host })).toThrow(/^HOST: expected an IP address or a host name/);
});

test("ANALYTICS_ROOT_TOKEN: visible ASCII only (a header cannot carry the rest faithfully)", () => {
  expect(loadConfig({ ANALYTICS_ROOT_TOKEN: "rt_!#$%&'*+-.^_`|~0123456789" }).rootToken).toBe("rt_!#$%&'*+-.^_`|~0123456789");
  for (const token of ["tökentökentökentökentöken", "with space 0123456789abcdef", "tab\t0123456789abcdef0123"]) {
    expect(() => loadConfig({ ANALYTICS_ROOT_TOKEN: token })).toThrow(/^ANALYTICS_ROOT_TOKEN: /);
  }
});

test("VALKEY_URL's database path: 0-15, used (ioredis selects it over VALKEY_DB); a different VALKEY_DB beside it is refused", () => {
  expect(loadConfig({ VALKEY_URL: "redis://127.0.0.1:6379" }).valkey?.db).toBe(4);
  expect(loadConfig({ VALKEY_URL: "redis://127.0.0.1:6379/" }).valkey?.db).toBe(4);
  expect(loadConfig({ VALKEY_URL: "redis://127.0.0.1:6379/2" }).valkey?.db).toBe(2);
  expect(loadConfig({ VALKEY_URL: "redis://127.0.0.1:6379/2", VALKEY_DB: "2" }).valkey?.db).toBe(2);
  expect(loadConfig({ VALKEY_URL: "redis://127.0.0.1:6379", VALKEY_DB: "7" }).valkey?.db).toBe(7);
  expect(() => loadConfig({ VALKEY_URL: "redis://127.0.0.1:6379/2", VALKEY_DB: "7" })).toThrow(/^VALKEY_DB: 7, but VALKEY_URL names database 2/);
  for (const url of ["redis://127.0.0.1:6379/99", "redis://127.0.0.1:6379/16", "redis://127.0.0.1:6379/abc", "redis://127.0.0.1:6379/1/2"]) {
    expect(() => loadConfig({ VALKEY_URL: url })).toThrow(/^VALKEY_URL: the database in the URL's path must be 0 to 15/);
  }
  // ioredis reads ?db= over both (re-audit: ?db=5 used DB 5 beside VALKEY_DB=3).
  expect(() => loadConfig({ VALKEY_URL: "redis://127.0.0.1:6379?db=5" })).toThrow(/^VALKEY_URL: name the database in the URL's path/);
});

test("PORT=abc: the process exits with code 2 and one line naming PORT", () => {
  const run = Bun.spawnSync([process.execPath, "src/main.ts"], { env: { ...process.env, PORT: "abc" }, stderr: "pipe", stdout: "pipe" });
  expect(run.exitCode).toBe(2);
  const lines = run.stderr.toString().trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("PORT");
});

// Re-audit: the error line repeated the value, so a root token with a space went to the logs.
test("an error line never repeats a secret: tokens, passwords, URLs and backend hosts are given by length only", () => {
  expect(() => loadConfig({ ANALYTICS_ROOT_TOKEN: "rt_secret value" })).toThrow("ANALYTICS_ROOT_TOKEN: expected a token of visible ASCII characters, without spaces (got a value of 15 characters, not shown)");
  let message = "";
  try {
    loadConfig({ VALKEY_URL: "redis://user:hunter2@127.0.0.1:6379/99" });
  } catch (err) {
    message = (err as Error).message;
  }
  expect(message).toBe("VALKEY_URL: the database in the URL's path must be 0 to 15 (or leave the path out and set VALKEY_DB) (got a value of 38 characters, not shown)");
  // Round-2 re-audit: these leaked through a stack (an unparsable URL, a CLICKHOUSE_HOST holding
  // credentials), a half-masked password with an @ in it, or a password parameter.
  // Round-3: a password holding / # ? moved into the URL's path, fragment or query and was printed.
  const refusal = (env: Record<string, string>) => {
    try {
      loadConfig(env);
    } catch (err) {
      return (err as Error).message;
    }
    return "no error";
  };
  const cases: Array<Record<string, string>> = [
    { VALKEY_URL: "redis://:hunter2@127.0.0.1:99999/" }, { VALKEY_URL: "redis://:p@sshunter2@h:1/99" }, { VALKEY_URL: "redis://h:1/99?password=hunter2" },
    { VALKEY_URL: "redis://default:/hunter2@127.0.0.1:6396" }, { VALKEY_URL: "redis://127.0.0.1:6396/hunter2" },
    { CLICKHOUSE_URL: "http://default:/hunter2@127.0.0.1:3168" }, { CLICKHOUSE_URL: "http://default:#hunter2@127.0.0.1:3168" }, { CLICKHOUSE_URL: "http://127.0.0.1:3168#hunter2" },
    { CLICKHOUSE_HOST: "127.0.0.1?password=hunter2" }, { CLICKHOUSE_HOST: "  hunter2" }, { VALKEY_HOST: "  hunter2" }, { VALKEY_HOST: "a b" },
    { CLICKHOUSE_PASSWORD: "€hunter2" },
  ];
  for (const env of cases) {
    const line = refusal(env);
    expect([env, line.startsWith(`${Object.keys(env)[0]}: `)]).toEqual([env, true]);
    expect(line).not.toContain("hunter2");
  }
  expect(() => loadConfig({ CLICKHOUSE_HOST: "u:hunter2@bad host" })).toThrow("CLICKHOUSE_HOST: expected an IP address or a host name (got a value of 18 characters, not shown)");
});

test("CLICKHOUSE_URL is scheme, host and port only (the client read a path as the database, and credentials or parameters over CLICKHOUSE_USER/_PASSWORD)", () => {
  expect(loadConfig({ CLICKHOUSE_URL: "http://ch.internal:8123/" }).clickhouse.url).toBe("http://ch.internal:8123/");
  for (const url of ["http://u:hunter2@ch:8123", "http://ch:8123/99", "http://ch:8123/?db=5", "http://ch:8123/#x"]) {
    let message = "";
    try {
      loadConfig({ CLICKHOUSE_URL: url });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toStartWith("CLICKHOUSE_URL: expected only scheme, host and port");
    expect(message).not.toContain("hunter2");
  }
});
