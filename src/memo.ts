// A bounded least-recently-used map, for the ingest path's pure look-ups that repeat per visitor
// (key hashes, visitor ids, bot checks, countries): a Map iterates in insertion order, so
// re-inserting on a hit keeps the least recently used entry first, where eviction takes it.

/** A Map capped at `max` entries that forgets the least recently used one first. */
export class BoundedMap<K, V> {
  readonly #map = new Map<K, V>();
  constructor(readonly max: number) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError("max must be a positive integer");
  }

  get(key: K): V | undefined {
    const value = this.#map.get(key);
    if (value !== undefined) {
      this.#map.delete(key);
      this.#map.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.#map.delete(key);
    this.#map.set(key, value);
    if (this.#map.size > this.max) this.#map.delete(this.#map.keys().next().value!);
  }

  get size(): number {
    return this.#map.size;
  }
}

/** `fn` remembered for the last `max` distinct string arguments. */
export function memoize<V>(fn: (key: string) => V, max: number): (key: string) => V {
  const cache = new BoundedMap<string, V>(max);
  return (key) => {
    let value = cache.get(key);
    if (value === undefined) {
      value = fn(key);
      cache.set(key, value);
    }
    return value;
  };
}
