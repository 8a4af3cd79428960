import { expect, test } from "bun:test";
import { ConfigError, loadConfig } from "../src/config.ts";

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

test("PORT=abc: the process exits with code 2 and one line naming PORT", () => {
  const run = Bun.spawnSync([process.execPath, "src/main.ts"], { env: { ...process.env, PORT: "abc" }, stderr: "pipe", stdout: "pipe" });
  expect(run.exitCode).toBe(2);
  const lines = run.stderr.toString().trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain("PORT");
});
