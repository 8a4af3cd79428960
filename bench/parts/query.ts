// Query benchmarks: the extension point for the read side (src/query/**, src/cache/**), which is
// still being written. What is here already: seeding a service with realistic events through the
// batch route, an admin token from POST /v1/keys, and a wrk GET run per route with cold (MISS) and
// warm (HIT) cache. The part probes the routes first and reports "skipped" until they answer 200,
// so `all` stays green meanwhile. To finish it: fill QUERY_ROUTES (or adjust the parameters) and
// add baselines — e.g. the same SQL straight through @clickhouse/client-web (Q0) — then compare
// ratios against the query targets once they are set.
import { rmSync } from "node:fs";
import { join } from "node:path";
import { spawn } from "bun";
import type { BenchContext, Part, PartResult } from "../lib/context.ts";
import { BodyFactory } from "../lib/bodies.ts";
import { sendCount } from "../lib/measure.ts";
import { ROOT_TOKEN, Service } from "../lib/procs.ts";
import { fmt, fmtSummary, summarize } from "../lib/stats.ts";

/** Routes to measure (paths with their query string; service_id is `bench`). */
export const QUERY_ROUTES = [
  "/v1/behavior/summary?service_id=bench",
  "/v1/sessions/stats?service_id=bench&interval=day",
  "/v1/sessions?service_id=bench&limit=50",
  "/v1/events?service_id=bench&limit=50",
];

async function adminToken(svc: Service): Promise<string> {
  const res = await fetch(`${svc.url}/v1/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ROOT_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ type: "admin", services: ["bench"], name: "bench admin" }),
  });
  if (res.status !== 201) throw new Error(`POST /v1/keys (admin): ${res.status} ${await res.text()}`);
  return ((await res.json()) as { key: string }).key;
}

/** wrk GET with the admin token: requests/s and latency of one route. */
async function wrkGet(url: string, token: string, seconds: number, connections: number): Promise<{ rps: number; p50: number; p99: number; non2xx: number }> {
  const proc = spawn(["wrk", "-t1", `-c${connections}`, `-d${seconds}s`, "--latency", "-H", `Authorization: Bearer ${token}`, url], { stdout: "pipe", stderr: "pipe" });
  const out = await new Response(proc.stdout).text();
  await proc.exited;
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const ms = (label: string) => {
    const m = new RegExp(`\\s${label}%\\s+([\\d.]+)(us|ms|s)`).exec(out);
    if (!m) return NaN;
    return Number(m[1]) * (m[2] === "us" ? 0.001 : m[2] === "s" ? 1000 : 1);
  };
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  return { rps, p50: ms("50"), p99: ms("99"), non2xx };
}

export const queryPart: Part = {
  name: "query",
  describe: "query routes (admin token) at saturation, cold and cached — skipped until the routes answer 200",
  inAll: true,
  async run(ctx: BenchContext): Promise<PartResult> {
    const dir = join(ctx.workDir, "query");
    const svc = await Service.start({ dataDir: join(dir, "data"), logDir: dir, env: ctx.serviceEnv });
    try {
      const token = await adminToken(svc);
      const probes = await Promise.all(QUERY_ROUTES.map(async (r) => (await fetch(svc.url + r, { headers: { Authorization: `Bearer ${token}` } })).status));
      const ready = QUERY_ROUTES.filter((_, i) => probes[i] === 200);
      if (ready.length === 0) {
        const note = `skipped: no query route answers 200 yet (${QUERY_ROUTES.map((r, i) => `${r.split("?")[0]} → ${probes[i]}`).join(", ")}). The hook is bench/parts/query.ts.`;
        ctx.log(`query: ${note}`);
        return { name: "query", markdown: `### Query routes\n\n${note}\n`, targets: [], data: { skipped: true, probes } };
      }
      // Seed: 20,000 events over 5000 visitors through the batch route, then wait until queryable.
      const key = await svc.createSecretKey("bench");
      const bodies = new BodyFactory(3);
      await sendCount(`${svc.url}/v1/ingest/batch`, key, 200, 8, () => bodies.batch(100));
      await svc.waitDrained(60_000);
      const rows: string[] = [];
      const data: unknown[] = [];
      for (const route of ready) {
        const runs = [];
        for (let r = 1; r <= ctx.opts.rounds; r++) runs.push(await wrkGet(svc.url + route, token, Math.max(3, Math.round(ctx.opts.seconds / 2)), 32));
        const rps = summarize(runs.map((x) => x.rps));
        rows.push(`| ${route.split("?")[0]} | ${fmtSummary(rps)} | ${fmt(summarize(runs.map((x) => x.p50)).median, 2)} / ${fmt(summarize(runs.map((x) => x.p99)).median, 2)} | ${runs.reduce((s, x) => s + x.non2xx, 0)} |`);
        data.push({ route, runs });
      }
      const markdown = [
        "### Query routes (preliminary hook)",
        "",
        `20,000 seeded events; wrk -t1 -c32 GET with an admin token; ${ctx.opts.rounds} runs per route (the first is mostly cache MISS, later ones HIT). No baseline or target yet.`,
        "",
        "| route | req/s | p50 / p99 ms | non-2xx |",
        "|---|---|---|---|",
        ...rows,
        "",
      ].join("\n");
      return { name: "query", markdown, targets: [], data };
    } finally {
      await svc.stop("SIGKILL");
      if (!ctx.opts.keep) rmSync(join(dir, "data"), { recursive: true, force: true });
    }
  },
};
