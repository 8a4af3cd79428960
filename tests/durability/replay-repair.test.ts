// A kill between the embedded engine's two steps of committing a part (the dedup token recorded,
// the part's directory not yet renamed into place) left a table without a flush's rows: the replay
// of the same spool segment, with the same token, was dropped as a duplicate, while the table's
// views held the rows (a crash audit saw it once: 16 session rows missing from `sessions`).
//
// Fault injected, by hand and deterministically: the service takes a batch (spool only: a long
// flush interval), a copy of its spool segment is kept, SIGTERM makes it write the segment and
// delete it, the copy is put back (as if the kill had come before the delete), and the parts of
// `sessions` and `events` are deleted from disk while their tokens stay in the tables' dedup logs
// (as if the kill had come before the parts' rename), and so are the parts of two views, for the
// same failure in a view's target (`daily_session_stats` was seen 9 sessions short). The next start
// replays the segment.
import { afterAll, expect, test } from "bun:test";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN_FLAGS } from "../../src/runtime-flags.ts";
import { freePort } from "../helpers/embedded-server.ts";
import { ORPHANS_REMOVED } from "../../src/storage/embedded/orphan-dedup-entries.ts";

const ROOT = "rt_replay_repair_root_token_0123456789abcdef";
const work = mkdtempSync(join(tmpdir(), "replay-repair-"));
// Every child, so that a failed assertion does not leave a service running.
const children: Array<ReturnType<typeof Bun.spawn>> = [];
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await Promise.all(children.map((c) => c.exited));
  rmSync(work, { recursive: true, force: true });
});


async function until(what: string, check: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await Bun.sleep(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The service on `dataDir` with its embedded engine; resolves once /readyz is 200. */
async function service(dataDir: string, port: number) {
  const proc = Bun.spawn([process.execPath, ...BUN_FLAGS, "src/main.ts"], {
    env: { PATH: process.env.PATH ?? "", PORT: String(port), HOST: "127.0.0.1", DATA_DIR: dataDir, ANALYTICS_ROOT_TOKEN: ROOT, FLUSH_INTERVAL_MS: "60000", LOG_LEVEL: "warn" },
    stdout: "pipe",
    stderr: "pipe",
  });
  children.push(proc);
  const url = `http://127.0.0.1:${port}`;
  await until("readiness", async () => (await fetch(`${url}/readyz`)).status === 200);
  return { proc, url };
}

/** The embedded endpoint on the same data directory, to read tables and views directly. */
async function endpoint(dataDir: string, port: number) {
  const proc = Bun.spawn([process.execPath, "src/storage/embedded-server.ts", "--port", String(port), "--data", dataDir], { stdout: "pipe", stderr: "pipe" });
  children.push(proc);
  const url = `http://127.0.0.1:${port}`;
  await until("the endpoint", async () => (await fetch(`${url}/ping`)).ok);
  const count = async (sql: string) => Number((await (await fetch(url, { method: "POST", body: `${sql} FORMAT TSV` })).text()).trim());
  return { proc, count };
}

/** Deletes `table`'s part directories in the embedded engine's store (its UUID from the metadata file). */
function deleteParts(dataDir: string, table: string): number {
  const root = join(dataDir, "clickhouse");
  const uuid = /UUID '([0-9a-f-]{36})'/.exec(readFileSync(join(root, "metadata", "analytics_db", `${table}.sql`), "utf8"))![1]!;
  const dir = join(root, "store", uuid.slice(0, 3), uuid);
  const parts = readdirSync(dir).filter((name) => /^\d{6}_\d+_\d+_\d+$/.test(name));
  for (const p of parts) rmSync(join(dir, p), { recursive: true });
  return parts.length;
}

test("a flush whose table and view parts a kill lost although their tokens survived is written again at the next start, other views not counted twice (fault injected)", async () => {
  const dataDir = join(work, "data");
  const port = await freePort();
  const first = await service(dataDir, port);
  const post = (path: string, token: string, body: unknown) =>
    fetch(`${first.url}${path}`, { method: "POST", headers: { Authorization: `Bearer ${token}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const secret = ((await (await post("/v1/keys", ROOT, { type: "secret", service_id: "shop" })).json()) as { key: string }).key;
  const admin = ((await (await post("/v1/keys", ROOT, { type: "admin", services: ["shop"] })).json()) as { key: string }).key;
  const t0 = Date.now() - 3_600_000;
  const items = [0, 1, 2].flatMap((v) => [
    { type: "pageview", url: `https://shop.example/p${v}`, ip: `203.0.113.${v + 1}`, user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", timestamp: t0 + v * 1000 },
    { type: "event", name: "signup", url: `https://shop.example/p${v}`, ip: `203.0.113.${v + 1}`, user_agent: "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36", timestamp: t0 + v * 1000 + 500 },
  ]);
  const accepted = (await (await post("/v1/ingest/batch", secret, { items })).json()) as { accepted: number };
  expect(accepted.accepted).toBe(6);

  // Keep the segment, let SIGTERM write and delete it, put it back.
  const spoolDir = join(dataDir, "spool");
  const kept = join(work, "kept");
  mkdirSync(kept);
  const segments = readdirSync(spoolDir).filter((n) => n.startsWith("seg-"));
  expect(segments.length).toBeGreaterThan(0);
  for (const s of segments) copyFileSync(join(spoolDir, s), join(kept, s));
  first.proc.kill("SIGTERM");
  expect(await first.proc.exited).toBe(0);
  for (const s of segments) expect(readdirSync(spoolDir)).not.toContain(s); // written, then deleted
  for (const s of segments) copyFileSync(join(kept, s), join(spoolDir, s));
  expect(deleteParts(dataDir, "sessions")).toBe(1);
  expect(deleteParts(dataDir, "events")).toBe(1);
  expect(deleteParts(dataDir, "daily_session_stats")).toBe(1);
  expect(deleteParts(dataDir, "hourly_event_counts")).toBe(1);

  const second = await service(dataDir, port);
  const get = async (path: string) => (await fetch(`${second.url}${path}`, { headers: { Authorization: `Bearer ${admin}` } })).json() as Promise<{ data: unknown[] }>;
  expect((await get("/v1/sessions?service_id=shop")).data.length).toBe(3);
  expect((await get("/v1/events?service_id=shop")).data.length).toBe(3);
  second.proc.kill("SIGTERM");
  expect(await second.proc.exited).toBe(0);
  // Said as the engine opened: one line per table or view whose entry was removed.
  const said = (await new Response(second.proc.stdout).text()).split("\n").filter((l) => l.includes(ORPHANS_REMOVED));
  expect(said.length).toBe(4);

  // Every table and view holds the flush once: the lost ones got it back, the others kept theirs.
  const ch = await endpoint(dataDir, await freePort());
  try {
    expect(await ch.count("SELECT sum(sign) FROM analytics_db.sessions")).toBe(3);
    expect(await ch.count("SELECT count() FROM analytics_db.events")).toBe(3);
    expect(await ch.count("SELECT sum(sessions) FROM analytics_db.daily_session_stats")).toBe(3);
    expect(await ch.count("SELECT sum(count) FROM analytics_db.hourly_event_counts")).toBe(3);
    expect(await ch.count("SELECT count() FROM analytics_db.page_views")).toBe(3);
    expect(await ch.count("SELECT sum(sessions) FROM analytics_db.hourly_session_metrics")).toBe(3);
  } finally {
    ch.proc.kill("SIGTERM");
    await ch.proc.exited;
  }
}, 120_000);
