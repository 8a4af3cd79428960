// BoundedMap is the LRU behind every memo of the ingest path (key hashes, visitor ids, user
// agents, bot verdicts, countries). Checked against a plain reference model (an array in recency
// order) over random operation sequences, and for the cost that made it a linked list: sets on
// a full map must not slow down as evictions accumulate.
import { describe, expect, test } from "bun:test";
import { BoundedMap, memoize } from "../../src/memo.ts";
import { prng, testSeed } from "../helpers/seed.ts";

describe("BoundedMap", () => {
  test("evicts the least recently used entry; get and set both count as use", () => {
    const m = new BoundedMap<string, number>(2);
    m.set("a", 1);
    m.set("b", 2);
    expect(m.get("a")).toBe(1); // a is now newer than b
    m.set("c", 3); // evicts b
    expect(m.get("b")).toBeUndefined();
    expect(m.get("a")).toBe(1);
    m.set("c", 30); // an update is a use too: a is now the oldest
    m.set("d", 4); // evicts a
    expect(m.get("a")).toBeUndefined();
    expect(m.get("c")).toBe(30);
    expect(m.get("d")).toBe(4);
    expect(m.size).toBe(2);
  });

  test("a bound of one keeps the last key", () => {
    const m = new BoundedMap<string, number>(1);
    m.set("a", 1);
    m.set("b", 2);
    expect(m.get("a")).toBeUndefined();
    expect(m.get("b")).toBe(2);
    m.set("b", 3);
    expect(m.get("b")).toBe(3);
    expect(m.size).toBe(1);
  });

  test("matches a reference LRU over random operations (get, set, peek, delete, clear)", () => {
    const rnd = prng(testSeed("memo", 4242));
    for (let run = 0; run < 50; run++) {
      const max = rnd.int(1, 8);
      const m = new BoundedMap<number, number>(max);
      let model: Array<[number, number]> = []; // oldest first
      for (let step = 0; step < 400; step++) {
        const key = rnd.int(0, 12);
        const op = rnd.next();
        if (op < 0.01) {
          m.clear();
          model = [];
        } else if (op < 0.1) {
          // peek: the value, not counted as a use
          expect(m.peek(key)).toBe(model.find(([k]) => k === key)?.[1]);
        } else if (op < 0.2) {
          const had = model.some(([k]) => k === key);
          model = model.filter(([k]) => k !== key);
          expect(m.delete(key)).toBe(had);
        } else if (op < 0.6) {
          const value = rnd.int(0, 1e6);
          m.set(key, value);
          model = model.filter(([k]) => k !== key);
          model.push([key, value]);
          if (model.length > max) model.shift();
        } else {
          const at = model.findIndex(([k]) => k === key);
          const expected = at === -1 ? undefined : model[at]![1];
          if (at !== -1) model.push(...model.splice(at, 1));
          expect(m.get(key)).toBe(expected);
        }
        expect(m.size).toBe(model.length);
      }
    }
  });

  test("sets on a full map cost the same after many evictions (no walk over deleted entries)", () => {
    const m = new BoundedMap<string, number>(20_000);
    const time = (from: number) => {
      const started = performance.now();
      for (let i = from; i < from + 20_000; i++) m.set(`k${i}`, i);
      return performance.now() - started;
    };
    time(0); // fill
    const early = time(20_000);
    for (let round = 2; round < 10; round++) time(round * 20_000);
    const late = time(10 * 20_000);
    // The old Map-order LRU took ~20× longer per set here once tombstones piled up.
    expect(late).toBeLessThan(Math.max(early * 5, 250));
  });

  test("refuses a bound that is not a positive integer", () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
    expect(() => new BoundedMap(2.5)).toThrow(RangeError);
  });
});

describe("memoize", () => {
  test("calls the function once per remembered argument", () => {
    let calls = 0;
    const f = memoize((s) => (calls++, s.length), 2);
    expect(f("ab")).toBe(2);
    expect(f("ab")).toBe(2);
    expect(calls).toBe(1);
    f("c");
    f("d"); // evicts "ab"
    f("ab");
    expect(calls).toBe(4);
  });
});
