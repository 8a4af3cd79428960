// Ingest throughput: B0 and B1 against the service's single-item POST /v1/ingest/event and
// 100-item POST /v1/ingest/batch, closed loop at saturation (wrk, the same script and bodies for
// all), rounds interleaved. The service counts only what is queryable in ClickHouse afterwards:
// it runs with its embedded engine (production's default), is stopped with SIGTERM (which drains
// the spool into the engine), and a separate process counts on the same data directory.
import { rmSync } from "node:fs";
import { availableParallelism } from "node:os";
import { join } from "node:path";
import type { BenchContext, Part, PartResult, TargetCheck } from "../lib/context.ts";
import { runWrk, type WrkResult } from "../lib/load.ts";
import { countQueryable, metricSum, MiB, sinkBaseline, type SinkBaseline } from "../lib/measure.ts";
import { sampleRss, Service, startBaseline, threadCpu, threadCores, type ThreadGroup } from "../lib/procs.ts";
import { fmt, fmtSummary, summarize } from "../lib/stats.ts";

/** The service's default FLUSH_INTERVAL_MS: backlog within one tick is normal, not lag. */
const FLUSH_INTERVAL_MS = 1000;

type Target = "B0" | "B1" | "service";
type Mode = "event" | "batch";

interface BaselineRun {
  target: "B0" | "B1";
  mode: Mode;
  round: number;
  rps: number;
  eventsPerSec: number;
  wrk: WrkResult;
  serverCpu: number;
  peakRssBytes: number;
}

interface ServiceRun {
  target: "service";
  mode: Mode;
  round: number;
  /** 2xx requests/s during the load (what was acknowledged). */
  rps: number;
  acceptedEvents: number;
  queryableEvents: number;
  /** Queryable events / max(load seconds, load start → last event queryable − one flush tick). */
  eventsPerSec: number;
  spanS: number;
  drainMs: number;
  wrk: WrkResult;
  serverCpu: number;
  /** CPU per thread group during the load, in cores (seconds per second of load). */
  threads: Record<ThreadGroup, number>;
  startMs: number;
  idleRssBytes: number;
  peakRssBytes: number;
  idleAfterRssBytes: number;
  shutdownMs: number;
  exitCode: number | null;
  drops: Record<string, number>;
  freshnessMs: { p50: number; p95: number; p99: number; max: number } | null;
  flushes: number;
  flushSeconds: number;
  flushRows: number;
  /** Wall time of one GET /metrics right after the load (a Prometheus scrape). */
  metricsMs: number;
  /** The same rows inserted straight into the engine, in large batches and in the service's flush sizes. */
  sink: SinkBaseline;
}

type Run = BaselineRun | ServiceRun;

async function baselineRun(ctx: BenchContext, target: "B0" | "B1", mode: Mode, round: number): Promise<BaselineRun> {
  const { opts } = ctx;
  const dir = join(ctx.workDir, `ingest-r${round}-${target}-${mode}`);
  const b = await startBaseline(target === "B0" ? "b0" : "b1", dir);
  try {
    const common = { url: b.url, connections: mode === "batch" ? opts.batchConnections : opts.connections, threads: opts.threads, mode, items: opts.batchItems, key: "sk_baseline" };
    await runWrk({ ...common, seconds: opts.warmupSeconds });
    const cpu0 = b.stats().cpuSeconds;
    const sampler = sampleRss(() => [b.pid]);
    const wrk = await runWrk({ ...common, seconds: opts.seconds });
    const [peak] = sampler.stop();
    const cpu = (b.stats().cpuSeconds - cpu0) / wrk.durationS;
    const items = mode === "batch" ? opts.batchItems : 1;
    return { target, mode, round, rps: wrk.okRps, eventsPerSec: wrk.okRps * items, wrk, serverCpu: cpu, peakRssBytes: Math.max(peak ?? 0, b.stats().hwmBytes) };
  } finally {
    await b.stop("SIGTERM", 5000);
  }
}

async function serviceRun(ctx: BenchContext, mode: Mode, round: number): Promise<ServiceRun> {
  const { opts } = ctx;
  const dir = join(ctx.workDir, `ingest-r${round}-service-${mode}`);
  const dataDir = join(dir, "data");
  const svc = await Service.start({ dataDir, logDir: dir, env: ctx.serviceEnv });
  let stopped = false;
  try {
    const idleRss = svc.stats().rssBytes;
    const warmKey = await svc.createSecretKey("bench-warm");
    const key = await svc.createSecretKey("bench");
    const common = { url: svc.url, connections: mode === "batch" ? opts.batchConnections : opts.connections, threads: opts.threads, mode, items: opts.batchItems };
    await runWrk({ ...common, key: warmKey, seconds: opts.warmupSeconds });
    await svc.waitQuiescent(60_000);
    const before = await svc.metrics();
    const cpu0 = svc.stats().cpuSeconds;
    const threads0 = threadCpu(svc.child.pid);
    const sampler = sampleRss(() => [svc.child.pid]);
    const t0 = Date.now();
    const wrk = await runWrk({ ...common, key, seconds: opts.seconds });
    const t1 = Date.now();
    const cpu = (svc.stats().cpuSeconds - cpu0) / wrk.durationS;
    const threads = threadCores(threads0, threadCpu(svc.child.pid), wrk.durationS);
    // Requests in flight when wrk stopped finish, and the spool drains, before anything is read.
    const drainMs = await svc.waitQuiescent(90_000);
    const [peak] = sampler.stop();
    const scrapeStarted = performance.now();
    const after = await svc.metrics();
    const metricsMs = performance.now() - scrapeStarted;
    const idleAfter = svc.stats().rssBytes;
    const hwm = svc.stats().hwmBytes;
    const drops: Record<string, number> = {};
    for (const outcome of ["invalid", "forbidden", "bot", "duplicate"]) {
      const n = metricSum(after, "ingest_items_total", { outcome }) - metricSum(before, "ingest_items_total", { outcome });
      if (n > 0) drops[outcome] = n;
    }
    const flushes = metricSum(after, "flush_duration_seconds_count") - metricSum(before, "flush_duration_seconds_count");
    const flushSeconds = metricSum(after, "flush_duration_seconds_sum") - metricSum(before, "flush_duration_seconds_sum");
    const flushRows = metricSum(after, "flush_rows_total") - metricSum(before, "flush_rows_total");
    const stop = await svc.stop();
    stopped = true;
    const count = await countQueryable({ dataDir }, "bench", t0 - 1000, t1 + 1000);
    const tableRows = (table: string) => metricSum(after, "flush_rows_total", { table }) - metricSum(before, "flush_rows_total", { table });
    const sink = await sinkBaseline(dataDir, "bench", { flushes, events: tableRows("events"), sessions: tableRows("sessions") });
    const items = mode === "batch" ? opts.batchItems : 1;
    const accepted = Math.round(wrk.okRps * wrk.durationS) * items;
    const queryable = count.events.rows;
    // The run lasts until its last event was queryable, less one flush tick (a normal flush delay,
    // which freshness reports): queryable events / max(load seconds, that span).
    const spanS = (count.events.last_inserted_ms - t0 - FLUSH_INTERVAL_MS) / 1000;
    const f = count.freshness_ms;
    return {
      target: "service", mode, round, rps: wrk.okRps, acceptedEvents: accepted, queryableEvents: queryable,
      eventsPerSec: queryable / Math.max(wrk.durationS, spanS), spanS, drainMs, wrk, serverCpu: cpu, threads, startMs: svc.startMs,
      idleRssBytes: idleRss, peakRssBytes: Math.max(peak ?? 0, hwm), idleAfterRssBytes: idleAfter,
      shutdownMs: stop.ms, exitCode: stop.code, drops,
      freshnessMs: f ? { p50: f.p50, p95: f.p95, p99: f.p99, max: f.max } : null,
      flushes, flushSeconds, flushRows, metricsMs, sink,
    };
  } finally {
    if (!stopped) await svc.stop("SIGKILL");
    if (!opts.keep) rmSync(dataDir, { recursive: true, force: true });
  }
}

export const ingestPart: Part = {
  name: "ingest",
  describe: "throughput: B0 and B1 vs POST /v1/ingest/event and /v1/ingest/batch (queryable events only), RSS idle/peak",
  inAll: true,
  async run(ctx: BenchContext): Promise<PartResult> {
    const { opts } = ctx;
    // B0 is run on single items only: it reads no body, so it is the HTTP ceiling for both.
    const plan: [Target, Mode][] = [["B0", "event"], ["B1", "event"], ["service", "event"], ["B1", "batch"], ["service", "batch"]];
    const runs: Run[] = [];
    for (let round = 1; round <= opts.rounds; round++) {
      // Interleaved, and the order reversed every other round, so a drift in the machine's load
      // does not always favour the same target.
      const order = round % 2 === 1 ? plan : [...plan].reverse();
      for (const [target, mode] of order) {
        ctx.log(`ingest round ${round}/${opts.rounds}: ${target} ${mode}`);
        const run = target === "service" ? await serviceRun(ctx, mode, round) : await baselineRun(ctx, target, mode, round);
        runs.push(run);
        ctx.log(
          `  → ${fmt(run.rps)} req/s, ${fmt(run.eventsPerSec)} events/s` +
            (run.target === "service" ? ` (queryable ${run.queryableEvents} of ${run.acceptedEvents} acknowledged, drained in ${fmt(run.drainMs)} ms)` : ""),
        );
      }
    }
    const get = (target: Target, mode: Mode, round: number) => runs.find((r) => r.target === target && r.mode === mode && r.round === round);
    const rounds = Array.from({ length: opts.rounds }, (_, i) => i + 1);
    const series = (target: Target, mode: Mode, f: (r: Run) => number) => rounds.map((r) => { const x = get(target, mode, r); return x ? f(x) : NaN; });
    const paired = (f: (r: number) => number) => summarize(rounds.map(f));

    const single = paired((r) => get("service", "event", r)!.eventsPerSec / get("B1", "event", r)!.rps);
    const batchVsB1Single = paired((r) => get("service", "batch", r)!.eventsPerSec / get("B1", "event", r)!.rps);
    const batchVsB1Batch = paired((r) => get("service", "batch", r)!.eventsPerSec / get("B1", "batch", r)!.eventsPerSec);
    const b1b0 = paired((r) => get("B1", "event", r)!.rps / get("B0", "event", r)!.rps);
    // CPU actually consumed per event (all threads of the server process): less sensitive to how
    // much CPU other tenants of the machine left over than a rate is.
    const cpuCost = (x: Run) => (x.serverCpu * 1e6) / x.eventsPerSec;
    const cpuSingle = paired((r) => cpuCost(get("service", "event", r)!) / cpuCost(get("B1", "event", r)!));
    const cpuBatch = paired((r) => cpuCost(get("service", "batch", r)!) / cpuCost(get("B1", "event", r)!));
    // The ceiling: what the service could reach on this machine if its own work (validation,
    // enrichment, sessions, dedup, spool, the flush's JS side) cost nothing. Every request still
    // costs the load generator what it costs against B1, the HTTP floor (B1's server CPU, JSON
    // parse included), and storing its rows (the engine's CPU for the same rows inserted straight
    // in the service's flush sizes, a lower bound: merges after the insert are not counted). Per
    // round: cores ÷ the sum of those three per event, ÷ B1's single-item req/s.
    const cores = availableParallelism();
    const usPer = (cpuSeconds: number, perSec: number) => (cpuSeconds * 1e6) / perSec;
    const storageUs = (x: ServiceRun, large: boolean) =>
      large ? (x.sink.events.cpuUs + x.sink.sessions.cpuUs) / x.sink.events.rows : (x.sink.events_small.cpuUs + x.sink.sessions_small.cpuUs) / x.sink.events_small.rows;
    const floorUs = (r: number, mode: Mode) => {
      const b1 = get("B1", mode, r) as BaselineRun;
      const svcRun = get("service", mode, r) as ServiceRun;
      const gen = usPer(b1.wrk.cpuSeconds / b1.wrk.durationS, b1.eventsPerSec);
      const http = usPer(b1.serverCpu, b1.eventsPerSec);
      return { gen, http, storage: storageUs(svcRun, false), storageLarge: storageUs(svcRun, true) };
    };
    const ceiling = (mode: Mode, large = false) => paired((r) => {
      const f = floorUs(r, mode);
      return (cores * 1e6) / (f.gen + f.http + (large ? f.storageLarge : f.storage)) / get("B1", "event", r)!.rps;
    });
    const ceilingSingle = ceiling("event");
    const ceilingBatch = ceiling("batch");
    const floorCells = (mode: Mode) => {
      const part = (k: "gen" | "http" | "storage" | "storageLarge") => fmtSummary(paired((r) => floorUs(r, mode)[k]), 1);
      const app = paired((r) => cpuCost(get("service", mode, r)!) - floorUs(r, mode).http - floorUs(r, mode).storage);
      return `| ${mode === "event" ? "single-item" : "100-item batch"} | ${part("gen")} | ${part("http")} | ${part("storage")} | ${part("storageLarge")} | ${fmtSummary(app, 1)} | ${fmtSummary(mode === "event" ? ceilingSingle : ceilingBatch, 2)} | ${fmtSummary(ceiling(mode, true), 2)} | ${mode === "event" ? "0.5" : "1.5"} |`;
    };
    ctx.shared.serviceEventRps = series("service", "event", (r) => r.eventsPerSec);
    ctx.shared.b1EventRps = series("B1", "event", (r) => r.rps);

    const targets: TargetCheck[] = [
      { name: "single-item POST /v1/ingest/event ÷ B1 (req/s, queryable)", target: "≥ 0.5", measured: single, pass: single.median >= 0.5 },
      { name: "100-item POST /v1/ingest/batch events/s ÷ B1 single-item req/s", target: "≥ 1.5", measured: batchVsB1Single, pass: batchVsB1Single.median >= 1.5 },
      { name: "ceiling of single-item ÷ B1 on this machine if the service's own work cost nothing (ingest part: ceiling)", target: "≥ 0.5 (info)", measured: ceilingSingle, pass: ceilingSingle.median >= 0.5 },
      { name: "ceiling of 100-item batch events/s ÷ B1 single-item req/s, likewise", target: "≥ 1.5 (info)", measured: ceilingBatch, pass: ceilingBatch.median >= 1.5 },
    ];

    const rowsFor = (target: Target, mode: Mode) => {
      const rs = rounds.map((r) => get(target, mode, r)!);
      const rps = summarize(rs.map((r) => r.rps));
      const eps = summarize(rs.map((r) => r.eventsPerSec));
      const p50 = summarize(rs.map((r) => r.wrk.latencyUs.p50 / 1000));
      const p99 = summarize(rs.map((r) => r.wrk.latencyUs.p99 / 1000));
      const cpu = summarize(rs.map((r) => r.serverCpu * 100));
      const gen = summarize(rs.map((r) => (r.wrk.cpuSeconds / r.wrk.durationS) * 100));
      const peak = summarize(rs.map((r) => r.peakRssBytes / MiB));
      const cpuPerEvent = summarize(rs.map((r) => (r.serverCpu * 1e6) / r.eventsPerSec));
      const errs = rs.reduce((s, r) => s + r.wrk.errors.status + r.wrk.errors.timeout + r.wrk.errors.connect, 0);
      return `| ${target} | ${mode} | ${fmtSummary(rps)} | ${fmtSummary(eps)} | ${fmt(p50.median)} / ${fmt(p99.median)} | ${fmt(cpu.median, 0)}% | ${fmtSummary(cpuPerEvent, 1)} | ${fmt(gen.median, 0)}% | ${fmt(peak.median, 0)} | ${errs} |`;
    };
    const svc = (mode: Mode) => rounds.map((r) => get("service", mode, r) as ServiceRun);
    const svcRows = (["event", "batch"] as Mode[]).map((mode) => {
      const rs = svc(mode);
      const acc = rs.reduce((s, r) => s + r.acceptedEvents, 0);
      const q = rs.reduce((s, r) => s + r.queryableEvents, 0);
      const drain = summarize(rs.map((r) => r.drainMs));
      const fresh95 = summarize(rs.map((r) => r.freshnessMs?.p95 ?? NaN));
      const flushMs = summarize(rs.map((r) => (r.flushes > 0 ? (r.flushSeconds / r.flushes) * 1000 : NaN)));
      const drops = rs.map((r) => Object.entries(r.drops).map(([k, v]) => `${k} ${v}`).join(", ") || "none").join("; ");
      return `| ${mode} | ${acc} | ${q} | ${fmtSummary(drain, 0)} | ${fmtSummary(flushMs, 0)} | ${fmtSummary(fresh95, 0)} | ${fmt(summarize(rs.map((r) => r.startMs)).median, 0)} | ${fmt(summarize(rs.map((r) => r.shutdownMs)).median, 0)} (exit ${rs.map((r) => r.exitCode).join(",")}) | ${drops} |`;
    });
    const sinkRows = (["event", "batch"] as Mode[]).map((mode) => {
      const rs = svc(mode);
      const perSec = summarize(rs.map((r) => (r.flushSeconds > 0 ? r.flushRows / r.flushSeconds : NaN)));
      return `| service flush during ${mode} runs (spool segment bytes → client-web → in-process HTTP handler → engine, one INSERT per table; events + sessions rows) | ${fmtSummary(perSec)} | ${fmt(summarize(rs.map((r) => (r.flushes ? r.flushRows / r.flushes : NaN))).median, 0)} rows per flush |`;
    });
    const direct = svc("event");
    const directAll = summarize(direct.map((r) => (r.sink!.events.rows + r.sink!.sessions.rows) / ((r.sink!.events.ms + r.sink!.sessions.ms) / 1000)));
    const directEv = summarize(direct.map((r) => r.sink!.events.rowsPerSec));
    const directSe = summarize(direct.map((r) => r.sink!.sessions.rowsPerSec));
    const directSmall = summarize(direct.map((r) => (r.sink!.events_small.rows + r.sink!.sessions_small.rows) / ((r.sink!.events_small.ms + r.sink!.sessions_small.ms) / 1000)));
    const smallRows = summarize(direct.map((r) => r.sink!.smallBatchRows));
    const sinkRatio = summarize(rounds.map((r) => {
      const x = get("service", "event", r) as ServiceRun;
      return x.flushSeconds > 0 ? (x.flushRows / x.flushSeconds) / ((x.sink.events.rows + x.sink.sessions.rows) / ((x.sink.events.ms + x.sink.sessions.ms) / 1000)) : NaN;
    }));
    const threadRows = (["event", "batch"] as Mode[]).map((mode) => {
      const rs = svc(mode);
      const cell = (g: ThreadGroup) => {
        const share = summarize(rs.map((r) => r.threads[g] * 100));
        const perEvent = summarize(rs.map((r) => (r.threads[g] * 1e6) / r.eventsPerSec));
        return `${fmt(share.median, 0)}% · ${fmt(perEvent.median, 1)} µs`;
      };
      return `| ${mode} | ${cell("js")} | ${cell("engine")} | ${cell("pool")} | ${cell("runtime")} |`;
    });
    const scrape = summarize(svc("event").concat(svc("batch")).map((r) => r.metricsMs));
    const idle = summarize(svc("event").concat(svc("batch")).map((r) => r.idleRssBytes / MiB));
    const idleAfter = summarize(svc("event").concat(svc("batch")).map((r) => r.idleAfterRssBytes / MiB));
    const peakEvent = summarize(svc("event").map((r) => r.peakRssBytes / MiB));
    const peakBatch = summarize(svc("batch").map((r) => r.peakRssBytes / MiB));
    const perRound = rounds.map((r) => {
      const s = get("service", "event", r)!, sb = get("service", "batch", r)!, b1 = get("B1", "event", r)!, b1b = get("B1", "batch", r)!, b0 = get("B0", "event", r)!;
      return `| ${r} | ${fmt(b0.rps)} | ${fmt(b1.rps)} | ${fmt(s.eventsPerSec)} | ${fmt(b1b.eventsPerSec)} | ${fmt(sb.eventsPerSec)} | ${fmt(s.eventsPerSec / b1.rps, 3)} | ${fmt(sb.eventsPerSec / b1.rps, 2)} |`;
    });

    const markdown = [
      "### Ingest throughput (closed loop, saturation)",
      "",
      `wrk -t${opts.threads} -c${opts.connections}, ${opts.warmupSeconds} s warm-up + ${opts.seconds} s measured per run, ${opts.rounds} interleaved rounds (order reversed every other round), bodies from \`bench/wrk/ingest.lua\` (~330-byte events, distinct event_id, 5000 visitors; batch = ${opts.batchItems} items). Batch runs use ${opts.batchConnections} connections (${opts.batchConnections * opts.batchItems} events in flight). Service events/s = events **queryable in ClickHouse** after the run ÷ max(load seconds, time from load start until the last event was inserted − one ${FLUSH_INTERVAL_MS} ms flush tick), so requests still in flight when wrk stops and spool backlog count against the service.`,
      "",
      "| target | route | req/s: median (min–max, spread) | events/s: median (min–max, spread) | latency p50 / p99 ms | server CPU (of one core) | server CPU µs per event | wrk CPU | peak RSS MiB | non-2xx+timeouts |",
      "|---|---|---|---|---|---|---|---|---|---|",
      rowsFor("B0", "event"), rowsFor("B1", "event"), rowsFor("service", "event"),
      rowsFor("B1", "batch"), rowsFor("service", "batch"),
      "",
      "Per round (paired ratios are computed within a round):",
      "",
      "| round | B0 event req/s | B1 event req/s | service event ev/s | B1 batch ev/s | service batch ev/s | service event ÷ B1 | service batch ÷ B1 single |",
      "|---|---|---|---|---|---|---|---|",
      ...perRound,
      "",
      "Ratios (median of per-round ratios, min–max, spread):",
      "",
      `- single-item service ÷ B1 (req/s): **${fmtSummary(single, 3)}** — target ≥ 0.5: ${single.median >= 0.5 ? "met" : "**missed**"}`,
      `- batch service events/s ÷ B1 single-item req/s: **${fmtSummary(batchVsB1Single, 2)}** — target ≥ 1.5: ${batchVsB1Single.median >= 1.5 ? "met" : "**missed**"}`,
      `- batch service events/s ÷ B1 batch events/s (same bodies): ${fmtSummary(batchVsB1Batch, 3)}`,
      `- B1 ÷ B0 (single items): ${fmtSummary(b1b0, 2)}`,
      `- server CPU per event, service ÷ B1 single-item (what the ratio would be if both were CPU-bound on a quiet machine, inverted): single ${fmtSummary(cpuSingle, 1)}; batch ${fmtSummary(cpuBatch, 1)}`,
      "",
      `Ceiling on this machine (${cores} cores; the load generator shares them): CPU µs per event that no service can avoid here, per round, medians. Generator and HTTP floor are measured against B1 (same requests, same bodies; the floor includes B1's JSON parse), storage is the engine's CPU for the service's own rows inserted straight into the engine in the service's flush sizes (bench/lib/sink-baseline.ts; merges after the inserts not counted, so the ceiling is an upper bound). The ceiling is cores ÷ (generator + HTTP floor + storage), as a ratio to B1's single-item req/s: what the ratio would be if validation, enrichment, sessions, dedup, the spool and the flush's JS side cost nothing. "Service's own work" is the service's CPU per event less the HTTP floor and storage. The last ceiling stores the same rows in 100,000-row inserts instead (the engine's cheapest, and a freshness of minutes at these rates).`,
      "",
      "| route | generator µs per event | HTTP floor µs | storage µs (flush sizes) | storage µs (100,000-row inserts) | service's own work µs | ceiling ÷ B1 single-item | ceiling with 100,000-row inserts | target |",
      "|---|---|---|---|---|---|---|---|---|",
      floorCells("event"), floorCells("batch"),
      "",
      "Service CPU by thread during the load (medians over rounds; % of one core · µs per queryable event). JS thread: the main thread (HTTP, auth, validation, enrichment, sessions, row encoding, and the flush's JS side); engine: the embedded ClickHouse's own threads (named by ClickHouse: ThreadPool, MergeMutate, …); Bun pool: Bun's work threads, where chdb's async calls execute their statements and where async file I/O (the spool's fdatasync) runs; runtime: JIT, GC helpers, allocator. Read from /proc/<pid>/task at the start and end of the load:",
      "",
      "| route | JS thread | engine threads | Bun pool (chdb statements, file I/O) | runtime |",
      "|---|---|---|---|---|",
      ...threadRows,
      "",
      "Service runs (summed over rounds; count check and sink):",
      "",
      "| route | events acknowledged (202) within the load | events queryable | quiet (in-flight done + spool empty) after load ms | mean flush (segment insert) ms | freshness p95 ms at saturation | start ms | SIGTERM→exit ms | drops |",
      "|---|---|---|---|---|---|---|---|---|",
      ...svcRows,
      "",
      "Sink (rows/s while inserting; the baseline is the same rows, exported after each single-item run, inserted straight into the embedded engine in batches of 100,000 into a copy of the schema with its materialized views; session rows are replayed as cancel + new state pairs up to the number the service inserted, since the table itself keeps only the collapsed states):",
      "",
      "| path | rows/s: median (min–max, spread) | batch size |",
      "|---|---|---|",
      ...sinkRows,
      `| baseline: straight into the engine, events + sessions | ${fmtSummary(directAll)} | 100,000 rows |`,
      `| baseline: events only / sessions only | ${fmt(directEv.median)} / ${fmt(directSe.median)} | 100,000 rows |`,
      `| baseline: straight into the engine, events + sessions, per table in batches the size of the service's flushes | ${fmtSummary(directSmall)} | ${fmt(smallRows.median, 0)} rows |`,
      "",
      `- service flush rows/s ÷ baseline rows/s (single-item runs, per round): ${fmtSummary(sinkRatio, 3)}`,
      `- one GET /metrics right after the load took ${fmtSummary(scrape, 0)} ms (a Prometheus scrape; the event loop is busy meanwhile)`,
      "",
      `Service RSS: idle after start ${fmtSummary(idle, 0)} MiB; peak under load (VmHWM) single ${fmtSummary(peakEvent, 0)} MiB, batch ${fmtSummary(peakBatch, 0)} MiB; idle after load and drain ${fmtSummary(idleAfter, 0)} MiB.`,
      "",
    ].join("\n");
    return { name: "ingest", markdown, targets, data: runs };
  },
};
