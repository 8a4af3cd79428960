// A bounded least-recently-used map, for the ingest path's pure look-ups that repeat per visitor
// (key hashes, visitor ids, bot checks, countries).
//
// Recency is kept in a doubly linked list beside a Map, not by deleting and re-inserting Map
// entries: in Bun (JavaScriptCore) a deleted Map entry leaves a tombstone that iteration skips, so
// "evict the first key" (keys().next()) walked past every entry deleted since the last rehash —
// measured at ~33 µs per set on a full 50k-entry map, 31% of the JS thread under batch ingest.
// Here a hit moves a node (no Map write) and an eviction deletes the list's tail by key.

interface Node<K, V> {
  key: K;
  value: V;
  /** Toward the most recently used end. */
  newer: Node<K, V> | undefined;
  /** Toward the least recently used end. */
  older: Node<K, V> | undefined;
}

/** A Map capped at `max` entries that forgets the least recently used one first. */
export class BoundedMap<K, V> {
  readonly #map = new Map<K, Node<K, V>>();
  #newest: Node<K, V> | undefined;
  #oldest: Node<K, V> | undefined;

  /** `onEvict` hears of every entry pushed out by the cap or by evictOldest (not of delete/clear). */
  constructor(readonly max: number, private readonly onEvict?: (key: K, value: V) => void) {
    if (!Number.isInteger(max) || max < 1) throw new RangeError("max must be a positive integer");
  }

  get(key: K): V | undefined {
    const node = this.#map.get(key);
    if (node === undefined) return undefined;
    this.#touch(node);
    return node.value;
  }

  set(key: K, value: V): void {
    const node = this.#map.get(key);
    if (node !== undefined) {
      node.value = value;
      this.#touch(node);
      return;
    }
    const added: Node<K, V> = { key, value, newer: undefined, older: this.#newest };
    if (this.#newest) this.#newest.newer = added;
    this.#newest = added;
    this.#oldest ??= added;
    this.#map.set(key, added);
    if (this.#map.size > this.max) this.evictOldest();
  }

  /** Forgets the least recently used entry (none when empty); returns whether there was one. */
  evictOldest(): boolean {
    const evicted = this.#oldest;
    if (evicted === undefined) return false;
    this.delete(evicted.key);
    this.onEvict?.(evicted.key, evicted.value);
    return true;
  }

  /** The value without counting as a use. */
  peek(key: K): V | undefined {
    return this.#map.get(key)?.value;
  }

  delete(key: K): boolean {
    const node = this.#map.get(key);
    if (node === undefined) return false;
    if (node.newer) node.newer.older = node.older;
    else this.#newest = node.older;
    if (node.older) node.older.newer = node.newer;
    else this.#oldest = node.newer;
    this.#map.delete(key);
    return true;
  }

  clear(): void {
    this.#map.clear();
    this.#newest = undefined;
    this.#oldest = undefined;
  }

  get size(): number {
    return this.#map.size;
  }

  /** Makes `node` the most recently used. */
  #touch(node: Node<K, V>): void {
    if (node === this.#newest) return;
    // Unlink (node has a newer neighbour, since it is not the newest).
    node.newer!.older = node.older;
    if (node.older) node.older.newer = node.newer;
    else this.#oldest = node.newer;
    // Link at the newest end.
    node.older = this.#newest;
    node.newer = undefined;
    this.#newest!.newer = node;
    this.#newest = node;
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
