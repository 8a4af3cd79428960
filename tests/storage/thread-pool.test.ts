// Bun's work pool runs chdb's calls (each holds its thread for the whole query) and the spool's
// file writes and fdatasyncs, which every 202 waits for. The runtime settings (src/runtime-flags.ts:
// UV_THREADPOOL_SIZE, set by npm start and the Dockerfile) keep threads free for the spool while
// every engine lane is busy: with Bun's default (one thread per core), a 202 waited for dashboard
// reads, up to seconds (bench/RESULTS.md, session 16).
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RUNTIME_ENV } from "../../src/runtime-flags.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

async function longestFsyncBesideQueries(env: Record<string, string>): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), "thread-pool-"));
  dirs.push(dir);
  const { UV_THREADPOOL_SIZE: _, ...inherited } = process.env;
  const child = Bun.spawn([process.execPath, join(import.meta.dir, "fixtures", "fsync-beside-queries.ts"), dir], {
    env: { ...inherited, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, code] = await Promise.all([new Response(child.stdout).text(), child.exited]);
  expect(code).toBe(0);
  return (JSON.parse(out.trim().split("\n").at(-1)!) as { longest: number }).longest;
}

test("with the runtime settings, the spool's fdatasync does not wait while every engine lane runs a long query", async () => {
  const withSettings = await longestFsyncBesideQueries({ ...RUNTIME_ENV });
  const withDefault = await longestFsyncBesideQueries({});
  console.log(`[thread pool] longest write + fdatasync beside 8 running queries: ${withSettings.toFixed(0)} ms with the runtime settings, ${withDefault.toFixed(0)} ms with Bun's default pool`);
  // The queries hold their threads for 1.5 s; a write that had to wait for one would take ~1 s.
  expect(withSettings).toBeLessThan(500);
}, 60_000);
