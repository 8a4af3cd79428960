// Query benchmarks (bench/README.md, "query"): a generated data set of ~10M events over 30 days for
// one service (bench/lib/query-data.ts, written inside the engine, cached under .tmp/bench/query-data
// by generator version, size and end date); then, per round, a fresh service in production mode on
// that data (fresh process = empty in-process cache): cache-MISS latency of the cached routes
// (/v1/sessions/stats, /v1/behavior/summary, /v1/funnels/:name) and the latency of the uncached
// lists (/v1/sessions, /v1/events: a first page and the page after it) over a fixed set of distinct
// parameter combinations (routes interleaved), then cache-HIT latency (the same request repeated)
// next to B0's GET latency (the HTTP floor). Last, the
// same questions through the views and with forceRaw in one process (bench/lib/query-compare.ts):
// the speed-up per question and whether the answers are identical.
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BenchContext, Part, PartResult, TargetCheck } from "../lib/context.ts";
import { BUN, REPO, ROOT_TOKEN, Service, sourceRoot, spawnChild, startBaseline, WORK } from "../lib/procs.ts";
import { GENERATOR_VERSION } from "../lib/query-data.ts";
import { fmt, fmtSummary, median, percentileSorted, summarize } from "../lib/stats.ts";

const SERVICE = "bench";
const SESSIONS = Number(process.env.BENCH_QUERY_SESSIONS ?? 1_710_000); // ≈ 10M events (5.85 items per session)
const HIT_REQUESTS = 1000;
const DAY = 86_400_000;

async function adminToken(svc: Service): Promise<string> {
  const res = await fetch(`${svc.url}/v1/keys`, {
    method: "POST",
    headers: { Authorization: `Bearer ${ROOT_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ type: "admin", services: [SERVICE], name: "bench admin" }),
  });
  if (res.status !== 201) throw new Error(`POST /v1/keys (admin): ${res.status} ${await res.text()}`);
  return ((await res.json()) as { key: string }).key;
}

/** The data set for today's date (UTC): generated once per generator version, size and date. */
async function dataSet(ctx: BenchContext): Promise<{ dir: string; endMs: number; gen: Record<string, unknown>; cached: boolean }> {
  const endMs = Math.floor(Date.now() / DAY) * DAY;
  const dir = join(WORK, "query-data", `v${GENERATOR_VERSION}-${SESSIONS}-${new Date(endMs).toISOString().slice(0, 10)}`);
  const meta = join(dir, "generated.json");
  if (existsSync(meta)) return { dir, endMs, gen: JSON.parse(await Bun.file(meta).text()), cached: true };
  rmSync(join(WORK, "query-data"), { recursive: true, force: true }); // older data sets: one at a time
  mkdirSync(dir, { recursive: true });
  ctx.log(`query: generating ${SESSIONS} sessions (~${fmt((SESSIONS * 5.85) / 1e6, 1)}M events) into ${dir}`);
  const child = spawnChild("query-data", [BUN, join(REPO, "bench", "lib", "query-data.ts"), dir, SERVICE, String(SESSIONS), String(endMs)], {
    env: { BENCH_SRC_ROOT: sourceRoot() },
    logFile: join(ctx.workDir, "query", "generate.log"),
  });
  const code = await child.exited;
  const line = child.log(1_000_000).split("\n").find((l) => l.startsWith("GEN_JSON "));
  if (code !== 0 || !line) throw new Error(`query data generation failed (${code}):\n${child.log()}`);
  const gen = JSON.parse(line.slice("GEN_JSON ".length));
  writeFileSync(meta, JSON.stringify(gen));
  return { dir, endMs, gen, cached: false };
}

/** Cached routes answer MISS then HIT; the lists are not cached (keyset pages of live data). */
const CACHED = ["stats", "behavior", "funnels"] as const;
const LISTS = ["sessions", "events"] as const;
type Route = (typeof CACHED)[number] | (typeof LISTS)[number];
const ROUTES: readonly Route[] = [...CACHED, ...LISTS];
const isList = (route: Route): boolean => (LISTS as readonly string[]).includes(route);
/** The funnel of the data set (bench/lib/query-data.ts): steps 1-4 of `checkout`. */
const LABEL: Record<Route, string> = { stats: "/v1/sessions/stats", behavior: "/v1/behavior/summary", funnels: "/v1/funnels/checkout", sessions: "/v1/sessions", events: "/v1/events" };

interface Combo {
  route: Route;
  path: string;
  filtered: boolean;
}

/** Per route 20 distinct requests: 7 / 30 days × UTC / Europe/Berlin × 3 unfiltered + 2 filtered variants. */
function combos(endDate: string): Combo[] {
  const before = (n: number) => new Date(Date.parse(endDate) - n * DAY).toISOString().slice(0, 10);
  const variants: Record<Route, ReadonlyArray<readonly [string, boolean]>> = {
    stats: [["interval=day", false], ["interval=week", false], ["interval=hour", false], ["interval=day&device=mobile", true], ["interval=day&country=DE", true]],
    behavior: [["limit=10", false], ["limit=20", false], ["limit=50", false], ["limit=10&device=mobile", true], ["limit=10&country=DE", true]],
    funnels: [["by=session", false], ["by=visitor", false], ["window=3600", false], ["by=session&device=mobile", true], ["by=session&country=DE", true]],
    sessions: [["limit=50", false], ["limit=200", false], ["limit=10", false], ["limit=50&device=mobile", true], ["limit=50&country=DE", true]],
    events: [["limit=50", false], ["limit=200", false], ["limit=50&name=signup", false], ["limit=50&device=mobile", true], ["limit=50&country=DE", true]],
  };
  const out: Combo[] = [];
  for (const days of [7, 30]) {
    for (const tz of ["UTC", "Europe/Berlin"]) {
      const base = `service_id=${SERVICE}&from=${before(days - 1)}&to=${endDate}&tz=${encodeURIComponent(tz)}`;
      for (const route of ROUTES) for (const [v, filtered] of variants[route]) out.push({ route, path: `${LABEL[route]}?${base}&${v}`, filtered });
    }
  }
  return out;
}

async function timedGet(url: string, token?: string): Promise<{ ms: number; status: number; cache: string | null; body: string }> {
  const s = performance.now();
  const res = await fetch(url, token ? { headers: { Authorization: `Bearer ${token}` } } : {});
  const body = await res.text();
  return { ms: performance.now() - s, status: res.status, cache: res.headers.get("x-cache"), body };
}

const pct = (xs: number[], p: number) => percentileSorted([...xs].sort((a, b) => a - b), p);

export const queryPart: Part = {
  name: "query",
  describe: "query routes on ~10M generated events: cache MISS / HIT latency, view vs raw speed-up",
  inAll: true,
  async run(ctx: BenchContext): Promise<PartResult> {
    const dir = join(ctx.workDir, "query");
    mkdirSync(dir, { recursive: true });
    const genStart = performance.now();
    const data = await dataSet(ctx);
    const genS = (performance.now() - genStart) / 1000;
    const endDate = new Date(data.endMs - DAY).toISOString().slice(0, 10);
    const list = combos(endDate);
    const b0 = await startBaseline("b0", dir);
    /** `page` 2: a list's next page (its first page's next_cursor), measured after the first. */
    type Round = { miss: Record<string, { ms: number; filtered: boolean; path: string; page: 1 | 2 }[]>; hit: Record<string, number[]>; b0: number[]; startMs: number; bad: string[] };
    const rounds: Round[] = [];
    try {
      for (let r = 0; r < ctx.opts.rounds; r++) {
        const svc = await Service.start({ dataDir: data.dir, logDir: dir, env: ctx.serviceEnv, label: `service-r${r + 1}` });
        const round: Round = { miss: Object.fromEntries(ROUTES.map((r) => [r, []])), hit: Object.fromEntries(CACHED.map((r) => [r, []])), b0: [], startMs: svc.startMs, bad: [] };
        try {
          const token = await adminToken(svc);
          // Warm-up (not measured, never one of the measured keys): a 14-day range on every route.
          for (const route of ROUTES) await timedGet(`${svc.url}${LABEL[route]}?service_id=${SERVICE}&from=${new Date(data.endMs - 14 * DAY).toISOString().slice(0, 10)}&to=${endDate}&tz=America%2FNew_York`, token);
          // MISS: every combination once, in a per-round rotated order (routes interleaved); a
          // list's first page is followed by its next page. Lists send no X-Cache.
          const order = list.map((_, i) => list[(i + r * 7) % list.length]!);
          for (const c of order) {
            const cached = !isList(c.route);
            const res = await timedGet(svc.url + c.path, token);
            if (res.status !== 200 || res.cache !== (cached ? "MISS" : null)) round.bad.push(`${c.path} → ${res.status} ${res.cache}`);
            round.miss[c.route]!.push({ ms: res.ms, filtered: c.filtered, path: c.path, page: 1 });
            if (cached) continue;
            const next = (JSON.parse(res.body) as { next_cursor: string | null }).next_cursor;
            if (next === null) {
              round.bad.push(`${c.path} → no next page`);
              continue;
            }
            const res2 = await timedGet(`${svc.url}${c.path}&cursor=${encodeURIComponent(next)}`, token);
            if (res2.status !== 200) round.bad.push(`${c.path} (page 2) → ${res2.status}`);
            round.miss[c.route]!.push({ ms: res2.ms, filtered: c.filtered, path: `${c.path}&cursor=…`, page: 2 });
          }
          // HIT: the 7-day UTC request of each cached route (cached by the MISS pass), alternating with B0.
          const hitPaths = Object.fromEntries(CACHED.map((route) => [route, list.find((c) => c.route === route)!.path])) as Record<(typeof CACHED)[number], string>;
          for (let i = 0; i < HIT_REQUESTS; i++) {
            for (const route of CACHED) {
              const res = await timedGet(svc.url + hitPaths[route], token);
              if (res.cache !== "HIT" && round.bad.length < 20) round.bad.push(`${hitPaths[route]} → ${res.status} ${res.cache} (expected HIT)`);
              round.hit[route]!.push(res.ms);
            }
            round.b0.push((await timedGet(`${b0.url}/v1/sessions/stats`)).ms);
          }
        } finally {
          await svc.stop("SIGTERM");
        }
        rounds.push(round);
        ctx.log(`query: round ${r + 1}: MISS / uncached p95 ${ROUTES.map((route) => `${route} ${fmt(pct(round.miss[route]!.map((x) => x.ms), 95))}`).join(", ")} ms; HIT p99 ${CACHED.map((route) => `${route} ${fmt(pct(round.hit[route]!, 99))}`).join(", ")} ms`);
      }
    } finally {
      await b0.stop("SIGKILL");
    }

    // View vs raw, one process on the same data (the service is stopped).
    const cmp = spawnChild("query-compare", [BUN, join(REPO, "bench", "lib", "query-compare.ts"), data.dir, SERVICE, String(ctx.opts.rounds), "3", String(Date.now()), endDate], {
      env: { BENCH_SRC_ROOT: sourceRoot() },
      logFile: join(dir, "compare.log"),
    });
    const cmpCode = await cmp.exited;
    const cmpLine = cmp.log(10_000_000).split("\n").find((l) => l.startsWith("CMP_JSON "));
    if (cmpCode !== 0 || !cmpLine) throw new Error(`view vs raw comparison failed (${cmpCode}):\n${cmp.log()}`);
    type Cmp = { name: string; source?: string; view: number[]; raw: number[]; ratio: number[]; identical: boolean; diff: string };
    const compare = JSON.parse(cmpLine.slice("CMP_JSON ".length)) as Cmp[];
    const floorLine = cmp.log(10_000_000).split("\n").find((l) => l.startsWith("FLOOR_JSON "));
    const { floor, stateWork } = floorLine
      ? (JSON.parse(floorLine.slice("FLOOR_JSON ".length)) as { floor: number[]; stateWork: { name: string; states: number; rawRows: number }[] })
      : { floor: [], stateWork: [] };

    // ---- targets and tables
    const perRound = (f: (r: Round) => number) => summarize(rounds.map(f));
    type Miss = Round["miss"][string][number];
    const missP = (route: string, p: number, keep: (x: Miss) => boolean = () => true) => perRound((r) => pct(r.miss[route]!.filter(keep).map((x) => x.ms), p));
    const hitP = (route: string, p: number) => perRound((r) => pct(r.hit[route]!, p));
    const targets: TargetCheck[] = [];
    for (const route of ROUTES) {
      const m = missP(route, 95);
      const what = isList(route) ? "uncached p95 (10M events, 20 distinct first pages and their next pages)" : "cache-MISS p95 (10M events, 20 distinct requests)";
      targets.push({ name: `${LABEL[route]} ${what}`, target: "< 100 ms", measured: m, pass: m.n ? m.median < 100 : undefined, unit: "ms" });
    }
    for (const route of CACHED) {
      const m = hitP(route, 99);
      targets.push({ name: `${LABEL[route]} cache-HIT p99`, target: "< 3 ms", measured: m, pass: m.n ? m.median < 3 : undefined, unit: "ms" });
    }
    const viewQs = compare.filter((c) => !c.name.includes("whole"));
    const minRatio = summarize([0, 1, 2].slice(0, ctx.opts.rounds).map((i) => Math.min(...viewQs.filter((c) => c.source !== "raw").map((c) => c.ratio[i] ?? NaN))));
    targets.push({ name: "view ÷ raw speed-up, slowest view-served question (same run)", target: "≥ 10×", measured: minRatio, pass: minRatio.n ? minRatio.median >= 10 : undefined });
    for (const c of compare.filter((c) => c.name.includes("whole") && c.name.includes("7 d UTC"))) {
      const s = summarize(c.ratio);
      targets.push({ name: `view ÷ raw speed-up, ${c.name}`, target: "≥ 10× (info)", measured: s, pass: s.median >= 10 });
    }
    const fmtS = (s: ReturnType<typeof summarize>) => fmtSummary(s, 1);
    const g = data.gen as Record<string, number>;
    const groups: ReadonlyArray<readonly [string, (x: Miss) => boolean]> = [["all", () => true], ["unfiltered", (x) => !x.filtered], ["filtered", (x) => x.filtered]];
    const missRows = ROUTES.flatMap((route) => [
      ...groups.map(([label, keep]) => `| ${LABEL[route]} | ${isList(route) ? "uncached" : "MISS"} | ${label}${isList(route) ? " (pages 1 and 2)" : ""} | ${fmtS(missP(route, 50, keep))} | ${fmtS(missP(route, 95, keep))} | ${fmtS(missP(route, 99, keep))} |`),
      ...(isList(route) ? [`| ${LABEL[route]} | uncached | next pages only | ${fmtS(missP(route, 50, (x) => x.page === 2))} | ${fmtS(missP(route, 95, (x) => x.page === 2))} | ${fmtS(missP(route, 99, (x) => x.page === 2))} |`] : []),
    ]);
    // Slowest requests (median over rounds), to say which ones miss the target.
    const byPath = new Map<string, number[]>();
    for (const r of rounds) for (const route of ROUTES) for (const x of r.miss[route]!) byPath.set(x.path, [...(byPath.get(x.path) ?? []), x.ms]);
    const slowest = [...byPath.entries()].map(([p, xs]) => [p, median(xs)] as const).sort((a, b) => b[1] - a[1]);
    const markdown = [
      "### Query routes",
      "",
      `Data set (bench/lib/query-data.ts v${GENERATOR_VERSION}, generated inside the engine with INSERT … SELECT FROM numbers(); ${data.cached ? "reused from .tmp/bench/query-data" : `generated in ${fmt(genS, 0)} s`}): service \`${SERVICE}\`, 30 UTC days up to ${endDate}, ` +
        `${fmt(g.session_rows ?? NaN, 0)} sessions (${fmt(g.visitors ?? NaN, 0)} visitors, ${fmt(g.avg_pageviews ?? NaN, 2)} pages/session, bounce rate ${fmt(g.bounce_rate ?? NaN, 2)}, median duration ${fmt((g.median_duration_ms ?? NaN) / 1000, 0)} s); ` +
        `events: ${fmt(g.page_views ?? NaN, 0)} page views + ${fmt(g.events ?? NaN, 0)} custom + ${fmt(g.web_vitals ?? NaN, 0)} vitals + ${fmt(g.funnel_events ?? NaN, 0)} funnel steps + ${fmt(g.errors ?? NaN, 0)} errors = **${fmt(((g.page_views ?? 0) + (g.events ?? 0) + (g.web_vitals ?? 0) + (g.funnel_events ?? 0) + (g.errors ?? 0)) / 1e6, 2)}M**.`,
      "",
      `Per round a fresh service (NODE_ENV=production, embedded engine, ${ctx.serviceEnv.VALKEY_URL ? "Valkey cache" : "in-process cache"}; started in ${rounds.map((r) => fmt(r.startMs / 1000, 1)).join(" / ")} s), one unmeasured warm-up request per route, then sequential GETs with an admin token over keep-alive: ` +
        `MISS = each of 20 distinct requests per route once (7 / 30 days × UTC / Europe/Berlin × {3 unfiltered: stats interval day/week/hour, summary limit 10/20/50, funnel by=session/by=visitor/window=3600, lists limit 50/200 and 10 (sessions) or name=signup (events); 2 filtered: device=mobile, country=DE}), routes interleaved, order rotated per round; ` +
        `the lists (/v1/sessions, /v1/events) are not cached: each first page is followed by its next page (its next_cursor), both measured. ` +
        `HIT = the 7-day UTC request of each cached route ${HIT_REQUESTS}× per route, alternating with a GET to B0 (bare Bun.serve: the HTTP floor of this client). Client-side latency (fetch to body read). Per-round percentiles; median (min–max, spread) over ${rounds.length} rounds.`,
      "",
      "| route | answered | requests | p50 ms | p95 ms | p99 ms |",
      "|---|---|---|---|---|---|",
      ...missRows,
      "",
      `Slowest requests (median over rounds): ${slowest.slice(0, 8).map(([p, ms]) => `\`${p.replace(/service_id=bench&/, "").replace(/&tz=UTC/, "")}\` ${fmt(ms, 0)} ms`).join("; ")}.`,
      "",
      "| HIT | p50 ms | p99 ms | p99.9 ms |",
      "|---|---|---|---|",
      ...CACHED.map((route) => `| ${LABEL[route]} | ${fmtS(hitP(route, 50))} | ${fmtS(hitP(route, 99))} | ${fmtS(hitP(route, 99.9))} |`),
      `| B0 GET (floor) | ${fmtS(perRound((r) => pct(r.b0, 50)))} | ${fmtS(perRound((r) => pct(r.b0, 99)))} | ${fmtS(perRound((r) => pct(r.b0, 99.9)))} |`,
      "",
      `Checks: ${rounds.map((r, i) => `round ${i + 1}: ${r.bad.length === 0 ? "every MISS request answered 200 MISS, every list page 200 with a next page, every HIT request HIT" : `**${r.bad.length} unexpected answers**: ${r.bad.slice(0, 3).join("; ")}`}`).join("; ")}.`,
      "",
      `View vs raw (bench/lib/query-compare.ts: the query functions called directly in one process on the same data, view path vs \`forceRaw\`, one thread per query as the service's reports run them, interleaved, alternating order, 3 repetitions per round → per-round medians; ratio = raw ÷ view per round). "source" is what the view path chose (session metrics: daily / hourly view or raw).`,
      "",
      `The engine's floor, \`SELECT 1\` through the same client (median of 20 per round): ${fmtS(summarize(floor))} ms. No view answers faster than that, so "raw ÷ floor" is the largest speed-up any view could give a question.`,
      "",
      "| question | view path | view ms | raw ms | raw ÷ view | raw ÷ floor | answers |",
      "|---|---|---|---|---|---|---|",
      ...compare.map((c) => `| ${c.name} | ${c.source ?? "view"} | ${fmtS(summarize(c.view))} | ${fmtS(summarize(c.raw))} | ${fmtSummary(summarize(c.ratio), 1)}× | ${floor.length ? `${fmt(median(c.raw) / median(floor), 0)}×` : "—"} | ${c.identical ? "identical" : `**differ**: ${c.diff.slice(0, 160).replace(/\|/g, "/")}`} |`),
      "",
      "What a view read merges for exact visitor counts: the visitor hashes kept in the target's states over the range (as stored, one state per part until parts merge) against the raw rows the raw path hashes. Near 1, merging the states costs about what hashing the raw rows does, whatever else the view saves (README, \"Exact counts and hashes\").",
      "",
      "| question, target | hashes in states | raw rows | states ÷ raw |",
      "|---|---|---|---|",
      ...stateWork.map((w) => `| ${w.name} | ${fmt(w.states, 0)} | ${fmt(w.rawRows, 0)} | ${fmt(w.states / w.rawRows, 2)} |`),
      "",
    ].join("\n");
    return { name: "query", markdown, targets, data: { gen: data.gen, rounds, compare } };
  },
};
