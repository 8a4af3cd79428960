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
