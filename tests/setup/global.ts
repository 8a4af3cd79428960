/**
 * Preloaded once for every `bun test` run (bunfig.toml: `[test] preload`). All test files run in
 * this one process, so what this file starts is shared by all of them:
 *
 * - one real `valkey-server` on a free loopback port: `process.env.TEST_VALKEY_URL`, and the
 *   helpers in `tests/setup/valkey.ts` (stop / start on the same port, free key prefixes);
 * - `process.env.TEST_DATA_DIR`: a fresh, empty directory for the shared embedded ClickHouse
 *   engine (one engine per process; tests isolate themselves by database name).
 *
 * Both are removed after the last test (`afterAll` here runs once, after every file) and, as a
 * fallback, when the process exits.
 */
import { afterAll } from "bun:test";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { shutdownValkey, startValkey, ValkeyMissingError } from "./valkey.ts";

/** Scratch directories of earlier runs that were killed (SIGKILL) before they could clean up. */
function sweepStaleDirs(): void {
  for (const name of readdirSync(tmpdir())) {
    const pid = Number(/^analytics-test-(?:valkey|data)-(\d+)-/.exec(name)?.[1]);
    if (!pid || pid === process.pid) continue;
    try {
      process.kill(pid, 0);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ESRCH") {
        rmSync(join(tmpdir(), name), { recursive: true, force: true });
      }
    }
  }
}
sweepStaleDirs();

const dataDir = mkdtempSync(join(tmpdir(), `analytics-test-data-${process.pid}-`));
process.env.TEST_DATA_DIR = dataDir;

function removeDataDir(): void {
  rmSync(dataDir, { recursive: true, force: true });
}

process.on("exit", removeDataDir);
for (const [signal, code] of [["SIGINT", 130], ["SIGTERM", 143]] as const) {
  // Without a handler these signals end the process without "exit" handlers running.
  process.once(signal, () => process.exit(code));
}

try {
  await startValkey();
} catch (error) {
  const message = error instanceof ValkeyMissingError ? error.message : `could not start the test Valkey: ${String(error)}`;
  console.error(`\n[tests/setup/global.ts] ${message}\n`);
  removeDataDir();
  process.exit(1);
}

afterAll(async () => {
  await shutdownValkey();
  // The embedded engine may still hold files open; on Linux removing them is still fine.
  removeDataDir();
});
