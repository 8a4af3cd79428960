// Group commit: callers that arrive in the same tick, or while a commit is in flight, share the
// next commit. Under load one write + one fdatasync covers hundreds of appends; at idle the first
// append goes out after a single microtask.

/** A queue that turns many concurrent submissions into few commits. */
export interface GroupCommit {
  /** Resolves once a commit that contains `frames` has succeeded; rejects with its error. */
  submit(frames: Uint8Array): Promise<void>;
  /** Runs `task` after every frame submitted so far is committed and before any later one. */
  exclusive<T>(task: () => Promise<T>): Promise<T>;
  /** Resolves when nothing is queued or in flight. */
  idle(): Promise<void>;
}

interface Waiter {
  frames: Uint8Array;
  resolve: () => void;
  reject: (error: unknown) => void;
}

/** Builds a group commit over `commit`; `afterCommit` runs between batches (e.g. to roll a segment). */
export function createGroupCommit(
  commit: (frames: Uint8Array) => Promise<void>,
  afterCommit: () => Promise<void>,
): GroupCommit {
  let queue: Waiter[] = [];
  let tasks: (() => Promise<void>)[] = [];
  let running: Promise<void> | null = null;

  async function loop(): Promise<void> {
    while (queue.length > 0 || tasks.length > 0) {
      if (queue.length > 0) {
        const batch = queue;
        queue = [];
        const frames = batch.length === 1 ? batch[0]!.frames : Buffer.concat(batch.map((w) => w.frames));
        try {
          await commit(frames);
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
    submit(frames) {
      return new Promise<void>((resolve, reject) => {
        queue.push({ frames, resolve, reject });
        kick();
      });
    },
    exclusive<T>(task: () => Promise<T>) {
      return new Promise<T>((resolve, reject) => {
        tasks.push(() => task().then(resolve, reject));
        kick();
      });
    },
    async idle() {
      while (running) await running;
    },
  };
}
