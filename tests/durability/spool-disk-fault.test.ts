// A disk that refuses the spool's writes (full, read-only, failing): the request is refused with
// the contract's 503 and Retry-After (it was a 500), /readyz says why, nothing refused is stored,
// and ingest works again by itself once the disk takes writes. Fault injected: the spool's segment
// files are real, but their writes fail while `disk.full` (tests/spool/support.ts, faultyDisk).
import { afterAll, beforeAll, expect, test } from "bun:test";
import { faultyDisk } from "../spool/support.ts";
import { startTestService, type TestService } from "../helpers/service.ts";
import { testClickHouse } from "../helpers/clickhouse.ts";

const CHROME = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const { disk, openFile } = faultyDisk();
let svc: TestService;
let key: string;

beforeAll(async () => {
  svc = await startTestService({}, { spoolOpenFile: openFile });
  key = await svc.key({ type: "secret", service_id: "shop" });
});
afterAll(() => svc.dispose());

const send = (name: string) =>
  Promise.resolve(svc.app.request("/v1/ingest/event", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ name, user_agent: CHROME, ip: "8.8.8.8", anonymous_id: "disk-visitor" }),
  }));

test("a spool write the disk refuses is a 503 with Retry-After (fault injected), /readyz names it, and ingest recovers without a restart; only acknowledged events are stored", async () => {
  expect((await send("before")).status).toBe(202);
  disk.full = true;
  const refused = await send("refused");
  expect(refused.status).toBe(503);
  expect(refused.headers.get("retry-after")).toBe("5");
  expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("unavailable");
  const ready = await svc.app.request("/readyz");
  expect(ready.status).toBe(503);
  expect(JSON.stringify(await ready.json())).toContain("spool: cannot write to its disk (ENOSPC");
  disk.noTruncate = true; // the torn bytes cannot be cut off either
  expect((await send("refused-torn")).status).toBe(503);
  disk.full = false;
  disk.noTruncate = false;
  expect((await send("after")).status).toBe(202);
  expect((await svc.app.request("/readyz")).status).toBe(200);
  await svc.flush();
  const names = await (await testClickHouse(svc.database).client.query({ query: "SELECT name FROM events ORDER BY name", format: "JSONEachRow" })).json<{ name: string }>();
  expect(names.map((r) => r.name)).toEqual(["after", "before"]);
  // The refused items' session state was put back: all three accepted items share one session.
  const sessions = await (await testClickHouse(svc.database).client.query({ query: "SELECT sum(sign) AS n, sum(sign * events) AS events FROM sessions", format: "JSONEachRow" })).json<{ n: number; events: number }>();
  expect(sessions).toEqual([{ n: 1, events: 2 }]);
});
