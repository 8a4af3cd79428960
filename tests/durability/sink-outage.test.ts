// Sink outage: under load the ClickHouse endpoint goes away for 20 seconds (killed, then started
// again on the same port and data dir). Ingestion keeps answering 202 meanwhile (the spool is on
// disk), the service's memory stays bounded, and once ClickHouse is back every accepted event is
// there exactly once.
import { expect, test } from "bun:test";
import { useSinkFixture } from "../helpers/service-process.ts";
import { badSessionSigns, expectExactlyOnce, Load, reconcile, waitForRows } from "./load.ts";

const OUTAGE_MS = 20_000;
/** RSS growth allowed while the sink is down (the spool is on disk, not in memory). */
// RSS growth also holds heap garbage the collector has not taken yet, which grows with the request
// rate, not with what is buffered; the load is capped (20,000 requests) so that part stays bounded
// however fast the service gets. bench/ measures retained bytes per buffered event after a forced GC.
// The cap was 12,000: the load spent it all in every run, and the faster the 4 s before the outage
// went, the less was left for the outage (3,426 requests, 9.7 MB of bodies in a CI run of
// 2026-11-30 against 4,035-8,760 in earlier ones), under the 10 MB this test asks to be buffered.
const RSS_GROWTH_LIMIT = 150 * 1024 * 1024;
const MB = 1024 * 1024;

const sink = useSinkFixture();

test("20 s without ClickHouse: 202s go on, RSS stays bounded, nothing is lost or doubled", async () => {
  const started = Date.now();
  const s = await sink.startService();
  const key = await s.createKey({ type: "secret", service_id: "outage" });
  const load = new Load({ target: () => s.url, key, workers: 4, maxRequests: 20_000, maxDurationMs: OUTAGE_MS + 12_000, padBytes: 1200, requestTimeoutMs: 10_000 });
  const context = () => `${load.summary()}\nservice log tail:\n${s.logs().slice(-4000)}\nclickhouse log tail:\n${sink.ch.logs().slice(-4000)}`;
  // The checks' own reads: one hung for its client's 60 s once in 56 runs (2026-11-29), with no
  // word of why; a failing read now says what both processes logged (the engine logs requests
  // queued or running over 10 s).
  const withContext = async <T>(what: string, read: () => Promise<T>): Promise<T> => {
    try {
      return await read();
    } catch (err) {
      throw new Error(`${what} failed: ${String(err)}\n${context()}`, { cause: err });
    }
  };

  let during: { ok: number; other: Record<string, number>; bytes: number; accepted: number; rssBefore: number; rssMax: number; readyz: number; healthz: number };
  try {
    await Bun.sleep(4_000); // steady state with the sink up
    const snapshot = () => ({ outcomes: new Map(load.outcomes), bytes: load.acceptedBytes, accepted: load.accepted.size });
    const before = snapshot();
    const rssBefore = s.rssBytes();
    await sink.ch.stop("SIGKILL");
    const outageStart = Date.now();
    let rssMax = rssBefore;
    let readyz = 0;
    let healthz = 0;
    while (Date.now() - outageStart < OUTAGE_MS) {
      await Bun.sleep(250);
      rssMax = Math.max(rssMax, s.rssBytes());
      if (readyz === 0 && Date.now() - outageStart > 2_000) {
        readyz = (await s.fetch("/readyz")).status;
        healthz = (await s.fetch("/healthz")).status;
      }
    }
    const after = snapshot();
    await sink.ch.start();
    const other: Record<string, number> = {};
    for (const [k, n] of after.outcomes) if (k !== "202" && n - (before.outcomes.get(k) ?? 0) > 0) other[k] = n - (before.outcomes.get(k) ?? 0);
    during = {
      ok: (after.outcomes.get("202") ?? 0) - (before.outcomes.get("202") ?? 0),
      other,
      bytes: after.bytes - before.bytes,
      accepted: after.accepted - before.accepted,
      rssBefore,
      rssMax,
      readyz,
      healthz,
    };
    await Bun.sleep(2_000); // load goes on while the spool drains
  } finally {
    await load.stop();
  }

  const drainStart = Date.now();
  const rows = await waitForRows(sink.client, "outage", load.acknowledged().size, { timeoutMs: 90_000, quietMs: 1_500 });
  const drainMs = Date.now() - drainStart;
  const rssAfter = s.rssBytes();
  await (await s.fetch("/readyz")).arrayBuffer(); // refreshes the spool gauges
  const metrics = await (await s.fetch("/metrics")).text();
  const heapUsed = Number(/^process_resident_memory_bytes\s+(\S+)/m.exec(metrics)?.[1] ?? NaN);
  const spoolBytes = /^\w*spool_bytes\S*\s+(\S+)/m.exec(metrics)?.[1] ?? "?";
  const r = await withContext("reconcile", () => reconcile(sink.client, "outage", load));
  const signs = await withContext("session signs", () => badSessionSigns(sink.client, "outage"));
  console.log(
    `[sink-outage] outage ${OUTAGE_MS / 1000} s: ${during.ok} requests answered 202 (${during.accepted} events, ${(during.bytes / MB).toFixed(1)} MB of bodies), ` +
      `other answers ${JSON.stringify(during.other)}; readyz ${during.readyz}, healthz ${during.healthz} during the outage; ` +
      `RSS before ${(during.rssBefore / MB).toFixed(0)} MB, max during ${(during.rssMax / MB).toFixed(0)} MB ` +
      `(growth ${((during.rssMax - during.rssBefore) / MB).toFixed(1)} MB), after drain ${(rssAfter / MB).toFixed(0)} MB (/metrics RSS ${(heapUsed / MB).toFixed(0)} MB); ` +
      `drained in ${drainMs} ms, rows ${rows}, spool bytes after ${spoolBytes}; ${load.summary()}; ` +
      `acknowledged ${r.acknowledged}, stored ${r.stored}, missing ${r.missing.length}, duplicated ${r.duplicated.length}; ` +
      `sessions ${signs.sessions}, bad signs ${signs.bad.length}; ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );

  expect(load.otherDrops).toEqual([]);
  expect(during.other).toEqual({}); // only 202s while the sink was down
  expect(during.accepted).toBeGreaterThan(5_000);
  expect(during.bytes).toBeGreaterThan(10 * MB);
  expect(during.healthz).toBe(200);
  expect(during.readyz).toBe(503);
  expect(during.rssMax - during.rssBefore).toBeLessThan(RSS_GROWTH_LIMIT);
  expectExactlyOnce(r, context, load);
  expect(signs.bad).toEqual([]);
}, 150_000);
