// Crash test (DESIGN.md "Durability: what a 202 means"): under steady load the service is
// SIGKILLed at random moments and restarted on the same port and data dir. Every event id that got
// a 202 must be in ClickHouse exactly once; ids whose request failed are not required, but may be
// resent with the same id (a client retry) and must then still be stored at most once. The
// sessions table must stay consistent: each session's rows collapse to one state (with Valkey, a
// kill between a state commit and its spool write used to leave a cancel row for a state never
// stored; journal-recovery.ts takes such commits back at restart).
import Redis from "ioredis";
import { expect, test } from "bun:test";
import { useSinkFixture } from "../helpers/service-process.ts";
import { freeDbIndex } from "../setup/valkey.ts";
import { badSessionSigns, expectExactlyOnce, Load, reconcile, storedRows } from "./load.ts";

const KILLS = 6;

const sink = useSinkFixture();

/**
 * `whileDown` runs between each kill and the restart (e.g. to make the downtime look longer than
 * it is); it returns a number for the summary line.
 */
async function crashScenario(label: string, serviceId: string, env: Record<string, string>, whileDown?: () => Promise<number>): Promise<void> {
  const started = Date.now();
  const s = await sink.startService({ env });
  const key = await s.createKey({ type: "secret", service_id: serviceId });
  const context = () => `${load.summary()}\nservice log tail:\n${s.logs().slice(-4000)}`;

  const load = new Load({ target: () => s.url, key, workers: 12, maxRequests: 60_000, maxDurationMs: 40_000, retryShare: 0.5, requestTimeoutMs: 5_000 });
  const restarts: number[] = [];
  const ackedAtKill: number[] = [];
  const downEffects: number[] = [];
  const takenBack: number[] = [];
  try {
    for (let i = 0; i < KILLS; i++) {
      await Bun.sleep(700 + Math.random() * 1300); // a random moment under load
      ackedAtKill.push(load.accepted.size);
      load.mark(`SIGKILL ${i + 1}`);
      const exit = await s.kill("SIGKILL");
      load.mark(`killed ${i + 1}`);
      expect(exit.signal).toBe("SIGKILL");
      await Bun.sleep(Math.random() * 200);
      if (whileDown) downEffects.push(await whileDown());
      const t = Date.now();
      await s.start();
      load.mark(`ready ${i + 1}`);
      // What the restart took back (Valkey: journal-recovery.ts logs it before ingest opens).
      const taken = /"msg":"session states whose rows a crash kept from being written were taken back"[^\n]*"rolledBack":(\d+)/.exec(s.logs().split("--- run ").at(-1) ?? "");
      takenBack.push(taken ? Number(taken[1]) : 0);
      restarts.push(Date.now() - t);
    }
    await Bun.sleep(1_500); // load on the last incarnation
  } finally {
    await load.stop();
  }
  // Resend what failed (same ids): the restarted service must recognise what it already stored.
  const retried = await load.flushRetries();

  // Drain: SIGTERM flushes the spool into ClickHouse before the process exits.
  const exit = await s.kill("SIGTERM");
  expect(exit).toEqual({ code: 0, signal: null });

  const r = await reconcile(sink.client, serviceId, load);
  const signs = await badSessionSigns(sink.client, serviceId);
  console.log(
    `[crash ${label}] ${KILLS} kills (acked before each: ${ackedAtKill.join(", ")}), restarts ${restarts.join("/")} ms (session commits taken back: ${takenBack.join("/")})${whileDown ? `, while down: ${downEffects.join("/")}` : ""}; ` +
      `${load.summary()}; final retries ${retried}; acknowledged ${r.acknowledged}, stored ids ${r.stored} ` +
      `(rows ${await storedRows(sink.client, serviceId)}), stored although the request failed ${r.storedButFailed}, ` +
      `missing ${r.missing.length}, duplicated ${r.duplicated.length}; sessions ${signs.sessions}, bad signs ${signs.bad.length}; ` +
      `${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
  expect(load.otherDrops).toEqual([]);
  expect(load.accepted.size).toBeGreaterThan(1_000);
  expectExactlyOnce(r, context, load);
  expect(signs.bad).toEqual([]);
  // 40 visitors, all within one 30-minute stretch: one session each, killed or not (session
  // state and daily salts survive a restart: in Valkey, or rebuilt from ClickHouse and DATA_DIR).
  expect(signs.sessions).toBe(40);
  await s.dispose();
}

test(`in-process state: every 202'd event is stored exactly once across ${KILLS} SIGKILLs under load`, async () => {
  await crashScenario("memory", "crash_mem", {});
}, 120_000);

// Event-id claims live in Valkey and outlive a killed process: a claim the dead process left
// pending (rows not confirmed) would refuse the client's retry (503) until it expired (60 s). The
// restarted instance confirms the ones whose rows are stored and releases the others, so a retry
// of an id whose rows were never written is stored at once, and one whose rows are stored is a
// duplicate. While the service is down the pending claims are counted; once it has drained at the
// end, none may be left.
test(`Valkey state: every 202'd event is stored exactly once across ${KILLS} SIGKILLs under load`, async () => {
  const db = freeDbIndex();
  const redis = new Redis(process.env.TEST_VALKEY_URL!, { db, lazyConnect: true });
  await redis.connect();
  const pendingClaims = async () => {
    let pending = 0;
    let cursor = "0";
    do {
      const [next, keys] = await redis.scan(cursor, "MATCH", "analytics:eid:*", "COUNT", 1000);
      cursor = next;
      if (keys.length === 0) continue;
      const values = await redis.mget(...keys);
      pending += values.filter((v) => v?.startsWith("p")).length;
    } while (cursor !== "0");
    return pending;
  };
  try {
    await crashScenario("valkey", "crash_valkey", { VALKEY_URL: process.env.TEST_VALKEY_URL!, VALKEY_DB: String(db) }, pendingClaims);
    expect(await pendingClaims()).toBe(0);
  } finally {
    redis.disconnect();
  }
}, 120_000);
