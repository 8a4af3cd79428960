// The in-process session state store shares stored values with every later reader (its
// compare-and-set compares identities), so what it stores can no longer change. Both stores'
// `seed`, which a warm-up writes through.
import { afterAll, describe, expect, test } from "bun:test";
import Redis from "ioredis";
import { mergeSpans } from "../../src/ingest/sessions/session-state.ts";
import { memoryStateStore, type StateStore, valkeyStateStore } from "../../src/ingest/sessions/state-store.ts";
import { freeDbPrefix, valkeyUrl } from "../setup/valkey.ts";

const redis = new Redis(valkeyUrl(), { lazyConnect: false });
afterAll(() => redis.disconnect());

test("a committed value is frozen, nested objects too: a later mutation throws", async () => {
  const store = memoryStateStore();
  const next = { session_id: "s1", items: 1, attrs: { device: "mobile" } };
  expect(await store.commit([{ key: "k", expected: null, next }], 60_000)).toBe(true);
  const loaded = (await store.load(["k"])).get("k") as { value: typeof next } | null;
  expect(loaded?.value).toBe(next);
  expect(() => {
    next.items = 2;
  }).toThrow(TypeError);
  expect(() => {
    next.attrs.device = "desktop";
  }).toThrow(TypeError);
  expect(loaded?.value).toEqual({ session_id: "s1", items: 1, attrs: { device: "mobile" } });
});

test("the cap's evictions of entries that had not expired are told; expired ones are not", async () => {
  let now = 1_000;
  let evicted = 0;
  const store = memoryStateStore({ maxEntries: 2, now: () => now, onEvicted: () => evicted++ });
  for (const key of ["a", "b", "c"]) expect(await store.commit([{ key, expected: null, next: { key } }], 60_000)).toBe(true);
  expect([store.size(), evicted]).toEqual([2, 1]); // "a" went, 60 s before its time
  now += 60_000; // "b" and "c" have expired
  for (const key of ["d", "e"]) expect(await store.commit([{ key, expected: null, next: { key } }], 60_000)).toBe(true);
  expect([store.size(), evicted]).toEqual([2, 1]);
});

// seed: what a warm-up uses to put back state where live writers have not written since.
const stores: Array<[string, () => StateStore]> = [
  ["memory", () => memoryStateStore()],
  ["valkey", () => valkeyStateStore(redis, `${freeDbPrefix()}:`)],
];

test.each(stores)("seed writes the absent keys only, leaves the present ones as they are, and says how many it wrote (%s store)", async (_name, makeStore) => {
  const store = makeStore();
  expect(await store.commit([{ key: "live", expected: null, next: { v: "live" } }], 60_000)).toBe(true);
  const written = await store.seed([{ key: "live", value: { v: "seed" } }, { key: "a", value: { v: "a", nested: { n: 1 } } }, { key: "b", value: [{ id: "s" }] }], 60_000);
  expect(written).toBe(2);
  const loaded = await store.load(["live", "a", "b", "c"]);
  expect([...loaded.entries()].map(([k, s]) => [k, s?.value ?? null])).toEqual([
    ["live", { v: "live" }], ["a", { v: "a", nested: { n: 1 } }], ["b", [{ id: "s" }]], ["c", null],
  ]);
  // A seeded value takes part in compare-and-set like a committed one.
  expect(await store.commit([{ key: "a", expected: loaded.get("a")!, next: { v: "a2" } }], 60_000)).toBe(true);
  expect((await store.load(["a"])).get("a")?.value).toEqual({ v: "a2" });
});

test.each(stores)("seed with merge: a present key gets what merge makes of it, an absent one the value, undefined leaves it (%s store)", async (_name, makeStore) => {
  const store = makeStore();
  for (const [key, next] of [["live", [1, 2]], ["kept", [7]]] as const) expect(await store.commit([{ key, expected: null, next }], 60_000)).toBe(true);
  const union = (seeded: number[]) => (present: unknown) => [...new Set([...(present as number[]), ...seeded])];
  const written = await store.seed([
    { key: "live", value: [2, 3], merge: union([2, 3]) },
    { key: "absent", value: [4], merge: union([4]) },
    { key: "kept", value: [8], merge: () => undefined },
  ], 60_000);
  expect(written).toBe(2);
  const loaded = await store.load(["live", "absent", "kept"]);
  expect([...loaded.values()].map((v) => v?.value)).toEqual([[1, 2, 3], [4], [7]]);
  // The merged value is the stored one: a compare-and-set against it goes through.
  expect(await store.commit([{ key: "live", expected: loaded.get("live")!, next: [9] }], 60_000)).toBe(true);
});

test("mergeSpans: the live spans win over rebuilt ones of the same session, newest first", () => {
  const live = [{ id: "g", first: 100, last: 200, at: 5 }, { id: "s1", first: 10, last: 60, at: 5 }];
  const rebuilt = [{ id: "s1", first: 10, last: 50, at: 1 }, { id: "s0", first: 0, last: 5, at: 1 }, { id: "s2", first: 70, last: 90, at: 1 }];
  expect(mergeSpans(live, rebuilt)).toEqual([live[0]!, rebuilt[2]!, live[1]!, rebuilt[1]!]);
  expect(mergeSpans([], rebuilt).map((s) => s.id)).toEqual(["s2", "s1", "s0"]);
});

test("seed in process: values are frozen and expire after the TTL like committed ones", async () => {
  let now = 1_000;
  const store = memoryStateStore({ now: () => now });
  const value = { items: 1, attrs: { device: "mobile" } };
  expect(await store.seed([{ key: "k", value }], 60_000)).toBe(1);
  expect(() => {
    value.attrs.device = "desktop";
  }).toThrow(TypeError);
  now += 59_999;
  expect((await store.load(["k"])).get("k")?.value).toBe(value);
  now += 1;
  expect((await store.load(["k"])).get("k")).toBeNull();
  expect(await store.seed([{ key: "k", value: { items: 2 } }], 60_000)).toBe(1); // expired counts as absent
});

test("seed in Valkey sets the TTL it is given", async () => {
  const prefix = `${freeDbPrefix()}:`;
  const store = valkeyStateStore(redis, prefix);
  expect(await store.seed([{ key: "t", value: { x: 1 } }], 60_000)).toBe(1);
  const ttl = await redis.pttl(`${prefix}t`);
  expect(ttl).toBeGreaterThan(55_000);
  expect(ttl).toBeLessThanOrEqual(60_000);
});

// Several instances share Valkey. A journaled commit names itself in the values it writes, so
// another instance does not build on a state whose rows may not be written yet (the instance that
// wrote it could stop before its spool write): see PENDING_CHECK in state-store.ts.
describe("an unsettled commit of another instance (Valkey, journaled)", () => {
  const journalName = (ms: number, n: number) => `${String(ms).padStart(15, "0")}-${String(n).padStart(12, "0")}`;
  const pair = (maxAgeMs?: number) => {
    const prefix = `${freeDbPrefix()}:`;
    const a = valkeyStateStore(redis, prefix, { journal: `${prefix}journal:a`, pendingMaxAgeMs: maxAgeMs });
    const b = valkeyStateStore(redis, prefix, { journal: `${prefix}journal:b`, pendingMaxAgeMs: maxAgeMs });
    return { prefix, a, b };
  };

  test("is 'pending' to the other instance until settled, then built on; loads see the value without its tag", async () => {
    const { a, b } = pair();
    const first = journalName(Date.now(), 1);
    expect(await a.commit([{ key: "s", expected: null, next: { version: 1 } }], 60_000, first)).toBe(true);
    const seen = (await b.load(["s"])).get("s")!;
    expect(seen.value).toEqual({ version: 1 });
    const next = [{ key: "s", expected: seen, next: { version: 2 } }];
    expect(await b.commit(next, 60_000, journalName(Date.now(), 1))).toBe("pending");
    expect((await b.load(["s"])).get("s")!.value).toEqual({ version: 1 }); // nothing written
    await a.settle(first);
    expect(await b.commit(next, 60_000, journalName(Date.now(), 2))).toBe(true);
    expect((await a.load(["s"])).get("s")!.value).toEqual({ version: 2 });
  });

  test("its own instance builds on it at once (a restart takes a chain back newest first)", async () => {
    const { prefix, a } = pair();
    expect(await a.commit([{ key: "s", expected: null, next: { version: 1 } }], 60_000, journalName(Date.now(), 1))).toBe(true);
    const again = valkeyStateStore(redis, prefix, { journal: `${prefix}journal:a` }); // the same instance, another connection's view
    const seen = (await again.load(["s"])).get("s")!;
    expect(await again.commit([{ key: "s", expected: seen, next: { version: 2 } }], 60_000, journalName(Date.now(), 2))).toBe(true);
  });

  test("older than the pending age, it is built on (its instance taken for gone)", async () => {
    const { a, b } = pair(1_000);
    const old = journalName(Date.now() - 5_000, 1);
    expect(await a.commit([{ key: "s", expected: null, next: { version: 1 } }], 60_000, old)).toBe(true);
    const seen = (await b.load(["s"])).get("s")!;
    expect(await b.commit([{ key: "s", expected: seen, next: { version: 2 } }], 60_000, journalName(Date.now(), 1))).toBe(true);
  });

  test("fault injected (a settle that gets no answer): it is tried again, and the other instance builds on the state then", async () => {
    const prefix = `${freeDbPrefix()}:`;
    let failNext = true;
    const flaky = new Proxy(redis, {
      get(target, name, receiver) {
        if (name !== "hdel" || !failNext) return Reflect.get(target, name, receiver);
        failNext = false;
        return async () => {
          throw new Error("Connection is closed."); // as ioredis answers while Valkey is away
        };
      },
    });
    const a = valkeyStateStore(flaky, prefix, { journal: `${prefix}journal:a` });
    const b = valkeyStateStore(redis, prefix, { journal: `${prefix}journal:b` });
    const first = journalName(Date.now(), 1);
    expect(await a.commit([{ key: "s", expected: null, next: { version: 1 } }], 60_000, first)).toBe(true);
    await expect(a.settle(first)).rejects.toThrow("Connection is closed.");
    const next = [{ key: "s", expected: (await b.load(["s"])).get("s")!, next: { version: 2 } }];
    expect(await b.commit(next, 60_000, journalName(Date.now(), 1))).toBe("pending");
    await Bun.sleep(700); // past the retry (every 0.5 s)
    expect(await redis.hexists(`${prefix}journal:a`, first)).toBe(0);
    expect(await b.commit(next, 60_000, journalName(Date.now(), 2))).toBe(true);
  });

  test("a warm-up's seed merges with a tagged value as with its JSON", async () => {
    const { a } = pair();
    expect(await a.commit([{ key: "s", expected: null, next: { spans: [1] } }], 60_000, journalName(Date.now(), 1))).toBe(true);
    expect(await a.seed([{ key: "s", value: { spans: [0] }, merge: (present) => present }], 60_000)).toBe(0); // unchanged: not written
    expect(await a.seed([{ key: "s", value: { spans: [0] }, merge: (present) => ({ spans: [...(present as { spans: number[] }).spans, 2] }) }], 60_000)).toBe(1);
    expect((await a.load(["s"])).get("s")!.value).toEqual({ spans: [1, 2] });
  });

  test("a key that changed since the load is 'changed' (false), not 'pending'", async () => {
    const { a, b } = pair();
    expect(await a.commit([{ key: "s", expected: null, next: { version: 1 } }], 60_000, journalName(Date.now(), 1))).toBe(true);
    expect(await b.commit([{ key: "s", expected: null, next: { version: 1 } }], 60_000, journalName(Date.now(), 1))).toBe(false);
  });
});
