// How the `bun` process that runs src/main.ts is started: its command-line flags and the
// environment it needs before it starts. package.json's `start` and the Dockerfile spell both
// (tests/http/limits.test.ts checks that they do); test and benchmark helpers start the service
// with them too, so what they measure is what runs in production.

// Bun answers a request whose request line and headers exceed --max-http-header-size (default
// 16 KiB) with a bare 431 before the app sees it: no X-Request-Id, no error body. At 64 KiB a long
// query string or header reaches the app, which names the offending parameter in a 400 like any
// other bad value (API.md: every response carries X-Request-Id).
export const BUN_FLAGS = ["--max-http-header-size=65536"] as const;

// Bun's allocator (mimalloc) reads its options from the environment once, at process start.
// MIMALLOC_PURGE_DELAY=-1: memory the process freed is kept for its next allocations instead of
// being handed back to the kernel 100 ms later (the default). Each flush and each group commit
// allocates megabytes; with the default every one of those pages was handed back and faulted in
// again, 20,000–40,000 page faults a second at saturation and half the process's CPU in the
// kernel. Kept, ingest does 1.3× the single-item and 2× the batch throughput on the same machine
// (interleaved A/B, bench/RESULTS.md 2026-11-29 08:47). The price: the process's RSS stays at its
// high-water mark instead of shrinking after a burst (README, "Memory"). An
// operator who prefers the memory back sets MIMALLOC_PURGE_DELAY themselves; the start script
// keeps their value.
//
// UV_THREADPOOL_SIZE=16: Bun's work pool (read once, at start; one thread per core by default, 2
// here) runs both chdb's calls, each holding its thread for the whole query, and the async file
// I/O of the spool, whose fdatasync every 202 waits for. With two threads, two dashboard reads
// made every acknowledgement wait behind them: while 30-day reports were read back to back
// beside 300 single events a second, the spool's write + fdatasync took p99 1.1 s and the 202s
// p99 1.06-1.35 s; with 16 threads, 62-74 ms (bench/RESULTS.md, session 16). 16 leaves room for
// the engine's default 4 lanes and their inserts; with EMBEDDED_LANES above ~12, raise it too.
//
// JE_MALLOC_CONF: the embedded engine (libchdb) has its own allocator, jemalloc, which reads this
// variable at start (chdb's build prefixes it `JE_`; a bogus option aborts the process, so it is
// read). ClickHouse builds it to hand memory back 5 s after it was freed (dirty_decay_ms and
// muzzy_decay_ms 5000), and every report read faults its working memory in again; page faults
// cost ~15 µs on this kind of virtual machine: with reads 6 s apart (someone clicking through a
// dashboard), a 30-day stats report took 375–429 ms with 28,000 faults, against 120–212 ms with
// a minute's decay, and a 7-day summary 319–573 against 150–346 ms (bench/RESULTS.md, 2026-11-29
// 21:50). A minute, not "never": after a quiet minute the memory goes back (RSS 624 → 305 MiB
// within 30 s of idle there), where the engine's transient peaks for long reports can be large.
export const RUNTIME_ENV = { MIMALLOC_PURGE_DELAY: "-1", UV_THREADPOOL_SIZE: "16", JE_MALLOC_CONF: "dirty_decay_ms:60000,muzzy_decay_ms:60000" } as const;

/** The environment assignments of package.json's `start`: the operator's value wins, ours is the default. */
export function startScriptEnv(): string {
  return Object.entries(RUNTIME_ENV).map(([k, v]) => `${k}=\${${k}:-${v}}`).join(" ");
}
