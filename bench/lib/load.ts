// Runs the load generators: wrk (closed loop, saturation) with bench/wrk/ingest.lua, and the
// open-loop generator (bench/lib/open-loop.ts) at a fixed rate. Both target loopback only and
// stop by themselves.
import { spawn } from "bun";
import { join } from "node:path";
import { BUN, REPO } from "./procs.ts";

export interface WrkResult {
  requests: number;
  durationS: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: { p50: number; p99: number; max: number; mean: number };
  /** Requests answered 2xx per second. */
  okRps: number;
  /** CPU seconds wrk itself used (user + sys), to see whether the generator was the limit. */
  cpuSeconds: number;
}

export interface WrkOptions {
  url: string;
  seconds: number;
  connections: number;
  threads: number;
  mode: "event" | "batch";
  items: number;
  key: string;
}

function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (!["127.0.0.1", "localhost", "[::1]"].includes(host)) throw new Error(`load generators target loopback only, not ${host}`);
}

export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  assertLoopback(o.url);
  const args = [
    "wrk", `-t${o.threads}`, `-c${o.connections}`, `-d${o.seconds}s`, "--timeout", "10s",
    "-s", join(REPO, "bench", "wrk", "ingest.lua"), o.url, "--", o.mode, String(o.items), o.key,
  ];
  const proc = spawn(args, { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  const line = out.split("\n").find((l) => l.startsWith("BENCH_JSON "));
  if (!line) throw new Error(`wrk printed no summary (exit ${proc.exitCode}):\n${out}\n${err}`);
  const j = JSON.parse(line.slice("BENCH_JSON ".length));
  const usage = proc.resourceUsage();
  const cpuSeconds = usage ? Number(usage.cpuTime.user + usage.cpuTime.system) / 1e6 : NaN;
  const durationS = j.duration_us / 1e6;
  return {
    requests: j.requests, durationS, bytes: j.bytes, errors: j.errors,
    latencyUs: j.latency_us, okRps: (j.requests - j.errors.status) / durationS, cpuSeconds,
  };
}

export interface OpenLoopResult {
  rate: number;
  duration: number;
  scheduled: number;
  completed: number;
  errors: number;
  missing: number;
  measured: number;
  statuses: Record<string, number>;
  achieved_rate: number;
  corrected_ms: { p50: number; p90: number; p99: number; p999: number; max: number };
  uncorrected_ms: { p50: number; p90: number; p99: number; p999: number; max: number };
  lag_ms: { p50: number; p90: number; p99: number; p999: number; max: number };
}

export async function runOpenLoop(o: { url: string; rate: number; seconds: number; warmup: number; connections: number; key: string; mode?: "event" | "batch"; items?: number }): Promise<OpenLoopResult> {
  assertLoopback(o.url);
  const proc = spawn([
    BUN, join(REPO, "bench", "lib", "open-loop.ts"), "--url", o.url, "--rate", String(o.rate), "--duration", String(o.seconds),
    "--warmup", String(o.warmup), "--connections", String(o.connections), "--key", o.key, "--mode", o.mode ?? "event", "--items", String(o.items ?? 100),
  ], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NODE_ENV: "production" } });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  await proc.exited;
  const line = out.split("\n").find((l) => l.startsWith("OPEN_LOOP_JSON "));
  if (!line) throw new Error(`open-loop printed no summary (exit ${proc.exitCode}):\n${out}\n${err}`);
  return JSON.parse(line.slice("OPEN_LOOP_JSON ".length));
}
