// Ending the process without running its exit handlers. Once the embedded engine has failed
// (chdb-engine.ts, isEngineFailure), `process.exit` hangs: libchdb's own exit handlers wait for
// the threads its fatal signal stopped (measured: 300 s, then a segmentation fault). `_exit`
// skips them. Nothing of the service's needs them either: the spool's writes are durable before
// a 202 (O_DSYNC), and the logger writes each line before it returns.
import { dlopen, FFIType } from "bun:ffi";

/** Ends the process at once with `code`; by SIGKILL when libc's `_exit` cannot be loaded. */
export function hardExit(code: number): never {
  try {
    dlopen("libc.so.6", { _exit: { args: [FFIType.i32], returns: FFIType.void } }).symbols._exit(code);
  } catch {
    // not glibc (musl, another OS): fall through
  }
  process.kill(process.pid, "SIGKILL");
  throw new Error("unreachable: the process was killed");
}
