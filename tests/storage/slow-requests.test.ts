// A request that waits for one of the embedded engine's lanes, or holds one, too long is reported
// while it lasts (ChdbEngine.watchSlow; the service and `npm run clickhouse` log it). Added after a
// fault test's read once hung for its client's whole 60 s timeout with nothing in either log.
import { expect, test } from "bun:test";
import type { SlowRequest } from "../../src/storage/embedded/chdb-engine.ts";
import { testClickHouse } from "../helpers/clickhouse.ts";

test("requests queued or running past the threshold are reported once each, while they last", async () => {
  const { engine } = testClickHouse();
  if (!engine) throw new Error("the test suite runs on the embedded engine");
  const run = (sql: string) => engine.run({ sql, format: "TSV" });
  await run("SELECT 1"); // the engine opened and warm
  const reports: { at: number; slow: SlowRequest }[] = [];
  const stop = engine.watchSlow(150, (slow) => reports.push({ at: performance.now(), slow }));
  try {
    // Every lane sleeps 0.6 s, so one more statement waits for a lane about that long.
    const sleepers = Array.from({ length: engine.lanes }, (_, i) => run(`SELECT sleep(0.6) AS lane_${i}`));
    const waiting = run("SELECT 'queued behind the sleepers'");
    await Promise.all(sleepers);
    const waitingDone = performance.now();
    await waiting;
    await Bun.sleep(250); // nothing more to report: every request has finished
    const running = reports.filter((r) => r.slow.state === "running");
    const queued = reports.filter((r) => r.slow.state === "queued");
    // Each sleeper once (the queued statement may be reported running too, if its lane is slow to
    // take it after a sleep: seen here at ~180 ms).
    const sleeping = running.map((r) => r.slow.sql).filter((sql) => sql.startsWith("SELECT sleep"));
    expect(sleeping.sort()).toEqual(Array.from({ length: engine.lanes }, (_, i) => `SELECT sleep(0.6) AS lane_${i}`).sort());
    expect(queued.map((r) => r.slow.sql)).toEqual(["SELECT 'queued behind the sleepers'"]);
    // Reported while it still waited, with the lanes it waited for.
    expect(queued[0]!.at).toBeLessThan(waitingDone);
    expect(queued[0]!.slow.ms).toBeGreaterThanOrEqual(150);
    expect(queued[0]!.slow.lanesBusy).toBe(engine.lanes);
    expect(running.every((r) => r.slow.ms >= 150 && !r.slow.stream)).toBe(true);
  } finally {
    stop();
  }
  const before = reports.length;
  await run("SELECT sleep(0.4)");
  expect(reports.length).toBe(before); // stopped: nothing reported after stop()
}, 30_000);
