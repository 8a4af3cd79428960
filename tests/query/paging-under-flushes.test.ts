// API.md: "paging is stable while new data arrives". A walk through /v1/sessions while the sink's
// flushes keep moving the starts of sessions the walk has just listed (late items, 30 s before
// each one's start) must list every session of the day once. Until the flush's inserts into
// `sessions` and the page reads took turns (src/storage/sessions-turns.ts), a page read while an
// insert was under way saw a move without its session_moves row, or the old state with a read
// time after the move: 33–338 sessions listed twice per 20 s of this test.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { startTestService, type TestService } from "../helpers/service.ts";

const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const DAY = 86_400_000;
const SESSIONS = 400;
let svc: TestService;
beforeAll(async () => {
  svc = await startTestService({ FLUSH_INTERVAL_MS: "200" });
});
afterAll(async () => {
  await svc?.dispose();
});

test("walks through /v1/sessions list each session once while flushes keep moving the sessions they just listed", async () => {
  const key = await svc.key({ type: "secret", service_id: "paging-flushes" });
  const admin = await svc.key({ type: "admin", services: ["paging-flushes"] });
  const noon = Math.floor(Date.now() / DAY) * DAY - 2 * DAY + 12 * 3_600_000;
  const date = new Date(noon).toISOString().slice(0, 10);
  // One visitor (address) per session; starts 2 s apart, moved by 30.001 s so no two share a millisecond.
  const start = Array.from({ length: SESSIONS }, (_, i) => noon + i * 2_000);
  const visit = async (i: number) => {
    const res = await svc.app.request("/v1/ingest/pageview", {
      method: "POST",
      headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
      body: JSON.stringify({ ip: `10.77.${i >> 8}.${i & 255}`, user_agent: CHROME, url: `https://shop.example/${i}`, timestamp: start[i] }),
    });
    expect(res.status).toBe(202);
  };
  for (let i = 0; i < SESSIONS; i++) await visit(i);
  await svc.flush();

  let justListed: number[] = [];
  let walking = true;
  let moves = 0;
  const mover = (async () => {
    while (walking) {
      for (const i of justListed) {
        start[i]! -= 30_001;
        await visit(i);
        moves++;
      }
      await Bun.sleep(5);
    }
  })();
  const repeated: number[] = [];
  let walks = 0;
  let pages = 0;
  const until = Date.now() + 10_000;
  try {
    while (Date.now() < until) {
      const listed = new Set<number>();
      let cursor: string | null = null;
      do {
        const res = await svc.app.request(`/v1/sessions?service_id=paging-flushes&from=${date}&to=${date}&limit=20${cursor ? `&cursor=${cursor}` : ""}`, { headers: { Authorization: `Bearer ${admin}` } });
        expect(res.status).toBe(200);
        const body = (await res.json()) as { data: Array<{ entry_path: string }>; next_cursor: string | null };
        const ids = body.data.map((s) => Number(s.entry_path.slice(1)));
        for (const i of ids) (listed.has(i) ? repeated.push(i) : listed.add(i));
        justListed = ids;
        cursor = body.next_cursor;
        pages++;
      } while (cursor);
      expect(listed.size).toBe(SESSIONS); // none left out
      walks++;
    }
  } finally {
    walking = false;
    await mover;
  }
  expect(walks).toBeGreaterThanOrEqual(2);
  expect(moves).toBeGreaterThan(1_000); // the walks did run beside moves
  expect({ pages, repeated }).toEqual({ pages, repeated: [] });
}, 60_000);
