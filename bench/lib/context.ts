// What every part of the benchmark gets (options, a scratch directory, a logger, results of the
// parts run before it) and gives back (a Markdown section and the targets it checked).
import type { Summary } from "./stats.ts";

export interface Options {
  rounds: number;
  /** Seconds of measured closed-loop load per run. */
  seconds: number;
  /** Seconds of load before each measured run (not counted). */
  warmupSeconds: number;
  /** wrk connections and threads (the same for B0, B1 and the service). */
  connections: number;
  /** wrk connections for the 100-item batch runs (B0, B1 and the service alike). */
  batchConnections: number;
  threads: number;
  batchItems: number;
  /** Seconds of fixed-rate load per latency run, and its open-loop connections. */
  latencySeconds: number;
  latencyConnections: number;
  /** Fixed rate for the latency part; default: half the service's measured single-item maximum. */
  rate?: number;
  /** Events per step of the memory part. */
  memoryEvents: number;
  /** Keep data directories and logs under .tmp/bench (default: remove data, keep logs). */
  keep: boolean;
  /** Run the service with a bench-owned valkey-server (VALKEY_URL) instead of in-process state. */
  valkey: boolean;
  /** Run the profile part when a target is missed (part of `all`). */
  profile: boolean;
}

export interface TargetCheck {
  /** What is compared, e.g. "single-item ingest / B1 (req/s)". */
  name: string;
  /** The target as text, e.g. "≥ 0.5". */
  target: string;
  /** Per-round values and their median and spread. */
  measured: Summary;
  /** Undefined when the part could not measure it. */
  pass: boolean | undefined;
  unit?: string;
  note?: string;
}

export interface PartResult {
  name: string;
  markdown: string;
  targets: TargetCheck[];
  /** Raw per-round data, written next to RESULTS.md as JSON for later analysis. */
  data: unknown;
}

export interface Shared {
  /** Per-round queryable events/s of the single-item route (set by the ingest part). */
  serviceEventRps?: number[];
  /** Per-round B1 single-item requests/s. */
  b1EventRps?: number[];
  /** Targets missed so far (the profile part looks at these). */
  missed: TargetCheck[];
}

export interface BenchContext {
  opts: Options;
  /** Scratch directory of this invocation (under .tmp/bench, git-ignored). */
  workDir: string;
  shared: Shared;
  log(message: string): void;
  /** Extra service environment (VALKEY_URL when --valkey). */
  serviceEnv: Record<string, string>;
}

export interface Part {
  name: string;
  /** One line for `--help` and the README. */
  describe: string;
  /** Whether `all` runs it (a part can opt out, e.g. until the routes it measures exist). */
  inAll: boolean;
  run(ctx: BenchContext): Promise<PartResult>;
}
