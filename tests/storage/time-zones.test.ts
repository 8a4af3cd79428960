// The engine's time zones are read until read: an instance that started while ClickHouse was down
// checks `tz` against them once ClickHouse answers (operator audit: such an instance checked
// against Intl alone for good, 400 on one route and 200 on four for US/Pacific-New).
import { expect, test } from "bun:test";
import type { ClickHouseClient } from "@clickhouse/client-web";
import { silentLogger, type Logger } from "../../src/logger.ts";
import { loadEngineTimeZones } from "../../src/storage/time-zones.ts";
import { testClickHouse } from "../helpers/clickhouse.ts";

/** The real engine's client behind a fake that fails the first `failures` queries (fault injection). */
function failingAtFirst(failures: number): Pick<ClickHouseClient, "query"> & { calls: number } {
  const real = testClickHouse().client;
  const client: Pick<ClickHouseClient, "query"> & { calls: number } = {
    calls: 0,
    query: ((params: Parameters<ClickHouseClient["query"]>[0]) => {
      client.calls++;
      return client.calls <= failures ? Promise.reject(new Error("connect ECONNREFUSED")) : real.query(params);
    }) as ClickHouseClient["query"],
  };
  return client;
}

test("fake client failing twice (fault injection): the zones are read on the third attempt, and a failure and the late read are logged once each", async () => {
  const client = failingAtFirst(2);
  const lines: string[] = [];
  const logger = { ...silentLogger, warn: (msg: string) => lines.push(`warn ${msg}`), info: (msg: string) => lines.push(`info ${msg}`) } as Logger;
  let zones: string[] | undefined;
  const loading = loadEngineTimeZones(client, (z) => (zones = z), logger, 20);
  await loading.read;
  expect(client.calls).toBe(3);
  expect(zones).toContain("Europe/Berlin");
  expect(zones).not.toContain("US/Pacific-New");
  expect(lines).toEqual([
    "warn time zones of ClickHouse not read; tz is checked against Intl only until they are (retried)",
    "info time zones of ClickHouse read",
  ]);
});

test("fake client that never answers (fault injection): stop ends the retries", async () => {
  const client = failingAtFirst(Number.POSITIVE_INFINITY);
  const loading = loadEngineTimeZones(client, () => undefined, silentLogger, 10);
  await Bun.sleep(55);
  loading.stop();
  const calls = client.calls;
  expect(calls).toBeGreaterThan(1);
  await Bun.sleep(50);
  expect(client.calls).toBe(calls);
});
