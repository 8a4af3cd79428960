// The whole service, composed exactly as main.ts does, inside the test process: on the shared
// embedded engine (its own database), with its own spool directory, and the test run's Valkey
// when asked. Requests go through app.request(), so no port is needed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { composeService, type Service } from "../../src/compose.ts";
import { loadConfig } from "../../src/config.ts";
import type { OpenFile } from "../../src/spool/segment-writer.ts";
import { silentLogger } from "../../src/logger.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { testDataDir, uniqueDatabase } from "./clickhouse.ts";

export const ROOT_TOKEN = "rt_test_root_token_0123456789abcdef";

export interface TestService extends Service {
  database: string;
  /** Creates a key through the API and returns the plaintext key. */
  key(body: Record<string, unknown>): Promise<string>;
  /** Closes the service and removes the spool directory it made (the database stays; names are unique). */
  dispose(): Promise<void>;
}

/** Starts a service; `env` adds environment variables (e.g. VALKEY_URL, SPOOL_MAX_BYTES). */
export async function startTestService(env: Record<string, string> = {}, opts: { database?: string; socketIp?: string; migrate?: boolean; spoolOpenFile?: OpenFile } = {}): Promise<TestService> {
  const database = opts.database ?? uniqueDatabase("svc");
  // A spool directory of its own unless the test names one (then the test owns it).
  const ownDir = env.DATA_DIR === undefined ? mkdtempSync(join(tmpdir(), "analytics-svc-")) : undefined;
  const dataDir = env.DATA_DIR ?? ownDir!;
  const config = loadConfig({
    NODE_ENV: "test",
    DATA_DIR: dataDir,
    CLICKHOUSE_DATABASE: database,
    ANALYTICS_ROOT_TOKEN: ROOT_TOKEN,
    SPOOL_FSYNC: "false",
    LOG_LEVEL: "silent",
    ...env,
  });
  const service = await composeService(config, {
    logger: silentLogger,
    metrics: createMetrics(),
    engineDataDir: testDataDir(),
    migrate: opts.migrate ?? true,
    spoolOpenFile: opts.spoolOpenFile,
    socketIp: () => opts.socketIp ?? "203.0.113.7",
  });
  return {
    ...service,
    database,
    async key(body) {
      const res = await service.app.request("/v1/keys", {
        method: "POST",
        headers: { Authorization: `Bearer ${ROOT_TOKEN}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (res.status !== 201) throw new Error(`key creation failed: ${res.status} ${await res.text()}`);
      return ((await res.json()) as { key: string }).key;
    },
    async dispose() {
      await service.close();
      if (ownDir) rmSync(ownDir, { recursive: true, force: true });
    },
  };
}
