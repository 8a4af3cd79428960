// Concurrent callers with one key share one run: the first starts it, the others await the same
// promise. Per process; across instances Valkey's cached entry does the sharing.

/** A map of in-flight runs by key. */
export class SingleFlight<T> {
  private readonly flights = new Map<string, Promise<T>>();

  /** Runs `fn` unless a run for `key` is in flight, and resolves with that run's result. */
  run(key: string, fn: () => Promise<T>): { promise: Promise<T>; leader: boolean } {
    const existing = this.flights.get(key);
    if (existing) return { promise: existing, leader: false };
    const promise = fn().finally(() => this.flights.delete(key));
    this.flights.set(key, promise);
    return { promise, leader: true };
  }
}
