// Inserts into `sessions` and the session list's page reads take turns on one client.
//
// A session cursor remembers when each page of a walk was read, and a next page leaves out a
// session that an earlier page listed and that has moved below the cursor since (query/
// session-list.ts, schemas/12-session_moves.sql). That needs "read before the move" to mean "saw
// the state before the move". An INSERT into `sessions` is not one instant, though: its rows take
// their `updated_at` (the move's time) as it starts, its part becomes readable later, and the
// session_moves_mv row after that. A page read in between saw the old state with a read time after
// the move, or the new state without its move row; either way the walk listed the session twice
// (in a stress test, 33–46 repeats in ~500 pages). Taking turns closes the gap: a page read never
// runs while an insert into `sessions` on the same client does, so a read either began before the
// insert started (read time ≤ the move's time: it saw the old state) or after it returned (the new
// state and its move row are both there).
//
// Reads share a turn with reads and inserts with inserts (ACK_MODE=insert's concurrent requests
// still reach the engine together, which batches them); a waiting turn of the other kind blocks
// newcomers, so neither side starves. Only inserts that return once their rows are readable are
// covered: not another instance's on a shared ClickHouse server, nor an async insert that does
// not wait (ACK_MODE=insert without CLICKHOUSE_WAIT_FOR_ASYNC_INSERT); those can still list a
// moving session twice (README, Paging).
import type { ClickHouseClient } from "@clickhouse/client-web";

type Kind = "read" | "insert";
type Waiter = { kind: Kind; go: () => void; admitted: boolean };

export class Turns {
  #kind: Kind | null = null;
  #running = 0;
  #waiting: Waiter[] = [];

  /**
   * Runs `fn` in a turn of its kind: alongside others of that kind, never beside the other. After
   * `maxWaitMs` of waiting it runs anyway, outside the turns: an insert stuck in the engine (up to
   * the client's timeout) must not hold every page read as long.
   */
  async run<T>(kind: Kind, fn: () => Promise<T>, maxWaitMs = Number.POSITIVE_INFINITY): Promise<T> {
    let inTurn = true;
    if (this.#running === 0 || (this.#kind === kind && this.#waiting.length === 0)) {
      this.#kind = kind;
      this.#running++;
    } else {
      const waiter: Waiter = { kind, go: () => undefined, admitted: false };
      const admitted = new Promise<void>((go) => (waiter.go = go));
      this.#waiting.push(waiter);
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timedOut = Number.isFinite(maxWaitMs) ? new Promise<void>((r) => (timer = setTimeout(r, maxWaitMs))) : undefined;
      await (timedOut ? Promise.race([admitted, timedOut]) : admitted);
      clearTimeout(timer);
      // Admitted meanwhile (then it counts as running), or still waiting: leave the queue.
      if (!waiter.admitted) {
        this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
        inTurn = false;
      }
    }
    try {
      return await fn();
    } finally {
      if (inTurn) this.#leave();
    }
  }

  #leave(): void {
    if (--this.#running > 0) return;
    const next = this.#waiting[0];
    this.#kind = next?.kind ?? null;
    // The next turn: the waiters at the head of the queue that are of the head's kind.
    while (next && this.#waiting[0]?.kind === next.kind) {
      const waiter = this.#waiting.shift()!;
      waiter.admitted = true;
      this.#running++;
      waiter.go();
    }
  }
}

const turns = new WeakMap<ClickHouseClient, Turns>();

/** The turns of inserts into `sessions` and session page reads made through `client`. */
export function sessionsTurns(client: ClickHouseClient): Turns {
  let t = turns.get(client);
  if (!t) turns.set(client, (t = new Turns()));
  return t;
}
