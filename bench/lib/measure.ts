// Measurement helpers shared by the parts: counting in ClickHouse from a separate process, reading
// Prometheus text, and bounded request loops.
import { spawn } from "bun";
import { join } from "node:path";
import { BUN, REPO, sourceRoot } from "./procs.ts";

export interface CountResult {
  events: { rows: number; ids: number; last_inserted_ms: number; first_received_ms: number };
  freshness_ms: { n: number; p50: number; p95: number; p99: number; max: number; min: number; mean: number } | null;
  sessions: { rows: number; live: number };
  query_log_inserts: unknown;
}

/** Runs bench/lib/count.ts on a stopped service's data directory (or a ClickHouse URL). */
export async function countQueryable(target: { dataDir: string } | { url: string }, serviceId: string, fromMs = 0, toMs = 8.64e15): Promise<CountResult> {
  const where = "url" in target ? ["--url", target.url] : [target.dataDir];
  const proc = spawn([BUN, join(REPO, "bench", "lib", "count.ts"), ...where, serviceId, String(Math.floor(fromMs)), String(Math.ceil(toMs))], {
    stdout: "pipe", stderr: "pipe", cwd: REPO, env: { ...process.env, BENCH_SRC_ROOT: sourceRoot() },
  });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  const line = out.split("\n").find((l) => l.startsWith("COUNT_JSON "));
  if (!line) throw new Error(`count.ts failed (exit ${proc.exitCode}):\n${out}\n${err}`);
  return JSON.parse(line.slice("COUNT_JSON ".length));
}

interface SinkRun {
  rows: number;
  ms: number;
  rowsPerSec: number;
  bytes: number;
  /** CPU of the inserting process (all threads) while the inserts ran, µs. */
  cpuUs: number;
}
export interface SinkBaseline {
  events: SinkRun;
  sessions: SinkRun;
  /** The same rows in batches of `smallBatchRows` (the service's flush size). */
  events_small: SinkRun;
  sessions_small: SinkRun;
  smallBatchRows: number;
}

/** Runs bench/lib/sink-baseline.ts on a stopped service's data directory. */
export async function sinkBaseline(dataDir: string, serviceId: string, flushed: { flushes: number; events: number; sessions: number }): Promise<SinkBaseline> {
  const args = [flushed.flushes, flushed.events, flushed.sessions].map((n) => String(Math.round(n)));
  const proc = spawn([BUN, join(REPO, "bench", "lib", "sink-baseline.ts"), dataDir, serviceId, ...args], {
    stdout: "pipe", stderr: "pipe", cwd: REPO, env: { ...process.env, BENCH_SRC_ROOT: sourceRoot() },
  });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  const line = out.split("\n").find((l) => l.startsWith("SINK_JSON "));
  if (!line) throw new Error(`sink-baseline.ts failed (exit ${proc.exitCode}):\n${out}\n${err}`);
  return JSON.parse(line.slice("SINK_JSON ".length));
}

/** Sums the samples of Prometheus metric `name` whose labels contain every `match` pair. */
export function metricSum(text: string, name: string, match: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (rest[0] !== "{" && rest[0] !== " ") continue;
    const labels = rest[0] === "{" ? rest.slice(1, rest.indexOf("}")) : "";
    if (!Object.entries(match).every(([k, v]) => labels.includes(`${k}="${v}"`))) continue;
    sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

/** Sends `requests` POSTs with bodies from `body()`, `concurrency` at a time; returns the statuses. */
export async function sendCount(url: string, key: string, requests: number, concurrency: number, body: () => string): Promise<Map<number, number>> {
  const host = new URL(url).hostname;
  if (!["127.0.0.1", "localhost", "[::1]"].includes(host)) throw new Error("loopback targets only");
  const statuses = new Map<number, number>();
  let next = 0;
  const worker = async () => {
    while (next < requests) {
      next++;
      let status = 0;
      try {
        const res = await fetch(url, {
          method: "POST",
          headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
          body: body(),
          signal: AbortSignal.timeout(30_000),
        });
        await res.arrayBuffer();
        status = res.status;
      } catch {
        status = -1;
      }
      statuses.set(status, (statuses.get(status) ?? 0) + 1);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  return statuses;
}

export const MiB = 1024 * 1024;
