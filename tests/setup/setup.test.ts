import { afterEach, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import Redis from "ioredis";
import {
  freeDbIndex,
  freeDbPrefix,
  isValkeyRunning,
  startValkey,
  stopValkey,
  valkeyPort,
  valkeyUrl,
} from "./valkey.ts";
import { consoleErrors, countJUnit, formatCounts } from "./junit-summary.ts";

const clients: Redis[] = [];

function client(options: { db?: number; retry?: boolean } = {}): Redis {
  const redis = new Redis(valkeyUrl(), {
    db: options.db ?? 0,
    lazyConnect: true,
    maxRetriesPerRequest: options.retry ? 20 : 0,
    enableOfflineQueue: options.retry ?? false,
    retryStrategy: options.retry ? () => 50 : () => null,
  });
  // Connection errors while the server is down are expected here; the commands' own promises
  // report what matters.
  redis.on("error", () => {});
  clients.push(redis);
  return redis;
}

afterEach(() => {
  for (const redis of clients.splice(0)) redis.disconnect();
});

describe("test set-up", () => {
  test("exports the Valkey URL and a fresh data directory", () => {
    expect(process.env.TEST_VALKEY_URL).toBe(valkeyUrl());
    expect(valkeyUrl()).toMatch(/^redis:\/\/127\.0\.0\.1:\d+$/);
    const dataDir = process.env.TEST_DATA_DIR;
    expect(dataDir).toBeTruthy();
    expect(existsSync(dataDir!)).toBe(true);
  });

  test("the Valkey is a real server: SET / GET / INFO through ioredis", async () => {
    const redis = client();
    await redis.connect();
    const key = `${freeDbPrefix()}:greeting`;
    expect(await redis.set(key, "hello", "EX", 60)).toBe("OK");
    expect(await redis.get(key)).toBe("hello");
    expect(await redis.ttl(key)).toBeGreaterThan(0);
    const info = await redis.info("server");
    expect(info).toMatch(/valkey_version:(\d+)/);
    const major = Number(/valkey_version:(\d+)/.exec(info)?.[1]);
    expect(major).toBeGreaterThanOrEqual(8);
  });

  test("free prefixes and database indexes are unique", async () => {
    const prefixes = new Set(Array.from({ length: 50 }, () => freeDbPrefix()));
    expect(prefixes.size).toBe(50);
    for (const p of prefixes) expect(p).toMatch(/^[a-z0-9_]+$/);

    const a = freeDbIndex();
    const b = freeDbIndex();
    expect(a).not.toBe(b);
    for (const db of [a, b]) {
      expect(db).toBeGreaterThanOrEqual(1);
      expect(db).toBeLessThanOrEqual(15);
      expect(db).not.toBe(4);
    }

    const inA = client({ db: a });
    const inB = client({ db: b });
    await Promise.all([inA.connect(), inB.connect()]);
    await inA.set("same-key", "a");
    expect(await inB.get("same-key")).toBeNull();
    expect(await inA.get("same-key")).toBe("a");
  });

  test("stop and start bring the server back on the same port", async () => {
    const port = valkeyPort();
    const url = valkeyUrl();

    const before = client();
    await before.connect();
    expect(await before.ping()).toBe("PONG");

    await stopValkey();
    expect(isValkeyRunning()).toBe(false);
    const down = client();
    await expect(down.connect()).rejects.toThrow();
    await expect(before.ping()).rejects.toThrow();

    // Stopping twice is harmless.
    await stopValkey();

    expect(await startValkey()).toBe(url);
    expect(isValkeyRunning()).toBe(true);
    expect(valkeyPort()).toBe(port);
    expect(process.env.TEST_VALKEY_URL).toBe(url);

    const after = client();
    await after.connect();
    expect(await after.ping()).toBe("PONG");

    // Starting while running is a no-op.
    expect(await startValkey()).toBe(url);
  });

  test("a client with retries rides through a crash and restart", async () => {
    const redis = client({ retry: true });
    await redis.connect();
    const key = `${freeDbPrefix()}:k`;
    await redis.set(key, "1");

    await stopValkey("SIGKILL");
    const restarted = Bun.sleep(200).then(() => startValkey());
    // Issued while the server is down: queued by ioredis and sent after it reconnects.
    const value = redis.get(key);
    await restarted;
    // The restarted server is empty (no persistence in tests).
    expect(await value).toBeNull();
    expect(await redis.set(key, "2")).toBe("OK");
  });
});

describe("junit-summary", () => {
  // The shape `bun test --reporter=junit` writes (nested suites, self-closing passes, skip/todo).
  const report = `<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="bun test" tests="7" failures="2" skipped="2">
  <testsuite name="a.test.ts" file="a.test.ts" tests="6">
    <testsuite name="outer &gt; &quot;q&quot;" file="a.test.ts" line="2" tests="6">
      <testcase name="pass a&gt;b" classname="outer" time="0.00003" file="a.test.ts" line="3" assertions="1" />
      <testcase name="odd > name" classname='x "y"' time="0.1" file="a.test.ts" line="4" assertions="1">
        <failure type="AssertionError" message="expected 2">AssertionError: expected 2&#10;</failure>
      </testcase>
      <testcase name="skipped" classname="outer" time="0" file="a.test.ts" line="5" assertions="0">
        <skipped />
      </testcase>
      <testcase name="todo" classname="outer" time="0" file="a.test.ts" line="6" assertions="0">
        <skipped message="TODO" />
      </testcase>
      <testsuite name="inner" file="a.test.ts" line="7" tests="2">
        <testcase name="inner pass" classname="inner" time="0" file="a.test.ts" line="7" assertions="0" />
        <testcase name="throws" classname="inner" time="0" file="a.test.ts" line="7" assertions="0">
          <error type="Error" message="&lt;/testcase&gt;"><![CDATA[<testcase name="fake" />]]></error>
        </testcase>
      </testsuite>
    </testsuite>
  </testsuite>
  <!-- <testcase name="commented out" /> -->
  <testsuite name="b.test.ts" file="b.test.ts" tests="1">
    <testcase name="b pass" classname="" time="0.000009" file="b.test.ts" line="2" assertions="0" />
  </testsuite>
</testsuites>`;

  test("counts test cases: failures and errors as failed, skipped and todo as skipped", () => {
    expect(countJUnit(report)).toEqual({ passed: 3, failed: 2, skipped: 2 });
    expect(formatCounts(countJUnit(report))).toBe("3 passed, 2 failed, 2 skipped");
  });

  test("leaves out the skipped part when nothing was skipped", () => {
    expect(formatCounts({ passed: 4, failed: 0, skipped: 0 })).toBe("4 passed, 0 failed");
    expect(countJUnit("<testsuites></testsuites>")).toEqual({ passed: 0, failed: 0, skipped: 0 });
  });

  test("reads the error count of bun's console summary", () => {
    const output = "(pass) ok [0.06ms]\n\n \x1b[32m1 pass\x1b[0m\n 4 fail\n 2 errors\nRan 5 tests across 4 files. [7.00ms]\n";
    expect(consoleErrors(output)).toBe(2);
    expect(consoleErrors(" 3 pass\n 0 fail\n 1 error\nRan 3 tests across 1 file.")).toBe(1);
    expect(consoleErrors(" 3 pass\n 0 fail\nRan 3 tests across 1 file.")).toBe(0);
    // A test's own output that merely looks like the line does not count.
    expect(consoleErrors(" 7 errors\n(pass) x\n\n 1 pass\n 0 fail\nRan 1 test across 1 file.")).toBe(0);
    expect(consoleErrors("no closing block\n 2 errors\n")).toBe(0);
  });
});
