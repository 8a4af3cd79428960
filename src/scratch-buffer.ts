// A buffer kept between uses by one sequential user (the spool's group commit, the flush's segment
// read, the flush's insert bodies), instead of a fresh one each time.
//
// Why: on this project's machine (a 2-core virtual machine) writing a freshly allocated buffer of
// 16 KB or more costs page faults, at ~15 µs each: a new 16 KB Buffer filled once took 14–19 µs
// (about one fault per allocation, the same with Buffer.alloc, allocUnsafeSlow or a Uint8Array)
// against ~1 µs for the same fill of a kept one. The spool's commits, the flush's segment reads
// and its insert bodies each wrote megabytes a second into fresh memory. Keeping the commit and
// body buffers took the JS thread's faults at saturation from 2,600–2,900 to 1,700–2,300 a second
// (single items) and from 7,400–8,700 to 5,600–5,800 (100-item batches); bench/RESULTS.md,
// 2026-11-29 18:27–19:10.
//
// The rule that keeps it safe: whoever takes the buffer is its only reader and writer until it
// takes it again, so a user whose last use may still be read by someone else (an insert the
// client gave up on while the engine still parses it) calls `drop()` first.

const GRAIN = 64 * 1024;

/** A grow-only byte buffer, reused while its size stays within `maxKeepBytes`. */
export class ScratchBuffer {
  #kept: Buffer | null = null;

  constructor(readonly maxKeepBytes: number) {}

  /**
   * `size` bytes whose content is garbage: the kept buffer when it is large enough, else a new one
   * (kept for next time unless larger than `maxKeepBytes`). The previous take's bytes are gone.
   */
  take(size: number): Buffer {
    if (this.#kept && this.#kept.byteLength >= size) return this.#kept.subarray(0, size);
    if (size > this.maxKeepBytes) return Buffer.allocUnsafe(size);
    // Rounded up to whole 64 KB, not doubled: it keeps at most 64 KB more than the largest use.
    this.#kept = Buffer.allocUnsafe(Math.min(this.maxKeepBytes, Math.ceil(size / GRAIN) * GRAIN || GRAIN));
    return this.#kept.subarray(0, size);
  }

  /** Forgets the kept buffer: whatever still reads it keeps valid bytes, and the next take gets a new one. */
  drop(): void {
    this.#kept = null;
  }

  /** Bytes kept between takes (for tests and memory accounting). */
  get keptBytes(): number {
    return this.#kept?.byteLength ?? 0;
  }
}
