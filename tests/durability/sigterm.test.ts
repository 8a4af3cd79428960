// SIGTERM (a deploy, a scale-down): the service stops accepting, drains its spool into ClickHouse
// and exits 0 within SHUTDOWN_TIMEOUT_MS. Everything it answered 202 is in ClickHouse the moment
// the process is gone: the check reads ClickHouse right after the exit, without waiting.
import { expect, test } from "bun:test";
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { useSinkFixture, type ServiceProcess } from "../helpers/service-process.ts";
import { badSessionSigns, expectExactlyOnce, Load, reconcile } from "./load.ts";

const SHUTDOWN_TIMEOUT_MS = 10_000;

const sink = useSinkFixture();

/** Bytes of spool segments left on disk. */
function spoolLeft(dataDir: string): number {
  const dir = join(dataDir, "spool");
  return readdirSync(dir)
    .filter((name) => /^seg-\d+\.log$/.test(name))
    .reduce((sum, name) => sum + statSync(join(dir, name)).size, 0);
}

async function scenario(label: string, serviceId: string, backlog: (s: ServiceProcess) => Promise<void>): Promise<void> {
  const started = Date.now();
  const s = await sink.startService({ env: { SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS) } });
  const key = await s.createKey({ type: "secret", service_id: serviceId });
  const load = new Load({ target: () => s.url, key, workers: 8, maxRequests: 200_000, maxDurationMs: 30_000, requestTimeoutMs: 5_000 });
  let exit;
  let shutdownMs;
  try {
    await Bun.sleep(2_000);
    await backlog(s);
    const t = Date.now();
    exit = await s.kill("SIGTERM"); // while the load goes on
    shutdownMs = Date.now() - t;
  } finally {
    await load.stop();
  }
  const left = spoolLeft(s.dataDir);
  const r = await reconcile(sink.client, serviceId, load); // no waiting: drained before the exit
  const signs = await badSessionSigns(sink.client, serviceId);
  console.log(
    `[sigterm ${label}] exit ${JSON.stringify(exit)} ${shutdownMs} ms after SIGTERM (timeout ${SHUTDOWN_TIMEOUT_MS} ms); spool left ${left} B; ` +
      `${load.summary()}; acknowledged ${r.acknowledged}, stored ${r.stored}, missing ${r.missing.length}, duplicated ${r.duplicated.length}; ` +
      `sessions ${signs.sessions}, bad signs ${signs.bad.length}; ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  expect(exit).toEqual({ code: 0, signal: null });
  expect(shutdownMs!).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
  expect(load.accepted.size).toBeGreaterThan(500);
  expect(load.otherDrops).toEqual([]);
  expectExactlyOnce(r, () => `${load.summary()}\nservice log tail:\n${s.logs().slice(-4000)}`, load);
  expect(left).toBe(0);
  expect(signs.bad).toEqual([]);
}

test("SIGTERM under load: exit 0 within the shutdown timeout, everything 202'd is in ClickHouse", async () => {
  await scenario("steady", "sigterm_steady", async () => {});
}, 60_000);

// A backlog built while ClickHouse was away for a few seconds, SIGTERM as soon as it is back: the
// drain has the whole shutdown timeout for it (the batcher is in its retry backoff meanwhile).
test("SIGTERM right after a sink outage: the backlog is drained before the exit", async () => {
  await scenario("backlog", "sigterm_backlog", async () => {
    await sink.ch.stop("SIGKILL");
    await Bun.sleep(6_000);
    await sink.ch.start();
  });
}, 60_000);
