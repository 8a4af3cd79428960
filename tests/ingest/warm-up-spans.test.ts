// After a restart the session state is rebuilt from ClickHouse (in process; with Valkey, when
// Valkey lost its data): a visitor's next item must find the same sessions it would have found
// had the process kept running: a hashed visitor's sessions on both sides of a UTC midnight (each
// day's id finds its own day's session, never the other's), and two cases the rebuild used to get
// wrong (found by a black-box audit, 2026-11-28, and a re-read of what the state holds that a
// session row does not): a session kept by the client's own session_id (which the 30-minute rule
// never joins), and the time of the item that gave the user id.
import { afterAll, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { testClickHouse } from "../helpers/clickhouse.ts";
import { startTestService, type TestService } from "../helpers/service.ts";

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

const DAY = 86_400_000;
const UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/121.0.0.0 Safari/537.36";

/** Runs `before` on a service, restarts it on the same data directory and database, then `after`. */
async function acrossRestart(service: string, before: (s: TestService, key: string) => Promise<void>, after: (s: TestService, key: string) => Promise<void>) {
  const dataDir = mkdtempSync(join(tmpdir(), "analytics-warm-")); // the daily salts live here
  dirs.push(dataDir);
  const first = await startTestService({ DATA_DIR: dataDir });
  const key = await first.key({ type: "secret", service_id: service });
  try {
    await before(first, key);
    await first.flush();
  } finally {
    await first.close();
  }
  const second = await startTestService({ DATA_DIR: dataDir }, { database: first.database, migrate: false });
  try {
    await after(second, key);
  } finally {
    await second.dispose();
  }
}

async function send(s: TestService, key: string, items: object[]): Promise<void> {
  const res = await s.app.request("/v1/ingest/batch", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ items }),
  });
  const body = (await res.json()) as { accepted: number };
  expect([res.status, body.accepted]).toEqual([202, items.length]);
}

/** path → session id of the service's stored page views (after a flush). */
async function sessionsByPath(s: TestService, service: string): Promise<Record<string, string>> {
  await s.flush();
  const ch = testClickHouse(s.database);
  try {
    const rows = await (await ch.client.query({
      query: "SELECT path, session_id FROM page_views WHERE service_id = {s:String}",
      query_params: { s: service },
      format: "JSONEachRow",
    })).json<{ path: string; session_id: string }>();
    return Object.fromEntries(rows.map((r) => [r.path, r.session_id]));
  } finally {
    await ch.close();
  }
}

/**
 * 20 minutes ago, or just before a UTC midnight between 30 minutes before that and 5 after: the
 * user-id cases below send items in that span, and a hashed visitor's id changes at UTC midnight,
 * so items on both sides would be two visitors' (a run at 00:22 UTC failed them).
 */
function recentOneDay(): number {
  const t = Date.now() - 20 * 60_000;
  const midnight = Math.floor((t + 5 * 60_000) / DAY) * DAY;
  return t - 30 * 60_000 < midnight ? midnight - 5 * 60_000 - 1 : t;
}

const pageview = (time: number, path: string, extra: object = {}) => ({ type: "pageview", url: `https://warm.example${path}`, timestamp: new Date(time).toISOString(), ip: "81.2.69.160", user_agent: UA, ...extra });

/** Before: a hashed visitor's page views /a (23:35) and /b, /c (00:20, 00:45: the next day's id). */
const beforeMidnight = (midnight: number) => [pageview(midnight - 25 * 60_000, "/a"), pageview(midnight + 20 * 60_000, "/b"), pageview(midnight + 45 * 60_000, "/c")];
/** After: /a2 (23:55) goes on in /a's session, /d (01:00) in /b's: each day's id finds its own day's session. */
const afterMidnight = (midnight: number) => [pageview(midnight - 5 * 60_000, "/a2"), pageview(midnight + 60 * 60_000, "/d")];
function expectMidnightSessions(by: Record<string, string>) {
  expect(Object.keys(by).sort()).toEqual(["/a", "/a2", "/b", "/c", "/d"]);
  expect([by["/a2"], by["/c"], by["/d"]]).toEqual([by["/a"]!, by["/b"]!, by["/b"]!]);
  expect(by["/a"]).not.toBe(by["/b"]!);
}

test("a hashed visitor's sessions on each side of UTC midnight go on after a restart, each under its own day's id", async () => {
  const midnight = Math.floor(Date.now() / DAY) * DAY - DAY; // yesterday 00:00 UTC: all items in the past
  const service = "warm_midnight";
  await acrossRestart(service, async (s, key) => {
    await send(s, key, beforeMidnight(midnight));
  }, async (s, key) => {
    await send(s, key, afterMidnight(midnight));
    expectMidnightSessions(await sessionsByPath(s, service));
  });
});

test("a session kept by the client's session_id stays out of the 30-minute rule after a restart", async () => {
  const t = Date.now() - 20 * 60_000;
  const service = "warm_client";
  await acrossRestart(service, async (s, key) => {
    await send(s, key, [pageview(t, "/a", { session_id: "client-kept-1" })]);
  }, async (s, key) => {
    // Without a session_id, 5 minutes later: a server session of its own, as without the restart.
    await send(s, key, [pageview(t + 5 * 60_000, "/b")]);
    const by = await sessionsByPath(s, service);
    expect(by["/a"]).toBe("client-kept-1");
    expect(by["/b"]).toBeString();
    expect(by["/b"]).not.toBe("client-kept-1");
  });
});

/** The user_id of each of the service's live session states. */
async function userIds(s: TestService, service: string): Promise<string[]> {
  await s.flush();
  const ch = testClickHouse(s.database);
  try {
    const rows = await (await ch.client.query({
      query: "SELECT user_id FROM sessions FINAL WHERE service_id = {s:String} AND sign = 1",
      query_params: { s: service },
      format: "JSONEachRow",
    })).json<{ user_id: string }>();
    return rows.map((r) => r.user_id);
  } finally {
    await ch.close();
  }
}

test("a late item with an earlier time does not replace the session's user id after a restart either", async () => {
  const t = recentOneDay();
  const service = "warm_user";
  await acrossRestart(service, async (s, key) => {
    await send(s, key, [pageview(t - 10 * 60_000, "/a"), pageview(t, "/b", { user_id: "u-latest" })]);
  }, async (s, key) => {
    // Earlier than the item that gave the user id: the session's user stays that of the latest item.
    await send(s, key, [pageview(t - 5 * 60_000, "/c", { user_id: "u-earlier" })]);
    expect(await userIds(s, service)).toEqual(["u-latest"]);
    await send(s, key, [pageview(t + 60_000, "/d", { user_id: "u-later" })]);
    expect(await userIds(s, service)).toEqual(["u-later"]);
  });
});

test("control: without a restart the cases above give those answers", async () => {
  const dataDir = mkdtempSync(join(tmpdir(), "analytics-warm-"));
  dirs.push(dataDir);
  const s = await startTestService({ DATA_DIR: dataDir });
  try {
    const midnight = Math.floor(Date.now() / DAY) * DAY - DAY;
    const key = await s.key({ type: "secret", service_id: "warm_control" });
    await send(s, key, beforeMidnight(midnight));
    await send(s, key, afterMidnight(midnight));
    expectMidnightSessions(await sessionsByPath(s, "warm_control"));
    const key2 = await s.key({ type: "secret", service_id: "warm_control2" });
    const t = Date.now() - 20 * 60_000;
    await send(s, key2, [pageview(t, "/a", { session_id: "client-kept-2" })]);
    await send(s, key2, [pageview(t + 5 * 60_000, "/b")]);
    const by = await sessionsByPath(s, "warm_control2");
    expect(by["/a"]).toBe("client-kept-2");
    expect(by["/b"]).not.toBe("client-kept-2");
    const key3 = await s.key({ type: "secret", service_id: "warm_control3" });
    const t3 = recentOneDay();
    await send(s, key3, [pageview(t3 - 10 * 60_000, "/a"), pageview(t3, "/b", { user_id: "u-latest" })]);
    await send(s, key3, [pageview(t3 - 5 * 60_000, "/c", { user_id: "u-earlier" })]);
    expect(await userIds(s, "warm_control3")).toEqual(["u-latest"]);
  } finally {
    await s.dispose();
  }
});
