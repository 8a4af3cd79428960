// With Valkey, a request's session state is committed before its rows are written; a crash in
// between used to leave Valkey one state ahead of ClickHouse, and the session's next item wrote a
// cancel row for a state never stored (two live versions of the session). These tests crash the
// write on purpose (fault injection: a writer whose write never returns, standing for a process
// killed before its spool write) and restart with journal recovery, against the real Valkey and
// the real schema on the embedded ClickHouse. tests/durability/crash.test.ts does the same with
// SIGKILL under load.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import { ClaimPendingError, memoryDedup, valkeyDedup, type EventDedup } from "../../src/ingest/dedup.ts";
import { ingestItems, type IngestorDeps, type RowWriter } from "../../src/ingest/ingestor.ts";
import { recoverJournal, storedStates } from "../../src/ingest/sessions/journal-recovery.ts";
import { Sessionizer } from "../../src/ingest/sessions/sessionizer.ts";
import { ApiError } from "../../src/errors.ts";
import { valkeyStateStore, type JournaledStateStore } from "../../src/ingest/sessions/state-store.ts";
import { createMetrics } from "../../src/ops/metrics.ts";
import { insertRecords } from "../../src/storage/insert-rows.ts";
import { storedClaims } from "../../src/ingest/stored-ids.ts";
import { openWhenWarm, WARM_MARKER } from "../../src/ingest/warm-up.ts";
import { createAnalyticsDb, type AnalyticsDb } from "../query/fixtures/analytics-db.ts";
import { freeDbIndex, freeDbPrefix } from "../setup/valkey.ts";

let db: AnalyticsDb;
const clients: Redis[] = [];
beforeAll(async () => {
  db = await createAnalyticsDb("journal");
});
afterAll(async () => {
  for (const c of clients) c.disconnect();
  await db.close();
});

/** One "process": its own connection and store, on a shared Valkey prefix and journal. */
function instance(prefix: string, journal: string | undefined): JournaledStateStore {
  const redis = new Redis(process.env.TEST_VALKEY_URL!);
  clients.push(redis);
  return valkeyStateStore(redis, prefix, { journal });
}

/** Rows straight into ClickHouse; `crashed` stands for a process killed before its write. */
function writer(crashed = false): RowWriter {
  return {
    assertRoom() {},
    write: (records) => (crashed ? new Promise<void>(() => {}) : insertRecords(db.client, records).then(() => undefined)),
  };
}

/**
 * One Sessionizer per store, as the service has one per process: a journal entry is named by the
 * time and its Sessionizer's counter, so two Sessionizers on one journal could name two commits
 * alike within a millisecond (a CI run lost one of three entries so).
 */
const sessionizers = new WeakMap<JournaledStateStore, Sessionizer>();
function deps(store: JournaledStateStore, w: RowWriter, dedup: EventDedup = memoryDedup()): IngestorDeps {
  let sessionizer = sessionizers.get(store);
  if (!sessionizer) sessionizers.set(store, (sessionizer = new Sessionizer(store)));
  return { sessionizer, dedup, writer: w, metrics: createMetrics(), hashVisitor: () => "visitor", lookupCountry: () => null };
}

const now = Date.now();
let seq = 0;
function item(service: string, visitor: string, name: string) {
  return { type: "event", name, event_id: crypto.randomUUID(), timestamp: now - 600_000 + ++seq * 1000, anonymous_id: visitor, ip: "8.8.8.8", user_agent: "Mozilla/5.0 (X11; Linux x86_64) Firefox/125.0" };
}
const ctx = (service: string) => ({ serviceId: service, keyType: "secret" as const, headers: new Headers(), socketIp: "8.8.8.8", receivedAt: now, trustProxy: false });

/** (version, net sign) of each version of the service's sessions whose rows do not cancel out. */
async function liveVersions(service: string): Promise<Array<[number, number]>> {
  const rows = await (await db.client.query({
    query: "SELECT version, toInt64(sum(sign)) AS n FROM sessions WHERE service_id = {s:String} GROUP BY version HAVING n != 0 ORDER BY version",
    query_params: { s: service },
    format: "JSONEachRow",
  })).json<{ version: number; n: number }>();
  return rows.map((r) => [Number(r.version), Number(r.n)]);
}

/** A session's state version in Valkey (through a fresh load). */
async function versionIn(store: JournaledStateStore, service: string, sessionId: string): Promise<number | undefined> {
  const got = await store.load([`s:${service}:${sessionId}`]);
  return (got.get(`s:${service}:${sessionId}`)?.value as { version?: number } | undefined)?.version;
}

/** A service's sign-weighted (events, items) over its session rows. */
async function sums(service: string): Promise<[number, number]> {
  const [row] = await (await db.client.query({
    query: "SELECT toInt64(sum(sign * events)) AS events, toInt64(sum(sign * items)) AS items FROM sessions WHERE service_id = {s:String}",
    query_params: { s: service },
    format: "JSONEachRow",
  })).json<{ events: number; items: number }>();
  return [Number(row!.events), Number(row!.items)];
}

const recover = (store: JournaledStateStore) => recoverJournal(store, (refs) => storedStates(db.client, refs));
const settled = () => Bun.sleep(50); // the ingestor settles a written commit without waiting for it

describe("journal recovery (Valkey; fault injected: a writer that never returns stands for a crash)", () => {
  test("a commit whose rows were never written is taken back at restart; the next item builds on the stored state", async () => {
    const service = "journal_back";
    const prefix = `${freeDbPrefix()}:`;
    const journal = `${prefix}journal:a`;
    const before = instance(prefix, journal);
    const first = await ingestItems(deps(before, writer()), ctx(service), [item(service, "v1", "a")]);
    await settled();
    const sessionId = first.session_ids[0]!;
    // The "crash": the state is committed (version 2), its rows never written.
    void ingestItems(deps(before, writer(true)), ctx(service), [item(service, "v1", "b")]);
    await Bun.sleep(100);
    expect(await versionIn(before, service, sessionId)).toBe(2);
    expect(await liveVersions(service)).toEqual([[1, 1]]);

    const after = instance(prefix, journal); // the restarted process: same data dir, same journal
    expect(await after.journaled()).toHaveLength(1);
    expect(await recover(after)).toEqual({ entries: 1, rolledBack: 1, builtOn: 0 });
    expect(await versionIn(after, service, sessionId)).toBe(1);
    expect(await after.journaled()).toEqual([]);

    const next = await ingestItems(deps(after, writer()), ctx(service), [item(service, "v1", "c")]);
    expect(next.session_ids).toEqual([sessionId]);
    // Version 1 cancelled by the next state, version 2: one live state (without recovery, the
    // cancel row would name version 2 and leave versions 1 and 3 live).
    expect(await liveVersions(service)).toEqual([[2, 1]]);
    const [row] = await (await db.client.query({
      query: "SELECT toInt64(sum(sign * events)) AS events, toInt64(sum(sign * items)) AS items FROM sessions WHERE service_id = {s:String}",
      query_params: { s: service },
      format: "JSONEachRow",
    })).json<{ events: number; items: number }>();
    expect([Number(row!.events), Number(row!.items)]).toEqual([2, 2]);
  });

  test("a commit whose rows were written but whose entry was not settled (a crash right after the write) is kept", async () => {
    const service = "journal_kept";
    const prefix = `${freeDbPrefix()}:`;
    const journal = `${prefix}journal:a`;
    const before = instance(prefix, journal);
    const neverSettles: JournaledStateStore = { ...before, settle: async () => {} };
    const first = await ingestItems(deps(neverSettles, writer()), ctx(service), [item(service, "v2", "a")]);
    await ingestItems(deps(neverSettles, writer()), ctx(service), [item(service, "v2", "b")]);
    expect(await before.journaled()).toHaveLength(2);

    const after = instance(prefix, journal);
    expect(await recover(after)).toEqual({ entries: 2, rolledBack: 0, builtOn: 1 });
    expect(await versionIn(after, service, first.session_ids[0]!)).toBe(2);
    expect(await after.journaled()).toEqual([]);
  });

  test("a chain of unwritten commits goes back newest first, to the last written state", async () => {
    const service = "journal_chain";
    const prefix = `${freeDbPrefix()}:`;
    const journal = `${prefix}journal:a`;
    const before = instance(prefix, journal);
    const first = await ingestItems(deps(before, writer()), ctx(service), [item(service, "v3", "a")]);
    await settled();
    for (const name of ["b", "c", "d"]) void ingestItems(deps(before, writer(true)), ctx(service), [item(service, "v3", name)]);
    await Bun.sleep(150);
    const sessionId = first.session_ids[0]!;
    expect(await versionIn(before, service, sessionId)).toBe(4);

    const after = instance(prefix, journal);
    expect(await recover(after)).toEqual({ entries: 3, rolledBack: 3, builtOn: 0 });
    expect(await versionIn(after, service, sessionId)).toBe(1);
  });

  test("another instance does not build on an unwritten commit: refused with 503 until the restarted instance took it back, then it builds on the stored state", async () => {
    const service = "journal_other";
    const { prefix, journal, sessionId } = await crashedMidCommit(service);
    const other = instance(prefix, `${prefix}journal:b`);
    const otherDeps = { ...deps(other, writer()), sessionizer: new Sessionizer(other, undefined, undefined, 200) };
    const refused = await ingestItems(otherDeps, ctx(service), [item(service, "v4", "c")]).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).code).toBe("unavailable");
    expect(await versionIn(other, service, sessionId)).toBe(2); // nothing built on it

    const after = instance(prefix, journal);
    expect(await recover(after)).toEqual({ entries: 1, rolledBack: 1, builtOn: 0 });
    const retried = await ingestItems(otherDeps, ctx(service), [item(service, "v4", "c")]);
    expect(retried.session_ids).toEqual([sessionId]);
    // Version 1 (stored) cancelled by version 2 holding a and c: one live state, two events.
    expect(await liveVersions(service)).toEqual([[2, 1]]);
    expect(await sums(service)).toEqual([2, 2]);
  });

  test("while the instance that wrote it lives, another instance waits for its commit to settle and builds on it", async () => {
    const service = "journal_wait";
    const prefix = `${freeDbPrefix()}:`;
    const a = instance(prefix, `${prefix}journal:a`);
    const b = instance(prefix, `${prefix}journal:b`);
    const first = await ingestItems(deps(a, writer()), ctx(service), [item(service, "v7", "a")]);
    await settled();
    const slow: RowWriter = { assertRoom() {}, write: async (records) => (await Bun.sleep(300), await insertRecords(db.client, records), undefined) };
    const pending = ingestItems(deps(a, slow), ctx(service), [item(service, "v7", "b")]);
    await Bun.sleep(50);
    const startedAt = performance.now();
    const next = await ingestItems(deps(b, writer()), ctx(service), [item(service, "v7", "c")]);
    expect(performance.now() - startedAt).toBeGreaterThan(150); // it waited for a's write
    await pending;
    expect(next.session_ids).toEqual(first.session_ids);
    expect(await liveVersions(service)).toEqual([[3, 1]]);
    expect(await sums(service)).toEqual([3, 3]);
  });

  test("past the pending age (its instance taken for gone), another instance builds on it; the restart leaves it and counts it: the README's limit", async () => {
    const service = "journal_changed";
    const { prefix, journal, sessionId } = await crashedMidCommit(service);
    const other = valkeyStateStore(clients[clients.push(new Redis(process.env.TEST_VALKEY_URL!)) - 1]!, prefix, { journal: `${prefix}journal:b`, pendingMaxAgeMs: 50 });
    await ingestItems(deps(other, writer()), ctx(service), [item(service, "v4", "c")]);
    expect(await versionIn(other, service, sessionId)).toBe(3);

    const after = instance(prefix, journal);
    expect(await recover(after)).toEqual({ entries: 1, rolledBack: 0, builtOn: 1 });
    expect(await versionIn(after, service, sessionId)).toBe(3);
    expect(await after.journaled()).toEqual([]);
  });
});

/**
 * An instance (journal `a`) that stored visitor v4's first item, then committed its second item's
 * state and "crashed" before the rows were written (a writer that fails): the commit stays in
 * its journal, unsettled.
 */
async function crashedMidCommit(service: string): Promise<{ prefix: string; journal: string; sessionId: string }> {
  const prefix = `${freeDbPrefix()}:`;
  const journal = `${prefix}journal:a`;
  const before = instance(prefix, journal);
  const first = await ingestItems(deps(before, writer()), ctx(service), [item(service, "v4", "a")]);
  await settled();
  void ingestItems(deps(before, writer(true)), ctx(service), [item(service, "v4", "b")]);
  await Bun.sleep(100);
  return { prefix, journal, sessionId: first.session_ids[0]! };
}

/** A client on a Valkey database of its own (the marker is global to it), with or without the marker. */
async function markerClient(marker: boolean): Promise<Redis> {
  const redis = new Redis(process.env.TEST_VALKEY_URL!, { db: freeDbIndex() });
  clients.push(redis);
  if (marker) await redis.set(WARM_MARKER, "set");
  else await redis.del(WARM_MARKER);
  return redis;
}

async function untilReady(warmth: { ready(): boolean }): Promise<void> {
  for (let i = 0; i < 100 && !warmth.ready(); i++) await Bun.sleep(20);
}

describe("openWhenWarm with Valkey: ingest waits for journal recovery", () => {
  test("not ready while recovery fails (ClickHouse not answering), ready once a retry succeeds", async () => {
    const redis = await markerClient(true); // Valkey holds state: no rebuild, only the recovery
    let attempts = 0;
    const errors: unknown[] = [];
    const warmth = await openWhenWarm({
      redis,
      warm: async () => {
        throw new Error("no rebuild expected: the marker is set");
      },
      recover: async () => {
        if (++attempts < 3) throw new Error("injected: ClickHouse not answering");
      },
      onError: (err) => errors.push(err),
      retryMs: 50,
    });
    try {
      expect(warmth.ready()).toBe(false);
      await untilReady(warmth);
      expect(warmth.ready()).toBe(true);
      expect(attempts).toBe(3);
      expect(errors.map(String)).toEqual(["Error: injected: ClickHouse not answering", "Error: injected: ClickHouse not answering"]);
      await Bun.sleep(150); // later checks do not run the recovery again
      expect(attempts).toBe(3);
    } finally {
      warmth.stop();
      await redis.del(WARM_MARKER);
    }
  });
});

describe("openWhenWarm with Valkey: a reconnect checks the marker at once", () => {
  // The durability audit restarted Valkey empty: items in the seconds before the 5-second check
  // were placed on an empty state and split running visits.
  test("after the client connects again, items wait for the check, and a missing marker rebuilds before the next interval", async () => {
    const redis = await markerClient(true);
    let rebuilds = 0;
    const warmth = await openWhenWarm({
      redis,
      warm: async () => {
        rebuilds++;
        await Bun.sleep(100);
      },
      onError: () => undefined,
      retryMs: 600_000, // the timed check never runs during the test
    });
    try {
      expect([warmth.ready(), rebuilds]).toEqual([true, 0]);
      await redis.del(WARM_MARKER); // Valkey restarted without its data...
      const readyAtReconnect = new Promise<boolean>((resolve) => redis.once("ready", () => resolve(warmth.ready())));
      redis.disconnect(true); // ...and the client connects again
      expect(await readyAtReconnect).toBe(false);
      await untilReady(warmth);
      expect([warmth.ready(), rebuilds, await redis.exists(WARM_MARKER)]).toEqual([true, 1, 1]);
      // With the marker there, a reconnect is a check only.
      const again = new Promise<void>((resolve) => redis.once("ready", () => resolve()));
      redis.disconnect(true);
      await again;
      await untilReady(warmth);
      expect([warmth.ready(), rebuilds]).toEqual([true, 1]);
    } finally {
      warmth.stop();
      await redis.del(WARM_MARKER);
    }
  });
});

describe("openWhenWarm with Valkey: a reconnect during a rebuild", () => {
  test("the rebuild it overtook sets no marker and another rebuild runs; ready only after that one", async () => {
    const redis = await markerClient(false); // Valkey holds no state: the start rebuilds
    let rebuilds = 0;
    let markerSeenByASecondRebuild: number | undefined;
    const opening = openWhenWarm({
      redis,
      warm: async () => {
        if (++rebuilds === 2) {
          markerSeenByASecondRebuild = await redis.exists(WARM_MARKER);
          return;
        }
        // Valkey goes away (and comes back) while the first rebuild runs.
        const back = new Promise<void>((resolve) => redis.once("ready", () => resolve()));
        redis.disconnect(true);
        await back;
      },
      onError: () => undefined,
      retryMs: 600_000,
    });
    const warmth = await opening;
    try {
      await untilReady(warmth);
      expect([warmth.ready(), rebuilds, markerSeenByASecondRebuild, await redis.exists(WARM_MARKER)]).toEqual([true, 2, 0, 1]);
    } finally {
      warmth.stop();
      await redis.del(WARM_MARKER);
    }
  });
});

describe("event-id claims a crash left pending (Valkey; fault injected: a write or a confirm that never returns)", () => {
  test("the restarted instance confirms the claims whose rows are stored and releases the others; another instance's claims are not touched", async () => {
    const service = "claims_back";
    const prefix = `${freeDbPrefix()}:`;
    const redis = new Redis(process.env.TEST_VALKEY_URL!);
    clients.push(redis);
    const owner = { id: "instance-x", journal: `${prefix}claims:x` };
    const dedupOf = (o: { id: string; journal: string }) => valkeyDedup(redis, { prefix: `${prefix}eid:`, owner: o });
    const store = instance(prefix, `${prefix}journal:x`);
    const written = item(service, "v5", "written"); // rows written, the process killed before its confirm
    const cutOff = item(service, "v6", "cut-off"); // the process killed before the write
    const x = dedupOf(owner);
    void ingestItems(deps(store, writer(), { ...x, confirm: () => new Promise<void>(() => {}) }), ctx(service), [written]);
    void ingestItems(deps(store, writer(true), x), ctx(service), [cutOff]);
    await Bun.sleep(200);
    const other = dedupOf({ id: "instance-y", journal: `${prefix}claims:y` });
    const keyOf = (i: { event_id: string }) => `${service}:${i.event_id}`;
    const theirs = `${service}:${crypto.randomUUID()}`;
    expect(await other.claim([theirs])).toEqual([true]); // pending, instance y's
    // Before the restart, a retry through another instance waits: both claims are pending.
    expect(await other.claim([keyOf(written)]).catch((e: unknown) => e)).toBeInstanceOf(ClaimPendingError);
    expect(await other.claim([keyOf(cutOff)]).catch((e: unknown) => e)).toBeInstanceOf(ClaimPendingError);

    const restarted = dedupOf(owner);
    expect(await restarted.recoverClaims((claims) => storedClaims(db.client, claims))).toEqual({ pending: 2, confirmed: 1, released: 1 });
    expect(await redis.hlen(owner.journal)).toBe(0);
    // The stored one is a duplicate now, the cut-off one new; y's claim is still pending.
    expect(await other.claim([keyOf(written), keyOf(cutOff)])).toEqual([false, true]);
    expect(await restarted.claim([theirs]).catch((e: unknown) => e)).toBeInstanceOf(ClaimPendingError);
  });
});
