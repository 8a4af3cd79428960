// The in-process session state store shares stored values with every later reader (its
// compare-and-set compares identities), so what it stores can no longer change.
import { expect, test } from "bun:test";
import { memoryStateStore } from "../../src/ingest/sessions/state-store.ts";

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
