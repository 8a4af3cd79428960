// Time of the funnel report alone (funnelReport called in process, no HTTP, no cache) on the
// query part's data set (bench/lib/query-data.ts: 10M events, 450k funnel steps over 30 days),
// for 30-day and 7-day funnels by session and by visitor, unfiltered and filtered, to compare
// code changes quickly. With a second checkout, each case runs both codes alternately (order
// reversed every other round) and their answers must be identical.
//
//   bun bench/funnel-path.ts <dataDir> [otherRoot] [rounds]
//
// `dataDir` is a copy of the data set's directory (.tmp/bench/query-data/<version>, after a query
// part has generated it; libchdb binds a directory to one process). `otherRoot`: a checkout to
// compare (`git archive <commit> src | tar -x -C <dir>` and a `node_modules` link).
import { resolve } from "node:path";

const [dataDir, otherArg, roundsArg] = process.argv.slice(2);
if (!dataDir) throw new Error("usage: funnel-path.ts <dataDir> [otherRoot] [rounds]");
const here = resolve(`${import.meta.dir}/..`);
const rounds = Number(roundsArg ?? 7);
const { createClickHouse } = await import(`${here}/src/storage/clickhouse.ts`);
const { resolveRange } = await import(`${here}/src/query/time-range.ts`);
const generated = (await Bun.file(`${dataDir}/generated.json`).json()) as { endMs: number };
type Report = (ch: unknown, q: unknown, read: unknown) => Promise<unknown>;
const codes: Array<[string, Report]> = [["this", (await import(`${here}/src/query/funnel.ts`)).funnelReport]];
if (otherArg) codes.unshift(["other", (await import(`${resolve(otherArg)}/src/query/funnel.ts`)).funnelReport]);

const ch = createClickHouse({ dataDir, database: "analytics_db", embeddedLanes: 4 }).client;
const now = generated.endMs;
const lastDay = new Date(now - 86_400_000).toISOString().slice(0, 10);
const q = (days: number, by: "session" | "visitor", filters: Record<string, string> = {}, windowSeconds = 86_400, tz = "UTC") => ({
  serviceId: "bench",
  funnel: "checkout",
  range: resolveRange({ from: new Date(now - days * 86_400_000).toISOString().slice(0, 10), to: lastDay, tz }, now),
  filters,
  windowSeconds,
  by,
});
const cases: Array<[string, unknown]> = [
  ["30 d by session", q(30, "session")],
  ["30 d by visitor", q(30, "visitor")],
  ["30 d window 3600, Berlin", q(30, "session", {}, 3600, "Europe/Berlin")],
  ["30 d device=mobile", q(30, "session", { device: "mobile" })],
  ["30 d country=DE", q(30, "session", { country: "DE" })],
  ["7 d by session", q(7, "session")],
  ["7 d device=mobile", q(7, "session", { device: "mobile" })],
];
const read = { now, sharedSets: true };

// Warm-up, and the answers compared.
for (const [name, c] of cases) {
  const answers = new Set<string>();
  for (const [, report] of codes) answers.add(JSON.stringify(await report(ch, c, read)));
  if (answers.size > 1) throw new Error(`${name}: the two checkouts answer differently`);
}
const ms: Record<string, number[]> = {};
for (let r = 0; r < rounds; r++) {
  for (const [name, c] of r % 2 ? [...cases].reverse() : cases) {
    for (const [code, report] of r % 2 ? [...codes].reverse() : codes) {
      const start = performance.now();
      await report(ch, c, read);
      (ms[`${name}|${code}`] ??= []).push(performance.now() - start);
    }
  }
}
const stat = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[s.length >> 1]!, min: s[0]!, max: s[s.length - 1]! };
};
const fmt = (x: { median: number; min: number; max: number }) => `${x.median.toFixed(1)} (${x.min.toFixed(1)}–${x.max.toFixed(1)})`;
console.log(`| case | ${codes.map(([c]) => `${c} ms`).join(" | ")}${codes.length > 1 ? " | other ÷ this |" : " |"}`);
console.log(`|---|${codes.map(() => "---|").join("")}${codes.length > 1 ? "---|" : ""}`);
for (const [name] of cases) {
  const s = codes.map(([code]) => stat(ms[`${name}|${code}`]!));
  console.log(`| ${name} | ${s.map(fmt).join(" | ")}${s.length > 1 ? ` | ${(s[0]!.median / s[1]!.median).toFixed(2)} |` : " |"}`);
}
process.exit(0);
