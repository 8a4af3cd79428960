// A start waits for a previous process still holding the data directory's embedded ClickHouse
// (DATA_DIR/clickhouse/status names its pid) instead of failing on its lock; a stale file, a pid
// that is gone or reused by another program, is not waited for.
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { previousOwner, waitForPreviousOwner } from "../../src/storage/embedded/previous-owner.ts";

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

function dataDirHeldBy(pid: number): string {
  const dir = mkdtempSync(join(tmpdir(), "previous-owner-"));
  dirs.push(dir);
  mkdirSync(join(dir, "clickhouse"));
  writeFileSync(join(dir, "clickhouse", "status"), `PID: ${pid}\nStarted at: 2026-11-29 04:46:32\nRevision: 54513\n`);
  return dir;
}

/** A bun child that has started (its /proc entry shows its own command line only once it has). */
async function runningBun(script: string) {
  const child = Bun.spawn([process.execPath, "-e", `console.log("up"); ${script}`], { stdout: "pipe" });
  await child.stdout.getReader().read();
  return child;
}

test("a live bun process named in the status file is waited for until it exits, and told once", async () => {
  // Read right after spawn, /proc/<pid>/cmdline can still be empty (mid-exec): wait for the child to run.
  const holder = await runningBun("setTimeout(() => {}, 1200)");
  const dir = dataDirHeldBy(holder.pid);
  expect(previousOwner(dir)).toBe(holder.pid);
  const told: number[] = [];
  const started = Date.now();
  await waitForPreviousOwner(dir, 10_000, (pid) => told.push(pid));
  expect(told).toEqual([holder.pid]);
  expect(Date.now() - started).toBeGreaterThanOrEqual(900);
  expect(await holder.exited).toBe(0);
  expect(previousOwner(dir)).toBeUndefined();
});

test("the wait is bounded", async () => {
  const holder = await runningBun("setTimeout(() => {}, 10_000)");
  try {
    const started = Date.now();
    await waitForPreviousOwner(dataDirHeldBy(holder.pid), 300, () => {});
    expect(Date.now() - started).toBeLessThan(2_000);
  } finally {
    holder.kill();
  }
});

test("no status file, a pid that is gone, a pid of another program or our own: nothing to wait for", async () => {
  const other = Bun.spawn(["sh", "-c", "echo up; exec sleep 10"], { stdout: "pipe" });
  await other.stdout.getReader().read(); // running its own command line, not a copy of ours
  const gone = Bun.spawn(["true"]);
  await gone.exited;
  try {
    const empty = mkdtempSync(join(tmpdir(), "previous-owner-"));
    dirs.push(empty);
    for (const dir of [empty, dataDirHeldBy(gone.pid), dataDirHeldBy(other.pid), dataDirHeldBy(process.pid)]) {
      expect(previousOwner(dir)).toBeUndefined();
      let told = false;
      await waitForPreviousOwner(dir, 5_000, () => (told = true));
      expect(told).toBe(false);
    }
  } finally {
    other.kill();
  }
});
