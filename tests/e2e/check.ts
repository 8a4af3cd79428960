// Comparison helpers for the end-to-end property test: a deep comparison that lists every
// difference (not just the first), canonical orders for lists whose tie order API.md leaves
// open, and one-to-one maps for ids the service makes up (visitor hashes, server session ids).

/** Collects differences; a test asserts the list is empty and prints the first ones. */
export class Diffs {
  readonly list: string[] = [];
  private dropped = 0;

  add(message: string): void {
    if (this.list.length < 150) this.list.push(message);
    else this.dropped++;
  }

  get count(): number {
    return this.list.length + this.dropped;
  }

  /** Compares `actual` with `expected` field by field; integers exactly, other numbers within 1e-9. */
  compare(where: string, expected: unknown, actual: unknown): void {
    if (typeof expected === "number" && typeof actual === "number") {
      const same = Number.isInteger(expected) && Number.isInteger(actual)
        ? expected === actual
        : Math.abs(expected - actual) <= 1e-9 * Math.max(1, Math.abs(expected));
      if (!same) this.add(`${where}: expected ${expected}, got ${actual}`);
      return;
    }
    if (expected === null || actual === null || typeof expected !== "object" || typeof actual !== "object") {
      if (expected !== actual) this.add(`${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
      return;
    }
    if (Array.isArray(expected) || Array.isArray(actual)) {
      if (!Array.isArray(expected) || !Array.isArray(actual)) {
        this.add(`${where}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
        return;
      }
      if (expected.length !== actual.length) {
        this.add(`${where}: expected ${expected.length} rows, got ${actual.length}` + `\n      expected ${short(expected)}\n      got      ${short(actual)}`);
      }
      const n = Math.min(expected.length, actual.length);
      for (let i = 0; i < n; i++) this.compare(`${where}[${i}]`, expected[i], actual[i]);
      return;
    }
    const e = expected as Record<string, unknown>;
    const a = actual as Record<string, unknown>;
    for (const k of new Set([...Object.keys(e), ...Object.keys(a)])) {
      if (!(k in a)) this.add(`${where}.${k}: missing in the answer (expected ${JSON.stringify(e[k])})`);
      else if (!(k in e)) this.add(`${where}.${k}: unexpected field (${JSON.stringify(a[k])})`);
      else this.compare(`${where}.${k}`, e[k], a[k]);
    }
  }

  /** The list must be in non-increasing order of `key` (the contract's "most first"). */
  ordered<T>(where: string, rows: readonly T[], key: (row: T) => number): void {
    for (let i = 1; i < rows.length; i++) {
      if (key(rows[i]!) > key(rows[i - 1]!)) {
        this.add(`${where}: not sorted, most first (row ${i} has more than row ${i - 1})`);
        return;
      }
    }
  }

  report(): string {
    return this.count === 0 ? "" : `${this.count} difference(s):\n  ${this.list.join("\n  ")}${this.dropped ? `\n  … and ${this.dropped} more` : ""}`;
  }
}

function short(x: unknown): string {
  const s = JSON.stringify(x);
  return s.length > 600 ? `${s.slice(0, 600)}…` : s;
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

/** Rows sorted by `count` descending, ties by `key` ascending (the model's order). */
export function canonical<T>(rows: readonly T[], count: (row: T) => number, key: (row: T) => string): T[] {
  return [...rows].sort((a, b) => count(b) - count(a) || cmp(key(a), key(b)));
}

/** A one-to-one correspondence between model keys and ids the service chose; conflicts are differences. */
export class OneToOne {
  readonly forward = new Map<string, string>();
  private readonly backward = new Map<string, string>();

  constructor(private readonly what: string) {}

  /** Records model key ↔ service id; false (and a difference) when it contradicts earlier pairs. */
  pair(modelKey: string, serviceId: string, diffs: Diffs, where: string): boolean {
    const known = this.forward.get(modelKey);
    const owner = this.backward.get(serviceId);
    if (known !== undefined && known !== serviceId) {
      diffs.add(`${where}: ${this.what} ${modelKey} is ${known} elsewhere, here ${serviceId}`);
      return false;
    }
    if (owner !== undefined && owner !== modelKey) {
      diffs.add(`${where}: ${this.what} id ${serviceId} belongs to ${owner} elsewhere, here to ${modelKey}`);
      return false;
    }
    this.forward.set(modelKey, serviceId);
    this.backward.set(serviceId, modelKey);
    return true;
  }
}
