// Memory of the in-process ingest state per visitor (bench/ANALYSIS.md, "Memory and restarts at
// scale"): the service composed in process (embedded engine, no Valkey, flushing on), N new
// visitors with one page view each, then the same visitors once more; heap and RSS after a full
// GC, per visitor, with the JavaScript object counts that grew.
//
//   bun bench/memory-per-visitor.ts [N=100000]
import { heapStats } from "bun:jsc";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { composeService } from "../src/compose.ts";
import { loadConfig } from "../src/config.ts";
import { closeEmbeddedEngines } from "../src/storage/clickhouse.ts";

const N = Number(process.argv[2] ?? 100_000);
const ROOT = "memory-bench-root-token-0123456789";
const dir = mkdtempSync(join(tmpdir(), "memory-per-visitor-"));
const config = loadConfig({ ...process.env, DATA_DIR: dir, NODE_ENV: "production", ANALYTICS_ROOT_TOKEN: ROOT, LOG_LEVEL: "warn" });
const svc = await composeService(config, { socketIp: () => "127.0.0.1" });
const created = await svc.app.fetch(new Request("http://bench/v1/keys", { method: "POST", headers: { authorization: `Bearer ${ROOT}`, "content-type": "application/json" }, body: JSON.stringify({ type: "secret", service_id: "mem" }) }));
const key = ((await created.json()) as { key: string }).key;
const UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36";

let sent = 0;
/** `count` page views, 32 at a time, the visitor of each from `visitor`; then one flush. */
async function send(count: number, visitor: (i: number) => string): Promise<void> {
  let i = 0;
  await Promise.all(Array.from({ length: 32 }, async () => {
    while (i < count) {
      const n = i++;
      sent++;
      const body = JSON.stringify({ url: `https://shop.example/p/${sent % 50}?utm_source=news`, referrer: "https://google.com/", anonymous_id: visitor(n), ip: `81.2.${(sent >> 8) & 255}.${sent & 255}`, user_agent: UA, event_id: crypto.randomUUID() });
      const res = await svc.app.fetch(new Request("http://bench/v1/ingest/pageview", { method: "POST", headers: { authorization: `Bearer ${key}`, "content-type": "application/json" }, body }));
      if (res.status !== 202) throw new Error(`ingest answered ${res.status}: ${await res.text()}`);
    }
  }));
  await svc.flush();
}

function measure() {
  Bun.gc(true);
  const { heapUsed, rss } = process.memoryUsage();
  return { heapUsed, rss, types: heapStats().objectTypeCounts as Record<string, number> };
}

try {
  await send(20_000, (n) => `warm-${n}`); // JIT, caches and the engine warmed up first
  const before = measure();
  await send(N, (n) => `visitor-${n}`);
  const afterNew = measure();
  await send(N, (n) => `visitor-${n}`); // the same visitors again: their sessions go on
  const afterReturning = measure();
  const per = (a: number, b: number) => Math.round((b - a) / N);
  const grew = Object.entries(afterNew.types)
    .map(([type, count]) => [type, (count - (before.types[type] ?? 0)) / N] as const)
    .filter(([, d]) => d >= 0.5)
    .sort((a, b) => b[1] - a[1])
    .map(([type, d]) => `${type} ${d.toFixed(1)}`);
  console.log(`N = ${N} new visitors, one page view each: heap +${per(before.heapUsed, afterNew.heapUsed)} B and RSS +${per(before.rss, afterNew.rss)} B per visitor`);
  console.log(`objects per new visitor: ${grew.join(", ")}`);
  console.log(`the same visitors once more: heap +${per(afterNew.heapUsed, afterReturning.heapUsed)} B and RSS +${per(afterNew.rss, afterReturning.rss)} B per event`);
} finally {
  await svc.close();
  await closeEmbeddedEngines();
  rmSync(dir, { recursive: true, force: true });
}
