// The in-process dedup: ids within the window and within the cap are duplicates; released ids are
// new again; past the cap the oldest generation is forgotten, the newest half always remembered.
import { expect, test } from "bun:test";
import { memoryDedup } from "../../src/ingest/dedup.ts";

test("a claimed id is a duplicate until the window passes; a released one is new again", async () => {
  let t = 1_000;
  const d = memoryDedup({ windowMs: 100, now: () => t });
  expect(await d.claim(["a", "b", "a"])).toEqual([true, true, false]);
  expect(await d.claim(["a", "c"])).toEqual([false, true]);
  await d.release(["c"]);
  expect(await d.claim(["c"])).toEqual([true]);
  t += 100;
  expect(await d.claim(["a", "b"])).toEqual([true, true]);
});

test("remembered ids (warm-up) are duplicates and are not counted twice", async () => {
  const d = memoryDedup();
  await d.remember(["x", "y", "x"]);
  expect(d.size()).toBe(2);
  expect(await d.claim(["x", "y", "z"])).toEqual([false, false, true]);
});

test("past the cap the oldest ids go, a generation at a time; the newest half stays", async () => {
  const d = memoryDedup({ maxEntries: 1000 });
  const ids = Array.from({ length: 5000 }, (_, i) => `id-${i}`);
  for (const id of ids) expect(await d.claim([id])).toEqual([true]);
  expect(d.size()).toBeLessThanOrEqual(1000);
  expect(d.size()).toBeGreaterThanOrEqual(500);
  // The newest 500 are always remembered; the first ones were forgotten.
  expect(await d.claim(ids.slice(-500))).toEqual(Array(500).fill(false));
  expect(await d.claim(["id-0"])).toEqual([true]);
});
