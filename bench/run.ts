// `npm run bench` / `bun bench/run.ts [part ...] [options]`: the ingest benchmarks (see README.md).
// Parts: ingest, latency, freshness, memory, profile, query, all (default). Each run appends a
// dated section to bench/RESULTS.md and leaves logs and raw JSON under .tmp/bench/<run id>/.
import { spawnSync } from "bun";
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, freemem, loadavg, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { BenchContext, Options, Part, PartResult, TargetCheck } from "./lib/context.ts";
import { freePort, REPO, setSourceRoot, spawnChild, WORK, type Child } from "./lib/procs.ts";
import { takeSnapshot } from "./lib/snapshot.ts";
import { fmtSummary } from "./lib/stats.ts";
import { ensureWrk } from "./lib/tools.ts";
import { ingestPart } from "./parts/ingest.ts";
import { freshnessPart, latencyPart } from "./parts/latency.ts";
import { memoryPart } from "./parts/memory.ts";
import { profilePart } from "./parts/profile.ts";
import { queryPart } from "./parts/query.ts";

/** Every part, in the order `all` runs them. Add new parts (e.g. more query benchmarks) here. */
const PARTS: Part[] = [ingestPart, latencyPart, freshnessPart, memoryPart, queryPart, profilePart];

const USAGE = `usage: bun bench/run.ts [${PARTS.map((p) => p.name).join("|")}|all ...] [options]

parts:
${PARTS.map((p) => `  ${p.name.padEnd(10)} ${p.describe}${p.inAll ? "" : " (not in all" + (p.name === "profile" ? " unless a target is missed" : "") + ")"}`).join("\n")}

options:
  --rounds N            interleaved rounds (default 3, at least 3 for the record)
  --seconds S           measured seconds per closed-loop run (default 10)
  --warmup S            warm-up seconds before each closed-loop run (default 2)
  --connections C       wrk connections, same for B0/B1/service (default 256)
  --batch-connections C wrk connections for the 100-item batch runs (default 32)
  --threads T           wrk threads (default 1)
  --latency-connections C  open-loop connections (default 256)
  --latency-seconds S   measured seconds per fixed-rate run (default 10)
  --rate R              fixed rate for latency/freshness (default: half the single-item max)
  --memory-events N     events per memory step (default 120000: at 40000 the allocator's own
                        jitter of tens of MiB made the per-event figure spread up to 236%)
  --tree head|worktree  code under test: the committed HEAD (default) or the working tree as it is
                        now; either way a snapshot taken at start (others edit the tree meanwhile)
  --env KEY=VALUE       extra service environment, repeatable (diagnosis: SPOOL_FSYNC=false,
                        FLUSH_INTERVAL_MS=5000, LOG_LEVEL=warn, ...); printed in RESULTS.md
  --valkey              run the service with a bench-owned valkey-server (default: in-process state)
  --no-profile          do not profile missed targets in 'all'
  --keep                keep data directories under .tmp/bench
  --no-record           do not append to bench/RESULTS.md`;

const { values: v, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    rounds: { type: "string", default: "3" },
    seconds: { type: "string", default: "10" },
    warmup: { type: "string", default: "2" },
    connections: { type: "string", default: "256" },
    "batch-connections": { type: "string", default: "32" },
    threads: { type: "string", default: "1" },
    "latency-seconds": { type: "string", default: "10" },
    "latency-connections": { type: "string", default: "256" },
    rate: { type: "string" },
    "memory-events": { type: "string", default: "120000" },
    valkey: { type: "boolean", default: false },
    tree: { type: "string", default: "head" },
    env: { type: "string", multiple: true, default: [] },
    "no-profile": { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    "no-record": { type: "boolean", default: false },
    help: { type: "boolean", short: "h" },
  },
});
if (v.help) {
  console.log(USAGE);
  process.exit(0);
}
const opts: Options = {
  rounds: Number(v.rounds),
  seconds: Number(v.seconds),
  warmupSeconds: Number(v.warmup),
  connections: Number(v.connections),
  batchConnections: Number(v["batch-connections"]),
  threads: Number(v.threads),
  batchItems: 100,
  latencySeconds: Number(v["latency-seconds"]),
  latencyConnections: Number(v["latency-connections"]),
  rate: v.rate ? Number(v.rate) : undefined,
  memoryEvents: Number(v["memory-events"]),
  keep: v.keep!,
  valkey: v.valkey!,
  profile: !v["no-profile"],
};
const requested = positionals.length === 0 ? ["all"] : positionals;
const unknown = requested.filter((p) => p !== "all" && !PARTS.some((x) => x.name === p));
if (unknown.length > 0) {
  console.error(`unknown part(s): ${unknown.join(", ")}\n\n${USAGE}`);
  process.exit(2);
}
const selected = requested.includes("all") ? PARTS.filter((p) => p.inAll) : PARTS.filter((p) => requested.includes(p.name));
const profileIfMissed = requested.includes("all") && opts.profile && !selected.includes(profilePart);

ensureWrk();
if (v.tree !== "head" && v.tree !== "worktree") {
  console.error(`--tree: expected head or worktree, got ${v.tree}`);
  process.exit(2);
}
const snapshot = takeSnapshot(v.tree);
setSourceRoot(snapshot.root);

const started = new Date();
const runId = started.toISOString().replace(/[:.]/g, "-").slice(0, 19);
const workDir = join(WORK, runId);
mkdirSync(workDir, { recursive: true });
const t0 = performance.now();
const log = (m: string) => console.log(`[bench +${((performance.now() - t0) / 1000).toFixed(0).padStart(4)}s] ${m}`);

function sh(cmd: string[]): string {
  try {
    const r = spawnSync(cmd, { cwd: REPO, stdout: "pipe", stderr: "pipe" });
    return r.stdout.toString().trim();
  } catch {
    return "";
  }
}
function pressure(kind: "cpu" | "io"): string {
  try {
    return /avg60=([\d.]+)/.exec(readFileSync(`/proc/pressure/${kind}`, "utf8"))?.[1] ?? "?";
  } catch {
    return "?";
  }
}
const load = () => `load average ${loadavg().map((x) => x.toFixed(2)).join(" ")}, PSI some avg60 cpu ${pressure("cpu")}% io ${pressure("io")}%`;
const loadAtStart = load();

// Optional Valkey, owned by the benchmark (loopback, no persistence), for --valkey.
let valkey: Child | undefined;
const serviceEnv: Record<string, string> = {};
if (opts.valkey) {
  const server = Bun.which("valkey-server") ?? Bun.which("redis-server");
  if (!server) throw new Error("--valkey: valkey-server is not installed (apt-get install valkey-server, or bookworm-backports)");
  const port = await freePort();
  valkey = spawnChild("valkey", [server, "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { logFile: join(workDir, "valkey.log") });
  await Bun.sleep(300);
  serviceEnv.VALKEY_URL = `redis://127.0.0.1:${port}`;
}

log(`code under test: ${snapshot.kind === "head" ? `HEAD ${snapshot.commit}` : "working tree"} (snapshot ${snapshot.root})`);
for (const pair of v.env ?? []) {
  const eq = pair.indexOf("=");
  if (eq <= 0) {
    console.error(`--env: expected KEY=VALUE, got ${pair}`);
    process.exit(2);
  }
  serviceEnv[pair.slice(0, eq)] = pair.slice(eq + 1);
}
const ctx: BenchContext = { opts, workDir, shared: { missed: [] }, log, serviceEnv };
const results: PartResult[] = [];
const timings: string[] = [];
let failed: unknown;
async function runPart(part: Part): Promise<void> {
  const s = performance.now();
  log(`part ${part.name}: start`);
  try {
    const result = await part.run(ctx);
    results.push(result);
    for (const t of result.targets) if (t.pass === false) ctx.shared.missed.push(t);
  } catch (err) {
    failed ??= err;
    log(`part ${part.name} FAILED: ${err instanceof Error ? err.stack : String(err)}`);
    results.push({ name: part.name, markdown: `### ${part.name}\n\nFAILED: \`${String(err).split("\n")[0]}\` (logs under .tmp/bench/${runId}/)\n`, targets: [], data: { error: String(err) } });
  }
  const secs = (performance.now() - s) / 1000;
  timings.push(`${part.name} ${secs.toFixed(0)} s`);
  log(`part ${part.name}: done in ${secs.toFixed(0)} s`);
}
try {
  for (const part of selected) await runPart(part);
  if (profileIfMissed && ctx.shared.missed.length > 0) await runPart(profilePart);
} finally {
  await valkey?.stop("SIGTERM", 5000);
}

// ---------------------------------------------------------------------------------------------
const totalS = (performance.now() - t0) / 1000;
const dirty = snapshot.dirty;
const command = `bun bench/run.ts ${process.argv.slice(2).join(" ")}`.trim();
const targets: TargetCheck[] = results.flatMap((r) => r.targets);
const verdict = (t: TargetCheck) => (t.pass === undefined ? "n/a" : t.pass ? "met" : "**missed**");
const section = [
  `## ${started.toISOString().slice(0, 16).replace("T", " ")} UTC — \`${command}\``,
  "",
  `- machine: ${cpus()[0]?.model ?? "?"}, ${cpus().length} cores, ${(totalmem() / 2 ** 30).toFixed(1)} GiB (${(freemem() / 2 ** 30).toFixed(1)} GiB free at the end), Linux ${sh(["uname", "-r"])}; bun ${Bun.version}; ${sh(["wrk", "--version"]).split("\n")[0]?.split(" [")[0] ?? "wrk"}`,
  `- shared machine load: at start ${loadAtStart}; at end ${load()}`,
  snapshot.kind === "head"
    ? `- code under test: commit ${snapshot.commit} (HEAD, run from a \`git archive\` snapshot; ${dirty.length} uncommitted paths in the working tree were not measured)`
    : `- code under test: the working tree on top of ${snapshot.commit}, copied at start (${dirty.length} uncommitted paths: ${dirty.slice(0, 12).join(", ")}${dirty.length > 12 ? ", …" : ""})`,
  `- settings: ${opts.rounds} rounds; closed loop wrk -t${opts.threads} -c${opts.connections} (batch -c${opts.batchConnections}), ${opts.warmupSeconds} s warm-up + ${opts.seconds} s; fixed rate ${opts.latencySeconds} s, ${opts.latencyConnections} connections; service NODE_ENV=production, ACK_MODE=${serviceEnv.ACK_MODE ?? "spool"}, SPOOL_FSYNC=${serviceEnv.SPOOL_FSYNC ?? "true"}, ${serviceEnv.CLICKHOUSE_URL ? "ClickHouse at CLICKHOUSE_URL" : "embedded ClickHouse in-process"}${opts.valkey ? ", Valkey (bench-owned)" : ", no Valkey (in-process session/dedup state)"}, LOG_LEVEL default (info: refusals, errors and reads logged per request; accepted ingest requests at debug, so not logged)${v.env?.length ? `; **extra service environment: ${v.env.join(" ")}** (not production settings)` : ""}`,
  `- duration: ${totalS.toFixed(0)} s (${timings.join(", ")}); logs and raw JSON: .tmp/bench/${runId}/ (not committed)`,
  "",
  "### Targets",
  "",
  "| what | target | measured: median (min–max, spread) | verdict |",
  "|---|---|---|---|",
  ...targets.map((t) => `| ${t.name} | ${t.target} | ${fmtSummary(t.measured, t.unit === "B" || t.unit === "ms" ? (t.unit === "ms" && t.measured.median < 10 ? 1 : 0) : 3)}${t.unit ? ` ${t.unit}` : ""} | ${verdict(t)} |`),
  "",
  ...results.map((r) => r.markdown),
].join("\n");

writeFileSync(join(workDir, "results.json"), JSON.stringify({ command, started, opts, results }, null, 2));
writeFileSync(join(workDir, "section.md"), section);
if (!v["no-record"]) {
  const file = join(REPO, "bench", "RESULTS.md");
  if (!existsSync(file)) writeFileSync(file, "# Benchmark results\n\nAppended by `bun bench/run.ts` (newest last). How to read them: bench/README.md.\n");
  appendFileSync(file, `\n${section}\n`);
  log(`appended to bench/RESULTS.md`);
}
console.log(`\n${section}`);
if (!opts.keep) {
  // Data directories are removed per run already; logs stay (they are small) for a look afterwards.
  rmSync(join(workDir, "migrate-data"), { recursive: true, force: true });
}
if (failed) process.exit(1);
process.exit(0);
