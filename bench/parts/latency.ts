// Latency at a fixed rate (open loop, bench/lib/open-loop.ts) of half the service's measured
// single-item maximum, for the service and for B1 at the SAME rate, rounds interleaved; and
// freshness (202 → queryable) of the same service runs: each event's received_at (set when the
// request arrives, just before its 202) against its inserted_at (DEFAULT now64(3), set when the
// flush inserts it), read after a graceful stop from a separate process.
import { rmSync } from "node:fs";
import { join } from "node:path";
import type { BenchContext, Part, PartResult, TargetCheck } from "../lib/context.ts";
import { runOpenLoop, runWrk, type OpenLoopResult } from "../lib/load.ts";
import { countQueryable, MiB } from "../lib/measure.ts";
import { Service, startBaseline, threadCpu, threadCores, type ThreadGroup } from "../lib/procs.ts";
import { fmt, fmtSummary, median, summarize } from "../lib/stats.ts";

interface LatencyRun {
  target: "B1" | "service";
  round: number;
  result: OpenLoopResult;
  freshness?: { n: number; p50: number; p95: number; p99: number; max: number };
  queryable?: number;
  acknowledged?: number;
  idleAfterRssBytes?: number;
  /** Service CPU per thread group over the fixed-rate load, in cores. */
  threads?: Record<ThreadGroup, number>;
  /** The service's own `eventloop_delay_seconds` over the fixed-rate load (warm-up included), ms. */
  loopDelay?: { p50: number; p99: number; max: number };
}

/** The service's event-loop delay since the previous scrape (each GET /metrics starts afresh). */
async function scrapeLoopDelay(url: string): Promise<{ p50: number; p99: number; max: number }> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const stat = (name: string) => Number(new RegExp(`^eventloop_delay_seconds\\{stat="${name}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? NaN) * 1000;
  return { p50: stat("p50"), p99: stat("p99"), max: stat("max") };
}

/** Half the service's single-item maximum: from the ingest part of this invocation, or measured now. */
async function chooseRate(ctx: BenchContext): Promise<{ rate: number; how: string }> {
  if (ctx.opts.rate) return { rate: ctx.opts.rate, how: "--rate" };
  if (ctx.shared.serviceEventRps?.length) {
    const max = median(ctx.shared.serviceEventRps);
    return { rate: Math.max(10, Math.round(max / 2)), how: `half of the single-item maximum measured by the ingest part (${fmt(max)} events/s)` };
  }
  ctx.log("latency: no ingest result in this run; measuring the single-item maximum first (one short closed-loop run)");
  const dir = join(ctx.workDir, "latency-calibrate");
  const svc = await Service.start({ dataDir: join(dir, "data"), logDir: dir, env: ctx.serviceEnv });
  try {
    const key = await svc.createSecretKey("bench");
    const common = { url: svc.url, connections: ctx.opts.connections, threads: ctx.opts.threads, mode: "event" as const, items: 1, key };
    await runWrk({ ...common, seconds: ctx.opts.warmupSeconds });
    const w = await runWrk({ ...common, seconds: Math.max(5, Math.round(ctx.opts.seconds / 2)) });
    return { rate: Math.max(10, Math.round(w.okRps / 2)), how: `half of a calibration run's acknowledged req/s (${fmt(w.okRps)}; not counted in ClickHouse)` };
  } finally {
    await svc.stop("SIGKILL");
    if (!ctx.opts.keep) rmSync(dir, { recursive: true, force: true });
  }
}

async function b1Run(ctx: BenchContext, rate: number, round: number): Promise<LatencyRun> {
  const dir = join(ctx.workDir, `latency-r${round}-B1`);
  const b = await startBaseline("b1", dir);
  try {
    const result = await runOpenLoop({ url: `${b.url}/v1/ingest/event`, rate, seconds: ctx.opts.latencySeconds, warmup: 1, connections: ctx.opts.latencyConnections, key: "sk_baseline" });
    return { target: "B1", round, result };
  } finally {
    await b.stop("SIGTERM", 5000);
  }
}

async function serviceRun(ctx: BenchContext, rate: number, round: number): Promise<LatencyRun> {
  const dir = join(ctx.workDir, `latency-r${round}-service`);
  const dataDir = join(dir, "data");
  const svc = await Service.start({ dataDir, logDir: dir, env: ctx.serviceEnv });
  let stopped = false;
  try {
    const key = await svc.createSecretKey("bench");
    await scrapeLoopDelay(svc.url); // starts the service's delay record afresh
    const t0 = Date.now();
    const threads0 = threadCpu(svc.child.pid);
    const result = await runOpenLoop({ url: `${svc.url}/v1/ingest/event`, rate, seconds: ctx.opts.latencySeconds, warmup: 1, connections: ctx.opts.latencyConnections, key });
    const t1 = Date.now();
    const loadSeconds = (t1 - t0) / 1000;
    const threads = threadCores(threads0, threadCpu(svc.child.pid), loadSeconds);
    const loopDelay = await scrapeLoopDelay(svc.url);
    // Idle for a while after the load: the flush timer (not the shutdown drain) inserts the tail.
    await Bun.sleep(2500);
    const idleAfter = svc.stats().rssBytes;
    await svc.stop();
    stopped = true;
    // Freshness over the measured window (after the open loop's 1 s warm-up).
    const count = await countQueryable({ dataDir }, "bench", t0 + 1000, t1);
    const all = await countQueryable({ dataDir }, "bench");
    const f = count.freshness_ms;
    return {
      target: "service", round, result, threads, loopDelay, queryable: all.events.rows, acknowledged: result.statuses["202"] ?? 0, idleAfterRssBytes: idleAfter,
      freshness: f ? { n: f.n, p50: f.p50, p95: f.p95, p99: f.p99, max: f.max } : undefined,
    };
  } finally {
    if (!stopped) await svc.stop("SIGKILL");
    if (!ctx.opts.keep) rmSync(dataDir, { recursive: true, force: true });
  }
}

function makePart(name: "latency" | "freshness", withB1: boolean): Part {
  return {
    name,
    describe: withB1
      ? "202 latency p50/p99/p99.9 at a fixed rate (half the single-item max), service vs B1, plus freshness of those runs"
      : "freshness only: 202 → queryable p50/p95/p99 of the service at a fixed rate (no B1 runs)",
    inAll: withB1,
    async run(ctx: BenchContext): Promise<PartResult> {
      const { rate, how } = await chooseRate(ctx);
      ctx.log(`${name}: fixed rate ${rate} req/s (${how})`);
      const runs: LatencyRun[] = [];
      for (let round = 1; round <= ctx.opts.rounds; round++) {
        const order: ("B1" | "service")[] = !withB1 ? ["service"] : round % 2 === 1 ? ["B1", "service"] : ["service", "B1"];
        for (const target of order) {
          ctx.log(`${name} round ${round}/${ctx.opts.rounds}: ${target} at ${rate} req/s`);
          const run = target === "B1" ? await b1Run(ctx, rate, round) : await serviceRun(ctx, rate, round);
          runs.push(run);
          const c = run.result.corrected_ms;
          ctx.log(`  → p50 ${fmt(c.p50)} ms, p99 ${fmt(c.p99)} ms, p99.9 ${fmt(c.p999)} ms; statuses ${JSON.stringify(run.result.statuses)}` +
            (run.freshness ? `; freshness p95 ${fmt(run.freshness.p95)} ms` : ""));
        }
      }
      const rounds = Array.from({ length: ctx.opts.rounds }, (_, i) => i + 1);
      const get = (t: "B1" | "service", r: number) => runs.find((x) => x.target === t && x.round === r);
      const col = (t: "B1" | "service", f: (x: LatencyRun) => number) => summarize(rounds.map((r) => { const x = get(t, r); return x ? f(x) : NaN; }));
      const targets: TargetCheck[] = [];
      const lines: string[] = [];
      const svcP99 = col("service", (x) => x.result.corrected_ms.p99);
      if (withB1) {
        const ratio = summarize(rounds.map((r) => get("service", r)!.result.corrected_ms.p99 / get("B1", r)!.result.corrected_ms.p99));
        targets.push({ name: "202 p99 at half load ÷ B1 p99 (same rate)", target: "≤ 2", measured: ratio, pass: ratio.median <= 2 });
        targets.push({ name: "202 p99 at half load", target: "< 5 ms", measured: svcP99, pass: svcP99.median < 5, unit: "ms" });
        const row = (t: "B1" | "service") => {
          const c = (k: "p50" | "p99" | "p999" | "max") => fmtSummary(col(t, (x) => x.result.corrected_ms[k]), 2);
          const u = (k: "p50" | "p99" | "p999") => fmt(col(t, (x) => x.result.uncorrected_ms[k]).median, 2);
          const lag = fmt(col(t, (x) => x.result.lag_ms.p99).median, 2);
          const st = rounds.map((r) => JSON.stringify(get(t, r)?.result.statuses ?? {})).join(" ");
          return `| ${t} | ${c("p50")} | ${c("p99")} | ${c("p999")} | ${c("max")} | ${u("p50")} / ${u("p99")} / ${u("p999")} | ${lag} | ${st} |`;
        };
        lines.push(
          "### Latency at a fixed rate (open loop)",
          "",
          `POST /v1/ingest/event at **${rate} req/s** (${how}) for ${ctx.opts.latencySeconds} s after a 1 s warm-up, ${ctx.opts.latencyConnections} connections, the same rate for B1 and the service, ${ctx.opts.rounds} interleaved rounds. Latency is measured from each request's *scheduled* send time (no coordinated omission); "uncorrected" is from the actual write; "generator lag" is actual write − schedule (the generator's and the machine's own scheduling noise, included in both).`,
          "",
          "| target | p50 ms | p99 ms | p99.9 ms | max ms | uncorrected p50 / p99 / p99.9 ms (medians) | generator lag p99 ms | statuses per round |",
          "|---|---|---|---|---|---|---|---|",
          row("B1"), row("service"),
          "",
          `- service p99 ÷ B1 p99 (per-round ratio): **${fmtSummary(targets[0]!.measured, 2)}** — target ≤ 2: ${targets[0]!.pass ? "met" : "**missed**"}`,
          `- service p99: **${fmtSummary(svcP99, 2)} ms** — target < 5 ms: ${targets[1]!.pass ? "met" : "**missed**"}`,
          `- the service's event loop during the fixed-rate load (its own \`eventloop_delay_seconds\`, a 10 ms timer; warm-up included; medians over rounds): delay p50 ${fmt(col("service", (x) => x.loopDelay?.p50 ?? NaN).median, 1)} ms, p99 ${fmt(col("service", (x) => x.loopDelay?.p99 ?? NaN).median, 1)} ms, max ${fmtSummary(col("service", (x) => x.loopDelay?.max ?? NaN), 1)} ms: a request that arrives while the loop is held waits that long.`,
          `- service CPU by thread during the fixed-rate load (median over rounds, % of one core; see the ingest part for the groups): ${(["js", "engine", "pool", "runtime"] as ThreadGroup[]).map((g) => `${g === "js" ? "JS thread" : g === "pool" ? "Bun pool" : g} ${fmt(col("service", (x) => (x.threads?.[g] ?? NaN) * 100).median, 0)}%`).join(", ")}.`,
          "",
        );
      }
      const f = (k: "p50" | "p95" | "p99" | "max") => col("service", (x) => x.freshness?.[k] ?? NaN);
      const p95 = f("p95");
      targets.push({ name: "freshness 202 → queryable p95 (at half load)", target: "< 2000 ms", measured: p95, pass: p95.median < 2000, unit: "ms" });
      const svcRuns = runs.filter((x) => x.target === "service");
      lines.push(
        "### Freshness (202 → queryable)",
        "",
        `Per event: inserted_at (DEFAULT now64(3), when the flush inserted it) − received_at (when the request arrived; its 202 follows within the request latency above). Service runs of the ${name} part at ${rate} req/s; the service then idled 2.5 s and was stopped with SIGTERM; a separate process read the data directory.`,
        "",
        "| p50 ms | p95 ms | p99 ms | max ms | events measured / queryable / acknowledged (sum) |",
        "|---|---|---|---|---|",
        `| ${fmtSummary(f("p50"), 0)} | ${fmtSummary(p95, 0)} | ${fmtSummary(f("p99"), 0)} | ${fmtSummary(f("max"), 0)} | ${svcRuns.reduce((s, x) => s + (x.freshness?.n ?? 0), 0)} / ${svcRuns.reduce((s, x) => s + (x.queryable ?? 0), 0)} / ${svcRuns.reduce((s, x) => s + (x.acknowledged ?? 0), 0)} |`,
        "",
        `- freshness p95: **${fmtSummary(p95, 0)} ms** — target < 2000 ms: ${p95.median < 2000 ? "met" : "**missed**"}`,
        `- service RSS idle after the fixed-rate load: ${fmtSummary(summarize(svcRuns.map((x) => (x.idleAfterRssBytes ?? NaN) / MiB)), 0)} MiB`,
        "",
      );
      return { name, markdown: lines.join("\n"), targets, data: { rate, how, runs } };
    },
  };
}

export const latencyPart = makePart("latency", true);
export const freshnessPart = makePart("freshness", false);
