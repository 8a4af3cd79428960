// CPU profiles of the service at saturation (Bun's --cpu-prof), for the targets that were missed:
// one profiled service per route, the same load as the ingest part, then a summary per function
// (self and inclusive) and per area of the code. The sink's side comes from the service's own
// flush metrics (this chdb build keeps no system.query_log: SYSTEM FLUSH LOGS creates none).
import { readdirSync, rmSync } from "node:fs";
import { join, relative } from "node:path";
import type { BenchContext, Part, PartResult } from "../lib/context.ts";
import { runWrk } from "../lib/load.ts";
import { metricSum } from "../lib/measure.ts";
import { REPO, Service } from "../lib/procs.ts";
import { profileMarkdown, summarizeProfile } from "../lib/profile.ts";
import { fmt } from "../lib/stats.ts";

async function profileRoute(ctx: BenchContext, mode: "event" | "batch"): Promise<{ markdown: string; data: unknown }> {
  const dir = join(ctx.workDir, `profile-${mode}`);
  const profDir = join(dir, "cpuprofile");
  const svc = await Service.start({ dataDir: join(dir, "data"), logDir: dir, env: ctx.serviceEnv, cpuProfDir: profDir });
  let stopped = false;
  try {
    const cpuAtStart = svc.stats().cpuSeconds;
    const key = await svc.createSecretKey("bench");
    const common = { url: svc.url, connections: mode === "batch" ? ctx.opts.batchConnections : ctx.opts.connections, threads: ctx.opts.threads, mode, items: ctx.opts.batchItems, key };
    await runWrk({ ...common, seconds: ctx.opts.warmupSeconds });
    const cpu0 = svc.stats().cpuSeconds;
    const w = await runWrk({ ...common, seconds: ctx.opts.seconds });
    const cpu = (svc.stats().cpuSeconds - cpu0) / w.durationS;
    const drainMs = await svc.waitQuiescent(90_000);
    const m = await svc.metrics();
    const flushes = metricSum(m, "flush_duration_seconds_count");
    const flushSec = metricSum(m, "flush_duration_seconds_sum");
    const rows = metricSum(m, "flush_rows_total");
    const events = metricSum(m, "ingest_items_total", { outcome: "accepted" });
    const cpuUsed = svc.stats().cpuSeconds - cpuAtStart;
    await svc.stop();
    stopped = true;
    const file = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
    if (!file) throw new Error(`no .cpuprofile in ${profDir}`);
    const summary = summarizeProfile(join(profDir, file), 25);
    const perEvent = (s: number) => fmt((s * 1e6) / Math.max(1, events), 0);
    const lines = [
      profileMarkdown(summary, `Service CPU profile, POST /v1/ingest/${mode} at saturation (${fmt(w.okRps)} req/s acknowledged while profiled)`, 15),
      `Cost per accepted event (warm-up + measured load, ${events} events): process CPU ${perEvent(cpuUsed)} µs (all threads), JS thread ${perEvent(summary.busyMs / 1000)} µs (includes the ~1 s start-up).`,
      "",
      `Process CPU during the measured load: ${fmt(cpu * 100, 0)}% of one core (all threads: JS, chdb, GC, I/O). Sink: ${flushes} segment flushes took ${fmt(flushSec * 1000, 0)} ms in all (${fmt(flushes ? (flushSec / flushes) * 1000 : NaN, 1)} ms each, ${rows} rows), spool drained ${fmt(drainMs, 0)} ms after the load. Profile file: \`${relative(REPO, join(profDir, file))}\` (not committed).`,
      "",
    ];
    return { markdown: lines.join("\n"), data: { mode, okRps: w.okRps, cpu, drainMs, events, cpuUsed, flushes, flushSec, rows, self: summary.self, inclusive: summary.inclusive, areas: summary.areas, busyMs: summary.busyMs, wallMs: summary.wallMs } };
  } finally {
    if (!stopped) await svc.stop("SIGKILL");
    if (!ctx.opts.keep) rmSync(join(dir, "data"), { recursive: true, force: true });
  }
}

export const profilePart: Part = {
  name: "profile",
  describe: "CPU profiles (bun --cpu-prof) of the service at saturation on both ingest routes, summarized per function and area",
  inAll: false, // `all` runs it only when a target was missed (and --no-profile is not given)
  async run(ctx: BenchContext): Promise<PartResult> {
    const out: string[] = ["### CPU profiles", ""];
    if (ctx.shared.missed.length > 0) out.push(`Missed targets in this run: ${ctx.shared.missed.map((t) => t.name).join("; ")}.`, "");
    const data: unknown[] = [];
    for (const mode of ["event", "batch"] as const) {
      ctx.log(`profile: ${mode}`);
      const r = await profileRoute(ctx, mode);
      out.push(r.markdown);
      data.push(r.data);
    }
    return { name: "profile", markdown: out.join("\n"), targets: [], data };
  },
};
