// A flush is durable only after a syncfs of the engine's file system (src/storage/embedded/sync-fs.ts):
// the sink resolves (and the batcher may delete the segment) only after it, and a failed one keeps
// the segment for the retry.
import { expect, test } from "bun:test";
import { join } from "node:path";
import { encodeRecord } from "../../src/ingest/rows.ts";
import { spoolSink } from "../../src/ingest/writers.ts";
import { silentLogger } from "../../src/logger.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { fileSystemBarrier, syncFileSystem } from "../../src/storage/embedded/sync-fs.ts";
import { migratedDatabaseWithScratch } from "../helpers/clickhouse.ts";

const { ch, dir } = migratedDatabaseWithScratch("syncfs");

test("sync -f: resolves for a directory, rejects naming the directory when it cannot sync; the barrier is off (with a warning) where it does not work", async () => {
  await syncFileSystem(dir);
  await expect(syncFileSystem(join(dir, "missing"))).rejects.toThrow(`sync -f ${join(dir, "missing")} failed`);
  const warnings: string[] = [];
  expect(await fileSystemBarrier(dir, (m) => warnings.push(m))).toBeFunction();
  expect(warnings).toEqual([]);
  expect(await fileSystemBarrier(join(dir, "missing"), (m) => warnings.push(m))).toBeUndefined();
  expect(warnings).toHaveLength(1);
});

test("the sink resolves only after the durability step, which runs after every insert; when it fails, the sink fails (the segment stays for the retry)", async () => {
  const steps: string[] = [];
  const t = "2026-11-01T10:00:00.000Z";
  const row = encodeRecord("events", "shop", Date.parse(t), {
    service_id: "shop", event_id: crypto.randomUUID(), timestamp: t, received_at: t, session_id: "s", visitor_id: "v",
    user_id: "", name: "synced", conversion: 0, url: "", path: "", hostname: "", properties: "{}",
  });
  let fail = true;
  const durable = async () => {
    const [r] = await (await ch.client.query({ query: "SELECT count() AS n FROM events WHERE name = 'synced'", format: "JSONEachRow" })).json<{ n: number }>();
    steps.push(`durable after ${r!.n} row(s) inserted`);
    if (fail) throw new Error("sync -f failed: Input/output error");
  };
  const sink = spoolSink({ client: ch.client, metrics: createMetrics(), onTouched: () => {}, quarantineDir: join(dir, "quarantine"), logger: silentLogger, durable });
  const batch = { segment: { seq: 1, name: "seg-1", path: "", bytes: 0 }, records: [new TextEncoder().encode(row)], token: "tok-syncfs" };
  await expect(sink(batch)).rejects.toThrow("Input/output error");
  fail = false;
  await sink(batch); // the retry: the insert is a no-op (same token), the step runs again
  expect(steps).toEqual(["durable after 1 row(s) inserted", "durable after 1 row(s) inserted"]);
});
