// Group commit: callers that arrive in the same tick, or while a commit is in flight, share the
// next commit. Under load one durable write (the spool's segments are opened O_DSYNC) covers
// hundreds of appends; at idle the first append goes out after a single microtask.

/** A queue that turns many concurrent submissions into few commits. */
export interface GroupCommit<T> {
  /** Resolves once a commit that contains `item` has succeeded; rejects with its error. */
  submit(item: T): Promise<void>;
  /** Runs `task` after every frame submitted so far is committed and before any later one. */
  exclusive<R>(task: () => Promise<R>): Promise<R>;
  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void>;
}

interface Waiter<T> {
  item: T;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/**
 * Builds a group commit over `commit`, which gets every item submitted since the last commit, in
 * order (the spool encodes them into one buffer there: no per-append buffers to concatenate);
 * `afterCommit` runs between batches (e.g. to roll a segment).
 */
export function createGroupCommit<T>(
  commit: (batch: readonly T[]) => Promise<void>,
  afterCommit: () => Promise<void>,
): GroupCommit<T> {
  let queue: Waiter<T>[] = [];
  let tasks: (() => Promise<void>)[] = [];
  let running: Promise<void> | null = null;

  async function loop(): Promise<void> {
    while (queue.length > 0 || tasks.length > 0) {
      if (queue.length > 0) {
        const batch = queue;
        queue = [];
        try {
          await commit(batch.map((w) => w.item));
          for (const w of batch) w.resolve();
        } catch (error) {
          for (const w of batch) w.reject(error);
        }
        await afterCommit().catch(() => {}); // its own failures surface on the next commit
      }
      const due = tasks;
      tasks = [];
      for (const task of due) await task();
    }
  }

  function kick(): void {
    if (running) return;
    // Starting one microtask later lets every caller of the current tick join the first batch.
    running = Promise.resolve()
      .then(loop)
      .finally(() => {
        running = null;
        if (queue.length > 0 || tasks.length > 0) kick();
      });
  }

  return {
    submit(item) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ item, resolve, reject });
        kick();
      });
    },
    exclusive<R>(task: () => Promise<R>) {
      return new Promise<R>((resolve, reject) => {
        tasks.push(() => task().then(resolve, reject));
        kick();
      });
    },
    async idle() {
      while (running) await running;
    },
  };
}
