// Spool cap: with a tiny SPOOL_MAX_BYTES and ClickHouse down, the spool fills up and ingestion
// answers 503 `unavailable` with Retry-After and the contract's error body, acknowledging nothing
// it cannot keep. Once ClickHouse is back and the spool drained, ingestion answers 202 again, and
// everything acknowledged before, during and after is stored exactly once.
import { expect, test } from "bun:test";
import { MIN_SPOOL_BYTES } from "../../src/config.ts";
import { useSinkFixture, type ServiceProcess } from "../helpers/service-process.ts";
import { BROWSER_UA, badSessionSigns, storedIdCounts, waitForRows } from "./load.ts";

// The smallest cap the configuration takes (room for one full batch).
const CAP = MIN_SPOOL_BYTES;

const sink = useSinkFixture();

interface Answer {
  status: number;
  headers: Headers;
  body: Record<string, unknown>;
  ids: string[];
}

let visitor = 0;
/** One batch of `n` custom events with fresh ids (secret key: ip and user agent set here). */
async function post(s: ServiceProcess, key: string, n = 2): Promise<Answer> {
  visitor++;
  const ids = Array.from({ length: n }, () => crypto.randomUUID());
  const items = ids.map((id, i) => ({
    type: "event", event_id: id, name: "signup", url: `https://cap.example/step/${i}`,
    ip: `203.0.113.${(visitor % 200) + 1}`, user_agent: BROWSER_UA, timestamp: new Date().toISOString(),
  }));
  const res = await s.fetch("/v1/ingest/batch", {
    method: "POST",
    headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" },
    body: JSON.stringify({ items }),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown>, ids };
}

async function spoolBytes(s: ServiceProcess): Promise<number> {
  await (await s.fetch("/readyz")).arrayBuffer(); // readiness refreshes the spool gauges
  const metrics = await (await s.fetch("/metrics")).text();
  return Number(/^\w*spool_bytes\s+(\S+)/m.exec(metrics)?.[1] ?? NaN);
}

test(`SPOOL_MAX_BYTES=${CAP}: full spool answers 503 + Retry-After, then 202 again once drained, nothing acknowledged lost`, async () => {
  const started = Date.now();
  const s = await sink.startService({ env: { SPOOL_MAX_BYTES: String(CAP) } });
  const key = await s.createKey({ type: "secret", service_id: "cap" });
  const acked = new Set<string>();
  const ack = (a: Answer) => {
    expect(a.status).toBe(202);
    expect((a.body as { dropped: unknown[] }).dropped).toEqual([]);
    for (const id of (a.body as { event_ids: string[] }).event_ids) acked.add(id);
  };

  // Sink up: accepted and flushed.
  for (let i = 0; i < 5; i++) ack(await post(s, key));
  expect(await waitForRows(sink.client, "cap", acked.size, { timeoutMs: 20_000, quietMs: 0 })).toBe(acked.size);

  // Sink down: fill the spool until the service refuses 100-item batches, then single items.
  await sink.ch.stop("SIGKILL");
  let refused: Answer | undefined;
  let acceptedWhileDown = 0;
  for (const size of [100, 1]) {
    refused = undefined;
    for (let i = 0; i < 2_000 && !refused; i++) {
      const a = await post(s, key, size);
      if (a.status === 202) {
        ack(a);
        acceptedWhileDown++;
      } else refused = a;
    }
    if (!refused) throw new Error(`no 503 for ${size}-item requests after 2,000 of them with a ${CAP}-byte spool:\n${s.logs().slice(-4000)}`);
  }
  if (!refused) throw new Error("unreachable");
  expect(acceptedWhileDown).toBeGreaterThan(3);
  expect(refused.status).toBe(503);
  const retryAfter = refused.headers.get("Retry-After");
  expect(retryAfter).toMatch(/^\d+$/);
  expect(Number(retryAfter)).toBeGreaterThan(0);
  expect(refused.body).toEqual({
    error: { code: "unavailable", message: expect.any(String) },
    request_id: refused.headers.get("X-Request-Id")!,
  });
  const bytesAtCap = await spoolBytes(s);
  expect(bytesAtCap).toBeLessThanOrEqual(CAP);

  // Still full: concurrent requests are refused too, and the spool never goes past its cap.
  const burst = await Promise.all(Array.from({ length: 16 }, () => post(s, key, 1)));
  for (const a of burst) {
    if (a.status === 202) ack(a); // room freed by nothing, but a 1-item request may still fit
    else expect((a.body as { error: { code: string } }).error.code).toBe("unavailable");
  }
  expect(burst.filter((a) => a.status === 503).length).toBeGreaterThan(0);
  expect(await spoolBytes(s)).toBeLessThanOrEqual(CAP);
  expect((await s.fetch("/healthz")).status).toBe(200);

  // Bad input still gets its 4xx while full (it would never be stored anyway), and a batch of
  // only bad items its 202 with every item dropped: the 503 is for what would need room.
  const bad = await s.fetch("/v1/ingest/event", {
    method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: JSON.stringify({ name: 5 }),
  });
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("invalid_body");
  const badBatch = await s.fetch("/v1/ingest/batch", {
    method: "POST", headers: { Authorization: `Bearer ${key}`, "Content-Type": "application/json" }, body: JSON.stringify({ items: [{ type: "event" }] }),
  });
  expect(badBatch.status).toBe(202);
  expect(((await badBatch.json()) as { accepted: number; dropped: { reason: string }[] })).toMatchObject({ accepted: 0, dropped: [{ reason: "invalid" }] });

  // Sink back: the spool drains and ingestion answers 202 again (the client honours Retry-After,
  // shortened here: the batcher's backoff decides how soon it retries ClickHouse).
  await sink.ch.start();
  const back = Date.now();
  let again: Answer | undefined;
  let refusedAfter = 0;
  while (Date.now() - back < 60_000) {
    const a = await post(s, key);
    if (a.status === 202) {
      again = a;
      break;
    }
    refusedAfter++;
    await Bun.sleep(250);
  }
  if (!again) throw new Error(`still refused 60 s after ClickHouse came back:\n${s.logs().slice(-4000)}`);
  ack(again);
  const recoveredMs = Date.now() - back;
  // Drained: the spool is (nearly) empty and readiness is back; every request is accepted again.
  let drainedBytes = NaN;
  while (Date.now() - back < 60_000) {
    drainedBytes = await spoolBytes(s);
    if (drainedBytes < CAP / 4 && (await s.fetch("/readyz")).status === 200) break;
    await Bun.sleep(200);
  }
  const drainedMs = Date.now() - back;
  expect(drainedBytes).toBeLessThan(CAP / 4);
  for (let i = 0; i < 10; i++) ack(await post(s, key));

  const rows = await waitForRows(sink.client, "cap", acked.size, { timeoutMs: 30_000, quietMs: 1_000 });
  const counts = await storedIdCounts(sink.client, "cap");
  const missing = [...acked].filter((id) => !counts.has(id));
  const duplicated = [...counts].filter(([, c]) => c > 1);
  const signs = await badSessionSigns(sink.client, "cap");
  console.log(
    `[spool-cap] cap ${CAP} B: ${acceptedWhileDown} requests accepted with the sink down, then 503 (Retry-After ${retryAfter}); ` +
      `spool at the cap ${bytesAtCap} B; burst ${burst.filter((a) => a.status === 503).length}/16 refused; ` +
      `202 again ${recoveredMs} ms after ClickHouse came back (${refusedAfter} refusals meanwhile), drained after ${drainedMs} ms; acknowledged ${acked.size}, rows ${rows}, ` +
      `missing ${missing.length}, duplicated ${duplicated.length}; sessions ${signs.sessions}, bad signs ${signs.bad.length}; ` +
      `${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  expect(missing).toEqual([]);
  expect(duplicated).toEqual([]);
  expect(counts.size).toBe(acked.size); // nothing refused was stored either
  expect(signs.bad).toEqual([]);
}, 120_000);
