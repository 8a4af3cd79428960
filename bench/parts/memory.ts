// Memory: RSS at idle, and bytes per buffered event with the sink stopped. The service runs
// against `npm run clickhouse` (the embedded engine over HTTP in its own process) so the sink can
// be stopped while the service keeps taking events into its on-disk spool:
//   warm-up (sink up) → control: N events with the sink up (RSS growth that any N events cost:
//   dedup ids, session state, heap) → stop ClickHouse → N events with the sink down (RSS growth /
//   N = bytes per buffered event; spool bytes / N = disk bytes per event) → start ClickHouse again
//   → the spool drains by itself → every event is counted.
// Peak RSS under load comes from the ingest part (VmHWM of the saturation runs).
import { rmSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "bun";
import type { BenchContext, Part, PartResult, TargetCheck } from "../lib/context.ts";
import { BodyFactory } from "../lib/bodies.ts";
import { countQueryable, MiB, sendCount } from "../lib/measure.ts";
import { BUN, ClickHouseServer, Service, sourceRoot } from "../lib/procs.ts";
import { fmt, fmtSummary, summarize } from "../lib/stats.ts";

interface MemoryRound {
  round: number;
  events: number;
  idleRss: number;
  controlGrowth: number;
  stoppedGrowth: number;
  spoolBytes: number;
  statusesStopped: Record<string, number>;
  recoveryMs: number;
  expected: number;
  queryable: number;
  clickhouseIdleRss: number;
}

async function migrate(url: string, logDir: string): Promise<void> {
  const proc = spawn([BUN, join(sourceRoot(), "src", "storage", "migrate-cli.ts")], {
    cwd: sourceRoot(), env: { PATH: process.env.PATH ?? "", CLICKHOUSE_URL: url, DATA_DIR: join(logDir, "migrate-data") }, stdout: "pipe", stderr: "pipe",
  });
  const [out, err] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text()]);
  if ((await proc.exited) !== 0) throw new Error(`migrate failed:\n${out}\n${err}`);
}

/** mimalloc's own default purge delay (ms), used by this part instead of the production -1. */
const MEMORY_PURGE_DELAY = "100";

/** RSS after a forced full GC and a short settle: what the process retains, not its garbage. */
async function settledRss(svc: Service, ms = 700): Promise<number> {
  await Bun.sleep(ms);
  await svc.gc();
  await Bun.sleep(ms);
  return svc.stats().rssBytes;
}

async function round(ctx: BenchContext, r: number): Promise<MemoryRound> {
  const dir = join(ctx.workDir, `memory-r${r}`);
  const ch = await ClickHouseServer.start(join(dir, "clickhouse-data"), dir);
  let svc: Service | undefined;
  try {
    await migrate(ch.url, dir);
    // The allocator hands freed memory back here (its own default, not the production setting of
    // src/runtime-flags.ts): with -1 the memory a step frees stays in RSS and the next step reuses
    // it, so RSS growth after a GC would not say what buffering retains (bench/RESULTS.md, 09:11).
    svc = await Service.start({ dataDir: join(dir, "data"), logDir: dir, env: { ...ctx.serviceEnv, CLICKHOUSE_URL: ch.url, MIMALLOC_PURGE_DELAY: MEMORY_PURGE_DELAY }, inspect: true });
    const idleRss = svc.stats().rssBytes;
    const key = await svc.createSecretKey("bench");
    const items = ctx.opts.batchItems;
    const n = Math.max(2 * items, Math.round(ctx.opts.memoryEvents / (2 * items)) * 2 * items);
    const requests = n / items;
    const bodies = new BodyFactory(7);
    const send = (count: number) => sendCount(`${svc!.url}/v1/ingest/batch`, key, count, 8, () => bodies.batch(items));
    // Warm-up: JIT, heap and allocator pools reach their working size before anything is measured.
    await send(requests / 2);
    await svc.waitDrained(60_000);
    const r0 = await settledRss(svc);
    await send(requests);
    await svc.waitDrained(60_000);
    const r1 = await settledRss(svc);
    const clickhouseIdleRss = ch.stats().rssBytes;
    await ch.stop("SIGTERM");
    const r2 = await settledRss(svc);
    const statuses = await send(requests);
    const r3 = await settledRss(svc);
    const spoolBytes = svc.spoolBytes();
    ctx.log(`  memory round ${r}: control +${fmt((r1 - r0) / MiB)} MiB, sink stopped +${fmt((r3 - r2) / MiB)} MiB for ${n} events; spool ${fmt(spoolBytes / MiB)} MiB`);
    const restarted = performance.now();
    await ch.start();
    // The batcher retries with capped backoff (≤ 10 s) and then drains the spool.
    const drained = await svc.waitDrained(90_000);
    const recoveryMs = Number.isFinite(drained) ? performance.now() - restarted : NaN;
    const count = await countQueryable({ url: ch.url }, "bench");
    return {
      round: r, events: n, idleRss, controlGrowth: r1 - r0, stoppedGrowth: r3 - r2, spoolBytes,
      statusesStopped: Object.fromEntries(statuses), recoveryMs, expected: 2.5 * n, queryable: count.events.rows, clickhouseIdleRss,
    };
  } finally {
    await svc?.stop("SIGTERM");
    await ch.stop("SIGTERM");
    if (!ctx.opts.keep) {
      rmSync(join(dir, "data"), { recursive: true, force: true });
      rmSync(join(dir, "clickhouse-data"), { recursive: true, force: true });
      rmSync(join(dir, "migrate-data"), { recursive: true, force: true });
    }
  }
}

export const memoryPart: Part = {
  name: "memory",
  describe: "RSS at idle, and bytes per buffered event with ClickHouse (npm run clickhouse) stopped",
  inAll: true,
  async run(ctx: BenchContext): Promise<PartResult> {
    const rounds: MemoryRound[] = [];
    for (let r = 1; r <= ctx.opts.rounds; r++) {
      ctx.log(`memory round ${r}/${ctx.opts.rounds}`);
      rounds.push(await round(ctx, r));
    }
    const perEvent = summarize(rounds.map((x) => x.stoppedGrowth / x.events));
    const control = summarize(rounds.map((x) => x.controlGrowth / x.events));
    const extra = summarize(rounds.map((x) => (x.stoppedGrowth - x.controlGrowth) / x.events));
    const disk = summarize(rounds.map((x) => x.spoolBytes / x.events));
    const idle = summarize(rounds.map((x) => x.idleRss / MiB));
    const recovery = summarize(rounds.map((x) => x.recoveryMs));
    const targets: TargetCheck[] = [
      { name: "RSS growth per buffered event, sink stopped", target: "< 1024 B", measured: perEvent, pass: perEvent.median < 1024, unit: "B" },
    ];
    const markdown = [
      "### Memory",
      "",
      `Service against \`npm run clickhouse\` (CLICKHOUSE_URL), ${rounds[0]?.events ?? 0} events per step as ${rounds[0] ? rounds[0].events / ctx.opts.batchItems : 0} batches of ${ctx.opts.batchItems}, 8 at a time; RSS read after each step once a full GC was forced through Bun's inspector (the service runs with \`--inspect\` on loopback in this part only), so it counts what is retained, not garbage. This part alone runs the service with \`MIMALLOC_PURGE_DELAY=${MEMORY_PURGE_DELAY}\` (the allocator's own default) instead of the production -1, which keeps freed memory in RSS for reuse (peak and idle RSS with the production setting: ingest part). Steps: warm-up (sink up) → control (sink up) → SIGTERM ClickHouse → the same events with the sink down → ClickHouse started again → spool drains → count.`,
      "",
      "| measure | median (min–max, spread) |",
      "|---|---|",
      `| service RSS at idle after start | ${fmtSummary(idle, 0)} MiB |`,
      `| **RSS growth per buffered event, sink stopped** | **${fmtSummary(perEvent, 0)} B** |`,
      `| RSS growth per event, sink up (control: dedup ids, session state, heap) | ${fmtSummary(control, 0)} B |`,
      `| difference (what buffering itself costs in memory) | ${fmtSummary(extra, 0)} B |`,
      `| spool bytes on disk per buffered event | ${fmtSummary(disk, 0)} B |`,
      `| ClickHouse restarted → spool drained | ${fmtSummary(recovery, 0)} ms |`,
      "",
      `Statuses while the sink was down, per round: ${rounds.map((x) => JSON.stringify(x.statusesStopped)).join(" ")}. Events queryable after recovery / sent: ${rounds.map((x) => `${x.queryable}/${x.expected}`).join(", ")}. ClickHouse server RSS (idle, separate process): ${fmt(summarize(rounds.map((x) => x.clickhouseIdleRss / MiB)).median, 0)} MiB.`,
      "",
      `- bytes per buffered event: **${fmtSummary(perEvent, 0)} B** — target < 1 KiB: ${perEvent.median < 1024 ? "met" : "**missed**"}`,
      "",
    ].join("\n");
    return { name: "memory", markdown, targets, data: rounds };
  },
};
