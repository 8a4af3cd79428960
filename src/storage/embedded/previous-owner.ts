// The embedded ClickHouse of a data directory belongs to one process: it locks
// DATA_DIR/clickhouse/status, which names the holder's pid. A start right after the previous
// process was told to stop (a restart; npm killed, main.ts) finds it still draining its spool and
// would fail with "another process is using DATA_DIR". So a start first waits, bounded, for a
// holder that is still running. The file outlives a killed holder and a pid can be reused: only a
// live process that runs bun counts (Linux /proc; elsewhere nothing is waited for).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readSmallFile } from "../../private-files.ts";

/** The pid named in DATA_DIR/clickhouse/status when that process is alive and runs bun. */
export function previousOwner(dataDir: string): number | undefined {
  let text: string;
  try {
    // Stat'ed first: a FIFO in its place blocked the start for good. Unusable: no owner to wait for
    // (the engine then says why it cannot open the directory).
    text = readSmallFile(join(dataDir, "clickhouse", "status"), 64 * 1024) ?? "";
  } catch {
    return undefined;
  }
  const pid = Number(/^PID:\s*(\d+)/m.exec(text)?.[1]);
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return undefined;
  return runsBun(pid) ? pid : undefined;
}

function runsBun(pid: number): boolean {
  try {
    if (/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, "utf8"))) return false; // exited, not yet reaped
    return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("bun");
  } catch {
    return false;
  }
}

/**
 * Resolves once no live previous owner holds `dataDir`, or after `timeoutMs` (the open that follows
 * then fails with the usual start-up error). `onWait` hears of the holder once, if there is one.
 */
export async function waitForPreviousOwner(dataDir: string, timeoutMs: number, onWait: (pid: number) => void): Promise<void> {
  const started = Date.now();
  let told = false;
  for (let pid = previousOwner(dataDir); pid !== undefined && Date.now() - started < timeoutMs; pid = previousOwner(dataDir)) {
    if (!told) onWait(pid);
    told = true;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
