// What the session_moves view (schemas/12) costs the engine per inserted session row: the service's
// schema migrated twice into one fresh data directory, the view dropped from one copy; flush-sized
// inserts of session rows as the service encodes them (a cancel row and a new state per change,
// 5% of the changes moving the start earlier) go into both, alternating which goes first. CPU is
// the whole process's during each insert. Not a part of `npm run bench`: the probe behind the
// paging change (bench/RESULTS.md, 2026-11-30 07:10).
//
//   bun bench/moves-view-cost.ts [rounds = 80]
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeRecord, ROW_COLUMNS, sessionRecord } from "../src/ingest/rows.ts";
import { openSession, type SessionAttributes } from "../src/ingest/sessions/session-state.ts";
import { closeEmbeddedEngines, createClickHouse } from "../src/storage/clickhouse.ts";
import { migrate } from "../src/storage/migrate.ts";
const N = 6000;
const ROUNDS = Number(process.argv[2] ?? 80);
const dir = mkdtempSync(join(tmpdir(), "moves-mv-"));
const ch = createClickHouse({ dataDir: dir, database: "default", embeddedLanes: 2 });
await migrate(ch.client, { database: "db_with" });
await migrate(ch.client, { database: "db_without" });
await ch.client.command({ query: "DROP VIEW db_without.session_moves_mv" });
const attrs: SessionAttributes = { hostname: "shop.example", referrer: "", referrer_domain: "", utm_source: "", utm_medium: "", utm_campaign: "", utm_term: "", utm_content: "", device: "desktop", browser: "Chrome", os: "Windows", country: "DE", screen_width: 0, screen_height: 0, language: "", timezone: "" };
let version = 1;
function rows(): string {
  const out: string[] = [];
  const now = Date.now();
  for (let i = 0; i < N; i += 2) {
    const time = now - Math.floor(Math.random() * 600_000);
    const s = openSession("bench", crypto.randomUUID(), `v${i}`, { time, kind: "event", path: "/a", conversion: false, userId: "", attrs });
    s.version = version++;
    out.push(decodeRecord(sessionRecord(s, -1)).json);
    if (i % 40 === 0) s.started_at -= 60_000; // 5% of changes move the start
    s.version = version++;
    out.push(decodeRecord(sessionRecord(s, 1)).json);
  }
  return out.join("\n");
}
const cols = ROW_COLUMNS.sessions.map((c) => `\`${c}\``).join(", ");
async function insert(db: string, body: string): Promise<number> {
  const u0 = process.cpuUsage();
  await ch.client.command({ query: `INSERT INTO ${db}.sessions (${cols}) SETTINGS date_time_input_format = 'best_effort' FORMAT JSONCompactEachRow\n${body}` });
  const u = process.cpuUsage(u0);
  return (u.user + u.system) / 1000;
}
const w: number[] = [], wo: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  const body = rows();
  if (r % 2) { wo.push(await insert("db_without", body)); w.push(await insert("db_with", body)); }
  else { w.push(await insert("db_with", body)); wo.push(await insert("db_without", body)); }
}
const med = (x: number[]) => [...x].sort((a, b) => a - b)[x.length >> 1]!;
const moves = await (await ch.client.query({ query: "SELECT count() n FROM db_with.session_moves", format: "JSONEachRow" })).json();
console.log(`CPU ms per insert of ${N} session rows: with MV median ${med(w).toFixed(1)} (${Math.min(...w).toFixed(0)}-${Math.max(...w).toFixed(0)}), without ${med(wo).toFixed(1)} (${Math.min(...wo).toFixed(0)}-${Math.max(...wo).toFixed(0)}); ratio ${(med(w) / med(wo)).toFixed(3)}; moves stored ${JSON.stringify(moves)}`);
await closeEmbeddedEngines();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
