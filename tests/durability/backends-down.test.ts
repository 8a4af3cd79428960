// When ClickHouse or Valkey does not answer, every route says so with the contract's 503
// `unavailable` (Retry-After, request id), never a 500 or a dropped connection; /readyz names the
// reason; the service starts while ClickHouse is down (ingest refused until its state is rebuilt)
// and takes items again once it is back; with ACK_MODE=insert a refused request leaves no trace
// in the session a retry then writes.
import { expect, test } from "bun:test";
import { PROCESS_ROOT_TOKEN, useSinkFixture, type ServiceProcess } from "../helpers/service-process.ts";
import { startTcpFaultProxy, type TcpFaultProxy } from "../helpers/tcp-fault-proxy.ts";
import { freeDbIndex, startValkey, stopValkey } from "../setup/valkey.ts";

const sink = useSinkFixture();
// The sink is stopped with SIGTERM here (connections are refused alike): restarted on its data
// dir after a SIGKILL, the embedded endpoint (`npm run clickhouse`) answered /ping but hung on
// queries in 2 of 5 runs of this file, and every later test then timed out. A hung ClickHouse is
// a proxy that stops passing bytes (tcp-fault-proxy.ts), not a SIGSTOPped endpoint, for the same
// reason.
const UA = "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0";

async function expect503(s: ServiceProcess, path: string, init: RequestInit = {}) {
  const res = await s.fetch(path, { ...init, headers: { ...(init.headers as Record<string, string>), "X-Request-Id": "down-1" }, signal: AbortSignal.timeout(15_000) });
  const body = (await res.json()) as { error: { code: string }; request_id: string };
  expect([path, res.status, body.error.code, body.request_id]).toEqual([path, 503, "unavailable", "down-1"]);
  expect(res.headers.get("retry-after")).toBe("5");
}

async function until(what: () => Promise<boolean>, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (await what().catch(() => false)) return true;
    await Bun.sleep(250);
  }
  return false;
}

test("ClickHouse down: query and key routes answer 503 unavailable, /readyz says why; a restart while it is down starts and takes items once it is back", async () => {
  const s = await sink.startService();
  const key = await s.createKey({ type: "secret", service_id: "down" });
  const admin = await s.createKey({ type: "admin", services: ["down"] });
  const who = { anonymous_id: "down-visitor", ip: "8.8.8.8", user_agent: UA };
  const post = (body: unknown) => s.fetch("/v1/ingest/event", { method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const t = Date.now() - 5 * 60_000;
  const first = (await (await post({ ...who, name: "before", timestamp: t })).json()) as { accepted: number };
  expect(first.accepted).toBe(1);
  const auth = { Authorization: `Bearer ${admin}` };
  expect(await until(async () => (((await (await s.fetch("/v1/events?service_id=down", { headers: auth })).json()) as { data: unknown[] }).data.length === 1), 10_000)).toBe(true);

  await sink.ch.stop("SIGTERM");
  try {
    for (const path of ["/v1/sessions?service_id=down", "/v1/sessions/stats?service_id=down&interval=day", "/v1/events?service_id=down", "/v1/funnels/f?service_id=down", "/v1/behavior/summary?service_id=down&limit=11"]) {
      await expect503(s, path, { headers: auth });
    }
    await expect503(s, "/v1/keys", { headers: { Authorization: `Bearer ${PROCESS_ROOT_TOKEN}` } });
    const ready = await s.fetch("/readyz", { headers: { "X-Request-Id": "ready-1" } });
    const readyBody = (await ready.json()) as { status: string; reasons: string[]; error: { code: string }; request_id: string };
    expect(ready.status).toBe(503);
    expect(readyBody).toMatchObject({ status: "not_ready", error: { code: "unavailable" }, request_id: "ready-1" });
    expect(readyBody.reasons.some((r) => r.startsWith("clickhouse:"))).toBe(true);

    // The spool takes items meanwhile; then the process dies and starts again, ClickHouse still down.
    expect((await post({ ...who, name: "during", timestamp: t + 60_000 })).status).toBe(202);
    await s.kill("SIGKILL");
    await s.start("health");
    const refused = await post({ ...who, name: "after-restart", timestamp: t + 120_000 });
    expect(refused.status).toBe(503);
    const reasons = ((await (await s.fetch("/readyz")).json()) as { reasons: string[] }).reasons;
    expect(reasons.some((r) => r.startsWith("ingest:"))).toBe(true);
    // …and, once a rebuild has failed, why (a full disk is not "not answering": disk-full audit).
    const saysWhy = async () => ((await (await s.fetch("/readyz")).json()) as { reasons: string[] }).reasons.some((r) => r.startsWith("ingest:") && r.includes("(last attempt: "));
    expect(await until(saysWhy, 15_000)).toBe(true);
  } finally {
    await sink.ch.start();
  }
  // Back: the state is rebuilt from ClickHouse (after the spool's rows arrived), and the visit goes on in its session.
  // The engine's process restarted on its data directory has failed by itself there (exit 70,
  // "shutting down due to a fatal error", CI 2026-12-01): that is ClickHouse coming back once
  // more, healed as below, and the running service must get ready all the same.
  const ready = () => until(async () => (await s.fetch("/readyz")).status === 200, 20_000);
  expect((await ready()) || ((await sink.heal()) && (await ready()))).toBe(true);
  const after = await post({ ...who, name: "after-restart", timestamp: t + 120_000 });
  expect(after.status).toBe(202);
  const stored = () => until(async () => (((await (await s.fetch("/v1/events?service_id=down", { headers: auth })).json()) as { data: unknown[] }).data.length === 3), 10_000);
  // An endpoint whose engine failed by itself after its restart (useSinkFixture) is ClickHouse
  // coming back once more: the service, still running, must then store the items all the same.
  expect((await stored()) || ((await sink.heal()) && (await stored()))).toBe(true);
  const sessions = ((await (await s.fetch("/v1/sessions?service_id=down", { headers: auth })).json()) as { data: Array<{ events: number }> }).data;
  expect(sessions.map((x) => x.events)).toEqual([3]);
  expect(s.logs()).not.toContain("request failed");
  // Readiness changes are logged, the reasons at warn, once per change (a soak saw /readyz 503s
  // logged only as info access lines, against the README's "503s at warn with the reason").
  const lines = s.logs().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { level: string; msg: string; reasons?: string[] });
  const notReady = lines.filter((l) => l.msg === "not ready");
  expect(notReady.length).toBeGreaterThan(0);
  expect(notReady.every((l) => l.level === "warn")).toBe(true);
  expect(notReady.some((l) => l.reasons!.some((r) => r.startsWith("clickhouse:")))).toBe(true);
  // Once per change: the test asked /readyz many times while the reasons stayed the same.
  const sets = notReady.map((l) => JSON.stringify(l.reasons));
  expect(sets.every((set, i) => i === 0 || set !== sets[i - 1])).toBe(true);
}, 120_000);

test("ACK_MODE=insert with ClickHouse down: 503, and the retry once it is back counts the items once in one session", async () => {
  const s = await sink.startService({ env: { ACK_MODE: "insert" } });
  const key = await s.createKey({ type: "secret", service_id: "insert_down" });
  const admin = await s.createKey({ type: "admin", services: ["insert_down"] });
  const t = Date.now() - 5 * 60_000;
  const batch = { items: [0, 1, 2].map((i) => ({ type: "event", name: "buy", event_id: crypto.randomUUID(), timestamp: t + i * 1000, anonymous_id: "insert-visitor", ip: "8.8.8.8", user_agent: UA })) };
  const send = () => s.fetch("/v1/ingest/batch", { method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: JSON.stringify(batch) });
  await sink.ch.stop("SIGTERM");
  try {
    expect((await send()).status).toBe(503);
  } finally {
    await sink.ch.start();
  }
  expect(await until(async () => (await send()).status === 202, 20_000)).toBe(true);
  const auth = { Authorization: `Bearer ${admin}` };
  let sessions: Array<{ events: number }> = [];
  expect(await until(async () => {
    sessions = ((await (await s.fetch("/v1/sessions?service_id=insert_down", { headers: auth })).json()) as { data: Array<{ events: number }> }).data;
    return sessions.length > 0;
  }, 10_000)).toBe(true);
  expect(sessions.map((x) => x.events)).toEqual([3]);
}, 120_000);

test("Valkey down: ingest answers 503 unavailable and /readyz names it; once it is back, ingest is accepted", async () => {
  const s = await sink.startService({ env: { VALKEY_URL: process.env.TEST_VALKEY_URL!, VALKEY_DB: String(freeDbIndex()), LOG_LEVEL: "info" } });
  const key = await s.createKey({ type: "secret", service_id: "valkey_down" });
  const post = () => s.fetch("/v1/ingest/event", { method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json", "X-Request-Id": "down-1" }, body: JSON.stringify({ name: "x", ip: "8.8.8.8", user_agent: UA }) });
  expect((await post()).status).toBe(202);
  await stopValkey();
  try {
    const res = await post();
    expect(res.status).toBe(503);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("unavailable");
    const ready = (await (await s.fetch("/readyz")).json()) as { reasons: string[] };
    expect(ready.reasons.some((r) => r.startsWith("valkey:"))).toBe(true);
    await Bun.sleep(2_000); // several reconnect attempts (one at least every 500 ms), each an error
  } finally {
    await startValkey();
  }
  expect(await until(async () => (await post()).status === 202, 20_000)).toBe(true);
  expect(s.logs()).not.toContain("request failed");
  // The outage in the log: each distinct error once per 30 s (the outage is shorter: once), then
  // the return, once. Before, a line every reconnect attempt.
  const lines = s.logs().split("\n");
  const errors = lines.filter((l) => l.includes('"msg":"valkey error"')).map((l) => (JSON.parse(l) as { error: string }).error);
  expect(errors.length).toBeGreaterThan(0);
  expect(errors.length).toBe(new Set(errors).size);
  expect(lines.filter((l) => l.includes('"msg":"valkey connected again"')).length).toBe(1);
}, 120_000);

/**
 * `/readyz` through a backend hang: 200, then 503 within 5 s once `proxy` stops passing bytes
 * (its reasons handed to `check`), then 200 again within 10 s once bytes flow.
 */
async function readyzThroughHang(s: ServiceProcess, proxy: TcpFaultProxy, check: (reasons: string[]) => void): Promise<void> {
  expect((await s.fetch("/readyz")).status).toBe(200);
  proxy.hang();
  try {
    const started = Date.now();
    const res = await s.fetch("/readyz", { signal: AbortSignal.timeout(10_000) });
    expect(res.status).toBe(503);
    expect(Date.now() - started).toBeLessThan(5_000);
    check(((await res.json()) as { reasons: string[] }).reasons);
  } finally {
    proxy.resume();
  }
  expect(await until(async () => (await s.fetch("/readyz")).status === 200, 10_000)).toBe(true);
}

test("a hung Valkey (a proxy that stops passing bytes; the connection stays up): /readyz answers 503 naming it, and 200 once it answers again", async () => {
  const proxy = await startTcpFaultProxy(Number(new URL(process.env.TEST_VALKEY_URL!).port));
  const s = await sink.startService({ env: { VALKEY_URL: proxy.url.replace("http:", "redis:"), VALKEY_DB: String(freeDbIndex()) } });
  try {
    await readyzThroughHang(s, proxy, (reasons) => expect(reasons.filter((r) => r.startsWith("valkey:"))).toHaveLength(1));
  } finally {
    await s.dispose();
    await proxy.close();
  }
}, 60_000);

test("a hung ClickHouse (a proxy that stops passing bytes): /readyz answers 503 within a few seconds", async () => {
  const proxy = await startTcpFaultProxy(sink.ch.port);
  const s = await sink.startService({ clickhouseUrl: proxy.url });
  await readyzThroughHang(s, proxy, (reasons) => expect(reasons.join(" ")).toContain("no answer within"));
  await s.dispose();
  await proxy.close();
}, 60_000);

test("SIGTERM with a hung ClickHouse and a query waiting on it: the spool is kept for the next start and the process exits 0 within 2 s + SHUTDOWN_TIMEOUT_MS + 2 s", async () => {
  const proxy = await startTcpFaultProxy(sink.ch.port);
  const s = await sink.startService({ clickhouseUrl: proxy.url, env: { SHUTDOWN_TIMEOUT_MS: "3000" } });
  const key = await s.createKey({ type: "secret", service_id: "hung_stop" });
  const admin = await s.createKey({ type: "admin", services: ["hung_stop"] });
  proxy.hang();
  try {
    const res = await s.fetch("/v1/ingest/event", { method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: JSON.stringify({ name: "kept", ip: "8.8.8.8", user_agent: UA }) });
    expect(res.status).toBe(202);
    await Bun.sleep(6_000); // a key refresh (every 5 s) is now waiting on the hung ClickHouse
    // A dashboard query waits on it too (its connection is closed at shutdown: the fetch fails).
    const query = s.fetch("/v1/sessions?service_id=hung_stop&limit=7", { headers: { Authorization: `Bearer ${admin}` } }).then((r) => r.status, () => "closed");
    await Bun.sleep(200);
    const started = Date.now();
    const exit = await s.kill("SIGTERM");
    expect(exit.code).toBe(0);
    expect(Date.now() - started).toBeLessThan(2000 + 3000 + 2000 + 1500);
    expect(await query).toBe("closed");
  } finally {
    proxy.resume();
  }
  // The next start delivers what the spool kept.
  await s.start();
  const rows = async () => Number(((await (await sink.client.query({ query: "SELECT count() AS n FROM events WHERE service_id = 'hung_stop'", format: "JSONEachRow" })).json()) as Array<{ n: string }>)[0]!.n);
  expect(await until(async () => (await rows()) === 1, 20_000)).toBe(true);
  await s.dispose();
  await proxy.close();
}, 60_000);
