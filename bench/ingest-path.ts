// CPU per event of the ingest path alone (bench/ANALYSIS.md, "Ingest: the JS thread"): ingestItems
// with the in-process session and dedup state, the benchmark's event bodies (bench/wrk/ingest.lua:
// 5,000 visitors, distinct event ids), records discarded instead of spooled. No HTTP, no Hono, no
// auth, no body reading: what the service's own item work costs, to compare code changes quickly.
// CPU time (user + system) of the process, per event; 100,000 events of warm-up, then 5 runs of
// 100,000, their median and range. Bodies are parsed before each run is timed.
//
//   bun bench/ingest-path.ts [event|batch] [root]
//
// `root` is a checkout to measure (default: this one). For an A/B, extract the other code next to
// it (`git archive <commit> src | tar -x -C <dir>` and a `node_modules` link) and alternate the
// two several times: on the shared 2-core machine, runs of the same code differ by up to ±15%.
import { resolve } from "node:path";
import { BodyFactory } from "./lib/bodies.ts";

const mode = process.argv[2] === "batch" ? "batch" : "event";
const root = resolve(process.argv[3] ?? `${import.meta.dir}/..`);
const { ingestItems } = await import(`${root}/src/ingest/ingestor.ts`);
const { Sessionizer } = await import(`${root}/src/ingest/sessions/sessionizer.ts`);
const { memoryStateStore } = await import(`${root}/src/ingest/sessions/state-store.ts`);
const { memoryDedup } = await import(`${root}/src/ingest/dedup.ts`);
const { visitorHasher } = await import(`${root}/src/ingest/pipeline.ts`);
const { createMetrics } = await import(`${root}/src/ops/metrics.ts`);
const { createCountryLookup } = await import(`${root}/src/ingest/enrich/country.ts`);
const { memoize } = await import(`${root}/src/memo.ts`);

const salt = new Uint8Array(32).fill(7);
const deps = {
  sessionizer: new Sessionizer(memoryStateStore()),
  dedup: memoryDedup(),
  writer: { assertRoom() {}, write: async (_records: string[]) => {} },
  metrics: createMetrics(),
  hashVisitor: visitorHasher({ saltFor: async () => salt }),
  lookupCountry: memoize(createCountryLookup(), 100_000),
};

// The same bodies as bench/wrk/ingest.lua (and the open-loop generator).
const bodies = new BodyFactory();

const headers = new Headers({ "user-agent": "bench-client/1" });
const perRequest = mode === "batch" ? 100 : 1;

/** CPU ms to ingest `n` events. */
async function run(n: number): Promise<number> {
  const requests: unknown[][] = [];
  for (let i = 0; i < n; i += perRequest) requests.push(JSON.parse(`[${Array.from({ length: perRequest }, () => bodies.item(true)).join(",")}]`) as unknown[]);
  const start = process.cpuUsage();
  for (const raws of requests) {
    const ctx = { serviceId: "bench", keyType: "secret" as const, headers, socketIp: "127.0.0.1", receivedAt: Date.now(), trustProxy: false };
    const result = await ingestItems(deps, ctx, raws, perRequest === 1 ? "event" : undefined);
    if (result.accepted !== raws.length) throw new Error(`not accepted: ${JSON.stringify(result.dropped[0])}`);
  }
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1000;
}

const N = 100_000;
await run(N);
const perEvent: number[] = [];
for (let r = 0; r < 5; r++) perEvent.push(((await run(N)) * 1000) / N);
perEvent.sort((a, b) => a - b);
const round = (x: number) => Math.round(x * 100) / 100;
console.log(JSON.stringify({ root, mode, cpu_us_per_event: { median: round(perEvent[2]!), min: round(perEvent[0]!), max: round(perEvent[4]!) } }));
